"""Value types for keys and user IDs, and parsing of key IDs given by the user."""

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from caffpy.errors import DataError
from caffpy.text import decode_uid, printable

_HEX40 = re.compile(r"^[0-9A-F]{40}$")
_HEX16 = re.compile(r"^[0-9A-F]{16}$")
_HEX8 = re.compile(r"^[0-9A-F]{8}$")
_HEX32 = re.compile(r"^[0-9A-F]{32}$")


def normalize_key_id(text: str) -> str:
    """Strip 0x and blanks, upper-case; no validation."""
    cleaned = re.sub(r"\s+", "", text.strip())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    return cleaned.upper()


def parse_key_id(text: str) -> Tuple[str, Optional[str]]:
    """Parse a key the user asked for.

    Returns (key_id, warning): a 40-hex fingerprint, or a 16-hex long key ID with
    a warning. Short IDs, v3 fingerprints and anything else raise DataError.
    """
    key_id = normalize_key_id(text)
    if _HEX40.match(key_id):
        return key_id, None
    if _HEX16.match(key_id):
        return key_id, ("%s is a long key ID, not a fingerprint: it identifies the key "
                        "only if no other key shares it; use the full fingerprint "
                        "you checked at the party" % key_id)
    if _HEX8.match(key_id):
        raise DataError("%s is a short key ID; anyone can make a key with the same one. "
                        "Give the full fingerprint." % printable(text.strip()))
    if _HEX32.match(key_id):
        raise DataError("%s is a v3 fingerprint; v3 keys are obsolete and gpg cannot "
                        "import them." % key_id)
    raise DataError("%r is not a key fingerprint (40 hexadecimal digits)."
                    % printable(text.strip(), 80))


def is_fingerprint(key_id: str) -> bool:
    return bool(_HEX40.match(key_id))


@dataclass
class Uid:
    """One user ID (or photo ID) of a key, as gpg lists it."""

    serial: int          # 1-based position among the key's uid and uat lines
    is_attribute: bool   # a photo ID (uat)
    validity: str        # gpg's validity letter; 'r' revoked, 'e' expired, 'i' invalid
    namehash: str        # gpg's UID hash (RIPEMD-160 of the packet body), upper-case hex
    raw: bytes           # the UID text exactly as in the key (empty for photo IDs)

    @property
    def text(self) -> str:
        return "[photo ID]" if self.is_attribute else decode_uid(self.raw)

    @property
    def shown(self) -> str:
        """The UID as it may be printed: control and bidi characters escaped."""
        return printable(self.text)

    @property
    def usable(self) -> bool:
        return self.validity not in ("r", "e", "i")

    @property
    def state(self) -> str:
        return {"r": "revoked", "e": "expired", "i": "invalid"}.get(self.validity, "valid")


@dataclass
class Key:
    """A public key as listed by gpg --with-colons."""

    fingerprint: str
    validity: str
    capabilities: str       # field 12: lower case for the primary, upper case for the whole key
    created: int
    expires: Optional[int]
    uids: List[Uid] = field(default_factory=list)
    subkey_fingerprints: List[str] = field(default_factory=list)

    @property
    def long_id(self) -> str:
        return self.fingerprint[-16:]

    @property
    def usable(self) -> bool:
        return self.validity not in ("r", "e", "i") and "D" not in self.capabilities

    @property
    def state(self) -> str:
        if "D" in self.capabilities:
            return "disabled"
        return {"r": "revoked", "e": "expired", "i": "invalid"}.get(self.validity, "valid")

    @property
    def can_encrypt(self) -> bool:
        return "E" in self.capabilities
