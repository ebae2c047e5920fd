"""Phase 1: get the keys to sign into caffpy's keyring and check they are the ones asked for.

After all imports, a fresh listing decides: a requested fingerprint counts
only when it is the primary key of exactly one key. What an import reported
is never trusted for that (a keyserver may answer with another key carrying
the requested fingerprint as a bogus subkey).

Sources, in this order: the user's keyring (--keys-from-gnupg), key files,
the keyservers (the first is asked for every key, since its copy may carry a
revocation; each further one only for keys still missing or lacking user IDs
the party list shows), then WKD for the addresses of such keys as the party
list shows them, and for addresses given with --locate.

keys.openpgp.org publishes a user ID only once its owner confirmed the
address by mail, so a key may come without some user IDs, or without any;
gpg then skips it ("contains no user ID"). Both are recognised and explained.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from caffpy import lanes, progress
from caffpy.address import gpg_mailbox
from caffpy.errors import CaffError, DataError, GpgError, KeyNotFoundError
from caffpy.gpg import Fetched
from caffpy.keys import Key
from caffpy.text import printable
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


UIDLESS = ("%s sent this key without any user ID, so gpg could not import it. "
           "keys.openpgp.org does that while the key's owner has not confirmed an address "
           "there by mail. Ask the owner for their key file (then --key-file FILE), or fetch "
           "the key from another keyserver (--keyserver URL) or by WKD (--locate ADDRESS, "
           "or --wkd with the party list)")


@dataclass
class FetchReport:
    warnings: List[str] = field(default_factory=list)
    # fingerprint -> why a key may be missing, added to its "not found" error
    hints: Dict[str, List[str]] = field(default_factory=dict)

    def hint(self, key_id: str, text: str) -> None:
        self.hints.setdefault(key_id, []).append(text)


def fetch(ws: Workspace, requested: Sequence[str], key_files: Sequence[str],
          from_gnupg: bool, download: bool, keyservers: Union[str, Sequence[str]],
          timeout: int, wkd: bool = False, locate: Sequence[str] = (),
          party_uids: Optional[Dict[str, List[str]]] = None,
          second: Optional[lanes.SecondKeyring] = None) -> FetchReport:
    """Import the requested keys from every configured source.

    party_uids: the user IDs the party list shows for each fingerprint; keys
    lacking some of them are asked from the next keyserver and from WKD.
    second: a second keyring that imports part of the key files (lanes.py).
    """
    report = FetchReport()
    party_uids = party_uids or {}
    if from_gnupg:
        progress.note("importing the keys from your keyring")
        data = ws.user_gpg.export(requested)
        if data:
            ws.gpg.import_keys(data, IMPORT_OPTIONS, what="importing keys from your keyring")
    for path in key_files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise DataError("cannot read key file %s: %s" % (path, error.strerror))
        progress.note("importing the keys in %s" % path)
        try:
            lanes.import_split(ws, data, IMPORT_OPTIONS, "importing key file %s" % path,
                               second)
        except GpgError as error:
            report.warnings.append("key file %s: %s" % (path, str(error).split("\n")[0]))
    if download and requested:
        servers = [keyservers] if isinstance(keyservers, str) else list(keyservers)
        _from_keyservers(ws, requested, servers or [""], timeout, party_uids, report)
    if wkd or locate:
        _from_wkd(ws, requested, wkd, locate, timeout, party_uids, report)
    if party_uids and requested:
        _report_missing_uids(ws, requested, party_uids, wkd, report)
    return report


def _primary(listing: List[Key], key_id: str) -> Optional[Key]:
    matches = [k for k in listing if k.fingerprint.endswith(key_id)]
    return matches[0] if len(matches) == 1 else None


def _missing_uids(key: Optional[Key], shown: Sequence[str]) -> List[str]:
    """The user IDs the party list shows that the key (if any) does not have."""
    have = {uid.text for uid in key.uids} if key else set()
    return [uid for uid in shown if uid not in have]


def _incomplete(ws: Workspace, requested: Sequence[str],
                party_uids: Dict[str, List[str]]) -> List[str]:
    """The requested keys not in caffpy's keyring, or lacking user IDs the list shows."""
    listing = ws.gpg.list_keys(requested)
    out = []
    for key_id in requested:
        key = _primary(listing, key_id)
        if key is None or _missing_uids(key, party_uids.get(key_id, [])):
            out.append(key_id)
    return out


def _from_keyservers(ws: Workspace, requested: Sequence[str], servers: List[str],
                     timeout: int, party_uids: Dict[str, List[str]],
                     report: FetchReport) -> None:
    for number, server in enumerate(servers):
        # The first is asked for every key (its copy may carry a revocation),
        # the others only for what is still missing.
        wanted = list(requested) if number == 0 else _incomplete(ws, requested, party_uids)
        if not wanted:
            return
        name = server or "the keyserver of your dirmngr.conf"
        progress.note("fetching %d key(s) from %s" % (len(wanted), name))
        try:
            got = ws.gpg.recv_keys(wanted, server or None, timeout)
        except GpgError as error:
            report.warnings.append("%s: %s" % (name, str(error).split("\n")[0]))
            continue
        if got.returncode:
            log.debug("%s: %s", name, got.error_line())
        if got.without_uid:
            for key_id in _uidless(ws, wanted, server, got, timeout):
                report.hint(key_id, UIDLESS % name)


