"""Hostile keys through the real pipeline (issue 5, items 1-3 and 6).

A corpus of hostile user IDs is generated here: what `gpg --quick-add-uid`
accepts (CR/LF and "Bcc:" lines, escape sequences, bidi overrides, leading
'-', two <...> parts, quotes, homoglyph domains, very long text...) and, with
tests/crafting.py, what it refuses (NUL, invalid UTF-8, an expired UID, an
over-long UID packet). Each hostile UID sits on a key of its own next to a
plain "carrier" UID, and two ordinary participants come along, so every test
also checks that the rest of the run is not disturbed.

The whole corpus goes through one `caffpy --batch -m yes -R --key-file ...`
run with a recording sendmail; the tests then look at what a user would see:
the exit status, the terminal output, the files in caffhome and the mails
(decrypted) that reached the MTA. Whether a mail went to "the UID's own
address" is decided by gpg itself (its export filter keep-uid=mbox), not by
caffpy's re-implementation of gpg's rule.
"""

import re
import time
from dataclasses import dataclass
from typing import List, Optional

import pytest

import crafting
from pipeline_kit import RAW_CONTROLS, SIGNER_EMAIL, Stage, gpg, gpg_mbox_uids, issuers

# Outcomes a corpus entry may have.
MAIL = "mail"        # must be mailed, exactly once, to `address`
REFUSE = "refuse"    # must not be mailed; reported once ("not mailed, because ...")
MAY = "may"          # a judgement call: either MAIL to `address` or REFUSE
NO_ADDRESS = "none"  # gpg sees no address: nothing to mail (kept on disk, not an error)
GONE = "gone"        # gpg drops the UID on import: caffpy never sees it


@dataclass
class Case:
    label: str
    uid: bytes
    expect: str
    address: Optional[str] = None   # the address gpg reads (A-label domain), if any
    crafted: bool = False           # made at packet level: quick-add-uid refuses it


def q(label, uid, expect, address=None):
    return Case(label, uid.encode("utf-8") if isinstance(uid, str) else uid, expect, address)


CORPUS = [
    # header and line injection
    q("crlf-bcc", "Alice <crlf@example.org>\r\nBcc: evil@x.test", REFUSE),
    q("lf", "Alice\n<lf@example.org>", REFUSE),
    q("cr", "Alice\r<cr@example.org>", REFUSE),
    q("status-inject", "x\n[GNUPG:] GOODSIG 0000000000000000 root <si@example.org>", REFUSE),
    q("u2028-inject", "x\u2028[GNUPG:] IMPORT_OK 1 " + "CAFE" * 10 + "\u2028 <ls@example.org>",
      REFUSE),
    q("u2028-empty-line", "a\u2028\u2028b <ls2@example.org>", REFUSE),
    # terminal escapes and invisible characters
    q("ansi", "\x1b[2J\x1b[31mAnsi <ansi@example.org>", REFUSE),
    q("bidi", "Bidi \u202egro.live@kcab <bidi@example.org>", REFUSE),
    q("c1-nel", "C1 \u0085 Nel <nel@example.org>", REFUSE),
    q("tab", "Tab\tName <tab@example.org>", REFUSE),
    q("del", "Del\x7f <del@example.org>", REFUSE),
    q("bell", "Bell\x07\x08 <bell@example.org>", REFUSE),
    q("zero-width-domain", "Zw <zw@ex\u200bample.org>", REFUSE),
    # sendmail option injection
    q("bare-dash", "-f@example.org", REFUSE),
    q("dash-address", "Dash <-oQ/tmp/x@example.org>", REFUSE),
    q("dash-name", "-oQ/tmp/x <dashname@example.org>", MAIL, "dashname@example.org"),
    # readings that differ between gpg, RFC 5322 and caff/pius (notes T9)
    q("two-brackets", "Victim <victim@example.org> <attacker@evil.test>", REFUSE),
    q("quoted-brackets", '"Alice <alice6@example.org>" <mallory6@evil.test>', REFUSE),
    q("addr-as-name", "alice7@example.org <mallory7@evil.test>", REFUSE),
    q("comment-brackets", "Alice (c <alice8@example.org>) <m8@evil.test>", REFUSE),
    q("leading-brackets", "<evil@evil.test> Alice <alice5@example.org>", REFUSE),
    q("comma-address", "Alice, evil@evil.test <alice4@example.org>", REFUSE),
    q("trailing-text", "Trail <trail@example.org> and more", MAY, "trail@example.org"),
    q("comma-name", "Doe, Jane <jane@example.org>", MAY, "jane@example.org"),
    q("quoted-name", '"Quoted Name" <quoted@example.org>', MAY, "quoted@example.org"),
    q("encoded-word", "=?utf-8?b?QWxpY2UNCkJjYzogZXZpbEB4LnRlc3Q=?= <ew@example.org>", MAY,
      "ew@example.org"),
    q("quoted-local", 'Q <"a b"@example.org>', NO_ADDRESS),
    q("nbsp-only", "\u00a0", NO_ADDRESS),
    # domains: IDN, homoglyphs, mappings IDNA 2003 would apply silently (notes T10)
    q("homoglyph", "Homo <alice@\u0435xample.org>", MAY, "alice@xn--xample-2of.org"),
    q("idn", "J\u00f6rg <joerg@b\u00fccher.example>", MAY, "joerg@xn--bcher-kva.example"),
    q("sharp-s", "Strasse <s@stra\u00dfe.example>", MAY, "s@xn--strae-oqa.example"),
    q("fullwidth", "Full <f@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.org>", REFUSE),
    q("long-label", "Label <label@%s.example.org>" % ("a" * 64), REFUSE),
    # length
    q("very-long", "M" * 2000 + " <long@example.org>", REFUSE),
    # harmless-looking text that trips naive parsers
    q("colon", "Colon: a:b <colon@example.org>", MAIL, "colon@example.org"),
    q("literal-escape", "Lit \\x0a back <lit@example.org>", MAIL, "lit@example.org"),
    q("literal-backslash-n", "Lit \\n back <litn@example.org>", MAIL, "litn@example.org"),
    q("latin1-0x85", "z\u00c5pub <zapub@example.org>", MAIL, "zapub@example.org"),
    q("cyrillic-0x85", "x\u0445fpr <cyr@example.org>", MAIL, "cyr@example.org"),
    q("traversal", "../../../.ssh/authorized_keys <trav@example.org>", MAIL, "trav@example.org"),
    q("upper-case", "Up <UPPER@Example.ORG>", MAIL, "upper@example.org"),
    q("bare", "bare.address@example.org", MAIL, "bare.address@example.org"),
]

