"""Ticked gpgparticipants party lists, as piped into caffpy (caff's rules).

tests/data/ holds published party lists and lists made with signing-party's
gpgparticipants, byte for byte (see tests/data/README).
"""

import os
import re

import pytest

from caffpy import partylist
from caffpy.errors import DataError
from conftest import DATA, certifications_by, participant


def read(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return handle.read()


TICKED = "10-gpgparticipants-generated-ticked-caff-input.txt"
# Blocks 002 and 003 of that list are the ones with both boxes ticked.
BLOCK_002 = "70314BC51C622B6E2EC0C70BA8633C3CC3D41DE4"
BLOCK_003 = "8F34BBED35AC64D197D7F57F7CA2EBB0ACC82B12"


def test_ticked_list_yields_exactly_the_fully_ticked_keys():
    result = partylist.parse(read(TICKED))
    assert result.fingerprints == [BLOCK_002, BLOCK_003]
    # 001 (nothing ticked) and 004 (ID not ticked) are left out, but seen.
    assert len(result.skipped) == 2
    assert not set(result.skipped) & set(result.fingerprints)
    assert result.checksums == ["SHA256", "RIPEMD160"]


@pytest.mark.parametrize("name, change, algorithm", [
    ("07-gpgparticipants-generated.txt", None, "SHA256"),       # as published: nothing ticked
    ("01-linuxtag2005.txt", None, "MD5"),
    (TICKED, ("A9D0    [x]", "A9D0    [ ]"), "RIPEMD160"),       # one box left empty
    (TICKED, ("9494              [x]", "9494              [-]"), "SHA256"),
])
def test_unticked_checksum_is_an_error_naming_the_algorithm(name, change, algorithm):
    text = read(name)
    if change:
        assert change[0] in text
        text = text.replace(change[0], change[1])
    with pytest.raises(DataError, match=algorithm):
        partylist.parse(text)


def test_commented_block_is_ignored():
    text = read(TICKED)
    assert "\n002  [x] Fingerprint OK" in text
    result = partylist.parse(text.replace("\n002  [x]", "\n#002  [x]"))
    assert result.fingerprints == [BLOCK_003]


def tick_all(text):
    return text.replace("[ ]", "[x]")


def test_multi_line_checksums_with_blank_lines_are_accepted():
    # FOSDEM 2014: RIPEMD160 over two lines, SHA256 over three, blank lines between.
    assert partylist.parse(tick_all(read("04-fosdem2014-header.txt"))).checksums == \
        ["RIPEMD160", "SHA256"]
    # gpgparticipants with every algorithm: one- to four-line layouts.
    assert partylist.parse(tick_all(read("08-gpgparticipants-generated-allalgos.txt"))) \
        .checksums == ["MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "RIPEMD160"]


def test_multi_line_checksum_interrupted_by_other_text_is_an_error():
    text = tick_all(read("04-fosdem2014-header.txt"))
    text = re.sub(r"(SHA256 Checksum:[^\n]*\n)", r"\1this is not a checksum\n", text)
    with pytest.raises(DataError, match="SHA256"):
        partylist.parse(text)


def test_gpg1_key_fingerprint_lines():
    text = read("01-linuxtag2005.txt")
    spaced = re.findall(r"^ +Key fingerprint = ((?:[0-9A-F]{4} +){9}[0-9A-F]{4})$", text, re.M)
    expected = [re.sub(r"\s", "", f) for f in spaced]
    assert len(expected) == 7       # the eighth key has a v3 fingerprint
    assert partylist.parse(tick_all(text)).fingerprints == expected


def test_ticked_v3_fingerprint_is_reported_not_silently_dropped():
    # LinuxTag 2005, entry 003: gpg 1.x printed v3 fingerprints as 8 + 8 hex pairs.
    text = tick_all(read("01-linuxtag2005.txt"))
    assert "Key fingerprint = 09 9D 09 8F 89 52 24 12  FE C2 31 9D FE F8 5C 03" in text
    warnings = partylist.parse(text).warnings
    assert any("v3" in warning for warning in warnings), warnings


# -- through the command line ---------------------------------------------------------------

def spaced(fingerprint):
    groups = [fingerprint[i:i + 4] for i in range(0, 40, 4)]
    return " ".join(groups[:5]) + "  " + " ".join(groups[5:])


def party_list(entries):
    """A gpgparticipants-style list; entries = [(participant, fpr box, id box, comment)]."""
    lines = ["Saturday, December 12, 2026;  18:00", "",
             "                C A F F P Y   T E S T   P A R T Y ", "",
             "SHA256 Checksum: ____ ____   ____ ____   ____ ____   ____ ____", "",
             "                 ____ ____   ____ ____   ____ ____   ____ ____              [x]",
             "", "RIPEMD160 Checksum: ____ ____ ____ ____ ____    ____ ____ ____ ____ ____    [x]",
             "", ""]
    for number, (person, fpr_box, id_box, comment) in enumerate(entries, 1):
        lines += ["", "%s%03d  [%s] Fingerprint OK        [%s] ID OK"
                  % (comment, number, fpr_box, id_box),
                  "pub   ed25519 2026-12-04 [SC]",
                  "      " + spaced(person.fingerprint),
                  "uid                      " + person.name, "",
                  "_" * 79]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_party_list_on_stdin_mails_only_the_ticked_keys(caff, party):
    alice, bob, carol, frank, grace = (participant(party, kind) for kind in
                                       ("multi", "noaddr", "signonly", "plain", "unicode"))
    text = party_list([(alice, "x", "x", ""), (bob, "x", " ", ""), (carol, "x", "x", "#"),
                       (frank, "X", "X", ""), (grace, " ", " ", "")])
    status, _, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", party.key_file,
                              stdin=text)
    assert status == 0, err
    assert sorted(c.recipient for c in caff.sendmail.calls()) == \
        sorted(alice.mailable + frank.mailable)
    certified = {key for key, _ in certifications_by(caff.caffhome, party.signers)}
    assert certified == {alice.fingerprint[-16:], frank.fingerprint[-16:]}


def test_party_list_with_unticked_checksum_is_refused(caff, party):
    frank = participant(party, "plain")
    text = party_list([(frank, "x", "x", "")]).replace(b"[x]\n\nRIPEMD160", b"[ ]\n\nRIPEMD160")
    status, _, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", party.key_file,
                              stdin=text)
    assert status == 65, err
    assert "SHA256" in err and "Traceback" not in err
    assert caff.sendmail.calls() == []
