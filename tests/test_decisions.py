"""Per-UID decisions (--decisions FILE): asked on a terminal, written, replayed exactly.

Real gpg throughout: what was certified is read back from caffpy's keyring
with `gpg --check-sigs --with-colons` (signature class 0x10-0x13, and 'x'
exportable or 'l' local), the certification options with `gpg --list-packets`,
and what was mailed from the fake sendmail. The questions are answered on a
pseudo-terminal, as a user at a terminal would.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from caffpy.text import printable
from conftest import (PYTHON, REPO, base_env, gpg, keyring_signatures, new_caff, new_dir,
                      participant, read_terminal, register_gpg_home, run_caffpy, summary_has)
from test_bundle import sides  # noqa: F401  (a fixture: the offline flow's two sides)
import crafting

NOTATION = "party@example.org=KSP-2025"
POLICY = "https://example.org/signing-policy"


# -- helpers ---------------------------------------------------------------------------

# A question caffpy asks ends with '? [default] ' (yes/no, or the level).
QUESTION_END = re.compile(r"\? \[[^\]\n]*\] $")


def run_on_terminal(args, env, rules, timeout=120):
    """Run caffpy with a pseudo-terminal as standard input and output, answering each
    question with the first rule (pattern, answer) whose pattern is found in what the
    terminal showed since the last answer. Returns (status, terminal text, stderr)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([PYTHON, "-m", "caffpy"] + list(args), env=env, cwd=REPO,
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.close(slave)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()))
    reader.start()
    since = 0

    def answer(shown):
        nonlocal since
        question = shown[since:].decode("utf-8", "replace")
        if QUESTION_END.search(question):
            reply = next((a for pattern, a in rules if re.search(pattern, question)), None)
            assert reply is not None, "no rule answers this question:\n" + question
            os.write(master, reply.encode() + b"\n")
            since = len(shown)

    try:
        shown = read_terminal(master, timeout, answer)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join()
        os.close(master)
    return (proc.returncode, shown.decode("utf-8", "replace").replace("\r\n", "\n"),
            stderr[0].decode("utf-8", "replace"))


def uid_text(person, address):
    return "%s <%s>" % (person.name, address)


def uid_hashes(party, fingerprint):
    """UID text -> gpg's UID hash (field 8 of the uid lines), from the participants' keyring."""
    listing = gpg(party.participants_home, "--with-colons", "--list-keys", fingerprint)
    return {line.split(":")[9]: line.split(":")[7]
            for line in listing.decode("utf-8").split("\n") if line.startswith("uid:")}


def decision(text, level=None, local=False, expire="", policy="", notation=()):
    """One UID entry as the file holds it (level None: not certified)."""
    if level is None:
        return {"uid": text, "certify": False}
    return {"uid": text, "certify": True, "level": level, "local": local, "expire": expire,
            "policy-url": policy, "notation": list(notation)}


