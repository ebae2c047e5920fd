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
