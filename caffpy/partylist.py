"""Reading a ticked gpgparticipants party list (caff's rules).

A key counts only when its block says both "[x] Fingerprint OK" and "[x] ID OK"
and is not commented out with '#'. The list's checksum line(s) must be ticked
too: the ticks say the list on paper is the one the organiser published.
"""

import re
from dataclasses import dataclass, field
from typing import List

from caffpy.errors import DataError
from caffpy.text import printable

_CHECKSUM = re.compile(r"^(\S+)\s+Checksum:\s+[_ 0-9A-F]+(?:\s+\[(.)\])?\s*$", re.I)
_CHECKSUM_CONT = re.compile(r"^\s+[_ 0-9A-F]+(?:\s+\[(.)\])?\s*$", re.I)
_BLOCK = re.compile(r"^(#*)\d*\s+\[(.)\] Fingerprint(?:\(s\)|s)? OK\s+\[(.)\] ID OK\s*$")
_SEPARATOR = re.compile(r"^(-+|_+)\s*$")
# gpg 1.x shows a v3 fingerprint as 16 pairs, with two spaces after the eighth.
_V3 = re.compile(r"^ {5,}(?:Key fingerprint = )?([0-9A-F]{32}|(?:[0-9A-F]{2} ){7}[0-9A-F]{2} {1,2}"
                 r"(?:[0-9A-F]{2} ){7}[0-9A-F]{2})\s*$")
_FPR = re.compile(r"^ {5,}(?:Key fingerprint = )?([0-9A-F]{40}|(?:[0-9A-F]{4} ){4}[0-9A-F]{4}  "
                  r"(?:[0-9A-F]{4} ){4}[0-9A-F]{4})\s*$")
TICKED = ("x", "X")


@dataclass
class PartyList:
    fingerprints: List[str] = field(default_factory=list)   # ticked keys, in list order
    skipped: List[str] = field(default_factory=list)        # keys in the list not ticked
    checksums: List[str] = field(default_factory=list)      # algorithms with a ticked box
    warnings: List[str] = field(default_factory=list)


def parse(text: str) -> PartyList:
    result = PartyList()
    good_block = False
    pending_checksum = None      # algorithm whose tick box is on a later line
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if pending_checksum:
            if not line.strip():
                continue
            cont = _CHECKSUM_CONT.match(line)
            if not cont:
                raise DataError("party list, line %d: expected the rest of the %s checksum, "
                                "found %r" % (number, pending_checksum, printable(line, 80)))
            if cont.group(1) is None:
                continue
            _tick_checksum(result, pending_checksum, cont.group(1), number)
            pending_checksum = None
            continue
        checksum = _CHECKSUM.match(line)
        if checksum:
            if checksum.group(2) is None:
                pending_checksum = checksum.group(1).upper()
            else:
                _tick_checksum(result, checksum.group(1).upper(), checksum.group(2), number)
            continue
        if _SEPARATOR.match(line):
            good_block = False
            continue
        block = _BLOCK.match(line)
        if block:
            good_block = not block.group(1) and block.group(2) in TICKED \
                and block.group(3) in TICKED
            continue
        if _V3.match(line):
            result.warnings.append("line %d: ignoring a v3 fingerprint" % number)
            continue
        fpr = _FPR.match(line)
        if fpr:
            fingerprint = fpr.group(1).replace(" ", "")
            if good_block:
                if fingerprint not in result.fingerprints:
                    result.fingerprints.append(fingerprint)
            else:
                result.skipped.append(fingerprint)
    if pending_checksum:
        raise DataError("party list: the %s checksum has no tick box" % pending_checksum)
    if not result.checksums:
        result.warnings.append("the party list has no checksum line, so nothing shows it "
                               "is the list the organiser published")
    return result


def _tick_checksum(result: PartyList, algorithm: str, box: str, number: int) -> None:
    if box not in TICKED:
        raise DataError("party list, line %d: the %s checksum is not ticked as verified; "
                        "compare it with the one read out at the party and tick it [x]"
                        % (number, printable(algorithm, 20)))
    result.checksums.append(algorithm)
