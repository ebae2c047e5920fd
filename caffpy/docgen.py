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
import textwrap
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
    "decisions": "See DECISIONS FILES below.",
    "party_list": "See PARTY LISTS below.",
    "keyserver": "It replaces the keyserver setting. See FINDING KEYS below.",
    "wkd": "The wkd setting does the same. See FINDING KEYS below.",
    "locate": "This works without --wkd too. See FINDING KEYS below.",
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
    (errors.EX_DATAERR, "Bad input: a party list or a key ID that cannot be used. For "
                        "caffpy receive: a mail that cannot be read or decrypted, or a "
                        "certification that cannot be checked."),
    (errors.EX_NOINPUT, "A requested key could not be obtained, or it is not the key that "
                        "was asked for. For caffpy receive: a mailbox that cannot be read, "
                        "or no key of yours in your keyring."),
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
files given with --key-file, from your keyring with --keys-from-gnupg, from \
keyservers unless -R is given, and by WKD with --wkd or --locate (see FINDING \
KEYS). A key is used only when its primary key has exactly the fingerprint \
asked for.

2. It certifies every valid user ID of the key with each of your keys (the \
keyid setting, or those given with -u). Signing goes through your own \
gpg-agent, so your secret keys never leave your keyring. Without --batch it \
shows each key and asks first, for all keys; then it signs, with two gpg \
processes at once when there are enough keys and cores.

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
keyring, shows it and stops, so you can check it before anything is signed.

caffpy receive is the other side of a party: it reads the mails others sent \
you (an mbox, a Maildir, message files or standard input), decrypts them with \
your own gpg, and imports only new certifications of the user IDs of your own \
keys (those with a secret key in your keyring, or the keyid setting), each \
one first checked by gpg against the signer's key in your keyring. New user \
IDs, subkeys, revocations, other people's keys and whatever cannot be checked \
are listed and left out; running it again imports nothing twice. It then says \
how to publish: keyserver.ubuntu.com still carries certifications made by \
others, keys.openpgp.org only those you approve there (sq key approvals), \
and a web key directory serves whatever key file you put there. --publish sends your keys with gpg --send-keys."""

CAFFPY_FILES = [
    ("/etc/caffrc", "System-wide settings, read first. See caffrc(5)."),
    ("~/.caffrc", "Your settings, read after /etc/caffrc; written on the first run."),
    ("~/.caff/", "caffhome, caffpy's working directory (the caffhome setting)."),
    ("~/.caff/gnupghome/", "caffpy's own keyring, holding the keys to certify; its "
                           "gpg-agent socket leads to your agent."),
    ("~/.caff/lane/", "While caffpy certifies six keys or more on two cores: a copy "
                      "of its keyring where a second gpg signs at the same time (and, when "
                      "one key file is the only source of keys, imports part of it); "
                      "its keys and certifications are copied into ~/.caff/gnupghome/ "
                      "while the last mails are built and handed to the MTA, and it is removed "
                      "at the end."),
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
    ("caffpy --party-list ksp-list.txt < ksp-list-ticked.txt",
     "The party-list way, checked: the checksums you wrote into your ticked copy must be "
     "those of ksp-list.txt as the organiser published it, and your copy may differ from "
     "it only in its ticks."),
    ("caffpy --keyserver hkps://keys.openpgp.org \\\n"
     "    --keyserver hkps://keyserver.ubuntu.com --wkd < ksp-list.txt",
     "Ask keys.openpgp.org first, keyserver.ubuntu.com for the keys it lacks or has "
     "without some user IDs, then the web key directories of their domains."),
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
    ("caffpy receive ~/Mail/keysigning.mbox\n"
     "caffpy receive --publish",
     "Import the certifications others mailed you, then send your key to "
     "keyserver.ubuntu.com."),
    ("caffpy config --show -m no",
     "See every setting a run with -m no would use, and where each one was set."),
    ("caffpy config --migrate --output ~/.caffrc --force",
     "Rewrite the ~/.caffrc you wrote for caff (Perl) in caffpy's format; the caff file "
     "is kept as ~/.caffrc.caff-perl. Without --output the new file is printed, to "
     "check first."),
    ("caffpy prepare -o /media/usb/party < ksp-list.txt\n"
     "caffpy sign /media/usb/party          # on the offline machine\n"
     "caffpy send /media/usb/party",
     "Offline signing: fetch and verify the keys online, certify them where your secret "
     "key lives (no network is used there), then send the signed outbox online. Each "
     "mail is sent once, however often send runs."),
    ("caffpy -S --decisions ksp.json -R --key-file party.asc < ksp-list.txt\n"
     "caffpy --batch -m yes --decisions ksp.json -R --key-file party.asc < ksp-list.txt",
     "Choose user ID by user ID what to certify, and at which level, without certifying "
     "yet; review or edit ksp.json; then certify and mail exactly what it says."),
]

CAFFPY_PARTY_LISTS = """\
A party list is the file an organiser makes with gpgparticipants(1) and \
publishes before the party: one block per key with the boxes "[ ] Fingerprint \
OK" and "[ ] ID OK", and blank fields for checksums of the file itself \
("SHA256 Checksum: ____ ____ ..."). At the party the checksums are read out, \
and everyone compares them with their own copy before checking each \
participant's fingerprint and identity.

