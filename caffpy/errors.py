"""Exceptions that reach the user, each with the exit status it stands for.

Library code raises these; only cli.py turns them into messages and exit codes.
Exit codes follow sysexits.h.
"""

import os

EX_OK = 0
EX_USAGE = os.EX_USAGE          # 64
EX_DATAERR = os.EX_DATAERR      # 65
EX_NOINPUT = os.EX_NOINPUT      # 66
EX_UNAVAILABLE = os.EX_UNAVAILABLE  # 69
EX_SOFTWARE = os.EX_SOFTWARE    # 70
EX_CANTCREAT = os.EX_CANTCREAT  # 73
EX_TEMPFAIL = os.EX_TEMPFAIL    # 75
EX_CONFIG = os.EX_CONFIG        # 78
EX_INTERRUPTED = 130


class CaffError(Exception):
    """An error the user can act on; str(error) is the whole explanation."""

    exit_code = EX_SOFTWARE


class UsageError(CaffError):
    exit_code = EX_USAGE


class DataError(CaffError):
    """Bad input data: a party list, a key file, a key ID."""

    exit_code = EX_DATAERR


class KeyNotFoundError(CaffError):
    exit_code = EX_NOINPUT


class GpgError(CaffError):
    """gpg could not be run, or failed at something the run cannot do without."""

    exit_code = EX_UNAVAILABLE

    def __init__(self, message, stderr=b""):
        if stderr:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-8:]
            message = message + "\ngpg said:\n  " + "\n  ".join(tail)
        super().__init__(message)


class MailError(CaffError):
    """The MTA did not take a message; the message stays in the outbox."""

    exit_code = EX_TEMPFAIL


class MtaError(CaffError):
    """Mail cannot leave this machine: no sendmail, or an MTA that will not deliver."""

    exit_code = EX_UNAVAILABLE


class BusyError(CaffError):
    """Another caffpy run works in the same caffhome: try again when it is done."""

    exit_code = EX_TEMPFAIL


class JournalError(CaffError):
    exit_code = EX_CANTCREAT


class ConfigError(CaffError):
    exit_code = EX_CONFIG
