"""The one place that runs gpg.

Every call gets gpg's machine-readable status lines on a pipe of their own
(--status-fd N), never mixed with gpg's human messages on stderr, and every
key argument comes after '--'. python-gnupg 0.4.9 reads status lines from
stderr and decodes listings as text, which crafted user IDs can exploit
(phantom or hidden keys, wrong import results; see security notes T6), so
caffpy uses it only for the version check, where no key data is involved.
"""

import concurrent.futures
import logging
import os
import selectors
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple

import gnupg

from caffpy.colons import parse_keys
from caffpy.errors import GpgError
from caffpy.keys import Key
from caffpy.text import printable

log = logging.getLogger(__name__)

STATUS_PREFIX = b"[GNUPG:] "
# --no-random-seed-file: gpg locks and rewrites random_seed at every exit, so gpg
# processes in one home run in turn; the kernel gives gpg all the entropy it needs.
BATCH_OPTS = ["--batch", "--no-tty", "--no-greeting", "--yes", "--no-random-seed-file"]
KEYRING_OPTS = ["--trust-model", "always", "--no-auto-check-trustdb"]
LIST_OPTS = ["--with-colons", "--fixed-list-mode", "--with-fingerprint"]

# Status keywords caffpy acts on.
IMPORT_OK = "IMPORT_OK"
IMPORT_RES = "IMPORT_RES"
INV_RECP = "INV_RECP"
FAILURE = "FAILURE"
ERROR = "ERROR"


@dataclass
class GpgResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    status: List[Tuple[str, List[bytes]]] = field(default_factory=list)

    def status_args(self, keyword: str) -> List[List[bytes]]:
        return [args for key, args in self.status if key == keyword]


@dataclass
class Fetched:
    """What one --recv-keys or --locate-external-keys call brought.

    A key without any user ID (keys.openpgp.org sends those for owners who
    have not confirmed an address; a WKD key lacking the address asked for
    ends up the same) is skipped by gpg 2.2 with exit status 0, no
    IMPORT_PROBLEM and no IMPORT_OK: only the second field of IMPORT_RES
    ("w/o user IDs") counts it.
    """

    fingerprints: List[str]     # IMPORT_OK: imported, or already there
    without_uid: int            # keys skipped for having no user ID
    returncode: int
    stderr: bytes

    @classmethod
    def of(cls, result: GpgResult) -> "Fetched":
        without_uid = 0
        for args in result.status_args(IMPORT_RES):
            if len(args) >= 2 and args[1].isdigit():
                without_uid += int(args[1])
        return cls([a[1].decode("ascii", "replace").upper()
                    for a in result.status_args(IMPORT_OK) if len(a) >= 2],
                   without_uid, result.returncode, result.stderr)

    def error_line(self) -> str:
        """gpg's last message, for a warning (gpg's own words; none on success)."""
        lines = [line for line in self.stderr.decode("utf-8", "replace").split("\n")
                 if line.strip()]
        return printable(lines[-1], 200) if lines and self.returncode else ""


def parse_status(data: bytes) -> List[Tuple[str, List[bytes]]]:
    """Parse --status-fd output: one '[GNUPG:] KEYWORD args' record per LF."""
    records = []
    for line in data.split(b"\n"):
        if not line.startswith(STATUS_PREFIX):
            continue
        parts = line[len(STATUS_PREFIX):].rstrip(b"\r").split(b" ")
        keyword = parts[0].decode("ascii", "replace")
        records.append((keyword, parts[1:]))
    return records


def gpg_version(binary: str = "gpg") -> str:
    """gpg's version, through python-gnupg (no key data involved); GpgError if gpg is missing."""
    try:
        return ".".join(str(part) for part in gnupg.GPG(gpgbinary=binary).version)
    except (OSError, ValueError) as error:
        raise GpgError("cannot run gpg (%s): %s; install the gnupg package or set 'gpg' "
                       "in ~/.caffrc" % (binary, error))


def cores() -> int:
    """How many gpg processes can work at once: the cores this process may use."""
    return len(os.sched_getaffinity(0))


