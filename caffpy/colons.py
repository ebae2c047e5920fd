"""Parser for gpg's --with-colons key listings.

The listing carries user IDs written by strangers, so it is parsed as bytes and
split on LF only: a UID can hold any other byte sequence (U+2028, CR, NUL
escapes...), and a text-mode reader (as python-gnupg 0.4.9's list_keys uses)
can be made to split a line inside a UID and invent or hide keys.
"""

import re
from typing import List

from caffpy.keys import Key, Uid

# gpg writes LF, CR, NUL, BS, FF and VT as \n \r \0 \b \f \v, every other control
# byte, ":" and the backslash itself as \xHH; so a backslash always starts an escape.
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[nr0bfv])")
_NAMED = {b"n": b"\n", b"r": b"\r", b"0": b"\0", b"b": b"\b", b"f": b"\f", b"v": b"\v"}


def unescape(field: bytes) -> bytes:
    """Undo gpg's escaping of colons, backslashes and control bytes in a listing field."""
    return _ESCAPE.sub(lambda m: _NAMED.get(m.group(1)) or bytes([int(m.group(1)[1:], 16)]),
                       field)


def _int_or_none(field: bytes):
    return int(field) if field.isdigit() else None


def parse_keys(listing: bytes) -> List[Key]:
    """Return the keys of a --with-colons --fixed-list-mode listing, in order."""
    keys: List[Key] = []
    key = None
    expect_fpr_for = None   # 'pub' or 'sub': which record the next fpr line belongs to
    for line in listing.split(b"\n"):
        fields = line.rstrip(b"\r").split(b":")
        record = fields[0]
        if len(fields) < 10 and record in (b"pub", b"sec", b"sub", b"ssb", b"uid", b"uat"):
            continue    # truncated line: ignore rather than guess
        if record in (b"pub", b"sec"):  # sec: secret listings
            key = Key(fingerprint="", validity=fields[1].decode("ascii", "replace"),
                      capabilities=fields[11].decode("ascii", "replace") if len(fields) > 11 else "",
                      created=_int_or_none(fields[5]) or 0,
                      expires=_int_or_none(fields[6]))
            keys.append(key)
            expect_fpr_for = "pub"
        elif record in (b"sub", b"ssb") and key is not None:
            expect_fpr_for = "sub"
        elif record == b"fpr" and key is not None and len(fields) > 9:
            fpr = fields[9].decode("ascii", "replace").upper()
            if expect_fpr_for == "pub":
                key.fingerprint = fpr
            elif expect_fpr_for == "sub":
                key.subkey_fingerprints.append(fpr)
            expect_fpr_for = None
        elif record in (b"uid", b"uat") and key is not None:
            key.uids.append(Uid(
                serial=len(key.uids) + 1,
                is_attribute=record == b"uat",
                validity=fields[1].decode("ascii", "replace"),
                namehash=fields[7].decode("ascii", "replace").upper(),
                raw=b"" if record == b"uat" else unescape(fields[9]),
            ))
    return [k for k in keys if len(k.fingerprint) == 40]
