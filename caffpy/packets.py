"""Just enough OpenPGP (RFC 4880) packet handling to cut a key into per-UID copies.

gpg exports all keys of a run in one call; this module splits that output into
keyblocks and builds, for each UID, a copy with only the primary key, that UID,
its self-signatures and the signer's certifications. Doing it here instead of
in gpg edit sessions costs no process per UID and never passes UID text (which
may hold any byte) to gpg as an argument.
"""

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from caffpy.errors import GpgError

TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
TAG_TRUST = 12
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
TAG_USER_ATTRIBUTE = 17

CERTIFICATION_TYPES = (0x10, 0x11, 0x12, 0x13)
CERT_REVOCATION = 0x30

SUBPACKET_CREATION_TIME = 2
SUBPACKET_EXPORTABLE = 4
SUBPACKET_ISSUER = 16
SUBPACKET_ISSUER_FPR = 33


class PacketError(GpgError):
    pass


@dataclass
class Packet:
    tag: int
    raw: bytes       # header and body, re-emitted unchanged
    body: bytes


@dataclass
class Signature:
    packet: Packet
    sig_type: int
    issuer: str          # long key ID, upper-case hex ('' if absent)
    created: int
    exportable: bool = True     # False: a local certification (gpg --lsign-key)


@dataclass
class UidBlock:
    """A UID or photo ID packet and the signatures that follow it."""

    packet: Packet
    signatures: List[Signature] = field(default_factory=list)

    @property
    def namehash(self) -> str:
        return hashlib.new("ripemd160", self.packet.body).hexdigest().upper()

    @property
    def is_attribute(self) -> bool:
        return self.packet.tag == TAG_USER_ATTRIBUTE


@dataclass
class KeyBlock:
    primary: Packet
    uids: List[UidBlock] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return v4_fingerprint(self.primary.body)

    def uid_by_hash(self, namehash: str) -> Optional[UidBlock]:
        for uid in self.uids:
            if uid.namehash == namehash:
                return uid
        return None


def v4_fingerprint(key_body: bytes) -> str:
    if not key_body or key_body[0] != 4:
        raise PacketError("key packet version %s is not supported"
                          % (key_body[0] if key_body else "?"))
    return hashlib.sha1(b"\x99" + struct.pack(">H", len(key_body)) + key_body).hexdigest().upper()


def split_packets(data: bytes) -> Iterator[Packet]:
    pos = 0
    while pos < len(data):
        start = pos
        ctb = data[pos]
        if not ctb & 0x80:
            raise PacketError("malformed OpenPGP data at byte %d" % pos)
        if ctb & 0x40:                      # new format header
            tag = ctb & 0x3F
            first = _byte(data, pos + 1)
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length = ((first - 192) << 8) + _byte(data, pos + 2) + 192
                pos += 3
            elif first == 255:
                length = struct.unpack(">I", data[pos + 2:pos + 6])[0]
                pos += 6
            else:
                raise PacketError("partial body length in a key packet")
        else:                               # old format header
            tag = (ctb >> 2) & 0x0F
            length_type = ctb & 0x03
            if length_type == 3:
                raise PacketError("indeterminate packet length in a key")
            size = 1 << length_type
            length = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
            pos += 1 + size
        if pos + length > len(data):
            raise PacketError("truncated OpenPGP packet")
        yield Packet(tag, data[start:pos + length], data[pos:pos + length])
        pos += length


def _byte(data: bytes, index: int) -> int:
    if index >= len(data):
        raise PacketError("truncated OpenPGP packet header")
    return data[index]


def parse_signature(packet: Packet) -> Signature:
    body = packet.body
    if len(body) >= 7 and body[0] == 3:
        return Signature(packet, body[2], body[7:15].hex().upper(),
                         struct.unpack(">I", body[3:7])[0])
    if len(body) < 6 or body[0] != 4:
        return Signature(packet, -1, "", 0)
    sig_type = body[1]
    hashed_len = struct.unpack(">H", body[4:6])[0]
    hashed = body[6:6 + hashed_len]
    rest = 6 + hashed_len
    unhashed_len = struct.unpack(">H", body[rest:rest + 2])[0] if len(body) >= rest + 2 else 0
    unhashed = body[rest + 2:rest + 2 + unhashed_len]
    issuer, created, exportable = "", 0, True
    for area in (hashed, unhashed):
        for sub_type, value in subpackets(area):
            if sub_type == SUBPACKET_ISSUER and len(value) == 8 and not issuer:
                issuer = value.hex().upper()
            elif sub_type == SUBPACKET_ISSUER_FPR and len(value) == 21 and not issuer:
                issuer = value[-8:].hex().upper()
            elif sub_type == SUBPACKET_CREATION_TIME and len(value) == 4 and area is hashed:
                created = struct.unpack(">I", value)[0]
            elif sub_type == SUBPACKET_EXPORTABLE and value == b"\x00" and area is hashed:
                exportable = False
    return Signature(packet, sig_type, issuer, created, exportable)


