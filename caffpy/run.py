"""One caffpy run: acquire the keys, certify them, compose the mails, deliver them.

Per-key problems are collected, not fatal: one bad key never stops the others.
The run's exit status is that of the first problem (0 when there was none).
"""

import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from caffpy import acquire, delivery, gpg, lanes, mta, signing
from caffpy import journal as jr
from caffpy.decisions import Decisions
from caffpy.errors import CaffError, ConfigError, MtaError
from caffpy.keys import Key
from caffpy.outbox import Composer
from caffpy.packets import KeyBlock, parse_keyblocks
from caffpy.prompt import Prompter
from caffpy.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    batch: bool = False
    mbox: Optional[str] = None
    export_old: Optional[bool] = None     # -e True, -E False, None: ask
    resend: bool = False
    # fingerprint -> the user IDs the party list shows (to notice stripped keys, for WKD)
    party_uids: Dict[str, List[str]] = field(default_factory=dict)
    locate: List[str] = field(default_factory=list)     # addresses to look up by WKD
    decisions: Optional[Decisions] = None     # --decisions FILE: which UIDs, and how


@dataclass
class Report:
    keys_requested: int = 0
    keys_certified: int = 0
    mails_sent: int = 0
    mails_to_mbox: int = 0
    already_mailed: int = 0
    mails_pending: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    problems: List[CaffError] = field(default_factory=list)
    gpg_calls: int = 0

    @property
    def exit_code(self) -> int:
        return self.problems[0].exit_code if self.problems else 0

    def summary(self) -> str:
        lines = ["", "Summary:",
                 "  keys asked for:          %d" % self.keys_requested,
                 "  keys certified now:      %d" % self.keys_certified,
                 "  mails handed to the MTA: %d" % self.mails_sent]
        if self.mails_to_mbox:
            lines.append("  mails written to mbox:   %d (not sent; they stay pending)"
                         % self.mails_to_mbox)
        if self.already_mailed:
            lines.append("  mailed by earlier runs:  %d (not sent again; --resend does)"
                         % self.already_mailed)
        lines.append("  mails pending:           %d" % len(self.mails_pending))
        for item in self.mails_pending:
            lines.append("    - " + item)
        if self.skipped:
            lines.append("  skipped (%d):" % len(self.skipped))
            lines += ["    - " + s for s in self.skipped]
        if self.notes:
            lines += ["  note: " + n for n in self.notes]
        if self.problems:
            lines.append("  problems (%d):" % len(self.problems))
            lines += ["    - " + str(p).replace("\n", "\n      ") for p in self.problems]
        return "\n".join(lines)


def check_mail_path(config, options: RunOptions, prompter: Prompter,
                    asked: bool = False) -> None:
    """Pre-flight, before any signature: mail must have a way to leave this machine."""
    if options.mbox or (config["mail"] == "no" and not asked):
        return
    sendmail = config["sendmail"]
    if not (os.path.isfile(sendmail) and os.access(sendmail, os.X_OK)) \
            and not shutil.which(sendmail):
        raise MtaError("%s does not exist or cannot be run, so no mail can be sent. Install "
                       "a mail transport agent (for example: apt install msmtp-mta), set "
                       "'sendmail' in ~/.caffrc, or use -m no / --mbox FILE" % sendmail)
    is_system_mta = os.path.realpath(sendmail) == os.path.realpath(mta.SENDMAIL)
    if not config["mta-check"] or not is_system_mta:
        return      # checked off, or a program of the user's choice: nothing to diagnose
    diagnosis = mta.diagnose(config["email"], mta.SENDMAIL)
    for warning in diagnosis.warnings:
        log.warning("%s", warning)
    if diagnosis.verdict == mta.STUCK or diagnosis.verdict == mta.UNKNOWN:
        log.warning("mail check: %s. %s", diagnosis.verdict, diagnosis.fix)
        return
    if diagnosis.verdict not in mta.BLOCKING:
        return
    explanation = ("Mail cannot leave this machine (%s); the certifications would never "
                   "reach their owners.\n%s\n(caffpy doctor shows the details; "
                   "--no-mta-check skips this check)" % (diagnosis.verdict, diagnosis.report()))
    if prompter.batch:
        raise MtaError(explanation)
    prompter.show(explanation)
    if not prompter.ask("Certify anyway and keep the mails pending until the MTA works?",
                        default=False):
        raise MtaError("stopped before signing: fix the MTA first (see caffpy doctor)")


