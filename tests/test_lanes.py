"""Certifying on two keyrings at once (caffpy/lanes.py): every valid user ID is
certified exactly once by each signer, every certification ends up in caffpy's
keyring, and a certification that cannot be copied there is reported, not lost
from sight: the next run makes it again, and mails nothing twice. With one key
file as the only source, the second keyring imports part of it: every key
still ends up in caffpy's keyring, and its newest version is the one certified."""

import collections
import os
import time

import pytest

from conftest import certifications_per_uid, decrypt, key_attachments, keyring_signatures, \
    list_packets, new_caff, new_dir, register_gpg_home, use_gpg_wrapper

from caffpy import demo, lanes
from test_interrupt import SLOW_GPG, finish_and_check, interrupt, start, wait_for

LOGGING_GPG = """#!/bin/sh
# gpg that records each call; with a pattern, the calls matching it fail.
echo "$*" >> "%(log)s"
case "$*" in %(fail)s) echo "gpg: made to fail by the test" >&2; exit 2;; esac
exec gpg "$@"
"""


@pytest.fixture(scope="module")
def big_party():
    """Three times make_party's mix: enough keys for the second keyring."""
    party = demo.make_party(new_dir(), 3 * len(demo.KINDS))
    register_gpg_home(party.user_home)
    register_gpg_home(party.participants_home)
    return party


def signing_homes(log):
    """The GNUPGHOME of each --quick-sign-key call, by its last path component."""
    with open(log) as handle:
        calls = [line.split() for line in handle if "--quick-sign-key" in line]
    return collections.Counter(os.path.basename(c[c.index("--homedir") + 1]) for c in calls)


def expected_certifications(caff):
    """(key, UID hash, signer) for every valid UID of every usable participant's key,
    by each signer."""
    signers = [s[-16:] for s in caff.party.signers]
    expected, key, usable = set(), None, False
    for line in keyring_signatures(caff.caffhome):
        fields = line.split(":")
        if fields[0] == "pub":
            key, usable = fields[4], fields[1] not in ("e", "r") and fields[4] not in signers
        elif fields[0] in ("uid", "uat") and usable and fields[1] != "r":
            expected.update((key, fields[7], signer) for signer in signers)
    return expected


def sent_once_each(caff):
    sent = collections.Counter(call.recipient for call in caff.sendmail.sent())
    assert sorted(sent) == sorted(caff.party.expected_mails())
    assert set(sent.values()) == {1}, sent


def mails_carry_both_certifications(caff):
    """Each encrypted mail opens with its recipient's key and carries the user ID with
    the recipient's address, certified by both signers: the keys certified in the
    second keyring went out whole, whichever keyring encrypted and exported them."""
    signers = {s[-16:] for s in caff.party.signers}
    encrypted = 0
    for call in caff.sendmail.sent():
        mail = call.parsed()
        if mail.get_content_type() != "multipart/encrypted":
            continue        # the key that cannot encrypt: its mail is plain, by design
        encrypted += 1
        packets = list_packets(key_attachments(decrypt(caff.party, mail))[0])
        uid = next(i for i, p in enumerate(packets) if p.kind == "user ID")
        assert "<%s>" % call.recipient in packets[uid].text
        issuers = {p.keyid[-16:] for p in packets[uid + 1:]
                   if p.kind == "signature" and 0x10 <= p.sigclass <= 0x13}
        assert signers <= issuers, (call.recipient, issuers)
    assert encrypted > len(caff.party.expected_mails()) // 2


@pytest.mark.parametrize("split", [True, False], ids=["split import", "one queue"])
def test_two_keyrings_certify_every_uid_once(big_party, split):
    """split: the key file is the only source, each keyring imports half of it and
    certifies its half; otherwise (the key file given twice) the second keyring is a
    copy of caffpy's and both take keys from one queue."""
    caff = new_caff(big_party)
    log = use_gpg_wrapper(caff, LOGGING_GPG, fail="__nothing__")
    code, out, err = caff.run_party(*([] if split else ["--key-file", big_party.key_file]))
    assert code == 0, err
    with open(log) as handle:
        lane_imports = [line for line in handle if "--import" in line and "/lane " in line]
    assert bool(lane_imports) == split
    homes = signing_homes(log)
    assert homes["lane"] > 0 and homes["gnupghome"] > 0, homes     # both did some
    usable = [p for p in big_party.participants if p.kind != "expired"]
    assert sum(homes.values()) == len(usable)                       # each key once
    assert not os.path.exists(os.path.join(caff.caffhome, "lane"))
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in big_party.signers])
    assert set(counts) == expected_certifications(caff)
    assert set(counts.values()) == {1}, counts
    sent_once_each(caff)
    mails_carry_both_certifications(caff)


