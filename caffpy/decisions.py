"""Per-UID decisions: which user IDs of each key to certify, and how, in a reviewable file.

With --decisions FILE (caffpy, and caffpy sign of the offline flow):

- FILE does not exist: caffpy asks, for each key and each of its valid user
  IDs, whether to certify it and at which level, writes the answers to FILE,
  and only then certifies. (--batch never asks: there FILE must exist.)
- FILE exists: caffpy certifies exactly what it says, asking nothing. A key the
  file does not name, or a user ID it does not name, is not certified and is
  listed in the summary. A file that is damaged, of another version, or that
  names a user ID the key does not have (the key changed) stops the run before
  anything is signed.

FILE is JSON in UTF-8, one entry per key fingerprint and, in it, one per user
ID, named by gpg's UID hash (field 8 of a --with-colons uid line):

    {"format": "caffpy-decisions", "version": 1,
     "keys": {"<FINGERPRINT>": {"uids": {"<UID HASH>": {
         "uid": "Alice <alice@example.org>",
         "certify": true, "level": 2, "local": false, "expire": "",
         "policy-url": "", "notation": ["party@example.org=KSP-2025"]}}}}}

"uid" is the user ID as caffpy prints it (control characters escaped), for
the reader; it must match the key. The other fields are the certification:
level 0-3, local (non-exportable, never mailed), expire, policy-url and
notation as for gpg's --default-cert-expire, --cert-policy-url and
--cert-notation ("" and [] for none). They are needed when "certify" is true.

gpg can pick a user ID to certify only by its text, so a user ID that is not
valid UTF-8, holds control characters, or is a photo ID cannot be certified on
its own: caffpy never asks about it and says so.
"""

import dataclasses
import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from caffpy import __version__
from caffpy.errors import ConfigError, DataError, UsageError
from caffpy.keys import Key, Uid, is_fingerprint
from caffpy.prompt import Prompter
from caffpy.signing import cert_args, describe
from caffpy.text import has_unsafe_chars, printable
from caffpy.workspace import atomic_write

FORMAT, VERSION = "caffpy-decisions", 1
OPTION_FIELDS = ("level", "local", "expire", "policy-url", "notation")
UID_FIELDS = ("uid", "certify") + OPTION_FIELDS
TOP_FIELDS = ("format", "version", "caffpy", "created", "keys")
_UID_HASH = re.compile(r"^[0-9A-F]{40}$")
# gpg's expiry syntax (0, 30d, 2y, 2030-01-01, seconds=N...); never an option.
_EXPIRE = re.compile(r"^([0-9A-Za-z][0-9A-Za-z:=.+-]*)?$")
_ANSWER = re.compile(r"^([0-3])(l?)$")

LEVELS_HELP = """\
For each user ID, answer with the certification level, as gpg's cert-level:
  0 no claim how well you checked, 1 not checked, 2 checked casually, 3 checked carefully;
add l (as in 2l) for a local certification, which is never exported or mailed,
or answer n not to certify the user ID."""


@dataclass(frozen=True)
class CertOptions:
    """How one certification is made; user IDs with equal options share one gpg call."""

    level: int
    local: bool = False
    expire: str = ""
    policy_url: str = ""
    notation: Tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config) -> "CertOptions":
        options = cls(config["cert-level"], config["gpg-sign-type"] == "l",
                      config["cert-expire"], config["cert-policy-url"],
                      tuple(config["cert-notation"]))
        problem = options.problem()
        if problem:
            raise ConfigError("a cert-* setting cannot go into a decisions file: %s" % problem)
        return options

    def problem(self) -> str:
        """What is wrong with these options (values from a file), or ''."""
        if type(self.level) is not int or not 0 <= self.level <= 3:
            return '"level" must be 0, 1, 2 or 3, not %s' % _shown(self.level)
        if type(self.local) is not bool:
            return '"local" must be true or false, not %s' % _shown(self.local)
        if not isinstance(self.expire, str) or not _EXPIRE.match(self.expire):
            return ('"expire" must be empty or an expiry gpg reads (0, 2y, 2030-01-01), '
                    'not %s' % _shown(self.expire))
        if not isinstance(self.policy_url, str) or not _plain_word(self.policy_url):
            return '"policy-url" must be empty or a URL, not %s' % _shown(self.policy_url)
        for notation in self.notation:
            if not _good_notation(notation):
                return ('each "notation" must be name@domain=value (printable, no '
                        'control characters), not %s' % _shown(notation))
        return ""

    def gpg_args(self) -> List[str]:
        # Exactly how the cert-* settings become gpg options.
        return cert_args({"cert-level": self.level, "cert-expire": self.expire,
                          "cert-policy-url": self.policy_url,
                          "cert-notation": list(self.notation)})

    def as_json(self) -> dict:
        return {"level": self.level, "local": self.local, "expire": self.expire,
                "policy-url": self.policy_url, "notation": list(self.notation)}

    def describe(self) -> str:
        return "level %d, %s" % (self.level, "local" if self.local else "exportable")


