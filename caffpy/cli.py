"""Command line: the only module that reads sys.argv, prints the outcome and picks the exit status."""

import argparse
import logging
import os
import sys
import traceback
from typing import List, Optional

from caffpy import __version__, config as configuration, partylist
from caffpy.address import read_address
from caffpy.errors import (EX_CONFIG, EX_INTERRUPTED, EX_SOFTWARE, CaffError, ConfigError,
                           DataError, UsageError)
from caffpy.gpg import Gpg, gpg_version
from caffpy.keys import parse_key_id
from caffpy.prompt import Prompter
from caffpy.run import RunOptions, run

log = logging.getLogger("caffpy")

MAIL_MODES = ("yes", "ask-yes", "ask-no", "no")


class _Formatter(logging.Formatter):
    def format(self, record):
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ",
                  logging.DEBUG: "debug: "}.get(record.levelno, "")
        return "caffpy: " + prefix + record.getMessage()


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError("%s\n%s" % (message, self.format_usage().strip()))


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy",
        description="Certify the keys you verified at a keysigning party and mail each "
                    "certified user ID, encrypted, to its own address.",
        epilog="Without key IDs and with a party list on standard input, the keys ticked "
               "in the list are used. See caffpy(1) and caffrc(5).")
    parser.add_argument("keyids", nargs="*", metavar="KEYID",
                        help="full fingerprint of a key checked at the party")
    parser.add_argument("-V", "--version", action="version", version="caffpy " + __version__)
    parser.add_argument("-e", "--export-old", dest="export_old", action="store_const",
                        const=True, help="mail old certifications that were never mailed "
                                         "without asking")
    parser.add_argument("-E", "--no-export-old", dest="export_old", action="store_const",
                        const=False, help="never mail old certifications that were never mailed")
    parser.add_argument("-m", "--mail", choices=MAIL_MODES, metavar="MODE",
                        help="mail the certifications: yes, ask-yes, ask-no or no")
    parser.add_argument("-M", "--no-mail", dest="mail", action="store_const", const="no",
                        help="do not mail (same as -m no)")
    parser.add_argument("-R", "--no-download", action="store_true", default=None,
                        help="do not fetch keys from a keyserver")
    parser.add_argument("-S", "--no-sign", action="store_true", default=None,
                        help="do not certify; only mail certifications already made")
    parser.add_argument("-u", "--local-user", metavar="KEYID[,KEYID]",
                        help="certify with these of your keys only")
    parser.add_argument("--key-file", action="append", default=[], metavar="FILE",
                        help="import the keys to certify from FILE (repeatable)")
    parser.add_argument("--keys-from-gnupg", action="store_true", default=None,
                        help="take the keys to certify from your own keyring")
    parser.add_argument("--batch", action="store_true",
                        help="never ask: certify all valid user IDs and apply the mail "
                             "setting's default")
    parser.add_argument("--mbox", metavar="FILE",
                        help="write the mails to this mbox file instead of sending them; "
                             "they stay pending for a later run")
    parser.add_argument("--resend", action="store_true",
                        help="build and send mails again even if they were sent before")
    parser.add_argument("--config", metavar="FILE",
                        help="read FILE instead of ~/.caffrc")
    parser.add_argument("--debug", action="store_true",
                        help="show every command run and tracebacks")
    return parser


def _overrides(args) -> dict:
    overrides = {}
    if args.mail:
        overrides["mail"] = args.mail
    if args.no_download:
        overrides["no-download"] = True
    if args.no_sign:
        overrides["no-sign"] = True
    if args.keys_from_gnupg:
        overrides["keys-from-gnupg"] = True
    if args.local_user:
        overrides["local-user"] = [k.strip() for k in args.local_user.split(",") if k.strip()]
    return overrides


def _requested_keys(args) -> List[str]:
    """Key IDs from the command line, or from a party list on standard input."""
    texts = [line for arg in args.keyids for line in arg.split("\n") if line.strip()]
    if not texts and not sys.stdin.isatty():
        log.info("reading a party list on standard input")
        party = partylist.parse(sys.stdin.read())
        for warning in party.warnings:
            log.warning("%s", warning)
        for fpr in party.skipped:
            log.info("not ticked in the party list, skipped: %s", fpr)
        texts = party.fingerprints
        if not texts:
            raise DataError("the party list has no key ticked as checked "
                            "([x] Fingerprint OK and [x] ID OK)")
    if not texts:
        raise UsageError("give the fingerprints of the keys to certify, or a party list on "
                         "standard input (see caffpy --help)")
    requested = []
    for text in texts:
        key_id, warning = parse_key_id(text)
        if warning:
            log.warning("%s", warning)
        if key_id not in requested:
            requested.append(key_id)
    return requested


def first_run(user_file: str, gpg_binary: str) -> None:
    """No ~/.caffrc yet: write one from the user's secret keys and stop."""
    owner = configuration.owner_name()
    keys = [k for k in Gpg(os.environ.get("GNUPGHOME"), gpg_binary).list_keys(secret=True)
            if k.usable]
    email = None
    for key in keys:
        for uid in key.uids:
            if uid.usable and not uid.is_attribute:
                email = email or read_address(uid.text).address
    text = configuration.first_run_text(owner, email, [k.fingerprint for k in keys])
    fd = os.open(user_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    sys.stdout.write(text)
    raise ConfigError("%s did not exist; caffpy wrote the configuration above to it from "
                      "your gpg keys. Check it and run caffpy again." % user_file)


def main(argv: Optional[List[str]] = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    prompter = None
    try:
        args = build_parser().parse_args(argv)
        user_file = configuration.config_files(args.config)[-1]
        if not os.path.exists(user_file):
            first_run(user_file, "gpg")
        config = configuration.load(args.config, _overrides(args))
        config.values["key-files"] += [os.path.abspath(f) for f in args.key_file]
        gpg_version(config["gpg"])
        requested = _requested_keys(args)
        prompter = Prompter(batch=args.batch)
        options = RunOptions(batch=args.batch, mbox=args.mbox, export_old=args.export_old,
                             resend=args.resend)
        report = run(config, requested, options, prompter)
        print(report.summary(), file=sys.stderr)
        log.debug("gpg processes started: %d", report.gpg_calls)
        return report.exit_code
    except CaffError as error:
        log.error("%s", error)
        if debug:
            traceback.print_exc()
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; the journal is consistent, run caffpy again to finish")
        return EX_INTERRUPTED
    except Exception:   # a bug: say so plainly, details only with --debug
        log.error("internal error; run again with --debug for the details")
        if debug:
            traceback.print_exc()
        return EX_SOFTWARE
    finally:
        if prompter is not None:
            prompter.close()
