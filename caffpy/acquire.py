"""Phase 1: get the keys to sign into caffpy's keyring and check they are the ones asked for.

After all imports, a fresh listing decides: a requested fingerprint counts
only when it is the primary key of exactly one key. What an import reported
is never trusted for that (a keyserver may answer with another key carrying
the requested fingerprint as a bogus subkey).
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from caffpy import progress
from caffpy.errors import CaffError, DataError, GpgError, KeyNotFoundError
from caffpy.keys import Key, is_fingerprint
from caffpy.workspace import Workspace

log = logging.getLogger(__name__)

# Drop certifications by keys caffpy does not hold: a flooded key (tens of
# thousands of third-party signatures) shrinks to its self-signatures and ours.
IMPORT_OPTIONS = ["import-clean"]


@dataclass
class Acquired:
    keys: List[Key] = field(default_factory=list)           # verified, in request order
    problems: List[CaffError] = field(default_factory=list)  # one per key that failed


def import_own_keys(ws: Workspace, key_ids: Sequence[str], required: bool = True) -> List[Key]:
    """Copy the user's public keys (never secret ones) from their keyring into caffpy's."""
    data = ws.user_gpg.export(key_ids, options=["export-minimal"])
    if data:
        ws.gpg.import_keys(data, what="importing your keys from %s" % ws.user_gnupghome)
    found = _resolve(ws.gpg.list_keys(key_ids), key_ids)
    missing = [k for k in key_ids if k not in found]
    if missing and required:
        raise KeyNotFoundError("your key(s) %s are not in your keyring (%s); check 'keyid' "
                               "in ~/.caffrc" % (", ".join(missing), ws.user_gnupghome))
    for key_id in missing:
        log.warning("key %s is not in your keyring; mails will not be encrypted to it", key_id)
    return [found[k] for k in key_ids if k in found]


def _resolve(listing: List[Key], key_ids: Sequence[str]) -> Dict[str, Key]:
    found = {}
    for key_id in key_ids:
        matches = [k for k in listing if k.fingerprint.endswith(key_id)]
        if len(matches) == 1:
            found[key_id] = matches[0]
    return found


def fetch(ws: Workspace, requested: Sequence[str], key_files: Sequence[str],
          from_gnupg: bool, download: bool, keyserver: str, timeout: int) -> List[str]:
    """Import the requested keys from every configured source; returns warnings."""
    warnings = []
    if from_gnupg:
        data = ws.user_gpg.export(requested)
        if data:
            ws.gpg.import_keys(data, IMPORT_OPTIONS, what="importing keys from your keyring")
    for path in key_files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise DataError("cannot read key file %s: %s" % (path, error.strerror))
        try:
            ws.gpg.import_keys(data, IMPORT_OPTIONS, what="importing key file %s" % path)
        except GpgError as error:
            warnings.append("key file %s: %s" % (path, str(error).split("\n")[0]))
    if download and requested:
        progress.note("fetching %d key(s) from the keyserver" % len(requested))
        try:
            ws.gpg.recv_keys(list(requested), keyserver or None, timeout)
        except GpgError as error:
            warnings.append(str(error).split("\n")[0])
    return warnings


def verify(ws: Workspace, requested: Sequence[str]) -> Acquired:
    """Match every requested ID against a fresh listing of caffpy's keyring."""
    result = Acquired()
    listing = ws.gpg.list_keys(requested) if requested else []
    seen = set()
    for key_id in requested:
        if is_fingerprint(key_id):
            primaries = [k for k in listing if k.fingerprint == key_id]
        else:
            primaries = [k for k in listing if k.long_id == key_id]
        holders = [k for k in listing if any(s.endswith(key_id) for s in k.subkey_fingerprints)]
        if len(primaries) == 1:
            key = primaries[0]
            if key.fingerprint not in seen:
                seen.add(key.fingerprint)
                result.keys.append(key)
        elif len(primaries) > 1:
            result.problems.append(KeyNotFoundError(
                "%s matches %d different keys; give the full fingerprint" % (key_id, len(primaries))))
        elif holders:
            result.problems.append(KeyNotFoundError(
                "%s was not found as a key of its own, only as a subkey of %s: refused, "
                "since that is not the key checked at the party"
                % (key_id, ", ".join(k.fingerprint for k in holders))))
        else:
            result.problems.append(KeyNotFoundError(
                "key %s could not be found (in the key files, your keyring or on the "
                "keyserver)" % key_id))
    return result
