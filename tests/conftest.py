"""Fixtures and helpers shared by the caffpy tests.

Everything is real: gpg 2.2 in throwaway homes under /tmp (short paths: the
gpg-agent socket path is length-limited), caffpy run as a subprocess with an
explicit environment, mails parsed with the email package and decrypted with
the participant's secret key. The only stand-in is a fake sendmail program
that records what it is given (the real-MTA proof lives elsewhere).

Nothing here reads /etc/caffrc, ~/.caffrc or ~/.gnupg: every run gets its
own HOME, GNUPGHOME and CAFFPY_CONFIG_FILES.
"""

import collections
import dataclasses
import datetime
import email
import email.policy
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from caffpy import demo  # noqa: E402

PYTHON = "/usr/bin/python3"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SIGNER_EMAIL = "signer@example.org"

# Every directory and gpg home the tests create, cleaned up at the end.
_DIRS: List[str] = []
_GPG_HOMES: List[str] = []


def new_dir() -> str:
    """A fresh directory with a short path (gpg-agent sockets live in gpg homes)."""
    path = tempfile.mkdtemp(prefix="cp-", dir="/tmp")
    _DIRS.append(path)
    return path


def register_gpg_home(path: str) -> str:
    """Remember a gpg home so that any agent started in it is stopped at the end."""
    _GPG_HOMES.append(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _cleanup():
    yield
    for home in _GPG_HOMES:
        if os.path.isdir(home):
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                           capture_output=True, timeout=30)
    if not os.environ.get("CAFFPY_TEST_KEEP"):
        for path in _DIRS:
            shutil.rmtree(path, ignore_errors=True)


# -- gpg -----------------------------------------------------------------------

def gpg(home: str, *args: str, input: bytes = b"") -> bytes:
    """Run gpg in a home directory; raises on failure; returns stdout."""
    return demo.gpg(home, *args, input=input)


@dataclass
class Pkt:
    """One packet as `gpg --list-packets` shows it."""

    kind: str                       # 'public key', 'user ID', 'signature', 'attribute', ...
    keyid: str = ""                 # key packets: the key's ID; signatures: the issuer
    sigclass: Optional[int] = None  # signatures only
    text: str = ""                  # user ID packets: the UID text


_PACKET_HEADER = re.compile(r"^:(.+?) packet:(.*)$")
_ESCAPED = re.compile(rb"\\x([0-9a-fA-F]{2})")


def list_packets(armored) -> List[Pkt]:
    """The packets of an (armored) OpenPGP key, read by `gpg --list-packets`."""
    if isinstance(armored, str):
        armored = armored.encode("ascii")
    home = scratch_gpg_home()
    out = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", "--list-packets"],
                         input=armored, capture_output=True, check=True, timeout=60).stdout
    packets: List[Pkt] = []
    for line in out.split(b"\n"):
        header = _PACKET_HEADER.match(line.decode("ascii", "replace"))
        if header:
            kind, rest = header.group(1), line.split(b" packet:", 1)[1]
            packet = Pkt(kind)
            if kind == "signature":
                packet.keyid = re.search(rb"keyid ([0-9A-F]+)", rest).group(1).decode()
            elif kind == "user ID":
                quoted = rest.strip()[1:-1]
                packet.text = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]),
                                           quoted).decode("utf-8")
            packets.append(packet)
        elif packets and line.startswith(b"\t"):
            detail = line.decode("ascii", "replace")
            if packets[-1].kind in ("public key", "public sub key") and "keyid:" in detail:
                packets[-1].keyid = detail.split("keyid:")[1].strip()
            sigclass = re.search(r"sigclass 0x([0-9a-f]{2})", detail)
            if sigclass and packets[-1].kind == "signature":
                packets[-1].sigclass = int(sigclass.group(1), 16)
    return packets


_SCRATCH_HOME: List[str] = []


def scratch_gpg_home() -> str:
    """An empty gpg home for commands that need no keys (--list-packets, --enarmor)."""
    if not _SCRATCH_HOME:
        path = os.path.join(new_dir(), "g")
        os.mkdir(path, 0o700)
        _SCRATCH_HOME.append(register_gpg_home(path))
    return _SCRATCH_HOME[0]