def _exchange(proc: subprocess.Popen, input: bytes, status_fd: int,
              timeout: Optional[float]) -> Tuple[bytes, bytes, bytes]:
    """Feed input to gpg and read its stdout, stderr and status pipe, all in this
    thread (a reader thread per call costs more than the call's own work when
    two workers run gpg at once); subprocess.TimeoutExpired after timeout."""
    outputs = {proc.stdout.fileno(): [], proc.stderr.fileno(): [], status_fd: []}
    pending = memoryview(input)
    deadline = None if timeout is None else time.monotonic() + timeout
    with selectors.PollSelector() as selector:
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        if pending:
            # Non-blocking: a write into a nearly full pipe must not wait for gpg,
            # which may itself wait for this thread to read its output.
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        while selector.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for ready, _ in selector.select(wait):
                if ready.fd in outputs:
                    data = os.read(ready.fd, 65536)
                    if data:
                        outputs[ready.fd].append(data)
                    else:
                        selector.unregister(ready.fd)
                    continue
                try:
                    pending = pending[os.write(ready.fd, pending[:65536]):]
                except BlockingIOError:
                    continue
                except BrokenPipeError:     # gpg stopped reading: its exit status tells why
                    pending = pending[:0]
                if not pending:
                    selector.unregister(ready.fd)
                    proc.stdin.close()
    proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    stdout, stderr, status = (b"".join(outputs[fd]) for fd in (proc.stdout.fileno(),
                                                               proc.stderr.fileno(), status_fd))
    return stdout, stderr, status


