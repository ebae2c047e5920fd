"""Build OpenPGP keys packet by packet, for keys gpg's own commands refuse to make.

gpg --quick-add-uid accepts almost any UID text, but not NUL bytes, invalid
UTF-8 via argv in every shell, an already expired user ID, third-party
certifications by a throwaway key, or a key carrying somebody else's key as a
subkey. The tests need all of those, so this module writes RFC 4880 packets
directly (recipe: shared/notes/security.md, Appendix A):

    alice = Ed25519(seed=b"alice")                   # a v4 Ed25519 primary key
    key = build_key([b"Alice <alice@example.org>", b"A\\0<m@evil.test>"],
                    primary=alice, encrypt=True, expired=[1])
    key.public          # binary transferable public key (what gpg --export gives)
    key.armored()       # the same, ASCII-armored
    key.secret_armored()  # unprotected secret key: gpg --import it to decrypt mails
    key.fingerprint

Test-only dependency: python3-cryptography (Debian 12 package) for Ed25519 and
X25519 key pairs; caffpy itself does not use it.
"""

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# 2023-01-01T00:00:00Z: a fixed creation time makes fingerprints stable.
FIXED_TIME = 1672531200

TAG_SIGNATURE, TAG_SECRET_KEY, TAG_PUBLIC_KEY = 2, 5, 6
TAG_SECRET_SUBKEY, TAG_USER_ID, TAG_PUBLIC_SUBKEY = 7, 13, 14

ALGO_ECDH, ALGO_EDDSA = 18, 22
HASH_SHA256 = 8
OID_ED25519 = bytes.fromhex("2B06010401DA470F01")
OID_CV25519 = bytes.fromhex("2B060104019755010501")
KDF_SHA256_AES128 = bytes([3, 1, HASH_SHA256, 7])

SIG_GENERIC_CERT, SIG_POSITIVE_CERT, SIG_SUBKEY_BINDING = 0x10, 0x13, 0x18
SUB_CREATED, SUB_SIG_EXPIRES, SUB_KEY_FLAGS, SUB_ISSUER, SUB_ISSUER_FPR = 2, 3, 27, 16, 33
FLAGS_CERTIFY_SIGN, FLAGS_ENCRYPT = 0x03, 0x0C


# -- packet framing ----------------------------------------------------------------

def packet(tag: int, body: bytes) -> bytes:
    """A new-format packet (RFC 4880 4.2.2), any length."""
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + struct.pack(">I", n)
    return bytes([0xC0 | tag]) + length + body


def mpi(value: bytes) -> bytes:
    """A multiprecision integer: bit count, then the big-endian bytes without leading zeros."""
    value = value.lstrip(b"\0") or b"\0"
    return struct.pack(">H", (len(value) - 1) * 8 + value[0].bit_length()) + value


def subpacket(kind: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, kind]) + data


def split_packets(data: bytes) -> List[tuple]:
    """(tag, body) for each packet of binary OpenPGP data (new or old format headers)."""
    out, i = [], 0
    while i < len(data):
        ctb = data[i]
        i += 1
        if ctb & 0x40:
            tag, first = ctb & 0x3F, data[i]
            i += 1
            if first < 192:
                n = first
            elif first < 224:
                n, i = ((first - 192) << 8) + data[i] + 192, i + 1
            else:
                n, i = struct.unpack(">I", data[i:i + 4])[0], i + 4
        else:
            tag, size = (ctb >> 2) & 0x0F, 1 << (ctb & 3)
            n, i = int.from_bytes(data[i:i + size], "big"), i + size
        out.append((tag, data[i:i + n]))
        i += n
    return out


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(data: bytes, kind: str = "PUBLIC KEY BLOCK") -> bytes:
    text = base64.b64encode(data).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big")).decode("ascii")
    return ("\n".join(["-----BEGIN PGP %s-----" % kind, ""] + lines
                      + ["=" + crc, "-----END PGP %s-----" % kind, ""])).encode("ascii")


def dearmor(text: bytes) -> bytes:
    """Binary data of the first armored block in text."""
    lines = text.decode("ascii").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP"))
    body, seen_blank = [], False
    for line in lines[start + 1:]:
        line = line.strip()
        if not seen_blank:
            seen_blank = not line
            continue
        if line.startswith("=") or line.startswith("-----END"):
            break
        body.append(line)
    return base64.b64decode("".join(body))


def fingerprint_of(key_body: bytes) -> str:
    """v4 fingerprint of a public key packet body."""
    return hashlib.sha1(b"\x99" + struct.pack(">H", len(key_body)) + key_body).hexdigest().upper()


def _seed(label: bytes) -> bytes:
    """32 bytes derived from a label, with a non-zero first byte (MPIs drop leading zeros)."""
    digest = hashlib.sha256(b"caffpy-test:" + label).digest()
    return digest if digest[0] else b"\x01" + digest[1:]


# -- key material ----------------------------------------------------------------------

