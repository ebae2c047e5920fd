"""Command line: the only module that reads sys.argv, prints the outcome and picks the exit status."""

import argparse
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

from caffpy import __version__, config as configuration, decisions, mailer, mta, progress
from caffpy.address import gpg_mailbox, read_address
from caffpy.errors import (EX_INTERRUPTED, EX_SOFTWARE, EX_UNAVAILABLE, CaffError,
                           ConfigError, DataError, UsageError)
from caffpy.gpg import Gpg, gpg_version
from caffpy.keys import parse_key_id
from caffpy.prompt import Prompter
from caffpy.run import RunOptions, retry, run, status
from caffpy.text import printable

log = logging.getLogger("caffpy")

MAIL_MODES = ("yes", "ask-yes", "ask-no", "no")


class _Formatter(logging.Formatter):
    def format(self, record):
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ",
                  logging.DEBUG: "debug %.3fs: " % (record.relativeCreated / 1000)
                  }.get(record.levelno, "")
        return "caffpy: " + prefix + record.getMessage()


class _MessageHandler(logging.StreamHandler):
    """Warnings and errors; clears the progress line first so they stay readable."""

    def __init__(self, stream, progress_line):
        super().__init__(stream)
        self.progress_line = progress_line

    def emit(self, record):
        if self.progress_line is not None:
            self.progress_line.clear()
        super().emit(record)


