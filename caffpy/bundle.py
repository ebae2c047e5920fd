"""The offline flow: prepare a bundle online, sign it offline, send its outbox online.

A bundle is a directory the user carries between machines:

    BUNDLE/bundle.json          format "caffpy-bundle", version 1: the fingerprints
                                to certify and the SHA-256 of keys.pgp
    BUNDLE/keys.pgp             the verified keys (written by caffpy prepare)
    BUNDLE/outbox/outbox.json   format "caffpy-outbox", version 1: one entry per
                                mail (recipient, key, UID hash, file, SHA-256),
                                and the SHA-256 of bundle.json it was made from
    BUNDLE/outbox/outbox.json.asc  detached signature by the user's key, made offline
    BUNDLE/outbox/*.eml         the finished, encrypted mails (written by caffpy sign)

`prepare` cannot sign anything (the secret key is offline), so bundle.json is
protected only by its hashes and by the user confirming each fingerprint when
signing. The outbox comes back signed with the user's own key: `send` refuses
an outbox whose signature or hashes do not check out.
"""

import hashlib
import json
import logging
import os
import time
from typing import List, Sequence

from caffpy import __version__
from caffpy import journal as jr
from caffpy.errors import DataError, JournalError
from caffpy.prompt import Prompter
from caffpy.run import (Report, RunOptions, Session, certify, check_mail_path, compose,
                        deliver, fetch_keys, verified_keys)
from caffpy.keys import is_fingerprint
from caffpy.workspace import atomic_write

log = logging.getLogger(__name__)

BUNDLE_FORMAT, OUTBOX_FORMAT, VERSION = "caffpy-bundle", "caffpy-outbox", 1
MANIFEST, KEYS, OUTBOX = "bundle.json", "keys.pgp", "outbox"
OUTBOX_MANIFEST = "outbox.json"
SIGNATURE = OUTBOX_MANIFEST + ".asc"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise DataError("cannot read %s: %s" % (path, error.strerror))


def _load_manifest(path: str, kind: str) -> dict:
    try:
        manifest = json.loads(_read(path))
    except ValueError:
        raise DataError("%s is not a caffpy %s manifest (not JSON)" % (path, kind))
    if not isinstance(manifest, dict) or manifest.get("format") != kind:
        raise DataError("%s is not a caffpy %s manifest" % (path, kind))
    if manifest.get("version") != VERSION:
        raise DataError("%s has format version %r; this caffpy reads version %d only"
                        % (path, manifest.get("version"), VERSION))
    return manifest


def load_bundle(bundle: str) -> dict:
    """bundle.json, checked: known version, keys.pgp unchanged, fingerprints well formed."""
    manifest = _load_manifest(os.path.join(bundle, MANIFEST), BUNDLE_FORMAT)
    fingerprints = manifest.get("fingerprints")
    if not isinstance(fingerprints, list) or not all(
            isinstance(f, str) and is_fingerprint(f) for f in fingerprints):
        raise DataError("%s: the fingerprint list is damaged" % bundle)
    if _sha256(_read(os.path.join(bundle, KEYS))) != manifest.get("keys_sha256"):
        raise DataError("%s/%s was changed after caffpy prepare wrote it: refusing it"
                        % (bundle, KEYS))
    return manifest


# -- 1. prepare (online) ----------------------------------------------------------

def prepare(config, requested: Sequence[str], bundle: str, options: RunOptions,
            prompter: Prompter) -> Report:
    report = Report(keys_requested=len(requested))
    if os.path.exists(bundle):
        raise DataError("%s exists already; give a new directory for the bundle" % bundle)
    with Session(config, options, prompter, report) as session:
        fetch_keys(session, requested)
        keys = verified_keys(session, requested) or []
        if not keys:
            return report
        fingerprints = [k.fingerprint for k in keys]
        data = session.ws.gpg.export(fingerprints, ["export-clean"])
    try:
        os.makedirs(bundle, mode=0o700)
    except OSError as error:
        raise JournalError("cannot create %s: %s" % (bundle, error.strerror))
    atomic_write(os.path.join(bundle, KEYS), data)
    manifest = {"format": BUNDLE_FORMAT, "version": VERSION, "caffpy": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "fingerprints": fingerprints, "keys_sha256": _sha256(data)}
    atomic_write(os.path.join(bundle, MANIFEST),
                 json.dumps(manifest, indent=1).encode() + b"\n")
    report.notes.append("bundle written to %s; compare these fingerprints with your party "
                        "list, then run caffpy sign %s on the offline machine:" % (bundle, bundle))
    report.notes.extend("  " + " ".join(f[i:i + 4] for i in range(0, 40, 4))
                        for f in fingerprints)
    return report


