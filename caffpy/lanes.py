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

Importing costs as much as certifying (gpg checks every self-signature), so
when the keys come from key files only, the second keyring is made before the
import and takes a share of the keys itself (import_split): those it certifies
and hands back are imported into caffpy's keyring once, not twice, and the two
imports run side by side. Such held keys all go back to caffpy's keyring,
certified or not, before anything else reads it (certify_all, hand_back_all).
"""

import collections
import concurrent.futures
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set

from caffpy import progress
from caffpy.errors import CaffError, GpgError
from caffpy.gpg import Gpg, cores as gpg_cores
from caffpy.keys import Key
from caffpy.packets import dearmor, keyblock_bytes, split_packets, v4_fingerprint
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
    fingerprints: List[str]
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


def _next(jobs: Deque[Job]) -> Optional[Job]:
    try:
        return jobs.popleft()
    except IndexError:
        return None


def certify_all(ws: Workspace, jobs: Sequence[Job], certify: Callable[[Gpg, Job], None],
                second: Optional["SecondKeyring"] = None) -> Dict[str, Exception]:
    """certify(gpg, job) for each job, on two keyrings when there are enough;
    returns the per-key failures (a failed key does not stop the others).

    second: a second keyring made by import_split; the keys it holds are
    certified there, the others in caffpy's keyring, and all come back.
    """
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

    held = second.holds if second is not None else set()
    rest = collections.deque(jobs)
    if rest:
        # The first one alone: it may ask for the passphrase, and two gpg processes
        # asking at once would each show a pinentry.
        first = rest.popleft()
        attempt(second.gpg if first.key.fingerprint in held else ws.gpg, first)
    if second is None:
        second = SecondKeyring.make(ws) if len(rest) >= MIN_KEYS and gpg_cores() >= 2 else None
        if second is None:
            while rest:
                attempt(ws.gpg, rest.popleft())
            return failures
        main_jobs = lane_jobs = rest        # one queue: both keyrings hold every key
    else:
        main_jobs = collections.deque(j for j in rest if j.key.fingerprint not in held)
        lane_jobs = collections.deque(j for j in rest if j.key.fingerprint in held)
    with second:
        handed_back: "queue.Queue[Optional[_HandBack]]" = queue.Queue()
        worker = threading.Thread(target=second.work, args=(lane_jobs, attempt, handed_back),
                                  name="second keyring", daemon=True)
        worker.start()
        worker_done = False
        try:
            while True:
                # Hand-backs first; waiting for them when there is nothing to certify here.
                if not worker_done and (not handed_back.empty() or not main_jobs):
                    back = handed_back.get()
                    if back is None:
                        worker_done = True
                    else:
                        second.merge(back, failures)
                    continue
                job = _next(main_jobs)
                if job is None:
                    break
                attempt(ws.gpg, job)
        finally:
            main_jobs.clear()   # interrupted: the worker stops after its current key
            lane_jobs.clear()
            worker.join()
            while not worker_done:      # what it certified still goes into caffpy's keyring
                back = handed_back.get()
                if back is None:
                    worker_done = True
                else:
                    second.merge(back, failures)
    return failures


def import_split(ws: Workspace, data: bytes, options: Sequence[str], what: str,
                 second: Optional["SecondKeyring"]) -> List[str]:
    """Import key data into caffpy's keyring, or, with a second keyring, part of it
    there (side by side); returns the fingerprints gpg reports, as import_keys."""
    blocks = split_keyblocks(data) if second is not None else []
    if len(blocks) < 2 * MIN_KEYS:
        return ws.gpg.import_keys(data, options, what=what)
    # The second keyring certifies more keys: caffpy's also imports what it hands back.
    cut = len(blocks) * 2 // 5
    ours, theirs = b"".join(blocks[:cut]), b"".join(blocks[cut:])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(second.gpg.import_keys, theirs, options, what)
        try:
            imported, problem = ws.gpg.import_keys(ours, options, what=what), None
        except GpgError as error:
            imported, problem = [], error
        held_fprs = held.result()
        second.holds.update(held_fprs)      # kept even when the other part failed
    if problem is not None:
        raise problem
    return imported + held_fprs


def split_keyblocks(data: bytes) -> List[bytes]:
    """The binary keyblocks of key data: binary, or one armored block and nothing
    else; [] for anything else (then it is imported in one piece, as gpg reads it)."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
            if text.count(b"-----BEGIN PGP") != 1 or \
                    not text.endswith(b"-----END PGP PUBLIC KEY BLOCK-----"):
                return []
            data = dearmor(text)
        elif not data or not data[0] & 0x80:
            return []
        blocks = keyblock_bytes(data)
        # A key given twice goes to one keyring, whole: gpg merges its parts there.
        primaries = [v4_fingerprint(next(split_packets(block)).body) for block in blocks]
        return blocks if len(set(primaries)) == len(primaries) else []
    except (ValueError, CaffError):
        return []