def _setup_logging(debug: bool) -> None:
    """Warnings and errors always; progress only on a terminal; everything with --debug."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    progress_log = logging.getLogger("caffpy.progress")
    progress_log.propagate = debug
    progress_log.setLevel(logging.INFO)
    line = None
    if sys.stderr.isatty() and not debug:
        line = progress.TerminalProgress(sys.stderr)
        progress_log.handlers[:] = [line]
    else:
        progress_log.handlers[:] = []
    handler = _MessageHandler(sys.stderr, line)
    handler.setFormatter(_Formatter())
    root.handlers[:] = [handler]


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError("%s\n%s" % (message, self.format_usage().strip()))


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy",
        description="Certify the keys you verified at a keysigning party and mail each "
                    "certified user ID, encrypted, to its own address.",
        epilog="Without key IDs and with a party list on standard input, the keys ticked "
               "in the list are used. Other commands: %s (caffpy COMMAND --help). "
               "See caffpy(1) and caffrc(5)." % ", ".join(sorted(COMMANDS)))
    _key_source_options(parser)
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
    parser.add_argument("-S", "--no-sign", action="store_true", default=None,
                        help="do not certify; only mail certifications already made")
    parser.add_argument("-u", "--local-user", metavar="KEYID[,KEYID]",
                        help="certify with these of your keys only")
    parser.add_argument("--batch", action="store_true",
                        help="never ask: certify all valid user IDs and apply the mail "
                             "setting's default")
    parser.add_argument("--mbox", metavar="FILE",
                        help="write the mails to this mbox file instead of sending them; "
                             "they stay pending for a later run")
    parser.add_argument("--resend", action="store_true",
                        help="build and send mails again even if they were sent before")
    parser.add_argument("--no-mta-check", action="store_true",
                        help="do not check before signing that the MTA can deliver mail")
    _decisions_option(parser)
    _common_options(parser)
    return parser


def _decisions_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decisions", metavar="FILE",
                        help="certify exactly the user IDs, at the levels, that FILE chooses; "
                             "if FILE does not exist, ask for each user ID and write the "
                             "answers to FILE before certifying")


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="read FILE instead of ~/.caffrc")
    parser.add_argument("--debug", action="store_true",
                        help="show every command run and tracebacks")


def build_doctor_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy doctor",
        description="Check whether mail can leave this machine through /usr/sbin/sendmail, "
                    "and say how to fix it when not. Exit status 0 only when it can.")
    parser.add_argument("--send-test", metavar="ADDRESS",
                        help="also send a short test message to ADDRESS the way caffpy sends")
    _common_options(parser)
    return parser


def build_status_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="caffpy status",
                             description="Show, per key and user ID, which mails were sent, "
                                         "are pending or failed (with the MTA's message).")
    _common_options(parser)
    return parser


def _key_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keyids", nargs="*", metavar="KEYID",
                        help="full fingerprint of a key checked at the party")
    parser.add_argument("-R", "--no-download", action="store_true", default=None,
                        help="do not fetch keys from a keyserver")
    parser.add_argument("--key-file", action="append", default=[], metavar="FILE",
                        help="import the keys to certify from FILE (repeatable)")
    parser.add_argument("--keys-from-gnupg", action="store_true", default=None,
                        help="take the keys to certify from your own keyring")
    _discovery_options(parser)


def _discovery_options(parser: argparse.ArgumentParser) -> None:
    """Checking the party list, and where else keys are looked for."""
    parser.add_argument("--party-list", metavar="FILE",
                        help="the organiser's party list file, as downloaded: check the "
                             "ticked list on standard input against it (checksums, text)")
    parser.add_argument("--keyserver", action="append", metavar="URL",
                        help="fetch keys from this keyserver, for example "
                             "hkps://keys.openpgp.org (repeatable: asked in order)")
    parser.add_argument("--wkd", action="store_true", default=None,
                        help="also fetch keys by WKD for the addresses the party list shows")
    parser.add_argument("--locate", action="append", default=[], metavar="ADDRESS",
                        help="also fetch the key of ADDRESS by WKD (repeatable)")


def build_prepare_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy prepare",
        description="Offline signing, step 1 (online): fetch and verify the keys into a "
                    "bundle directory to carry to the machine that holds your secret key.")
    parser.add_argument("-o", "--output", metavar="BUNDLE", required=True,
                        help="the bundle directory to create")
    _key_source_options(parser)
    _common_options(parser)
    return parser


def build_sign_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy sign",
        description="Offline signing, step 2 (offline, no network): certify the keys of a "
                    "bundle and put the encrypted mails into its outbox.")
    parser.add_argument("bundle", metavar="BUNDLE", help="a bundle made by caffpy prepare")
    parser.add_argument("-u", "--local-user", metavar="KEYID[,KEYID]",
                        help="certify with these of your keys only")
    parser.add_argument("-m", "--mail", choices=MAIL_MODES, metavar="MODE",
                        help="which mails to put into the outbox: yes, ask-yes, ask-no or no")
    parser.add_argument("--batch", action="store_true",
                        help="never ask: certify all valid user IDs")
    _decisions_option(parser)
    _common_options(parser)
    return parser


def build_send_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="caffpy send",
        description="Offline signing, step 3 (online): hand the mails in a bundle's signed "
                    "outbox to the MTA, each exactly once.")
    parser.add_argument("bundle", metavar="BUNDLE", help="a bundle signed by caffpy sign")
    parser.add_argument("--mbox", metavar="FILE",
                        help="write the mails to this mbox instead of sending them")
    parser.add_argument("--resend", action="store_true",
                        help="send mails again even if they were sent before")
    parser.add_argument("--no-mta-check", action="store_true",
                        help="do not check that the MTA can deliver mail")
    _common_options(parser)
    return parser


def build_retry_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="caffpy retry",
                             description="Send the mails still pending from earlier runs, "
                                         "without fetching or signing anything.")
    parser.add_argument("--mbox", metavar="FILE",
                        help="write the pending mails to this mbox instead of sending them")
    parser.add_argument("--no-mta-check", action="store_true",
                        help="do not check that the MTA can deliver mail")
    _common_options(parser)
    return parser


def _overrides(args) -> dict:
    overrides = {}
    if getattr(args, "mail", None):
        overrides["mail"] = args.mail
    if getattr(args, "no_download", None):
        overrides["no-download"] = True
    if getattr(args, "no_sign", None):
        overrides["no-sign"] = True
    if getattr(args, "keys_from_gnupg", None):
        overrides["keys-from-gnupg"] = True
    if getattr(args, "keyserver", None):
        overrides["keyserver"] = args.keyserver
    if getattr(args, "wkd", None):
        overrides["wkd"] = True
    if getattr(args, "no_mta_check", False):
        overrides["mta-check"] = False
    if getattr(args, "local_user", None):
        overrides["local-user"] = [k.strip() for k in args.local_user.split(",") if k.strip()]
    return overrides


def _requested_keys(args) -> Tuple[List[str], Dict[str, List[str]]]:
    """Key IDs from the command line, or from a party list on standard input; and the
    user IDs the list shows for each ticked key (none without a list)."""
    texts = [line for arg in args.keyids for line in arg.split("\n") if line.strip()]
    original = getattr(args, "party_list", None)
    if original and texts:
        raise UsageError("--party-list checks the ticked list on standard input; give no "
                         "key IDs with it")
    if original and sys.stdin.isatty():
        raise UsageError("--party-list needs the ticked list on standard input: "
                         "caffpy --party-list %s < ticked-list.txt" % original)
    party_uids: Dict[str, List[str]] = {}
    if not texts and not sys.stdin.isatty():
        progress.note("reading a party list on standard input")
        # The bytes as they are (any encoding), so the copy compares with the original.
        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        if original:
            _check_party_list(original, text)
        from caffpy import partylist
        party = partylist.parse(text)
        for warning in party.warnings:
            log.warning("%s", warning)
        if party.checksums and not original:
            log.warning("the checksums ticked in the party list were not compared with the "
                        "list file; give the organiser's file with --party-list FILE to have "
                        "caffpy check them")
        for fpr in party.skipped:
            log.debug("not ticked in the party list, skipped: %s", fpr)
        texts = party.fingerprints
        party_uids = {fpr: party.uids.get(fpr, []) for fpr in party.fingerprints}
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
    return requested, party_uids


def _check_party_list(path: str, text: str) -> None:
    """--party-list: the organiser's file against the ticked copy (DataError if they differ)."""
    try:
        with open(path, "rb") as handle:
            original = handle.read()
    except OSError as error:
        raise DataError("cannot read the party list %s: %s" % (path, error.strerror))
    from caffpy import partylist
    for warning in partylist.verify_against_original(original, text, path):
        log.warning("%s", warning)
    log.debug("the party list matches %s and its checksums", path)


