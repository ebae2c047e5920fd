"""The progress line: on a terminal, each phase with key n of N and the time left;
when stderr is not a terminal, none of it, only warnings and the summary."""

import os
import re
import subprocess

from conftest import PYTHON, REPO, read_terminal

CLEAR_LINE = "\r\x1b[K"


def run_with_stderr_on_terminal(caff, timeout=120):
    """caffpy --batch on the party, stderr a pseudo-terminal; (status, what it showed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([PYTHON, "-m", "caffpy", "--batch", "-m", "yes", "-R",
                             "--key-file", caff.party.key_file, *caff.party.fingerprints],
                            env=caff.env, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        shown = read_terminal(master, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    return proc.returncode, shown.decode("utf-8", "replace")


def progress_lines(text):
    """The states of the progress line, as the terminal showed them one after another."""
    return [part.split("\r\n")[0] for part in text.split(CLEAR_LINE)[1:] if part.strip()]


def test_on_a_terminal_each_phase_shows_n_of_total_and_time_left(caff):
    code, shown = run_with_stderr_on_terminal(caff)
    assert code == 0, shown
    lines = progress_lines(shown)
    phases = []
    for line in lines:
        phase = re.split(r" \d|:", line)[0]
        if not phases or phases[-1] != phase:
            phases.append(phase)
    assert phases[:1] == ["importing the keys in %s" % caff.party.key_file], phases
    assert ["certifying", "encrypting mails", "mailing"] == \
        [p for p in phases if p in ("certifying", "encrypting mails", "mailing")], phases
    usable = [p for p in caff.party.participants if p.kind != "expired"]
    certifying = [line for line in lines if line.startswith("certifying ")]
    assert "certifying %d/%d" % (len(usable), len(usable)) in certifying[-1]
    assert any(re.match(r"certifying \d+/\d+, about \d+s left: 0x[0-9A-F]{16}$", line)
               for line in certifying), certifying
    mails = len(caff.party.expected_mails())
    assert any(line.startswith("mailing %d/%d" % (mails, mails)) for line in lines)
    # The line is cleared before the summary, which is printed as usual.
    assert "Summary:" in shown.split(CLEAR_LINE)[-1]


def test_without_a_terminal_only_warnings_and_the_summary(caff):
    code, out, err = caff.run_party()
    assert code == 0, err
    assert "\x1b[K" not in err and "\r" not in err
    assert not re.search(r"(certifying|encrypting mails|mailing) \d+/\d+", err)
    assert "Summary:" in err and "mails handed to the MTA: %d" % len(
        caff.party.expected_mails()) in err
