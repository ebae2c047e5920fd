"""caffpy receive: import the certifications others mailed you, and nothing else.

The mails are written by strangers, so everything in them is hostile until
gpg has checked it. A run:

1. reads messages from mboxes, Maildirs, one-message files or standard input;
2. finds the OpenPGP key data in them: application/pgp-keys attachments,
   PGP/MIME encrypted parts (caff, caffpy), inline armored blocks (pius) and
   binary encrypted files (gnome-keysign), decrypting with the user's own gpg
   (their GNUPGHOME and gpg-agent);
3. sorts every packet of the keys found: a new, exportable certification
   (0x10-0x13) made by another key on a user ID one of the user's own keys
   already has is a candidate; new user IDs, subkeys, revocations, self- and
   direct-key signatures and other people's keys are reported and dropped;
4. has gpg check the candidates in a throwaway GNUPGHOME holding only the
   user's key and the signers' keys taken from the user's keyring (gpg's
   import stores bad third-party signatures without complaint, so the verdict
   of --check-sigs decides, not the import);
5. imports into the user's keyring the user's own key packets (as their
   keyring has them) plus the verified certifications only, and confirms
   each one with a fresh export.
"""

import email
import email.policy
import email.utils
import logging
import mailbox
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from caffpy import config as configuration, packets, progress
from caffpy.address import read_address
from caffpy.errors import (EX_DATAERR, EX_NOINPUT, EX_OK, EX_SOFTWARE, EX_UNAVAILABLE,
                           CaffError, GpgError, KeyNotFoundError, UsageError)
from caffpy.gpg import LIST_OPTS, Gpg, gpg_version
from caffpy.keys import Key
from caffpy.text import decode_uid, printable

log = logging.getLogger(__name__)

DEFAULT_KEYSERVER = "hkps://keyserver.ubuntu.com"

# Limits against hostile input. A keysigning mail is a few kilobytes; a key
# over 5 MiB is a flooded one (security notes T1); gpg's --max-output stops
# a compressed message that unpacks without end.
MAX_MESSAGE = 20 * 1024 * 1024
MAX_KEY_DATA = 5 * 1024 * 1024
MAX_DECRYPTED = 20 * 1024 * 1024
MAX_DECRYPTIONS = 10        # encrypted parts per message
MAX_CERTS = 1000            # certifications of your UIDs per message
MAX_ITEMS = 50              # other things left out, listed per message
MAX_NESTING = 20            # MIME levels
DECRYPT_TIMEOUT = 300       # seconds; long enough to type a passphrase
SEND_TIMEOUT = 120

# Decrypt only: never fetch a key to check a signature on the mail (that would
# put a key into the user's keyring) and never write a file named by the mail.
DECRYPT_ARGS = ["--no-auto-key-retrieve", "--skip-verify", "--no-use-embedded-filename",
                "--max-output", str(MAX_DECRYPTED), "--output", "-", "--decrypt"]
# Whatever gpg.conf says: keep third-party signatures, and do not clean the
# user's key (that would drop certifications whose signers they do not hold).
IMPORT_ARGS = ["--import-options", "no-self-sigs-only,no-import-clean,no-import-minimal",
               "--import"]

TAG_SECRET_KEY, TAG_SECRET_SUBKEY = 5, 7
KEY_REVOCATION, SUBKEY_REVOCATION, DIRECT_KEY = 0x20, 0x28, 0x1F
SUBPACKET_EXPORTABLE = 4

ARMOR_KINDS = (b"MESSAGE", b"PUBLIC KEY BLOCK")


class InputError(CaffError):
    """A mailbox named on the command line cannot be opened."""

    exit_code = EX_NOINPUT


# -- the command line ------------------------------------------------------------


def build_receive_parser():
    from caffpy.cli import _ArgumentParser, _common_options  # cli imports this module
    parser = _ArgumentParser(
        prog="caffpy receive",
        description="Import the certifications others mailed you, from each MAILBOX (an "
                    "mbox, a Maildir or a file holding one message) or from standard "
                    "input: only new certifications of the user IDs of your own keys, "
                    "each checked by gpg; everything else in the mails is reported and "
                    "left out.")
    parser.add_argument("mailboxes", nargs="*", metavar="MAILBOX",
                        help="an mbox file, a Maildir or a file holding one message; "
                             "without any (or with -), standard input")
    parser.add_argument("--publish", nargs="?", const=DEFAULT_KEYSERVER, metavar="KEYSERVER",
                        help="afterwards send your keys to KEYSERVER (default "
                             "%s) with gpg --send-keys; give it after the "
                             "mailboxes" % DEFAULT_KEYSERVER)
    _common_options(parser)
    return parser


