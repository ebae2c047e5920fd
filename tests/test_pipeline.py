"""The whole pipeline on a generated party: certify, cut per-UID copies, mail them.

`caffpy --batch -m yes -R --key-file party.asc FPR...` must produce exactly one
correct mail per valid e-mail UID and nothing else; a second run sends nothing new.
"""

import collections
import datetime
import email
import email.policy
import mailbox
import os
import re
import subprocess

import pytest

from caffpy import demo
from conftest import (SIGNER_EMAIL, decrypt, gpg, key_attachments, keyring_signatures,
                      list_packets, new_caff, new_dir, participant, register_gpg_home,
                      scratch_gpg_home, summary_has)

CERTIFICATION = (0x10, 0x11, 0x12, 0x13)


# -- expectations derived from the party ------------------------------------------------

def owner_of(party, address):
    return next(p for p in party.participants if address in p.mailable)


def long_id(fingerprint):
    return fingerprint[-16:]


def assert_uid_copy(packets, fingerprint, uid_text, signers):
    """[primary key, that UID, its self-signature(s), one certification per signer]."""
    key = long_id(fingerprint)
    assert [p.kind for p in packets[:2]] == ["public key", "user ID"], packets
    assert packets[0].keyid == key
    assert packets[1].text == uid_text
    signatures = packets[2:]
    assert signatures and all(p.kind == "signature" for p in signatures), packets
    assert all(p.sigclass in CERTIFICATION for p in signatures), signatures
    assert any(p.keyid == key for p in signatures), "no self-signature"
    certifiers = sorted(p.keyid for p in signatures if p.keyid != key)
    assert certifiers == sorted(long_id(s) for s in signers)


def assert_photo_copy(packets, fingerprint, first_uid_text, signers):
    """[primary key, first UID + self-signature only, photo ID, self-sig, our certifications]."""
    key = long_id(fingerprint)
    kinds = [p.kind for p in packets]
    assert kinds[:2] == ["public key", "user ID"] and "attribute" in kinds, kinds
    assert packets[1].text == first_uid_text
    at = kinds.index("attribute")
    assert [p.keyid for p in packets[2:at]] and all(
        p.kind == "signature" and p.keyid == key for p in packets[2:at]), packets[2:at]
    assert kinds.count("user ID") == 1 and kinds.count("attribute") == 1
    assert_uid_copy([packets[0], packets[1]] + packets[at + 1:], fingerprint,
                    first_uid_text, signers)


def encrypted_to(ciphertext):
    """Long key IDs an OpenPGP message is encrypted to (gpg --list-packets, no secret keys)."""
    out = subprocess.run(["gpg", "--homedir", scratch_gpg_home(), "--batch", "--list-packets"],
                         input=ciphertext, capture_output=True, timeout=60).stdout
    return sorted(re.findall(r":pubkey enc packet: .*keyid ([0-9A-F]{16})", out.decode()))


def encryption_subkeys(party, fingerprint):
    listing = gpg(party.participants_home, "--with-colons", "--list-keys", fingerprint)
    return sorted(line.split(":")[4] for line in listing.decode().split("\n")
                  if line.startswith("sub:") and "e" in line.split(":")[11])


def open_mail(party, call):
    """Check the outer structure of one sent mail; return (outer, inner multipart/mixed)."""
    outer = call.parsed()
    owner = owner_of(party, call.recipient)
    if owner.kind == "signonly":
        assert outer.get_content_type() == "multipart/mixed"
        return outer, outer
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    control, payload = outer.get_payload()
    assert control.get_content_type() == "application/pgp-encrypted"
    assert control.get_payload(decode=True).strip() == b"Version: 1"
    assert payload.get_content_type() == "application/octet-stream"
    assert payload.get_payload(decode=True).startswith(b"-----BEGIN PGP MESSAGE-----")
    assert encrypted_to(payload.get_payload(decode=True)) == \
        encryption_subkeys(party, owner.fingerprint)
    inner = decrypt(party, outer)
    assert inner.get_content_type() == "multipart/mixed"
    return outer, inner