def test_a_key_file_that_cannot_be_split_is_still_certified_on_both_keyrings(big_party):
    """Keys exported one by one and concatenated (cat *.asc > party.asc) are several
    armored blocks, imported whole into caffpy's keyring: the second keyring made
    for the split holds nothing, and a fresh copy made after the import signs."""
    path = os.path.join(new_dir(), "catted.asc")
    with open(path, "wb") as handle:
        for fingerprint in big_party.fingerprints:
            handle.write(demo.gpg(big_party.participants_home, "--armor", "--export", "--",
                                  fingerprint))
    caff = new_caff(big_party)
    log = use_gpg_wrapper(caff, LOGGING_GPG, fail="__nothing__")
    code, out, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", path,
                              *big_party.fingerprints)
    assert code == 0, err
    homes = signing_homes(log)
    assert homes["lane"] > 0 and homes["gnupghome"] > 0, homes
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in big_party.signers])
    assert set(counts) == expected_certifications(caff)
    assert set(counts.values()) == {1}, counts
    sent_once_each(caff)


def test_without_mailing_every_certification_still_reaches_caffpys_keyring(big_party):
    """-m no: no mail goes out, so the copy into caffpy's keyring happens at the end;
    every certification is there, the mails wait in the journal, and the next run
    (-m yes) sends them from the journal without certifying anything again."""
    caff = new_caff(big_party)
    log = use_gpg_wrapper(caff, LOGGING_GPG, fail="__nothing__")
    code, out, err = caff.run_party(mail="no")
    assert code == 0, err
    assert signing_homes(log)["lane"] > 0
    assert caff.sendmail.sent() == []
    assert not os.path.exists(os.path.join(caff.caffhome, "lane"))
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in big_party.signers])
    assert set(counts) == expected_certifications(caff)
    assert set(counts.values()) == {1}, counts
    signed_before = sum(signing_homes(log).values())
    code, out, err = caff.run_party()
    assert code == 0, err
    assert sum(signing_homes(log).values()) == signed_before     # nothing certified again
    sent_once_each(caff)


def test_a_failed_copy_back_is_reported_and_the_next_run_mails_nothing_twice(big_party):
    """The second keyring's certifications cannot be copied into caffpy's keyring:
    their mails went out (built from the second keyring), the problem is reported
    per key, and the next run certifies those keys again without mailing them again."""
    caff = new_caff(big_party)
    use_gpg_wrapper(caff, LOGGING_GPG, fail="*/lane\\ *export-local-sigs*--export*")
    code, out, err = caff.run_party()
    assert code == 69, err
    assert "Traceback" not in err
    assert "could not be copied from the second keyring into caffpy's keyring" in err
    assert "the next run certifies it again" in err
    sent_once_each(caff)
    assert not os.path.exists(os.path.join(caff.caffhome, "lane"))
    caff.write_config()                                     # the real gpg again
    code, out, err = caff.run_party()
    assert code == 0, err
    sent_once_each(caff)
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in big_party.signers])
    assert set(counts) == expected_certifications(caff)
    assert set(counts.values()) == {1}, counts


def test_local_certifications_are_handed_back_too(big_party):
    """gpg-sign-type l: gpg exports and imports local certifications only when asked."""
    caff = new_caff(big_party, "gpg-sign-type = l\n")
    code, out, err = caff.run_party()
    assert code == 0, err
    signers = [s[-16:] for s in big_party.signers]
    counts = certifications_per_uid(caff.caffhome, signers)
    assert set(counts) == expected_certifications(caff)
    assert set(counts.values()) == {1}, counts
    classes, key = set(), None
    for fields in (line.split(":") for line in keyring_signatures(caff.caffhome)):
        if fields[0] == "pub":
            key = fields[4]
        elif fields[0] == "sig" and fields[4] in signers and key not in signers:
            classes.add(fields[10])
    assert classes == {"10l"}, classes         # local certifications only, on their keys
    sent_once_each(caff)