@dataclass
class Choice:
    """The decision on one user ID."""

    uid: str                         # the user ID as shown (escaped), for the reader
    options: Optional[CertOptions]   # None: not certified

    def as_json(self) -> dict:
        fields = {"uid": self.uid, "certify": self.options is not None}
        if self.options is not None:
            fields.update(self.options.as_json())
        return fields


def _shown(value) -> str:
    return printable(json.dumps(value, ensure_ascii=False), 80)


def _plain_word(text: str) -> bool:
    """Empty, or one printable word that gpg cannot take for an option."""
    return text == "" or not (has_unsafe_chars(text) or any(c.isspace() for c in text)
                              or text.startswith("-"))


def _good_notation(notation) -> bool:
    if not isinstance(notation, str) or "=" not in notation or has_unsafe_chars(notation):
        return False
    name = notation.split("=", 1)[0]
    return _plain_word(name) and name.isascii() and "@" in name.lstrip("!")[1:]


def unselectable(uid: Uid) -> str:
    """Why gpg cannot be told to certify just this user ID (by its text), or ''."""
    if uid.is_attribute:
        return "it is a photo ID"
    try:
        text = uid.raw.decode("utf-8")
    except UnicodeDecodeError:
        return "its text is not valid UTF-8"
    if not text or any(unicodedata.category(c) == "Cc" for c in text):
        return "its text holds control characters"
    return ""


