"""Certify on two cores: a second keyring that signs beside caffpy's own.

A certification costs gpg's start and its checking of the key's
self-signatures, all on one core. Two gpg processes updating the same keyring
break each other's update ("update failed: Provided object is too large" was
seen), so the second worker signs in a copy of caffpy's keyring (linked to the
same gpg-agent: the same secret keys). Every few keys it exports what it
certified; the main worker, the only one that writes caffpy's keyring, imports
those between its own certifications. When certify_all returns, or is
interrupted, every certification made is in caffpy's keyring, or reported for
its key when gpg could not copy it there (the next run certifies that key again).
"""

import collections
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Sequence

from caffpy import progress
from caffpy.errors import CaffError, GpgError
from caffpy.gpg import Gpg
from caffpy.keys import Key
from caffpy.workspace import Workspace

log = logging.getLogger(__name__)

# Fewer keys than this to certify: the second keyring costs more than it saves.
MIN_KEYS = 5
# Keys the second worker certifies before handing them back: a hand-back costs
# two gpg processes (export, import), one left at the end waits for the import.
# Local certifications (gpg-sign-type l) travel only when both are told so.
HAND_BACK = 8
# What a second keyring needs of caffpy's: the keys, the trust databases, options.
COPIED = ("pubring.kbx", "pubring.gpg", "trustdb.gpg", "tofu.db", "gpg.conf")
# Free space a second keyring leaves at least, as a multiple of the keyring's size:
# on a nearly full disk it would take the room the keyring update and mails need.
ROOM = 8


@dataclass
class Job:
    key: Key
    signers: List[str]          # fingerprints of the user's keys still to certify it


@dataclass
class _HandBack:
    keys: List[Key]
    data: bytes = b""
    error: Optional[CaffError] = None


@dataclass
class _Progress:
    total: int
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self, key: Key) -> None:
        with self.lock:
            self.done += 1
            progress.step("certifying", self.done, self.total, "0x" + key.long_id)


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _next(jobs: Deque[Job]) -> Optional[Job]:
    try:
        return jobs.popleft()
    except IndexError:
        return None


def certify_all(ws: Workspace, jobs: Sequence[Job],
                certify: Callable[[Gpg, Job], None]) -> Dict[str, Exception]:
    """certify(gpg, job) for each job, on two keyrings when there are enough;
    returns the per-key failures (a failed key does not stop the others)."""
    failures: Dict[str, Exception] = {}
    shown = _Progress(len(jobs))

    def attempt(gpg: Gpg, job: Job) -> bool:
        shown.step(job.key)
        try:
            certify(gpg, job)
        except GpgError as error:
            failures[job.key.fingerprint] = error
            log.error("key 0x%s: %s", job.key.long_id, error)
            return False
        return True

    if not jobs:
        return failures
    # The first one alone: it may ask for the passphrase, and two gpg processes
    # asking at once would each show a pinentry.
    attempt(ws.gpg, jobs[0])
    rest: Deque[Job] = collections.deque(jobs[1:])
    second = SecondKeyring.make(ws) if len(rest) >= MIN_KEYS and cores() >= 2 else None
    if second is None:
        while rest:
            attempt(ws.gpg, rest.popleft())
        return failures
    with second:
        handed_back: "queue.Queue[Optional[_HandBack]]" = queue.Queue()
        worker = threading.Thread(target=second.work, args=(rest, attempt, handed_back),
                                  name="second keyring", daemon=True)
        worker.start()
        worker_done = False
        try:
            while not worker_done:
                job = _next(rest) if handed_back.empty() else None
                if job is not None:
                    attempt(ws.gpg, job)
                    continue
                back = handed_back.get()    # a hand-back, or nothing left to certify here
                if back is None:
                    worker_done = True
                else:
                    second.merge(back, failures)
        finally:
            rest.clear()        # interrupted: the worker stops after its current key
            worker.join()
            while not worker_done:      # what it certified still goes into caffpy's keyring
                back = handed_back.get()
                if back is None:
                    worker_done = True
                else:
                    second.merge(back, failures)
    return failures


class SecondKeyring:
    """caffhome/lane: a copy of caffpy's keyring for the second worker, removed at the end."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.home = os.path.join(ws.caffhome, "lane")
        self.gpg = Gpg(self.home, ws.gpg.binary, ws.gpg.extra_args)

    @classmethod
    def make(cls, ws: Workspace) -> Optional["SecondKeyring"]:
        """A new second keyring, or None when there is no room for it (then one
        keyring does all the work, as it can)."""
        second = cls(ws)
        shutil.rmtree(second.home, ignore_errors=True)     # left by a run that was killed
        sources = [os.path.join(ws.gnupghome, name) for name in COPIED]
        sources = [path for path in sources if os.path.exists(path)]
        try:
            size = sum(os.path.getsize(path) for path in sources)
            disk = os.statvfs(ws.caffhome)
            if disk.f_bavail * disk.f_frsize < ROOM * size + (1 << 20):
                log.debug("not enough free space for a second keyring in %s", ws.caffhome)
                return None
            os.mkdir(second.home, 0o700)
            for path in sources:
                shutil.copyfile(path, os.path.join(second.home, os.path.basename(path)))
            ws.link_agent(second.home)
        except (OSError, CaffError) as error:
            log.debug("no second keyring: %s", error)
            shutil.rmtree(second.home, ignore_errors=True)
            return None
        return second

    def __enter__(self) -> "SecondKeyring":
        return self

    def __exit__(self, *exc) -> None:
        self.ws.gpg.calls += self.gpg.calls
        shutil.rmtree(self.home, ignore_errors=True)

    def work(self, jobs: Deque[Job], attempt: Callable[[Gpg, Job], bool],
             handed_back: "queue.Queue[Optional[_HandBack]]") -> None:
        """The second worker: certify keys from jobs, handing them back in small batches."""
        certified: List[Key] = []
        try:
            while True:
                job = _next(jobs)
                if job is None:
                    break
                if attempt(self.gpg, job):
                    certified.append(job.key)
                if len(certified) >= HAND_BACK:
                    handed_back.put(self._export(certified))
                    certified = []
        finally:
            if certified:
                handed_back.put(self._export(certified))
            handed_back.put(None)

    def _export(self, keys: List[Key]) -> _HandBack:
        try:
            return _HandBack(keys, self.gpg.export([k.fingerprint for k in keys],
                                                   ["export-local-sigs"]))
        except CaffError as error:
            return _HandBack(keys, error=error)

    def merge(self, back: _HandBack, failures: Dict[str, Exception]) -> None:
        """Import a batch of the second worker's certifications into caffpy's keyring."""
        error = back.error
        if error is None:
            try:
                self.ws.gpg.import_keys(back.data, ["import-local-sigs"],
                                        what="copying certifications into caffpy's keyring")
            except CaffError as problem:
                error = problem
        if error is None:
            return
        for key in back.keys:
            failures[key.fingerprint] = GpgError(
                "key 0x%s: certified in a second keyring, but the certifications could not "
                "be copied into caffpy's keyring (%s); the next run certifies it again"
                % (key.long_id, error))
            log.error("%s", failures[key.fingerprint])
