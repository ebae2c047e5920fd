"""Party lists for the --party-list and key-discovery tests: the organiser's file
laid out as gpgparticipants does, and a participant's filled-in, ticked copy.

The checksum digits always come from `gpg --print-md`, never from caffpy.
"""

import re
import subprocess
from typing import Dict, Iterable, Optional, Sequence


def gpg_digest(algorithm: str, content: bytes) -> str:
    """What gpg --print-md says (the oracle), as hex without blanks."""
    out = subprocess.run(["gpg", "--batch", "--with-colons", "--print-md", algorithm],
                         input=content, capture_output=True, check=True).stdout.decode()
    return out.split(":")[2]


def field_lines(lines: Sequence[str], algorithm: str) -> range:
    """Indexes of the lines of one checksum field: its label line to its tick box."""
    start = next(i for i, line in enumerate(lines) if line.startswith(algorithm + " Checksum:"))
    end = next(i for i in range(start, len(lines)) if re.search(r"\[.\]\s*$", lines[i]))
    return range(start, end + 1)


def fill(content: str, algorithm: str, digits: str) -> str:
    """Write digits into the blanks of a field, one per underscore (as gpgsigs 2.x does)."""
    lines = content.split("\n")
    indexes = field_lines(lines, algorithm)
    assert sum(lines[i].count("_") for i in indexes) == len(digits), algorithm
    feed = iter(digits)
    for i in indexes:
        lines[i] = re.sub("_", lambda m: next(feed), lines[i])
    return "\n".join(lines)


def spaced(fingerprint: str) -> str:
    groups = [fingerprint[i:i + 4] for i in range(0, 40, 4)]
    return " ".join(groups[:5]) + "  " + " ".join(groups[5:])


def organiser_list(people: Iterable[tuple]) -> bytes:
    """people: (fingerprint, [uid text, ...]); blank checksum fields, nothing ticked."""
    lines = ["Saturday, December 12, 2026;  18:00",
             "                                       Example Organizer <organizer@example.org>",
             "", "", "                C A F F P Y   T E S T   P A R T Y ", "", "",
             "SHA256 Checksum: ____ ____   ____ ____   ____ ____   ____ ____", "",
             "                 ____ ____   ____ ____   ____ ____   ____ ____              [ ]",
             "", "RIPEMD160 Checksum: ____ ____ ____ ____ ____    ____ ____ ____ ____ ____    [ ]",
             "", ""]
    for number, (fingerprint, uids) in enumerate(people, 1):
        lines += ["", "%03d  [ ] Fingerprint OK        [ ] ID OK" % number,
                  "pub   ed25519 2026-12-04 [SC]", "      " + spaced(fingerprint)]
        lines += ["uid                      %s" % uid for uid in uids]
        lines += ["", "_" * 79]
    return ("\n".join(lines) + "\n").encode("utf-8")


def ticked_copy(original: bytes, tick_numbers: Iterable[int],
                digests: Optional[Dict[str, str]] = None) -> bytes:
    """The participant's copy: checksums written in (from gpg) and ticked, some blocks ticked."""
    copy = original.decode("utf-8")
    for algorithm in ("SHA256", "RIPEMD160"):
        digits = (digests or {}).get(algorithm) or gpg_digest(algorithm, original)
        copy = fill(copy, algorithm, digits)
    copy = re.sub(r"\[ \]$", "[x]", copy, flags=re.M)        # the checksum boxes
    for number in tick_numbers:
        copy = copy.replace("%03d  [ ] Fingerprint OK        [ ] ID OK" % number,
                            "%03d  [x] Fingerprint OK        [x] ID OK" % number)
    return copy.encode("utf-8")