Given a list on standard input, caffpy certifies the keys whose block has \
both boxes ticked ([x] or [X]) and is not commented out with '#'. Every \
checksum field must be ticked too, as caff demands. caff never checks the \
checksums themselves; caffpy does when you also give the organiser's file, \
exactly as downloaded, with --party-list FILE:

1. Each checksum field of the list on standard input must hold the digits \
read out at the party (copy them from your paper), and they must be the \
digest of every byte of FILE with that algorithm, as gpg --print-md computes \
it (MD5, SHA1, RIPEMD160, SHA224, SHA256, SHA384 or SHA512). How the digits \
are spaced or wrapped does not matter.

2. The list on standard input may differ from FILE only in its tick boxes, \
its checksum fields, what gpgsigs(1) adds (a tag such as "(S)" in front of \
each uid line, "[N] incoming signatures" lines, a legend after the end), \
trailing blanks and line ends. Anything else, such as a changed fingerprint \
or an added key block, is refused.

A mismatch stops caffpy before any key is fetched or signed, with exit \
status 65 and a message naming the algorithm or the line. The digest caffpy \
computed is never shown, so that it cannot be copied in by mistake. Without \
--party-list, caffpy warns that the ticked checksums were not compared. \
Lists in other forms (a Markdown or HTML table) are not read; check their \
checksum by hand and give the fingerprints on the command line."""

CAFFPY_FINDING_KEYS = """\
caffpy looks for the keys in this order: your keyring (--keys-from-gnupg), \
the key files (--key-file), the keyservers, then WKD. Whatever the source, a \
key is used only when its primary key has the fingerprint asked for.

The keyservers are those of the keyserver setting or of --keyserver, which \
may both name several; with neither, the one of your dirmngr.conf is used. \
The first is asked for every key, since its copy may carry a revocation; \
each further one only for the keys still missing, or lacking user IDs the \
party list shows. -R turns keyservers off.

keys.openpgp.org publishes a user ID only once its owner has confirmed the \
address through a mail from the server, and it never publishes \
certifications by others. A key whose owner confirmed nothing comes without \
any user ID, and gpg refuses it ("contains no user ID"): the error for that \
key says so. A key whose owner confirmed some addresses comes with those \
only, and caffpy warns, naming the user IDs the party list shows but the key \
lacks; they cannot be certified. Either way, ask the owner for their key file \
(--key-file), or add another keyserver or WKD. Certifications by others are \
not needed: caffpy only adds its own.