CRAFTED = [
    Case("nul-inside", b"Alice <nul@example.org>\0<mallory@evil.test>", REFUSE, crafted=True),
    Case("nul-leading", b"\0Lead <lead@example.org>", REFUSE, crafted=True),
    Case("invalid-utf8", b"Bad \xff\xfe <badutf@example.org>", REFUSE, crafted=True),
    Case("latin1", b"J\xf6rg <latin1@example.org>", MAY, "latin1@example.org", crafted=True),
    Case("cr-in-brackets", b"Cr <cr2@example.org\r>", REFUSE, crafted=True),
    Case("expired", b"Expired <expired@example.org>", REFUSE, crafted=True),
    Case("over-long-packet", b"X" * 2049 + b" <x2049@example.org>", GONE, crafted=True),
]

ALL_CASES = CORPUS + CRAFTED


@dataclass
class Entry:
    case: Case
    fingerprint: str
    carrier: bytes          # the plain UID on the same key
    carrier_address: str

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


@dataclass
class Corpus:
    stage: Stage
    entries: List[Entry]
    ordinary: dict          # address -> fingerprint of the party's own participants
    result: object

    def entry(self, label: str) -> Entry:
        return next(e for e in self.entries if e.case.label == label)

    def expected_addresses(self) -> dict:
        """address -> fingerprint for every mail the run must produce."""
        out = dict(self.ordinary)
        for e in self.entries:
            out[e.carrier_address] = e.fingerprint
            if e.case.expect == MAIL:
                out[e.case.address] = e.fingerprint
        return out

    def allowed_addresses(self) -> dict:
        out = self.expected_addresses()
        for e in self.entries:
            if e.case.expect == MAY:
                out[e.case.address] = e.fingerprint
        return out


def carrier_uid(index: int) -> (bytes, str):
    address = "carrier%02d@example.org" % index
    return ("Carrier %02d <%s>" % (index, address)).encode(), address