def _locate_addresses(args) -> List[str]:
    addresses = []
    for text in getattr(args, "locate", []):
        address = gpg_mailbox(text.strip())
        if not address:
            raise UsageError("--locate %s: not a mail address" % printable(text, 80))
        addresses.append(address)
    return addresses


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


def _load_config(args, require: bool = True):
    user_file = configuration.config_files(args.config)[-1]
    if require and not os.path.exists(user_file):
        first_run(user_file, "gpg")
    return configuration.load(args.config, _overrides(args), require=require)


def cmd_sign(argv: List[str], prompter_box: list) -> int:
    args = build_parser().parse_args(argv)
    config = _load_config(args)
    config.values["key-files"] += [os.path.abspath(f) for f in args.key_file]
    gpg_version(config["gpg"])
    requested, party_uids = _requested_keys(args)
    prompter = Prompter(batch=args.batch)
    prompter_box.append(prompter)
    options = RunOptions(batch=args.batch, mbox=args.mbox, export_old=args.export_old,
                         resend=args.resend, party_uids=party_uids,
                         locate=_locate_addresses(args),
                         decisions=decisions.from_option(args.decisions, config, args.batch))
    report = run(config, requested, options, prompter)
    progress.clear()
    print(report.summary(), file=sys.stderr)
    log.debug("gpg processes started: %d", report.gpg_calls)
    return report.exit_code


def cmd_doctor(argv: List[str], prompter_box: list) -> int:
    args = build_doctor_parser().parse_args(argv)
    config = _load_config(args, require=False)
    diagnosis = mta.diagnose(config["email"])
    print(diagnosis.report())
    if config["sendmail"] != mta.SENDMAIL:
        print("note: your configuration sends through %s, not %s"
              % (config["sendmail"], mta.SENDMAIL))
    status = 0 if diagnosis.can_send else EX_UNAVAILABLE
    if args.send_test:
        if not config["email"]:
            raise ConfigError("set 'email' in %s to send a test message" % config.user_file)
        mailer.send(test_message(config, args.send_test), config["sendmail"],
                    config["email"], args.send_test)
        print("test message to %s handed to %s (exit status 0); check that it arrives"
              % (args.send_test, config["sendmail"]))
    return status


