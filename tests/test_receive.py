"""caffpy receive (issue 7, part B): importing the certifications others mailed you.

Everything is real: the recipient Rita and every signer have gpg homes of their
own under /tmp; Sam, Tess, Vic and Uma certify Rita's key by running the whole
caffpy pipeline (their mails land in a recording fake sendmail; Vic's arrives
unencrypted), Wes signs with plain gpg and mails the key encrypted inline as
pius does, Gina attaches a binary encrypted file as gnome-keysign does. Hostile
mails are made from the same material: a new user ID, a new subkey and new
self-signatures made with a stolen copy of Rita's secret key, her revocation
certificate, other people's keys, a forged, a local and a revoked
certification, an unknown signer (Uma: Rita lacks her key), a flooded key and
broken MIME. `caffpy receive` runs with GNUPGHOME = Rita's home, and
gpg --check-sigs before and after tells what entered her keyring.
"""

import collections
import email.message
import email.policy
import hashlib
import mailbox
import os
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

import pytest

import crafting
from conftest import (FakeSendmail, base_env, gpg, list_packets, new_dir, register_gpg_home,
                      run_caffpy)
from hkp import KeyServer
from caffpy import demo, packets, receive

RITA_UIDS = ["Rita Recipient <rita@example.net>", "Rita Recipient <rita@work.example>",
             "Rita Recipient"]
ESC_UID = "Rita \x1b[31mRecipient <rita@evil.test>"
BIDI_NAME = "Mallory \u202eexample.org"


@dataclass
class Person:
    nick: str
    home: str
    fingerprint: str

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


def new_person(base: str, nick: str, name: str) -> Person:
    home = register_gpg_home(demo.new_home(base, nick))
    demo._batch_keys(home, [{"name": name, "email": "%s@example.net" % nick}])
    return Person(nick, home, demo._fingerprint_of(home, "%s@example.net" % nick))


def copy_home(source: str) -> str:
    """A copy of a gpg home (keys and all, no agent sockets), with a short path."""
    target = os.path.join(new_dir(), "g")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    return register_gpg_home(target)


def caffpy_mails(signer: Person, key_file: str, target: str) -> List[bytes]:
    """What `caffpy --batch -m yes -R --key-file KEYS TARGET` run by signer sends."""
    base = new_dir()
    home = os.path.join(base, "h")
    os.mkdir(home, 0o700)
    mta = FakeSendmail(os.path.join(base, "mta"))
    register_gpg_home(os.path.join(base, "c", "gnupghome"))
    config = os.path.join(home, ".caffrc")
    with open(config, "w") as handle:
        handle.write("owner = %s\nemail = %s@example.net\nkeyid = %s\ncaffhome = %s\n"
                     "sendmail = %s\n" % (signer.nick.title(), signer.nick, signer.fingerprint,
                                          os.path.join(base, "c"), mta.path))
    code, _, err = run_caffpy(["--batch", "-m", "yes", "-R", "--key-file", key_file, target],
                              base_env(home, signer.home, config))
    assert code == 0, err
    return [call.message for call in mta.sent()]