# -- 2. sign (offline) ------------------------------------------------------------

def sign(config, bundle: str, options: RunOptions, prompter: Prompter) -> Report:
    """Certify the bundle's keys and put the finished mails into its outbox; no network."""
    manifest = load_bundle(bundle)
    fingerprints = manifest["fingerprints"]
    report = Report(keys_requested=len(fingerprints))
    config.values["no-download"] = True         # offline: never a keyserver
    config.values["key-files"] = []
    config.values["keys-from-gnupg"] = False
    with Session(config, options, prompter, report) as session:
        session.ws.gpg.import_keys(_read(os.path.join(bundle, KEYS)), ["import-clean"],
                                   what="importing the bundle's keys")
        keys = verified_keys(session, fingerprints) or []
        blocks = certify(session, keys)
        queued = compose(session, keys, blocks)
        mails = _write_outbox(session, bundle, queued)
    report.notes.append("%d mail(s) in %s; take the bundle back and run caffpy send %s"
                        % (len(mails), os.path.join(bundle, OUTBOX), bundle))
    return report


def _write_outbox(session: Session, bundle: str, queued: List[jr.MailRecord]) -> List[dict]:
    outbox = os.path.join(bundle, OUTBOX)
    os.makedirs(outbox, mode=0o700, exist_ok=True)
    mails = []
    for record in queued:
        data = _read(record.file)
        name = os.path.basename(record.file)
        atomic_write(os.path.join(outbox, name), data)
        mails.append({"mail_id": record.mail_id, "key": record.key, "uid": record.uid,
                      "to": record.to, "signers": record.signers, "file": name,
                      "sha256": _sha256(data)})
        # The mail leaves through the bundle, not from this (offline) machine.
        session.journal.record(record, state=jr.BUNDLED)
    manifest = {"format": OUTBOX_FORMAT, "version": VERSION, "caffpy": __version__,
                "bundle_sha256": _sha256(_read(os.path.join(bundle, MANIFEST))),
                "mails": mails}
    data = json.dumps(manifest, indent=1).encode() + b"\n"
    atomic_write(os.path.join(outbox, OUTBOX_MANIFEST), data)
    signature = session.ws.gpg.detach_sign(data, session.signers[0].fingerprint)
    atomic_write(os.path.join(outbox, SIGNATURE), signature)
    return mails


# -- 3. send (online) -------------------------------------------------------------

def send(config, bundle: str, options: RunOptions, prompter: Prompter) -> Report:
    """Hand the outbox's mails to the MTA, each exactly once, through this machine's journal."""
    outbox = os.path.join(bundle, OUTBOX)
    manifest = _load_manifest(os.path.join(outbox, OUTBOX_MANIFEST), OUTBOX_FORMAT)
    report = Report()
    check_mail_path(config, options, prompter, asked=True)
    with Session(config, options, prompter, report) as session:
        signer = session.ws.gpg.verify_detached(os.path.join(outbox, SIGNATURE),
                                                os.path.join(outbox, OUTBOX_MANIFEST))
        if signer not in [k.fingerprint for k in session.own]:
            raise DataError("the outbox in %s is not signed by one of your keys: refusing to "
                            "send it (was it changed after caffpy sign?)" % bundle)
        queued = _take_outbox(session, outbox, manifest)
        deliver(session, queued, asked=True)
    return report


def _take_outbox(session: Session, outbox: str, manifest: dict) -> List[jr.MailRecord]:
    """Copy the outbox into this caffhome's journal; mails sent before are not taken again."""
    entries = []
    for entry in manifest.get("mails", []):    # check everything before taking anything
        name = os.path.basename(str(entry.get("file", "")))
        data = _read(os.path.join(outbox, name))
        if _sha256(data) != entry.get("sha256"):
            raise DataError("%s was changed after caffpy sign wrote it: refusing the outbox"
                            % os.path.join(outbox, name))
        entries.append((entry, name, data))
    queued = []
    for entry, name, data in entries:
        record = session.journal.mails.get(entry["mail_id"])
        if record and record.state == jr.SENT and \
                set(entry["signers"]) <= set(record.signers) and not session.options.resend:
            session.report.already_mailed += 1
            continue
        path = os.path.join(session.ws.day_dir(), name)
        atomic_write(path, data)
        record = jr.MailRecord(entry["mail_id"], key=entry["key"], uid=entry["uid"],
                               to=entry["to"], signers=list(entry["signers"]), file=path)
        session.journal.record(record, state=jr.PENDING)
        queued.append(record)
    return queued

