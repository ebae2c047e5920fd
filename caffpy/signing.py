"""Phase 2a: certify the user IDs of each verified key with the user's key(s)."""

import logging
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

from caffpy import lanes, progress
from caffpy.errors import ConfigError, GpgError
from caffpy.keys import Key
from caffpy.packets import KeyBlock, certifiers, parse_keyblocks, standing_certifications
from caffpy.prompt import Prompter
from caffpy.workspace import Workspace

log = logging.getLogger(__name__)


def cert_args(config) -> List[str]:
    """gpg options that shape each certification, from the cert-* keys."""
    args = ["--default-cert-level", str(config["cert-level"])]
    if config["cert-policy-url"]:
        args += ["--cert-policy-url", config["cert-policy-url"]]
    for notation in config["cert-notation"]:
        args += ["--cert-notation", notation]
    if config["cert-expire"]:
        args += ["--default-cert-expire", config["cert-expire"]]
    return args


def unsigned_uids(key: Key, block: KeyBlock, signer: str) -> int:
    """How many valid UIDs of key still lack a certification by signer."""
    missing = 0
    for uid in key.uids:
        if not uid.usable:
            continue
        uid_block = block.uid_by_hash(uid.namehash) if block else None
        if uid_block is None or signer[-16:] not in certifiers(uid_block, [signer[-16:]]):
            missing += 1
    return missing


def describe(key: Key) -> str:
    fpr = key.fingerprint
    spaced = " ".join(fpr[i:i + 4] for i in range(0, 40, 4))
    lines = ["", "Key 0x%s" % key.long_id, "  fingerprint: %s" % spaced]
    for uid in key.uids:
        lines.append("  [%d] %-8s %s" % (uid.serial, uid.state, uid.shown))
    return "\n".join(lines)


def sign_keys(ws: Workspace, keys: Sequence[Key], blocks: Dict[str, KeyBlock],
              signers: Sequence[Key], config, prompter: Prompter,
              second: Optional[lanes.SecondKeyring] = None,
              export_options: Optional[Sequence[str]] = None
              ) -> Tuple[Dict[str, Exception], Optional[lanes.SecondKeyring]]:
    """Certify every valid UID of each key with each signer; returns per-key failures
    and the second keyring that certified some of them, if any (lanes.certify_all).

    The questions come first, for every key; then gpg certifies, on two
    keyrings at once when there are enough keys (lanes.py); second: the one
    that imported part of the keys (only with gpg-sign-type '' or 'l');
    export_options: how the second keyring exports its keys once it is done.
    """
    sign_type = config["gpg-sign-type"]
    args = cert_args(config)
    jobs = []
    for key in keys:
        todo = [s.fingerprint for s in signers
                if unsigned_uids(key, blocks.get(key.fingerprint), s.fingerprint)]
        if not todo:
            log.debug("key 0x%s: certified by you already", key.long_id)
            continue
        if not prompter.batch:
            prompter.show(describe(key))
        if not prompter.ask("Certify the valid user IDs of this key (fingerprint checked "
                            "at the party)?", default=True):
            log.warning("key 0x%s: not certified, as you chose", key.long_id)
            continue
        jobs.append(lanes.Job(key, todo))
    if sign_type not in ("", "l"):
        failures: Dict[str, Exception] = {}
        for job in jobs:
            try:
                for signer in job.signers:
                    _sign_interactively(ws, job.key, signer, sign_type, args, prompter)
            except GpgError as error:
                failures[job.key.fingerprint] = error
                log.error("key 0x%s: %s", job.key.long_id, error)
        return failures, second
    return lanes.certify_all(ws, jobs, lambda gpg, job: gpg.certify(
        job.key.fingerprint, job.signers, local=sign_type == "l", cert_args=args), second,
        export_options)


def _sign_interactively(ws: Workspace, key: Key, signer: str, sign_type: str,
                        args: Sequence[str], prompter: Prompter) -> None:
    """nrsign and tsign have no batch form in gpg 2.2: the user answers gpg's questions."""
    if prompter.batch:
        raise ConfigError("gpg-sign-type '%s' needs gpg's interactive signing, which "
                          "--batch rules out" % sign_type)
    cmd = ws.gpg.command(["--no-batch", "--local-user", signer + "!"] + list(args)
                         + ["--edit-key", key.fingerprint, sign_type + "sign", "save"])
    cmd = [c for c in cmd if c not in ("--batch", "--no-tty", "--yes")]
    log.warning("gpg asks its own questions now: answer them")
    if subprocess.call(cmd) != 0:
        raise GpgError("interactive signing of %s failed" % key.fingerprint)