def test_message(config, address: str) -> bytes:
    from caffpy import message
    mail = message.plain_text("This is a test message from caffpy doctor: mail from this "
                              "machine reaches you.\n")
    message.add_headers(mail, config["owner"] or "caffpy", config["email"], address,
                        "caffpy test message", config["reply-to"] or None)
    return message.serialize(mail)


def cmd_status(argv: List[str], prompter_box: list) -> int:
    args = build_status_parser().parse_args(argv)
    print(status(_load_config(args, require=False)))
    return 0


def cmd_retry(argv: List[str], prompter_box: list) -> int:
    args = build_retry_parser().parse_args(argv)
    config = _load_config(args)
    report = retry(config, RunOptions(batch=True, mbox=args.mbox))
    progress.clear()
    print(report.summary(), file=sys.stderr)
    return report.exit_code


def cmd_prepare(argv: List[str], prompter_box: list) -> int:
    from caffpy import bundle
    args = build_prepare_parser().parse_args(argv)
    config = _load_config(args)
    config.values["key-files"] += [os.path.abspath(f) for f in args.key_file]
    gpg_version(config["gpg"])
    prompter = Prompter(batch=True)     # fetching asks nothing; the questions come offline
    requested, party_uids = _requested_keys(args)
    options = RunOptions(batch=True, party_uids=party_uids, locate=_locate_addresses(args))
    report = bundle.prepare(config, requested, args.output, options,
                            prompter)
    return _finish(report)


def cmd_sign_bundle(argv: List[str], prompter_box: list) -> int:
    from caffpy import bundle
    args = build_sign_parser().parse_args(argv)
    config = _load_config(args)
    gpg_version(config["gpg"])
    prompter = Prompter(batch=args.batch)
    prompter_box.append(prompter)
    options = RunOptions(batch=args.batch,
                         decisions=decisions.from_option(args.decisions, config, args.batch))
    report = bundle.sign(config, args.bundle, options, prompter)
    return _finish(report)


def cmd_send_bundle(argv: List[str], prompter_box: list) -> int:
    from caffpy import bundle
    args = build_send_parser().parse_args(argv)
    config = _load_config(args)
    report = bundle.send(config, args.bundle, RunOptions(batch=True, mbox=args.mbox,
                                                         resend=args.resend),
                         Prompter(batch=True))
    return _finish(report)


# The receive and config commands live in modules of their own, imported only when
# used: every run of caffpy would pay for loading them (start-up time is measured).

def build_receive_parser() -> argparse.ArgumentParser:
    from caffpy import receive
    return receive.build_receive_parser()


def cmd_receive(argv: List[str], prompter_box: list) -> int:
    from caffpy import receive
    return receive.cmd_receive(argv, prompter_box)


def build_config_parser() -> argparse.ArgumentParser:
    from caffpy import configcmd
    return configcmd.build_config_parser()


def cmd_config(argv: List[str], prompter_box: list) -> int:
    from caffpy import configcmd
    return configcmd.cmd_config(argv, prompter_box)


def _finish(report) -> int:
    progress.clear()
    print(report.summary(), file=sys.stderr)
    return report.exit_code


COMMANDS = {"doctor": cmd_doctor, "status": cmd_status, "retry": cmd_retry,
            "prepare": cmd_prepare, "sign": cmd_sign_bundle, "send": cmd_send_bundle,
            "receive": cmd_receive, "config": cmd_config}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    _setup_logging(debug)
    prompter_box: list = []
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:], prompter_box)
        return cmd_sign(argv, prompter_box)
    except CaffError as error:
        log.error("%s", error)
        if debug:
            import traceback
            traceback.print_exc()
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; the journal is consistent, run caffpy again to finish")
        return EX_INTERRUPTED
    except Exception:   # a bug: say so plainly, details only with --debug
        log.error("internal error; run again with --debug for the details")
        if debug:
            import traceback
            traceback.print_exc()
        return EX_SOFTWARE
    finally:
        for prompter in prompter_box:
            prompter.close()