def keyring_signatures(caffhome: str) -> List[str]:
    """caffpy's keyring as `gpg --check-sigs --with-colons` shows it (keys, UIDs, signatures)."""
    home = os.path.join(caffhome, "gnupghome")
    if not os.path.isdir(home):
        return []
    out = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty",
                          "--trust-model", "always", "--no-auto-check-trustdb",
                          "--with-colons", "--check-sigs"],
                         capture_output=True, check=True, timeout=60).stdout
    return [line for line in out.decode("utf-8", "replace").split("\n")
            if line.split(":")[0] in ("pub", "fpr", "uid", "uat", "sub", "sig", "rev")]


def certifications_by(caffhome: str, signer_fprs: Sequence[str]) -> List[Tuple[str, str]]:
    """(certified key's long ID, issuer) for each certification in caffpy's keyring made
    by one of signer_fprs on a key other than the signer's own."""
    signers = [s[-16:] for s in signer_fprs]
    found, current = [], None
    for line in keyring_signatures(caffhome):
        fields = line.split(":")
        if fields[0] == "pub":
            current = fields[4]
        elif fields[0] == "sig" and fields[4] in signers and fields[4] != current:
            found.append((current, fields[4]))
    return found


def certifications_per_uid(caffhome, signers):
    """(key, UID hash, signer) -> how many certifications caffpy's keyring holds."""
    counts = collections.Counter()
    key = uid = None
    for line in keyring_signatures(caffhome):
        fields = line.split(":")
        if fields[0] == "pub":
            key = fields[4]
        elif fields[0] in ("uid", "uat"):
            uid = fields[7]
        elif fields[0] == "sub":
            uid = None
        elif fields[0] == "sig" and uid and fields[4] in signers and fields[4] != key:
            counts[(key, uid, fields[4])] += 1
    return counts


# -- the party -------------------------------------------------------------------

@dataclass
class ThirdParty:
    """A key that is not at the party but has certified one participant's key."""

    fingerprint: str
    public_key: bytes
    certified: str          # fingerprint of the participant it certified


def participant(party: demo.Party, kind: str) -> demo.Participant:
    return next(p for p in party.participants if p.kind == kind)


@pytest.fixture(scope="session")
def party_and_third_party():
    """make_party's full mix, plus a third-party certification on the 'multi' key."""
    base = new_dir()
    party = demo.make_party(base, len(demo.KINDS))
    register_gpg_home(party.user_home)
    register_gpg_home(party.participants_home)
    trent_home = register_gpg_home(demo.new_home(base, "t"))
    gpg(trent_home, "--quick-gen-key", "Trent Thirdparty <trent@example.net>",
        "ed25519", "cert,sign", "never")
    trent = demo._fingerprint_of(trent_home, "trent@example.net")
    victim = participant(party, "multi").fingerprint
    gpg(trent_home, "--import", input=gpg(party.participants_home, "--export", victim))
    gpg(trent_home, "--local-user", trent + "!", "--quick-sign-key", victim)
    gpg(party.participants_home, "--import", input=gpg(trent_home, "--export", victim))
    with open(party.key_file, "wb") as handle:
        handle.write(gpg(party.participants_home, "--armor", "--export", "--",
                         *party.fingerprints))
    yield party, ThirdParty(trent, gpg(trent_home, "--export", trent), victim)


@pytest.fixture(scope="session")
def party(party_and_third_party) -> demo.Party:
    return party_and_third_party[0]


@pytest.fixture(scope="session")
def third_party(party_and_third_party) -> ThirdParty:
    return party_and_third_party[1]


# -- fake sendmail -----------------------------------------------------------------