def plain_mail(subject: str, parts: List[Tuple[str, bytes]], sender: str = "x@evil.test",
               text: str = "Here is your key.\n") -> bytes:
    """A multipart/mixed mail: a text, then each (content type, data) as an attachment."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = sender, "rita@example.org", subject
    message.set_content(text)
    for number, (ctype, data) in enumerate(parts):
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename="part%d.asc" % number)
    return message.as_bytes()


def encrypt_to(home: str, fingerprint: str, data: bytes) -> bytes:
    return gpg(home, "--trust-model", "always", "--armor", "--recipient", fingerprint,
               "--encrypt", input=data)


def pgp_mime(home: str, fingerprint: str, inner: bytes, sender: str, subject: str) -> bytes:
    """inner encrypted to fingerprint as RFC 3156 PGP/MIME."""
    outer = email.message.EmailMessage(policy=email.policy.SMTP)
    outer["From"], outer["To"], outer["Subject"] = sender, "rita@example.org", subject
    outer.set_type("multipart/encrypted")
    outer.set_param("protocol", "application/pgp-encrypted")
    control = email.message.EmailMessage(policy=email.policy.SMTP)
    control.set_content(b"Version: 1\n", maintype="application", subtype="pgp-encrypted")
    body = email.message.EmailMessage(policy=email.policy.SMTP)
    body.set_content(encrypt_to(home, fingerprint, inner), maintype="application",
                     subtype="octet-stream", cte="7bit")
    outer.attach(control)
    outer.attach(body)
    return outer.as_bytes()


def keyblock(data: bytes, fingerprint: str) -> packets.KeyBlock:
    return packets.parse_keyblocks(data)[fingerprint]


def attached_keys(home: str, mail: bytes) -> List[bytes]:
    """The keys attached to a PGP/MIME mail (binary), decrypted in home."""
    ciphertext = email.message_from_bytes(mail, policy=email.policy.default).get_payload()[1]
    inner = email.message_from_bytes(gpg(home, "--decrypt",
                                         input=ciphertext.get_payload(decode=True)),
                                     policy=email.policy.default)
    return [crafting.dearmor(part.get_payload(decode=True)) for part in inner.iter_parts()
            if part.get_content_type() == "application/pgp-keys"]


def key_of(block: packets.KeyBlock, uid_filter=lambda uid, sig: True) -> bytes:
    """A key made of block's primary key, UIDs and the signatures uid_filter keeps."""
    out = [block.primary.raw]
    for uid in block.uids:
        out.append(uid.packet.raw)
        out += [s.packet.raw for s in uid.signatures if uid_filter(uid, s)]
    return b"".join(out)


@dataclass
class World:
    rita: Person
    pristine: str                       # a copy of Rita's home before any receive run
    signers: Dict[str, Person]
    good: List[bytes]                   # the mails receive must import from
    hostile: List[Tuple[str, bytes]]    # (what it is, the mail)
    expected: Set[Tuple[str, str]]      # (Rita's UID, issuer key ID) receive must add


