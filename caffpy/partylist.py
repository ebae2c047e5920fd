"""Reading a ticked gpgparticipants party list (caff's rules), and checking it
against the organiser's original file.

A key counts only when its block says both "[x] Fingerprint OK" and "[x] ID OK"
and is not commented out with '#'. The list's checksum line(s) must be ticked
too: the ticks say the list on paper is the one the organiser published.

caff stops there; verify_against_original() does what the ticks promise: the
digest of the original file (every byte, as downloaded) must equal the digits
written into each checksum field of the ticked copy, and the copy may differ
from the original only in its tick boxes, its checksum fields and gpgsigs'
annotations. Everything here works on text and bytes; the caller reads files.
"""

import hashlib
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

from caffpy.errors import DataError
from caffpy.text import printable

# re.ASCII throughout: \s and \d must not match Unicode separators or digits.
_CHECKSUM = re.compile(r"^(\S+)\s+Checksum:(\s+[_ 0-9A-F]+?)(?:\s+\[(.)\])?\s*$",
                       re.I | re.ASCII)
_CHECKSUM_CONT = re.compile(r"^(\s+[_ 0-9A-F]+?)(?:\s+\[(.)\])?\s*$", re.I | re.ASCII)
# A block header, numbered ("001  [ ] Fingerprint OK ...") or not, maybe commented out.
_BLOCK = re.compile(r"^(#*)(?:\d+\s+|\s*)\[(.)\] Fingerprint(?:\(s\)|s)? OK\s+\[(.)\] ID OK\s*$",
                    re.ASCII)
_SEPARATOR = re.compile(r"^(-+|_+)\s*$", re.ASCII)
# gpg 1.x shows a v3 fingerprint as 16 pairs, with two spaces after the eighth.
_V3 = re.compile(r"^ {5,}(?:Key fingerprint = )?([0-9A-F]{32}|(?:[0-9A-F]{2} ){7}[0-9A-F]{2} {1,2}"
                 r"(?:[0-9A-F]{2} ){7}[0-9A-F]{2})\s*$", re.ASCII)
_FPR = re.compile(r"^ {5,}(?:Key fingerprint = )?([0-9A-F]{40}|(?:[0-9A-F]{4} ){4}[0-9A-F]{4}  "
                  r"(?:[0-9A-F]{4} ){4}[0-9A-F]{4})\s*$", re.ASCII)
# A user ID line: "uid   text" (gpg), "(S) text" (gpgsigs 2.x), "(S ) uid   text" (gpgsigs 2005).
_UID = re.compile(r"^(?:uid|\([^()]{0,16}\))\s+(?:uid\s+)?(\S.*?)\s*$", re.ASCII)
# gpgsigs puts a tag in front of each uid line and may add these lines and a legend.
_GPGSIGS_TAG = re.compile(r"^\([^()]{0,16}\) ", re.ASCII)
_GPGSIGS_ADDED = re.compile(r"^\[\d+\] incoming signatures$", re.ASCII)
_GPGSIGS_LEGEND = "Legend:"
TICKED = ("x", "X")

