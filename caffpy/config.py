"""Layered configuration: built-in defaults < /etc/caffrc < ~/.caffrc < command line.

Files use configobj syntax and are checked against caffrc.spec one file at a
time, so every error names the file, the line and the key.
"""

import logging
import os
import pwd
import re
import stat
import socket
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import configobj
import validate

from caffpy import perlconf
from caffpy.errors import ConfigError
from caffpy.keys import normalize_key_id

log = logging.getLogger(__name__)

SPEC_PATH = os.path.join(os.path.dirname(__file__), "caffrc.spec")
SYSTEM_CONFIG = "/etc/caffrc"
USER_CONFIG = "~/.caffrc"
# A colon-separated list of files replacing /etc/caffrc:~/.caffrc (tests, packaging).
CONFIG_FILES_ENV = "CAFFPY_CONFIG_FILES"
REQUIRED_KEYS = ("owner", "email", "keyid")
SIGN_TYPE = re.compile(r"^(l|nr|t)*$")


def load_spec() -> configobj.ConfigObj:
    return configobj.ConfigObj(SPEC_PATH, _inspec=True, list_values=False,
                               encoding="utf-8")


def spec_entries() -> List[Tuple[str, str, str]]:
    """(key, type-and-default, explanation) for every key, in file order."""
    entries, comment = [], ""
    with open(SPEC_PATH, encoding="utf-8") as spec:
        for line in spec:
            line = line.strip()
            if line.startswith("#"):
                comment = line.lstrip("# ")
            elif "=" in line:
                key, _, check = line.partition("=")
                entries.append((key.strip(), check.strip(), comment))
                comment = ""
    return entries


def spec_defaults() -> Dict[str, object]:
    spec = load_spec()
    validator = validate.Validator()
    return {key: validator.get_default_value(spec[key]) for key in spec}


@dataclass
class Config:
    values: Dict[str, object]
    origins: Dict[str, str] = field(default_factory=dict)   # key -> where it was set
    user_file: str = ""

    def __getitem__(self, key: str):
        return self.values[key]

    def get(self, key: str, default=None):
        return self.values.get(key, default)


def config_files(user_file: Optional[str] = None) -> List[str]:
    """The files read, lowest priority first; the last is the user's own."""
    env = os.environ.get(CONFIG_FILES_ENV)
    files = [f for f in env.split(":") if f] if env else [SYSTEM_CONFIG, USER_CONFIG]
    files = [os.path.expanduser(f) for f in files]
    if user_file:
        files = files[:-1] + [os.path.expanduser(user_file)] if files else [user_file]
    return files


def _line_of(lines: Sequence[str], key: str) -> int:
    """The line setting key (or opening section [key]); 0 if there is none."""
    pattern = re.compile(r"^\s*(%s\s*=|\[+\s*%s\s*\]+)" % (re.escape(key), re.escape(key)))
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return 0


def _check_permissions(path: str) -> None:
    info = os.stat(path)
    if info.st_mode & stat.S_IWOTH:
        raise ConfigError("%s is writable by every user of this machine, so anyone could "
                          "change where your signatures go; fix it with: chmod o-w %s"
                          % (path, path))


