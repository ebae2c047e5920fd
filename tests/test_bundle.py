"""The offline flow: caffpy prepare (online) -> caffpy sign (offline) -> caffpy send (online).

The online side is a GNUPGHOME holding only the signer's public keys; the
offline side holds the secret keys and has no keyserver it could reach.
"""

import email
import email.policy
import json
import os

import pytest

from conftest import base_env, gpg, list_packets, new_dir, register_gpg_home, run_caffpy
from hkp import KeyServer


def write_config(directory, party, sendmail, extra=""):
    path = os.path.join(directory, "caffrc")
    with open(path, "w") as handle:
        handle.write("owner = Demo Signer\nemail = signer@example.org\nkeyid = %s\n"
                     "caffhome = %s\nsendmail = %s\n%s"
                     % (", ".join(party.signers), os.path.join(directory, "c"), sendmail, extra))
    register_gpg_home(os.path.join(directory, "c", "gnupghome"))
    return path


@pytest.fixture
def sides(party, fake_sendmail):
    """(online env, offline env, mta, keyserver) for one offline-flow round trip."""
    server = KeyServer().start()
    online_dir, offline_dir = new_dir(), new_dir()
    online_home = register_gpg_home(os.path.join(online_dir, "g"))
    os.makedirs(online_home, mode=0o700)
    gpg(online_home, "--import", input=gpg(party.user_home, "--export", *party.signers))
    mta = fake_sendmail()
    online = base_env(online_dir, online_home, write_config(online_dir, party, mta.path))
    # The offline side's keyserver is a local one that counts requests: there must be none.
    offline = base_env(offline_dir, party.user_home,
                       write_config(offline_dir, party, "/nonexistent/sendmail",
                                    "keyserver = %s\n" % server.url))
    yield online, offline, mta, server, online_dir
    server.stop()


def three_steps(party, online, offline, bundle):
    code, out, err = run_caffpy(["prepare", "-o", bundle, "-R", "--key-file", party.key_file]
                                + party.fingerprints, online)
    assert code == 0, err
    code, out, err = run_caffpy(["sign", "--batch", "-m", "yes", bundle], offline)
    assert code == 0, err
    return run_caffpy(["send", bundle], online)


def prepared_and_signed(party, online, offline, directory):
    """Steps 1 and 2 of the offline flow; returns the bundle's path."""
    bundle = os.path.join(directory, "bundle")
    assert run_caffpy(["prepare", "-o", bundle, "-R", "--key-file", party.key_file]
                      + party.fingerprints, online)[0] == 0
    assert run_caffpy(["sign", "--batch", "-m", "yes", bundle], offline)[0] == 0
    return bundle


def mail_shape(message_bytes, party):
    """What a mail carries, independent of encryption randomness and dates:
    recipient, and for each attached key the packet kinds and signature issuers."""
    message = email.message_from_bytes(message_bytes, policy=email.policy.default)
    armored = message.get_payload()[1].get_payload(decode=True) \
        if message.get_content_type() == "multipart/encrypted" else None
    inner = message
    if armored:
        inner = email.message_from_bytes(
            gpg(party.participants_home, "--decrypt", input=armored), policy=email.policy.default)
    keys = []
    for part in inner.walk():
        if part.get_content_type() == "application/pgp-keys":
            keys.append(tuple((p.kind, p.keyid if p.kind == "signature" else "")
                              for p in list_packets(part.get_payload(decode=True))))
    return message["To"], message.get_content_type(), tuple(sorted(keys))


def test_three_steps_send_the_same_mails_as_one_run(party, sides, fake_sendmail):
    online, offline, mta, server, online_dir = sides
    code, out, err = three_steps(party, online, offline, os.path.join(online_dir, "bundle"))
    assert code == 0, err
    assert server.requests == []            # the offline step asked no keyserver
    three = sorted(mail_shape(c.message, party) for c in mta.sent())

    one_dir = new_dir()
    one_mta = fake_sendmail()
    one = base_env(one_dir, party.user_home, write_config(one_dir, party, one_mta.path))
    code, out, err = run_caffpy(["--batch", "-m", "yes", "-R", "--key-file", party.key_file]
                                + party.fingerprints, one)
    assert code == 0, err
    single = sorted(mail_shape(c.message, party) for c in one_mta.sent())
    assert three == single
    assert sorted(to for to, _, _ in three) == sorted(party.expected_mails())
    for c in mta.sent():
        assert c.argv == ["-oi", "-f", "signer@example.org", "--", c.recipient]


