"""--party-list ORIGINAL: the ticked list on stdin checked against the organiser's file.

The digests of the original's bytes must equal the digits written into each
checksum field of the ticked copy, and the copy may differ from the original
only in its tick boxes, its checksum fields and gpgsigs' annotations.

The expected digests never come from caffpy: they are the values published
with the lists (tests/data/README, shared party-list README), the values
gpgsigs wrote into 02 in 2005, or what `gpg --print-md` says.
"""

import os
import re

import pytest

from caffpy import partylist
from caffpy.errors import DataError
from conftest import DATA, certifications_by, participant
from partylist_kit import field_lines, fill, gpg_digest, organiser_list, spaced, ticked_copy

ORIG_07 = "07-gpgparticipants-generated.txt"
TICKED_10 = "10-gpgparticipants-generated-ticked-caff-input.txt"
ALLALGOS_08 = "08-gpgparticipants-generated-allalgos.txt"

# gpg --print-md of 08, as published in the party-lists README.
DIGESTS_08 = {
    "MD5": "DCFC5C7B2ADA0D18FE5FD52C22EA4169",
    "SHA1": "1E5FC35A0399D69108889A3ED1764FBFF6371387",
    "SHA224": "A2B5191651D0D9EE20B1A404095AAF557BFDDDFD811E9C8BBD913E6C",
    "SHA256": "4403D76ADF1989CC848FDA790A82A31A00F55129FE8125592AB61553972F988B",
    "SHA384": "AE3809392122457C4B92E1B57606DA8DF185139439F6A7E0862C42451FF7993C"
              "CD7F77BF47A3E5C762EF451B590B3719",
    "SHA512": "A46369151E54ECB5E4DD45963E0B594AA3A8D2312504129F616A0582383C6631"
              "9FFC549934ECB64552508D3A0C1FFC7D131220DB95825077719D26A40D15EA7B",
    "RIPEMD160": "17F78A9C45FEF21F6BF2A3540B74FDC4A85A0174",
}


def data(name) -> bytes:
    with open(os.path.join(DATA, name), "rb") as handle:
        return handle.read()


def text(name) -> str:
    return data(name).decode("utf-8")


def fill_on_one_line(content: str, algorithm: str, digits: str) -> str:
    """The whole digest on the label line, as someone typing it in might do."""
    lines = content.split("\n")
    indexes = field_lines(lines, algorithm)
    box = re.search(r"\[(.)\]\s*$", lines[indexes[-1]]).group(1)
    groups = " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))
    lines[indexes[0]] = "%s Checksum: %s  [%s]" % (algorithm, groups, box)
    del lines[indexes[0] + 1:indexes[-1] + 1]
    return "\n".join(lines)


def tick_all(content: str) -> str:
    return content.replace("[ ]", "[x]")


def filled_08(position_preserving=True) -> str:
    content = text(ALLALGOS_08)
    for algorithm, digits in DIGESTS_08.items():
        content = (fill if position_preserving else fill_on_one_line)(content, algorithm, digits)
    return tick_all(content)


def refused(original: bytes, copy: str, name="ksp-test.txt") -> str:
    with pytest.raises(DataError) as error:
        partylist.verify_against_original(original, copy, name)
    return str(error.value)


# -- what must pass -------------------------------------------------------------------------

def test_gpgsigs_annotated_ticked_list_matches_the_original():
    # 10 is 07 after gpgsigs 2.11 (checksums filled, uid lines tagged, a line
    # "[33] incoming signatures" and a legend added), ticked by hand.
    assert partylist.verify_against_original(data(ORIG_07), text(TICKED_10), ORIG_07) == []
    assert partylist.parse(text(TICKED_10)).checksums == ["SHA256", "RIPEMD160"]


def test_linuxtag_2005_copy_filled_by_gpgsigs_2005_matches():
    # gpgsigs wrote MD5 and SHA1 of 01 into 02 in 2005, with its own spacing.
    warnings = partylist.verify_against_original(
        data("01-linuxtag2005.txt"), tick_all(text("02-linuxtag2005-gpgsigs-annotated.txt")),
        "ksp-lt2k5.txt")
    assert len(warnings) == 1 and "SHA-2" in warnings[0]


@pytest.mark.parametrize("position_preserving", [True, False],
                         ids=["gpgsigs-layout", "one-line-each"])
