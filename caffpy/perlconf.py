"""caff's ~/.caffrc, which is Perl, read without running any Perl.

caff loads its configuration with eval, so the file is a program. What people
write in it is a handful of assignments to %CONFIG and %ENV; this module
evaluates exactly those forms (quoted strings, q/qq/qw, numbers with + - * /,
concatenation, array references, heredocs, $ENV{'HOME'} and earlier $CONFIG
values) and reports every statement it cannot evaluate instead of guessing.

The values are then mapped to caffpy's keys and types. caff's mail template is
Text::Template, whose {...} blocks are Perl code: the blocks caff itself writes
({$key}, {$owner}, the loop over @uids, the plural 's') are translated to
caffpy's $variables; a template with any other code is not taken.
"""

import bisect
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

MAX_DEPTH = 20          # nesting of lists and parentheses; deeper is not a config file


class Unsupported(Exception):
    """A construct this reader does not evaluate; the message says which."""


class PerlList(tuple):
    """A Perl list (qw{...}, parentheses), as opposed to an array reference (a Python list)."""


@dataclass
class Skipped:
    """A statement or setting that was not taken, and why."""

    line: int
    key: str        # caff's name ('mailer-send', "$ENV{'PERL_MAILERS'}"); '' if unknown
    reason: str


@dataclass
class Evaluation:
    """What the file assigns, as Perl values: str, int, float, None (undef), list."""

    config: Dict[str, Tuple[object, int]] = field(default_factory=dict)   # key -> (value, line)
    env: Dict[str, Tuple[object, int]] = field(default_factory=dict)
    skipped: List[Skipped] = field(default_factory=list)


@dataclass
class PerlReading:
    """The settings taken, in caffpy's names and types, and those that were not."""

    values: Dict[str, object] = field(default_factory=dict)
    lines: Dict[str, int] = field(default_factory=dict)      # caffpy key -> line in the file
    sources: Dict[str, str] = field(default_factory=dict)    # caffpy key -> caff's name
    not_taken: List[Skipped] = field(default_factory=list)
    notes: List[Skipped] = field(default_factory=list)       # taken, with something to know


def looks_like_perl(lines: Sequence[str]) -> bool:
    """caff files assign to $CONFIG{...}; a configobj file never starts a line so."""
    return any(re.match(r"\s*\$(CONFIG|ENV)\s*\{", line) for line in lines)


# -- evaluating the Perl subset -------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F_]+|\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?")
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_HEREDOC = re.compile(r"<<(?:\s*'([^'\n]*)'|\s*\"([^\"\n]*)\"|([A-Za-z_]\w*))")
_TARGET = re.compile(r"\$(CONFIG|ENV)\s*\{")
_BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\a", "e": "\x1b", "0": "\0"}
_ASSIGNED = re.compile(r"\$CONFIG\s*\{\s*['\"]?([\w-]+)['\"]?\s*\}\s*(?:[.|/]{0,2})=(?![=~>])")
_END = re.compile(r"__(END|DATA)__\b")
_ELSE = re.compile(r"\s*(else|elsif|continue)\b")
_BLOCK_WORDS = ("if", "unless", "for", "foreach", "while", "until", "sub", "BEGIN", "END")
_INTERPOLATED = re.compile(r"\$(CONFIG|ENV)\{\s*(?:'([^']*)'|\"([^\"]*)\"|(\w+))\s*\}")


def evaluate(text: str, home: Optional[str]) -> Evaluation:
    """Evaluate the assignments of a caff file; home is what $ENV{'HOME'} gives."""
    parser = _Parser(text, home)
    parser.run()
    return parser.result


def _snippet(text: str, limit: int = 40) -> str:
    text = text.split("\n")[0].strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _as_text(value: object) -> str:
    """A value as Perl stringifies it, where that is not a surprise."""
    if isinstance(value, PerlList):
        value = value[-1] if value else None
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%.15g" % value
    raise Unsupported("an array reference used as text (Perl would write ARRAY(0x…))")


