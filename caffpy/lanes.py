"""Certify on two cores: a second keyring that signs beside caffpy's own.

A certification costs gpg's start and its checking of the key's
self-signatures, all on one core. Two gpg processes updating the same keyring
break each other's update ("update failed: Provided object is too large" was
seen), so the second worker signs in a copy of caffpy's keyring (linked to the
same gpg-agent: the same secret keys), each worker in its own keyring only.

Copying a certified key into caffpy's keyring costs as much as certifying it
(gpg's import checks every self-signature again), so it waits until the mails
are built: the keys the second keyring certified are exported for their mails
from there (export_blocks in run.py; the keys it holds are also encrypted to
from there), and copied into caffpy's keyring in the background while the MTA
takes the mails (start_merge: gpg's readers take no lock, and a keyring update
has a moment without the file, so no gpg may read caffpy's keyring meanwhile).
Whatever happens, close() copies all of them before the second keyring is
removed; a key that gpg cannot copy is reported, and the next run certifies it
again (its mail, in the journal, is not sent twice).

When the keys come from key files only, the second keyring is made before the
import and imports half of the keys itself (import_split), side by side with
caffpy's keyring: those keys it holds are imported into caffpy's keyring once,
when they are copied back, not twice.
"""

import collections
import concurrent.futures
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from caffpy import progress
from caffpy.errors import CaffError, GpgError
from caffpy.gpg import Gpg, cores as gpg_cores
from caffpy.keys import Key
from caffpy.packets import dearmor, keyblock_bytes, split_packets, v4_fingerprint
from caffpy.workspace import Workspace

log = logging.getLogger(__name__)

