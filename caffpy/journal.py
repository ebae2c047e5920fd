"""The journal: what happened to every mail, so that each one is sent exactly once.

An append-only file of JSON lines in caffhome. The first line names the format
and version; every later line is one event for one mail (keyed by key
fingerprint and UID hash). Appending keeps every write small and atomic enough:
a run killed mid-write leaves at most a torn last line, which is ignored.
Signatures themselves are not journalled: caffpy's keyring is their record, and
each run reads from it which UIDs already carry the user's certification.
"""

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List

from caffpy.errors import JournalError

log = logging.getLogger(__name__)

FORMAT = "caffpy-journal"
VERSION = 1

# Mail states.
PENDING = "pending"     # built and saved, not yet handed to the MTA
SENT = "sent"           # the MTA accepted it (exit status 0)
FAILED = "failed"       # the MTA refused it; retried by the next run
DECLINED = "declined"   # the user chose not to send it
BUNDLED = "bundled"     # signed offline: it leaves through the bundle's outbox


@dataclass
class MailRecord:
    mail_id: str                     # "<FPR>/<UID hash>"
    key: str = ""
    uid: str = ""                    # printable form of the UID, for status output
    to: str = ""
    signers: List[str] = field(default_factory=list)
    file: str = ""                   # the saved message
    state: str = PENDING
    error: str = ""
    delivered: List[str] = field(default_factory=list)   # recipients that took it (to, bcc)
    updated: float = 0.0


class Journal:
    def __init__(self, path: str):
        self.path = path
        self.mails: Dict[str, MailRecord] = {}
        self._handle = None

    def load(self) -> None:
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path, "rb") as handle:
                lines = handle.read().split(b"\n")
        except OSError as error:
            raise JournalError("cannot read the journal %s: %s" % (self.path, error.strerror))
        if not self._is_header(lines[0]):
            raise JournalError("%s is not a caffpy journal (or of a newer version); move it "
                               "away to start afresh (mails it recorded may then be sent "
                               "again)" % self.path)
        for number, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                record = self.mails.get(event["mail_id"]) or MailRecord(event["mail_id"])
                for key, value in event.items():
                    if hasattr(record, key):
                        setattr(record, key, value)
                self.mails[record.mail_id] = record
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    log.warning("ignoring the torn last line of %s (an interrupted run)",
                                self.path)
                    continue
                raise JournalError("%s, line %d is damaged; move the file away to start "
                                   "afresh (mails it recorded may then be sent again)"
                                   % (self.path, number))

    @staticmethod
    def _is_header(line: bytes) -> bool:
        try:
            header = json.loads(line)
        except ValueError:
            return False
        return isinstance(header, dict) and header.get("format") == FORMAT \
            and header.get("version") == VERSION

    def _append(self, event: dict) -> None:
        try:
            if self._handle is None:
                new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
                if not new:
                    self._repair_tail()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._handle = os.fdopen(fd, "ab")
                if new:
                    self._handle.write(json.dumps({"format": FORMAT, "version": VERSION})
                                       .encode() + b"\n")
            self._handle.write(json.dumps(event, ensure_ascii=True).encode() + b"\n")
            self._handle.flush()
        except OSError as error:
            raise JournalError("cannot write the journal %s: %s" % (self.path, error.strerror))

    def _repair_tail(self) -> None:
        """Cut a torn last line left by an interrupted run, so new lines start clean."""
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def record(self, record: MailRecord, **changes) -> None:
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated = time.time()
        self.mails[record.mail_id] = record
        # Its fields are strings, numbers and lists of strings: a shallow copy is the
        # record (dataclasses.asdict deep-copies, a measurable cost at 1000 records).
        event = {name: list(value) if isinstance(value, list) else value
                 for name, value in vars(record).items()}
        self._append(event)

    def sync(self) -> None:
        """Put what was recorded so far on disk (before the MTA relies on it)."""
        if self._handle is not None:
            try:
                os.fsync(self._handle.fileno())
            except OSError as error:
                raise JournalError("cannot write the journal %s: %s"
                                   % (self.path, error.strerror))

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError:
                pass
            self._handle.close()
            self._handle = None

    def pending(self) -> List[MailRecord]:
        return [r for r in self.mails.values() if r.state in (PENDING, FAILED)]