def _as_number(value: object):
    if isinstance(value, PerlList):
        value = value[-1] if value else None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value else number
    raise Unsupported("arithmetic on %s, which is not a number" % _describe(value))


def _describe(value: object) -> str:
    return "undef" if value is None else "a list" if isinstance(value, list) else repr(value)


class _Parser:
    """A recursive-descent reader of assignment statements (one instance per file)."""

    def __init__(self, text: str, home: Optional[str]):
        self.text = text
        self.pos = 0
        self.home = home
        self.depth = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        # A heredoc's body follows the line of its <<: at that line's newline,
        # reading resumes after the body (position of newline -> position after body).
        self.resume: Dict[int, int] = {}
        self.result = Evaluation()
        self.failed_keys: Dict[str, int] = {}     # $CONFIG keys whose statement failed

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos)

    # -- statements --

    def run(self) -> None:
        while True:
            self.skip_space()
            if self.pos >= len(self.text) or _END.match(self.text, self.pos):
                return
            start, resume = self.pos, dict(self.resume)
            self.depth = 0
            try:
                self.statement()
            except Unsupported as why:
                self.pos, self.resume = start, resume
                self.skip_failed(start, str(why))

    def skip_failed(self, start: int, reason: str) -> None:
        """Report the statement at start, and every $CONFIG key it would have set."""
        if not self.skip_statement():
            reason += "; caffpy cannot tell where this statement ends, so it read no further"
        keys = _ASSIGNED.findall(self.text[start:self.pos]) or [""]
        for key in dict.fromkeys(keys):
            if key:
                self.failed_keys[key] = self.line(start)
            self.result.skipped.append(Skipped(self.line(start), key, reason))

    def statement(self) -> None:
        start = self.pos
        if self.word_ahead() in ("use", "no"):       # pragmas: use strict; use warnings;
            self.skip_statement()
            return
        if _NUMBER.match(self.text, self.pos):        # caff's traditional last line: 1;
            self.number()
            self.end_of_statement()
            return
        if self.text.startswith("\\$", self.pos):
            raise Unsupported("\\$ before the variable: Perl refuses this line, so caff "
                               "cannot load this file either")
        target = _TARGET.match(self.text, self.pos)
        if not target:
            raise Unsupported("not an assignment to $CONFIG{...} or $ENV{...}: `%s`"
                               % _snippet(self.text[start:]))
        self.pos = target.end()
        key = self.hash_key()
        self.skip_space()
        if not re.match(r"=(?![=~>])", self.text[self.pos:self.pos + 2]):
            raise Unsupported("not a plain assignment (=): `%s`" % _snippet(self.text[start:]))
        self.pos += 1
        value = self.expression()
        if isinstance(value, PerlList):               # a list in scalar context: its last item
            value = value[-1] if value else None
        self.end_of_statement()
        if target.group(1) == "CONFIG":
            self.result.config[key] = (value, self.line(start))
            self.failed_keys.pop(key, None)
        else:
            self.result.env[key] = (value, self.line(start))

    def end_of_statement(self) -> None:
        self.skip_space()
        if self.pos >= len(self.text):
            return
        if self.text[self.pos] != ";":
            raise Unsupported("caffpy reads plain values only and does not run `%s`"
                               % _snippet(self.text[self.pos:]))
        self.pos += 1

    def hash_key(self) -> str:
        self.skip_space()
        char = self.peek()
        if char in ("'", '"'):
            key = self.term()
        else:
            word = _IDENT.match(self.text, self.pos)
            if not word:
                raise Unsupported("a hash key caffpy cannot read: `%s`"
                                   % _snippet(self.text[self.pos:]))
            key, self.pos = word.group(), word.end()
        self.skip_space()
        if self.peek() != "}":
            raise Unsupported("a hash key caffpy cannot read: `%s`"
                               % _snippet(self.text[self.pos:]))
        self.pos += 1
        return _as_text(key)

    # -- expressions: additive (+ - .) over multiplicative (* / %) over terms --

    def expression(self) -> object:
        value = self.product()
        while True:
            self.skip_space()
            op = re.match(r"\+(?![+=])|-(?![-=>])|\.(?![.=])", self.text[self.pos:self.pos + 2])
            if not op:
                return value
            self.pos += 1
            right = self.product()
            if op.group() == ".":
                value = _as_text(value) + _as_text(right)
            else:
                value = self.arithmetic(op.group(), value, right)

    def product(self) -> object:
        value = self.term()
        while True:
            self.skip_space()
            op = re.match(r"\*(?![*=])|/(?![/=])|%(?!=)", self.text[self.pos:self.pos + 2])
            if not op:
                return value
            self.pos += 1
            value = self.arithmetic(op.group(), value, self.term())

    @staticmethod
    def arithmetic(op: str, left: object, right: object):
        x, y = _as_number(left), _as_number(right)
        if op == "%":                                 # Perl's % works on integers
            x, y = int(x), int(y)
        if op in "/%" and y == 0:
            raise Unsupported("a division by zero")
        result = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
                  "/": lambda: x / y, "%": lambda: x % y}[op]()
        if abs(result) >= 2 ** 63:
            raise Unsupported("a number too large")
        return int(result) if float(result).is_integer() else result

    def term(self) -> object:
        self.skip_space()
        char = self.peek()
        if not char:
            raise Unsupported("the file ends where a value should be")
        if char == "'":
            return self.unescape_single(self.delimited("'", "'"), "'", "'")
        if char == '"':
            return self.interpolate(self.delimited('"', '"'))
        if char in "[(":
            return self.list_value(char)
        if char == "$":
            return self.variable()
        if char == "-" and _NUMBER.match(self.text, self.pos + 1):
            self.pos += 1
            return -self.number()
        if self.text.startswith("<<", self.pos):
            return self.heredoc()
        if _NUMBER.match(self.text, self.pos):
            return self.number()
        word = self.word_ahead()
        if word in ("q", "qq", "qw"):
            return self.quote_like(word)
        if word == "undef":
            self.pos += len(word)
            return None
        raise Unsupported("caffpy reads plain values only and does not run `%s`"
                           % _snippet(self.text[self.pos:]))

    def number(self):
        match = _NUMBER.match(self.text, self.pos)
        self.pos = match.end()
        text = match.group().replace("_", "")
        if text[:2].lower() == "0x":
            value = int(text[2:] or "0", 16)
        elif re.fullmatch(r"0[0-7]+", text):          # Perl reads 0755 as octal
            value = int(text, 8)
        elif re.fullmatch(r"\d+", text):
            value = int(text)
        else:
            value = float(text)
        if abs(value) >= 2 ** 63:                     # Perl would round it to a float
            raise Unsupported("a number too large")
        return value

    def list_value(self, opening: str) -> object:
        """[ ... ] is an array reference (a Python list); ( ... ) a flat PerlList."""
        closing = _BRACKETS[opening]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unsupported("lists nested too deeply")
        self.pos += 1
        items: List[object] = []
        while True:
            self.skip_space()
            if self.peek() == closing:
                break
            fat_word = re.compile(r"([A-Za-z_]\w*)\s*=>").match(self.text, self.pos)
            if fat_word:                              # Server => ...: the word is a string
                items.append(fat_word.group(1))
                self.pos = fat_word.end(1)
            else:
                item = self.expression()
                items.extend(item) if isinstance(item, PerlList) else items.append(item)
            self.skip_space()
            if self.text.startswith("=>", self.pos):
                self.pos += 2
            elif self.peek() == ",":
                self.pos += 1
            elif self.peek() != closing:
                raise Unsupported("caffpy reads plain lists only and does not run `%s`"
                                   % _snippet(self.text[self.pos:]))
        self.pos += 1
        self.depth -= 1
        return items if opening == "[" else PerlList(items)

    def variable(self) -> object:
        target = _TARGET.match(self.text, self.pos)
        if not target:
            raise Unsupported("the Perl variable `%s`" % _snippet(self.text[self.pos:], 20))
        self.pos = target.end()
        key = self.hash_key()
        if re.match(r"\s*(\[|\{|->)", self.text[self.pos:self.pos + 4]):
            raise Unsupported("a subscript of $%s{'%s'}" % (target.group(1), key))
        return self.lookup(target.group(1), key)

    def lookup(self, name: str, key: str) -> object:
        if name == "ENV":
            if key in self.result.env:
                return self.result.env[key][0]
            if key == "HOME" and self.home is not None:
                return self.home
            raise Unsupported("$ENV{'%s'}: of the environment caffpy only reads HOME "
                               "from a caff file" % key)
        if key in self.failed_keys:
            raise Unsupported("it uses $CONFIG{'%s'}, which caffpy could not read (line %d)"
                               % (key, self.failed_keys[key]))
        return self.result.config.get(key, (None, 0))[0]    # unset is undef, as in Perl

    # -- strings --

    def quote_like(self, word: str) -> object:
        self.pos += len(word)
        self.skip_space()
        opening = self.peek()
        if not opening or opening.isalnum() or opening in "_,;=" or opening.isspace():
            raise Unsupported("the bareword `%s`" % word)
        closing = _BRACKETS.get(opening, opening)
        raw = self.delimited(opening, closing)
        if word == "qq":
            return self.interpolate(raw)
        text = self.unescape_single(raw, opening, closing)
        return PerlList(text.split()) if word == "qw" else text

    def delimited(self, opening: str, closing: str) -> str:
        """The raw text up to the closing delimiter (nested when it is a bracket pair)."""
        depth, start, text = 1, self.pos + 1, self.text
        i = start
        while i < len(text):
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if char == closing:
                depth -= 1
                if depth == 0:
                    self.pos = i + 1
                    return text[start:i]
            elif char == opening and opening != closing:
                depth += 1
            i += 1
        raise Unsupported("a string that is never closed (opened with %s)" % opening)

    @staticmethod
    def unescape_single(raw: str, opening: str, closing: str) -> str:
        """'...' and q{...}: only a backslash before a backslash or a delimiter is special."""
        return re.sub(r"\\([\\%s%s])" % (re.escape(opening), re.escape(closing)), r"\1", raw)

    def interpolate(self, raw: str) -> str:
        """"..." and <<"EOM": escapes, and $ENV{...} or $CONFIG{...}; other variables are code."""
        out, i = [], 0
        while i < len(raw):
            char = raw[i]
            if char == "\\" and i + 1 < len(raw):
                following = raw[i + 1]
                hexa = re.compile(r"x(\{[0-9a-fA-F]*\}|[0-9a-fA-F]{0,2})").match(raw, i + 1)
                if following in _ESCAPES:
                    out.append(_ESCAPES[following])
                elif following == "x":
                    code = int(hexa.group(1).strip("{}") or "0", 16)
                    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                        raise Unsupported("\\x{%X} is not a character" % code)
                    out.append(chr(code))
                    i = hexa.end()
                    continue
                elif following.isalnum():
                    raise Unsupported("the escape \\%s in a double-quoted string" % following)
                else:
                    out.append(following)
                i += 2
            elif char == "$":
                variable = _INTERPOLATED.match(raw, i)
                if not variable:
                    raise Unsupported("the Perl variable in \"…%s…\"" % _snippet(raw[i:], 20))
                key = next(g for g in variable.groups()[1:] if g is not None)
                out.append(_as_text(self.lookup(variable.group(1), key)))
                i = variable.end()
            elif char == "@" and re.match(r"[\w{$:]", raw[i + 1:i + 2]):
                raise Unsupported("an array interpolated into \"…%s…\" (Perl needs \\@ "
                                   "for a plain @)" % _snippet(raw[i:], 20))
            else:
                out.append(char)
                i += 1
        return "".join(out)

    def heredoc(self, evaluate: bool = True) -> object:
        """<<'EOM' (verbatim), <<"EOM" or <<EOM (interpolated); the body follows this line."""
        match = _HEREDOC.match(self.text, self.pos)
        if not match:
            raise Unsupported("a heredoc caffpy cannot read: `%s`"
                               % _snippet(self.text[self.pos:]))
        tag = next(g for g in match.groups() if g is not None)
        end_of_line = self.text.find("\n", match.end())
        if end_of_line < 0:
            raise Unsupported("a heredoc with no text after its line")
        pos = self.resume.get(end_of_line, end_of_line + 1)   # after an earlier heredoc's
        body = []
        while True:
            if pos >= len(self.text):
                raise Unsupported("the heredoc never ends (no line %s)" % tag)
            newline = self.text.find("\n", pos)
            newline = len(self.text) if newline < 0 else newline
            line, pos = self.text[pos:newline], newline + 1
            if line == tag:
                break
            body.append(line + "\n")
        self.resume[end_of_line] = min(pos, len(self.text))
        self.pos = match.end()
        if match.group(1) is not None or not evaluate:
            return "".join(body)
        return self.interpolate("".join(body))

    # -- moving through the text --

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def word_ahead(self) -> str:
        word = _IDENT.match(self.text, self.pos)
        return word.group() if word else ""

    def skip_space(self) -> None:
        """Blanks and comments; at the end of a line with a heredoc, jump past its body."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n" and self.pos in self.resume:
                self.pos = self.resume[self.pos]
            elif char.isspace():
                self.pos += 1
            elif char == "#":
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline
            else:
                return

    def skip_statement(self) -> bool:
        """Move past the statement at pos, strings and heredocs included; False if it never ends."""
        depth, block = 0, self.word_ahead() in _BLOCK_WORDS
        try:
            while True:
                self.skip_space()
                char, word = self.peek(), self.word_ahead()
                if not char:
                    return True
                if char == ";" and depth == 0:
                    self.pos += 1
                    return True
                if char in "'\"`":
                    self.delimited(char, char)
                elif _HEREDOC.match(self.text, self.pos):
                    self.heredoc(evaluate=False)
                elif word in ("q", "qq", "qw", "m", "qr"):
                    self.pos += len(word)
                    opening = self.peek()
                    if opening and not (opening.isalnum() or opening.isspace()
                                        or opening in "_,;=)"):
                        self.delimited(opening, _BRACKETS.get(opening, opening))
                elif word:
                    self.pos += len(word)
                elif char in "$@%&":                  # a sigil: $q is a variable, not q//
                    self.pos += 1
                    self.pos += len(self.word_ahead())
                else:
                    depth += (char in "([{") - (char in ")]}" and depth > 0)
                    self.pos += 1
                    # if (...) { ... } ends with its block, unless an else follows
                    if block and char == "}" and depth == 0 and not _ELSE.match(
                            self.text, self.pos):
                        return True
        except Unsupported:
            self.pos = len(self.text)
            return False


# -- mapping caff's settings to caffpy's ----------------------------------------------

# caff settings that caffpy has under the same name, with the kind of value caffpy wants.
SAME_KEYS = {
    "owner": "string", "email": "string", "reply-to": "string", "bcc": "string",
    "caffhome": "string", "gpg": "string", "keyserver": "string", "gpg-sign-type": "string",
    "mail": "string", "mail-cant-encrypt": "string", "mail-subject": "string",
    "also-lsign-in-gnupghome": "string",
    "keyid": "list", "also-encrypt-to": "list", "key-files": "list", "local-user": "list",
    "no-download": "boolean", "no-sign": "boolean", "ask-sign": "boolean",
    "keys-from-gnupg": "boolean",
    "export-sig-age": "integer",
    "mail-template": "template",
}

# caff settings caffpy has no equivalent for, and what to do instead.
NOT_USED = {
    "gpg-sign": "caffpy runs the program of the gpg setting for every gpg call",
    "gpg-delsig": "caffpy runs the program of the gpg setting for every gpg call",
    "gpg-sign-args": "caffpy certifies with gpg --quick-sign-key and never opens gpg's "
                     "interactive key editor, so there are no editor commands to pass",
    "show-photos": "caffpy does not open gpg's key editor, where caff showed photo IDs; "
                   "look at them before the run with gpg --list-options show-photos "
                   "--list-keys KEY",
    "secret-keyring": "caff itself refuses this obsolete setting; caffpy signs through "
                      "your own gpg-agent",
    "no-mail": "write mail = no instead",
}

PERL_MAILERS = "$ENV{'PERL_MAILERS'}"


def read(text: str, home: Optional[str]) -> PerlReading:
    """The caffpy settings a caff file makes, and those it makes that caffpy cannot take."""
    evaluation = evaluate(text, home)
    reading = PerlReading(not_taken=list(evaluation.skipped))
    for key, (value, line) in evaluation.config.items():
        _take(reading, key, value, line)
    for name, (value, line) in evaluation.env.items():
        _take_env(reading, name, value, line)
    reading.not_taken.sort(key=lambda item: item.line)
    return reading


def _take(reading: PerlReading, key: str, value: object, line: int) -> None:
    if key == "mailer-send":
        reading.not_taken.append(Skipped(line, key, _mailer_send_reason(value)))
        return
    if key in NOT_USED:
        reading.not_taken.append(Skipped(line, key, NOT_USED[key]))
        return
    if key not in SAME_KEYS:
        reading.not_taken.append(Skipped(line, key, "not a caff setting caffpy knows"))
        return
    try:
        if value is None:
            raise Unsupported("it is undef (no value)")
        kind = SAME_KEYS[key]
        if key == "local-user":
            value = _local_users(reading, value, line)
        elif kind == "list":
            value = [_as_text(item) for item in (value if isinstance(value, list) else [value])]
        elif kind == "boolean":
            value = _as_text(value) not in ("", "0")      # Perl's truth
        elif kind == "integer":
            value = _as_integer(value)
        elif kind == "template":
            value = translate_template(_as_text(value))
        else:
            value = _as_text(value)
    except Unsupported as why:
        reading.not_taken.append(Skipped(line, key, str(why)))
        return
    if value != []:
        reading.values[key], reading.lines[key], reading.sources[key] = value, line, key


def _as_integer(value: object) -> int:
    number = _as_number(value)
    if not float(number).is_integer():
        raise Unsupported("%r is not a whole number" % number)
    return int(number)


def _local_users(reading: PerlReading, value: object, line: int) -> List[str]:
    """caff splits a plain string on commas, and never signs with an 8-digit key ID."""
    if isinstance(value, list):
        items = [_as_text(item) for item in value]
    else:
        items = [item for item in re.split(r"\s*,\s*", _as_text(value)) if item]
    kept = []
    for item in items:
        if re.fullmatch(r"(0[xX])?[0-9a-fA-F]{8}", item.strip()):
            reading.not_taken.append(Skipped(line, "local-user", (
                "%s is a short key ID, which caff does not accept here either (it is not "
                "one of your keyid entries), and anyone can make a key with the same "
                "one; give the fingerprint" % item)))
        else:
            kept.append(item)
    return kept


def _mailer_send_reason(value: object) -> str:
    # Never quote the value: it can hold an SMTP login and password.
    method = _as_text(value[0]) if isinstance(value, list) and value else ""
    if isinstance(value, list) and not value:
        return "empty, which is caff's default; caffpy hands mail to sendmail"
    if method == "sendmail":
        return ("caffpy always hands mail to the program of the sendmail setting, as "
                "sendmail -oi -f YOUR-EMAIL -- ADDRESS, one recipient per call; these "
                "arguments are not needed")
    if method in ("smtp", "smtps"):
        return ("caffpy does not talk SMTP itself: it hands mail to sendmail. Let your MTA "
                "relay through this server (for example msmtp-mta; see caffpy doctor and "
                "README.Debian); its login and password are not copied")
    return "caffpy hands mail to sendmail only, not through Perl's Mail::Mailer"


def _take_env(reading: PerlReading, name: str, value: object, line: int) -> None:
    key = "$ENV{'%s'}" % name
    if name != "PERL_MAILERS":
        reading.not_taken.append(Skipped(line, key, (
            "caffpy does not change its environment from a configuration file; set %s "
            "in your shell instead" % name)))
        return
    if isinstance(value, list):
        reading.not_taken.append(Skipped(line, key, (
            "Perl turns an array assigned to %ENV into the text ARRAY(0x…), so caff never "
            "used this")))
        return
    entries = [entry for entry in _as_text(value).split(";")
               if entry.startswith("sendmail:")]
    program = entries[0][len("sendmail:"):] if entries else ""
    if not program or re.search(r"\s", program):
        reading.not_taken.append(Skipped(line, key, (
            "caffpy takes only a sendmail:PROGRAM entry without arguments from it, for "
            "its sendmail setting")))
        return
    reading.values["sendmail"], reading.lines["sendmail"] = program, line
    reading.sources["sendmail"] = key
    reading.notes.append(Skipped(line, key, (
        "taken as sendmail = %s, which caffpy runs with -oi -f YOUR-EMAIL -- ADDRESS"
        % program)))


# -- caff's Text::Template mail text --------------------------------------------------

# The {...} blocks caff writes into its generated ~/.caffrc (and close variants),
# and the caffpy text each one becomes. Any other block is Perl code: not taken.
_PLURAL_TEST = (r"(?:scalar\s*\(\s*@uids\s*\)|scalar\s*@uids|@uids)\s*(?:>=\s*2|>\s*1)"
                r"\s*\?\s*(['\"])s\1\s*:\s*(['\"])\2")
_BLOCKS = [
    (re.compile(r"\s*\$(key|owner)\s*;?\s*"), None),
    (re.compile(r"\s*(?:\(\s*%s\s*\)|%s)\s*;?\s*"
                % (_PLURAL_TEST, _PLURAL_TEST.replace(r"\1", r"\3").replace(r"\2", r"\4"))),
     "plural"),
    (re.compile(r"\s*for(?:each)?\s+(?:my\s+)?\$uid\s*\(\s*@uids\s*\)\s*\{\s*\$OUT\s*\.=\s*"
                r"(?:\"\\t\"\s*\.\s*\$uid\s*\.\s*\"\\n\"|\"\\t\$uid\\n\")\s*;?\s*\}\s*;?\s*"),
     "uids"),
]


def translate_template(source: str) -> str:
    """caff's mail template in caffpy's template language; Unsupported if it runs other code."""
    out, i = [], 0
    while i < len(source):
        char = source[i]
        if char == "\\" and source[i + 1:i + 2] in ("{", "}"):
            raise Unsupported("the mail template escapes a brace with a backslash, which "
                               "caffpy does not translate")
        if char == "}":
            raise Unsupported("the mail template has a } without its {")
        if char == "{":
            end = _block_end(source, i)
            out.append(_translate_block(source[i + 1:end], source[end + 1:end + 2]))
            i = end + 1
            continue
        out.append("$$" if char == "$" else char)    # a literal $ in caffpy's language
        i += 1
    return "".join(out)


def _block_end(source: str, start: int) -> int:
    # Text::Template pairs braces by counting, without looking into the Perl code.
    depth = 0
    for i in range(start, len(source)):
        depth += (source[i] == "{") - (source[i] == "}")
        if depth == 0:
            return i
    raise Unsupported("the mail template has a { without its }")


def _translate_block(code: str, following: str) -> str:
    for pattern, name in _BLOCKS:
        match = pattern.fullmatch(code)
        if match:
            name = name or match.group(1)
            if name == "uids":                  # caff's loop ends every UID with a newline
                return "$uids\n"
            # ${name} when a letter follows, so that it is not read as a longer name
            return "${%s}" % name if re.match(r"\w", following) else "$" + name
    raise Unsupported("the mail template runs Perl code caffpy does not run: {%s}; caffpy "
                       "uses its built-in text. Write it with $owner, $key, $fingerprint, "
                       "$uids and $plural instead (caffrc(5), MAIL TEMPLATE)"
                       % _snippet(code, 50))