def check_mail_contents(party, call, signers):
    """The letter and the attached key copies of one mail, for its UID and companions."""
    _, inner = open_mail(party, call)
    owner = owner_of(party, call.recipient)
    uid_text = "%s <%s>" % (owner.name, call.recipient)
    parts = list(inner.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    letter = parts[0].get_content()
    assert uid_text in letter and owner.fingerprint in letter
    assert all(p.get_content_type() == "application/pgp-keys" for p in parts[1:])
    keys = [list_packets(k) for k in key_attachments(inner)]
    assert_uid_copy(keys[0], owner.fingerprint, uid_text, signers)
    if owner.kind == "noaddr":      # the UID without address shares this UID's name
        assert len(keys) == 2
        assert owner.name in letter
        assert_uid_copy(keys[1], owner.fingerprint, owner.name, signers)
    elif owner.kind == "photo":     # the photo ID goes with the primary UID's name
        assert len(keys) == 2
        assert_photo_copy(keys[1], owner.fingerprint, uid_text, signers)
    else:
        assert len(keys) == 1


# -- one full run, examined by several tests ------------------------------------------

MainRun = collections.namedtuple("MainRun", "caff status err calls")


@pytest.fixture(scope="module")
def main_run(party, third_party):
    """The run a user makes after the party, on a fresh caffhome.

    An earlier run left the third party's key in caffpy's keyring, so its
    certification of the 'multi' key survives the import: the per-UID copies
    must drop it themselves.
    """
    caff = new_caff(party)
    caff.sendmail.control(snapshot=os.path.join(caff.caffhome, "keys"))
    home = os.path.join(caff.caffhome, "gnupghome")
    os.makedirs(home, mode=0o700)
    os.chmod(caff.caffhome, 0o700)
    gpg(home, "--import", input=third_party.public_key)
    status, _, err = caff.run_party()
    return MainRun(caff, status, err, caff.sendmail.calls())


def test_run_succeeds_and_reports_what_it_skipped(main_run, party):
    assert main_run.status == 0, main_run.err
    assert "Traceback" not in main_run.err
    expired = participant(party, "expired")
    multi = participant(party, "multi")
    assert summary_has(main_run.err, long_id(expired.fingerprint), "expired"), main_run.err
    assert summary_has(main_run.err, long_id(multi.fingerprint), "revoked"), main_run.err


def test_exactly_one_mail_per_valid_email_uid(main_run, party):
    assert all(call.status == 0 for call in main_run.calls)
    assert sorted(call.recipient for call in main_run.calls) == sorted(party.expected_mails())
    never = participant(party, "multi").other_uids + participant(party, "expired").other_uids
    assert never and not set(never) & {call.recipient for call in main_run.calls}


def test_sendmail_gets_one_recipient_after_double_dash(main_run):
    for call in main_run.calls:
        assert call.argv == ["-oi", "-f", SIGNER_EMAIL, "--", call.recipient]


def test_headers_and_wire_format(main_run):
    for call in main_run.calls:
        message = call.parsed()
        assert message["To"] == call.recipient
        assert message["From"].addresses[0].addr_spec == SIGNER_EMAIL
        assert message["Message-ID"] and message["Date"].datetime
        assert "Bcc" not in message
        assert b"\r" not in call.message
        assert max(len(line) for line in call.message.split(b"\n")) <= 998


def test_each_mail_decrypts_to_the_letter_and_exact_key_copies(main_run, party):
    for call in main_run.calls:
        check_mail_contents(party, call, party.signers)


def test_third_party_certification_is_never_mailed(main_run, party, third_party):
    trent = long_id(third_party.fingerprint)
    # It is in caffpy's keyring (so the test means something)...
    assert any(line.startswith("sig:") and line.split(":")[4] == trent
               for line in keyring_signatures(main_run.caff.caffhome))
    # ...but in none of the mailed copies.
    victim_mails = [c for c in main_run.calls if owner_of(party, c.recipient).fingerprint
                    == third_party.certified]
    assert len(victim_mails) == 2
    for call in victim_mails:
        _, inner = open_mail(party, call)
        for armored in key_attachments(inner):
            assert trent not in [p.keyid for p in list_packets(armored)]


def test_sign_only_key_mailed_unencrypted_when_mail_cant_encrypt_allows(main_run, party):
    carol = participant(party, "signonly")
    [call] = [c for c in main_run.calls if c.recipient in carol.mailable]
    message = call.parsed()
    assert message.get_content_type() == "multipart/mixed"
    assert b"BEGIN PGP MESSAGE" not in call.message
    check_mail_contents(party, call, party.signers)


def test_mails_and_keys_saved_before_sending(main_run):
    today = datetime.date.today().isoformat()
    for call in main_run.calls:
        saved = [path for path, text in call.files.items()
                 if text.encode("latin-1") == call.message]
        assert len(saved) == 1, "the mail to %s was not on disk when sent" % call.recipient
        directory, name = os.path.split(saved[0])
        assert directory == today
        assert call.recipient in name
        assert any(path.endswith(".asc") and call.recipient in path for path in call.files)
    names = os.listdir(main_run.caff.day_dir())
    assert names
    for name in names:
        assert re.match(r"^[0-9A-F]{16}\.\d+\.[A-Za-z0-9._@+-]+\.(asc|eml)$", name), name


# -- further runs ---------------------------------------------------------------------------

def test_second_identical_run_sends_and_signs_nothing(caff, party):
    status, _, err = caff.run_party()
    assert status == 0, err
    sent = caff.sendmail.calls()
    assert len(sent) == len(party.expected_mails())
    keyring = keyring_signatures(caff.caffhome)

    status, _, err = caff.run_party()
    assert status == 0, err
    assert caff.sendmail.calls() == sent
    assert keyring_signatures(caff.caffhome) == keyring


def test_mail_no_sends_nothing_and_keeps_the_mails_on_disk(caff, party):
    status, _, err = caff.run_party(mail="no")
    assert status == 0, err
    assert caff.sendmail.calls() == []
    saved = sorted(n for n in os.listdir(caff.day_dir()) if n.endswith(".eml"))
    assert len(saved) == len(party.expected_mails())
    for address in party.expected_mails():
        [name] = [n for n in saved if address in n]
        assert summary_has(err, name, "not mailed"), err


def test_mbox_gets_the_mails_and_sendmail_is_not_called(caff, party):
    path = os.path.join(caff.base, "review.mbox")
    status, _, err = caff.run_party("--mbox", path)
    assert status == 0, err
    assert caff.sendmail.calls() == []
    box = mailbox.mbox(path, factory=lambda f: email.message_from_binary_file(
        f, policy=email.policy.default))
    messages = list(box)
    assert sorted(m["To"] for m in messages) == sorted(party.expected_mails())
    for message in messages:
        if owner_of(party, message["To"]).kind != "signonly":
            assert message.get_content_type() == "multipart/encrypted"
            assert decrypt(party, message).get_content_type() == "multipart/mixed"


def test_sign_only_key_not_mailed_when_mail_cant_encrypt_is_no(party):
    caff = new_caff(party, extra="mail-cant-encrypt = no\n")
    carol, frank = participant(party, "signonly"), participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=[carol.fingerprint, frank.fingerprint])
    assert status == 0, err
    assert [c.recipient for c in caff.sendmail.calls()] == frank.mailable
    assert summary_has(err, carol.mailable[0], "not mailed"), err