@pytest.fixture(scope="module")
def world() -> World:
    base = new_dir()
    rita = new_person(base, "rita", "Rita Recipient")
    gpg(rita.home, "--quick-add-uid", rita.fingerprint, RITA_UIDS[1])
    gpg(rita.home, "--quick-add-uid", rita.fingerprint, RITA_UIDS[2])
    key_file = os.path.join(base, "rita.asc")
    with open(key_file, "wb") as handle:
        handle.write(gpg(rita.home, "--armor", "--export", rita.fingerprint))
    rita_public = gpg(rita.home, "--export", rita.fingerprint)

    people = {nick: new_person(base, nick, "%s Signer" % nick.title())
              for nick in ("sam", "tess", "vic", "wes", "gina", "uma", "xena", "pete")}
    people["mallory"] = new_person(base, "mallory", BIDI_NAME)
    known = ["sam", "tess", "vic", "wes", "gina", "xena"]     # Rita holds their keys
    for nick in known:
        gpg(rita.home, "--import", input=gpg(people[nick].home, "--export",
                                             people[nick].fingerprint))
    expected = set()

    # Sam and Tess: the caffpy pipeline, PGP/MIME mails to each of Rita's addresses.
    good = []
    for nick in ("sam", "tess"):
        mails = caffpy_mails(people[nick], key_file, rita.fingerprint)
        assert len(mails) == 2
        good += mails
        expected |= {(uid, people[nick].key_id) for uid in RITA_UIDS}

    # Vic: caffpy too, but the mail arrives unencrypted (as caff's mail-cant-encrypt
    # sends it): only the UIDs in that one mail are certified for Rita to import.
    vic_mail = email.message_from_bytes(caffpy_mails(people["vic"], key_file, rita.fingerprint)[0],
                                        policy=email.policy.default)
    inner = gpg(rita.home, "--decrypt", input=vic_mail.get_payload()[1].get_payload(decode=True))
    plain = email.message_from_bytes(inner, policy=email.policy.default)
    for header in ("From", "To", "Subject", "Date"):
        plain[header] = vic_mail[header]
    good.append(plain.as_bytes())
    for part in plain.iter_parts():
        if part.get_content_type() == "application/pgp-keys":
            uids = [p.text for p in list_packets(part.get_payload(decode=True))
                    if p.kind == "user ID"]
            expected |= {(uid, people["vic"].key_id) for uid in uids}
    assert any(issuer == people["vic"].key_id for _, issuer in expected)

    # Wes: plain gpg, the signed key armored, encrypted inline in an attachment (pius).
    wes = people["wes"]
    gpg(wes.home, "--import", input=rita_public)
    gpg(wes.home, "--quick-sign-key", rita.fingerprint)
    signed = gpg(wes.home, "--armor", "--export", rita.fingerprint)
    good.append(plain_mail("Your signed key", [("application/octet-stream",
                                                encrypt_to(wes.home, rita.fingerprint, signed))],
                           sender="wes@example.net"))
    expected |= {(uid, wes.key_id) for uid in RITA_UIDS}

    # Gina: gnome-keysign's way, a binary encrypted file of the (binary) signed key.
    gina = people["gina"]
    gpg(gina.home, "--import", input=rita_public)
    gpg(gina.home, "--quick-sign-key", rita.fingerprint, RITA_UIDS[1])
    encrypted = gpg(gina.home, "--trust-model", "always", "--recipient", rita.fingerprint,
                    "--encrypt", input=gpg(gina.home, "--export", rita.fingerprint))
    good.append(plain_mail("Your signed key", [("application/octet-stream", encrypted)],
                           sender="gina@example.net"))
    expected.add((RITA_UIDS[1], gina.key_id))

    hostile = []
    # A stolen copy of Rita's secret key adds a user ID (with an escape sequence),
    # a subkey and new self-signatures (a new expiry) to her key.
    stolen = copy_home(rita.home)
    gpg(stolen, "--quick-add-uid", rita.fingerprint, ESC_UID)
    gpg(stolen, "--quick-add-key", rita.fingerprint, "ed25519", "sign", "1y")
    gpg(stolen, "--quick-set-expire", rita.fingerprint, "3y")
    hostile.append(("new uid, subkey, self-signatures", pgp_mime(
        stolen, rita.fingerprint, plain_mail("inner", [
            ("application/pgp-keys", gpg(stolen, "--armor", "--export", rita.fingerprint))]),
        "mallory@evil.test", "Your key, improved")))
    # Her revocation certificate (gpg wrote it when the key was made).
    with open(os.path.join(rita.home, "openpgp-revocs.d", rita.fingerprint + ".rev"), "rb") as f:
        revocation = f.read().replace(b":-----BEGIN", b"-----BEGIN")
    hostile.append(("revocation", plain_mail("Revoke", [("application/pgp-keys", revocation)])))
    # Somebody else's key, with a bidi override in its user ID.
    mallory = people["mallory"]
    hostile.append(("foreign key", plain_mail("My key", [
        ("application/pgp-keys", gpg(mallory.home, "--armor", "--export", mallory.fingerprint))])))
    # Sam's certification of Pete's key (a mail meant for Pete).
    sam, pete = people["sam"], people["pete"]
    gpg(sam.home, "--import", input=gpg(pete.home, "--export", pete.fingerprint))
    gpg(sam.home, "--quick-sign-key", pete.fingerprint)
    hostile.append(("someone else's key", plain_mail("Pete's key", [
        ("application/pgp-keys", gpg(sam.home, "--armor", "--export", pete.fingerprint))])))
    # A forgery: Sam's real certification of Rita's first UID with one bit changed
    # (same signer, time and type as the real one, which comes in another mail).
    blocks = [keyblock(key, rita.fingerprint) for mail in good[:2]
              for key in attached_keys(rita.home, mail)]
    block = next(b for b in blocks if b.uids[0].packet.body == RITA_UIDS[0].encode())
    real = next(s.packet.raw for s in block.uids[0].signatures if s.issuer == sam.key_id)
    forged = real[:-1] + bytes([real[-1] ^ 1])
    forged_key = key_of(block, lambda uid, s: s.issuer == rita.key_id) + forged
    hostile.append(("forged certification", plain_mail("Signed", [
        ("application/pgp-keys", crafting.armor(forged_key))])))
    # Uma certifies with caffpy, but Rita does not have Uma's key.
    hostile.append(("unknown signer", caffpy_mails(people["uma"], key_file, rita.fingerprint)[0]))
    # A local certification by Tess.
    tess = people["tess"]
    gpg(tess.home, "--import", input=rita_public)
    gpg(tess.home, "--quick-lsign-key", rita.fingerprint)
    hostile.append(("local certification", plain_mail("lsigned", [("application/pgp-keys", gpg(
        tess.home, "--armor", "--export-options", "export-local-sigs", "--export",
        rita.fingerprint))])))
    # Xena certifies and revokes her certification: both come in the mail.
    xena = people["xena"]
    gpg(xena.home, "--import", input=rita_public)
    gpg(xena.home, "--quick-sign-key", rita.fingerprint, RITA_UIDS[0])
    gpg(xena.home, "--quick-revoke-sig", rita.fingerprint, xena.fingerprint, RITA_UIDS[0])
    hostile.append(("revoked certification", plain_mail("Changed my mind", [
        ("application/pgp-keys", gpg(xena.home, "--armor", "--export", rita.fingerprint))])))

    # Broken mails.
    noise = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(100))
    hostile.append(("random bytes", noise))
    hostile.append(("wrong recipient", pgp_mime(sam.home, sam.fingerprint, plain_mail(
        "inner", [("application/pgp-keys", signed)]), "sam@example.net", "for Sam")))
    hostile.append(("garbage ciphertext", b"From: x@evil.test\nSubject: enc\nMIME-Version: 1.0\n"
                    b"Content-Type: multipart/encrypted; boundary=B\n\n--B\n"
                    b"Content-Type: application/pgp-encrypted\n\nVersion: 1\n--B\n"
                    b"Content-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\n\n"
                    b"bm90IGFuIE9wZW5QR1AgbWVzc2FnZQ==\n-----END PGP MESSAGE-----\n--B--\n"))
    hostile.append(("empty attachment", plain_mail("empty", [("application/pgp-keys", b"")])))
    damaged = bytearray(signed)
    damaged[200] = ord("A") if damaged[200] != ord("A") else ord("B")
    hostile.append(("bad checksum", plain_mail("crc", [("application/pgp-keys", bytes(damaged))])))
    hostile.append(("truncated key", plain_mail("cut", [("application/pgp-keys",
                                                         rita_public[:-7])])))
    hostile.append(("bad base64", b"From: x@evil.test\nMIME-Version: 1.0\n"
                    b"Content-Type: multipart/mixed; boundary=NEVER\n\n--OTHER\n"
                    b"Content-Type: application/pgp-keys\nContent-Transfer-Encoding: base64\n\n"
                    b"!!!! not base64 \x00\xff\n"))
    nested = b"Content-Type: text/plain\n\nbottom\n"
    for level in range(40):
        nested = (b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level)
                  + nested + b"\n--b%d--\n" % level)
    hostile.append(("deep nesting", b"From: x@evil.test\nMIME-Version: 1.0\n" + nested))
    for level in range(40, 3000):       # deeper than Python's email parser can recurse
        nested = (b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level)
                  + nested + b"\n--b%d--\n" % level)
    hostile.append(("very deep nesting", b"From: x@evil.test\nMIME-Version: 1.0\n" + nested))
    hostile.append(("passphrase", plain_mail("symmetric", [], text=gpg(
        sam.home, "--armor", "--symmetric", "--passphrase", "secret", input=signed).decode())))
    hostile.append(("oversized key", plain_mail("big", [("application/pgp-keys",
                                                         b"\x99" + b"\0" * (6 << 20))])))
    pristine = copy_home(rita.home)
    return World(rita, pristine, people, good, hostile, expected)