WKD (Web Key Directory) fetches a key from the domain of one of its \
addresses (https://openpgpkey.DOMAIN/.well-known/openpgpkey/... or \
https://DOMAIN/.well-known/openpgpkey/...), as gpg --locate-external-keys \
with --auto-key-locate clear,nodefault,wkd does. WKD needs an address, and \
caffpy starts from fingerprints. So with --wkd (or the wkd setting), for each \
key still missing or lacking user IDs after the keyservers, it looks up the \
addresses the party list shows for that key and the key lacks; --locate \
ADDRESS looks an address up in any case, for example for a fingerprint given \
on the command line. gpg keeps only the user ID of the address looked up, so \
there is one lookup per address. The domain, not the key owner, decides what \
its directory serves: the fingerprint from the party list still decides \
which key is certified. Each lookup tells the domain which address you asked \
for; WKD is off by default, and -R does not turn it off."""

CAFFPY_DECISIONS = """\
With --decisions FILE you choose, for each user ID, whether to certify it and \
how, and FILE keeps the choices, to review and for later runs. When FILE does \
not exist, caffpy shows each key and asks whether to certify it, then for \
each valid user ID the level, 0 to 3 (Enter takes cert-level), with l added \
for a local certification (2l), or n not to certify it. It writes FILE before \
it certifies anything; with -S it writes FILE and certifies nothing, so that \
you can review or edit FILE first.

When FILE exists, caffpy asks nothing and certifies exactly the user IDs FILE \
chooses, with the options FILE gives. A key or user ID that FILE does not \
name is not certified, and the summary lists it. Only the chosen user IDs \
are mailed, and a local certification never is. caffpy sign --decisions FILE \
does the same on the offline machine. With --batch, FILE must exist. A FILE \
that is damaged, of another version, or that names a user ID the key does not \
have (the key has changed) stops caffpy with exit status 65 before anything \
is signed. FILE does not name your own keys: -u and local-user choose them as \
always.

FILE is JSON in UTF-8 (format caffpy-decisions, version 1). Under "keys", \
each fingerprint holds "uids", where each user ID is named by the hash gpg \
shows for it (field 8 of its uid line in gpg --with-colons --list-keys):"""

CAFFPY_DECISIONS_EXAMPLE = """\
{
  "format": "caffpy-decisions",
  "version": 1,
  "keys": {
    "0123456789ABCDEF0123456789ABCDEF01234567": {
      "uids": {
        "6B73352E56FD424DE970BCA4516DDB1A5E1F829A": {
          "uid": "Alice <alice@example.org>",
          "certify": true, "level": 2, "local": false, "expire": "",
          "policy-url": "", "notation": ["party@example.org=KSP-2025"]
        },
        "AAFAE116B7F4DBDFD7B4D46C63D20E22466343A3": {
          "uid": "Alice <alice@work.example.com>",
          "certify": false
        }
      }
    }
  }
}"""

CAFFPY_DECISIONS_FIELDS = """\
"uid" is the user ID's text, control characters escaped, for the reader; it \
must match the key. When "certify" is true, the certification is given by \
"level" (0 to 3), "local" (true for a non-exportable one), "expire" (as gpg's \
--default-cert-expire: 0, 2y, 2030-01-01), "policy-url" and "notation" (a \
list of name@domain=value), "" or [] for none. The questions take expire, \
policy-url and notation from the cert-expire, cert-policy-url and \
cert-notation settings; edit FILE to give a user ID others. The user IDs of a \
key with equal options are certified in one gpg call. If one of your keys \
certified a user ID before, gpg keeps that certification, even at another \
level, and the summary says so.