class SecondKeyring:
    """caffhome/lane: a copy of caffpy's keyring for the second worker (with, after
    import_split, keys of its own: holds), removed at the end."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.home = os.path.join(ws.caffhome, "lane")
        self.gpg = Gpg(self.home, ws.gpg.binary, ws.gpg.extra_args)
        self.holds: Set[str] = set()     # fingerprints imported here only (import_split)
        self.handed: Set[str] = set()    # held keys handed back already

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
        self.close()

    def close(self) -> None:
        """Remove the second keyring (again: harmless)."""
        self.ws.gpg.calls += self.gpg.calls
        self.gpg.calls = 0
        shutil.rmtree(self.home, ignore_errors=True)

    def hand_back_all(self, failures: Dict[str, Exception]) -> None:
        """Every held key into caffpy's keyring, then remove the second keyring: for
        the runs that do not certify through certify_all (no-sign, decisions)."""
        rest = sorted(self.holds - self.handed)
        if rest:
            self.merge(self._export(rest), failures)
        self.close()

    def work(self, jobs: Deque[Job], attempt: Callable[[Gpg, Job], bool],
             handed_back: "queue.Queue[Optional[_HandBack]]") -> None:
        """The second worker: certify keys from jobs, handing them back in small
        batches; at the end also the keys it holds and did not certify."""
        certified: List[str] = []
        try:
            while True:
                job = _next(jobs)
                if job is None:
                    break
                if attempt(self.gpg, job):
                    certified.append(job.key.fingerprint)
                if len(certified) >= HAND_BACK:
                    handed_back.put(self._export(certified))
                    certified = []
        finally:
            rest = certified + sorted(self.holds - self.handed - set(certified))
            if rest:
                handed_back.put(self._export(rest))
            handed_back.put(None)

    def _export(self, fingerprints: List[str]) -> _HandBack:
        self.handed.update(fingerprints)
        try:
            return _HandBack(fingerprints, self.gpg.export(fingerprints, ["export-local-sigs"]))
        except CaffError as error:
            return _HandBack(fingerprints, error=error)

    def merge(self, back: _HandBack, failures: Dict[str, Exception]) -> None:
        """Import a batch of the second worker's keys, with their certifications,
        into caffpy's keyring; a batch that cannot be is reported for each key."""
        error = back.error
        if error is None:
            try:
                self.ws.gpg.import_keys(back.data, ["import-local-sigs"],
                                        what="copying certifications into caffpy's keyring")
            except CaffError as problem:
                error = problem
        if error is None:
            return
        for fingerprint in back.fingerprints:
            failures[fingerprint] = GpgError(
                "key 0x%s: in a second keyring, but it could not be copied into caffpy's "
                "keyring with its certifications (%s); the next run certifies it again"
                % (fingerprint[-16:], error))
            log.error("%s", failures[fingerprint])