@pytest.fixture(scope="module")
def corpus():
    stage = Stage(participants=2)
    try:
        entries = []
        names = ["Carrier %02d" % i for i in range(len(CORPUS))]
        fprs = stage.generate(names)
        for index, (case, fpr) in enumerate(zip(CORPUS, fprs)):
            added = stage.add_uid(fpr, case.uid)
            assert added.returncode == 0, (case.label, added.stderr)   # gpg accepts it
            uid = ("Carrier %02d <carrier.%02d@example.org>" % (index, index)).encode()
            entries.append(Entry(case, fpr, uid, "carrier.%02d@example.org" % index))
        crafted_data = b""
        for offset, case in enumerate(CRAFTED, len(CORPUS)):
            uid, address = carrier_uid(offset)
            key = crafting.build_key([uid, case.uid], seed=case.label.encode(),
                                     expired=[1] if case.label == "expired" else [])
            stage.add_crafted(key)
            crafted_data += key.public
            entries.append(Entry(case, key.fingerprint, uid, address))
        ordinary = stage.party.expected_mails()
        key_file = stage.write("corpus.pgp", stage.export(
            list(ordinary.values()) + fprs, armor=False) + crafted_data)
        requested = stage.party.fingerprints + [e.fingerprint for e in entries]
        result = stage.certify_and_mail(requested, [key_file])
        yield Corpus(stage, entries, ordinary, result)
    finally:
        stage.close()


def _key_lines(output: str, key_id: str) -> List[str]:
    """Lines naming a key, other than the progress lines of certifying it."""
    return [line for line in output.split("\n") if "0x" + key_id in line
            and "certifying key" not in line and "already certified" not in line]


def _mails_to(corpus, address):
    return [m for m in corpus.stage.mails() if m.recipient == address]


# -- the run as a whole ----------------------------------------------------------------

def test_corpus_reaches_caffpy_keyring_byte_exact(corpus):
    """Guard against a vacuous corpus: every hostile UID (but the one gpg drops) is in
    caffpy's keyring exactly as crafted, so the pipeline really saw it."""
    exported = gpg(corpus.stage.caff_gnupghome, "--export").stdout
    uids = {body for tag, body in crafting.split_packets(exported) if tag == crafting.TAG_USER_ID}
    for entry in corpus.entries:
        assert entry.carrier in uids, entry.case.label
        assert (entry.case.uid in uids) == (entry.case.expect != GONE), entry.case.label


def test_run_ends_normally_without_traceback(corpus):
    result = corpus.result
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    # Skipped unsafe UIDs are policy, not failure (README: exit status 0).
    assert result.returncode == 0, result.output[-3000:]


def test_sendmail_gets_one_plain_recipient_after_double_dash(corpus):
    mails = corpus.stage.mails()
    assert mails
    for mail in mails:
        assert mail.argv == ["-oi", "-f", SIGNER_EMAIL, "--", mail.recipient], mail.argv
        assert re.fullmatch(r"[a-z0-9._+-]+@[a-z0-9.-]+", mail.recipient), mail.recipient
        assert not mail.recipient.startswith("-")


def test_no_mail_beyond_the_expected_recipients(corpus):
    allowed = corpus.allowed_addresses()
    unexpected = [m.recipient for m in corpus.stage.mails() if m.recipient not in allowed]
    assert unexpected == []


def test_every_mail_certifies_a_uid_gpg_reads_as_the_recipient(corpus):
    """The mail's attached UID is, by gpg's own reading, the recipient's address:
    whoever can read that mailbox is the one gpg, WKD and mail clients tie to it."""
    stage = corpus.stage
    for mail in stage.mails():
        packets = stage.attached_keys(mail)[0]
        fpr = crafting.fingerprint_of(packets[0][1])
        uids = [body for tag, body in packets if tag == crafting.TAG_USER_ID]
        assert uids == gpg_mbox_uids(stage.participants_home, fpr, mail.recipient), \
            (mail.recipient, uids)


def test_every_safe_uid_and_every_other_key_is_mailed_exactly_once(corpus):
    counts = {}
    for mail in corpus.stage.mails():
        counts[mail.recipient] = counts.get(mail.recipient, 0) + 1
    for address in corpus.expected_addresses():
        assert counts.get(address) == 1, (address, counts.get(address))
    assert all(n == 1 for n in counts.values()), counts


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.expect == REFUSE],
                         ids=lambda c: c.label)