def test_bcc_is_a_call_of_its_own_and_no_header(party):
    caff = new_caff(party, extra="bcc = audit@example.org\n")
    frank = participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=[frank.fingerprint])
    assert status == 0, err
    calls = caff.sendmail.calls()
    assert sorted(c.argv for c in calls) == sorted(
        ["-oi", "-f", SIGNER_EMAIL, "--", to] for to in frank.mailable + ["audit@example.org"])
    assert calls[0].message == calls[1].message
    assert b"audit@example.org" not in calls[0].message


def make_key(uids, photo=False):
    """A key of someone not at the generated party: ed25519 + cv25519, UIDs in order, the
    first one primary. Returns (its gpg home, fingerprint, armored key file)."""
    home = register_gpg_home(os.path.join(new_dir(), "k"))
    os.mkdir(home, 0o700)
    gpg(home, "--quick-gen-key", uids[0], "ed25519", "default", "never")
    fpr = gpg(home, "--with-colons", "--list-keys").decode().split("fpr:::::::::")[1][:40]
    gpg(home, "--quick-add-key", fpr, "cv25519", "encr", "never")
    for uid in uids[1:]:
        gpg(home, "--quick-add-uid", fpr, uid)
    if photo:
        jpeg = os.path.join(home, "photo.jpg")
        with open(jpeg, "wb") as handle:
            handle.write(demo.TINY_JPEG)
        gpg(home, "--command-fd", "0", "--edit-key", fpr,
            input=("addphoto\n%s\nsave\n" % jpeg).encode())
    gpg(home, "--quick-set-primary-uid", fpr, uids[0])
    key_file = os.path.join(home, "key.asc")
    with open(key_file, "wb") as handle:
        handle.write(gpg(home, "--armor", "--export", fpr))
    return home, fpr, key_file