FAKE_SENDMAIL = r'''#!/usr/bin/python3
"""Fake sendmail for the tests: records argv, stdin and what was on disk, then exits
with the status control.json asks for."""
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "control.json")) as f:
    control = json.load(f)
calls = os.path.join(here, "calls")
os.makedirs(calls, exist_ok=True)
number = 0
while True:
    try:
        fd = os.open(os.path.join(calls, "%04d.json" % number),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        break
    except FileExistsError:
        number += 1
message = sys.stdin.buffer.read()
snapshot = {}
if control.get("snapshot"):
    for root, dirs, files in os.walk(control["snapshot"]):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    snapshot[os.path.relpath(path, control["snapshot"])] = \
                        f.read().decode("latin-1")
            except FileNotFoundError:     # a temporary file renamed meanwhile
                pass
if control.get("block") and control["block"] in sys.argv[1:]:
    open(os.path.join(here, "waiting"), "w").close()
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(here, "release")) and time.time() < deadline:
        time.sleep(0.05)
status, said = control.get("status", 0), control.get("stderr", "")
for address, (code, text) in control.get("fail", {}).items():
    if address in sys.argv[1:]:
        status, said = code, text
with open(os.path.join(calls, "%04d.eml" % number), "wb") as f:
    f.write(message)
with os.fdopen(fd, "w") as f:
    json.dump({"argv": sys.argv[1:], "status": status, "files": snapshot}, f)
sys.stderr.write(said)
sys.exit(status)
'''


@dataclass
class Call:
    """One recorded sendmail call."""

    argv: List[str]
    message: bytes
    status: int
    files: Dict[str, str]      # the snapshot directory at call time: path -> latin-1 text

    @property
    def recipient(self) -> str:
        return self.argv[-1]

    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.message, policy=email.policy.default)


class FakeSendmail:
    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, "sendmail")
        os.makedirs(directory, exist_ok=True)
        with open(self.path, "w") as handle:
            handle.write(FAKE_SENDMAIL)
        os.chmod(self.path, 0o755)
        self.control()

    def control(self, status: int = 0, stderr: str = "", fail: Optional[Dict] = None,
                block: str = "", snapshot: str = "") -> None:
        """Exit status for every call, or fail={address: (status, stderr text)}.

        block: the call for this address waits until a file 'release' appears
        (it creates 'waiting' first); snapshot: a directory whose files each
        call records, to show what was on disk when the mail was handed over.
        """
        with open(os.path.join(self.directory, "control.json"), "w") as handle:
            json.dump({"status": status, "stderr": stderr, "fail": fail or {},
                       "block": block, "snapshot": snapshot}, handle)

    def calls(self) -> List[Call]:
        calls_dir = os.path.join(self.directory, "calls")
        result = []
        for name in sorted(os.listdir(calls_dir)) if os.path.isdir(calls_dir) else []:
            if name.endswith(".json"):
                with open(os.path.join(calls_dir, name)) as handle:
                    record = json.load(handle)
                with open(os.path.join(calls_dir, name[:-5] + ".eml"), "rb") as handle:
                    message = handle.read()
                result.append(Call(record["argv"], message, record["status"], record["files"]))
        return result

    def sent(self) -> List[Call]:
        """The calls the fake MTA accepted (exit status 0)."""
        return [c for c in self.calls() if c.status == 0]


@pytest.fixture
def fake_sendmail():
    """Factory: fake_sendmail() -> a new FakeSendmail in a fresh directory."""
    return lambda: FakeSendmail(os.path.join(new_dir(), "mta"))


# -- running caffpy -----------------------------------------------------------------

def run_caffpy(args: Sequence[str], env: Dict[str, str], stdin: Optional[bytes] = None,
               timeout: float = 120):
    """Run `python3 -m caffpy ARGS`; returns (exit status, stdout, stderr) as text.

    A session of its own (no controlling terminal): a question caffpy should not
    ask makes it fail instead of hanging on the terminal.
    """
    proc = subprocess.run([PYTHON, "-m", "caffpy"] + list(args), env=env, cwd=REPO,
                          input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout, start_new_session=True)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def summary_has(err: str, *words: str) -> bool:
    """Whether one line of caffpy's end-of-run summary (on stderr) holds all the words."""
    summary = err[err.index("Summary:"):] if "Summary:" in err else ""
    return any(all(word in line for word in words) for line in summary.split("\n"))


