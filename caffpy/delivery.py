"""Phase 3: hand the saved mails to the MTA (or to an mbox for review), exactly once each."""

import logging
import mailbox
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from caffpy import journal as jr
from caffpy import mailer
from caffpy.errors import CaffError, JournalError, MailError, MtaError

log = logging.getLogger(__name__)


@dataclass
class Delivered:
    sent: List[jr.MailRecord] = field(default_factory=list)
    failed: List[jr.MailRecord] = field(default_factory=list)
    to_mbox: List[jr.MailRecord] = field(default_factory=list)
    errors: List[CaffError] = field(default_factory=list)


@contextmanager
def interrupt_deferred():
    """Hold Ctrl-C until the MTA has the message and the journal says so."""
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def deliver(records: Sequence[jr.MailRecord], journal: jr.Journal, sendmail: str,
            sender: str, bcc: Optional[str], mbox_path: Optional[str] = None) -> Delivered:
    result = Delivered()
    if mbox_path:
        _write_mbox(records, mbox_path, result)
        return result
    for number, record in enumerate(records, 1):
        try:
            with open(record.file, "rb") as handle:
                data = handle.read()
        except OSError as error:
            result.errors.append(JournalError("saved mail %s cannot be read: %s"
                                              % (record.file, error.strerror)))
            continue
        recipients = [record.to] + ([bcc] if bcc else [])
        log.info("[%d/%d] mailing %s", number, len(records), record.to)
        for recipient in recipients:
            if recipient in record.delivered:
                continue
            with interrupt_deferred():
                try:
                    mailer.send(data, sendmail, sender, recipient)
                except MailError as error:
                    journal.record(record, state=jr.FAILED, error=str(error))
                    result.failed.append(record)
                    result.errors.append(error)
                    log.error("mail to %s not sent: %s", recipient, error)
                    break
                except MtaError as error:
                    journal.record(record, state=jr.FAILED, error=str(error))
                    result.errors.append(error)
                    # Without an MTA no other mail can go either: keep them all pending.
                    result.failed.extend(r for r in records[number - 1:])
                    return result
                journal.record(record, delivered=record.delivered + [recipient])
        else:
            journal.record(record, state=jr.SENT, error="")
            result.sent.append(record)
    return result


def _write_mbox(records: Sequence[jr.MailRecord], path: str, result: Delivered) -> None:
    """Write the mails to an mbox for review; they stay pending for a real send."""
    try:
        if os.path.exists(path):
            os.unlink(path)
        box = mailbox.mbox(path, create=True)
        box.lock()
        for record in records:
            with open(record.file, "rb") as handle:
                box.add(handle.read())
            result.to_mbox.append(record)
        box.flush()
        box.unlock()
        box.close()
    except OSError as error:
        result.errors.append(JournalError("cannot write the mbox %s: %s"
                                          % (path, error.strerror)))
