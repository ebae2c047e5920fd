"""Generated documentation: /etc/caffrc, caffpy(1), caffrc(5) and the bash completion.

All four are made from the argument parsers in cli.py and the configspec, so
an option or key cannot be added without appearing in them. `make docs`
(python3 -m caffpy.docgen) writes them into the source tree, where they are
committed; tests/test_docs.py fails when a committed copy is out of date.
"""

import argparse
import ast
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from caffpy import __version__, cli, config, errors

# -- the configspec ----------------------------------------------------------------


@dataclass
class SpecKey:
    name: str
    kind: str                  # the configspec check: string, integer, boolean, ...
    default: object            # None: no default (a required key)
    explanation: str
    choices: Tuple[str, ...] = ()
    minimum: Optional[int] = None
    maximum: Optional[int] = None


def _literal(node: ast.AST) -> object:
    # The spec writes an empty list as list(); everything else is a Python literal.
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "list":
        return []
    return ast.literal_eval(node)


def spec_keys() -> List[SpecKey]:
    """Every configspec key, in file order, with its check taken apart."""
    keys = []
    for name, check, explanation in config.spec_entries():
        call = ast.parse(check, mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError("caffrc.spec: cannot read the check of %s: %s" % (name, check))
        kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords}
        keys.append(SpecKey(name=name, kind=call.func.id, default=kwargs.get("default"),
                            explanation=explanation,
                            choices=tuple(_literal(a) for a in call.args),
                            minimum=kwargs.get("min"), maximum=kwargs.get("max")))
    return keys


def value_text(key: SpecKey) -> str:
    """The default as it is written in a caffrc, so that uncommenting it changes nothing."""
    value = key.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) if value else ","     # configobj's empty list is a lone comma
    text = str(value)
    if text == "" or any(c in text for c in ",#\"'") or text != text.strip():
        return '"%s"' % text
    return text


def type_text(key: SpecKey) -> str:
    if key.kind == "option":
        words = [c or "empty" for c in key.choices]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if key.kind == "integer" and key.minimum is not None:
        if key.maximum is not None:
            return "integer from %d to %d" % (key.minimum, key.maximum)
        return "integer, at least %d" % key.minimum
    return {"force_list": "list", "string": "string", "boolean": "yes or no",
            "integer": "integer"}.get(key.kind, key.kind)


def default_text(key: SpecKey) -> str:
    if key.default is None:
        return "none; required" if key.name in config.REQUIRED_KEYS else "none"
    if key.default == "" or key.default == []:
        return "empty"
    return value_text(key)


# -- /etc/caffrc ----------------------------------------------------------------------

CAFFRC_HEADER = """\
# /etc/caffrc: system-wide settings for caffpy; see caffrc(5).
#
# caffpy takes each setting from the last of these that sets it:
#   1. its built-in defaults (shown below),
#   2. this file,
#   3. the user's ~/.caffrc (or the file given with --config),
#   4. the command line.
# CAFFPY_CONFIG_FILES=/a:/b replaces the files of steps 2 and 3.
#
# Every key is listed, commented out and set to its built-in default. To change
# a default for every user of this machine, remove the '#' and edit the value.
# Syntax: key = value; lists are comma-separated (a lone comma is an empty
# list); quote values that contain a comma or a '#'.
# owner, email and keyid belong to each user: leave them to ~/.caffrc.
#
# This file is generated from caffpy's configspec (caffpy/caffrc.spec).
"""


def caffrc_text() -> str:
    parts = [CAFFRC_HEADER]
    for key in spec_keys():
        line = "# %s = %s" % (key.name, value_text(key))
        parts.append("\n# %s\n%s\n" % (key.explanation, line.rstrip()))
    return "".join(parts)


# -- roff ---------------------------------------------------------------------------------