def cmd_receive(argv: List[str], prompter_box: list) -> int:
    args = build_receive_parser().parse_args(argv)
    if args.publish and "://" not in args.publish and os.path.exists(args.publish):
        raise UsageError("--publish took %s for the keyserver; name the mailboxes first "
                         "(caffpy receive MAILBOX --publish) or write --publish=KEYSERVER"
                         % printable(args.publish))
    config = configuration.load(args.config, {}, require=False)
    gpg_version(config["gpg"])
    user_gpg = Gpg(os.environ.get("GNUPGHOME"), config["gpg"])
    paths = args.mailboxes
    if not paths and sys.stdin.isatty():
        if not args.publish:
            raise UsageError("give the mailboxes to read (mbox, Maildir or message files), "
                             "or a message on standard input")
        paths = None        # only publish
    report = receive(user_gpg, config["keyid"], config["gpg"], paths)
    print(report.render(publishing=bool(args.publish)))
    status = report.exit_code
    if args.publish:
        if not publish(user_gpg, [k.key.fingerprint for k in report.own], args.publish):
            status = EX_UNAVAILABLE
    return status


# -- reading mailboxes -------------------------------------------------------------


@dataclass
class Message:
    where: str          # for the report, e.g. "mails.mbox, message 3"
    data: bytes


def read_messages(paths: Sequence[str]) -> Iterator[Message]:
    """Every message in the given mailboxes; '-' is standard input."""
    for path in paths or ["-"]:
        if path == "-":
            data = sys.stdin.buffer.read()
            if not data:
                continue
            if data.startswith(b"From "):
                yield from _numbered("standard input", _split_mbox(data))
            else:
                yield Message("standard input", data)
        elif os.path.isdir(path):
            if not all(os.path.isdir(os.path.join(path, d)) for d in ("cur", "new")):
                raise InputError("%s is a directory but not a Maildir (no cur/ and new/)"
                                 % printable(path))
            box = mailbox.Maildir(path, factory=None, create=False)
            yield from _numbered(path, (box.get_bytes(key) for key in sorted(box.keys())))
        else:
            try:
                with open(path, "rb") as handle:
                    head = handle.read(5)
                    data = None if head == b"From " else head + handle.read()
            except OSError as error:
                raise InputError("cannot read %s: %s" % (printable(path), error.strerror))
            if data is None:
                box = mailbox.mbox(path, factory=None, create=False)
                yield from _numbered(path, (box.get_bytes(key) for key in box.keys()))
            else:
                yield Message(printable(path), data)


def _numbered(name: str, datas) -> Iterator[Message]:
    for number, data in enumerate(datas, 1):
        yield Message("%s, message %d" % (printable(name), number), data)


def _split_mbox(data: bytes) -> List[bytes]:
    """Messages of an mbox held in memory; as Python's mailbox, a line 'From ' starts one."""
    messages: List[bytes] = []
    current: Optional[List[bytes]] = None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if current is not None:
                messages.append(b"".join(current))
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:
        messages.append(b"".join(current))
    return messages


# -- finding key data in a message -----------------------------------------------------


@dataclass
class Item:
    where: str
    text: str