gpg can be told to certify one user ID only by its text, so a photo ID, or a \
user ID whose text is not UTF-8 or holds control characters, cannot be \
certified with a decisions file: caffpy does not ask about it and lists it in \
the summary. gpg-sign-type nr and t cannot be used with --decisions."""


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
    lines += [".SH DECISIONS FILES", *paragraphs(CAFFPY_DECISIONS), ".PP", ".EX",
              *(roff(line) for line in CAFFPY_DECISIONS_EXAMPLE.split("\n")), ".EE",
              ".nh", ".ad l",     # .EE turns hyphenation back on
              ".PP", *paragraphs(CAFFPY_DECISIONS_FIELDS)]
    lines += [".SH PARTY LISTS", *paragraphs(CAFFPY_PARTY_LISTS),
              ".SH FINDING KEYS", *paragraphs(CAFFPY_FINDING_KEYS)]
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
key, a value of the wrong type or a file that other users may write to stops \
caffpy with exit status 78 and a message naming the file, the line and the \
key. A ~/.caffrc written for caff, in Perl, is read too (see CAFF \
CONFIGURATION FILES below).

caffpy config --show prints the value of every key and where it was set: \
default, the file that set it, or command line."""

CAFFRC_SYNTAX = """\
The files are read with configobj, in UTF-8. Each setting is one line:

key = value

Blanks around the key and the value do not matter. A '#' starts a comment, \
on a line of its own or after a value. Quote a value with "..." or '...' when \
it contains a comma or a '#', or to write an empty string (""). There are no \
sections and no interpolation.

A list is written as comma-separated items: keyid = FPR1, FPR2. A single item \
is a list of one, and a lone comma (key = ,) is the empty list.

A value of several lines, such as a mail-template, is written between triple \
quotes, '''...''' or \"\"\"...\"\"\", which may span lines; everything between \
them is the value, line ends included.

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


CAFFRC_TEMPLATE = """\
mail-template is the text of every mail, in UTF-8; any language and script \
may be used. These names, written with a $ before them, are replaced:

$owner: your name (the owner setting);

$key: the long key ID (16 hexadecimal digits) of the certified key;

$fingerprint: its full fingerprint;

$uids: the certified user IDs, one per line, each after a tab (without a \
line end after the last);

$plural: s when the mail holds more than one user ID, otherwise nothing.

Write ${key} when letters or digits follow the name, and $$ for a $ itself. \
Any other $word is left as it is.

The template language is safe: its only operation is putting these values in \
place. No code runs, no file is read, and text from the key appears only in \
$uids, inside the encrypted mail. The text is sent as UTF-8 in \
quoted-printable encoding, so the mail is plain ASCII on the wire and every MTA \
passes it unchanged; the recipient's mail program shows the original text.

An empty mail-template means caffpy's built-in text."""

CAFFRC_TEMPLATE_EXAMPLE = """\
mail-template = '''Hello,

here is my certification of the user ID$plural
$uids
of your key $fingerprint, from our meeting.

Regards,
$owner
'''"""