def subpackets(area: bytes) -> Iterator[Tuple[int, bytes]]:
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            if pos + 1 >= len(area):
                return
            length = ((first - 192) << 8) + area[pos + 1] + 192
            pos += 2
        else:
            length = int.from_bytes(area[pos + 1:pos + 5], "big")
            pos += 5
        if length == 0 or pos + length > len(area):
            return
        yield area[pos] & 0x7F, area[pos + 1:pos + length]
        pos += length


def parse_keyblocks(data: bytes) -> Dict[str, KeyBlock]:
    """Split an exported keyring into keyblocks, keyed by primary fingerprint."""
    blocks: Dict[str, KeyBlock] = {}
    block: Optional[KeyBlock] = None
    current_uid: Optional[UidBlock] = None
    for packet in split_packets(data):
        if packet.tag == TAG_PUBLIC_KEY:
            block = KeyBlock(packet)
            blocks[block.fingerprint] = block
            current_uid = None
        elif block is None:
            raise PacketError("key data does not start with a public key")
        elif packet.tag in (TAG_USER_ID, TAG_USER_ATTRIBUTE):
            current_uid = UidBlock(packet)
            block.uids.append(current_uid)
        elif packet.tag == TAG_PUBLIC_SUBKEY:
            current_uid = None      # subkeys and their bindings are never copied
        elif packet.tag == TAG_SIGNATURE and current_uid is not None:
            current_uid.signatures.append(parse_signature(packet))
    return blocks


def keyblock_bytes(data: bytes) -> List[bytes]:
    """Binary key data cut into its keyblocks, each exactly as it came."""
    blocks: List[List[bytes]] = []
    for packet in split_packets(data):
        if packet.tag == TAG_PUBLIC_KEY:
            blocks.append([])
        elif not blocks:
            raise PacketError("key data does not start with a public key")
        blocks[-1].append(packet.raw)
    return [b"".join(block) for block in blocks]


def standing_certifications(uid: UidBlock, signer_ids: Iterable[str]) -> Dict[str, Signature]:
    """Signers (long key IDs) -> their newest certification of uid, unless revoked since."""
    latest: Dict[str, Signature] = {}
    wanted = set(signer_ids)
    for sig in uid.signatures:
        if sig.issuer in wanted and (sig.sig_type in CERTIFICATION_TYPES
                                     or sig.sig_type == CERT_REVOCATION):
            if sig.issuer not in latest or sig.created >= latest[sig.issuer].created:
                latest[sig.issuer] = sig
    return {issuer: sig for issuer, sig in latest.items() if sig.sig_type != CERT_REVOCATION}


def certifiers(uid: UidBlock, signer_ids: Iterable[str]) -> Dict[str, int]:
    """Signers (long key IDs) with a standing certification on uid -> its time."""
    return {issuer: sig.created
            for issuer, sig in standing_certifications(uid, signer_ids).items()}


def uid_copy(block: KeyBlock, uids: List[UidBlock], signer_ids: Iterable[str]) -> bytes:
    """The key reduced to the given UIDs, each with its self-signatures and our certifications."""
    own_id = block.fingerprint[-16:]
    signers = set(signer_ids)
    out = [block.primary.raw]
    for uid in uids:
        out.append(uid.packet.raw)
        for sig in uid.signatures:
            if sig.sig_type in CERTIFICATION_TYPES and (sig.issuer == own_id or sig.issuer in signers):
                out.append(sig.packet.raw)
    return b"".join(out)


def _crc24_table() -> List[int]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return table


_CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """The CRC-24 of RFC 4880 section 6.1, for the armor checksum."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[((crc >> 16) ^ byte) & 0xFF]
    return crc


def armor(data: bytes, kind: str = "PUBLIC KEY BLOCK") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii")
    return "\n".join(["-----BEGIN PGP %s-----" % kind, ""] + lines
                     + ["=" + checksum, "-----END PGP %s-----" % kind, ""])


def dearmor(block: bytes) -> bytes:
    """The binary data of one armored block; ValueError when it is damaged."""
    lines = block.replace(b"\r", b"").split(b"\n")[1:]
    while lines and b":" in lines[0]:       # armor headers (Version:, Comment:)
        lines.pop(0)
    body, checksum = [], None
    for line in (line.strip() for line in lines):
        if line.startswith(b"-----END"):
            break
        if line.startswith(b"=") and len(line) == 5:
            checksum = line[1:]
        elif line:
            body.append(line)
    try:
        data = base64.b64decode(b"".join(body), validate=True)
        expected = base64.b64decode(checksum, validate=True) if checksum else None
    except binascii.Error:
        raise ValueError("invalid base64")
    if not data:
        raise ValueError("no data in it")
    if expected is not None and expected != crc24(data).to_bytes(3, "big"):
        raise ValueError("wrong checksum")
    return data
