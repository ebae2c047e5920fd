"""Rendering untrusted text (user IDs from keys) safely for terminals and file names."""

import re
import unicodedata

# Control, format (bidi overrides, zero-width), line and paragraph separators,
# surrogates and unassigned code points never reach a terminal or a file name raw.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def decode_uid(raw: bytes) -> str:
    """Decode UID bytes as UTF-8; invalid bytes become U+FFFD."""
    return raw.decode("utf-8", "replace")


def printable(text: str, limit: int = 200) -> str:
    """Return text with every unsafe character shown as an escape, cut to limit."""
    out = []
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES or char == "\\":
            code = ord(char)
            out.append("\\x%02x" % code if code < 0x100 else "\\u%04x" % code)
        else:
            out.append(char)
    rendered = "".join(out)
    if len(rendered) > limit:
        rendered = rendered[: limit - 3] + "..."
    return rendered


def has_unsafe_chars(text: str) -> bool:
    return any(unicodedata.category(c) in _UNSAFE_CATEGORIES for c in text)


def filename_part(text: str, limit: int = 60) -> str:
    """A file-name-safe rendering: ASCII letters, digits and ._@+- only, bounded."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "_", text).strip("._-")
    return cleaned[:limit] or "uid"