CAFFRC_PERL = """\
caff, which caffpy replaces, reads a ~/.caffrc written in Perl, with lines \
such as $CONFIG{'owner'} = 'Jane Doe';. caffpy reads such a file without \
running any Perl, and takes the settings written in the forms people use: \
strings in '...', "...", q{...} or heredocs (<<'EOM', <<"EOM", <<EOM), \
numbers and arithmetic such as 24*60*60, lists such as [ qw{A B} ] or \
[ 'a', 'b' ], concatenation with ., $ENV{'HOME'} and the values of \
earlier $CONFIG{...} lines. Comments, use strict; and 1; are passed over. Any \
other statement is Perl code that caffpy does not run: it is not taken.

The caff settings of the same name as a key below are taken as that key. A \
single value where caffpy wants a list is a list of one, a string for \
local-user is split at commas, and a setting's Perl truth (0, '' or '0' is \
false) is its boolean. A short 8-digit key ID in local-user is not taken: caff \
does not accept it there either.

$ENV{'PERL_MAILERS'} = 'sendmail:PROGRAM' is taken as sendmail = PROGRAM, \
which caffpy runs as sendmail -oi -f EMAIL -- RECIPIENT. mailer-send is not \
taken: caffpy never talks SMTP itself and needs no sendmail arguments; for an \
SMTP server, let the MTA relay through it (see caffpy doctor). gpg-sign, \
gpg-delsig, gpg-sign-args, show-photos and secret-keyring are not taken \
either: caffpy runs the gpg setting for everything and certifies without \
gpg's key editor.

caff's mail-template is a Text::Template, whose {...} blocks are Perl code. \
The blocks caff itself writes are translated: {$owner} and {$key} become \
$owner and $key, the loop that adds each UID of @uids after a tab becomes \
$uids and a line end, and the test for more than one UID that adds an s \
becomes $plural. A $ in the text becomes $$. A template with any other block \
is not taken, and caffpy uses its built-in text.

Whenever it reads such a file, caffpy warns once, listing what it took and \
each line it did not take, with the reason. caffpy config --migrate prints \
the same settings as a caffpy configuration file, with the lines not taken \
listed in a comment at the top; with --output FILE it writes FILE, which \
caffpy reads to exactly the same values. It replaces an existing FILE only \
with --force, and when FILE is the caff file itself, keeps that as \
FILE.caff-perl first."""


def caffrc_man() -> str:
    lines = title("caffrc", 5, "File Formats")
    lines += [".SH NAME", "caffrc \\- configuration files of caffpy",
              ".SH SYNOPSIS", italic("/etc/caffrc"), ".br", italic("~/.caffrc"),
              ".SH DESCRIPTION", *paragraphs(CAFFRC_DESCRIPTION),
              ".SH SYNTAX"]
    syntax = paragraphs(CAFFRC_SYNTAX)
    at = syntax.index(roff("key = value"))
    syntax[at:at + 1] = [".RS 4", ".EX", roff("key = value"), ".EE", ".RE",
                         ".nh", ".ad l"]     # .EE turns hyphenation back on
    lines += syntax
    lines += [".SH KEYS",
              *paragraphs("owner, email and keyid must be set, usually in ~/.caffrc. "
                          "Every other key has the default shown.")]
    for key in spec_keys():
        lines += [".TP", "%s (%s; default: %s)" % (bold(key.name), roff(type_text(key)),
                                                   roff(default_text(key))),
                  roff(sentence(key.explanation))]
    lines += [".SH MAIL TEMPLATE", *paragraphs(CAFFRC_TEMPLATE), ".PP", ".EX",
              *(roff(line) for line in CAFFRC_TEMPLATE_EXAMPLE.split("\n")), ".EE",
              ".nh", ".ad l",     # .EE turns hyphenation back on
              ".SH CAFF CONFIGURATION FILES", *paragraphs(CAFFRC_PERL)]
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

def wrap_roff(page: str, width: int = 79) -> str:
    """Break long text lines of a man page (roff joins them again); lintian flags
    lines over 512 characters. Requests, tags and example blocks stay as they are."""
    out, verbatim, after_tp = [], False, False
    for line in page.split("\n"):
        if line.startswith((".EX", ".nf")):
            verbatim = True
        elif line.startswith((".EE", ".fi")):
            verbatim = False
        if verbatim or after_tp or line.startswith((".", "'")) or len(line) <= width:
            out.append(line)
        else:
            for piece in textwrap.wrap(line, width, break_long_words=False,
                                       break_on_hyphens=False):
                # A text line starting with . or ' would be read as a request.
                out.append("\\&" + piece if piece.startswith((".", "'")) else piece)
        after_tp = line.startswith(".TP")
    return "\n".join(out)

OUTPUTS: Dict[str, Callable[[], str]] = {
    "conf/caffrc": caffrc_text,
    "man/caffpy.1": lambda: wrap_roff(caffpy_man()),
    "man/caffrc.5": lambda: wrap_roff(caffrc_man()),
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
