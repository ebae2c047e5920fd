"""Key discovery beyond key files: several keyservers, keys.openpgp.org's stripped
keys, and WKD (issue 8, part 2).

Everything runs real gpg 2.2.40 and its dirmngr in caffpy's own GNUPGHOME:
keyservers are local HKP servers (tests/hkp.py) answering what a test puts in
them, for example a key stripped of its user IDs the way keys.openpgp.org
serves keys whose owner has not confirmed an address. WKD is a local HTTPS
server that dirmngr trusts only inside a private mount namespace (tests/wkd.py
says why); those tests need root and are skipped, with the reason, elsewhere.
"""

import os
import subprocess

import pytest

import crafting
import wkd as wkd_kit
from conftest import (PYTHON, REPO, certifications_by, gpg, new_caff, new_dir, participant,
                      register_gpg_home)
from caffpy import gpg as gpgmod
from hkp import KeyServer
from partylist_kit import organiser_list, ticked_copy

TIMEOUT = "recv-timeout = 20\n"


def public_key(party, fingerprint) -> bytes:
    return gpg(party.participants_home, "--export", "--", fingerprint)


def keep_uids(key: bytes, keep) -> bytes:
    """The key with only the user IDs in keep (and their signatures), as
    keys.openpgp.org serves a key whose other addresses are not confirmed."""
    out, dropping = b"", False
    for tag, body in crafting.split_packets(key):
        if tag == crafting.TAG_USER_ID:
            dropping = body.decode("utf-8", "replace") not in keep
        elif tag != crafting.TAG_SIGNATURE:
            dropping = False
        if not dropping:
            out += crafting.packet(tag, body)
    return out


def uid_of(person, address) -> str:
    return "%s <%s>" % (person.name, address)


def list_for(people, ticked=None) -> bytes:
    """A ticked party list (checksums filled in) showing each person's mailable user IDs."""
    original = organiser_list((p.fingerprint, [uid_of(p, a) for a in p.mailable])
                              for p in people)
    return ticked_copy(original, ticked or range(1, len(people) + 1))


def certified(caff, party):
    return {key for key, _ in certifications_by(caff.caffhome, party.signers)}


def recipients(caff):
    return sorted(call.recipient for call in caff.sendmail.calls())


def stop_dirmngr(caff):
    subprocess.run(["gpgconf", "--homedir", os.path.join(caff.caffhome, "gnupghome"),
                    "--kill", "all"], capture_output=True, timeout=60)


@pytest.fixture
def servers():
    with KeyServer() as first, KeyServer() as second:
        yield first, second


@pytest.fixture
def multi(party):
    """A participant with two mailable user IDs (and a revoked one)."""
    person = participant(party, "multi")
    assert len(person.mailable) == 2
    return person


# -- what gpg 2.2.40 says about a key without user IDs ------------------------------------

def test_gpg_counts_a_key_without_user_ids_only_in_import_res(party, multi):
    """The status output caffpy relies on: no IMPORT_OK, no IMPORT_PROBLEM, exit 0,
    and the key counted in IMPORT_RES's second field."""
    home = register_gpg_home(os.path.join(new_dir(), "g"))
    os.mkdir(home, 0o700)
    result = gpgmod.Gpg(home).run(["--import"], input=keep_uids(public_key(party,
                                                                          multi.fingerprint), []),
                                  check=False)
    fetched = gpgmod.Fetched.of(result)
    assert (fetched.returncode, fetched.fingerprints, fetched.without_uid) == (0, [], 1)
    assert [k for k, _ in result.status] == ["IMPORT_RES"]
    assert b"no user ID" in result.stderr


# -- keyservers ----------------------------------------------------------------------------

def test_key_without_user_ids_from_the_keyserver_is_explained(party, multi, servers):
    first, _ = servers
    first.answers[multi.fingerprint] = crafting.armor(keep_uids(public_key(
        party, multi.fingerprint), []))
    caff = new_caff(party, TIMEOUT)
    status, _, err = caff.run("--batch", "-m", "yes", "--keyserver", first.url,
                              multi.fingerprint)
    stop_dirmngr(caff)
    assert status == 66, err
    assert first.requests == [multi.fingerprint]
    error = next(line for line in err.split("\n") if "error:" in line)
    assert multi.fingerprint in error and "without any user ID" in error
    assert "keys.openpgp.org" in error and "--key-file" in error and "--keyserver" in error
    assert "Traceback" not in err
    assert caff.sendmail.calls() == [] and certified(caff, party) == set()


def test_next_keyserver_is_asked_for_what_the_first_sent_without_user_ids(party, multi,
                                                                          servers):
    first, second = servers
    first.answers[multi.fingerprint] = crafting.armor(keep_uids(public_key(
        party, multi.fingerprint), []))
    second.answers[multi.fingerprint] = crafting.armor(public_key(party, multi.fingerprint))
    caff = new_caff(party, TIMEOUT)
    status, _, err = caff.run("--batch", "-m", "yes", "--keyserver", first.url,
                              "--keyserver", second.url, multi.fingerprint)
    stop_dirmngr(caff)
    assert status == 0, err
    assert first.requests == [multi.fingerprint] and second.requests == [multi.fingerprint]
    assert "without any user ID" not in err
    assert recipients(caff) == sorted(multi.mailable)