def attachment_summary(armored):
    """What an attached key copy is about: its user ID texts (and 'photo' for a photo ID)."""
    packets = list_packets(armored)
    return tuple(p.text for p in packets if p.kind == "user ID") + \
        (("photo",) if any(p.kind == "attribute" for p in packets) else ())


def test_companions_go_only_to_mails_whose_uid_has_their_name(caff):
    """Address-less UIDs go with the mailed UID of the same name, the photo ID with the
    primary UID's name; a name no mailed UID has is kept on disk and reported."""
    primary = "Hal Example <hal@example.org>"
    home, fpr, key_file = make_key([primary, "Hal Work <hal@work.example>", "Hal Example",
                                    "Someone Else"], photo=True)
    status, _, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", key_file, fpr)
    assert status == 0, err
    attached = {}
    for call in caff.sendmail.calls():
        ciphertext = call.parsed().get_payload()[1].get_payload(decode=True)
        inner = email.message_from_bytes(gpg(home, "--decrypt", input=ciphertext),
                                         policy=email.policy.default)
        attached[call.recipient] = sorted(attachment_summary(k) for k in key_attachments(inner))
    assert attached == {
        "hal@example.org": sorted([(primary,), ("Hal Example",), (primary, "photo")]),
        "hal@work.example": [("Hal Work <hal@work.example>",)],
    }
    notes = [line for line in err.split("\n") if "Someone Else" in line]
    kept = [name for name in os.listdir(caff.day_dir()) if "Someone" in name]
    assert len(kept) == 1 and any(kept[0] in line for line in notes), err


def test_file_names_stay_bounded_for_long_user_ids(caff):
    name = "Zed " + "Verylongname" * 12
    address = "z" * 60 + "@" + "a" * 60 + ".example.org"
    _, fpr, key_file = make_key(["%s <%s>" % (name, address), name + " (no address)"])
    status, _, err = caff.run("--batch", "-m", "yes", "-R", "--key-file", key_file, fpr)
    assert status == 0, err
    assert [c.recipient for c in caff.sendmail.calls()] == [address]
    names = os.listdir(caff.day_dir())
    assert len(names) == 3      # the mail, its key copy, the address-less UID's key copy
    for saved in names:
        assert saved.startswith(long_id(fpr) + ".")
        assert len(saved) <= 100, saved