def test_the_split_import_puts_every_key_in_caffpys_keyring(big_party):
    """With one key file as the only source, the second keyring imports part of it;
    those keys all come back, also when nothing is certified (no-sign)."""
    caff = new_caff(big_party)
    log = use_gpg_wrapper(caff, LOGGING_GPG, config="no-sign = yes\n", fail="__nothing__")
    code, out, err = caff.run_party()
    assert code == 0, err
    with open(log) as handle:
        imports = [line for line in handle if "--import-options import-clean" in line]
    assert any("/lane " in line for line in imports)          # the split took place
    keys = {line.split(":")[4] for line in keyring_signatures(caff.caffhome)
            if line.startswith("pub:")}
    assert {p.fingerprint[-16:] for p in big_party.participants} <= keys
    assert not os.path.exists(os.path.join(caff.caffhome, "lane"))
    assert caff.sendmail.sent() == []                          # nothing certified


def test_a_key_updated_since_the_last_run_gets_its_new_user_id_certified():
    """The second keyring's copy of a key (the whole key) decides, not the older one
    in caffpy's keyring: a user ID added since is certified and mailed, once."""
    party = demo.make_party(new_dir(), 2 * len(demo.KINDS))
    register_gpg_home(party.user_home)
    register_gpg_home(party.participants_home)
    caff = new_caff(party)
    code, out, err = caff.run_party()
    assert code == 0, err
    first = len(caff.sendmail.sent())
    plain = [p for p in party.participants if p.kind == "plain"][-1]
    new_address = "new.%s" % plain.mailable[0]
    demo.gpg(party.participants_home, "--quick-add-uid", plain.fingerprint,
             "%s <%s>" % (plain.name, new_address))
    with open(party.key_file, "wb") as handle:
        handle.write(demo.gpg(party.participants_home, "--export", "--", *party.fingerprints))
    code, out, err = caff.run_party()
    assert code == 0, err
    second_run = [call.recipient for call in caff.sendmail.sent()[first:]]
    assert second_run == [new_address]
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in party.signers])
    assert set(counts.values()) == {1}, counts
    assert len([k for k in counts if k[0] == plain.fingerprint[-16:]]) == 2 * len(party.signers)


@pytest.mark.parametrize("shape", ["binary", "armored"])
def test_split_keyblocks_cuts_exactly_at_the_keys(big_party, shape):
    data = demo.gpg(big_party.participants_home, "--export", "--",
                    *big_party.fingerprints[:12])
    if shape == "armored":
        data = demo.gpg(big_party.participants_home, "--armor", "--export", "--",
                        *big_party.fingerprints[:12])
    blocks = lanes.split_keyblocks(data)
    assert len(blocks) == 12
    assert b"".join(blocks) == demo.gpg(big_party.participants_home, "--export", "--",
                                        *big_party.fingerprints[:12])


def test_split_keyblocks_leaves_doubtful_data_whole(big_party):
    """A key given twice, two armored blocks, text around one, or damaged data:
    imported in one piece, as gpg reads it."""
    binary = demo.gpg(big_party.participants_home, "--export", "--", *big_party.fingerprints[:3])
    armored = demo.gpg(big_party.participants_home, "--armor", "--export", "--",
                       *big_party.fingerprints[:3])
    for data in (binary + binary, armored + armored, b"Hello\n" + armored,
                 binary[:-7], b"\x00" + binary, b""):
        assert lanes.split_keyblocks(data) == []


@pytest.mark.parametrize("marker", ["--import", "--quick-sign-key"])
def test_ctrl_c_with_two_keyrings_then_the_next_run_completes(big_party, marker):
    """Ctrl-C while both keyrings import, or both sign: exit 130, no traceback, no
    second keyring left behind; the next run mails each address once and no
    certification is made twice."""
    caff = new_caff(big_party)
    log = use_gpg_wrapper(caff, SLOW_GPG, marker=marker)
    proc = start(caff)
    wait_for(lambda: os.path.exists(log) and
             any(marker in line and "/lane " in line for line in open(log)))
    time.sleep(0.3)
    code, err = interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not os.path.exists(os.path.join(caff.caffhome, "lane"))
    finish_and_check(caff)
