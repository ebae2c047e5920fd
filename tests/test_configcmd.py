"""caffpy config --show (values and where they were set) and --migrate (caff's Perl file
rewritten in caffpy's format, reading back to the same values)."""

import json
import os
import re

import pytest

from caffpy import config, configcmd
from conftest import DATA, base_env, new_dir, run_caffpy

CORPUS = os.path.join(DATA, "caffrc-corpus")
FPR = "0123456789ABCDEF0123456789ABCDEF01234567"


def write(path, text, mode=0o600):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)
    return path


def setup_user(user_text, system_text=None):
    """A HOME with ~/.caffrc (and a system file); (env, home, user file, system file)."""
    base = new_dir()
    home = os.path.join(base, "home")
    os.mkdir(home, 0o700)
    user = write(os.path.join(home, ".caffrc"), user_text)
    system = write(os.path.join(base, "system-caffrc"), system_text or "", 0o644)
    env = base_env(home, os.path.join(home, ".gnupg"), system + ":" + user)
    return env, home, user, system


def shown(out):
    """--show's output as {key: (value text, origin)}; unset keys as (None, None)."""
    result = {}
    for line in out.splitlines():
        unset = re.match(r"^# (\S+) is not set$", line)
        if unset:
            result[unset.group(1)] = (None, None)
        elif not line.startswith("#"):
            key, value, origin = re.match(r"^(\S+) = (.*?)    # (.*)$", line).groups()
            result[key] = (value, origin)
    return result


def corpus(number):
    with open(os.path.join(CORPUS, number + ".caffrc"), encoding="utf-8") as handle:
        return handle.read()


# -- --show ----------------------------------------------------------------------------------

def test_show_names_the_origin_of_every_value():
    env, home, user, system = setup_user(
        "owner = Jane Doe\nemail = jane@example.org\nkeyid = %s\ncert-level = 3\n" % FPR,
        "cert-level = 2\nmail = no\nmail-subject = Signed: 0x%k\n")
    status, out, err = run_caffpy(["config", "--show", "-R", "-u", FPR], env)
    assert status == 0, err
    values = shown(out)
    assert set(values) == {key for key, _, _ in config.spec_entries()}
    assert values["owner"] == ("Jane Doe", user)
    assert values["keyid"] == (FPR, user)
    assert values["cert-level"] == ("3", user)               # the user's file wins
    assert values["mail"] == ("no", system)                  # only the system file sets it
    assert values["mail-subject"] == ("Signed: 0x%k", system)
    assert values["no-download"] == ("yes", "command line")
    assert values["local-user"] == (FPR, "command line")
    assert values["gpg"] == ("gpg", "default")
    assert values["caffhome"] == (os.path.join(home, ".caff"), "default")
    assert err == ""


def test_show_with_a_command_line_override_of_a_file_value():
    env, _, user, system = setup_user("owner = A\nmail = ask-no\n", "mail = no\n")
    status, out, err = run_caffpy(["config", "--show", "-m", "yes"], env)
    assert status == 0, err
    values = shown(out)
    assert values["mail"] == ("yes", "command line")
    assert values["owner"] == ("A", user)
    assert values["email"] == (None, None) and values["keyid"] == (",", "default")


def test_show_reads_a_perl_file_and_warns_once():
    env, _, user, _ = setup_user(corpus("16"))
    status, out, err = run_caffpy(["config", "--show"], env)
    assert status == 0, err
    values = shown(out)
    assert values["sendmail"] == ("/usr/sbin/sendmail", user)
    assert values["bcc"] == ("user16@example.org", user)
    assert values["local-user"] == ("BCB52BF1EFC5F538", user)
    assert err.count("is a caff configuration (Perl)") == 1
    assert "not taken: line 7 mailer-send" in err and "caffpy config --migrate" in err


def test_show_prints_a_template_in_triple_quotes():
    env, _, user, _ = setup_user(corpus("07"))
    status, out, err = run_caffpy(["config", "--show"], env)
    assert status == 0, err
    template = re.search(r"^mail-template = '''(.*?)'''    # ([^\n]*)$", out, re.M | re.S)
    assert template.group(2) == user
    assert template.group(1).startswith("Hi,\n\nplease find attached the user id$plural\n$uids\n")


# -- --migrate -------------------------------------------------------------------------------

def migratable():
    """Corpus files caffpy reads (caff's refused 33, 37, 38 are not)."""
    numbers = []
    for name in sorted(os.listdir(os.path.join(CORPUS, "expected"))):
        with open(os.path.join(CORPUS, "expected", name), encoding="utf-8") as handle:
            want = json.load(handle)
        if name[2:] == ".json" and want["perl_eval_ok"] and not want[
                "caff_2_11_load_config_errors"]:
            numbers.append(name[:2])
    return numbers