def test_next_keyserver_is_not_asked_when_the_first_had_everything(party, multi, servers):
    first, second = servers
    first.answers[multi.fingerprint] = crafting.armor(public_key(party, multi.fingerprint))
    caff = new_caff(party, TIMEOUT + "keyserver = %s, %s\n" % (first.url, second.url))
    status, _, err = caff.run("--batch", "-m", "yes", stdin=list_for([multi]))
    stop_dirmngr(caff)
    assert status == 0, err
    assert first.requests == [multi.fingerprint] and second.requests == []
    assert recipients(caff) == sorted(multi.mailable)


def test_key_lacking_user_ids_the_party_list_shows_is_pointed_out(party, multi, servers):
    first, _ = servers
    kept = uid_of(multi, multi.mailable[0])
    first.answers[multi.fingerprint] = crafting.armor(keep_uids(public_key(
        party, multi.fingerprint), [kept]))
    caff = new_caff(party, TIMEOUT + "keyserver = %s\n" % first.url)
    status, _, err = caff.run("--batch", "-m", "yes", stdin=list_for([multi]))
    stop_dirmngr(caff)
    assert status == 0, err
    warning = next(line for line in err.split("\n") if "user IDs the party list shows" in line)
    assert multi.fingerprint in warning and "only 1 of the 2" in warning
    assert uid_of(multi, multi.mailable[1]) in warning and kept not in warning
    assert "keys.openpgp.org" in warning and "--key-file" in warning
    assert recipients(caff) == [multi.mailable[0]]      # only the user ID the key has


def test_second_keyserver_completes_a_stripped_key(party, multi, servers):
    first, second = servers
    first.answers[multi.fingerprint] = crafting.armor(keep_uids(public_key(
        party, multi.fingerprint), [uid_of(multi, multi.mailable[0])]))
    second.answers[multi.fingerprint] = crafting.armor(public_key(party, multi.fingerprint))
    caff = new_caff(party, TIMEOUT + "keyserver = %s, %s\n" % (first.url, second.url))
    status, _, err = caff.run("--batch", "-m", "yes", stdin=list_for([multi]))
    stop_dirmngr(caff)
    assert status == 0, err
    assert second.requests == [multi.fingerprint]
    assert "user IDs the party list shows" not in err
    assert recipients(caff) == sorted(multi.mailable)


def test_uidless_keys_among_several_are_told_apart(party, multi, servers):
    """Two keys asked in one call, one of them sent without user IDs: the hint goes
    to that one only (gpg only counts such keys, so caffpy asks again one by one)."""
    first, _ = servers
    plain, unicode = participant(party, "plain"), participant(party, "unicode")
    first.answers[multi.fingerprint] = crafting.armor(public_key(party, multi.fingerprint))
    first.answers[plain.fingerprint] = crafting.armor(keep_uids(public_key(
        party, plain.fingerprint), []))
    caff = new_caff(party, TIMEOUT + "keyserver = %s\n" % first.url)
    status, _, err = caff.run("--batch", "-m", "yes", multi.fingerprint, plain.fingerprint,
                              unicode.fingerprint)
    stop_dirmngr(caff)
    assert status == 66, err
    errors = [line for line in err.split("\n") if "error:" in line]
    assert len(errors) == 2 and all("could not be found" in e for e in errors)
    assert any(plain.fingerprint in e and "without any user ID" in e for e in errors)
    assert any(unicode.fingerprint in e and "without any user ID" not in e for e in errors)
    assert recipients(caff) == sorted(multi.mailable)


# -- WKD -------------------------------------------------------------------------------------

@pytest.fixture
def web_key_directory():
    reason = wkd_kit.unavailable()
    if reason:
        pytest.skip("WKD test: " + reason)
    with wkd_kit.Wkd(new_dir(), ["example.org"]) as directory:
        yield directory


def run_with_wkd(caff, directory, *args, stdin=b""):
    """caffpy in the mount namespace where gpg trusts the local WKD."""
    proc = subprocess.run(directory.command([PYTHON, "-m", "caffpy"] + list(args)),
                          env=caff.env, cwd=REPO, input=stdin, capture_output=True,
                          timeout=300, start_new_session=True)
    stop_dirmngr(caff)      # it lives in the namespace; nothing may outlive the test
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def test_wkd_fetches_the_keys_of_the_party_list(party, multi, web_key_directory):
    plain = participant(party, "plain")
    for person in (multi, plain):
        for address in person.mailable:
            web_key_directory.publish(address, public_key(party, person.fingerprint))
    caff = new_caff(party, TIMEOUT)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes", "-R", "--wkd",
                               stdin=list_for([multi, plain]))
    assert status == 0, err
    # One lookup per address, by the advanced method (https://openpgpkey.example.org).
    assert sorted(web_key_directory.lookups()) == sorted(
        wkd_kit.wkd_hash(a.split("@")[0]) for a in multi.mailable + plain.mailable)
    assert {host for host, _ in web_key_directory.requests} == {"openpgpkey.example.org"}
    assert recipients(caff) == sorted(multi.mailable + plain.mailable)
    assert certified(caff, party) == {multi.fingerprint[-16:], plain.fingerprint[-16:]}


