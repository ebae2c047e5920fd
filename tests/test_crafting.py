"""tests/crafting.py makes keys gpg accepts as intended: otherwise the hostile-key
tests would prove nothing. Each test imports a crafted key into a throwaway
gpg home and checks what gpg itself reports."""

import shutil

import pytest

import crafting
from pipeline_kit import gpg, short_tempdir, stop_agents


@pytest.fixture
def home():
    path = short_tempdir()
    yield path
    stop_agents(path)
    shutil.rmtree(path, ignore_errors=True)


def uid_records(home, fingerprint):
    out = gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys", "--", fingerprint).stdout
    return [line.split(b":") for line in out.split(b"\n") if line.startswith(b"uid:")]


def test_expired_uid_key_is_valid_with_one_expired_uid_and_decrypts(home):
    key = crafting.expired_uid_key()
    gpg(home, "--import", input=key.armored())
    validity = {fields[9]: fields[1] for fields in uid_records(home, key.fingerprint)}
    assert validity == {key.uids[0]: b"-", key.uids[1]: b"e"}
    check = gpg(home, "--check-sigs", "--", key.fingerprint)
    assert b"bad signature" not in check.stderr
    # the secret export decrypts what is encrypted to the key
    gpg(home, "--import", input=key.secret_armored())
    encrypted = gpg(home, "--trust-model", "always", "--armor", "--encrypt", "--recipient",
                    key.fingerprint, input=b"certification").stdout
    assert gpg(home, "--decrypt", input=encrypted).stdout == b"certification"


def test_arbitrary_uid_bytes_are_imported_as_crafted(home):
    uids = [b"Carrier <c@example.org>", b"Alice <a@example.org>\0<m@evil.test>",
            b"Bad \xff\xfe <b@example.org>", b"CR\r\nBcc: x@evil.test <cr@example.org>",
            b"L" * 1500 + b" <long@example.org>"]
    key = crafting.build_key(uids, seed=b"bytes")
    gpg(home, "--import", input=key.public)
    exported = gpg(home, "--export", "--", key.fingerprint).stdout
    imported = [body for tag, body in crafting.split_packets(exported)
                if tag == crafting.TAG_USER_ID]
    assert sorted(imported) == sorted(uids)


def test_over_long_uid_packet_is_dropped_by_gpg_and_the_key_kept(home):
    key = crafting.build_key([b"Ok <ok@example.org>", b"X" * 2049], seed=b"overlong")
    result = gpg(home, "--import", input=key.public, check=False)
    assert result.returncode == 2 and b"too large" in result.stderr
    assert [fields[9] for fields in uid_records(home, key.fingerprint)] == [b"Ok <ok@example.org>"]


@pytest.mark.parametrize("bound", [False, True])
def test_smuggled_subkey(home, bound):
    victim = crafting.build_key([b"Victim <v@example.org>"], seed=b"victim")
    attacker = crafting.build_key([b"Mallory <m@evil.test>"], seed=b"attacker")
    gpg(home, "--import", input=crafting.smuggle(attacker, victim.primary.body, bind=bound))
    listing = gpg(home, "--with-colons", "--list-keys").stdout.decode()
    fprs = [line.split(":")[9] for line in listing.split("\n") if line.startswith("fpr:")]
    assert fprs[0] == attacker.fingerprint
    # gpg drops an unbound subkey; a bound one is listed as the attacker's subkey
    assert (victim.fingerprint in fprs[1:]) == bound
    assert len([line for line in listing.split("\n") if line.startswith("pub:")]) == 1


def test_flood_certifications_are_valid_and_cleaned_on_import(home):
    key = crafting.build_key([b"Flooded <f@example.org>"], seed=b"flooded")
    flooded = crafting.flood(key, 200)
    flooder = crafting.Ed25519(b"flooder")
    gpg(home, "--import", input=flooder_key(flooder))
    gpg(home, "--import", input=flooded)
    sigs = gpg(home, "--with-colons", "--check-sigs", "--", key.fingerprint).stdout.decode()
    good = [line for line in sigs.split("\n") if line.startswith("sig:!")
            and flooder.key_id in line]
    assert len(good) == 200                   # real, verifiable certifications
    other = short_tempdir()
    try:
        gpg(other, "--import", "--import-options", "import-clean", input=flooded)
        sigs = gpg(other, "--with-colons", "--list-sigs", "--", key.fingerprint).stdout.decode()
        assert flooder.key_id not in sigs     # what caffpy's import option relies on
    finally:
        stop_agents(other)
        shutil.rmtree(other, ignore_errors=True)


def flooder_key(flooder):
    return crafting.build_key([b"Flooder <flood@evil.test>"], primary=flooder, encrypt=False).public