def roff(text: str) -> str:
    """Escape plain text for a man page line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def bold(text: str) -> str:
    return "\\fB%s\\fR" % roff(text)


def italic(text: str) -> str:
    return "\\fI%s\\fR" % roff(text)


def sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def paragraphs(text: str) -> List[str]:
    """Prose (blank-line separated paragraphs) to roff lines."""
    lines = []
    for number, para in enumerate(text.strip().split("\n\n")):
        if number:
            lines.append(".PP")
        lines += [roff(line) for line in para.split("\n")]
    return lines


def example(command: str, explanation: str) -> List[str]:
    return [".PP", *paragraphs(explanation), ".PP", ".RS 4", ".EX",
            *(roff(line) for line in command.split("\n")), ".EE", ".RE"]


def title(name: str, section: int, manual: str) -> List[str]:
    # No date: the page must come out the same on every build. No hyphenation
    # and a ragged right margin, so paths and options stay whole.
    return ['.TH %s %d "" "caffpy %s" "%s"' % (name.upper(), section, __version__, manual),
            ".nh", ".ad l"]


# -- the command line ------------------------------------------------------------------


def commands() -> List[Tuple[str, argparse.ArgumentParser]]:
    """The subcommands (caffpy doctor, ...), each with its own parser."""
    return [(name, getattr(cli, "build_%s_parser" % name)()) for name in cli.COMMANDS]


def options(parser: argparse.ArgumentParser) -> List[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def option_label(action: argparse.Action) -> str:
    label = ", ".join(bold(s) for s in action.option_strings)
    if takes_value(action):
        label += " " + italic(action.metavar or action.dest.upper())
    return label


def synopsis_words(parser: argparse.ArgumentParser) -> str:
    words = []
    for action in options(parser):
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = action.option_strings[-1]
        word = bold(name) + (" " + italic(action.metavar or action.dest.upper())
                             if takes_value(action) else "")
        words.append("[" + word + "]")
    return " ".join(words)


# More than the one-line --help text, for the options that need it (by dest).
OPTION_NOTES = {
    "keyids": "Spaces and a leading 0x are allowed, and one argument may hold several "
              "fingerprints on separate lines. A long key ID (16 digits) is accepted with "
              "a warning; short key IDs and v3 fingerprints are refused, since anyone can "
              "make a key that matches them.",
    "export_old": "An old certification is one made more than export-sig-age seconds "
                  "ago (see caffrc(5)) that caffpy never mailed, for example one made "
                  "with gpg by hand.",
    "mail": "With yes every mail is sent; with no none is, and a later run offers them "
            "again; ask-yes and ask-no ask for each mail, with that answer as the default.",
    "local_user": "The keys must be among those in the keyid setting; the default is all "
                  "of them. Several are separated by commas.",
    "key_file": "Use this with -R when the organiser hands out a keyring of the "
                "participants' keys, so no keyserver is asked.",
    "batch": "Questions are answered with their default, and mail follows the mail "
             "setting (ask-yes mails, ask-no does not).",
    "mbox": "Use it to read the mails before anyone gets them; caffpy retry sends them "
            "afterwards.",
    "resend": "Without it, a mail that was handed to the MTA once is never sent again.",
    "no_mta_check": "Without it, caffpy stops before signing when /usr/sbin/sendmail "
                    "cannot deliver to other domains (see caffpy doctor); the check is "
                    "skipped anyway with -m no, --mbox, or a sendmail setting other than "
                    "/usr/sbin/sendmail.",
    "config": "/etc/caffrc is still read first.",
}


def option_lines(parser: argparse.ArgumentParser, main: bool) -> List[str]:
    """The options of parser (and for the main one, its positionals and notes)."""
    lines, noted = [], set()
    for action in parser._actions:
        if not action.option_strings:
            if not main:
                continue
            label = italic(action.metavar or action.dest) + " ..."
        else:
            label = option_label(action)
        lines += [".TP", label, roff(sentence(action.help or ""))]
        if main and action.dest in OPTION_NOTES and action.dest not in noted:
            noted.add(action.dest)
            lines.append(roff(OPTION_NOTES[action.dest]))
    return lines


# (exit status, meaning), the statuses cli.main() returns.
EXIT_STATUS = [
    (errors.EX_OK, "Everything the settings allow was done. User IDs skipped by design "
                   "(revoked, expired, without a usable address) are listed in the summary."),
    (errors.EX_USAGE, "Wrong use of the command line."),
    (errors.EX_DATAERR, "Bad input: a party list or a key ID that cannot be used."),
    (errors.EX_NOINPUT, "A requested key could not be obtained, or it is not the key that "
                        "was asked for."),
    (errors.EX_UNAVAILABLE, "gpg or the MTA cannot be used, or gpg failed. caffpy doctor "
                            "returns it when mail cannot leave this machine."),
    (errors.EX_SOFTWARE, "Internal error, a bug in caffpy; run again with --debug and "
                         "report it."),
    (errors.EX_CANTCREAT, "caffhome or its journal cannot be written."),
    (errors.EX_TEMPFAIL, "Some mails were not taken by the MTA; they stay pending for "
                         "the next run or caffpy retry. Also: another caffpy run is "
                         "working in the same caffhome."),
    (errors.EX_CONFIG, "Configuration error, or the first run, which wrote ~/.caffrc "
                       "for you to check."),
    (errors.EX_INTERRUPTED, "Interrupted. The journal is consistent; run caffpy again to "
                            "finish."),
]

CAFFPY_DESCRIPTION = """\
caffpy does the work after a keysigning party. Give it the fingerprints of \
the keys whose owners you checked, and for each key it does the following.