def sign_chosen(ws: Workspace, keys: Sequence[Key], signers: Sequence[Key],
                decisions) -> Tuple[Dict[str, Exception], List[str], List[str]]:
    """Certify the user IDs a decisions file chose, with its options.

    One gpg call per key and set of options, naming the user IDs; a signer
    whose certifications are all there already is left out, and a call with
    no signer left is not made. Returns the per-key failures, the keys
    certified now, and notes on earlier certifications gpg keeps instead of
    the decided ones.
    """
    failures: Dict[str, Exception] = {}
    certified: List[str] = []
    notes: List[str] = []
    # With the local certifications, which caffpy otherwise never exports.
    blocks = parse_keyblocks(ws.gpg.export([k.fingerprint for k in keys], ["export-local-sigs"]))
    for number, key in enumerate(keys, 1):
        progress.step("certifying", number, len(keys), "0x" + key.long_id)
        block = blocks.get(key.fingerprint)
        for options, uids in decisions.batches(key):
            todo = []
            for signer in signers:
                missing = False
                for uid in uids:
                    uid_block = block.uid_by_hash(uid.namehash) if block else None
                    sig = standing_certifications(uid_block, [signer.long_id]).get(
                        signer.long_id) if uid_block else None
                    # gpg turns a local certification into an exportable one when asked to.
                    if sig is None or (not sig.exportable and not options.local):
                        missing = True
                    elif sig.sig_type != 0x10 + options.level or sig.exportable == options.local:
                        notes.append("key 0x%s, user ID %d: gpg keeps the certification 0x%s "
                                     "made before (level %d, %s), not the decided one (%s)"
                                     % (key.long_id, uid.serial, signer.long_id,
                                        sig.sig_type - 0x10,
                                        "exportable" if sig.exportable else "local",
                                        options.describe()))
                if missing:
                    todo.append(signer)
            if not todo:
                continue
            try:
                ws.gpg.certify(key.fingerprint, [s.fingerprint for s in todo], local=options.local,
                               cert_args=options.gpg_args(), uids=[u.raw for u in uids])
            except GpgError as error:
                failures[key.fingerprint] = error
                log.error("key 0x%s: %s", key.long_id, error)
                break
            if key.fingerprint not in certified:
                certified.append(key.fingerprint)
    return failures, certified, notes


def lsign_in_user_keyring(ws: Workspace, keys: Sequence[Key], signers: Sequence[Key],
                          mode: str, prompter: Prompter, decisions=None) -> Dict[str, Exception]:
    """also-lsign-in-gnupghome: mark the checked keys as verified in the user's own keyring.

    The key goes into the user's keyring with its self-signatures only (the
    exportable certifications just made stay in caffpy's keyring until their
    owner publishes them), and gets a local, non-exportable certification from
    each signer there, so the user's gpg treats it as verified. With decisions,
    only the user IDs chosen there are certified.
    """
    failures: Dict[str, Exception] = {}
    if decisions is not None:
        keys = [k for k in keys if decisions.batches(k)]
    if mode == "no" or not keys:
        return failures
    chosen = [k for k in keys if mode == "auto" or prompter.ask(
        "Also add a local certification of 0x%s to your own keyring?" % k.long_id, True)]
    if not chosen:
        return failures
    data = ws.gpg.export([k.fingerprint for k in chosen], options=["export-minimal"])
    ws.user_gpg.import_keys(data, ["import-clean"], what="importing keys into your keyring")
    for key in chosen:
        try:
            chosen = [u.raw for _, uids in decisions.batches(key) for u in uids] \
                if decisions is not None else []
            ws.user_gpg.certify(key.fingerprint, [s.fingerprint for s in signers], local=True,
                                uids=chosen)
        except GpgError as error:
            failures[key.fingerprint] = error
            log.error("key 0x%s: local certification in your keyring failed: %s",
                      key.long_id, error)
    return failures
