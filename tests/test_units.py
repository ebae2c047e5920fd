"""The parts on their own: OpenPGP packets and armor, address reading, message headers,
the sendmail call. Still real: gpg checks the packets, a program plays sendmail."""

import email
import email.policy
import email.utils
import os
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st

from caffpy import mailer, message, packets
from caffpy.address import read_address
from caffpy.errors import GpgError, MailError, MtaError
from caffpy.gpg import Gpg
from conftest import gpg, list_packets, participant, scratch_gpg_home

# -- packets ---------------------------------------------------------------------------


def gpg_enarmor(data):
    return subprocess.run(["gpg", "--homedir", scratch_gpg_home(), "--batch", "--enarmor"],
                          input=data, capture_output=True, check=True).stdout.decode("ascii")


def armor_body(text):
    """The base64 lines and the =CRC line, without the armor headers."""
    lines = text.strip("\n").split("\n")
    return lines[lines.index("") + 1:-1]


@settings(max_examples=30, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_armor_checksum_and_body_match_gpg(data):
    ours = packets.armor(data, "ARMORED FILE")
    assert armor_body(ours) == armor_body(gpg_enarmor(data))


def test_armored_key_is_what_gpg_exports(party):
    frank = participant(party, "plain").fingerprint
    binary = gpg(party.participants_home, "--export", frank)
    armored = gpg(party.participants_home, "--armor", "--export", frank).decode("ascii")
    assert packets.armor(binary) == armored


def test_split_and_parse_a_real_export(party, third_party):
    data = gpg(party.participants_home, "--export", *party.fingerprints)
    assert b"".join(p.raw for p in packets.split_packets(data)) == data
    blocks = packets.parse_keyblocks(data)
    assert sorted(blocks) == sorted(party.fingerprints)
    listing = gpg(party.participants_home, "--with-colons", "--list-keys", *party.fingerprints)
    hashes, current = {}, None
    for line in listing.decode("utf-8").split("\n"):
        fields = line.split(":")
        if fields[0] == "pub":
            current = None
        elif fields[0] == "fpr" and current is None:
            current = fields[9]
            hashes[current] = []
        elif fields[0] in ("uid", "uat"):
            hashes[current].append(fields[7])
    for fpr, block in blocks.items():
        assert sorted(u.namehash for u in block.uids) == sorted(hashes[fpr])


def test_uid_copy_keeps_only_that_uid_self_signatures_and_chosen_certifiers(party, third_party):
    victim = third_party.certified
    block = packets.parse_keyblocks(gpg(party.participants_home, "--export", victim))[victim]
    trent = third_party.fingerprint[-16:]
    for uid in block.uids:
        if uid.is_attribute or not any(s.issuer == trent for s in uid.signatures):
            continue
        without = list_packets(packets.armor(packets.uid_copy(block, [uid], [])))
        assert [p.kind for p in without][:2] == ["public key", "user ID"]
        assert {p.keyid for p in without if p.kind == "signature"} == {victim[-16:]}
        assert "public sub key" not in [p.kind for p in without]
        with_trent = list_packets(packets.armor(packets.uid_copy(block, [uid], [trent])))
        assert {p.keyid for p in with_trent if p.kind == "signature"} == {victim[-16:], trent}
        assert [p.kind for p in with_trent].count("user ID") == 1
        return
    pytest.fail("the third-party certification is missing from the party")


# -- address reading ----------------------------------------------------------------------

@pytest.mark.parametrize("uid, address", [
    # security notes T9: UIDs that different parsers read as different addresses.
    ("Victim <victim@example.org> <attacker@evil.test>", None),
    ('"Alice <alice6@example.org>" <mallory6@evil.test>', None),
    ("alice7@example.org <mallory7@evil.test>", None),
    ("Alice (c <alice8@example.org>) <m8@evil.test>", None),
    ("<evil@evil.test> Alice <alice5@example.org>", None),
    ("Alice <alice@example.org>\0<mallory@evil.test>", None),
    # caff reference section 3, "Non-ASCII" and e-mail extraction.
    ("Alice <alice@localhost>", None),                       # not a domain name
    ("Bob bob@example.org", None),                           # gpg reads no address
    ("Bob (comment) <bob@example.org>", "bob@example.org"),
    ("Name<a@example.com>", "a@example.com"),                # gpg reads it (caff did not)
    ('"a b"@example.com', None),                             # gpg reads no address
    ("Alice <alice@bücher.example>", "alice@xn--bcher-kva.example"),   # IDN in punycode
    ("Jürgen Ærø Exämple <juergen@example.org>", "juergen@example.org"),
    # plain cases and unsafe ones
    ("alice@example.org", "alice@example.org"),
    ("Alice <alice@example.org>", "alice@example.org"),
    ("Alice <alice@example.org> and more", None),
    ("Eve <-oQ/tmp/x@example.org>", None),                   # would be a sendmail option
    ("Alice <alice@ex\u200bample.org>", None),               # invisible character
    ("Alice\u202e <alice@example.org>", None),               # bidi override
    ("Alice <alice@straße.example>", None),                  # IDNA 2003 would remap it
])
def test_read_address(uid, address):
    reading = read_address(uid)
    assert reading.address == address
    assert bool(reading.reason) == (address is None)


# -- message composition ------------------------------------------------------------------

OWNER = "Jürgen Ærø Exämple"
SENDER = "signer@example.org"
TO = "alice@xn--bcher-kva.example"


def compose(encrypt=None, uids=("Alice <alice@bücher.example>",), subject="Your key 0x1234"):
    text = message.render_text("", OWNER, "AB" * 20, list(uids))
    attachment = message.Attachment("0xABAB.1.signed-by-0xCDCD.asc", "OpenPGP key 0xABAB",
                                    packets.armor(b"\x99" * 300))
    return message.compose(text, [attachment], OWNER, SENDER, TO, subject, encrypt=encrypt)


def header_lines(data):
    return data.split(b"\n\n", 1)[0].decode("ascii").replace("\n ", " ").split("\n")


def check_headers(data):
    raw = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
           for line in header_lines(data)}
    assert raw["from"].startswith("=?utf-8?") and raw["from"].endswith("<%s>" % SENDER)
    assert raw["to"] == TO
    assert "bcc" not in raw
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == OWNER
    assert parsed["From"].addresses[0].addr_spec == SENDER
    assert email.utils.parseaddr(raw["message-id"])[1].endswith("@example.org")
    sent = email.utils.parsedate_to_datetime(raw["date"]).timestamp()
    assert abs(sent - time.time()) < 300
    assert b"\r" not in data
    assert max(len(line) for line in data.split(b"\n")) <= 998
    return parsed