class Gpg:
    """gpg bound to one home directory (caffpy's own, a throwaway one, or the user's)."""

    def __init__(self, homedir: Optional[str], binary: str = "gpg",
                 extra_args: Sequence[str] = ()):
        self.homedir = homedir
        self.binary = binary
        self.extra_args = list(extra_args)
        self.calls = 0      # processes started, for the benchmark
        self._calls_lock = threading.Lock()

    def command(self, args: Sequence[str]) -> List[str]:
        cmd = [self.binary]
        if self.homedir:
            cmd += ["--homedir", self.homedir]
        return cmd + BATCH_OPTS + KEYRING_OPTS + self.extra_args + list(args)

    def run(self, args: Sequence[str], input: bytes = b"", timeout: Optional[float] = None,
            check: bool = True, what: str = "gpg") -> GpgResult:
        status_read, status_write = os.pipe()
        cmd = self.command(["--status-fd", str(status_write)] + list(args))
        if log.isEnabledFor(logging.DEBUG):      # shlex.join of long key lists costs
            log.debug("running %s", shlex.join(cmd))
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(status_write,))
        except OSError as error:
            os.close(status_read)
            raise GpgError("cannot run %s: %s" % (self.binary, error))
        finally:
            os.close(status_write)
        with self._calls_lock:
            self.calls += 1
        try:
            stdout, stderr, status = _exchange(proc, input, status_read, timeout)
        except subprocess.TimeoutExpired:
            raise GpgError("%s did not finish within %d seconds and was stopped" % (what, timeout))
        finally:
            if proc.returncode is None:     # timed out, or interrupted: gpg must not linger
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()
            os.close(status_read)
        result = GpgResult(proc.returncode, stdout, stderr, parse_status(status))
        log.debug("gpg exited %d", proc.returncode)
        if check and proc.returncode != 0:
            raise GpgError("%s failed (gpg exit status %d)" % (what, proc.returncode), stderr)
        return result

    # -- key listing, import and export -------------------------------------------

    def list_keys(self, key_ids: Iterable[str] = (), secret: bool = False) -> List[Key]:
        """Keys matching key_ids (all keys if none); a missing ID is simply absent."""
        mode = "--list-secret-keys" if secret else "--list-keys"
        result = self.run(LIST_OPTS + [mode, "--"] + list(key_ids), check=False,
                          what="listing keys")
        return parse_keys(result.stdout)

    def import_keys(self, data: bytes, options: Sequence[str] = (), what: str = "import") -> List[str]:
        """Import key data; returns the fingerprints gpg reports as imported or unchanged.

        gpg exits 2 when part of the data was bad (an over-long UID, a flooded
        key) although keys were imported, so the status lines decide, not the
        exit status.
        """
        args = ["--import"]
        if options:
            args += ["--import-options", ",".join(options)]
        result = self.run(args, input=data, check=False, what=what)
        fprs = []
        for status_args in result.status_args(IMPORT_OK):
            if len(status_args) >= 2:
                fprs.append(status_args[1].decode("ascii", "replace").upper())
        if result.returncode not in (0, 2) or (result.returncode and not fprs):
            raise GpgError("%s failed (gpg exit status %d)" % (what, result.returncode),
                           result.stderr)
        return fprs

    def export(self, fingerprints: Sequence[str], options: Sequence[str] = ()) -> bytes:
        args = ["--no-armor", "--export"]
        if options:
            args = ["--export-options", ",".join(options)] + args
        return self.run(args + ["--"] + list(fingerprints), what="exporting keys").stdout

    def export_on_all_cores(self, fingerprints: Sequence[str], options: Sequence[str] = ()) -> bytes:
        """export, split over one gpg process per core: export-clean checks every
        certification, which is CPU work. Only while nothing writes the keyring."""
        workers = min(cores(), len(fingerprints) // 8) or 1
        if workers == 1:
            return self.export(fingerprints, options)
        parts = [fingerprints[i::workers] for i in range(workers)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return b"".join(pool.map(lambda part: self.export(part, options), parts))

    def recv_keys(self, key_ids: Sequence[str], keyserver: Optional[str],
                  timeout: float) -> "Fetched":
        args = ["--keyserver", keyserver] if keyserver else []
        result = self.run(args + ["--recv-keys", "--"] + list(key_ids), check=False,
                          timeout=timeout, what="fetching keys from the keyserver")
        return Fetched.of(result)

    def locate_keys(self, address: str, timeout: float) -> "Fetched":
        """Fetch the key of one mail address by WKD, whatever the keyring holds already.

        --auto-key-locate is set explicitly, so no gpg.conf setting adds other
        mechanisms (keyservers, DANE, LDAP). gpg imports only the user ID
        whose address is the one asked for.
        """
        result = self.run(["--auto-key-locate", "clear,nodefault,wkd",
                           "--locate-external-keys", "--", address], check=False,
                          timeout=timeout, what="looking up %s by WKD" % address)
        return Fetched.of(result)

    # -- certification and encryption --------------------------------------------

    def certify(self, fingerprint: str, signers: Sequence[str], local: bool = False,
                cert_args: Sequence[str] = (), uids: Sequence[bytes] = ()) -> GpgResult:
        """Certify every valid UID of a key with each signer, in one gpg call;
        with uids, only the UIDs that are exactly these bytes (UTF-8, no NUL).

        gpg skips UIDs a signer has already certified, and revoked or expired ones.
        """
        command = "--quick-lsign-key" if local else "--quick-sign-key"
        users = []
        for signer in signers:
            users += ["--local-user", signer + "!"]
        # '=NAME' selects the UID that is exactly NAME (a bare NAME selects every UID
        # containing it); --utf8-strings: gpg takes the bytes as they are, whatever
        # the locale; os.fsdecode: the argument reaches gpg as exactly these bytes.
        names = ["=" + os.fsdecode(uid) for uid in uids]
        charset = ["--utf8-strings"] if uids else []
        return self.run(users + list(cert_args) + charset + [command, fingerprint] + names,
                        what="signing key %s" % fingerprint)

    def encrypt(self, data: bytes, recipients: Sequence[str]) -> bytes:
        args = ["--armor", "--textmode", "--encrypt"]
        for recipient in recipients:
            args += ["--recipient", recipient]
        result = self.run(args, input=data, check=False, what="encrypting a mail")
        if result.returncode != 0 or not result.stdout:
            bad = [b" ".join(a).decode("ascii", "replace") for a in result.status_args(INV_RECP)]
            detail = "; unusable recipient(s): %s" % ", ".join(bad) if bad else ""
            raise GpgError("encryption failed%s" % detail, result.stderr)
        return result.stdout

    # -- bundle signatures (the offline flow) ------------------------------------

    def detach_sign(self, data: bytes, signer: str) -> bytes:
        return self.run(["--local-user", signer + "!", "--armor", "--detach-sign"],
                        input=data, what="signing the outbox").stdout

    def verify_detached(self, signature_path: str, data_path: str) -> Optional[str]:
        """The primary fingerprint of a good signature's key, or None."""
        result = self.run(["--verify", "--", signature_path, data_path], check=False,
                          what="checking the outbox signature")
        good = result.status_args("VALIDSIG")
        if result.returncode != 0 or len(good) != 1 or len(good[0]) < 10:
            return None
        return good[0][9].decode("ascii", "replace").upper()