# -- helpers -------------------------------------------------------------------------


def listing(home: str) -> List[str]:
    """The whole keyring as gpg --check-sigs --with-colons shows it."""
    out = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", "--trust-model",
                          "always", "--with-colons", "--fixed-list-mode", "--check-sigs"],
                         capture_output=True, check=True, timeout=60).stdout
    return [line for line in out.decode("utf-8", "replace").split("\n")
            if line.split(":")[0] in ("pub", "fpr", "uid", "uat", "sub", "sig", "rev")]


def key_lines(lines: List[str], fingerprint: str) -> List[str]:
    """The lines of one key in a listing."""
    out, inside = [], False
    for number, line in enumerate(lines):
        if line.startswith("pub:"):
            inside = lines[number + 1].split(":")[9] == fingerprint
        if inside:
            out.append(line)
    return out


def added_certifications(before: List[str], after: List[str]) -> Set[Tuple[str, str]]:
    """(UID, issuer) of each line after has and before lacks; every one must be a
    valid exportable certification on a UID of Rita's that was there before."""
    new = collections.Counter(after) - collections.Counter(before)
    added, uid = set(), None
    for line in after:
        fields = line.split(":")
        if fields[0] == "uid":
            uid = fields[9]
        if new[line] > 0:
            new[line] -= 1
            assert fields[0] == "sig", "not a certification: " + line
            assert fields[1] == "!" and fields[10][:2] in ("10", "11", "12", "13") \
                and fields[10].endswith("x"), line
            assert uid in RITA_UIDS, line
            added.add((uid, fields[4]))
    return added


