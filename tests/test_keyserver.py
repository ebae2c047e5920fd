"""Keys fetched from a keyserver (issue 5, item 3), against a local HKP server.

caffpy passes `keyserver` to gpg --recv-keys, whose dirmngr runs in caffpy's
own GNUPGHOME; Stage.close() stops it (gpgconf --kill all). The server
(tests/hkp.py) answers each fingerprint with whatever the test puts in its
dict: the right key, a different key, a key that carries the requested
fingerprint only as a subkey, a flooded key, garbage, or nothing at all.
"""

import os
import time

import pytest

import crafting
from hkp import KeyServer
from pipeline_kit import Stage, gpg, issuers

RECV_TIMEOUT = 3


@pytest.fixture
def keyserver():
    with KeyServer() as server:
        yield server


@pytest.fixture
def stage(keyserver):
    stage = Stage(participants=1, extra_config="keyserver = %s\nrecv-timeout = %d\n"
                  % (keyserver.url, RECV_TIMEOUT))
    yield stage
    stage.close()


def _fetch(stage, fingerprints, key_files=()):
    """caffpy --batch -m yes [--key-file F] FPR..., with the keyserver enabled."""
    return stage.certify_and_mail(fingerprints, key_files, download=True, timeout=120)


def _certified_by_us(stage, fingerprint) -> bool:
    listing = gpg(stage.caff_gnupghome, "--with-colons", "--list-sigs", "--", fingerprint,
                  check=False).stdout.decode("utf-8", "replace")
    return any(signer in listing for signer in stage.signer_key_ids())


def test_key_is_fetched_from_the_keyserver_and_mailed(stage, keyserver):
    participant = stage.party.participants[0]
    keyserver.answers[participant.fingerprint] = stage.export([participant.fingerprint])
    result = _fetch(stage, [participant.fingerprint])
    assert "Traceback" not in result.output
    assert result.returncode == 0, result.output
    assert set(keyserver.requests) == {participant.fingerprint}
    assert sorted(m.recipient for m in stage.mails()) == sorted(participant.mailable)


@pytest.mark.parametrize("bound", [False, True], ids=["unbound", "bound"])
def test_answer_carrying_the_fingerprint_only_as_a_subkey_is_refused(stage, keyserver, bound):
    """gpg's import screener lets such a key through (notes T3); caffpy must not sign it."""
    victim = stage.party.participants[0]
    victim_body = crafting.split_packets(stage.export([victim.fingerprint], armor=False))[0][1]
    attacker = crafting.build_key([b"Mallory <mallory@evil.test>"], seed=b"hkp-attacker")
    keyserver.answers[victim.fingerprint] = crafting.armor(
        crafting.smuggle(attacker, victim_body, bind=bound))
    result = _fetch(stage, [victim.fingerprint])
    assert "Traceback" not in result.output
    assert result.returncode == 66, result.output
    assert set(keyserver.requests) == {victim.fingerprint}
    assert any(victim.fingerprint in line for line in result.lines() if "error" in line), \
        result.output
    if bound:
        assert "subkey" in result.output and attacker.fingerprint in result.output
    assert stage.mails() == []
    assert not _certified_by_us(stage, attacker.fingerprint)
    assert not _certified_by_us(stage, victim.fingerprint)


def test_answer_with_another_key_is_refused(stage, keyserver):
    victim = stage.party.participants[0]
    other = crafting.build_key([b"Other <other@evil.test>"], seed=b"hkp-other")
    keyserver.answers[victim.fingerprint] = other.armored()
    result = _fetch(stage, [victim.fingerprint])
    assert "Traceback" not in result.output
    assert result.returncode == 66, result.output
    assert victim.fingerprint in result.output
    assert stage.mails() == []
    assert not _certified_by_us(stage, other.fingerprint)


def test_garbage_answer_is_reported_not_a_crash(stage, keyserver):
    victim = stage.party.participants[0]
    keyserver.answers[victim.fingerprint] = os.urandom(4096)
    result = _fetch(stage, [victim.fingerprint])
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.returncode == 66, result.output
    assert victim.fingerprint in result.output
    assert stage.mails() == []


def test_flooded_key_from_the_keyserver_reaches_no_mail(stage, keyserver):
    participant = stage.party.participants[0]
    address = participant.mailable[0]
    exported = stage.export([participant.fingerprint], armor=False)
    uid = next(body for tag, body in crafting.split_packets(exported)
               if tag == crafting.TAG_USER_ID and address.encode() in body)
    keyserver.answers[participant.fingerprint] = crafting.armor(
        crafting.flood_export(exported, uid, 5000))
    start = time.monotonic()
    result = _fetch(stage, [participant.fingerprint])
    assert time.monotonic() - start < 60
    assert result.returncode == 0, result.output
    mail = next(m for m in stage.mails() if m.recipient == address)
    packets = stage.attached_keys(mail)[0]
    assert set(issuers(packets)) == set(stage.signer_key_ids()) | {participant.fingerprint[-16:]}
    assert len([p for p in packets if p[0] == crafting.TAG_SIGNATURE]) == 1 + len(stage.signer_key_ids())


def test_stalled_keyserver_times_out_and_the_run_goes_on(stage, keyserver):
    """The key is also in a key file: after recv-timeout the run certifies and mails it."""
    participant = stage.party.participants[0]
    keyserver.stalled.add(participant.fingerprint)
    result = _fetch(stage, [participant.fingerprint], [stage.party.key_file])
    assert "Traceback" not in result.output
    assert set(keyserver.requests) == {participant.fingerprint}
    assert result.seconds < RECV_TIMEOUT + 20, result.seconds
    assert "within %d seconds" % RECV_TIMEOUT in result.output, result.output
    assert result.returncode == 0, result.output
    assert sorted(m.recipient for m in stage.mails()) == sorted(participant.mailable)


def test_stalled_keyserver_for_a_key_found_nowhere_else(stage, keyserver):
    missing = crafting.build_key([b"Away <away@example.org>"], seed=b"hkp-away")
    keyserver.stalled.add(missing.fingerprint)
    result = _fetch(stage, [missing.fingerprint])
    assert "Traceback" not in result.output
    assert result.seconds < RECV_TIMEOUT + 20, result.seconds
    assert result.returncode == 66, result.output
    assert "within %d seconds" % RECV_TIMEOUT in result.output
    assert missing.fingerprint in result.output
    assert stage.mails() == []