def test_every_algorithm_and_blank_layout(position_preserving):
    copy = filled_08(position_preserving)
    assert partylist.verify_against_original(data(ALLALGOS_08), copy, "ksp.txt") == []
    assert partylist.parse(copy).checksums == list(DIGESTS_08)


@pytest.mark.parametrize("name", ["03-fosdem2013-header.txt", "04-fosdem2014-header.txt"])
def test_fosdem_headers_with_multi_line_blanks(name):
    # RIPEMD160 split over two lines and SHA256 over three (2014), 8-underscore groups (2013).
    original = data(name)
    copy = text(name)
    for algorithm in ("RIPEMD160", "SHA256"):
        copy = fill(copy, algorithm, gpg_digest(algorithm, original))
    assert partylist.verify_against_original(original, tick_all(copy), name) == []


@pytest.mark.parametrize("prefix", ["", "     "], ids=["column-0", "indented"])
def test_list_without_block_numbers(prefix):
    def unnumbered(content):
        return re.sub(r"^\d{3}  \[", prefix + "[", content, flags=re.M)
    original = unnumbered(text(ORIG_07))
    assert "\n%s[ ] Fingerprint OK" % prefix in original and "\n002  [" not in original
    original = original.encode("utf-8")
    copy = fill(fill(unnumbered(text(ORIG_07)), "SHA256", gpg_digest("SHA256", original)),
                "RIPEMD160", gpg_digest("RIPEMD160", original))
    copy = re.sub(r"\[ \]$", "[x]", copy, flags=re.M).replace(
        "%s[ ] Fingerprint OK        [ ] ID OK\npub   ed25519 2026-12-04 [SC]\n      7031" % prefix,
        "%s[x] Fingerprint OK        [x] ID OK\npub   ed25519 2026-12-04 [SC]\n      7031" % prefix)
    assert partylist.verify_against_original(original, copy, "ksp.txt") == []
    assert partylist.parse(copy).fingerprints == ["70314BC51C622B6E2EC0C70BA8633C3CC3D41DE4"]


def test_editor_line_ends_and_trailing_blanks_in_the_copy_are_accepted():
    copy = text(TICKED_10)
    assert "P A R T Y \n" in copy        # the title line ends in a blank
    copy = "\r\n".join(line.rstrip(" ") for line in copy.split("\n"))
    assert partylist.verify_against_original(data(ORIG_07), copy, ORIG_07) == []


# -- what must be refused -------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", list(DIGESTS_08))
def test_one_wrong_digit_names_the_algorithm_and_line(algorithm):
    digits = DIGESTS_08[algorithm]
    wrong = digits[:-1] + ("0" if digits[-1] != "0" else "1")
    copy = tick_all(fill(text(ALLALGOS_08), algorithm, wrong))
    for other, value in DIGESTS_08.items():
        if other != algorithm:
            copy = fill(copy, other, value)
    label = next(n for n, line in enumerate(copy.split("\n"), 1)
                 if line.startswith(algorithm + " Checksum:"))
    message = refused(data(ALLALGOS_08), copy)
    assert "the %s checksum field on line %d" % (algorithm, label) in message
    assert "does not match" in message and "digit %d" % len(digits) in message
    assert digits not in message            # the right value is never shown to copy in


def test_blank_checksum_field_is_refused():
    copy = tick_all(text(ORIG_07))          # ticked, but nothing written in
    message = refused(data(ORIG_07), copy)
    assert "SHA256 checksum field on line 25" in message and "is blank" in message


def test_checksum_with_digits_missing_is_refused():
    copy = text(TICKED_10).replace("73CC 9494", "73CC ____")
    assert "has 60 hex digits, but a SHA256 checksum has 64" in refused(data(ORIG_07), copy)


@pytest.mark.parametrize("change", [
    lambda b: b.replace(b"P A R T Y \n", b"P A R T Y\n"),   # trailing blank stripped
    lambda b: b.replace(b"\n", b"\r\n"),                     # CRLF line ends
    lambda b: b[:-1],                                        # final newline removed
    lambda b: b.replace(b"A138 1469", b"A138 1468"),         # one fingerprint digit
], ids=["trailing-blank", "crlf", "final-newline", "fingerprint"])
def test_original_changed_by_a_byte_no_longer_matches(change):
    # The digests are of every byte as published (README table of changes to 07).
    original = change(data(ORIG_07))
    assert original != data(ORIG_07)
    assert "SHA256 checksum field on line 25" in refused(original, text(TICKED_10))