def test_wkd_adds_the_user_ids_a_keyserver_left_out(party, multi, servers, web_key_directory):
    first, _ = servers
    kept, missing = multi.mailable
    first.answers[multi.fingerprint] = crafting.armor(keep_uids(public_key(
        party, multi.fingerprint), [uid_of(multi, kept)]))
    web_key_directory.publish(kept, public_key(party, multi.fingerprint))
    web_key_directory.publish(missing, public_key(party, multi.fingerprint))
    caff = new_caff(party, TIMEOUT + "keyserver = %s\nwkd = yes\n" % first.url)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes",
                               stdin=list_for([multi]))
    assert status == 0, err
    assert first.requests == [multi.fingerprint]
    # Only the address the keyserver's copy lacked is looked up.
    assert web_key_directory.lookups() == [wkd_kit.wkd_hash(missing.split("@")[0])]
    assert "user IDs the party list shows" not in err
    assert recipients(caff) == sorted(multi.mailable)


def test_locate_fetches_a_key_for_a_fingerprint_on_the_command_line(party, multi,
                                                                    web_key_directory):
    address = multi.mailable[1]
    web_key_directory.publish(address, public_key(party, multi.fingerprint))
    caff = new_caff(party, TIMEOUT)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes", "-R",
                               "--locate", address, multi.fingerprint)
    assert status == 0, err
    # gpg keeps only the user ID of the address looked up.
    assert recipients(caff) == [address]
    assert certified(caff, party) == {multi.fingerprint[-16:]}


def test_wkd_key_without_the_address_is_refused_and_explained(party, multi, web_key_directory):
    plain = participant(party, "plain")
    for address in multi.mailable:      # the directory hands out somebody else's key
        web_key_directory.publish(address, public_key(party, plain.fingerprint))
    caff = new_caff(party, TIMEOUT)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes", "-R", "--wkd",
                               stdin=list_for([multi]))
    assert status == 66, err
    assert "does not carry this address" in err and multi.mailable[0] in err
    assert "Traceback" not in err
    assert caff.sendmail.calls() == [] and certified(caff, party) == set()


def test_wkd_key_with_the_address_but_another_fingerprint_is_not_certified(party, multi,
                                                                          web_key_directory):
    # Whoever runs the domain's WKD can publish any key for the address: the
    # fingerprint from the party list still decides (security notes T3).
    mallory = crafting.build_key([uid_of(multi, multi.mailable[0]).encode()],
                                 seed=b"wkd-mallory")
    web_key_directory.publish(multi.mailable[0], mallory.public)
    caff = new_caff(party, TIMEOUT)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes", "-R", "--wkd",
                               stdin=list_for([multi]))
    assert status == 66, err
    error = next(line for line in err.split("\n") if "could not be found" in line)
    assert multi.fingerprint in error
    assert "WKD of example.org has another key for %s (%s)" % (multi.mailable[0],
                                                              mallory.fingerprint) in error
    assert "WKD of example.org: nothing for %s" % multi.mailable[1] in error
    assert caff.sendmail.calls() == [] and certified(caff, party) == set()


def test_wkd_without_an_address_says_so(party, multi, web_key_directory):
    caff = new_caff(party, TIMEOUT)
    status, err = run_with_wkd(caff, web_key_directory, "--batch", "-m", "yes", "-R", "--wkd",
                               multi.fingerprint)
    assert status == 66, err
    assert "WKD needs an address" in err and "--locate ADDRESS" in err
    assert web_key_directory.requests == []


# -- the gpg command line (argument handling only; the real lookups are above) -------------

FAKE_GPG = """#!%s
# Records its arguments; answers on the --status-fd it is given, as gpg would.
import os, sys
with open(%r, "w") as handle:
    handle.write("\\n".join(sys.argv[1:]))
fd = int(sys.argv[sys.argv.index("--status-fd") + 1])
os.write(fd, b"[GNUPG:] IMPORT_RES 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0\\n")
"""


def test_wkd_lookup_command_line(tmp_path):
    argv_file = tmp_path / "argv"
    fake = tmp_path / "gpg"
    fake.write_text(FAKE_GPG % (PYTHON, str(argv_file)))
    fake.chmod(0o755)
    fetched = gpgmod.Gpg(str(tmp_path / "home"), str(fake)).locate_keys("-x@example.org", 5)
    argv = argv_file.read_text().split("\n")
    # Only WKD, whatever gpg.conf says; the address after "--", never read as an option.
    assert argv[-5:] == ["--auto-key-locate", "clear,nodefault,wkd", "--locate-external-keys",
                         "--", "-x@example.org"]
    assert "--homedir" in argv and "--batch" in argv
    assert fetched.without_uid == 1 and fetched.fingerprints == []