1. It gets the key into a keyring of its own (caffhome/gnupghome): from the \
files given with --key-file, from your keyring with --keys-from-gnupg, and from \
a keyserver unless -R is given. A key is used only when its primary key has \
exactly the fingerprint asked for.

2. It certifies every valid user ID of the key with each of your keys (the \
keyid setting, or those given with -u). Signing goes through your own \
gpg-agent, so your secret keys never leave your keyring.

3. For every certified user ID with a mail address, it makes a copy of the key \
holding only that user ID and your certification, encrypts it to the key, and \
saves the mail under caffhome/keys/ and in its journal before sending anything.

4. It hands each mail to /usr/sbin/sendmail, one recipient per call. Only \
someone who reads mail at that address and holds the secret key can read the \
certification and publish it.

Revoked and expired user IDs are not certified. A user ID without an address, \
or a photo ID, travels with the mail of a user ID of the same name, or stays \
on disk when there is none. A mail the MTA took is never sent again; one it \
refused stays pending and goes out with the next run or caffpy retry.

Unless mail is off (-m no) or goes to an mbox, caffpy first checks that the \
MTA can deliver mail to other domains, and stops before signing when it \
cannot. Debian's default exim4 configuration delivers locally only; \
/usr/share/doc/caffpy/README.Debian explains how to set up the MTA.