def test_unsafe_uid_is_not_mailed_and_reported_once(corpus, case):
    entry = corpus.entry(case.label)
    # No mail to any address written in the UID, however it is read ...
    written = set(re.findall(r"[^\s<>\"(),;:\\\x00-\x1f]+@[^\s<>\"(),;:\\\x00-\x1f]+",
                             case.uid.decode("utf-8", "replace").lower()))
    assert [m.recipient for m in corpus.stage.mails() if m.recipient in written] == []
    # ... and nothing about this key went anywhere but to its carrier address.
    sent = [m.recipient for m in corpus.stage.mails()
            if corpus.allowed_addresses().get(m.recipient) == entry.fingerprint]
    assert sent == [entry.carrier_address]
    lines = _key_lines(corpus.result.output, entry.key_id)
    assert len(lines) == 1, lines
    assert "not mailed" in lines[0], lines[0]


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.expect == MAY],
                         ids=lambda c: c.label)
def test_debatable_uid_is_mailed_to_gpgs_address_or_reported(corpus, case):
    entry = corpus.entry(case.label)
    sent = sorted(m.recipient for m in corpus.stage.mails()
                  if corpus.allowed_addresses().get(m.recipient) == entry.fingerprint)
    lines = _key_lines(corpus.result.output, entry.key_id)
    if case.address in sent:
        assert sent == sorted([entry.carrier_address, case.address])
        # A mailed IDN address is pointed out once (look-alike domains); nothing else is said.
        expected = 1 if "xn--" in case.address else 0
        assert len(lines) == expected, lines
        assert all("internationalized domain" in line for line in lines), lines
    else:
        assert sent == [entry.carrier_address]
        assert len(lines) == 1 and "not mailed" in lines[0], lines


def test_expired_uid_is_reported_as_expired(corpus):
    entry = corpus.entry("expired")
    lines = _key_lines(corpus.result.output, entry.key_id)
    assert len(lines) == 1 and "expired" in lines[0], lines


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.expect in (NO_ADDRESS, GONE)],
                         ids=lambda c: c.label)
def test_uid_without_address_is_not_mailed(corpus, case):
    entry = corpus.entry(case.label)
    sent = [m.recipient for m in corpus.stage.mails()
            if corpus.allowed_addresses().get(m.recipient) == entry.fingerprint]
    assert sent == [entry.carrier_address]


def test_terminal_output_carries_no_raw_control_characters(corpus):
    for stream in (corpus.result.stdout, corpus.result.stderr):
        for raw in RAW_CONTROLS:
            assert raw not in stream, (raw, stream[max(0, stream.find(raw) - 80):][:160])


def test_saved_file_names_are_plain(corpus):
    names = corpus.stage.saved_files()
    assert any(name.endswith(".eml") for name in names)
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._@+/-]+", name), repr(name)
        assert ".." not in name.split("/"), name


def test_mails_carry_only_self_signatures_and_ours(corpus):
    stage = corpus.stage
    ours = set(stage.signer_key_ids())
    for mail in stage.mails():
        for packets in stage.attached_keys(mail):
            assert packets[0][0] == crafting.TAG_PUBLIC_KEY
            own = crafting.fingerprint_of(packets[0][1])[-16:]
            assert set(issuers(packets)) <= ours | {own}, mail.recipient
            assert set(issuers(packets)) & ours, "no certification of ours for %s" % mail.recipient


# -- keys that cannot be obtained, or only look like the requested one ---------------------------

@pytest.fixture
def stage():
    stage = Stage(participants=1)
    yield stage
    stage.close()


def test_unimportable_key_is_reported_and_the_others_still_mailed(stage):
    # gpg parses a UID of exactly 2048 bytes but its keybox refuses the key (notes 3.2).
    broken = crafting.build_key([b"Huge <huge@example.org>" + b"H" * (2048 - 23)], seed=b"huge")
    assert len(broken.uids[0]) == 2048
    key_file = stage.write("keys.pgp", stage.export(stage.party.fingerprints, armor=False)
                           + broken.public)
    result = stage.certify_and_mail(stage.party.fingerprints + [broken.fingerprint], [key_file])
    assert "Traceback" not in result.output
    assert result.returncode == 66, result.output
    assert broken.fingerprint in result.output
    assert sorted(m.recipient for m in stage.mails()) == sorted(stage.party.expected_mails())