def base_env(home: str, gnupghome: str, config_files: str) -> Dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "GNUPGHOME": gnupghome,
            "CAFFPY_CONFIG_FILES": config_files, "LANG": "C.UTF-8", "TZ": "UTC",
            "LOGNAME": "tester"}


@dataclass
class Caff:
    """One user's caffpy setup: HOME, caffhome, ~/.caffrc and a fake sendmail."""

    party: demo.Party
    base: str
    home: str
    caffhome: str
    config: str
    sendmail: FakeSendmail
    env: Dict[str, str] = field(default_factory=dict)

    def write_config(self, extra: str = "", sendmail: Optional[str] = None) -> str:
        """(Re)write the user's config through demo.write_config, with this caffhome."""
        written = demo.write_config(dataclasses.replace(self.party, base=self.base),
                                    sendmail=sendmail or self.sendmail.path, extra=extra)
        os.replace(written, self.config)
        return self.config

    def run(self, *args: str, stdin: Optional[bytes] = None):
        return run_caffpy(args, self.env, stdin)

    def run_party(self, *args: str, fingerprints: Optional[Sequence[str]] = None,
                  mail: str = "yes"):
        """caffpy --batch -m MAIL -R --key-file party.asc [ARGS] FPR..."""
        fprs = self.party.fingerprints if fingerprints is None else fingerprints
        return self.run("--batch", "-m", mail, "-R", "--key-file", self.party.key_file,
                        *args, *fprs)

    def day_dir(self) -> str:
        return os.path.join(self.caffhome, "keys", datetime.date.today().isoformat())


def new_caff(party: demo.Party, extra: str = "") -> Caff:
    base = new_dir()
    home = os.path.join(base, "h")
    os.mkdir(home, 0o700)
    caffhome = os.path.join(base, "c")
    register_gpg_home(os.path.join(caffhome, "gnupghome"))
    caff = Caff(party, base, home, caffhome, os.path.join(home, ".caffrc"),
                FakeSendmail(os.path.join(base, "mta")))
    caff.write_config(extra)
    caff.env = base_env(home, party.user_home, caff.config)
    return caff


def read_terminal(master: int, timeout: float, respond=None) -> bytes:
    """What a pseudo-terminal shows until the program on it has ended and closed it;
    respond(shown so far) runs after each chunk and may write answers to master.
    AssertionError, with what it showed, when the program does not end in time."""
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.5)[0]:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the program has ended and closed the terminal
            return shown
        if not chunk:
            return shown
        shown += chunk
        if respond is not None:
            respond(shown)
    raise AssertionError("the program did not end; the terminal showed:\n%s"
                         % shown.decode("utf-8", "replace"))


def use_gpg_wrapper(caff: Caff, template: str, config: str = "", **fields: str) -> str:
    """Make caff's config (with the settings in config) run gpg through a shell
    script, template % fields, which can record calls in the log file it gets as
    %(log)s; returns that log's path."""
    log = os.path.join(caff.base, "gpg.log")
    wrapper = os.path.join(caff.base, "gpg-wrapper")
    with open(wrapper, "w") as handle:
        handle.write(template % dict(fields, log=log))
    os.chmod(wrapper, 0o755)
    caff.write_config("gpg = %s\n%s" % (wrapper, config))
    return log


@pytest.fixture
def caff(party) -> Caff:
    """A fresh caffpy user (own HOME, caffhome and config) for the session's party."""
    return new_caff(party)


# -- mails -----------------------------------------------------------------------------

def decrypt(party: demo.Party, message: email.message.Message) -> email.message.EmailMessage:
    """Decrypt an RFC 3156 mail with the participants' secret keys; the inner MIME entity."""
    parts = message.get_payload()
    ciphertext = parts[1].get_payload(decode=True)
    plain = gpg(party.participants_home, "--decrypt", input=ciphertext)
    return email.message_from_bytes(plain, policy=email.policy.default)


def key_attachments(inner: email.message.Message) -> List[str]:
    """The armored keys attached to a (decrypted) multipart/mixed mail."""
    return [part.get_payload(decode=True).decode("ascii")
            for part in inner.iter_parts() if part.get_content_type() == "application/pgp-keys"]