The first run without ~/.caffrc writes one from the secret keys in your \
keyring, shows it and stops, so you can check it before anything is signed."""

CAFFPY_FILES = [
    ("/etc/caffrc", "System-wide settings, read first. See caffrc(5)."),
    ("~/.caffrc", "Your settings, read after /etc/caffrc; written on the first run."),
    ("~/.caff/", "caffhome, caffpy's working directory (the caffhome setting)."),
    ("~/.caff/gnupghome/", "caffpy's own keyring, holding the keys to certify; its "
                           "gpg-agent socket leads to your agent."),
    ("~/.caff/keys/YYYY-MM-DD/", "Every mail (.eml) and key copy (.asc) made that day."),
    ("~/.caff/journal", "Which mails are pending, sent, failed or declined."),
    ("/usr/sbin/sendmail", "The MTA's sendmail program; caffpy runs "
                           "sendmail -oi -f EMAIL -- RECIPIENT for every mail."),
    ("/usr/share/doc/caffpy/README.Debian", "How to make mail leave this machine."),
    ("BUNDLE/", "A bundle of the offline flow, a directory. bundle.json (format "
                "caffpy-bundle, version 1) lists the fingerprints and the SHA-256 of "
                "keys.pgp, the verified keys caffpy prepare wrote. caffpy sign adds "
                "outbox/: the encrypted mails, outbox.json (format caffpy-outbox, "
                "version 1: recipient, key, SHA-256 of each mail) and outbox.json.asc, "
                "its signature by your key. A bundle of another version, a changed "
                "keys.pgp or mail, or an outbox not signed by your key is refused."),
]

CAFFPY_ENVIRONMENT = [
    ("GNUPGHOME", "Your own keyring (default ~/.gnupg): where your keys, your gpg-agent "
                  "and, with --keys-from-gnupg, the keys to certify are found. caffpy's "
                  "own keyring is always caffhome/gnupghome."),
    (config.CONFIG_FILES_ENV, "A colon-separated list of configuration files that "
                              "replaces /etc/caffrc:~/.caffrc. The last one takes the "
                              "place of ~/.caffrc: the first run writes it, and --config "
                              "replaces it."),
    ("HOME", "Where ~ points, in ~/.caffrc, ~/.caff, ~/.gnupg and in paths in the "
             "configuration."),
]

CAFFPY_EXAMPLES = [
    ("caffpy", "The first time, to write ~/.caffrc from your keys; check it, then go on."),
    ("caffpy < ksp-list.txt",
     "The party-list way. At the party, tick [x] Fingerprint OK and [x] ID OK for every "
     "participant you checked, and tick the checksum line once you compared the checksum "
     "read out. Copy your ticks into the list file (from gpgparticipants) and give it "
     "to caffpy on standard input: only the ticked keys are certified."),
    ("caffpy -R --key-file party.asc < ksp-list.txt",
     "The same, with the keys from the organiser's keyring instead of a keyserver."),
    ("caffpy -R --key-file party.asc \\\n"
     "    0123456789ABCDEF0123456789ABCDEF01234567 \\\n"
     "    89ABCDEF0123456789ABCDEF0123456789ABCDEF",
     "The key-file way: certify two keys taken from party.asc, naming their "
     "fingerprints."),
    ("caffpy --mbox review.mbox < ksp-list.txt\n"
     "mutt -f review.mbox\n"
     "caffpy retry",
     "Certify, read the mails in an mbox first, then send them."),
    ("caffpy --batch -m yes -R --key-file party.asc FINGERPRINT...",
     "No questions at all: certify every valid user ID and mail each one."),
    ("caffpy doctor --send-test you@example.org",
     "Check that mail can leave this machine, and send yourself a test message."),
    ("caffpy status", "See which mails went out and which are pending."),
    ("caffpy prepare -o /media/usb/party < ksp-list.txt\n"
     "caffpy sign /media/usb/party          # on the offline machine\n"
     "caffpy send /media/usb/party",
     "Offline signing: fetch and verify the keys online, certify them where your secret "
     "key lives (no network is used there), then send the signed outbox online. Each "
     "mail is sent once, however often send runs."),
]


def caffpy_man() -> str:
    parser = cli.build_parser()
    lines = title("caffpy", 1, "User Commands")
    lines += [".SH NAME",
              "caffpy \\- certify OpenPGP keys checked at a keysigning party and mail "
              "the certifications",
              ".SH SYNOPSIS",
              ".B caffpy",
              "[%s] %s ..." % (italic("options"), italic("KEYID")),
              ".br",
              ".B caffpy",
              "[%s] < %s" % (italic("options"), italic("party-list"))]
    for name, sub in commands():
        lines += [".br", ".B caffpy %s" % roff(name), synopsis_words(sub)]
    lines += [".SH DESCRIPTION", *paragraphs(CAFFPY_DESCRIPTION), ".SH OPTIONS"]
    lines += option_lines(parser, main=True)
    lines += [".SH COMMANDS",
              *paragraphs("A first argument naming one of these commands runs it "
                          "instead of certifying keys.")]
    for name, sub in commands():
        lines += [".SS caffpy %s" % roff(name), roff(sentence(sub.description or ""))]
        lines += option_lines(sub, main=False)
    lines.append(".SH EXIT STATUS")
    for status, meaning in EXIT_STATUS:
        lines += [".TP", bold(str(status)), roff(meaning)]
    lines.append(".SH ENVIRONMENT")
    for name, meaning in CAFFPY_ENVIRONMENT:
        lines += [".TP", bold(name), roff(meaning)]
    lines.append(".SH FILES")
    for name, meaning in CAFFPY_FILES:
        lines += [".TP", italic(name), roff(meaning)]
    lines.append(".SH EXAMPLES")
    for command, explanation in CAFFPY_EXAMPLES:
        lines += example(command, explanation)
    lines += [".SH SEE ALSO",
              "\\fBcaffrc\\fR(5), \\fBgpg\\fR(1), \\fBgpgparticipants\\fR(1), "
              "\\fBcaff\\fR(1),",
              italic("/usr/share/doc/caffpy/README.Debian")]
    return "\n".join(lines) + "\n"


# -- caffrc(5) -----------------------------------------------------------------------

CAFFRC_DESCRIPTION = """\
caffpy(1) reads its settings from configuration files, then from its command \
line. For every key, the last place that sets it wins:

1. the built-in defaults listed below;

2. /etc/caffrc, for every user of the machine. The Debian package installs it \
with every key commented out at its default, ready for an administrator to \
change;

3. ~/.caffrc, your own file; --config FILE reads FILE instead. When this file \
does not exist, caffpy writes it from the secret keys in your keyring, shows \
it and stops, so you can check it;

4. the command line: options such as -m or -R stand for the key of the same \
meaning (named in the list below).

The environment variable CAFFPY_CONFIG_FILES, a colon-separated list of files, \
replaces /etc/caffrc:~/.caffrc; the last file in it takes the place of \
~/.caffrc.

Each file is checked on its own against the list of keys below. An unknown \
key, a value of the wrong type, a caff configuration written in Perl or a \
file that other users may write to stops caffpy with exit status 78 and a \
message naming the file, the line and the key."""

CAFFRC_SYNTAX = """\
The files are read with configobj, in UTF-8. Each setting is one line:

key = value

Blanks around the key and the value do not matter. A '#' starts a comment, \
on a line of its own or after a value. Quote a value with "..." or '...' when \
it contains a comma or a '#', or to write an empty string (""). There are no \
sections and no interpolation.

A list is written as comma-separated items: keyid = FPR1, FPR2. A single item \
is a list of one, and a lone comma (key = ,) is the empty list.

A boolean is yes or no (true, false, on, off, 1 and 0 work too). An integer is \
written in decimal. A string is taken as it is. In caffhome and key-files, a \
leading ~/ stands for your home directory."""

CAFFRC_EXAMPLE = """\
# ~/.caffrc
owner = Jane Doe
email = jane@example.org
keyid = 0123456789ABCDEF0123456789ABCDEF01234567
# Keep a copy of every mail readable with my own key.
also-encrypt-to = 0123456789ABCDEF0123456789ABCDEF01234567
mail = ask-yes
cert-level = 2
cert-policy-url = https://example.org/~jane/signing-policy.txt"""


def caffrc_man() -> str:
    lines = title("caffrc", 5, "File Formats")
    lines += [".SH NAME", "caffrc \\- configuration files of caffpy",
              ".SH SYNOPSIS", italic("/etc/caffrc"), ".br", italic("~/.caffrc"),
              ".SH DESCRIPTION", *paragraphs(CAFFRC_DESCRIPTION),
              ".SH SYNTAX"]
    syntax = paragraphs(CAFFRC_SYNTAX)
    at = syntax.index(roff("key = value"))
    syntax[at:at + 1] = [".RS 4", ".EX", roff("key = value"), ".EE", ".RE"]
    lines += syntax
    lines += [".SH KEYS",
              *paragraphs("owner, email and keyid must be set, usually in ~/.caffrc. "
                          "Every other key has the default shown.")]
    for key in spec_keys():
        lines += [".TP", "%s (%s; default: %s)" % (bold(key.name), roff(type_text(key)),
                                                   roff(default_text(key))),
                  roff(sentence(key.explanation))]
    lines += [".SH EXAMPLE", ".EX", *(roff(line) for line in CAFFRC_EXAMPLE.split("\n")),
              ".EE",
              ".SH FILES",
              ".TP", italic("/etc/caffrc"), "System-wide settings.",
              ".TP", italic("~/.caffrc"), "Your settings.",
              ".SH SEE ALSO", "\\fBcaffpy\\fR(1), \\fBgpg\\fR(1)"]
    return "\n".join(lines) + "\n"