class Ed25519:
    """A v4 Ed25519 (EdDSA, algorithm 22) key pair with a fixed creation time."""

    def __init__(self, seed: bytes = b"", created: int = FIXED_TIME):
        self.seed = _seed(seed) if len(seed) != 32 or not seed[0] else seed
        self.created = created
        self._private = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.body = (bytes([4]) + struct.pack(">I", created) + bytes([ALGO_EDDSA])
                     + bytes([len(OID_ED25519)]) + OID_ED25519 + mpi(b"\x40" + public))
        self.fingerprint = fingerprint_of(self.body)
        self.key_id = self.fingerprint[-16:]

    def sign(self, digest: bytes) -> bytes:
        """EdDSA over the hash digest (as OpenPGP does); returns the two MPIs r, s."""
        signature = self._private.sign(digest)
        return mpi(signature[:32]) + mpi(signature[32:])

    def secret_body(self) -> bytes:
        secret = mpi(self.seed)
        return self.body + b"\0" + secret + struct.pack(">H", sum(secret) & 0xFFFF)


class Cv25519:
    """A v4 Curve25519 ECDH (algorithm 18) encryption key pair."""

    def __init__(self, seed: bytes = b"", created: int = FIXED_TIME):
        raw = bytearray(_seed(b"cv25519:" + seed))
        raw[0] &= 248           # clamp as X25519 does, so gpg's copy equals ours
        raw[31] = (raw[31] & 127) | 64
        self.native_secret = bytes(raw)
        self.created = created
        private = X25519PrivateKey.from_private_bytes(self.native_secret)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.body = (bytes([4]) + struct.pack(">I", created) + bytes([ALGO_ECDH])
                     + bytes([len(OID_CV25519)]) + OID_CV25519 + mpi(b"\x40" + public)
                     + KDF_SHA256_AES128)
        self.fingerprint = fingerprint_of(self.body)

    def secret_body(self) -> bytes:
        # gpg keeps the Curve25519 secret as a big-endian MPI: the native bytes reversed.
        secret = mpi(self.native_secret[::-1])
        return self.body + b"\0" + secret + struct.pack(">H", sum(secret) & 0xFFFF)


# -- signatures --------------------------------------------------------------------------

def _key_hash_material(key_body: bytes) -> bytes:
    return b"\x99" + struct.pack(">H", len(key_body)) + key_body


def signature(signer: Ed25519, sig_type: int, hashed_material: bytes, created: int,
              extra_hashed: bytes = b"") -> bytes:
    """A v4 signature packet by signer over hashed_material (already framed for hashing)."""
    hashed = (subpacket(SUB_CREATED, struct.pack(">I", created))
              + subpacket(SUB_ISSUER_FPR, b"\x04" + bytes.fromhex(signer.fingerprint))
              + extra_hashed)
    head = bytes([4, sig_type, ALGO_EDDSA, HASH_SHA256]) + struct.pack(">H", len(hashed)) + hashed
    digest = hashlib.sha256(hashed_material + head + b"\x04\xff"
                            + struct.pack(">I", len(head))).digest()
    unhashed = subpacket(SUB_ISSUER, bytes.fromhex(signer.key_id))
    return packet(TAG_SIGNATURE, head + struct.pack(">H", len(unhashed)) + unhashed
                  + digest[:2] + signer.sign(digest))


def uid_certification(target_body: bytes, uid: bytes, signer: Ed25519,
                      sig_type: int = SIG_GENERIC_CERT, created: Optional[int] = None,
                      expires_after: Optional[int] = None, key_flags: Optional[int] = None) -> bytes:
    """A certification of (target key, uid) by signer: a self-signature if signer is the target."""
    material = _key_hash_material(target_body) + b"\xb4" + struct.pack(">I", len(uid)) + uid
    extra = b""
    if key_flags is not None:
        extra += subpacket(SUB_KEY_FLAGS, bytes([key_flags]))
    if expires_after is not None:
        extra += subpacket(SUB_SIG_EXPIRES, struct.pack(">I", expires_after))
    return signature(signer, sig_type, material,
                     signer.created if created is None else created, extra)


def self_signature(primary: Ed25519, uid: bytes, created: Optional[int] = None,
                   expires_after: Optional[int] = None) -> bytes:
    return uid_certification(primary.body, uid, primary, SIG_POSITIVE_CERT, created,
                             expires_after, key_flags=FLAGS_CERTIFY_SIGN)


def subkey_binding(primary: Ed25519, subkey_body: bytes, flags: int = FLAGS_ENCRYPT,
                   created: Optional[int] = None) -> bytes:
    material = _key_hash_material(primary.body) + _key_hash_material(subkey_body)
    return signature(primary, SIG_SUBKEY_BINDING, material,
                     primary.created if created is None else created,
                     subpacket(SUB_KEY_FLAGS, bytes([flags])))


# -- whole keys --------------------------------------------------------------------------------