def test_plain_message_headers_and_line_lengths():
    long_uid = "Mallory " + "x" * 3000 + " <m@example.org>"
    check_headers(compose(uids=[long_uid]))


def test_non_ascii_subject_is_encoded():
    subject = "Dein beglaubigter Schlüssel 0x1234"
    data = compose(subject=subject)
    parsed = check_headers(data)
    assert parsed["Subject"] == subject
    assert "Schlüssel".encode() not in data.split(b"\n\n", 1)[0]


def test_encrypted_message_headers_and_content(party):
    frank = participant(party, "plain").fingerprint
    data = compose(encrypt=lambda d: Gpg(party.participants_home).encrypt(d, [frank]))
    parsed = check_headers(data)
    assert parsed.get_content_type() == "multipart/encrypted"
    inner = gpg(party.participants_home, "--decrypt",
                input=parsed.get_payload()[1].get_payload(decode=True))
    inner = email.message_from_bytes(inner, policy=email.policy.default)
    text, key = inner.iter_parts()
    assert "Alice <alice@bücher.example>" in text.get_content()
    assert key.get_content_type() == "application/pgp-keys"


# -- running gpg ------------------------------------------------------------------------

def test_gpg_round_trip_larger_than_a_pipe_keeps_every_byte():
    """gpg writes while it still reads: a 3 MB text through --enarmor comes back whole
    (one thread feeds and reads all three pipes; a blocking write would hang here)."""
    data = bytes(range(256)) * (3 * 4096)
    gpg_run = Gpg(scratch_gpg_home())
    armored = gpg_run.run(["--enarmor"], input=data).stdout
    assert len(armored) > len(data)
    assert gpg_run.run(["--dearmor"], input=armored).stdout == data


def test_gpg_status_lines_come_apart_from_its_messages(party):
    frank = participant(party, "plain").fingerprint
    result = Gpg(party.participants_home).run(["--encrypt", "--recipient", frank, "--armor"],
                                              input=b"hello\n")
    assert result.status_args("END_ENCRYPTION") == [[]]
    assert b"[GNUPG:]" not in result.stderr
    assert result.stdout.startswith(b"-----BEGIN PGP MESSAGE-----")


def test_gpg_that_hangs_is_stopped_after_the_timeout(tmp_path):
    """A keyserver fetch that never ends: GpgError after the timeout, no gpg left behind."""
    hanging = tmp_path / "gpg"
    pid_file = tmp_path / "pid"
    hanging.write_text("#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % pid_file)
    hanging.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(GpgError, match="did not finish within 1 seconds"):
        Gpg(str(tmp_path / "home"), str(hanging)).run(["--recv-keys"], timeout=1,
                                                      what="fetching keys")
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- the sendmail call ----------------------------------------------------------------------

def test_send_passes_one_recipient_and_the_message(fake_sendmail):
    mta = fake_sendmail()
    data = b"Subject: test\n\nline\n.\nend\n"
    mailer.send(data, mta.path, SENDER, "alice@example.org")
    [call] = mta.calls()
    assert call.argv == ["-oi", "-f", SENDER, "--", "alice@example.org"]
    assert call.message == data


@pytest.mark.parametrize("status, said", [(75, "451 4.3.0 queue full"), (1, "no such user")])
def test_mta_refusal_raises_mail_error_with_its_text(fake_sendmail, status, said):
    mta = fake_sendmail()
    mta.control(status=status, stderr=said)
    with pytest.raises(MailError) as error:
        mailer.send(b"x\n", mta.path, SENDER, "alice@example.org")
    assert "status %d" % status in str(error.value) and said in str(error.value)
    assert error.value.exit_code == 75


def test_missing_sendmail_raises_mta_error(tmp_path):
    missing = str(tmp_path / "sendmail")
    with pytest.raises(MtaError) as error:
        mailer.send(b"x\n", missing, SENDER, "alice@example.org")
    assert missing in str(error.value)
    assert error.value.exit_code == 69


def test_sendmail_that_cannot_be_run_raises_mta_error(tmp_path):
    not_executable = tmp_path / "sendmail"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    not_executable.chmod(0o644)
    with pytest.raises(MtaError, match="permission denied"):
        mailer.send(b"x\n", str(not_executable), SENDER, "alice@example.org")


def test_recipient_that_looks_like_an_option_is_refused(fake_sendmail):
    mta = fake_sendmail()
    with pytest.raises(MailError):
        mailer.send(b"x\n", mta.path, SENDER, "-oQ/tmp/evil@example.org")
    assert mta.calls() == []