@pytest.mark.parametrize("number", migratable())
def test_migrated_file_loads_to_the_same_configuration(number, monkeypatch, capsys):
    home = new_dir()
    monkeypatch.setenv("HOME", home)
    perl = write(os.path.join(home, "perl-caffrc"), corpus(number))
    migrated = os.path.join(home, "caffrc")
    assert configcmd.migrate(perl, migrated, force=False) == 0
    assert not config.perlconf.looks_like_perl(open(migrated, encoding="utf-8").read()
                                               .splitlines())
    assert config.read_file(migrated) == config.read_file(perl)
    monkeypatch.setenv(config.CONFIG_FILES_ENV, perl)
    before = config.load()
    monkeypatch.setenv(config.CONFIG_FILES_ENV, migrated)
    after = config.load()
    assert after.values == before.values
    assert os.stat(migrated).st_mode & 0o077 == 0
    assert "wrote %s" % migrated in capsys.readouterr().err


def test_migrate_prints_to_stdout_with_what_was_not_taken():
    env, _, user, _ = setup_user(corpus("11"))
    with open(user, "rb") as handle:
        original = handle.read()
    status, out, err = run_caffpy(["config", "--migrate"], env)
    assert status == 0, err
    assert out.startswith("# caffpy configuration, written by `caffpy config --migrate`")
    assert "# - line 52 mailer-send: caffpy does not talk SMTP itself" in out
    assert "p+Ss!w0d" not in out + err                       # the SMTP password in the file
    assert re.search(r"^keyid = B80D5ECE853E9C3B, B444B416886818E2$", out, re.M)
    assert re.search(r"^ask-sign = yes$", out, re.M)
    with open(user, "rb") as handle:
        assert handle.read() == original


def test_migrate_writes_a_template_and_a_quoted_owner_that_read_back():
    env, home, user, _ = setup_user(corpus("09"))
    status, out, err = run_caffpy(["config", "--migrate"], env)
    assert status == 0, err
    assert "owner = '\"Example Person 09\"'" in out
    assert "mail-template = '''\n      [ This automated message" in out
    assert "# - line 4 local-user: 3AE04B44 is a short key ID" in out


def test_migrate_never_overwrites_without_force_and_keeps_the_perl_original():
    env, home, user, _ = setup_user(corpus("15"))
    status, _, err = run_caffpy(["config", "--migrate", "--output", user], env)
    assert status == 64 and "--force" in err
    assert open(user, encoding="utf-8").read() == corpus("15")

    status, _, err = run_caffpy(["config", "--migrate", "--output", user, "--force"], env)
    assert status == 0, err
    assert open(user + ".caff-perl", encoding="utf-8").read() == corpus("15")
    migrated = open(user, encoding="utf-8").read()
    assert "sendmail = %s/bin/msmtp/msmtp-default" % home in migrated
    status, out, err = run_caffpy(["config", "--show"], env)
    assert status == 0 and "caff configuration (Perl)" not in err
    assert shown(out)["caffhome"] == (os.path.join(home, ".caff"), user)

    write(user, corpus("15"))                               # Perl again, backup still there
    status, _, err = run_caffpy(["config", "--migrate", "--output", user, "--force"], env)
    assert status == 64 and ".caff-perl exists" in err
    assert open(user, encoding="utf-8").read() == corpus("15")


def test_migrate_with_force_replaces_another_file():
    env, home, user, _ = setup_user(corpus("08"))
    other = write(os.path.join(home, "new"), "old text\n")
    status, _, err = run_caffpy(["config", "--migrate", "--output", other, "--force"], env)
    assert status == 0, err
    assert "owner = Example Person 08" in open(other, encoding="utf-8").read()
    assert not os.path.exists(other + ".caff-perl")


def test_migrating_a_caffpy_file_changes_nothing():
    env, _, user, _ = setup_user("owner = A\n")
    status, out, err = run_caffpy(["config", "--migrate", "--output", user + ".new"], env)
    assert status == 0 and out == ""
    assert "already in caffpy's format" in err
    assert not os.path.exists(user + ".new")


def test_migrate_refuses_values_caffpy_refuses():
    env, _, user, _ = setup_user(corpus("37"))            # placeholders, not key IDs
    status, out, err = run_caffpy(["config", "--migrate"], env)
    assert status == 78 and out == ""
    assert "%s, line 3: key 'keyid'" % user in err


@pytest.mark.parametrize("args", [
    ["config"], ["config", "--show", "--migrate"], ["config", "--migrate", "--force"],
    ["config", "--show", "--output", "x"], ["config", "--migrate", "-m", "no"],
    ["config", "--show", "--no-such-option"],
])
def test_config_usage_errors(args):
    env, _, _, _ = setup_user("owner = A\n")
    status, out, err = run_caffpy(args, env)
    assert status == 64, (status, out, err)
    assert "usage: caffpy" in err and "Traceback" not in err


def test_migrate_of_a_missing_file_is_a_config_error():
    env, _, user, _ = setup_user("")
    os.unlink(user)
    status, _, err = run_caffpy(["config", "--migrate"], env)
    assert status == 78 and "does not exist" in err