class Decisions:
    """A decisions file: loaded (keys set), or still to be made by asking (keys None)."""

    def __init__(self, path: str, defaults: Optional[CertOptions] = None,
                 keys: Optional[Dict[str, Dict[str, Choice]]] = None):
        self.path = path
        self.defaults = defaults        # when asking: Enter's answer, from the cert-* settings
        self.keys = keys                # fingerprint -> UID hash -> Choice; None: to ask
        self.skipped: List[str] = []    # for the summary: what is not certified, and why

    # -- before signing: ask and write, or check ------------------------------------------

    def settle(self, keys: Sequence[Key], prompter: Prompter) -> None:
        """Make the decisions for keys (asking, then writing the file) or check them."""
        if self.keys is None:
            self.keys = {}
            prompter.show(LEVELS_HELP)
            for key in keys:
                self.keys[key.fingerprint] = self._ask(key, prompter)
            self.save()
        else:
            for key in keys:         # every key before any is signed
                self._check(key)
        for key in keys:
            self._report(key)

    def _ask(self, key: Key, prompter: Prompter) -> Dict[str, Choice]:
        prompter.show(describe(key))
        # The others are listed in the summary by _report.
        askable = [uid for uid in key.uids if uid.usable and not unselectable(uid)]
        wanted = bool(askable) and prompter.ask(
            "Certify user IDs of this key (fingerprint checked at the party)?", default=True)
        return {uid.namehash: Choice(uid.shown, self._ask_uid(uid, prompter) if wanted else None)
                for uid in askable}

    def _ask_uid(self, uid: Uid, prompter: Prompter) -> Optional[CertOptions]:
        default = "%d%s" % (self.defaults.level, "l" if self.defaults.local else "")
        while True:
            answer = prompter.ask_line("  [%d] %s\n      certify at level 0-3 (l: local), or n?"
                                       % (uid.serial, uid.shown), default).lower()
            if answer in ("n", "no"):
                return None
            if answer in ("y", "yes"):
                answer = default
            match = _ANSWER.match(answer)
            if match:
                return dataclasses.replace(self.defaults, level=int(match.group(1)),
                                           local=bool(match.group(2)))
            prompter.show("      Please answer 0, 1, 2 or 3, with l for a local "
                          "certification (2l), or n.")

    def _check(self, key: Key) -> None:
        """The file must still fit the key: every UID it names is there, unchanged."""
        by_hash = {uid.namehash: uid for uid in key.uids}
        for namehash, choice in self.keys.get(key.fingerprint, {}).items():
            uid = by_hash.get(namehash)
            if uid is None:
                raise DataError("%s: key 0x%s has no user ID with hash %s (%s): the key "
                                "changed since the decisions were made. Check the key again "
                                "and make a new decisions file."
                                % (self.path, key.long_id, namehash, choice.uid))
            if choice.uid != uid.shown:
                raise DataError("%s: key 0x%s, user ID hash %s is %s, but the file calls it %s; "
                                "was the file edited?"
                                % (self.path, key.long_id, namehash, uid.shown, choice.uid))
            if choice.options is not None and unselectable(uid):
                raise DataError("%s: key 0x%s, user ID %d %s cannot be certified on its own: "
                                "%s" % (self.path, key.long_id, uid.serial, uid.shown,
                                        unselectable(uid)))

    def _report(self, key: Key) -> None:
        chosen = self.keys.get(key.fingerprint)
        if chosen is None:
            self.skipped.append("key 0x%s is not in %s: not certified" % (key.long_id, self.path))
            return
        for uid in key.uids:
            choice = chosen.get(uid.namehash)
            what = "key 0x%s, user ID %d %s" % (key.long_id, uid.serial, uid.shown)
            if not uid.usable:
                if choice and choice.options:
                    self.skipped.append("%s is %s now: not certified" % (what, uid.state))
            elif unselectable(uid):
                self.skipped.append("%s: not certified, since gpg can pick a user ID only by "
                                    "its text and %s" % (what, unselectable(uid)))
            elif choice is None:
                self.skipped.append("%s is not in %s: not certified" % (what, self.path))
            elif choice.options is None:
                self.skipped.append("%s: not certified, as decided in %s" % (what, self.path))
            elif choice.options.local:
                self.skipped.append("%s: certified locally, as decided in %s, so never mailed"
                                    % (what, self.path))

    def save(self) -> None:
        document = {"format": FORMAT, "version": VERSION, "caffpy": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "keys": {fpr: {"uids": {h: c.as_json() for h, c in uids.items()}}
                             for fpr, uids in self.keys.items()}}
        atomic_write(self.path, json.dumps(document, indent=2, ensure_ascii=False)
                     .encode("utf-8") + b"\n")

    # -- for signing and mailing -----------------------------------------------------------

    def batches(self, key: Key) -> List[Tuple[CertOptions, List[Uid]]]:
        """The user IDs of key to certify, grouped by their options (one gpg call each)."""
        groups: Dict[CertOptions, List[Uid]] = {}
        chosen = (self.keys or {}).get(key.fingerprint, {})
        for uid in key.uids:
            choice = chosen.get(uid.namehash)
            if choice and choice.options and uid.usable and not unselectable(uid):
                groups.setdefault(choice.options, []).append(uid)
        return list(groups.items())

    def mailable(self, fingerprint: str) -> Set[str]:
        """UID hashes whose certification may be mailed: exportable ones only."""
        chosen = (self.keys or {}).get(fingerprint, {})
        return {h for h, c in chosen.items() if c.options and not c.options.local}


# -- reading the file ----------------------------------------------------------------------