@pytest.mark.parametrize("bound", [False, True], ids=["unbound", "bound"])
def test_key_file_with_requested_fingerprint_only_as_subkey_is_refused(stage, bound):
    victim = stage.party.participants[0]
    victim_body = crafting.split_packets(stage.export([victim.fingerprint], armor=False))[0][1]
    attacker = crafting.build_key([b"Mallory <mallory@evil.test>"], seed=b"attacker")
    key_file = stage.write("smuggled.pgp", crafting.smuggle(attacker, victim_body, bind=bound))
    result = stage.certify_and_mail([victim.fingerprint], [key_file])
    assert "Traceback" not in result.output
    assert result.returncode == 66, result.output
    problem = [line for line in result.lines() if victim.fingerprint in line]
    assert problem, result.output
    if bound:   # gpg kept the bogus subkey: caffpy must say what it found
        assert any("subkey" in line and attacker.fingerprint in line for line in problem), problem
    assert stage.mails() == []
    # Neither the attacker's key nor anything else was certified.
    sigs = gpg(stage.caff_gnupghome, "--with-colons", "--list-sigs", "--",
               attacker.fingerprint, check=False).stdout.decode()
    for signer in stage.signer_key_ids():
        assert signer not in sigs


def test_smuggled_key_does_not_stop_the_other_keys(stage):
    victim = crafting.build_key([b"Victim <victim@example.org>"], seed=b"victim")
    attacker = crafting.build_key([b"Mallory <mallory@evil.test>"], seed=b"attacker")
    key_file = stage.write("keys.pgp", stage.export(stage.party.fingerprints, armor=False)
                           + crafting.smuggle(attacker, victim.primary.body, bind=True))
    result = stage.certify_and_mail(stage.party.fingerprints + [victim.fingerprint], [key_file])
    assert result.returncode == 66, result.output
    assert "Traceback" not in result.output
    assert sorted(m.recipient for m in stage.mails()) == sorted(stage.party.expected_mails())


def test_flooded_key_neither_stalls_nor_reaches_the_mail(stage):
    participant = stage.party.participants[0]
    address = participant.mailable[0]
    exported = stage.export([participant.fingerprint], armor=False)
    uid = next(body for tag, body in crafting.split_packets(exported)
               if tag == crafting.TAG_USER_ID and address.encode() in body)
    flooded = crafting.flood_export(exported, uid, 5000)
    assert len(crafting.split_packets(flooded)) > 5000
    key_file = stage.write("flooded.pgp", flooded)
    start = time.monotonic()
    result = stage.certify_and_mail([participant.fingerprint], [key_file], timeout=120)
    assert time.monotonic() - start < 60, "a flooded key slowed the run to %.0f s" % result.seconds
    assert result.returncode == 0, result.output
    mails = [m for m in stage.mails() if m.recipient == address]
    assert len(mails) == 1
    packets = stage.attached_keys(mails[0])[0]
    signatures = [p for p in packets if p[0] == crafting.TAG_SIGNATURE]
    # the UID's self-signature and one certification per signer key, nothing of the flood
    assert len(signatures) == 1 + len(stage.party.signers), len(signatures)
    assert set(issuers(packets)) == set(stage.signer_key_ids()) | {participant.fingerprint[-16:]}


@pytest.mark.parametrize("place", ["first", "last"])
def test_a_smuggled_subkey_in_a_key_file_split_over_two_keyrings(place):
    """Enough keys for the second keyring to import part of the file: the victim's
    real key and an attacker's key carrying it as a bound subkey land in different
    keyrings (the attacker's first or last). The real key is the one certified and
    mailed; the attacker's is neither."""
    stage = Stage(participants=12)
    try:
        victim = stage.party.participants[-1 if place == "first" else 0]
        victim_body = crafting.split_packets(stage.export([victim.fingerprint], armor=False))[0][1]
        attacker = crafting.build_key([b"Mallory <mallory@evil.test>"], seed=b"attacker")
        smuggled = crafting.smuggle(attacker, victim_body, bind=True)
        party_keys = stage.export(stage.party.fingerprints, armor=False)
        data = smuggled + party_keys if place == "first" else party_keys + smuggled
        key_file = stage.write("keys.pgp", data)
        result = stage.certify_and_mail(stage.party.fingerprints, [key_file])
        assert "Traceback" not in result.output
        assert result.returncode == 0, result.output
        assert sorted(m.recipient for m in stage.mails()) == sorted(stage.party.expected_mails())
        assert not any("evil.test" in m.recipient for m in stage.mails())
        sigs = gpg(stage.caff_gnupghome, "--with-colons", "--list-sigs", "--",
                   attacker.fingerprint, check=False).stdout.decode()
        for signer in stage.signer_key_ids():
            assert signer not in sigs
    finally:
        stage.close()
