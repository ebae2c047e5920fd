"""The one reading of a user ID's mail address.

caffpy mails a certification only to the address gpg itself attributes to the
UID (gpg's mailbox_from_userid: the text between the first '<' and the next
'>', or the whole UID when it is a bare address), and only when no other
sensible reading exists. A UID that another parser (RFC 5322, caff's regex, a
mail client) could read as a different address is refused, so a key owner
cannot obtain a certification for an address they do not control.
"""

import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

from caffpy.text import has_unsafe_chars

MAX_UID_LENGTH = 512        # characters; longer UIDs are not mailed
MAX_ADDRESS_LENGTH = 254    # RFC 5321 path limit minus the brackets
MAX_LOCAL_LENGTH = 64

_GPG_VALID = set("01234567890_-.abcdefghijklmnopqrstuvwxyz")
_GPG_LOCAL_EXTRA = set("!#$%&'*+/=?^`{|}~")
# RFC 5322 dot-atom for the local part (ASCII only, no quoted strings).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass
class AddressReading:
    address: Optional[str]   # ASCII address to mail to, or None
    reason: str = ""         # why there is no address (empty when there is one)
    unsafe: bool = False     # the UID has something like an address, but not one to trust


def _refuse(reason: str) -> AddressReading:
    return AddressReading(None, reason, unsafe=True)


def gpg_mailbox(uid: str) -> Optional[str]:
    """Re-implementation of gpg 2.2's mailbox_from_userid (common/mbox-util.c)."""
    start = uid.find("<")
    if start >= 0:
        end = uid.find(">", start + 1)
        if end <= start + 1:
            return None
        candidate = uid[start + 1:end]
    else:
        candidate = uid
    return candidate.lower() if _gpg_valid_mailbox(candidate) else None


def _gpg_valid_mailbox(name: str) -> bool:
    if not name or name.count("@") != 1 or name[0] == "@" or name[-1] in "@." or ".." in name:
        return False
    at_seen = False
    for char in name:
        if ord(char) >= 0x80:
            continue
        lower = char.lower()
        if char == "@":
            at_seen = True
        elif not at_seen and not (lower in _GPG_VALID or char in _GPG_LOCAL_EXTRA):
            return False
        elif at_seen and lower not in _GPG_VALID:
            return False
    return True


def domain_to_ascii(domain: str) -> Optional[str]:
    """Return the A-label form of a domain, or None if it is not a safe host name.

    Python's idna codec (IDNA 2003) silently maps some characters (sharp s to
    ss, full-width letters, zero-width space dropped); a label whose conversion
    does not round-trip to itself is refused rather than mailed somewhere else.
    """
    domain = domain.lower()
    if unicodedata.normalize("NFC", domain) != domain:
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    out = []
    for label in labels:
        if label.isascii():
            ascii_label = label
        else:
            try:
                ascii_label = label.encode("idna").decode("ascii")
                if ascii_label.encode("ascii").decode("idna") != label:
                    return None
            except UnicodeError:
                return None
        if not _LDH_LABEL.match(ascii_label):
            return None
        out.append(ascii_label)
    if out[-1].isdigit():
        return None
    return ".".join(out)


def read_address(uid: str) -> AddressReading:
    """Return the address to mail a UID's certification to, or why there is none."""
    if len(uid) > MAX_UID_LENGTH:
        return _refuse("the user ID is longer than %d characters" % MAX_UID_LENGTH)
    if "\ufffd" in uid:
        return _refuse("the user ID is not valid UTF-8")
    if has_unsafe_chars(uid):
        return _refuse("the user ID contains control, bidi or invisible characters")
    mailbox = gpg_mailbox(uid)
    if mailbox is None:
        if any(mark in uid for mark in "<>@"):
            # Something address-like that gpg does not read as one: it must not ride
            # along with another UID's mail as if it were just a name.
            return _refuse("the user ID looks like it holds an address, but not one gpg reads")
        return AddressReading(None, "the user ID has no mail address", unsafe=False)
    if uid.count("<") > 1 or uid.count(">") > 1:
        return _refuse("the user ID has more than one <...> part")
    if "<" in uid:
        name, _, rest = uid.partition("<")
        if not rest.endswith(">"):
            return _refuse("text follows the <address> part")
        if "@" in name or '"' in name:
            return _refuse("the name part holds an '@' or a quote, so mail "
                           "programs could read another address")
        addr = rest[:-1]
    else:
        addr = uid
    local, _, domain = addr.partition("@")
    if local.startswith("-"):
        return _refuse("the address starts with '-', which mail programs "
                       "take for an option")
    if not _LOCAL.match(local) or len(local) > MAX_LOCAL_LENGTH:
        return _refuse("the part before '@' is not a plain ASCII mailbox name")
    ascii_domain = domain_to_ascii(domain)
    if ascii_domain is None:
        return _refuse("the domain %r is not a valid host name" % domain)
    address = local.lower() + "@" + ascii_domain
    if len(address) > MAX_ADDRESS_LENGTH:
        return _refuse("the address is longer than %d characters" % MAX_ADDRESS_LENGTH)
    if gpg_mailbox(addr) != addr.lower():
        return _refuse("gpg reads this user ID's address differently")
    return AddressReading(address)
