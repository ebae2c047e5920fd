"""Phase 2b: for each certified UID with an address, build its key copy and its mail.

Every message is written under caffhome/keys/YYYY-MM-DD/ and recorded in the
journal as pending before anything is handed to the MTA.
"""

import concurrent.futures
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from caffpy import journal as jr
from caffpy import message, progress
from caffpy.address import read_address
from caffpy.errors import CaffError, GpgError, JournalError
from caffpy.gpg import Gpg
from caffpy.keys import Key, Uid
from caffpy.packets import KeyBlock, UidBlock, armor, certifiers, uid_copy
from caffpy.prompt import Prompter
from caffpy.text import filename_part
from caffpy.workspace import Workspace, atomic_write, sync_directory

log = logging.getLogger(__name__)


@dataclass
class MailJob:
    """A mail decided on but not built yet: building it runs gpg --encrypt."""

    record: jr.MailRecord
    mode: str                        # the yes/ask-yes/ask-no/no setting that applies
    question: str
    build: Callable[[], bytes]
    key_copies: List[Tuple[str, bytes]]     # (path, armored key) saved beside the mail
    keyring: Optional[Gpg] = None           # the keyring build() encrypts from, if any
    wanted: bool = False

    def make(self) -> None:
        """Save the key copies, build the mail and save it (in a worker thread: the
        files' creation waits on the disk as gpg does on the CPU)."""
        for path, data in self.key_copies:
            atomic_write(path, data)
        atomic_write(self.record.file, self.build())


@dataclass
class Outcome:
    """What the compose phase did, for the summary."""

    queued: List[jr.MailRecord] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # by design: revoked, unsafe, done...
    errors: List[CaffError] = field(default_factory=list)
    kept_on_disk: List[str] = field(default_factory=list)
    already_mailed: int = 0     # UIDs whose mail an earlier run sent


def uid_name(text: str) -> str:
    """The name part of a UID: the text before any '(comment)' or '<address>'."""
    for mark in ("<", "("):
        text = text.split(mark)[0]
    return " ".join(text.split())


