"""The generated files in the source tree must match the code.

conf/caffrc (/etc/caffrc), man/caffpy.1, man/caffrc.5 and completions/caffpy
are made by caffpy/docgen.py and committed; `make docs` rewrites them. These
tests fail when one is out of date, and check on their own (without trusting
the generator) that every key and option is documented.
"""

import difflib
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from caffpy import cli, config, docgen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def committed(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def roff_name(text):
    """How a key or option is written in bold in the man page source."""
    return "\\fB%s\\fR" % text.replace("-", "\\-")


@pytest.mark.parametrize("path", sorted(docgen.OUTPUTS))
def test_generated_file_is_up_to_date(path):
    want = docgen.OUTPUTS[path]()
    have = committed(path)
    if have != want:
        diff = "".join(list(difflib.unified_diff(
            have.splitlines(True), want.splitlines(True), "committed " + path,
            "generated now"))[:40])
        pytest.fail("%s is out of date: run `make docs` and commit it\n%s" % (path, diff))


SPEC_KEYS = [key for key, _, _ in config.spec_entries()]


@pytest.mark.parametrize("key", SPEC_KEYS)
def test_every_key_is_in_etc_caffrc_with_its_explanation(key):
    text = committed("conf/caffrc")
    explanation = dict((k, e) for k, _, e in config.spec_entries())[key]
    assert re.search(r"^# %s\n# %s =" % (re.escape(explanation), re.escape(key)), text,
                     re.M), "conf/caffrc lacks '# %s = ...' under its explanation" % key


@pytest.mark.parametrize("key", SPEC_KEYS)
def test_every_key_is_in_caffrc_5(key):
    assert roff_name(key) in committed("man/caffrc.5"), "caffrc(5) does not describe " + key


def parsers():
    return [("caffpy", cli.build_parser())] + [
        ("caffpy " + name, parser) for name, parser in docgen.commands()]


@pytest.mark.parametrize("name,option", [
    (name, option) for name, parser in parsers()
    for action in parser._actions for option in action.option_strings])
def test_every_option_is_in_caffpy_1(name, option):
    page = committed("man/caffpy.1")
    if name != "caffpy":        # a command's options are in its own subsection
        page = page.split(".SS %s\n" % name.replace("-", "\\-"), 1)[-1].split(".SS ")[0]
    assert roff_name(option) in page, "caffpy(1) does not describe %s %s" % (name, option)


def test_every_command_is_in_caffpy_1():
    for name in cli.COMMANDS:
        assert ".SS caffpy %s\n" % name in committed("man/caffpy.1")


def test_etc_caffrc_uncommented_gives_the_defaults():
    """Each commented-out line, made active, must set exactly the built-in default."""
    lines = [line[2:] if re.match(r"^# [a-z-]+ = ", line) else line
             for line in committed("conf/caffrc").splitlines()]
    lines = [line for line in lines
             if not re.match(r"^(%s) =\s*$" % "|".join(config.REQUIRED_KEYS), line)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "caffrc")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        values = config.read_file(path)
    defaults = config.spec_defaults()
    assert set(values) == {k for k in defaults if defaults[k] is not None}
    for key, value in values.items():
        assert value == defaults[key], key


def test_etc_caffrc_as_shipped_sets_nothing():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "caffrc")
        shutil.copy(os.path.join(ROOT, "conf/caffrc"), path)
        assert config.read_file(path) == {}


@pytest.mark.skipif(not shutil.which("man"), reason="man-db is not installed")
@pytest.mark.parametrize("page", ["man/caffpy.1", "man/caffrc.5"])
def test_man_page_renders_without_warnings(page):
    # What lintian runs on every man page.
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    proc = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                           os.path.join(ROOT, page)], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# -- bash completion --------------------------------------------------------------

FAKE_GPG = """#!/bin/sh
# Listings as gpg --with-colons prints them: a subkey's fpr must not be offered.
case "$*" in
*--list-secret-keys*)
    echo 'sec:u:255:22:AAAAAAAAAAAAAAAA:1:::u:::scESC:::+:::ed25519:::0:'
    echo 'fpr:::::::::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:' ;;
*--list-keys*)
    echo 'pub:u:255:22:AAAAAAAAAAAAAAAA:1:::u:::scESC::::::ed25519:::0:'
    echo 'fpr:::::::::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:'
    echo 'uid:u::::1::HASH::Me <me@example.org>::::::::::0:'
    echo 'sub:u:255:18:CCCCCCCCCCCCCCCC:1::::::e:::::cv25519::'
    echo 'fpr:::::::::CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC:'
    echo 'pub:-:255:22:BBBBBBBBBBBBBBBB:1:::-:::scSC::::::ed25519:::0:'
    echo 'fpr:::::::::BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB:' ;;
esac
"""
A, B = "A" * 40, "B" * 40


def complete(line, tmp):
    """The candidates bash offers for the last word of line."""
    words = line.split(" ")
    script = ('source "$1"; COMP_WORDS=(%s); COMP_CWORD=%d; _caffpy; '
              'printf "%%s\\n" "${COMPREPLY[@]}"'
              % (" ".join("'%s'" % w for w in words), len(words) - 1))
    env = dict(os.environ, PATH=tmp + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    out = subprocess.run(["bash", "-c", script, "bash",
                          os.path.join(ROOT, "completions/caffpy")],
                         env=env, capture_output=True, text=True, check=True).stdout
    return sorted(w for w in out.split("\n") if w)


@pytest.fixture(scope="module")
def fake_gpg():
    with tempfile.TemporaryDirectory() as tmp:
        gpg = os.path.join(tmp, "gpg")
        with open(gpg, "w") as handle:
            handle.write(FAKE_GPG)
        os.chmod(gpg, 0o755)
        yield tmp


@pytest.mark.parametrize("line,expected", [
    ("caffpy --no-d", ["--no-download"]),
    ("caffpy -m ask", ["ask-no", "ask-yes"]),
    ("caffpy --mail n", ["no"]),
    ("caffpy ", sorted(list(cli.COMMANDS) + [A, B])),
    ("caffpy B", [B]),
    ("caffpy -R " + A[:3], [A]),
    ("caffpy -u ", [A]),
    ("caffpy -u %s," % B, [B + "," + A]),
    ("caffpy doctor --", ["--config", "--debug", "--help", "--send-test"]),
    ("caffpy retry --m", ["--mbox"]),
    ("caffpy status ", []),
])
def test_completion(fake_gpg, line, expected):
    assert complete(line, fake_gpg) == expected


def test_completion_offers_every_option(fake_gpg):
    offered = complete("caffpy -", fake_gpg)
    assert offered == sorted(o for a in cli.build_parser()._actions for o in a.option_strings)