# Fewer keys than this to certify: the second keyring costs more than it saves.
MIN_KEYS = 5
# Local certifications (gpg-sign-type l) travel from keyring to keyring only when
# both the export and the import are told so. no-repair-keys: gpg's default repair
# checks every signature again (2.5 times the import's cost, measured); these keys
# come from gpg itself, repaired and cleaned when they were first imported.
EXPORT_BACK = ["export-local-sigs"]
IMPORT_BACK = ["import-local-sigs", "no-repair-keys"]
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
                second: Optional["SecondKeyring"] = None,
                export_options: Optional[Sequence[str]] = None
                ) -> Tuple[Dict[str, Exception], Optional["SecondKeyring"]]:
    """certify(gpg, job) for each job, on two keyrings when there are enough;
    returns the per-key failures (a failed key does not stop the others) and the
    second keyring, if one signed: its certifications are copied into caffpy's
    keyring later (start_merge, close), and the caller owns it from here.

    second: a second keyring made by import_split; the keys it holds are
    certified there, the others in caffpy's keyring. export_options: the second
    worker, done with its keys, exports them so (SecondKeyring.export) while
    caffpy's keyring may still be certifying.
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
        if first.key.fingerprint in held:
            second.sign(first, attempt)
        else:
            attempt(ws.gpg, first)
    made_here = second is None
    if made_here:
        second = SecondKeyring.make(ws) if len(rest) >= MIN_KEYS and gpg_cores() >= 2 else None
        if second is None:
            while rest:
                attempt(ws.gpg, rest.popleft())
            return failures, None
        main_jobs = lane_jobs = rest        # one queue: both keyrings hold every key
    else:
        main_jobs = collections.deque(j for j in rest if j.key.fingerprint not in held)
        lane_jobs = collections.deque(j for j in rest if j.key.fingerprint in held)
    worker = threading.Thread(target=second.work, args=(lane_jobs, attempt, export_options),
                              name="second keyring", daemon=True)
    try:
        worker.start()
        while True:
            job = _next(main_jobs)
            if job is None:
                break
            attempt(ws.gpg, job)
    except BaseException:
        main_jobs.clear()   # interrupted: the worker stops after its current key
        lane_jobs.clear()
        worker.join()
        if made_here:       # nobody else knows of it: its certifications go home now
            second.close()
        raise
    worker.join()
    return failures, second


def import_split(ws: Workspace, data: bytes, options: Sequence[str], what: str,
                 second: Optional["SecondKeyring"]) -> List[str]:
    """Import key data into caffpy's keyring, or, with a second keyring, part of it
    there (side by side); returns the fingerprints gpg reports, as import_keys."""
    blocks = split_keyblocks(data) if second is not None else []
    if len(blocks) < 2 * MIN_KEYS:
        return ws.gpg.import_keys(data, options, what=what)
    # Half each: either keyring imports and certifies its own half, nothing more.
    cut = len(blocks) // 2
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
        self.holds: Set[str] = set()        # fingerprints imported here only (import_split)
        self.certified: Set[str] = set()    # certified here by the second worker
        self.merged: Set[str] = set()       # copied into caffpy's keyring (or given up)
        self.problems: List[CaffError] = []
        self._merging: Optional[threading.Thread] = None
        self._exported: Optional[Tuple[List[str], List[str], bytes]] = None    # by work()
        self.closed = False

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

    @property
    def unmerged(self) -> Set[str]:
        """Keys whose newest version is here, not in caffpy's keyring (yet)."""
        return (self.holds | self.certified) - self.merged

    def sign(self, job: Job, attempt: Callable[[Gpg, Job], bool]) -> None:
        if attempt(self.gpg, job):
            self.certified.add(job.key.fingerprint)

    def work(self, jobs: Deque[Job], attempt: Callable[[Gpg, Job], bool],
             export_options: Optional[Sequence[str]] = None) -> None:
        """The second worker: certify keys from jobs until there are none left; then,
        with export_options, export the keys whose newest version is here."""
        while True:
            job = _next(jobs)
            if job is None:
                break
            self.sign(job, attempt)
        if export_options is not None and self.unmerged:
            keys = sorted(self.unmerged)
            try:
                self._exported = (keys, list(export_options),
                                  self.gpg.export_on_all_cores(keys, export_options))
            except CaffError as error:      # export() tries again, to report it
                log.debug("second keyring: export failed: %s", error)

    def export(self, keys: Sequence[str], options: Sequence[str]) -> bytes:
        """The keys as this keyring has them now (perhaps with others it holds):
        exported by work() if it did so for them with these options (nothing has
        changed them since), else now."""
        made, self._exported = self._exported, None
        if made is not None and set(keys) <= set(made[0]) and made[1] == list(options):
            return made[2]
        return self.gpg.export_on_all_cores(keys, options)

    def start_merge(self) -> None:
        """Begin copying the certified and held keys into caffpy's keyring, in the
        background: until close(), no other gpg may read or write caffpy's keyring."""
        if self._merging is None and self.unmerged:
            self._merging = threading.Thread(target=self._merge, name="second keyring merge",
                                             daemon=True)
            self._merging.start()

    def close(self) -> List[CaffError]:
        """Copy whatever is not in caffpy's keyring yet, remove the second keyring
        (again: harmless); returns one problem per key gpg could not copy."""
        if self._merging is not None:
            self._merging.join()
        self._merge()
        self.ws.gpg.calls += self.gpg.calls
        self.gpg.calls = 0
        shutil.rmtree(self.home, ignore_errors=True)
        self.closed = True
        problems, self.problems = self.problems, []
        return problems

    def _merge(self) -> None:
        keys = sorted(self.unmerged)
        if not keys:
            return
        self.merged.update(keys)
        try:
            data = self.gpg.export(keys, EXPORT_BACK)
            self.ws.gpg.import_keys(data, IMPORT_BACK,
                                    what="copying certifications into caffpy's keyring")
        except CaffError as error:
            for fingerprint in keys:
                self.problems.append(GpgError(
                    "key 0x%s could not be copied from the second keyring into caffpy's "
                    "keyring (%s), so what was certified there is not kept; the next run "
                    "certifies it again (a mail already made is not sent twice)"
                    % (fingerprint[-16:], error)))
                log.error("%s", self.problems[-1])