# -- bash completion ------------------------------------------------------------------

COMPLETION_TEMPLATE = """\
# bash completion for caffpy                                  -*- shell-script -*-
# Generated from caffpy's argument parsers (caffpy/docgen.py).

# Fingerprints of the primary keys in the user's keyring ($1: --list-keys or
# --list-secret-keys): the fpr line that follows each pub or sec line.
_caffpy_fingerprints()
{
    gpg --batch --no-tty --with-colons "$1" 2>/dev/null |
        awk -F: '$1 == "pub" || $1 == "sec" { primary = 1; next }
                 $1 == "fpr" && primary { print $10 }
                 { primary = 0 }'
}

_caffpy()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local command= options=%(options)s

    # A command (caffpy doctor ...) is only ever the first argument.
    if ((COMP_CWORD > 1)); then
        case ${COMP_WORDS[1]} in
%(command_cases)s
        esac
    fi

    case $prev in
%(value_cases)s
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -n $command ]]; then
        COMPREPLY=()
    elif ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "%(commands)s $(_caffpy_fingerprints --list-keys)" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_caffpy_fingerprints --list-keys)" -- "$cur"))
    fi
}
complete -F _caffpy caffpy
"""

# How to complete an option's value, by the option's dest.
VALUE_COMPLETIONS = {
    "local_user": ['# KEYID[,KEYID]: complete the part after the last comma.',
                   'local head=',
                   '[[ $cur == *,* ]] && head=${cur%,*},',
                   'COMPREPLY=($(compgen -P "$head" -W "$(_caffpy_fingerprints '
                   '--list-secret-keys)" -- "${cur##*,}"))'],
}
FILE_COMPLETION = ["compopt -o filenames 2>/dev/null",
                   'COMPREPLY=($(compgen -f -- "$cur"))']


def value_completion(action: argparse.Action) -> List[str]:
    if action.choices:
        return ['COMPREPLY=($(compgen -W "%s" -- "$cur"))' % " ".join(action.choices)]
    if action.dest in VALUE_COMPLETIONS:
        return VALUE_COMPLETIONS[action.dest]
    if action.metavar == "FILE":
        return FILE_COMPLETION
    return ["COMPREPLY=()"]      # free text, such as an address


def completion_text() -> str:
    parsers = [("", cli.build_parser())] + commands()
    command_cases, value_cases, seen = [], [], set()
    for name, parser in parsers:
        names = " ".join(s for a in options(parser) for s in a.option_strings)
        if name:
            command_cases.append("            %s) command=%s options='%s' ;;"
                                 % (name, name, names))
        else:
            main_options = names
        for action in options(parser):
            if not takes_value(action) or action.option_strings[0] in seen:
                continue
            seen.update(action.option_strings)
            body = ["            " + line for line in value_completion(action)]
            value_cases += ["        %s)" % "|".join(action.option_strings), *body,
                            "            return ;;"]
    return COMPLETION_TEMPLATE % {
        "options": "'%s'" % main_options,
        "command_cases": "\n".join(command_cases),
        "value_cases": "\n".join(value_cases),
        "commands": " ".join(name for name, _ in commands())}


# -- writing them -----------------------------------------------------------------------

OUTPUTS: Dict[str, Callable[[], str]] = {
    "conf/caffrc": caffrc_text,
    "man/caffpy.1": caffpy_man,
    "man/caffrc.5": caffrc_man,
    "completions/caffpy": completion_text,
}


def stale(root: str, outputs: Sequence[str] = tuple(OUTPUTS)) -> List[str]:
    """The generated files under root that differ from what the code says now."""
    out = []
    for path in outputs:
        try:
            with open(os.path.join(root, path), encoding="utf-8") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if current != OUTPUTS[path]():
            out.append(path)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write caffpy's generated documentation.")
    parser.add_argument("root", nargs="?", default=".", help="the source tree (default: .)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out = stale(args.root)
        for path in out:
            print("out of date: %s (run make docs)" % path, file=sys.stderr)
        return 1 if out else 0
    for path, make in OUTPUTS.items():
        target = os.path.join(args.root, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(make())
        print("wrote", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