def test_annotated_copy_given_as_the_original_is_explained():
    # 09 is 07 after gpgsigs: its own fields hold 07's digests, not its own.
    message = refused(data("09-gpgparticipants-generated-gpgsigs.txt"), text(TICKED_10),
                      "ksp-annotated.txt")
    assert "does not match" in message and "not an annotated copy" in message


def copy_lines():
    return text(TICKED_10).split("\n")


def line_no(lines, needle):
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_changed_fingerprint_in_the_copy_names_the_line():
    lines = copy_lines()
    number = line_no(lines, "7031 4BC5 1C62 2B6E 2EC0")
    lines[number - 1] = lines[number - 1].replace("1DE4", "1DE5")
    message = refused(data(ORIG_07), "\n".join(lines))
    assert "its line %d reads '      7031 4BC5" % number in message
    assert "differs from ksp-test.txt in more than its tick boxes" in message


def test_changed_user_id_in_the_copy_is_refused():
    lines = copy_lines()
    number = line_no(lines, "(S) Carol Example <carol@example.org>")
    lines[number - 1] = "(S) Carol Example <carol@evil.test>"
    assert "its line %d reads '(S) Carol Example <carol@evil.test>'" % number in \
        refused(data(ORIG_07), "\n".join(lines))


def test_block_inserted_into_the_copy_is_refused():
    lines = copy_lines()
    at = line_no(lines, "003  [x] Fingerprint OK")
    block = ["003  [x] Fingerprint OK        [x] ID OK", "pub   ed25519 2026-12-04 [SC]",
             "      AAAA BBBB CCCC DDDD EEEE  FFFF 0000 1111 2222 3333",
             "uid                      Mallory <mallory@evil.test>", "", "_" * 79, ""]
    lines[at - 1:at - 1] = block
    # Its header equals the original's next one but for the ticks: the line after differs.
    assert "its line %d reads 'pub   ed25519 2026-12-04 [SC]' where line %d" % (at + 1, at) in \
        refused(data(ORIG_07), "\n".join(lines))


def test_block_removed_from_the_copy_is_refused():
    lines = copy_lines()
    start = line_no(lines, "002  [x] Fingerprint OK")
    end = line_no(lines, "003  [x] Fingerprint OK")
    del lines[start - 1:end - 1]
    assert "its line %d reads '003  [x]" % start in refused(data(ORIG_07), "\n".join(lines))


def test_ticked_block_appended_after_the_end_is_refused():
    copy = text(TICKED_10) + ("\n005  [x] Fingerprint OK        [x] ID OK\n"
                              "      AAAA BBBB CCCC DDDD EEEE  FFFF 0000 1111 2222 3333\n")
    assert "goes on after the end of ksp-test.txt" in refused(data(ORIG_07), copy)


def test_fingerprint_hidden_in_the_legend_is_refused():
    # After "Legend:" gpgsigs writes only its legend; a block there would be read as a key.
    copy = text(TICKED_10).replace(
        "Signature types:\n",
        "Signature types:\n005  [x] Fingerprint OK        [x] ID OK\n"
        "      AAAA BBBB CCCC DDDD EEEE  FFFF 0000 1111 2222 3333\n")
    assert "005  [x] Fingerprint OK" in copy
    assert "goes on after the end" in refused(data(ORIG_07), copy)


def test_box_filled_with_more_than_one_character_is_refused():
    copy = text(TICKED_10).replace("002  [x] Fingerprint OK", "002  [xx] Fingerprint OK")
    assert "its line 42 reads '002  [xx]" in refused(data(ORIG_07), copy)


def test_copy_missing_a_checksum_field_is_refused():
    copy = re.sub(r"RIPEMD160 Checksum:[^\n]*\n", "", text(TICKED_10))
    assert "has no RIPEMD160 checksum field" in refused(data(ORIG_07), copy)


def test_original_without_checksum_line_cannot_be_checked():
    table = data("05-pyconuk2017-table.txt")    # PyCon UK: a Markdown table, separate SHA256SUM
    assert "has no checksum line" in refused(table, table.decode("utf-8"))