def receive_env(home: str, config: str = "/nonexistent/caffrc") -> Dict[str, str]:
    """GNUPGHOME = home, a HOME of its own, and no configuration file unless given."""
    return base_env(new_dir(), home, config)


def write_mbox(mails: List[bytes]) -> str:
    path = os.path.join(new_dir(), "in.mbox")
    box = mailbox.mbox(path)
    for mail in mails:
        box.add(mail)
    box.close()
    return path


def write_maildir(mails: List[bytes]) -> str:
    path = os.path.join(new_dir(), "Maildir")
    box = mailbox.Maildir(path)
    for mail in mails:
        box.add(mail)
    return path


def assert_clean_output(out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert "\x1b" not in out + err and "\u202e" not in out + err
    assert "internal error" not in out + err


# -- the realistic run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mailbox_run(world):
    """receive on an mbox holding every good and every hostile mail, in Rita's home."""
    home = copy_home(world.pristine)
    before = listing(home)
    mails = world.good[:2] + [m for _, m in world.hostile] + world.good[2:]
    path = write_mbox(mails)
    env = receive_env(home)
    code, out, err = run_caffpy(["receive", path], env)
    return home, path, env, before, listing(home), code, out, err


def test_mailbox_imports_exactly_the_new_certifications(world, mailbox_run):
    home, _, _, before, after, code, out, err = mailbox_run
    assert_clean_output(out, err)
    assert added_certifications(before, after) == world.expected, out
    # Broken mails and unverifiable certifications make the run incomplete.
    assert code == 65, out + err
    assert "Imported %d new certifications by 5 signers" % len(world.expected) in out


def test_mailbox_keeps_everything_else_out(world, mailbox_run):
    home, _, _, before, after, *_ = mailbox_run
    rita = world.rita
    # No key came in and Rita's key has the same UIDs, subkeys and self-signatures.
    assert [l for l in after if l.split(":")[0] in ("pub", "fpr", "uid", "sub", "rev")] == \
        [l for l in before if l.split(":")[0] in ("pub", "fpr", "uid", "sub", "rev")]
    self_sigs = [l for l in after if l.startswith("sig:") and l.split(":")[4] == rita.key_id]
    assert self_sigs == [l for l in before if l.startswith("sig:")
                         and l.split(":")[4] == rita.key_id]
    on_rita = [l for l in key_lines(after, rita.fingerprint) if l.startswith("sig:")]
    assert not {l.split(":")[4] for l in on_rita} & {world.signers[n].key_id for n in
                                                     ("xena", "uma", "mallory", "pete")}


@pytest.mark.parametrize("what,words", [
    ("new uid", ["user ID your key", "does not have", "Rita \\x1b[31mRecipient", "not imported"]),
    ("new subkey", ["a subkey your key", "does not have"]),
    ("new self-signatures", ["new self-signature", "Rita Recipient <rita@example.net>"]),
    ("revocation", ["revocation certificate for your key"]),
    ("foreign key", ["is not yours", "\\u202e"]),
    ("someone else's key", ["is not yours"]),
    ("certification revocation", ["a revocation by", "of a certification of"]),
    ("revoked certification", ["its signer revoked it (the revocation came with it)"]),
    ("local certification", ["a local certification"]),
    ("forged certification", ["bad signature: it was not made by the key it names"]),
    ("unknown signer", ["the signer's key is not in your keyring", "gpg --recv-keys"]),
    ("wrong recipient", ["cannot decrypt it: it is encrypted to", "none of their secret keys"]),
    ("garbage ciphertext", ["cannot decrypt it"]),
    ("empty attachment", ["an empty key attachment"]),
    ("bad checksum", ["damaged armored key"]),
    ("truncated key", ["damaged key data"]),
    ("bad base64", ["broken MIME structure (", "StartBoundaryNotFound"]),
    ("deep nesting", ["nested more than"]),
    ("very deep nesting", ["nested too deep to read"]),
    ("passphrase", ["encrypted with a passphrase, not to your key"]),
    ("oversized key", ["larger than 5 MiB"]),
])
def test_mailbox_report_explains_each_hostile_mail(world, mailbox_run, what, words):
    out = mailbox_run[6]
    assert any(all(word in line for word in words) for line in out.split("\n")), \
        "%s: no line with %s in:\n%s" % (what, words, out)


def test_report_names_signers_and_uids(world, mailbox_run):
    out = mailbox_run[6]
    for nick in ("sam", "tess", "vic", "wes", "gina"):
        person = world.signers[nick]
        assert "Certifications by %s Signer <%s@example.net>, key %s" % (
            nick.title(), nick, person.fingerprint) in out
    assert "Certifications by the unknown key %s" % world.signers["uma"].fingerprint in out
    assert "imported:        Rita Recipient <rita@work.example>" in out
    assert "certifications made by others only once you approve them" in out
    assert "keyserver.ubuntu.com" in out and "WKD" in out


def test_second_run_imports_nothing_new_and_says_so(world, mailbox_run):
    home, path, env, _, after, *_ = mailbox_run
    code, out, err = run_caffpy(["receive", path], env)
    assert_clean_output(out, err)
    assert listing(home) == after
    assert "No new certifications: nothing was imported." in out
    assert out.count("already in your keyring:") >= len(world.expected)
    assert code == 65           # the broken mails are still broken


# -- other inputs -------------------------------------------------------------------


def test_clean_maildir_exits_0(world):
    home = copy_home(world.pristine)
    before = listing(home)
    code, out, err = run_caffpy(["receive", write_maildir(world.good)], receive_env(home))
    assert_clean_output(out, err)
    assert code == 0, out + err
    assert added_certifications(before, listing(home)) == world.expected
    assert "Read %d messages, %d with OpenPGP key data" % (len(world.good), len(world.good)) in out


def test_message_files_and_stdin(world):
    home = copy_home(world.pristine)
    before = listing(home)
    env = receive_env(home)
    files = []
    for number, mail in enumerate(world.good[:2]):
        files.append(os.path.join(new_dir(), "m%d.eml" % number))
        with open(files[-1], "wb") as handle:
            handle.write(mail)
    code, out, err = run_caffpy(["receive"] + files, env)
    assert code == 0, out + err
    with open(write_mbox(world.good[2:]), "rb") as handle:
        code, out2, err = run_caffpy(["receive", "-"], env, stdin=handle.read())
    assert code == 0, out2 + err
    assert_clean_output(out + out2, err)
    assert added_certifications(before, listing(home)) == world.expected


def test_keyid_setting_chooses_the_own_keys(world):
    """With keyid set to another key, Rita's certifications are somebody else's key."""
    home = copy_home(world.pristine)
    before = listing(home)
    config = os.path.join(new_dir(), "caffrc")
    with open(config, "w") as handle:
        handle.write("keyid = %s\n" % world.signers["sam"].fingerprint)
    code, out, err = run_caffpy(["receive", write_mbox(world.good[:1])],
                                receive_env(home, config))
    assert_clean_output(out, err)
    assert code == 0, out + err
    assert listing(home) == before
    assert "the key %s (Rita Recipient" % world.rita.fingerprint in out


def test_missing_mailbox_and_misplaced_publish(world):
    env = receive_env(copy_home(world.pristine))
    code, _, err = run_caffpy(["receive", "/nonexistent/mbox"], env)
    assert code == 66 and "cannot read /nonexistent/mbox" in err
    not_maildir = new_dir()
    code, _, err = run_caffpy(["receive", not_maildir], env)
    assert code == 66 and "not a Maildir" in err
    mbox = write_mbox(world.good[:1])
    code, _, err = run_caffpy(["receive", "--publish", mbox], env)
    assert code == 64 and "name the mailboxes first" in err


# -- publishing ----------------------------------------------------------------------


class PublishServer(KeyServer):
    """tests/hkp.py's server, also taking uploads as gpg --send-keys makes them."""

    def __init__(self):
        self.uploads: List[bytes] = []
        super().__init__()

    def _handler_class(self):
        server, base = self, super()._handler_class()

        class Handler(base):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = urllib.parse.parse_qs(body.decode("ascii", "replace"))
                if self.path != "/pks/add" or "keytext" not in form:
                    self.send_error(501)
                    return
                server.uploads.append(form["keytext"][0].encode("ascii"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


def test_publish_sends_the_key_with_the_new_certifications(world, mailbox_run):
    home, _, env, *_ = mailbox_run
    with PublishServer() as server:
        code, out, err = run_caffpy(["receive", "--publish", server.url], env)
        uploads = list(server.uploads)
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "dirmngr"], capture_output=True)
    assert code == 0, out + err
    assert "Sent your key %s to %s." % (world.rita.fingerprint, server.url) in out
    assert len(uploads) == 1
    block = keyblock(crafting.dearmor(uploads[0]), world.rita.fingerprint)
    published = {(uid.packet.body.decode(), sig.issuer) for uid in block.uids
                 for sig in uid.signatures if sig.issuer != world.rita.key_id}
    assert published == world.expected


def test_publish_failure_exits_69(world):
    home = copy_home(world.pristine)
    with PublishServer() as server:
        url = server.url            # nobody listens there once it is stopped
    code, out, err = run_caffpy(["receive", "--publish", url], receive_env(home))
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "dirmngr"], capture_output=True)
    assert code == 69, out + err
    assert "Not published: gpg --send-keys to %s failed" % url in out