def _read_lines(path: str) -> List[str]:
    _check_permissions(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError("%s: not valid UTF-8 (%s)" % (path, error))
    except OSError as error:
        raise ConfigError("%s: cannot read: %s" % (path, error.strerror))


def read_file(path: str) -> Dict[str, object]:
    """Read and type-check one configuration file; only the keys it sets."""
    lines = _read_lines(path)
    if perlconf.looks_like_perl(lines):
        values, reading = _read_perl(path, lines)
        _warn_perl(path, reading)
        return values
    try:
        parsed = configobj.ConfigObj(lines, list_values=True, interpolation=False,
                                     file_error=False)
    except configobj.ConfigObjError as error:
        line = getattr(error, "line_number", 0)
        raise ConfigError("%s, line %s: %s" % (path, line, _short(error)))
    spec = load_spec()
    validator = validate.Validator()
    values: Dict[str, object] = {}
    for key in parsed:
        line = _line_of(lines, key)
        if isinstance(parsed[key], dict):
            raise ConfigError("%s, line %d: sections like [%s] are not used in caffrc"
                              % (path, line, key))
        if key not in spec:
            raise ConfigError("%s, line %d: unknown key '%s' (see caffrc(5) for the keys)"
                              % (path, line, key))
        try:
            values[key] = validator.check(spec[key], parsed[key])
            if isinstance(values[key], list):      # "key =" is an empty list, not ['']
                values[key] = [item for item in values[key] if item.strip()]
        except validate.ValidateError as error:
            raise ConfigError("%s, line %d: key '%s': %s" % (path, line, key, _short(error)))
    _check_values(path, lambda key: _line_of(lines, key), values)
    return values


# -- caff's own files (Perl), read without running them --------------------------------

_warned_perl: set = set()       # files already reported in this process


def read_perl_file(path: str) -> Tuple[Dict[str, object], perlconf.PerlReading]:
    """A caff (Perl) file's type-checked caffpy values, and what was (not) taken."""
    lines = _read_lines(path)
    if not perlconf.looks_like_perl(lines):
        raise ConfigError("%s is not a caff (Perl) configuration" % path)
    return _read_perl(path, lines)


def _read_perl(path: str, lines: Sequence[str]):
    reading = perlconf.read("\n".join(lines) + "\n", os.environ.get("HOME"))
    spec = load_spec()
    validator = validate.Validator()
    values: Dict[str, object] = {}
    for key, value in reading.values.items():
        where = "line %d: key '%s'" % (reading.lines[key], key)
        if reading.sources[key] != key:
            where += " (from %s)" % reading.sources[key]
        try:
            values[key] = validator.check(spec[key], value)
        except validate.ValidateError as error:
            raise ConfigError("%s, %s: %s" % (path, where, _short(error)))
    _check_values(path, lambda key: reading.lines.get(key, 0), values)
    return values, reading


def _warn_perl(path: str, reading: perlconf.PerlReading) -> None:
    """Say once which caff settings were taken and which were not."""
    if path in _warned_perl:
        return
    _warned_perl.add(path)
    taken = ", ".join(key if reading.sources[key] == key else
                      "%s (from %s)" % (key, reading.sources[key]) for key in reading.values)
    lines = ["%s is a caff configuration (Perl); caffpy read it without running it."
             % path, "  taken: %s" % (taken or "nothing")]
    lines += ["  not taken: line %d%s: %s" % (item.line, " " + item.key if item.key else "",
                                              item.reason) for item in reading.not_taken]
    lines += ["  note: line %d %s: %s" % (item.line, item.key, item.reason)
              for item in reading.notes]
    lines.append("  `caffpy config --migrate` writes the same settings in caffpy's own "
                 "format; see caffrc(5).")
    log.warning("%s", "\n".join(lines))


def _short(error: Exception) -> str:
    return str(error).split("\n")[0]


def _check_values(path: str, line_of, values: Dict[str, object]) -> None:
    def fail(key, message):
        raise ConfigError("%s, line %d: key '%s': %s" % (path, line_of(key), key, message))

    for key in ("keyid", "local-user", "also-encrypt-to"):
        for item in values.get(key, []):
            if not re.match(r"^([0-9A-F]{16}|[0-9A-F]{40})$", normalize_key_id(item)):
                fail(key, "%r is not a fingerprint (40 hex digits) or long key ID" % item)
    if "gpg-sign-type" in values and not SIGN_TYPE.match(values["gpg-sign-type"]):
        fail("gpg-sign-type", "must be made of l, nr and t (for example 'l')")
    for key in ("owner", "mail-subject", "email", "reply-to", "bcc", "sendmail", "gpg",
                "caffhome", "keyserver"):
        value = values.get(key)
        items = value if isinstance(value, list) else [value]    # keyserver is a list
        if any(isinstance(v, str) and any(ord(c) < 0x20 or ord(c) == 0x7F for c in v)
               for v in items):
            fail(key, "holds a line break or another control character")
    for key in ("email", "reply-to", "bcc"):
        value = values.get(key)
        if value and not re.match(r"^[^@\s<>\"-][^@\s<>\"]*@[^@\s<>\"]+\.[^@\s<>\"]+$", value):
            fail(key, "%r is not a plain mail address (name@example.org)" % value)


def load(user_file: Optional[str] = None, overrides: Optional[Dict[str, object]] = None,
         require: bool = True) -> Config:
    """Merge defaults, the configuration files and command-line overrides."""
    files = config_files(user_file)
    values = spec_defaults()
    origins = {key: "default" for key in values}
    for path in files:
        if not os.path.exists(path):
            continue
        for key, value in read_file(path).items():
            values[key] = value
            origins[key] = path
    for key, value in (overrides or {}).items():
        values[key] = value
        origins[key] = "command line"
    values["keyid"] = [normalize_key_id(k) for k in values["keyid"]]
    values["local-user"] = [normalize_key_id(k) for k in values["local-user"]]
    values["also-encrypt-to"] = [normalize_key_id(k) for k in values["also-encrypt-to"]]
    values["caffhome"] = os.path.expanduser(values["caffhome"])
    values["key-files"] = [os.path.expanduser(f) for f in values["key-files"]]
    if not values["mail-cant-encrypt"]:
        values["mail-cant-encrypt"] = values["mail"]
    config = Config(values, origins, files[-1] if files else "")
    if require:
        missing = [key for key in REQUIRED_KEYS if not values.get(key)]
        if missing:
            raise ConfigError("%s: required key(s) missing: %s (see caffrc(5))"
                              % (config.user_file, ", ".join(missing)))
    return config


# -- first run ------------------------------------------------------------------

def owner_name() -> str:
    try:
        gecos = pwd.getpwuid(os.getuid()).pw_gecos
    except KeyError:
        gecos = ""
    return gecos.split(",")[0].strip() or os.environ.get("LOGNAME", "") or "Your Name"


def first_run_text(owner: str, email: Optional[str], keyids: Sequence[str]) -> str:
    """The ~/.caffrc written when there is none."""
    email_line = "email = %s" % email if email else \
        "email = %s@%s  # change this" % (os.environ.get("LOGNAME", "you"), socket.getfqdn())
    key_line = "keyid = %s" % ", ".join(keyids) if keyids else \
        "# keyid = 0123456789ABCDEF0123456789ABCDEF01234567  # your key's fingerprint"
    return "\n".join([
        "# caffpy configuration, written on its first run. See caffrc(5) for every key;",
        "# /etc/caffrc holds the system-wide defaults.",
        "",
        "owner = %s" % owner,
        email_line,
        "# Fingerprints of the keys you sign with (gpg -K --with-colons lists them).",
        key_line,
        "",
        "# mail = ask-yes",
        "# also-encrypt-to = %s" % (keyids[0] if keyids else ""),
        "# reply-to = ",
        "",
    ])