class Composer:
    def __init__(self, ws: Workspace, journal: jr.Journal, config, prompter: Prompter,
                 own_ids: Sequence[str], export_old: Optional[bool], resend: bool,
                 keyring_of: Optional[Callable[[str], Gpg]] = None):
        self.ws = ws
        # The keyring to encrypt to a key from: caffpy's, or a second one that holds it.
        self.keyring_of = keyring_of or (lambda fingerprint: ws.gpg)
        self.journal = journal
        self.config = config
        self.prompter = prompter
        self.own_ids = [i[-16:] for i in own_ids]
        self.export_old = export_old
        self.resend = resend
        self.outcome = Outcome()
        self.jobs: List[MailJob] = []
        self.copies_planned: Set[str] = set()      # key copies some job will write

    def compose_key(self, key: Key, block: Optional[KeyBlock],
                    only: Optional[Set[str]] = None) -> None:
        """Plan the mails of key's certified UIDs (with only: of these UID hashes)."""
        if block is None:
            self.outcome.errors.append(GpgError("key %s vanished from caffpy's keyring"
                                                % key.fingerprint))
            return
        signed = []     # (Uid, UidBlock, certs)
        for uid in key.uids:
            uid_block = block.uid_by_hash(uid.namehash)
            if not uid.usable:
                self.outcome.skipped.append("key 0x%s, user ID %d is %s: not mailed"
                                            % (key.long_id, uid.serial, uid.state))
                continue
            wanted = uid_block is not None and (only is None or uid.namehash in only)
            certs = certifiers(uid_block, self.own_ids) if wanted else {}
            if certs:
                signed.append((uid, uid_block, certs))
        if not signed:
            self.outcome.skipped.append("key 0x%s has no user ID certified by you" % key.long_id)
            return
        mailable, extras = [], []
        for uid, uid_block, certs in signed:
            if uid.is_attribute:
                extras.append((uid, uid_block, certs))
                continue
            reading = read_address(uid.text)
            if reading.address:
                if reading.address.partition("@")[2].startswith("xn--") or \
                        ".xn--" in reading.address:
                    # A look-alike domain (Cyrillic "е" for "e") reads like another one.
                    log.warning("key 0x%s, user ID %d %s: internationalized domain, mailed "
                                "as %s; check it is the address you saw at the party",
                                key.long_id, uid.serial, uid.shown, reading.address)
                mailable.append((uid, uid_block, certs, reading.address))
            elif not reading.unsafe:
                extras.append((uid, uid_block, certs))      # a name only: rides along
            else:
                self.outcome.skipped.append("key 0x%s, user ID %d %s: not mailed, because %s"
                                            % (key.long_id, uid.serial, uid.shown, reading.reason))
        primary_name = uid_name(key.uids[0].text) if key.uids else ""
        attached = set()
        for uid, uid_block, certs, address in mailable:
            companions = [e for e in extras
                          if uid_name(uid.text) == (primary_name if e[0].is_attribute
                                                    else uid_name(e[0].text))]
            attached.update(e[0].serial for e in companions)
            try:
                self._compose_mail(key, block, uid, uid_block, certs, address, companions)
            except CaffError as error:
                self.outcome.errors.append(error)
                log.error("key 0x%s, user ID %d: %s", key.long_id, uid.serial, error)
        for uid, uid_block, certs in extras:
            if uid.serial not in attached:
                path, data = self._key_copy(key, block, uid, uid_block)
                atomic_write(path, data.encode("ascii"))
                self.outcome.kept_on_disk.append(
                    "key 0x%s, user ID %d %s has no address of its own and no mailed user "
                    "ID with its name; its certification is kept in %s"
                    % (key.long_id, uid.serial, uid.shown, path))

    def _key_copy(self, key: Key, block: KeyBlock, uid: Uid, uid_block: UidBlock,
                  label: str = "") -> Tuple[str, str]:
        """The UID's key copy: (its path under keys/DAY/, the armored key)."""
        data = armor(self._copy_for(block, uid_block))
        name = "%s.%d.%s.asc" % (key.long_id, uid.serial, filename_part(label or uid.text, 40))
        return os.path.join(self.ws.day_dir(), name), data

    def _copy_for(self, block: KeyBlock, uid_block: UidBlock) -> bytes:
        if uid_block.is_attribute:
            # A key needs a text user ID: carry the first one along, without our signatures.
            first_text = next((u for u in block.uids if not u.is_attribute), None)
            head = uid_copy(block, [first_text], []) if first_text else block.primary.raw
            return head + uid_copy(block, [uid_block], self.own_ids)[len(block.primary.raw):]
        return uid_copy(block, [uid_block], self.own_ids)

    def _compose_mail(self, key: Key, block: KeyBlock, uid: Uid, uid_block: UidBlock,
                      certs: Dict[str, int], address: str, companions) -> None:
        mail_id = "%s/%s" % (key.fingerprint, uid.namehash)
        record = self.journal.mails.get(mail_id)
        signers = sorted(certs)
        if record and not self.resend and set(signers) <= set(record.signers):
            if record.state == jr.SENT:
                self.outcome.already_mailed += 1
                return
            if record.state in (jr.PENDING, jr.FAILED) and os.path.exists(record.file):
                self.outcome.queued.append(record)      # built before; send the same bytes
                return
        newest = max(certs.values())
        if not record and time.time() - newest > self.config["export-sig-age"]:
            question = ("Your certification of %s is older than export-sig-age and was "
                        "never mailed by caffpy. Mail it now?" % uid.shown)
            wanted = self.export_old if self.export_old is not None else \
                self.prompter.ask(question, default=False)
            if not wanted:
                self.outcome.skipped.append("key 0x%s, user ID %d: old certification not mailed "
                                            "(use -e to mail it)" % (key.long_id, uid.serial))
                return
        items = [(uid, uid_block)] + [(c[0], c[1]) for c in companions]
        attachments, key_copies = [], []
        for item_uid, item_block in items:
            path, armored = self._key_copy(key, block, item_uid, item_block,
                                           address if item_uid is uid else "")
            if path not in self.copies_planned:     # a companion rides in several mails
                self.copies_planned.add(path)
                key_copies.append((path, armored.encode("ascii")))
            attachments.append(message.Attachment(
                filename="0x%s.%d.signed-by-0x%s.asc" % (key.long_id, item_uid.serial,
                                                         signers[0]),
                description="OpenPGP key 0x%s, user ID %d, certified by 0x%s"
                            % (key.long_id, item_uid.serial, ", 0x".join(signers)),
                armored=armored))
        encrypt, keyring = None, None
        mode = self.config["mail"]
        if key.can_encrypt:
            recipients = [key.fingerprint] + list(self.config["also-encrypt-to"])
            keyring = self.keyring_of(key.fingerprint)
            encrypt = lambda data: keyring.encrypt(data, recipients)   # noqa: E731
        else:
            mode = self.config["mail-cant-encrypt"]
            log.warning("key 0x%s cannot encrypt: its mail would go out unencrypted",
                        key.long_id)
        text = message.render_text(self.config["mail-template"], self.config["owner"],
                                   key.fingerprint, [i[0].shown for i in items])
        subject = self.config["mail-subject"].replace("%k", key.long_id)
        path = os.path.join(self.ws.day_dir(), "%s.%d.%s.eml"
                            % (key.long_id, uid.serial, filename_part(address, 60)))
        record = jr.MailRecord(mail_id, key=key.fingerprint, uid=uid.shown, to=address,
                               signers=signers, file=path)
        plain = "" if encrypt else "*unencrypted* "
        self.jobs.append(MailJob(
            record=record, mode=mode,
            question="Mail %scertification of %s to %s?" % (plain, uid.shown, address),
            build=functools.partial(message.compose, text, attachments, self.config["owner"],
                                    self.config["email"], address, subject,
                                    self.config["reply-to"] or None, encrypt),
            key_copies=key_copies, keyring=keyring))

    def finish(self, keyring_free: Callable[[], None] = lambda: None) -> Outcome:
        """Ask about each planned mail, build them (encryptions in parallel), save and
        record; keyring_free() is called once no gpg reads caffpy's keyring any more."""
        for job in self.jobs:
            job.wanted = self.prompter.decide(job.mode, job.question)
        # The mails encrypted from caffpy's keyring first, so that it is free early.
        self.jobs.sort(key=lambda job: job.keyring is not self.ws.gpg)
        reading = sum(job.keyring is self.ws.gpg for job in self.jobs)
        # gpg encryptions are independent processes: keep every core busy.
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = [pool.submit(job.make) for job in self.jobs]
            for number, (job, future) in enumerate(zip(self.jobs, futures)):
                if number == reading:
                    keyring_free()      # the jobs before this one have all finished
                record = job.record
                progress.step("encrypting mails", number + 1, len(self.jobs), record.to)
                try:
                    future.result()
                except JournalError:
                    raise       # the disk: no other mail could be saved either
                except (CaffError, ValueError) as error:
                    self.outcome.errors.append(GpgError("mail to %s could not be built: %s"
                                                        % (record.to, error)))
                    continue
                if job.wanted:
                    self.journal.record(record, state=jr.PENDING)
                    self.outcome.queued.append(record)
                else:
                    self.journal.record(record, state=jr.DECLINED)
                    self.outcome.skipped.append("%s: not mailed, as you chose (saved in %s)"
                                                % (record.to, record.file))
        if reading == len(self.jobs):
            keyring_free()
        # Every mail, and its journal record, is on disk before the MTA relies on it
        # (each file was synced as it was written; now their names and the journal).
        if self.jobs or self.outcome.kept_on_disk:
            sync_directory(self.ws.day_dir())
        self.journal.sync()
        self.jobs = []
        return self.outcome
