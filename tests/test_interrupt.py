"""Ctrl-C at each step of a run: exit 130, no traceback, and the next run finishes the job
with exactly one mail per user ID and no certification made twice."""

import collections
import os
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, REPO, certifications_per_uid, use_gpg_wrapper

SLOW_GPG = """#!/bin/sh
# gpg that records each call and dawdles at one step, so Ctrl-C can land there.
echo "$*" >> "%(log)s"
case "$*" in *%(marker)s*) sleep 3;; esac
exec gpg "$@"
"""


def start(caff, *args):
    """caffpy in a process group of its own, like a terminal's foreground job."""
    return subprocess.Popen([PYTHON, "-m", "caffpy", "--batch", "-m", "yes", "-R",
                             "--key-file", caff.party.key_file, *args, *caff.party.fingerprints],
                            env=caff.env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def interrupt(proc):
    """Ctrl-C: SIGINT to the whole foreground process group (caffpy and its gpg)."""
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode("utf-8", "replace")


def finish_and_check(caff):
    """Run again without interference; then one mail per address in total, nothing twice."""
    caff.write_config()                         # the real gpg again
    code, out, err = caff.run_party()
    assert code == 0, err
    sent = collections.Counter(call.recipient for call in caff.sendmail.sent())
    assert sorted(sent) == sorted(caff.party.expected_mails())
    assert set(sent.values()) == {1}, sent
    counts = certifications_per_uid(caff.caffhome, [s[-16:] for s in caff.party.signers])
    assert counts and set(counts.values()) == {1}, counts


@pytest.mark.parametrize("marker", ["--import", "--quick-sign-key", "--encrypt"])
def test_ctrl_c_in_a_gpg_step(caff, marker):
    log = use_gpg_wrapper(caff, SLOW_GPG, marker=marker)
    proc = start(caff)
    wait_for(lambda: os.path.exists(log) and marker in open(log).read())
    time.sleep(0.3)
    code, err = interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err and "interrupted" in err
    finish_and_check(caff)


def test_ctrl_c_while_the_mta_has_a_message(caff):
    first = sorted(caff.party.expected_mails())[0]
    caff.sendmail.control(block=first)
    proc = start(caff)
    waiting = os.path.join(caff.sendmail.directory, "waiting")
    wait_for(lambda: os.path.exists(waiting))
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None          # caffpy waits for the message under way ...
    open(os.path.join(caff.sendmail.directory, "release"), "w").close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    err = err.decode("utf-8", "replace")
    assert "Traceback" not in err
    # ... and recorded it: the next run does not send it again.
    caff.sendmail.control()
    finish_and_check(caff)