# -- pieces, without gpg ----------------------------------------------------------------


def test_dearmor_checks_the_checksum():
    data = b"\x99\x00\x01\x02" * 50
    armored = crafting.armor(data)
    assert packets.dearmor(armored) == data
    lines = armored.split(b"\n")
    lines[-3] = b"=AAAA"
    with pytest.raises(ValueError, match="checksum"):
        packets.dearmor(b"\n".join(lines))


def test_armored_blocks_in_one_pass():
    key = crafting.armor(b"\x99\x00\x01\x02")
    text = b"-----BEGIN PGP MESSAGE-----\n" * 50000 + key + b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
    started = time.monotonic()
    assert list(receive.armored_blocks(text)) == [(b"PUBLIC KEY BLOCK", key.strip())]
    assert time.monotonic() - started < 2


def test_split_mbox_starts_a_message_at_each_from_line():
    data = b"From a\nSubject: 1\n\nbody\n\nFrom b\nSubject: 2\n\n>From c\n"
    assert receive._split_mbox(data) == [b"Subject: 1\n\nbody\n\n", b"Subject: 2\n\n>From c\n"]


def test_read_sig_reads_exportable_flag_and_issuers():
    signer = crafting.Ed25519(b"signer")
    target = crafting.Ed25519(b"target")
    raw = crafting.uid_certification(target.body, b"T <t@example.org>", signer)
    body = crafting.split_packets(raw)[0][1]
    sig = receive.read_sig(packets.Packet(2, raw, body))
    assert (sig.sig_type, sig.issuer, sig.issuer_fpr, sig.exportable) == \
        (0x10, signer.key_id, signer.fingerprint, True)
    # The unhashed area is not part of what identifies a signature.
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    unhashed_end = hashed_end + 2 + int.from_bytes(body[hashed_end:hashed_end + 2], "big")
    bare = body[:hashed_end] + b"\x00\x00" + body[unhashed_end:]
    assert receive.read_sig(packets.Packet(2, b"", bare)).identity == sig.identity


def test_flooded_key_is_not_read(world):
    """A key carrying more certifications than a keysigning brings (CVE-2019-13050)."""
    home = copy_home(world.pristine)
    before = listing(home)
    flooded = crafting.flood_export(gpg(home, "--export", world.rita.fingerprint),
                                    RITA_UIDS[0].encode(), receive.MAX_CERTS + 1)
    mails = [plain_mail("flood", [("application/pgp-keys", crafting.armor(flooded))]),
             world.good[-1]]                                    # Gina's mail
    code, out, err = run_caffpy(["receive", write_mbox(mails)], receive_env(home))
    assert_clean_output(out, err)
    assert code == 65, out + err
    assert "%d certifications of your user IDs (a flooded key?): none was read" \
        % (receive.MAX_CERTS + 1) in out
    gina = world.signers["gina"].key_id
    assert added_certifications(before, listing(home)) == \
        {(uid, issuer) for uid, issuer in world.expected if issuer == gina}
