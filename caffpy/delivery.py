"""Phase 3: hand the saved mails to the MTA (or to an mbox for review), exactly once each."""

import concurrent.futures
import logging
import os
import signal
from concurrent.futures import FIRST_COMPLETED
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from caffpy import journal as jr
from caffpy import mailer, progress
from caffpy.errors import CaffError, JournalError, MailError, MtaError

log = logging.getLogger(__name__)


@dataclass
class Delivered:
    sent: List[jr.MailRecord] = field(default_factory=list)
    failed: List[jr.MailRecord] = field(default_factory=list)
    to_mbox: List[jr.MailRecord] = field(default_factory=list)
    errors: List[CaffError] = field(default_factory=list)


SENDERS = 2   # sendmail calls at a time: msmtp talks to the relay synchronously


def _send_one(data: bytes, sendmail: str, sender: str, recipients: Sequence[str]):
    """Hand one message to sendmail for each recipient; stop at the first failure."""
    done = []
    for recipient in recipients:
        try:
            mailer.send(data, sendmail, sender, recipient)
        except (MailError, MtaError) as error:
            return done, error
        done.append(recipient)
    return done, None


def deliver(records: Sequence[jr.MailRecord], journal: jr.Journal, sendmail: str,
            sender: str, bcc: Optional[str], mbox_path: Optional[str] = None) -> Delivered:
    """Send each record's saved message, recording every outcome in the journal.

    Ctrl-C is held while messages are with sendmail: the calls under way
    finish and are recorded, no new one starts, then the interrupt goes on.
    """
    result = Delivered()
    if mbox_path:
        _write_mbox(records, mbox_path, result)
        return result
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        _deliver_all(records, journal, sendmail, sender, bcc, result, interrupted)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _deliver_all(records, journal, sendmail, sender, bcc, result, interrupted) -> None:
    queue = list(records)
    total = len(queue)
    running = {}
    stop = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=SENDERS) as pool:
        while queue or running:
            while queue and len(running) < SENDERS and not stop and not interrupted:
                record = queue.pop(0)
                try:
                    with open(record.file, "rb") as handle:
                        data = handle.read()
                except OSError as error:
                    result.errors.append(JournalError("saved mail %s cannot be read: %s"
                                                      % (record.file, error.strerror)))
                    continue
                recipients = [r for r in [record.to] + ([bcc] if bcc else [])
                              if r not in record.delivered]
                progress.step("mailing", total - len(queue), total, record.to)
                running[pool.submit(_send_one, data, sendmail, sender, recipients)] = record
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                record = running.pop(future)
                done, error = future.result()
                if error is None:
                    journal.record(record, state=jr.SENT, error="",
                                   delivered=record.delivered + done)
                    result.sent.append(record)
                    continue
                journal.record(record, state=jr.FAILED, error=str(error),
                               delivered=record.delivered + done)
                result.failed.append(record)
                result.errors.append(error)
                log.error("mail to %s not sent: %s", record.to, error)
                if isinstance(error, MtaError):
                    stop = True     # without an MTA no other mail can go either
    result.failed.extend(queue)     # not attempted: they stay pending


def _write_mbox(records: Sequence[jr.MailRecord], path: str, result: Delivered) -> None:
    """Write the mails to an mbox for review; they stay pending for a real send."""
    import mailbox      # only for --mbox
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