# The algorithms gpg --print-md knows, as hashlib names them. RIPEMD160 needs
# OpenSSL's legacy provider on some systems; Debian 12's Python has it.
DIGESTS = {"MD5": "md5", "SHA1": "sha1", "RIPEMD160": "ripemd160", "RMD160": "ripemd160",
           "SHA224": "sha224", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
_SHA2 = ("SHA224", "SHA256", "SHA384", "SHA512")
STDIN = "the list on standard input"


@dataclass
class PartyList:
    fingerprints: List[str] = field(default_factory=list)   # ticked keys, in list order
    skipped: List[str] = field(default_factory=list)        # keys in the list not ticked
    checksums: List[str] = field(default_factory=list)      # algorithms with a ticked box
    warnings: List[str] = field(default_factory=list)
    # fingerprint -> the user IDs its block shows (gpgsigs tags removed), ticked or not
    uids: Dict[str, List[str]] = field(default_factory=dict)


@dataclass
class Checksum:
    """One "ALGO Checksum:" field, which may span several lines."""

    algorithm: str      # upper case, as the list names it
    first: int          # index of its first line
    last: int           # index of the line holding its tick box
    digits: str         # the hex digits written into it, upper case ('' when blank)
    box: str            # the character in its tick box


def _lines(text: str) -> List[str]:
    # split("\n") only: splitlines() would also break at U+2028, U+0085 and friends.
    return [line.rstrip("\r") for line in text.split("\n")]


def _hex(text: str) -> str:
    return re.sub(r"[^0-9A-Fa-f]", "", text).upper()


def _segments(lines: List[str], where: str) -> List[Union[int, Checksum]]:
    """The list as line indexes, each checksum field (with its blank lines) as one item."""
    items: List[Union[int, Checksum]] = []
    pending: Optional[Checksum] = None       # a field whose tick box is on a later line
    for index, line in enumerate(lines):
        if pending:
            if not line.strip():
                continue
            cont = _CHECKSUM_CONT.match(line)
            if not cont:
                raise DataError("%s, line %d: expected the rest of the %s checksum, found %r"
                                % (where, index + 1, printable(pending.algorithm, 20),
                                   printable(line, 80)))
            pending.digits += _hex(cont.group(1))
            if cont.group(2) is not None:
                pending.last, pending.box = index, cont.group(2)
                items.append(pending)
                pending = None
            continue
        checksum = _CHECKSUM.match(line)
        if checksum:
            field_ = Checksum(checksum.group(1).upper(), index, index,
                              _hex(checksum.group(2)), checksum.group(3) or "")
            if checksum.group(3) is None:
                pending = field_
            else:
                items.append(field_)
            continue
        items.append(index)
    if pending:
        raise DataError("%s: the %s checksum has no tick box"
                        % (where, printable(pending.algorithm, 20)))
    return items


def parse(text: str) -> PartyList:
    result = PartyList()
    lines = _lines(text)
    good_block = False
    uids: Optional[List[str]] = None     # where the uid lines of the current block go
    for item in _segments(lines, "party list"):
        if isinstance(item, Checksum):
            _tick_checksum(result, item.algorithm, item.box, item.last + 1)
            continue
        number, line = item + 1, lines[item]
        if _SEPARATOR.match(line):
            good_block, uids = False, None
            continue
        block = _BLOCK.match(line)
        if block:
            good_block = not block.group(1) and block.group(2) in TICKED \
                and block.group(3) in TICKED
            uids = None
            continue
        if _V3.match(line):
            result.warnings.append("line %d: ignoring a v3 fingerprint" % number)
            uids = None
            continue
        fpr = _FPR.match(line)
        if fpr:
            fingerprint = fpr.group(1).replace(" ", "")
            if good_block:
                if fingerprint not in result.fingerprints:
                    result.fingerprints.append(fingerprint)
            else:
                result.skipped.append(fingerprint)
            uids = result.uids.setdefault(fingerprint, [])
            continue
        uid = _UID.match(line)
        if uid and uids is not None:
            uids.append(uid.group(1))
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


# -- checking the ticked copy against the organiser's original ------------------------

def digest(algorithm: str, data: bytes) -> str:
    """What gpg --print-md ALGORITHM prints for data, as upper-case hex without blanks."""
    name = DIGESTS.get(algorithm.upper())
    if name is None:
        raise DataError("the party list asks for a %s checksum, which caffpy cannot compute "
                        "(it knows %s)" % (printable(algorithm, 20), ", ".join(sorted(DIGESTS))))
    try:
        return hashlib.new(name, data).hexdigest().upper()
    except ValueError:
        raise DataError("this Python cannot compute %s checksums (OpenSSL without its legacy "
                        "provider?); check that one by hand with gpg --print-md" % algorithm)


def verify_against_original(original: bytes, annotated: str, name: str) -> List[str]:
    """Check the ticked copy (annotated) against the organiser's file (original, its bytes).

    Every checksum field of the original must be filled in on the copy with
    exactly the digest of the original's bytes, and the copy may differ from
    the original only in its tick boxes, its checksum fields and gpgsigs'
    annotations (uid tags, "[N] incoming signatures", a legend at the end).
    Returns warnings; raises DataError naming the algorithm or the line.
    """
    orig_lines = _trimmed(original.decode("utf-8", "surrogateescape"))
    copy_lines = _trimmed(annotated)
    if not copy_lines:
        raise DataError("%s is empty: give your ticked copy of %s there" % (STDIN, name))
    orig_items = _segments(orig_lines, name)
    copy_items = _segments(copy_lines, STDIN)
    algorithms = _check_digests(original, name, [i for i in orig_items if isinstance(i, Checksum)],
                                [i for i in copy_items if isinstance(i, Checksum)])
    _check_same_text(name, orig_lines, _skip_field_blanks(orig_items, orig_lines),
                     copy_lines, _skip_field_blanks(copy_items, copy_lines))
    if not any(a in _SHA2 for a in algorithms):
        return ["the party list has no checksum of the SHA-2 family, only %s: a list made to "
                "collide with the original could pass it" % ", ".join(algorithms)]
    return []


def _trimmed(text: str) -> List[str]:
    # Editors strip trailing blanks and change line ends; neither changes the meaning.
    lines = [line.rstrip(" \t") for line in _lines(text)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _check_digests(original: bytes, name: str, orig_fields: List[Checksum],
                   copy_fields: List[Checksum]) -> List[str]:
    if not orig_fields:
        raise DataError("%s has no checksum line (such as 'SHA256 Checksum: ____ ...'), so "
                        "there is nothing to check it against; --party-list needs the list "
                        "file gpgparticipants made" % name)
    unused = list(copy_fields)
    for orig in orig_fields:
        copy = next((f for f in unused if f.algorithm == orig.algorithm), None)
        if copy is None:
            raise DataError("%s has no %s checksum field, but %s has one (line %d)"
                            % (STDIN, orig.algorithm, name, orig.first + 1))
        unused.remove(copy)
        want = digest(orig.algorithm, original)
        where = "the %s checksum field on line %d of %s" % (orig.algorithm, copy.first + 1,
                                                             STDIN)
        if not copy.digits:
            raise DataError("%s is blank: write in the digits read out at the party (from your "
                            "paper copy), so that caffpy can compare them with %s"
                            % (where, name))
        if len(copy.digits) != len(want):
            raise DataError("%s has %d hex digits, but a %s checksum has %d: copy all of them "
                            "from your paper copy" % (where, len(copy.digits), orig.algorithm,
                                                      len(want)))
        if copy.digits != want:
            first = next(k for k, (a, b) in enumerate(zip(copy.digits, want)) if a != b)
            hint = ""
            if len(orig.digits) == len(want):
                hint = (" (%s has this field filled in itself: give the list exactly as "
                        "downloaded, not an annotated copy)" % name)
            raise DataError("%s does not match the %s checksum of %s (they differ from digit "
                            "%d on). Either %s is not the list whose checksum was read out at "
                            "the party, or the digits were copied wrong: compare them with "
                            "your paper copy%s" % (where, orig.algorithm, name, first + 1, name,
                                                   hint))
    return [f.algorithm for f in orig_fields]


def _skip_field_blanks(items: List[Union[int, Checksum]], lines: List[str]) -> list:
    """Drop the blank lines right after each checksum field: filling a field in may
    move its tick box to another line, and its blank lines along with it."""
    out, after_field = [], False
    for item in items:
        if isinstance(item, int) and after_field and not lines[item]:
            continue
        after_field = isinstance(item, Checksum)
        out.append(item)
    return out


def _check_same_text(name: str, orig_lines: List[str], orig_items: list,
                     copy_lines: List[str], copy_items: list) -> None:
    j = 0
    for orig in orig_items:
        while j < len(copy_items) and isinstance(copy_items[j], int) \
                and _GPGSIGS_ADDED.match(copy_lines[copy_items[j]]):
            j += 1
        if j == len(copy_items):
            raise DataError("%s ends before %s does: its line %d (%s) is missing"
                            % (STDIN, name, _line_of(orig), _shown(orig, orig_lines)))
        copy = copy_items[j]
        if isinstance(orig, Checksum) or isinstance(copy, Checksum):
            same = isinstance(orig, Checksum) and isinstance(copy, Checksum) \
                and orig.algorithm == copy.algorithm
        else:
            same = _same_but_boxes(orig_lines[orig], copy_lines[copy]) \
                or _tagged_uid(orig_lines[orig], copy_lines[copy])
        if not same:
            raise DataError("%s differs from %s in more than its tick boxes and checksums: its "
                            "line %d reads %s where line %d of %s reads %s"
                            % (STDIN, name, _line_of(copy), _shown(copy, copy_lines),
                               _line_of(orig), name, _shown(orig, orig_lines)))
        j += 1
    _check_trailer(name, copy_lines, copy_items[j:])


def _check_trailer(name: str, lines: List[str], rest: list) -> None:
    """After the original's last line, only a gpgsigs legend may follow, holding
    nothing the parser would act on."""
    rest = [item for item in rest if isinstance(item, Checksum) or lines[item]]
    if not rest:
        return
    legend = isinstance(rest[0], int) and lines[rest[0]] == _GPGSIGS_LEGEND
    for item in rest:
        if not legend or isinstance(item, Checksum) or _BLOCK.match(lines[item]) \
                or _FPR.match(lines[item]) or _V3.match(lines[item]):
            raise DataError("%s goes on after the end of %s: line %d reads %s"
                            % (STDIN, name, _line_of(item), _shown(item, lines)))


def _same_but_boxes(original: str, copy: str) -> bool:
    """Equal, except that each blank box "[ ]" of the original may hold any one character."""
    if len(original) != len(copy):
        return False
    return all(a == b or (0 < k and a == " " and original[k - 1:k + 2] == "[ ]")
               for k, (a, b) in enumerate(zip(original, copy)))


def _tagged_uid(original: str, copy: str) -> bool:
    """gpgsigs' uid annotation: "(S ) uid   text" (2005) or "(S) text" (2.x)."""
    tag = _GPGSIGS_TAG.match(copy)
    if not tag or not original.startswith("uid"):
        return False
    rest = copy[tag.end():]
    return rest == original or rest == re.sub(r"^uid\s+", "", original, flags=re.ASCII)


def _line_of(item: Union[int, Checksum]) -> int:
    return (item.first if isinstance(item, Checksum) else item) + 1


def _shown(item: Union[int, Checksum], lines: List[str]) -> str:
    if isinstance(item, Checksum):
        return "'%s Checksum: ...'" % printable(item.algorithm, 20)
    return "'%s'" % printable(lines[item], 100)
