"""caffpy's working directory (caffhome): its own GNUPGHOME, saved mails, journal and lock.

caffpy never copies secret keys: its GNUPGHOME reaches the user's gpg-agent
through a symbolic link to the agent's socket, as caff does, so signing uses
the keys (and pinentry) of the user's own keyring.
"""

import datetime
import errno
import fcntl
import logging
import os
import stat
import subprocess
import threading
import time
from typing import Optional

from caffpy.errors import BusyError, GpgError, JournalError
from caffpy.gpg import Gpg

log = logging.getLogger(__name__)


def _check_private_dir(path: str) -> None:
    """Refuse a directory other users could write to (they could plant a gpg.conf or keys)."""
    info = os.stat(path)
    if info.st_uid not in (os.getuid(), 0):
        raise JournalError("%s belongs to another user (uid %d); caffpy keeps keys and "
                           "mails there, so it must be yours" % (path, info.st_uid))
    if info.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        raise JournalError("%s is writable by other users, who could plant keys or "
                           "options for gpg; fix it with: chmod go-w %s" % (path, path))


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a file so that it is either complete or absent, never half written: its
    data is on disk before it takes its name. The name itself is on disk once the
    directory is synced (sync_directory), which the caller does after a series."""
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise JournalError("cannot write %s: %s" % (path, error.strerror))


def sync_directory(path: str) -> None:
    """Put the names of the files just written in path on disk (an fsync of the
    directory; a system-wide sync would also wait for every other program's data)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise JournalError("cannot sync %s: %s" % (path, error.strerror))


class Workspace:
    """caffhome and everything in it."""

    def __init__(self, caffhome: str, gpg_binary: str = "gpg",
                 user_gnupghome: Optional[str] = None):
        self.caffhome = caffhome
        self.gnupghome = os.path.join(caffhome, "gnupghome")
        self.keys_dir = os.path.join(caffhome, "keys")
        self.journal_path = os.path.join(caffhome, "journal")
        self.gpg_binary = gpg_binary
        self.user_gnupghome = user_gnupghome or os.environ.get("GNUPGHOME") \
            or os.path.expanduser("~/.gnupg")
        # export-clean and import-clean drop certifications below gpg's min-cert-level
        # (2 by default): a level 1 certification would never be mailed, and the next
        # import of the key would delete it from caffpy's keyring.
        self.gpg = Gpg(self.gnupghome, gpg_binary, extra_args=["--min-cert-level", "1"])
        self.user_gpg = Gpg(self.user_gnupghome, gpg_binary)
        self._lock_fd: Optional[int] = None
        self._user_socket: Optional[str] = None     # found by link_agent
        self.today = datetime.date.today().isoformat()

    def create(self) -> None:
        for path in (self.caffhome, self.gnupghome, self.keys_dir):
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as error:
                raise JournalError("cannot create %s: %s" % (path, error.strerror))
            _check_private_dir(path)

    def day_dir(self) -> str:
        path = os.path.join(self.keys_dir, self.today)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as error:
            raise JournalError("cannot create %s: %s" % (path, error.strerror))
        return path

    # -- one run at a time ------------------------------------------------------

    def lock(self) -> None:
        path = os.path.join(self.caffhome, "lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            raise BusyError("another caffpy run (process %s) is working in %s; wait for it "
                            "to finish" % (holder or "?", self.caffhome))
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the user's gpg-agent ----------------------------------------------------

    def _socket_path(self, homedir: str, name: str) -> str:
        try:
            out = subprocess.run([self._gpgconf(), "--homedir", homedir, "--list-dirs", name],
                                 capture_output=True, check=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise GpgError("cannot ask gpgconf where the %s is: %s" % (name, error))
        return out.decode("utf-8", "replace").strip()

    def _gpgconf(self) -> str:
        """gpgconf beside the configured gpg, else the one on PATH."""
        beside = os.path.join(os.path.dirname(self.gpg_binary), "gpgconf")
        return beside if os.path.dirname(self.gpg_binary) and os.path.exists(beside) else "gpgconf"

    def link_agent(self, homedir: Optional[str] = None) -> None:
        """Make caffpy's GNUPGHOME (or another home of caffpy's) use the user's
        gpg-agent, and so the user's secret keys."""
        homedir = homedir or self.gnupghome
        if self._user_socket is None:
            try:
                subprocess.run(["gpg-connect-agent", "--homedir", self.user_gnupghome, "/bye"],
                               capture_output=True, check=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as error:
                raise GpgError("cannot start or reach your gpg-agent (GNUPGHOME %s): %s"
                               % (self.user_gnupghome, error))
            self._user_socket = self._socket_path(self.user_gnupghome, "agent-socket")
        user_socket = self._user_socket
        our_socket = self._socket_path(homedir, "agent-socket")
        if not os.path.exists(user_socket):
            raise GpgError("your gpg-agent socket %s does not exist" % user_socket)
        if os.path.islink(our_socket):
            if os.readlink(our_socket) == user_socket:
                return
            os.unlink(our_socket)
        elif os.path.exists(our_socket):
            # An agent of its own runs in caffpy's home (left by an older run or a
            # manual gpg call): stop it, it does not hold the user's keys.
            subprocess.run([self._gpgconf(), "--homedir", homedir, "--kill", "gpg-agent"],
                           capture_output=True, timeout=30)
            time.sleep(0.1)
            if os.path.exists(our_socket) and not os.path.islink(our_socket):
                os.unlink(our_socket)
        os.makedirs(os.path.dirname(our_socket), mode=0o700, exist_ok=True)
        os.symlink(user_socket, our_socket)
        log.debug("linked %s -> %s", our_socket, user_socket)