def test_unknown_algorithm_is_named():
    original = text(ORIG_07).replace("RIPEMD160 Checksum:", "TIGER192 Checksum:").encode()
    copy = fill(original.decode("utf-8"), "SHA256", gpg_digest("SHA256", original))
    copy = tick_all(fill(copy, "TIGER192", "0123456789" * 4))
    assert "TIGER192 checksum, which caffpy cannot compute" in refused(original, copy)


# -- through the command line ------------------------------------------------------------------

@pytest.fixture
def listed(party, caff):
    """(caff, people on the list, path of the organiser's file)."""
    people = [participant(party, kind) for kind in ("multi", "plain", "unicode")]
    path = os.path.join(caff.base, "ksp-verify.txt")
    with open(path, "wb") as handle:
        handle.write(organiser_list((p.fingerprint, ["%s <%s>" % (p.name, a) for a in p.mailable])
                                    for p in people))
    return caff, people, path


def run_with_list(caff, party, path, copy, *extra):
    return caff.run("--batch", "-m", "yes", "-R", "--key-file", party.key_file,
                    "--party-list", path, *extra, stdin=copy)


def test_verified_list_certifies_and_mails_the_ticked_keys(listed, party):
    caff, people, path = listed
    with open(path, "rb") as handle:
        original = handle.read()
    status, _, err = run_with_list(caff, party, path, ticked_copy(original, [1, 3]))
    assert status == 0, err
    assert "Traceback" not in err and "not compared" not in err
    assert sorted(c.recipient for c in caff.sendmail.calls()) == \
        sorted(people[0].mailable + people[2].mailable)
    assert {k for k, _ in certifications_by(caff.caffhome, party.signers)} == \
        {people[0].fingerprint[-16:], people[2].fingerprint[-16:]}


def test_wrong_checksum_stops_before_anything_is_fetched_or_signed(listed, party):
    caff, people, path = listed
    with open(path, "rb") as handle:
        original = handle.read()
    right = gpg_digest("SHA256", original)
    wrong = right[:20] + ("0" if right[20] != "0" else "1") + right[21:]
    status, _, err = run_with_list(caff, party, path,
                                   ticked_copy(original, [1, 2, 3], {"SHA256": wrong}))
    assert status == 65, err
    assert "SHA256 checksum field on line 8" in err and "digit 21" in err
    assert "Traceback" not in err
    assert caff.sendmail.calls() == []
    assert certifications_by(caff.caffhome, party.signers) == []


def test_key_smuggled_into_the_copy_is_refused(listed, party):
    caff, people, path = listed
    with open(path, "rb") as handle:
        original = handle.read()
    # The copy lists a fourth key the organiser's list does not have.
    extra = participant(party, "photo")
    copy = ticked_copy(original, [1]).decode("utf-8") + (
        "\n004  [x] Fingerprint OK        [x] ID OK\npub   ed25519 2026-12-04 [SC]\n"
        "      %s\n\n%s\n" % (spaced(extra.fingerprint), "_" * 79))
    status, _, err = run_with_list(caff, party, path, copy.encode("utf-8"))
    assert status == 65, err
    assert "goes on after the end of %s" % path in err
    assert caff.sendmail.calls() == []


def test_party_list_with_key_ids_is_a_usage_error(listed, party):
    caff, people, path = listed
    status, _, err = run_with_list(caff, party, path, b"", people[0].fingerprint)
    assert status == 64 and "give no key IDs with it" in err


def test_party_list_with_nothing_on_standard_input(listed, party):
    caff, people, path = listed
    status, _, err = run_with_list(caff, party, path, b"")
    assert status == 65 and "the list on standard input is empty" in err
    assert caff.sendmail.calls() == []


def test_unreadable_party_list_file(listed, party):
    caff, people, path = listed
    with open(path, "rb") as handle:
        copy = ticked_copy(handle.read(), [1])
    status, _, err = run_with_list(caff, party, path + ".missing", copy)
    assert status == 65 and "cannot read the party list" in err and "Traceback" not in err


def test_without_party_list_the_unchecked_checksums_are_pointed_out(listed, party):
    caff, people, path = listed
    with open(path, "rb") as handle:
        copy = ticked_copy(handle.read(), [2])
    status, _, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", party.key_file,
                              stdin=copy)
    assert status == 0, err
    assert "were not compared with the list file" in err and "--party-list" in err