@dataclass
class CraftedKey:
    primary: Ed25519
    uids: List[bytes]
    public: bytes                       # binary transferable public key
    subkey: Optional[Cv25519] = None
    expired: List[int] = field(default_factory=list)   # indexes into uids

    @property
    def fingerprint(self) -> str:
        return self.primary.fingerprint

    @property
    def key_id(self) -> str:
        return self.primary.key_id

    def armored(self) -> bytes:
        return armor(self.public)

    def secret(self) -> bytes:
        """Unprotected transferable secret key (primary and, if any, the encryption subkey)."""
        out = []
        for tag, body in split_packets(self.public):
            if tag == TAG_PUBLIC_KEY and body == self.primary.body:
                out.append(packet(TAG_SECRET_KEY, self.primary.secret_body()))
            elif tag == TAG_PUBLIC_SUBKEY and self.subkey and body == self.subkey.body:
                out.append(packet(TAG_SECRET_SUBKEY, self.subkey.secret_body()))
            else:
                out.append(packet(tag, body))
        return b"".join(out)

    def secret_armored(self) -> bytes:
        return armor(self.secret(), "PRIVATE KEY BLOCK")


def build_key(uids: Sequence[bytes], primary: Optional[Ed25519] = None, encrypt: bool = True,
              expired: Iterable[int] = (), seed: bytes = b"") -> CraftedKey:
    """A key with each UID self-signed; UIDs whose index is in `expired` carry a
    self-signature that expired one day after the key was made (gpg lists them
    as expired). UIDs are bytes and may hold anything, NUL included."""
    primary = primary or Ed25519(seed or b"key:" + b"|".join(uids))
    expired = list(expired)
    parts = [packet(TAG_PUBLIC_KEY, primary.body)]
    for index, uid in enumerate(uids):
        parts.append(packet(TAG_USER_ID, uid))
        parts.append(self_signature(primary, uid,
                                    expires_after=86400 if index in expired else None))
    subkey = None
    if encrypt:
        subkey = Cv25519(primary.seed)
        parts.append(packet(TAG_PUBLIC_SUBKEY, subkey.body))
        parts.append(subkey_binding(primary, subkey.body))
    return CraftedKey(primary, list(uids), b"".join(parts), subkey, expired)


def expired_uid_key(name: str = "Expired Uid", seed: bytes = b"expired-uid") -> CraftedKey:
    """A valid key with an encryption subkey, one current UID and one EXPIRED UID.

    uids[0] = "<name> <current@example.org>" (valid, mailable),
    uids[1] = "<name> <expired@example.org>" (self-signature expired 2023-01-02).
    key.armored() is the public key; gpg --import key.secret_armored() into a
    throwaway home to decrypt the mails sent to it.
    """
    uids = [("%s <current@example.org>" % name).encode(),
            ("%s <expired@example.org>" % name).encode()]
    return build_key(uids, primary=Ed25519(seed), expired=[1])


def flood(target: CraftedKey, count: int, uid_index: int = 0,
          flooder: Optional[Ed25519] = None) -> bytes:
    """target's public key with `count` certifications of one UID by a throwaway key
    (CVE-2019-13050 style), inserted right after that UID's self-signature."""
    flooder = flooder or Ed25519(b"flooder")
    uid = target.uids[uid_index]
    certs = b"".join(uid_certification(target.primary.body, uid, flooder,
                                       created=FIXED_TIME + 1 + i) for i in range(count))
    out, seen_uid = [], -1
    for tag, body in split_packets(target.public):
        out.append(packet(tag, body))
        if tag == TAG_USER_ID:
            seen_uid += 1
        elif tag == TAG_SIGNATURE and seen_uid == uid_index and certs:
            out.append(certs)
            certs = b""
    return b"".join(out)


def flood_export(exported: bytes, uid: bytes, count: int,
                 flooder: Optional[Ed25519] = None) -> bytes:
    """Like flood(), for a key exported by gpg (binary): certifications of `uid`
    by a throwaway key are appended after that UID's packet and signatures."""
    flooder = flooder or Ed25519(b"flooder")
    packets_in = split_packets(exported)
    if (TAG_USER_ID, uid) not in packets_in:
        raise ValueError("the key has no user ID %r" % uid)
    primary_body = packets_in[0][1]
    key_created = struct.unpack(">I", primary_body[1:5])[0]
    certs = b"".join(uid_certification(primary_body, uid, flooder, created=key_created + 1 + i)
                     for i in range(count))
    out, in_target_uid, done = [], False, False
    for tag, body in packets_in:
        if in_target_uid and tag != TAG_SIGNATURE:
            out.append(certs)           # after the UID's own signatures
            done = True
        in_target_uid = not done and (tag == TAG_USER_ID and body == uid
                                      or in_target_uid and tag == TAG_SIGNATURE)
        out.append(packet(tag, body))
    if not done:                        # the UID's signatures end the key
        out.append(certs)
    return b"".join(out)


def smuggle(attacker: CraftedKey, victim_body: bytes, bind: bool = False) -> bytes:
    """attacker's key with the victim's public key packet re-tagged as a subkey.

    Without `bind` the bogus subkey has no binding signature (gpg drops it on
    import but its keyserver screener lets the key through); with `bind` the
    attacker signs a binding for it as an encryption subkey, which gpg keeps,
    so a listing shows the victim's fingerprint as a subkey of the attacker.
    """
    out = attacker.public + packet(TAG_PUBLIC_SUBKEY, victim_body)
    if bind:
        out += subkey_binding(attacker.primary, victim_body)
    return out
