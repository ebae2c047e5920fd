"""Faults outside caffpy: a full disk in caffhome, and a gpg-agent that refuses to sign.
After each, the next run finishes the job with exactly one mail per user ID."""

import collections
import os
import subprocess

import pytest

from conftest import base_env, new_caff, new_dir, register_gpg_home


def one_mail_each(caff):
    sent = collections.Counter(call.recipient for call in caff.sendmail.sent())
    assert sorted(sent) == sorted(caff.party.expected_mails())
    assert set(sent.values()) == {1}, sent


@pytest.fixture
def small_disk():
    """A tmpfs of 128 KiB (the keyring fits, the mails do not) (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    path = new_dir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0700", "tmpfs", path],
                   check=True)
    yield path
    subprocess.run(["gpgconf", "--homedir", os.path.join(path, "c", "gnupghome"),
                    "--kill", "all"], capture_output=True)
    subprocess.run(["umount", "-l", path], capture_output=True)


def test_full_disk_then_next_run_completes(party, small_disk):
    caff = new_caff(party)
    caff.caffhome = os.path.join(small_disk, "c")
    register_gpg_home(os.path.join(caff.caffhome, "gnupghome"))
    with open(caff.config) as handle:
        lines = [l for l in handle.read().splitlines() if not l.startswith("caffhome")]
    with open(caff.config, "w") as handle:
        handle.write("\n".join(lines + ["caffhome = %s" % caff.caffhome]) + "\n")
    code, out, err = caff.run_party()
    assert code != 0, err
    assert "No space left on device" in err and "Traceback" not in err
    assert code in (69, 73), err          # gpg could not write its keyring, or caffpy a mail
    subprocess.run(["mount", "-o", "remount,size=16m", small_disk], check=True)
    code, out, err = caff.run_party()
    assert code == 0, err
    one_mail_each(caff)


def test_agent_refusing_to_sign_then_next_run_completes(party, caff):
    """The signer's keys get a passphrase and the agent a pinentry that always fails."""
    home = register_gpg_home(os.path.join(new_dir(), "g"))
    subprocess.run(["cp", "-a", party.user_home, home], check=True)
    for name in os.listdir(home):
        if name.startswith("S.gpg-agent"):
            os.unlink(os.path.join(home, name))
    for fpr in party.signers:
        subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback",
                        "--passphrase", "secret", "--passwd", fpr], check=True,
                       capture_output=True)
    with open(os.path.join(home, "gpg-agent.conf"), "w") as handle:
        handle.write("pinentry-program /bin/false\n")
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True)
    caff.env = base_env(caff.home, home, caff.config)
    code, out, err = caff.run_party()
    assert code == 69, err
    assert "Traceback" not in err and "signing key" in err
    assert caff.sendmail.sent() == []            # nothing certified, nothing mailed

    caff.env = base_env(caff.home, party.user_home, caff.config)   # the agent works again
    code, out, err = caff.run_party()
    assert code == 0, err
    one_mail_each(caff)


def test_torn_last_journal_line_is_ignored_and_nothing_is_sent_twice(caff):
    assert caff.run_party()[0] == 0
    with open(os.path.join(caff.caffhome, "journal"), "ab") as handle:
        handle.write(b'{"mail_id": "ABC')           # a run killed in the middle of a write
    code, out, err = caff.run_party()
    assert code == 0, err
    one_mail_each(caff)
    assert caff.run_party()[0] == 0                 # and the journal is clean again


def test_damaged_journal_is_refused_with_the_line(caff):
    assert caff.run_party()[0] == 0
    path = os.path.join(caff.caffhome, "journal")
    with open(path) as handle:
        lines = handle.read().splitlines()
    lines[2] = "garbage"
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    code, out, err = caff.run_party()
    assert code == 73 and "line 3 is damaged" in err and "Traceback" not in err
    one_mail_each(caff)                             # nothing was sent again


def test_foreign_journal_is_refused(caff):
    os.makedirs(caff.caffhome, mode=0o700)
    with open(os.path.join(caff.caffhome, "journal"), "w") as handle:
        handle.write('{"format": "something-else", "version": 1}\n')
    code, out, err = caff.run_party()
    assert code == 73 and "is not a caffpy journal" in err
    assert caff.sendmail.calls() == []


def test_world_writable_caffhome_is_refused(caff):
    os.makedirs(caff.caffhome)
    os.chmod(caff.caffhome, 0o777)
    code, out, err = caff.run_party()
    assert code == 73 and "writable by other users" in err and "chmod go-w" in err
    assert caff.sendmail.calls() == []


def test_symlinked_caffhome_works_when_private_and_is_refused_when_not(caff):
    target = os.path.join(new_dir(), "real-caffhome")
    os.makedirs(target, mode=0o700)
    os.symlink(target, caff.caffhome)
    register_gpg_home(os.path.join(target, "gnupghome"))
    code, out, err = caff.run_party()
    assert code == 0, err
    one_mail_each(caff)
    os.chmod(target, 0o777)
    code, out, err = caff.run_party()
    assert code == 73 and "writable by other users" in err