class _Finder:
    """Walks one message: decrypts what is encrypted, collects the key data in it."""

    def __init__(self, user_gpg: Gpg):
        self.gpg = user_gpg
        self.found: List[bytes] = []          # binary key data
        self.problems: List[str] = []
        self.decryptions = 0

    def entity(self, part, depth: int) -> None:
        if depth > MAX_NESTING:
            self.problems.append("MIME parts nested more than %d deep" % MAX_NESTING)
            return
        ctype = part.get_content_type()
        if part.is_multipart():
            subparts = part.get_payload()
            if ctype == "multipart/encrypted":
                self.pgp_mime(subparts, depth)
            else:
                for sub in subparts:
                    self.entity(sub, depth + 1)
            return
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        if ctype == "application/pgp-keys":
            self.keys(payload)
        elif _first_tag(payload) in (1, 3):     # a binary encrypted file (gnome-keysign)
            self.decrypt(payload, depth)
        elif ctype != "text/html":      # mangled armor; the text/plain part has the same
            self.text(payload, depth)

    def pgp_mime(self, subparts, depth: int) -> None:
        """RFC 3156: a version part, then the encrypted data."""
        for sub in subparts[1:]:
            payload = None if sub.is_multipart() else sub.get_payload(decode=True)
            if isinstance(payload, bytes) and b"-----BEGIN PGP MESSAGE-----" in payload:
                self.decrypt(payload, depth)
                return
        self.problems.append("a PGP/MIME encrypted part without encrypted data")

    def text(self, payload: bytes, depth: int) -> None:
        """Inline armored blocks: encrypted messages (pius) and keys."""
        for kind, block in armored_blocks(payload):
            if kind == b"MESSAGE":
                self.decrypt(block, depth)
            else:
                self.keys(block)

    def decrypt(self, ciphertext: bytes, depth: int) -> None:
        if self.decryptions >= MAX_DECRYPTIONS:
            self.problems.append("more than %d encrypted parts; the rest was not read"
                                 % MAX_DECRYPTIONS)
            return
        self.decryptions += 1
        if passphrase_only(ciphertext):
            # gpg would have the agent ask for a passphrase: never for a stranger's mail.
            self.problems.append("encrypted with a passphrase, not to your key; not read")
            return
        result = self.gpg.run(DECRYPT_ARGS, input=ciphertext, check=False,
                              timeout=DECRYPT_TIMEOUT, what="decrypting a message")
        if result.returncode != 0 or not result.status_args("DECRYPTION_OKAY") \
                or result.status_args("DECRYPTION_FAILED"):
            missing = [a[0].decode("ascii", "replace") for a in result.status_args("NO_SECKEY")
                       if a and re.match(rb"^[0-9A-F]{16}$", a[0])]
            if missing and not result.status_args("DECRYPTION_KEY"):
                self.problems.append("cannot decrypt it: it is encrypted to %s, and your "
                                     "keyring has none of their secret keys"
                                     % ", ".join(missing))
            else:
                self.problems.append("cannot decrypt it (gpg exit status %d)"
                                     % result.returncode)
            return
        plain = result.stdout
        if plain[:1] and plain[0] & 0x80:       # binary OpenPGP data: a key
            self.keys(plain)
        else:
            self.entity(email.message_from_bytes(plain, policy=email.policy.compat32),
                        depth + 1)

    def keys(self, data: bytes) -> None:
        if not data.strip():
            self.problems.append("an empty key attachment")
        elif len(data) > MAX_KEY_DATA:
            self.problems.append("key data larger than %d MiB (a flooded key?) was not read"
                                 % (MAX_KEY_DATA // 1024 // 1024))
        elif data[0] & 0x80:
            self.found.append(data)
        else:
            blocks = [block for kind, block in armored_blocks(data)
                      if kind == b"PUBLIC KEY BLOCK"]
            if not blocks:
                self.problems.append("key data that is neither armored nor binary OpenPGP")
            for block in blocks:
                try:
                    self.found.append(packets.dearmor(block))
                except ValueError as error:
                    self.problems.append("damaged armored key: %s" % error)


def armored_blocks(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """(kind, block) for each armored message or public key block in data.

    In one pass (no regular expression that rescans the rest of the text for
    every BEGIN line a hostile mail repeats): once a kind has no END line
    after some point, no later block of that kind can be complete.
    """
    pos, unterminated = 0, set()
    while True:
        start = data.find(b"-----BEGIN PGP ", pos)
        if start < 0:
            return
        pos = start + 1
        for kind in ARMOR_KINDS:
            if kind not in unterminated and data.startswith(
                    b"-----BEGIN PGP %s-----" % kind, start):
                end_line = b"-----END PGP %s-----" % kind
                end = data.find(end_line, start)
                if end < 0:
                    unterminated.add(kind)
                else:
                    pos = end + len(end_line)
                    yield kind, data[start:pos]


def _first_tag(data: bytes) -> Optional[int]:
    """The tag of the first OpenPGP packet, if data is binary OpenPGP."""
    if not data[:1] or not data[0] & 0x80:
        return None
    try:
        return next(packets.split_packets(data)).tag
    except (StopIteration, packets.PacketError):
        return None


def passphrase_only(ciphertext: bytes) -> bool:
    """Whether an encrypted message can only be opened with a passphrase (its
    session keys are all symmetric, tag 3; none is encrypted to a key, tag 1)."""
    tags = set()
    try:
        data = packets.dearmor(ciphertext) if ciphertext.lstrip().startswith(b"-----") else ciphertext
        for packet in packets.split_packets(data):
            if packet.tag not in (1, 3):
                break
            tags.add(packet.tag)
    except (ValueError, packets.PacketError):
        pass                # the encrypted data itself; gpg judges the rest
    return 3 in tags and 1 not in tags


def _defects(message) -> Set[str]:
    """What the email parser found wrong, e.g. StartBoundaryNotFound."""
    return {type(d).__name__.replace("Defect", "") for part in message.walk()
            for d in part.defects}


def sender(data: bytes) -> str:
    """The From: address of a raw message, for the report (escaped, short)."""
    header = re.split(rb"\r?\n\r?\n", data[:65536], 1)[0]
    match = re.search(rb"^From:[ \t]*(.*(?:\r?\n[ \t].*)*)", header, re.M | re.I)
    if not match:
        return ""
    address = email.utils.parseaddr(match.group(1).decode("utf-8", "replace"))[1]
    return printable(address, 60)


# -- OpenPGP packets --------------------------------------------------------------------


@dataclass
class Sig:
    packet: packets.Packet
    version: int
    sig_type: int
    created: int
    issuer: str             # long key ID of the issuer, '' if the signature names none
    issuer_fpr: str         # the issuer's fingerprint, '' if not given
    exportable: bool
    identity: bytes         # the packet without its unhashed area: what gpg compares

    @property
    def signer_id(self) -> str:
        return self.issuer_fpr or self.issuer


def read_sig(packet: packets.Packet) -> Sig:
    body = packet.body
    if len(body) >= 19 and body[0] == 3:
        return Sig(packet, 3, body[2], int.from_bytes(body[3:7], "big"),
                   body[7:15].hex().upper(), "", True, body)
    if len(body) < 8 or body[0] != 4:
        return Sig(packet, body[0] if body else -1, -1, 0, "", "", False, body)
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    unhashed_end = hashed_end + 2 + int.from_bytes(body[hashed_end:hashed_end + 2], "big")
    sig = Sig(packet, 4, body[1], 0, "", "", True, body[:hashed_end] + body[unhashed_end:])
    issuers = set()
    for hashed, area in ((True, body[6:hashed_end]), (False, body[hashed_end + 2:unhashed_end])):
        for kind, value in packets.subpackets(area):
            if kind == packets.SUBPACKET_CREATION_TIME and hashed and len(value) == 4:
                sig.created = int.from_bytes(value, "big")
            elif kind == SUBPACKET_EXPORTABLE and hashed and value[:1] == b"\x00":
                sig.exportable = False
            elif kind == packets.SUBPACKET_ISSUER and len(value) == 8:
                issuers.add(value.hex().upper())
            elif kind == packets.SUBPACKET_ISSUER_FPR and len(value) == 21 and value[0] == 4:
                sig.issuer_fpr = value[1:].hex().upper()
                issuers.add(sig.issuer_fpr[-16:])
    # Two different issuers named: nobody can say who made it.
    sig.issuer = issuers.pop() if len(issuers) == 1 else ""
    return sig


@dataclass
class Block:
    """One key as found: its packets, each signature next to what it signs."""

    primary: packets.Packet
    fingerprint: str        # '' for a secret or unsupported key packet
    direct: List[Sig] = field(default_factory=list)
    uids: List[Tuple[packets.Packet, List[Sig]]] = field(default_factory=list)
    subkeys: List[Tuple[packets.Packet, List[Sig]]] = field(default_factory=list)


def read_blocks(data: bytes) -> Tuple[List[Block], List[Sig]]:
    """The keys in binary OpenPGP data, and signatures before any key (revocation
    certificates). PacketError when the data is damaged."""
    blocks: List[Block] = []
    loose: List[Sig] = []
    target = loose
    for packet in packets.split_packets(data):
        if packet.tag in (packets.TAG_PUBLIC_KEY, TAG_SECRET_KEY):
            fingerprint = ""
            if packet.tag == packets.TAG_PUBLIC_KEY:
                try:
                    fingerprint = packets.v4_fingerprint(packet.body)
                except packets.PacketError:
                    pass
            blocks.append(Block(packet, fingerprint))
            target = blocks[-1].direct
        elif packet.tag == packets.TAG_SIGNATURE:
            target.append(read_sig(packet))
        elif not blocks:
            continue        # a marker or trust packet before any key
        elif packet.tag in (packets.TAG_USER_ID, packets.TAG_USER_ATTRIBUTE):
            target = []
            blocks[-1].uids.append((packet, target))
        elif packet.tag in (packets.TAG_PUBLIC_SUBKEY, TAG_SECRET_SUBKEY):
            target = []
            blocks[-1].subkeys.append((packet, target))
    return blocks, loose


def uid_text(packet: packets.Packet) -> str:
    if packet.tag == packets.TAG_USER_ATTRIBUTE:
        return "[photo ID]"
    return printable(decode_uid(packet.body), 120)


def namehash(packet: packets.Packet) -> str:
    return packets.UidBlock(packet).namehash


# -- the user's own keys and the candidates -----------------------------------------------


@dataclass
class OwnKey:
    key: Key                         # as listed in the user's keyring
    block: Optional[Block] = None    # as exported from it
    known: Set[bytes] = field(default_factory=set)       # identities of its signatures
    uid_bodies: Set[bytes] = field(default_factory=set)
    subkey_bodies: Set[bytes] = field(default_factory=set)

    @property
    def name(self) -> str:
        usable = [u for u in self.key.uids if u.usable and not u.is_attribute]
        return "%s (%s)" % (self.key.fingerprint, usable[0].shown if usable else "no user ID")


def own_keys(user_gpg: Gpg, keyids: Sequence[str]) -> List[OwnKey]:
    """The keys whose certifications are imported: keyid from the configuration, or
    every key whose secret key is in the user's keyring."""
    if keyids:
        listing = user_gpg.list_keys(keyids)
        keys = []
        for key_id in keyids:
            matches = [k for k in listing if key_id in (k.fingerprint, k.long_id)]
            if len(matches) != 1:
                raise KeyNotFoundError("your key %s (the keyid setting) is %s in your keyring"
                                       % (key_id, "not" if not matches else "more than once"))
            keys.append(matches[0])
    else:
        fingerprints = [k.fingerprint for k in user_gpg.list_keys(secret=True)]
        if not fingerprints:
            raise KeyNotFoundError("your keyring holds no secret key, so caffpy receive cannot "
                                   "tell which keys are yours; set keyid in ~/.caffrc")
        keys = [k for k in user_gpg.list_keys(fingerprints) if k.fingerprint in fingerprints]
    own = [OwnKey(key) for key in keys]
    refresh(user_gpg, own)
    return own


def refresh(user_gpg: Gpg, own: Sequence[OwnKey]) -> None:
    """Read what the user's keyring holds now for each own key."""
    # Every signature the keyring has, whatever export-options gpg.conf sets.
    blocks = {b.fingerprint: b for b in read_blocks(user_gpg.export(
        [k.key.fingerprint for k in own], options=["no-export-minimal", "no-export-clean"]))[0]}
    for key in own:
        key.block = block = blocks[key.key.fingerprint]
        key.known = {s.identity for s in block.direct}
        key.uid_bodies = {p.body for p, _ in block.uids}
        key.subkey_bodies = {p.body for p, _ in block.subkeys}
        for _, sigs in block.uids + block.subkeys:
            key.known |= {s.identity for s in sigs}


IMPORTED = "imported"
ALREADY = "already in your keyring"


@dataclass
class Cert:
    """A certification of one of the user's UIDs by another key, found in a mail."""

    where: str
    own: OwnKey
    uid: packets.Packet
    sig: Sig
    signer: Optional[Key] = None
    outcome: str = ""           # IMPORTED, ALREADY or why it was not imported
    problem: bool = False       # the outcome is a failure the user may want to fix

    def skip(self, reason: str, problem: bool = False) -> None:
        self.outcome, self.problem = reason, problem

    @property
    def check_id(self) -> tuple:
        """How gpg's --check-sigs listing names this certification."""
        return (self.own.key.fingerprint, namehash(self.uid), self.sig.issuer,
                self.sig.created, self.sig.sig_type)


SIG_NAMES = {KEY_REVOCATION: "a revocation of your whole key",
             DIRECT_KEY: "a direct-key signature on your key",
             SUBKEY_REVOCATION: "a revocation of your subkey"}


class Sorter:
    """Sorts the packets of the keys found into candidates and things left out."""

    def __init__(self, own: Sequence[OwnKey]):
        self.own = {k.key.fingerprint: k for k in own}
        self.certs: List[Cert] = []
        self.skipped: List[Item] = []
        self.seen: Set[tuple] = set()
        self.skipped_seen: Set[Tuple[str, str]] = set()
        self.revoked: Dict[tuple, int] = {}     # (key, uid, issuer) -> newest revocation

    def add(self, where: str, data: bytes) -> None:
        blocks, loose = read_blocks(data)
        for sig in loose:       # a revocation certificate, or stray signatures
            if sig.sig_type == KEY_REVOCATION and any(sig.issuer == k.key.long_id
                                                      for k in self.own.values()):
                self.skip(where, "a revocation certificate for your key %s: not imported "
                          "(import it yourself only to revoke your key)" % sig.issuer)
            else:
                self.skip(where, "a signature without a key (type 0x%02x): not imported"
                          % (sig.sig_type & 0xFF))
        for block in blocks:
            self.block(where, block)

    def skip(self, where: str, text: str) -> None:
        if (where, text) not in self.skipped_seen:
            self.skipped_seen.add((where, text))
            self.skipped.append(Item(where, text))

    def limit(self, where: str, certs_before: int, skipped_before: int) -> Optional[str]:
        """Keep a flooded key from swamping the run: too many certifications in one
        message are all dropped (returns why), too many other items are summed up."""
        left_out = len(self.skipped) - skipped_before
        if left_out > MAX_ITEMS:
            del self.skipped[skipped_before + MAX_ITEMS:]
            self.skipped.append(Item(where, "and %d more things like these"
                                     % (left_out - MAX_ITEMS)))
        count = len(self.certs) - certs_before
        if count <= MAX_CERTS:
            return None
        del self.certs[certs_before:]
        return "%d certifications of your user IDs (a flooded key?): none was read" % count

    def block(self, where: str, block: Block) -> None:
        if block.primary.tag == TAG_SECRET_KEY:
            self.skip(where, "secret key material (never imported)")
            return
        if not block.fingerprint:
            self.skip(where, "a key in a format caffpy does not read (version %d)"
                      % (block.primary.body[:1] or b"\0")[0])
            return
        own = self.own.get(block.fingerprint)
        if own is None:
            uids = [uid_text(p) for p, _ in block.uids[:1]]
            self.skip(where, "the key %s%s is not yours: nothing of it was imported"
                      % (block.fingerprint, " (%s)" % uids[0] if uids else ""))
            return
        for sig in block.direct:
            if sig.identity not in own.known:
                other = "a signature of type 0x%02x on your key" % (sig.sig_type & 0xFF)
                self.skip(where, "%s: not imported" % SIG_NAMES.get(sig.sig_type, other))
        for subkey, sigs in block.subkeys:
            if subkey.body not in own.subkey_bodies:
                self.skip(where, "a subkey your key %s does not have: not imported"
                          % own.key.fingerprint)
                continue
            for sig in sigs:
                if sig.identity not in own.known:
                    self.skip(where, "%s: not imported" % SIG_NAMES.get(
                        sig.sig_type, "a new signature on a subkey of yours"))
        for uid, sigs in block.uids:
            if uid.body not in own.uid_bodies:
                self.skip(where, "a user ID your key %s does not have: \"%s\": not imported"
                          % (own.key.fingerprint, uid_text(uid)))
                continue
            for sig in sigs:
                self.signature(where, own, uid, sig)

    def signature(self, where: str, own: OwnKey, uid: packets.Packet, sig: Sig) -> None:
        text = uid_text(uid)
        if sig.version == 4 and sig.issuer == own.key.long_id:
            if sig.identity in own.known:
                pass
            elif sig.sig_type == packets.CERT_REVOCATION:
                self.skip(where, "a revocation of your user ID \"%s\": not imported" % text)
            else:
                self.skip(where, "a new self-signature on your user ID \"%s\" (it could change "
                          "its preferences or expiry): not imported" % text)
            return
        if sig.sig_type == packets.CERT_REVOCATION and sig.identity not in own.known:
            place = (own.key.fingerprint, uid.body, sig.issuer)
            self.revoked[place] = max(self.revoked.get(place, 0), sig.created)
            self.skip(where, "a revocation by %s of a certification of \"%s\": not imported "
                      "(its signer publishes it)" % (sig.issuer or "an unnamed key", text))
            return
        if sig.sig_type not in packets.CERTIFICATION_TYPES:
            if sig.identity not in own.known:
                self.skip(where, "a signature of type 0x%02x on \"%s\": not imported"
                          % (sig.sig_type & 0xFF, text))
            return
        seen = (own.key.fingerprint, uid.body, sig.identity)
        if seen in self.seen:
            return
        self.seen.add(seen)
        cert = Cert(where, own, uid, sig)
        self.certs.append(cert)
        if sig.identity in own.known:
            cert.outcome = ALREADY
        elif sig.version != 4:
            cert.skip("an old (version %d) signature" % sig.version)
        elif not sig.issuer:
            cert.skip("it does not say which key made it")
        elif not sig.exportable:
            cert.skip("a local certification, meant never to leave its signer's keyring")

    def revoke_check(self) -> None:
        """A certification whose signer revoked it in the same mails stays out."""
        for cert in self.certs:
            place = (cert.own.key.fingerprint, cert.uid.body, cert.sig.issuer)
            if not cert.outcome and self.revoked.get(place, -1) >= cert.sig.created:
                cert.skip("its signer revoked it (the revocation came with it)")


def find_signers(user_gpg: Gpg, certs: Sequence[Cert]) -> None:
    """Each candidate's signer, from the user's keyring only (never from a mail)."""
    ids = sorted({c.sig.signer_id for c in certs if c.sig.signer_id})
    listing = []
    for start in range(0, len(ids), 200):   # a flooded key names thousands: keep argv short
        listing += user_gpg.list_keys(ids[start:start + 200])
    for cert in certs:
        wanted = cert.sig.issuer_fpr
        matches = [k for k in listing if (k.fingerprint == wanted if wanted
                                          else k.long_id == cert.sig.issuer)]
        if len(matches) == 1:
            cert.signer = matches[0]
        if cert.outcome:
            continue
        if not matches:
            cert.skip("the signer's key is not in your keyring: get it (gpg --recv-keys %s) "
                      "and run caffpy receive again" % cert.sig.signer_id, problem=True)
        elif len(matches) > 1:
            cert.skip("%d keys in your keyring have the key ID %s"
                      % (len(matches), cert.sig.issuer), problem=True)
        elif matches[0].validity == "r":
            cert.skip("the signer's key is revoked")


# -- checking and importing ------------------------------------------------------------


def cert_data(own: OwnKey, certs: Sequence[Cert]) -> bytes:
    """The user's key as their keyring has it, cut to the certified user IDs with their
    self-signatures (gpg drops a user ID without one), plus the given certifications."""
    out = [own.block.primary.raw]
    for uid, sigs in own.block.uids:
        new = [c.sig.packet.raw for c in certs if c.own is own and c.uid.body == uid.body]
        if new:
            out.append(uid.raw)
            out += [s.packet.raw for s in sigs if s.issuer == own.key.long_id]
            out += new
    return b"".join(out)


def parse_check_sigs(listing: bytes) -> Dict[tuple, Tuple[str, str]]:
    """check_id -> (validity, class) from a --with-colons --check-sigs listing."""
    found: Dict[tuple, Tuple[str, str]] = {}
    fpr, uid, want_fpr = "", "", False
    for line in listing.split(b"\n"):
        fields = [f.decode("ascii", "replace") for f in line.split(b":")]
        record = fields[0]
        if record == "pub":
            want_fpr, uid = True, ""
        elif record == "fpr" and want_fpr and len(fields) > 9:
            fpr, want_fpr = fields[9].upper(), False
        elif record == "sub":
            want_fpr, uid = False, ""
        elif record in ("uid", "uat") and len(fields) > 7:
            uid = fields[7].upper()
        elif record == "sig" and uid and len(fields) > 10 and fields[5].isdigit():
            try:
                sig_type = int(fields[10][:2], 16)
            except ValueError:
                continue
            check_id = (fpr, uid, fields[4].upper(), int(fields[5]), sig_type)
            found[check_id] = (fields[1], fields[10])
    return found


def verify(user_gpg: Gpg, binary: str, own: Sequence[OwnKey], certs: Sequence[Cert]) -> None:
    """Let gpg check each candidate, in a keyring holding only the user's keys (their
    self-signatures) and the signers' keys, both from the user's keyring."""
    pending = [c for c in certs if not c.outcome]
    if not pending:
        return
    keys = user_gpg.export([k.key.fingerprint for k in own], options=["export-minimal"])
    keys += user_gpg.export(sorted({c.signer.fingerprint for c in pending}),
                            options=["export-minimal"])
    # Two candidates gpg would list alike (same signer, time and type on one UID,
    # e.g. a forgery next to the real one) are checked in different keyrings.
    rounds: List[List[Cert]] = []
    for cert in pending:
        slot = next((r for r in rounds if all(c.check_id != cert.check_id for c in r)), None)
        if slot is None:
            rounds.append([cert])
        else:
            slot.append(cert)
    for batch in rounds:
        verdicts = _check_in_throwaway_home(binary, own, keys, batch)
        for cert in batch:
            validity, sig_class = verdicts.get(cert.check_id, ("", ""))
            if validity == "!" and sig_class.endswith("x"):
                continue
            if validity == "!":
                cert.skip("a local certification, meant never to leave its signer's keyring")
            elif validity == "-":
                cert.skip("bad signature: it was not made by the key it names", problem=True)
            else:
                cert.skip("gpg could not check it%s"
                          % (" (validity %s)" % printable(validity) if validity else ""),
                          problem=True)


def _check_in_throwaway_home(binary: str, own: Sequence[OwnKey], keys: bytes,
                             batch: Sequence[Cert]) -> Dict[tuple, Tuple[str, str]]:
    home = tempfile.mkdtemp(prefix="caffpy-")
    try:
        # --no-autostart: nothing here needs a gpg-agent, so none is left running.
        gpg = Gpg(home, binary, extra_args=["--no-autostart"])
        data = keys + b"".join(cert_data(k, batch) for k in own)
        gpg.run(["--import"], input=data, check=False, what="checking certifications")
        listing = gpg.run(LIST_OPTS + ["--check-sigs", "--"] + [k.key.fingerprint for k in own],
                          check=False, what="checking certifications").stdout
        return parse_check_sigs(listing)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def import_certs(user_gpg: Gpg, own: Sequence[OwnKey], certs: Sequence[Cert]) -> None:
    """Import the verified certifications, then confirm each with a fresh export."""
    accepted = [c for c in certs if not c.outcome]
    if not accepted:
        return
    progress.note("importing %d certification(s) into your keyring" % len(accepted))
    data = b"".join(cert_data(k, accepted) for k in own)
    result = user_gpg.run(IMPORT_ARGS, input=data, check=False,
                          what="importing the certifications into your keyring")
    refresh(user_gpg, own)
    for cert in accepted:
        if cert.sig.identity in cert.own.known:
            cert.outcome = IMPORTED
        else:
            cert.skip("gpg did not store it (gpg exit status %d)" % result.returncode,
                      problem=True)


# -- a run -------------------------------------------------------------------------


@dataclass
class Report:
    own: List[OwnKey]
    keyring: str
    messages: int = 0
    with_keys: int = 0
    certs: List[Cert] = field(default_factory=list)
    skipped: List[Item] = field(default_factory=list)
    problems: List[Item] = field(default_factory=list)
    internal_errors: int = 0

    @property
    def imported(self) -> List[Cert]:
        return [c for c in self.certs if c.outcome == IMPORTED]

    @property
    def exit_code(self) -> int:
        if self.internal_errors:
            return EX_SOFTWARE
        if self.problems or any(c.problem for c in self.certs):
            return EX_DATAERR
        return EX_OK

    def render(self, publishing: bool = False) -> str:
        lines = ["Read %d message%s, %d with OpenPGP key data, for your key%s:"
                 % (self.messages, "" if self.messages == 1 else "s", self.with_keys,
                    "" if len(self.own) == 1 else "s")]
        lines += ["  " + k.name for k in self.own]
        for signer, certs in self._by_signer():
            lines += ["", "Certifications by %s" % signer]
            for cert in certs:
                lines.append("  %-16s %s" % (cert.outcome + ":" if cert.outcome in
                                             (IMPORTED, ALREADY) else "not imported:",
                                             uid_text(cert.uid)))
                if cert.outcome not in (IMPORTED, ALREADY):
                    lines.append("      %s; in %s" % (cert.outcome, cert.where))
        if self.skipped:
            lines += ["", "Left out (only new certifications of your user IDs are imported):"]
            lines += ["  %s: %s" % (i.where, i.text) for i in self.skipped]
        if self.problems:
            lines += ["", "Could not be read:"]
            lines += ["  %s: %s" % (i.where, i.text) for i in self.problems]
        signers = {c.signer.fingerprint for c in self.imported if c.signer}
        lines.append("")
        if self.imported:
            lines.append("Imported %d new certification%s by %d signer%s into your keyring (%s)."
                         % (len(self.imported), "" if len(self.imported) == 1 else "s",
                            len(signers), "" if len(signers) == 1 else "s", self.keyring))
            if not publishing:
                lines += ["", publish_advice(self.own)]
        else:
            lines.append("No new certifications: nothing was imported.")
        return "\n".join(lines)

    def _by_signer(self) -> List[Tuple[str, List[Cert]]]:
        groups: Dict[str, List[Cert]] = {}
        names: Dict[str, str] = {}
        for cert in self.certs:
            if cert.signer is not None:
                name = cert.signer.fingerprint
                uids = [u for u in cert.signer.uids if u.usable and not u.is_attribute]
                names[name] = "%s, key %s" % (uids[0].shown if uids else "a key without "
                                              "user ID", cert.signer.fingerprint)
            else:
                name = cert.sig.signer_id or "?"
                names[name] = "the unknown key %s" % name if cert.sig.signer_id \
                    else "a key that does not name itself"
            groups.setdefault(name, []).append(cert)
        rank = {IMPORTED: 0, ALREADY: 1}
        return [(names[n], sorted(groups[n], key=lambda c: rank.get(c.outcome, 2)))
                for n in groups]


def receive(user_gpg: Gpg, keyids: Sequence[str], binary: str,
            paths: Optional[Sequence[str]]) -> Report:
    """Read the mails, import what may be imported; paths None reads nothing."""
    own = own_keys(user_gpg, keyids)
    report = Report(own, user_gpg.homedir or os.path.expanduser("~/.gnupg"))
    sorter = Sorter(own)
    for message in read_messages(paths) if paths is not None else []:
        report.messages += 1
        progress.step("reading mails", report.messages, 0)
        where = message.where
        try:
            who = sender(message.data)
            where += " (from %s)" % who if who else ""
            if len(message.data) > MAX_MESSAGE:
                report.problems.append(Item(where, "larger than %d MiB; not read"
                                            % (MAX_MESSAGE // 1024 // 1024)))
                continue
            finder = _Finder(user_gpg)
            parsed = email.message_from_bytes(message.data, policy=email.policy.compat32)
            finder.entity(parsed, 0)
            if not finder.found and not finder.problems and _defects(parsed):
                finder.problems.append("broken MIME structure (%s); no key data found in it"
                                       % ", ".join(sorted(_defects(parsed))))
            report.problems += [Item(where, text) for text in finder.problems]
            report.with_keys += bool(finder.found)
            certs_before, skipped_before = len(sorter.certs), len(sorter.skipped)
            for data in finder.found:
                try:
                    sorter.add(where, data)
                except packets.PacketError as error:
                    report.problems.append(Item(where, "damaged key data: %s" % error))
            flooded = sorter.limit(where, certs_before, skipped_before)
            if flooded:
                report.problems.append(Item(where, flooded))
        except GpgError as error:
            report.problems.append(Item(where, str(error).split("\n")[0]))
        except RecursionError:      # the email parser itself recurses per MIME level
            report.problems.append(Item(where, "MIME parts nested too deep to read"))
        except Exception:       # a bug: one mail must not stop the others
            log.debug("reading %s failed", where, exc_info=True)
            report.internal_errors += 1
            report.problems.append(Item(where, "internal error while reading it (a bug in "
                                               "caffpy; run with --debug for details)"))
    sorter.revoke_check()
    find_signers(user_gpg, sorter.certs)
    verify(user_gpg, binary, own, sorter.certs)
    import_certs(user_gpg, own, sorter.certs)
    progress.clear()
    report.certs, report.skipped = sorter.certs, sorter.skipped
    return report


# -- publishing ----------------------------------------------------------------------


def publish_advice(own: Sequence[OwnKey]) -> str:
    fpr = own[0].key.fingerprint if own else "FINGERPRINT"
    address = next((read_address(u.text).address for k in own for u in k.key.uids
                    if u.usable and not u.is_attribute and read_address(u.text).address),
                   None) or "you@example.org"
    return "\n".join([
        "Others see them only once you publish your key:",
        "  - keyserver.ubuntu.com (and the other Hockeypuck keyservers) still carries",
        "    certifications made by others:",
        "        caffpy receive --publish        (or: gpg --keyserver %s --send-keys %s)"
        % (DEFAULT_KEYSERVER, fpr),
        "    Note that gpg fetches keys from keyservers with their self-signatures only,",
        "    unless the one fetching sets keyserver-options no-self-sigs-only.",
        "  - keys.openpgp.org publishes only the user IDs whose address you verified",
        "    there, and certifications made by others only once you approve them",
        "    (first-party approval, for example: sq key approvals update).",
        "  - Web Key Directory (WKD): your mail domain's web server serves your key file;",
        "    export it with the certifications for the address it is looked up by:",
        "        gpg --export --export-filter keep-uid='mbox = %s' %s > KEYFILE"
        % (address, fpr),
        "    (where it goes: /usr/lib/gnupg/gpg-wks-client --print-wkd-url %s;" % address,
        "    gpg-wks-client --install-key leaves the certifications out).",
        "  - Or send your updated key to the people who need it: gpg --armor --export %s"
        % fpr])


def publish(user_gpg: Gpg, fingerprints: Sequence[str], keyserver: str) -> bool:
    """gpg --send-keys of the user's keys to keyserver; prints what happened."""
    if not re.match(r"^[A-Za-z0-9][!-~]{0,250}$", keyserver) or not fingerprints:
        print("\nNot published: %r is not a keyserver (hkps://host or hkp://host:port)."
              % printable(keyserver))
        return False
    if "keys.openpgp.org" in keyserver:
        print("\nNote: keys.openpgp.org shows certifications made by others only once you "
              "approve them there (for example: sq key approvals update).")
    try:
        result = user_gpg.run(["--keyserver", keyserver, "--send-keys", "--"] + list(fingerprints),
                              check=False, timeout=SEND_TIMEOUT, what="sending your keys")
    except GpgError as error:
        print("\nNot published: %s" % str(error).split("\n")[0])
        return False
    if result.returncode != 0:
        said = result.stderr.decode("utf-8", "replace").strip().split("\n")[-1:]
        print("\nNot published: gpg --send-keys to %s failed (exit status %d): %s"
              % (keyserver, result.returncode, printable(said[0] if said else "")))
        return False
    print("\nSent your key%s %s to %s."
          % ("" if len(fingerprints) == 1 else "s", ", ".join(fingerprints), keyserver))
    return True
