"""Configuration: one clear error per mistake, layering of files and options, the first run."""

import mailbox
import os
import re

import pytest

from conftest import base_env, new_caff, new_dir, participant, run_caffpy, summary_has

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
GOOD = "owner = Some One\nemail = someone@example.org\nkeyid = %s\n" % FPR


def run_with_config(text, mode=0o600):
    """caffpy with CONFIG as the only configuration file; (status, stderr, path)."""
    base = new_dir()
    path = os.path.join(base, "caffrc")
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    env = base_env(base, os.path.join(base, "g"), path)
    status, _, err = run_caffpy(["--batch", "-m", "no", "-R", FPR], env)
    return status, err, path


def error_line(err):
    lines = [line for line in err.split("\n") if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("text, line, key", [
    (GOOD + "cert-level = high\n", 4, "cert-level"),             # not an integer
    (GOOD + "cert-level = 7\n", 4, "cert-level"),                # out of range
    (GOOD + "\nno-download = maybe\n", 5, "no-download"),         # not a boolean
    ("mail = sometimes\n" + GOOD, 1, "mail"),                     # not one of the modes
    (GOOD + "recv-timeout = 1, 2\n", 4, "recv-timeout"),          # a list, not a number
    ("owner = A\nemail = a@example.org\nkeyid = ABCD\n", 3, "keyid"),   # not a key ID
    ("owner = A\nemail = not-an-address\nkeyid = %s\n" % FPR, 2, "email"),
], ids=["not-integer", "out-of-range", "not-boolean", "not-a-mode", "list-for-number",
        "bad-keyid", "bad-email"])
def test_wrong_value_names_file_line_and_key(text, line, key):
    status, err, path = run_with_config(text)
    assert status == 78, err
    message = error_line(err)
    assert path in message
    assert "line %d" % line in message
    assert key in message


@pytest.mark.parametrize("text, line, key", [
    (GOOD + "\ncolour = red\n", 5, "colour"),
    ("mailer-send = sendmail\n" + GOOD, 1, "mailer-send"),       # a caff key caffpy lacks
    (GOOD + "[extra]\nx = 1\n", 4, "extra"),                     # a section
], ids=["unknown", "caff-only-key", "section"])
def test_unknown_key_names_file_line_and_key(text, line, key):
    status, err, path = run_with_config(text)
    assert status == 78, err
    message = error_line(err)
    assert path in message and "line %d" % line in message and key in message


@pytest.mark.parametrize("missing", ["owner", "email", "keyid"])
def test_missing_required_key_names_file_and_key(missing):
    text = "".join(line + "\n" for line in GOOD.split("\n")
                   if line and not line.startswith(missing))
    status, err, path = run_with_config(text)
    assert status == 78, err
    message = error_line(err)
    assert path in message and missing in message


def test_world_writable_config_is_refused():
    status, err, path = run_with_config(GOOD, mode=0o666)
    assert status == 78, err
    message = error_line(err)
    assert path in message and "writable" in message


def test_caff_perl_config_is_read_with_a_warning_and_a_pointer():
    # A caff (Perl) file is read without running it (tests/test_perlconf.py); this one
    # lacks email and keyid, so the run stops there, after saying what it took.
    status, err, path = run_with_config("$CONFIG{'owner'} = 'Some One';\n")
    assert status == 78, err
    assert "Traceback" not in err
    assert "%s is a caff configuration (Perl)" % path in err
    assert "taken: owner" in err and "caffpy config --migrate" in err
    assert re.search(r"error: .*required key\(s\) missing: email, keyid", err), err


# -- layering: /etc/caffrc < ~/.caffrc < command line, seen through what gets mailed -----------

def layered_run(party, system, user, *args):
    """A run of one key with a system file and a user file; returns (status, stderr, mails)."""
    caff = new_caff(party, extra=user)
    system_file = os.path.join(caff.base, "system-caffrc")
    with open(system_file, "w") as handle:
        handle.write(system)
    caff.env["CAFFPY_CONFIG_FILES"] = system_file + ":" + caff.config
    frank = participant(party, "plain")
    status, _, err = caff.run("--batch", "-R", "--key-file", party.key_file, *args,
                              frank.fingerprint)
    return status, err, [c.recipient for c in caff.sendmail.calls()]


def test_system_file_applies_when_the_user_file_is_silent(party):
    status, err, mails = layered_run(party, "mail = no\n", "")
    assert status == 0, err
    assert mails == []
    assert summary_has(err, participant(party, "plain").mailable[0], "not mailed"), err


def test_user_file_overrides_the_system_file(party):
    # The system file's sendmail does not exist and it says mail = no: the user's file
    # overrides both, so the mail goes to the user's sendmail.
    status, err, mails = layered_run(party, "mail = no\nsendmail = /nonexistent/sendmail\n",
                                     "mail = yes\n")
    assert status == 0, err
    assert mails == participant(party, "plain").mailable


def test_command_line_overrides_the_user_file(party):
    status, err, mails = layered_run(party, "mail = no\n", "mail = no\n", "-m", "yes")
    assert status == 0, err
    assert mails == participant(party, "plain").mailable


# -- the first run ------------------------------------------------------------------------

def test_first_run_writes_a_config_from_the_gpg_keys_and_stops(party):
    home = os.path.join(new_dir(), "h")
    os.mkdir(home, 0o700)
    user_file = os.path.join(home, ".caffrc")
    env = base_env(home, party.user_home, user_file)
    frank = participant(party, "plain")
    args = ["--batch", "-m", "yes", "-R", "--key-file", party.key_file, frank.fingerprint]

    status, out, err = run_caffpy(args, env)
    assert status == 78, err
    assert user_file in err and "Traceback" not in err
    with open(user_file) as handle:
        written = handle.read()
    keyids = re.search(r"^keyid\s*=\s*(.*)$", written, re.M).group(1)
    assert sorted(k.strip() for k in keyids.split(",")) == sorted(party.signers)
    assert re.search(r"^email\s*=\s*signer@example\.org\s*$", written, re.M)
    assert not os.stat(user_file).st_mode & 0o022
    assert not os.path.exists(os.path.join(home, ".caff")), "it went on instead of stopping"

    mbox = os.path.join(home, "review.mbox")
    status, out, err = run_caffpy(args + ["--mbox", mbox], env)
    assert status == 0, err
    assert [m["To"] for m in mailbox.mbox(mbox)] == frank.mailable