def _uidless(ws: Workspace, wanted: Sequence[str], server: str, got: Fetched,
             timeout: int) -> List[str]:
    """Which of the keys still missing came without user IDs.

    gpg only counts them (IMPORT_RES); when the count does not tell, each
    missing key is asked for again on its own.
    """
    listing = ws.gpg.list_keys(wanted)
    missing = [k for k in wanted if _primary(listing, k) is None]
    if got.without_uid >= len(missing):
        return missing
    found = []
    for key_id in missing:
        try:
            if ws.gpg.recv_keys([key_id], server or None, timeout).without_uid:
                found.append(key_id)
        except GpgError:
            pass
    return found


def _from_wkd(ws: Workspace, requested: Sequence[str], wkd: bool, locate: Sequence[str],
              timeout: int, party_uids: Dict[str, List[str]], report: FetchReport) -> None:
    lookups: Dict[str, Optional[str]] = {address: None for address in locate}
    if wkd:
        listing = ws.gpg.list_keys(requested) if requested else []
        for key_id in requested:
            key = _primary(listing, key_id)
            missing = _missing_uids(key, party_uids.get(key_id, []))
            addresses = [gpg_mailbox(uid) for uid in missing]
            for address in filter(None, addresses):
                lookups.setdefault(address, key_id)
            if key is None and not any(addresses) and not locate:
                report.hint(key_id, "WKD needs an address: the party list shows none for it "
                                    "(give one with --locate ADDRESS)")
    for address, key_id in lookups.items():
        progress.note("looking up %s by WKD" % address)
        try:
            got = ws.gpg.locate_keys(address, timeout)
        except GpgError as error:
            report.warnings.append("WKD: %s" % str(error).split("\n")[0])
            continue
        domain = address.rpartition("@")[2]
        if got.without_uid:
            report.warnings.append(
                "the web key directory (WKD) of %s has a key for %s that does not carry this "
                "address as a user ID; gpg refused it" % (domain, address))
        elif not got.fingerprints:
            why = "WKD of %s: nothing for %s (%s)" % (domain, address,
                                                     got.error_line() or "no key")
            if key_id is None:
                report.warnings.append(why)
            else:
                report.hint(key_id, why)
        elif key_id and not any(f.endswith(key_id) for f in got.fingerprints):
            report.hint(key_id, "WKD of %s has another key for %s (%s), not this one"
                        % (domain, address, ", ".join(got.fingerprints)))


def _report_missing_uids(ws: Workspace, requested: Sequence[str],
                         party_uids: Dict[str, List[str]], wkd: bool,
                         report: FetchReport) -> None:
    """Warn about keys that came without some of the user IDs the party list shows."""
    listing = ws.gpg.list_keys(requested)
    for key_id in requested:
        key = _primary(listing, key_id)
        shown = party_uids.get(key_id, [])
        missing = _missing_uids(key, shown)
        if key is None or not missing:
            continue
        where = "from another keyserver (--keyserver URL)" + ("" if wkd else " or by WKD (--wkd)")
        report.warnings.append(
            "key %s has only %d of the %d user IDs the party list shows; without: %s. Those "
            "cannot be certified. keys.openpgp.org, for one, publishes a user ID only once "
            "its owner confirmed the address there. To certify them, ask the owner for their "
            "key file (--key-file FILE), or fetch the key %s"
            % (key_id, len(shown) - len(missing), len(shown),
               ", ".join(printable(uid, 80) for uid in missing), where))


def verify(ws: Workspace, requested: Sequence[str],
           hints: Optional[Dict[str, List[str]]] = None,
           second: Optional[lanes.SecondKeyring] = None) -> Acquired:
    """Match every requested ID against a fresh listing of caffpy's keyring (and
    of the second keyring, for the keys it holds).

    hints: what fetch() learnt about a key it could not get, for the error.
    """
    result = Acquired()
    listing = ws.gpg.list_keys(requested) if requested else []
    if second is not None and second.holds and requested:
        # The second keyring started as a copy of caffpy's: its version of a key it
        # imported is the whole key; caffpy's may be an older one, or none.
        listing = [k for k in listing if k.fingerprint not in second.holds] + \
            [k for k in second.gpg.list_keys(requested) if k.fingerprint in second.holds]
    # Keys by fingerprint and long ID, primary and subkey (a party has hundreds).
    primary_index: Dict[str, List[Key]] = {}
    subkey_index: Dict[str, List[Key]] = {}
    for key in listing:
        for index_id in (key.fingerprint, key.long_id):
            primary_index.setdefault(index_id, []).append(key)
        for sub in key.subkey_fingerprints:
            for index_id in {sub, sub[-16:]}:
                subkey_index.setdefault(index_id, []).append(key)
    seen = set()
    for key_id in requested:
        primaries = primary_index.get(key_id, [])
        holders = subkey_index.get(key_id, [])
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
            why = (hints or {}).get(key_id)
            result.problems.append(KeyNotFoundError(
                "key %s could not be found (in the key files, your keyring or on the "
                "keyserver)%s" % (key_id, ": " + "; ".join(why) if why else "")))
    return result