def test_send_twice_sends_each_mail_once(party, sides):
    online, offline, mta, server, online_dir = sides
    bundle = os.path.join(online_dir, "bundle")
    code, out, err = three_steps(party, online, offline, bundle)
    assert code == 0, err
    first = len(mta.sent())
    code, out, err = run_caffpy(["send", bundle], online)
    assert code == 0, err
    assert len(mta.sent()) == first == len(party.expected_mails())
    assert "mailed by earlier runs:  %d" % first in err


def test_failed_mail_stays_pending_and_goes_with_retry(party, sides):
    online, offline, mta, server, online_dir = sides
    victim = sorted(party.expected_mails())[0]
    mta.control(fail={victim: (75, "relay down")})
    code, out, err = three_steps(party, online, offline, os.path.join(online_dir, "bundle"))
    assert code == 75 and "relay down" in err
    mta.control()
    code, out, err = run_caffpy(["retry"], online)
    assert code == 0, err
    recipients = [c.recipient for c in mta.sent()]
    assert sorted(recipients) == sorted(party.expected_mails())


def test_changed_keys_in_bundle_are_refused(party, sides):
    online, offline, mta, server, online_dir = sides
    bundle = os.path.join(online_dir, "bundle")
    code, out, err = run_caffpy(["prepare", "-o", bundle, "-R", "--key-file", party.key_file]
                                + party.fingerprints, online)
    assert code == 0, err
    with open(os.path.join(bundle, "keys.pgp"), "ab") as handle:
        handle.write(b"\x00")
    code, out, err = run_caffpy(["sign", "--batch", bundle], offline)
    assert code == 65
    assert "keys.pgp was changed" in err and "Traceback" not in err


def test_unknown_bundle_version_is_refused(party, sides):
    online, offline, mta, server, online_dir = sides
    bundle = os.path.join(online_dir, "bundle")
    assert run_caffpy(["prepare", "-o", bundle, "-R", "--key-file", party.key_file]
                      + party.fingerprints, online)[0] == 0
    path = os.path.join(bundle, "bundle.json")
    with open(path) as handle:
        manifest = json.load(handle)
    manifest["version"] = 99
    with open(path, "w") as handle:
        json.dump(manifest, handle)
    code, out, err = run_caffpy(["sign", "--batch", bundle], offline)
    assert code == 65 and "version 99" in err


def test_changed_outbox_is_refused(party, sides):
    online, offline, mta, server, online_dir = sides
    bundle = prepared_and_signed(party, online, offline, online_dir)
    outbox = os.path.join(bundle, "outbox")
    manifest_path = os.path.join(outbox, "outbox.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    # Redirect a mail: the manifest no longer matches its signature.
    manifest["mails"][0]["to"] = "mallory@evil.example"
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    code, out, err = run_caffpy(["send", bundle], online)
    assert code == 65 and "not signed by one of your keys" in err
    assert mta.calls() == []


def test_changed_mail_in_outbox_is_refused(party, sides):
    online, offline, mta, server, online_dir = sides
    bundle = prepared_and_signed(party, online, offline, online_dir)
    outbox = os.path.join(bundle, "outbox")
    name = sorted(n for n in os.listdir(outbox) if n.endswith(".eml"))[0]
    with open(os.path.join(outbox, name), "ab") as handle:
        handle.write(b"\nappended\n")
    code, out, err = run_caffpy(["send", bundle], online)
    assert code == 65 and "was changed after caffpy sign" in err
    assert mta.calls() == []
    # Nothing of the refused outbox was taken: a retry has nothing to send.
    code, out, err = run_caffpy(["retry"], online)
    assert code == 0 and mta.calls() == []
