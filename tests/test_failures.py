"""What a user sees when something goes wrong: the MTA, missing keys, bad key IDs, a second run."""

import os
import subprocess
import time

from conftest import PYTHON, REPO, certifications_by, gpg, participant, summary_has


def recipients(calls):
    return sorted(call.recipient for call in calls)


def test_mta_failure_exit_75_then_next_run_sends_only_the_failed_mail(caff, party):
    victim = participant(party, "plain").mailable[0]
    caff.sendmail.control(fail={victim: (75, "451 4.3.0 mail queue is full (test MTA)")})
    status, _, err = caff.run_party()
    assert status == 75, err
    assert summary_has(err, "mail queue is full (test MTA)"), err
    assert summary_has(err, victim), err
    others = sorted(a for a in party.expected_mails() if a != victim)
    assert recipients(caff.sendmail.sent()) == others
    first_run = caff.sendmail.calls()

    caff.sendmail.control()          # the MTA works again
    status, _, err = caff.run_party()
    assert status == 0, err
    new_calls = caff.sendmail.calls()[len(first_run):]
    assert recipients(new_calls) == [victim]
    assert all(call.status == 0 for call in new_calls)
    [refused] = [c for c in first_run if c.recipient == victim]
    assert new_calls[0].parsed()["Message-ID"] == refused.parsed()["Message-ID"]


def test_missing_sendmail_stops_before_any_certification(caff, party):
    missing = os.path.join(caff.base, "no-such-sendmail")
    caff.write_config(sendmail=missing)
    status, _, err = caff.run_party()
    assert status == 69, err
    assert missing in err
    assert "Traceback" not in err
    assert certifications_by(caff.caffhome, party.signers) == []


def test_key_missing_from_key_file_is_reported_and_others_are_mailed(caff, party, third_party):
    frank, grace = participant(party, "plain"), participant(party, "unicode")
    wanted = [frank.fingerprint, third_party.fingerprint, grace.fingerprint]
    status, _, err = caff.run_party(fingerprints=wanted)
    assert status == 66, err
    assert third_party.fingerprint in err
    assert recipients(caff.sendmail.sent()) == sorted(frank.mailable + grace.mailable), err


def test_subkey_fingerprint_is_refused(caff, party):
    frank = participant(party, "plain")
    listing = gpg(party.participants_home, "--with-colons", "--with-subkey-fingerprint",
                  "--list-keys", frank.fingerprint).decode()
    fprs = [line.split(":")[9] for line in listing.split("\n") if line.startswith("fpr:")]
    subkey = fprs[1]
    assert subkey != frank.fingerprint
    status, _, err = caff.run_party(fingerprints=[subkey])
    assert status == 66, err
    assert subkey in err and "subkey" in err
    assert caff.sendmail.calls() == []
    assert certifications_by(caff.caffhome, party.signers) == []


def test_short_key_id_is_refused(caff, party):
    frank = participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=[frank.fingerprint[-8:]])
    assert status == 65, err
    assert frank.fingerprint[-8:] in err and "short key ID" in err
    assert caff.sendmail.calls() == []


def test_long_key_id_is_accepted_with_a_warning(caff, party):
    frank = participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=["0x" + frank.fingerprint[-16:]])
    assert status == 0, err
    assert "warning" in err and "long key ID" in err
    assert recipients(caff.sendmail.sent()) == frank.mailable


def test_second_run_at_the_same_time_is_refused(caff, party):
    frank, grace = participant(party, "plain"), participant(party, "unicode")
    caff.sendmail.control(block=frank.mailable[0])
    args = ["--batch", "-m", "yes", "-R", "--key-file", party.key_file, frank.fingerprint]
    first = subprocess.Popen([PYTHON, "-m", "caffpy"] + args, env=caff.env, cwd=REPO,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        waiting = os.path.join(caff.sendmail.directory, "waiting")
        deadline = time.time() + 60
        while not os.path.exists(waiting) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(waiting), "the first run never reached sendmail"

        status, _, err = caff.run_party(fingerprints=[grace.fingerprint])
        assert status != 0
        assert "another caffpy run" in err and caff.caffhome in err
        assert "internal error" not in err and "Traceback" not in err
    finally:
        open(os.path.join(caff.sendmail.directory, "release"), "w").close()
        _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert recipients(caff.sendmail.sent()) == frank.mailable