def write_decisions(path, keys, version=1):
    """keys: fingerprint -> {UID hash: entry}."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"format": "caffpy-decisions", "version": version,
                   "keys": {f: {"uids": uids} for f, uids in keys.items()}}, handle, indent=1)
    return path


def certifications(caffhome, party):
    """{(UID text, issuer, class and flag as '12x' or '11l')} for every good certification
    by the signer's keys on other keys in caffpy's keyring."""
    signers = {s[-16:] for s in party.signers}
    found, key, uid = set(), None, None
    for line in keyring_signatures(caffhome):
        fields = line.split(":")
        if fields[0] == "pub":
            key, uid = fields[4], None
        elif fields[0] in ("uid", "uat"):
            uid = fields[9]
        elif fields[0] == "sig" and fields[4] in signers and fields[4] != key:
            assert fields[1] == "!", line       # gpg checked it: a good signature
            found.add((uid, fields[4], fields[10]))
    return found


def by_both_signers(party, text, sigclass):
    return {(text, s[-16:], sigclass) for s in party.signers}


def recipients(caff):
    return sorted(call.recipient for call in caff.sendmail.sent())


def no_traceback(err):
    return "Traceback" not in err and "internal error" not in err


# -- asking, writing, replaying --------------------------------------------------------

def test_answers_are_written_then_replayed_exactly(party):
    multi, noaddr, photo, plain, uni = (participant(party, k) for k in
                                        ("multi", "noaddr", "photo", "plain", "unicode"))
    keys = [multi, noaddr, photo, plain, uni]
    path = os.path.join(new_dir(), "decisions.json")
    rules = [("Please answer 0, 1, 2 or 3", "1"),         # after the wrong answer below
             ("Key 0x%s[\\s\\S]*Certify user IDs" % plain.fingerprint[-16:], "n"),
             ("Certify user IDs of this key", "y"),
             (re.escape(uid_text(multi, multi.mailable[1])) + r"\s+certify at level", "3"),
             (re.escape(uid_text(multi, multi.mailable[0])) + r"\s+certify at level", "n"),
             (re.escape(uid_text(noaddr, noaddr.mailable[0])) + r"\s+certify at level", "2"),
             (r"\] %s\s+certify at level" % re.escape(noaddr.name), ""),   # Enter: cert-level 0
             (re.escape(uid_text(photo, photo.mailable[0])) + r"\s+certify at level", "1l"),
             (re.escape(uid_text(uni, uni.mailable[0])) + r"\s+certify at level", "4")]
    first = new_caff(party)
    code, shown, err = run_on_terminal(
        ["-m", "yes", "-R", "--key-file", party.key_file, "--decisions", path]
        + [p.fingerprint for p in keys], first.env, rules)
    assert code == 0, shown + err
    assert shown.count("Please answer") == 1            # the "4", asked again
    assert "[photo ID]: not certified, since gpg can pick a user ID only by its text" in err
    assert summary_has(err, "Alice Example0 <alice0@example.org>", "not certified, as decided in")
    assert summary_has(err, "0x" + plain.fingerprint[-16:], "not certified, as decided in")

    # The file holds every answer, by gpg's UID hash; revoked UIDs and photo IDs are not asked.
    with open(path, encoding="utf-8") as handle:
        written = json.load(handle)
    assert (written["format"], written["version"]) == ("caffpy-decisions", 1)
    chosen = {(fpr, entry["uid"]): (entry["level"], entry["local"]) if entry["certify"] else None
              for fpr, key in written["keys"].items() for entry in key["uids"].values()}
    assert chosen == {
        (multi.fingerprint, uid_text(multi, multi.mailable[1])): (3, False),
        (multi.fingerprint, uid_text(multi, multi.mailable[0])): None,
        (noaddr.fingerprint, uid_text(noaddr, noaddr.mailable[0])): (2, False),
        (noaddr.fingerprint, noaddr.name): (0, False),
        (photo.fingerprint, uid_text(photo, photo.mailable[0])): (1, True),
        (plain.fingerprint, uid_text(plain, plain.mailable[0])): None,
        (uni.fingerprint, uid_text(uni, uni.mailable[0])): (1, False)}
    for fpr, key in written["keys"].items():
        hashes = uid_hashes(party, fpr)
        assert {h: e["uid"] for h, e in key["uids"].items()} == \
            {hashes[e["uid"]]: e["uid"] for e in key["uids"].values()}

    # Certified exactly as answered: 0x13, 0x12, 0x10, a local 0x11 and 0x11, by both keys.
    expected = (by_both_signers(party, uid_text(multi, multi.mailable[1]), "13x")
                | by_both_signers(party, uid_text(noaddr, noaddr.mailable[0]), "12x")
                | by_both_signers(party, noaddr.name, "10x")
                | by_both_signers(party, uid_text(photo, photo.mailable[0]), "11l")
                | by_both_signers(party, uid_text(uni, uni.mailable[0]), "11x"))
    assert certifications(first.caffhome, party) == expected
    # Mailed: the exportable certifications only.
    assert recipients(first) == sorted([multi.mailable[1], noaddr.mailable[0], uni.mailable[0]])

    # A second user replays the file in --batch: no terminal, no question, the same result.
    with open(path, "rb") as handle:
        before = handle.read()
    second = new_caff(party)
    code, out, err = second.run_party("--decisions", path,
                                      fingerprints=[p.fingerprint for p in keys])
    assert code == 0, err
    assert certifications(second.caffhome, party) == expected
    assert recipients(second) == recipients(first)
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_no_sign_only_writes_the_decisions(party):
    """-S: decide now, from the cert-* settings; review or edit the file; certify later."""
    multi = participant(party, "multi")
    caff = new_caff(party, "cert-level = 2\ncert-notation = %s\ncert-policy-url = %s\n"
                           "cert-expire = 2y\n" % (NOTATION, POLICY))
    path = os.path.join(new_dir(), "decisions.json")
    code, shown, err = run_on_terminal(
        ["-S", "-m", "yes", "-R", "--key-file", party.key_file, "--decisions", path,
         multi.fingerprint], caff.env, [("Certify user IDs of this key", ""),
                                        (r"certify at level 0-3 \(l: local\), or n\? \[2\]", "")])
    assert code == 0, shown + err
    assert shown.count("certify at level") == 2     # the two valid UIDs, not the revoked one
    with open(path, encoding="utf-8") as handle:
        entries = list(json.load(handle)["keys"][multi.fingerprint]["uids"].values())
    assert sorted(e["uid"] for e in entries) == sorted(uid_text(multi, a) for a in multi.mailable)
    for entry in entries:
        assert (entry["certify"], entry["level"], entry["local"], entry["expire"],
                entry["policy-url"], entry["notation"]) == (True, 2, False, "2y", POLICY,
                                                             [NOTATION])
    assert certifications(caff.caffhome, party) == set()
    assert caff.sendmail.calls() == []


def test_options_per_uid_reach_the_signatures_in_one_gpg_call_per_set(party):
    multi, noaddr, plain = (participant(party, k) for k in ("multi", "noaddr", "plain"))
    work, main = (uid_text(multi, a) for a in (multi.mailable[1], multi.mailable[0]))
    multi_hashes, noaddr_hashes = uid_hashes(party, multi.fingerprint), \
        uid_hashes(party, noaddr.fingerprint)
    path = write_decisions(os.path.join(new_dir(), "d.json"), {
        multi.fingerprint: {
            multi_hashes[work]: decision(work, 2, expire="2y", policy=POLICY, notation=[NOTATION]),
            multi_hashes[main]: decision(main, 3)},
        noaddr.fingerprint: {h: decision(t, 1) for t, h in noaddr_hashes.items()}})
    caff = new_caff(party)
    code, out, err = caff.run_party("--decisions", path, "--debug",
                                    fingerprints=[multi.fingerprint, noaddr.fingerprint,
                                                  plain.fingerprint])
    assert code == 0, err
    # Two sets of options on one key, one set on the other: three gpg calls, not four.
    assert err.count("--quick-sign-key") == 3, err
    # plain is asked for, but not in the file: reported, not certified, not mailed.
    assert summary_has(err, "0x" + plain.fingerprint[-16:], "is not in", "not certified")
    assert certifications(caff.caffhome, party) == (
        by_both_signers(party, work, "12x") | by_both_signers(party, main, "13x")
        | {(t, s[-16:], "11x") for t in noaddr_hashes for s in party.signers})
    assert recipients(caff) == sorted(multi.mailable + noaddr.mailable)

    # The options are in the signatures themselves, each UID's own.
    home = os.path.join(caff.caffhome, "gnupghome")
    packets = gpg(home, "--export", multi.fingerprint)
    listing = subprocess.run(["gpg", "--homedir", home, "--batch", "--list-packets"],
                             input=packets, capture_output=True, check=True).stdout.decode()
    per_uid = {}
    for block in listing.split(":user ID packet: ")[1:]:
        text = block.split("\n", 1)[0].strip('"')
        signers = [s[-16:] for s in party.signers]
        per_uid[text] = [sig for sig in block.split(":signature packet:")[1:]
                         if re.search(r"keyid (%s)" % "|".join(signers), sig)]
    assert len(per_uid[work]) == 2 and len(per_uid[main]) == 2
    for sig in per_uid[work]:
        assert "sigclass 0x12" in sig
        assert "notation: %s)" % NOTATION in sig and "policy: %s)" % POLICY in sig
        assert re.search(r"sig expires after 2y", sig), sig
    for sig in per_uid[main]:
        assert "sigclass 0x13" in sig
        assert "notation" not in sig and "policy" not in sig and "expires" not in sig


def test_certification_made_before_is_kept_and_reported(party):
    multi = participant(party, "multi")
    work, main = (uid_text(multi, a) for a in (multi.mailable[1], multi.mailable[0]))
    hashes = uid_hashes(party, multi.fingerprint)
    caff = new_caff(party)
    # Certified at cert-level 0 without a decisions file, and not mailed.
    code, out, err = caff.run_party(fingerprints=[multi.fingerprint], mail="no")
    assert code == 0, err
    path = write_decisions(os.path.join(new_dir(), "d.json"), {multi.fingerprint: {
        hashes[work]: decision(work, 3), hashes[main]: decision(main)}})
    code, out, err = caff.run_party("--decisions", path, "--debug",
                                    fingerprints=[multi.fingerprint])
    assert code == 0, err
    assert "--quick-sign-key" not in err        # gpg would do nothing anyway
    assert "gpg keeps the certification 0x%s made before (level 0, exportable), not the " \
           "decided one (level 3, exportable)" % party.signers[0][-16:] in err
    assert certifications(caff.caffhome, party) == (by_both_signers(party, work, "10x")
                                                    | by_both_signers(party, main, "10x"))
    # The older certification of the UID the file leaves alone is not mailed.
    assert recipients(caff) == [multi.mailable[1]]


def test_local_decision_is_never_mailed_even_with_gpg_sign_type_l(party):
    """gpg-sign-type l exports local certifications, and mails them without a decisions
    file; a UID the file certifies locally is not mailed, an exportable one is."""
    multi = participant(party, "multi")
    work, main = (uid_text(multi, a) for a in (multi.mailable[1], multi.mailable[0]))
    hashes = uid_hashes(party, multi.fingerprint)
    path = write_decisions(os.path.join(new_dir(), "d.json"), {multi.fingerprint: {
        hashes[work]: decision(work, 2, local=True), hashes[main]: decision(main, 2)}})
    caff = new_caff(party, "gpg-sign-type = l\n")
    code, out, err = caff.run_party("--decisions", path, fingerprints=[multi.fingerprint])
    assert code == 0, err
    assert certifications(caff.caffhome, party) == (by_both_signers(party, work, "12l")
                                                    | by_both_signers(party, main, "12x"))
    assert recipients(caff) == [multi.mailable[0]]
    assert summary_has(err, work, "certified locally", "never mailed")

    # Decided again, exportable now: gpg turns the local certification into an exportable one.
    write_decisions(path, {multi.fingerprint: {
        hashes[work]: decision(work, 2), hashes[main]: decision(main, 2)}})
    code, out, err = caff.run_party("--decisions", path, fingerprints=[multi.fingerprint])
    assert code == 0, err
    assert certifications(caff.caffhome, party) == (by_both_signers(party, work, "12x")
                                                    | by_both_signers(party, main, "12x"))
    assert recipients(caff) == sorted(multi.mailable)


def test_also_lsign_in_your_keyring_only_what_was_chosen(party):
    multi, plain = participant(party, "multi"), participant(party, "plain")
    work, main = (uid_text(multi, a) for a in (multi.mailable[1], multi.mailable[0]))
    hashes = uid_hashes(party, multi.fingerprint)
    # A copy of the signer's keyring: the shared one must not change.
    own = register_gpg_home(os.path.join(new_dir(), "g"))
    shutil.copytree(party.user_home, own, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*"))
    caff = new_caff(party, "also-lsign-in-gnupghome = auto\n")
    caff.env = base_env(caff.home, own, caff.config)
    path = write_decisions(os.path.join(new_dir(), "d.json"), {
        multi.fingerprint: {hashes[work]: decision(work, 2), hashes[main]: decision(main)},
        plain.fingerprint: {h: decision(t)
                            for t, h in uid_hashes(party, plain.fingerprint).items()}})
    code, out, err = caff.run_party("--decisions", path,
                                    fingerprints=[multi.fingerprint, plain.fingerprint])
    assert code == 0, err
    listing = subprocess.run(["gpg", "--homedir", own, "--batch", "--with-colons",
                              "--check-sigs", multi.fingerprint, plain.fingerprint],
                             capture_output=True).stdout.decode()
    local, uid = set(), None
    for line in listing.split("\n"):
        fields = line.split(":")
        if fields[0] == "uid":
            uid = fields[9]
        elif fields[0] == "sig" and fields[10].endswith("l"):
            local.add((uid, fields[4]))
    assert local == {(work, s[-16:]) for s in party.signers}
    assert plain.fingerprint not in listing     # nothing chosen: not even imported


# -- the offline step ---------------------------------------------------------------------

def test_offline_sign_replays_the_decisions(party, sides):
    online, offline, mta, server, online_dir = sides
    multi, uni = participant(party, "multi"), participant(party, "unicode")
    work, main = (uid_text(multi, a) for a in (multi.mailable[1], multi.mailable[0]))
    hashes = uid_hashes(party, multi.fingerprint)
    uni_uid = uid_text(uni, uni.mailable[0])
    path = write_decisions(os.path.join(new_dir(), "d.json"), {
        multi.fingerprint: {hashes[work]: decision(work, 3), hashes[main]: decision(main)},
        uni.fingerprint: {uid_hashes(party, uni.fingerprint)[uni_uid]: decision(uni_uid, 1)}})
    bundle = os.path.join(online_dir, "bundle")
    code, out, err = run_caffpy(["prepare", "-o", bundle, "-R", "--key-file", party.key_file]
                                + party.fingerprints, online)
    assert code == 0, err
    code, out, err = run_caffpy(["sign", "--batch", "--decisions", path + ".none", bundle],
                                offline)
    assert code == 64 and "does not exist" in err and no_traceback(err)
    code, out, err = run_caffpy(["sign", "--batch", "-m", "yes", "--decisions", path, bundle],
                                offline)
    assert code == 0, err
    offline_caffhome = os.path.join(os.path.dirname(offline["CAFFPY_CONFIG_FILES"]), "c")
    assert certifications(offline_caffhome, party) == (by_both_signers(party, work, "13x")
                                                       | by_both_signers(party, uni_uid, "11x"))
    code, out, err = run_caffpy(["send", bundle], online)
    assert code == 0, err
    assert sorted(c.recipient for c in mta.sent()) == sorted([multi.mailable[1],
                                                              uni.mailable[0]])


# -- refusals ------------------------------------------------------------------------------

def _good_entries(party):
    multi = participant(party, "multi")
    return {multi.fingerprint: {h: decision(t, 2)
                                for t, h in uid_hashes(party, multi.fingerprint).items()
                                if "old@" not in t}}


def _other_key_uid(party, entries):
    # The hash of another key's UID: what a file made before the key changed would name.
    plain = participant(party, "plain")
    (text, namehash), = uid_hashes(party, plain.fingerprint).items()
    next(iter(entries.values()))[namehash] = decision(text, 2)
    return entries


def _edited_text(party, entries):
    uids = next(iter(entries.values()))
    first = next(iter(uids))
    uids[first]["uid"] = "Mallory <mallory@evil.example>"
    return entries


def _level(value):
    def change(party, entries):
        for uids in entries.values():
            for entry in uids.values():
                entry["level"] = value
        return entries
    return change


@pytest.mark.parametrize("label,content,message", [
    ("not JSON", b'{"format": "caffpy-decisions", "version": 1, "keys": {', "not a valid"),
    ("other format", b'{"format": "caffpy-bundle", "version": 1, "keys": {}}',
     "is not a caffpy decisions file"),
    ("unknown version", 2, "version 2; this caffpy reads version 1 only"),
    ("version true", True, "version true; this caffpy reads version 1 only"),
    ("bad level", _level(7), '"level" must be 0, 1, 2 or 3, not 7'),
    ("level as text", _level("2"), '"level" must be 0, 1, 2 or 3, not "2"'),
    ("duplicate", b'{"format": "caffpy-decisions", "version": 1, "keys": {}, "keys": {}}',
     "appears twice"),
    ("unknown field", b'{"format": "caffpy-decisions", "version": 1, "keys": {}, "x": 1}',
     'unknown field "x"'),
    ("key changed", _other_key_uid, "the key changed since the decisions were made"),
    ("text edited", _edited_text, "was the file edited?"),
])
def test_bad_decisions_file_is_refused_before_signing(party, label, content, message):
    path = os.path.join(new_dir(), "d.json")
    if isinstance(content, bytes):
        with open(path, "wb") as handle:
            handle.write(content)
    elif callable(content):
        write_decisions(path, content(party, _good_entries(party)))
    else:
        write_decisions(path, _good_entries(party), version=content)
    caff = new_caff(party)
    code, out, err = caff.run_party("--decisions", path,
                                    fingerprints=[participant(party, "multi").fingerprint])
    assert code == 65, err
    assert message in err and path in err and no_traceback(err), err
    assert certifications(caff.caffhome, party) == set()
    assert caff.sendmail.calls() == []


def test_batch_without_decisions_file_is_refused(party):
    path = os.path.join(new_dir(), "new.json")
    caff = new_caff(party)
    code, out, err = caff.run_party("--decisions", path)
    assert code == 64
    assert "does not exist" in err and "--batch" in err and no_traceback(err)
    assert not os.path.exists(path)
    assert not os.path.exists(caff.caffhome)        # stopped before anything ran
    # Without --batch but without a terminal to ask on: refused too, nothing written.
    code, out, err = caff.run("-m", "yes", "-R", "--key-file", party.key_file,
                              "--decisions", path, participant(party, "plain").fingerprint)
    assert code == 64 and "no terminal" in err and no_traceback(err), err
    assert not os.path.exists(path)
    assert certifications(caff.caffhome, party) == set()


# -- user IDs gpg cannot be told to certify on their own -----------------------------------

HOSTILE = [b"Carrier <carrier@example.org>", b"Esc \x1b[2J <esc@example.org>",
           b"Latin \xe9 <latin@example.org>"]


def test_uids_gpg_cannot_select_are_never_asked_and_refused_in_a_file(party):
    key = crafting.build_key(HOSTILE, seed=b"decisions-hostile")
    key_file = os.path.join(new_dir(), "hostile.pgp")
    with open(key_file, "wb") as handle:
        handle.write(key.public)
    caff = new_caff(party)
    path = os.path.join(new_dir(), "d.json")
    code, shown, err = run_on_terminal(
        ["-m", "yes", "-R", "--key-file", key_file, "--decisions", path, key.fingerprint],
        caff.env, [("Certify user IDs of this key", "y"),
                   (r"Carrier <carrier@example.org>\s+certify at level", "2")])
    assert code == 0, shown + err
    assert "\x1b" not in shown and "\x1b" not in err          # shown escaped, never raw
    assert shown.count("certify at level") == 1
    for text in ("Esc \\x1b[2J <esc@example.org>", "Latin \ufffd <latin@example.org>"):
        assert text in shown                                    # listed with the key
        assert summary_has(err, text, "gpg can pick a user ID only by its text")
    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["keys"][key.fingerprint]["uids"]
    assert [e["uid"] for e in entries.values()] == ["Carrier <carrier@example.org>"]
    assert certifications(caff.caffhome, party) == by_both_signers(
        party, "Carrier <carrier@example.org>", "12x")
    assert recipients(caff) == ["carrier@example.org"]

    # A file that asks for one of them anyway is refused.
    escape = HOSTILE[1]
    namehash = hashlib.new("ripemd160", escape).hexdigest().upper()
    write_decisions(path, {key.fingerprint: {
        namehash: decision(printable(escape.decode()), 2)}})
    code, out, err = new_caff(party).run("--batch", "-m", "yes", "-R", "--key-file", key_file,
                                         "--decisions", path, key.fingerprint)
    assert code == 65 and "cannot be certified on its own" in err and no_traceback(err), err