def from_option(path: Optional[str], config, batch: bool) -> Optional[Decisions]:
    """The decisions of --decisions PATH (None without it), checked before anything runs."""
    if path is None:
        return None
    if config["gpg-sign-type"] not in ("", "l"):
        raise UsageError("--decisions cannot be used with gpg-sign-type '%s': gpg asks its own "
                         "questions for that kind of signature" % config["gpg-sign-type"])
    if os.path.exists(path):
        return load(path)
    if batch:
        raise UsageError("the decisions file %s does not exist. --batch asks nothing, so it "
                         "only replays an existing file; run without --batch to answer the "
                         "questions and write it" % path)
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise UsageError("cannot write the decisions file %s: its directory does not exist"
                         % path)
    return Decisions(path, CertOptions.from_config(config))


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    # json would keep the last of two equal names silently: in a reviewed file, refuse.
    names = [name for name, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            raise _Duplicate("%s appears twice in one object" % _shown(name))
    return dict(pairs)


def load(path: str) -> Decisions:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise DataError("cannot read the decisions file %s: %s" % (path, error.strerror))
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicates)
    except ValueError as error:
        raise DataError("%s is not a valid decisions file: %s" % (path, error))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError('%s is not a caffpy decisions file (it lacks "format": "%s")'
                        % (path, FORMAT))
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise DataError("%s has decisions file version %s; this caffpy reads version %d only"
                        % (path, _shown(version), VERSION))
    _known_fields(document, TOP_FIELDS, path)
    if not isinstance(document.get("keys"), dict):
        raise DataError('%s: "keys" must be an object: fingerprint -> {"uids": {...}}' % path)
    keys: Dict[str, Dict[str, Choice]] = {}
    for fpr, entry in document["keys"].items():
        where = "%s, key %s" % (path, printable(fpr, 60))
        if not is_fingerprint(fpr.upper()) or fpr.upper() in keys:
            raise DataError("%s: not a fingerprint (40 hexadecimal digits), or named twice"
                            % where)
        if not isinstance(entry, dict) or not isinstance(entry.get("uids"), dict):
            raise DataError('%s: must be {"uids": {UID HASH: {...}, ...}}' % where)
        _known_fields(entry, ("uids",), where)
        uids: Dict[str, Choice] = {}
        for namehash, fields in entry["uids"].items():
            at = "%s, user ID hash %s" % (where, printable(namehash, 60))
            if not _UID_HASH.match(namehash.upper()) or namehash.upper() in uids:
                raise DataError("%s: not a UID hash (40 hexadecimal digits), or named twice" % at)
            uids[namehash.upper()] = _choice(fields, at)
        keys[fpr.upper()] = uids
    return Decisions(path, keys=keys)


def _known_fields(entry: dict, known: Sequence[str], where: str) -> None:
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise DataError("%s: unknown field %s (known: %s)"
                        % (where, ", ".join(_shown(u) for u in unknown), ", ".join(known)))


def _choice(fields, where: str) -> Choice:
    if not isinstance(fields, dict):
        raise DataError("%s: must be an object with the fields %s" % (where, ", ".join(UID_FIELDS)))
    _known_fields(fields, UID_FIELDS, where)
    if not isinstance(fields.get("uid"), str):
        raise DataError('%s: "uid" must be the user ID\'s text' % where)
    if type(fields.get("certify")) is not bool:
        raise DataError('%s: "certify" must be true or false' % where)
    if not fields["certify"]:
        return Choice(fields["uid"], None)      # the options of a user ID left alone do not matter
    missing = [f for f in OPTION_FIELDS if f not in fields]
    if missing:
        raise DataError('%s: "certify" is true, so it needs %s too' % (where, ", ".join(missing)))
    if not isinstance(fields["notation"], list):
        raise DataError('%s: "notation" must be a list ([] for none)' % where)
    options = CertOptions(fields["level"], fields["local"], fields["expire"],
                          fields["policy-url"], tuple(fields["notation"]))
    problem = options.problem()
    if problem:
        raise DataError("%s: %s" % (where, problem))
    return Choice(fields["uid"], options)