def resolve_signers(own: Sequence[Key], local_users: Sequence[str]) -> List[Key]:
    if not local_users:
        return list(own)
    signers = []
    for wanted in local_users:
        matches = [k for k in own if k.fingerprint.endswith(wanted)]
        if not matches:
            raise ConfigError("local-user %s is not one of your keys listed in 'keyid'" % wanted)
        signers.extend(m for m in matches if m not in signers)
    return signers


class Session:
    """One locked caffhome with its journal, the user's keys imported, for the phases below."""

    def __init__(self, config, options: RunOptions, prompter: Prompter, report: Report,
                 with_keys: bool = True):
        self.config = config
        self.with_keys = with_keys      # False: only the journal is needed (caffpy retry)
        self.options = options
        self.prompter = prompter
        self.report = report
        self.ws = Workspace(config["caffhome"], config["gpg"])
        self.journal = jr.Journal(self.ws.journal_path)
        self.own: List[Key] = []
        self.signers: List[Key] = []
        self.key_hints: Dict[str, List[str]] = {}    # why a key could not be fetched
        # A second keyring, made by fetch_keys(split=True) or by certify(); closed by
        # __exit__ at the latest, which copies its keys into caffpy's keyring.
        self.second: Optional[lanes.SecondKeyring] = None

    def __enter__(self) -> "Session":
        self.ws.create()
        self.ws.lock()
        try:
            self.journal.load()
            if not self.with_keys:
                return self
            # Before any gpg call in caffhome: gpg would start an agent of its own there.
            self.ws.link_agent()
            self.own = acquire.import_own_keys(self.ws, self.config["keyid"])
            self.signers = resolve_signers(self.own, self.config["local-user"])
            if self.config["also-encrypt-to"]:
                acquire.import_own_keys(self.ws, self.config["also-encrypt-to"], required=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.second is not None:
            # Its certifications into caffpy's keyring, whatever stopped the run.
            self.report.problems.extend(self.second.close())
            self.second = None
        self.journal.close()
        self.ws.unlock()
        self.report.gpg_calls = self.ws.gpg.calls + self.ws.user_gpg.calls

    def keyring_of(self, fingerprint: str) -> gpg.Gpg:
        """The gpg of the keyring that holds the key (a second one, until closed)."""
        second = self.second
        if second is not None and not second.closed and fingerprint in second.holds:
            return second.gpg
        return self.ws.gpg

    @property
    def export_options(self) -> List[str]:
        local = ["export-local-sigs"] if "l" in self.config["gpg-sign-type"] else []
        return ["export-clean"] + local


def run(config, requested: Sequence[str], options: RunOptions, prompter: Prompter) -> Report:
    """caffpy KEYID...: the three phases in one go."""
    report = Report(keys_requested=len(requested))
    check_mail_path(config, options, prompter)
    with Session(config, options, prompter, report) as session:
        fetch_keys(session, requested, split=True)
        keys = verified_keys(session, requested)
        if keys is None:
            return report
        blocks = certify(session, keys)
        queued = compose(session, keys, blocks)
        deliver(session, queued)
    return report


def fetch_keys(session: Session, requested: Sequence[str], download: bool = True,
               split: bool = False) -> None:
    """Phase 1a: import the requested keys from every configured source.

    split: when one key file is the only source, a second keyring imports part
    of it and certifies those keys (lanes.py); they reach caffpy's keyring while
    the mails are built, or when the session ends.
    """
    config = session.config
    options = session.options
    downloads = download and not config["no-download"]
    if split and len(config["key-files"]) == 1 and not config["keys-from-gnupg"] \
            and not downloads and not config["wkd"] and not options.locate \
            and not options.party_uids and config["gpg-sign-type"] in ("", "l") \
            and gpg.cores() >= 2:
        session.second = lanes.SecondKeyring.make(session.ws)
    fetched = acquire.fetch(session.ws, requested, config["key-files"],
                            config["keys-from-gnupg"], downloads, config["keyserver"],
                            config["recv-timeout"], wkd=download and config["wkd"],
                            locate=options.locate if download else [],
                            party_uids=options.party_uids, second=session.second)
    if session.second is not None and not session.second.holds:
        # The key file could not be split (several armored blocks, a key given twice...):
        # this copy predates the import. certify() makes a new one if it pays.
        session.report.problems.extend(session.second.close())
        session.second = None
    for warning in fetched.warnings:
        log.warning("%s", warning)
    session.key_hints = fetched.hints


def verified_keys(session: Session, requested: Sequence[str]) -> Optional[List[Key]]:
    """Phase 1b: the usable keys that are exactly the ones asked for (None: user stopped)."""
    report, prompter = session.report, session.prompter
    acquired = acquire.verify(session.ws, requested, session.key_hints, session.second)
    for problem in acquired.problems:
        log.error("%s", problem)
        report.problems.append(problem)
    # Each missing key is reported; the others go on (--batch never stops here).
    if acquired.problems and acquired.keys and not prompter.batch and not prompter.ask(
            "Some keys could not be obtained. Go on with the others?", default=True):
        return None
    keys = []
    for key in acquired.keys:
        if key.usable:
            keys.append(key)
        else:
            report.skipped.append("key 0x%s is %s: not certified" % (key.long_id, key.state))
    return keys


def certify(session: Session, keys: List[Key]) -> Dict[str, KeyBlock]:
    """Phase 2a: certify; returns the keyblocks as they are afterwards."""
    ws, config, prompter, report = session.ws, session.config, session.prompter, session.report
    fingerprints = [k.fingerprint for k in keys]
    if not keys:
        return {}
    decisions = session.options.decisions
    if decisions is not None:
        # Asked and written, or checked against every key, before anything is signed.
        decisions.settle(keys, prompter)
        report.skipped.extend(decisions.skipped)
    no_sign = config["no-sign"]
    if not no_sign and config["ask-sign"] and not prompter.ask("Continue with signing?",
                                                              default=True):
        no_sign = True
    second = session.second
    if second is not None and (no_sign or decisions is not None):
        report.problems.extend(second.close())      # its keys into caffpy's keyring first
        session.second = second = None
    if no_sign:
        return parse_keyblocks(ws.gpg.export(fingerprints, session.export_options))
    signers = session.signers
    if decisions is not None:
        failures, certified, notes = signing.sign_chosen(ws, keys, signers, decisions)
        report.notes.extend(notes)
    else:
        before = export_blocks(ws, fingerprints, session.export_options, second)
        failures, second = signing.sign_keys(ws, keys, before, signers, config, prompter,
                                             second, session.export_options)
        session.second = second
    report.problems.extend(failures.values())
    if config["also-lsign-in-gnupghome"] != "no":
        if second is not None:      # the keys come from caffpy's keyring, all of them
            report.problems.extend(second.close())
            session.second = second = None
        done = [k for k in keys if k.fingerprint not in failures]
        report.problems.extend(signing.lsign_in_user_keyring(
            ws, done, signers, config["also-lsign-in-gnupghome"], prompter, decisions).values())
    after = export_blocks(ws, fingerprints, session.export_options, second)
    if decisions is None:
        certified = [k for k in keys if k.fingerprint not in failures and any(
            signing.unsigned_uids(k, before.get(k.fingerprint), s.fingerprint)
            > signing.unsigned_uids(k, after.get(k.fingerprint), s.fingerprint)
            for s in signers)]
    report.keys_certified = len(certified)
    return after


def export_blocks(ws: Workspace, fingerprints: Sequence[str], options: Sequence[str],
                  second: Optional[lanes.SecondKeyring]) -> Dict[str, KeyBlock]:
    """The keyblocks as they are now: the keys whose newest version is in a second
    keyring (held there, or certified there) come from it."""
    newer = second.unmerged if second is not None and not second.closed else set()
    from_second = [f for f in fingerprints if f in newer]
    blocks = parse_keyblocks(ws.gpg.export_on_all_cores(
        [f for f in fingerprints if f not in newer], options))
    if from_second:
        newest = parse_keyblocks(second.export(from_second, options))
        blocks.update((f, newest[f]) for f in from_second if f in newest)
    return blocks


def compose(session: Session, keys: List[Key], blocks: Dict[str, KeyBlock]) -> List[jr.MailRecord]:
    """Phase 2b: build, save and journal the mails; returns them with any left pending."""
    report = session.report
    composer = Composer(session.ws, session.journal, session.config, session.prompter,
                        [k.fingerprint for k in session.own], session.options.export_old,
                        session.options.resend, session.keyring_of)
    decisions = session.options.decisions
    for key in keys:
        # With decisions, only what they chose is mailed (not older certifications).
        composer.compose_key(key, blocks.get(key.fingerprint),
                             decisions.mailable(key.fingerprint) if decisions else None)
    second = session.second
    # Once no gpg reads caffpy's keyring (gpg's readers take no lock, and a keyring
    # update has a moment without the file), a second keyring's certifications are
    # copied into it, in the background, while the rest goes on.
    outcome = composer.finish(second.start_merge if second is not None else lambda: None)
    report.skipped.extend(outcome.skipped)
    report.already_mailed = outcome.already_mailed
    report.notes.extend(outcome.kept_on_disk)
    report.problems.extend(outcome.errors)
    queued = {r.mail_id: r for r in outcome.queued}
    for record in session.journal.pending():      # left over by earlier runs
        queued.setdefault(record.mail_id, record)
    return list(queued.values())


def deliver(session: Session, queued: List[jr.MailRecord], asked: bool = False) -> None:
    """Phase 3: hand the mails to the MTA (or the mbox); asked: the user said to send now,
    whatever the mail setting."""
    config, options, report = session.config, session.options, session.report
    if config["mail"] == "no" and not options.mbox and not asked:
        report.mails_pending = ["%s (%s)" % (r.to, r.file) for r in queued]
        return
    delivered = delivery.deliver(queued, session.journal, config["sendmail"],
                                 config["email"], config["bcc"] or None, options.mbox)
    report.mails_sent = len(delivered.sent)
    report.mails_to_mbox = len(delivered.to_mbox)
    report.problems.extend(delivered.errors)
    report.mails_pending = ["%s: %s" % (r.to, r.error or "not sent yet")
                            for r in queued if r.state != jr.SENT]


def retry(config, options: RunOptions) -> Report:
    """Hand the pending mails of earlier runs to the MTA; no key is fetched or signed."""
    report = Report()
    prompter = Prompter(batch=True)
    with Session(config, options, prompter, report, with_keys=False) as session:
        pending = session.journal.pending()
        if pending:
            check_mail_path(config, options, prompter, asked=True)
        deliver(session, pending, asked=True)
    return report


def status(config) -> str:
    """Per key and UID: what the journal knows about its mail."""
    journal = jr.Journal(os.path.join(config["caffhome"], "journal"))
    journal.load()
    if not journal.mails:
        return "No mails recorded in %s yet." % journal.path
    lines = []
    by_key = {}
    for record in journal.mails.values():
        by_key.setdefault(record.key, []).append(record)
    for key, records in by_key.items():
        lines.append("key %s" % key)
        for record in records:
            state = {jr.SENT: "mailed", jr.PENDING: "pending", jr.FAILED: "FAILED",
                     jr.DECLINED: "not sent (declined)",
                     jr.BUNDLED: "in a bundle's outbox"}.get(record.state, record.state)
            lines.append("  %-20s %s -> %s" % (state, record.uid, record.to))
            if record.state == jr.FAILED and record.error:
                lines.append("      the MTA said: %s" % record.error)
            lines.append("      certified by %s; saved as %s"
                         % (", ".join("0x" + s for s in record.signers), record.file))
    counts = {}
    for record in journal.mails.values():
        counts[record.state] = counts.get(record.state, 0) + 1
    lines.append("")
    lines.append("total: " + ", ".join("%d %s" % (n, s) for s, n in sorted(counts.items())))
    if counts.get(jr.PENDING) or counts.get(jr.FAILED):
        lines.append("Send the pending ones with: caffpy retry")
    return "\n".join(lines)
