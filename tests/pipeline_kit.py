"""Running the real caffpy pipeline against throwaway gpg homes, a fake sendmail and
hostile keys (helpers for test_hostile.py and test_keyserver.py).

A Stage is one generated party (caffpy.demo.make_party: a signer with two keys
and a few ordinary participants) plus a recording sendmail, a caffrc pointing
at it, and helpers to add keys, run `python3 -m caffpy`, read the mails back,
decrypt them and look inside. Every gpg home has a short path under /tmp
(agent sockets are length-limited) and Stage.close() stops every agent and
dirmngr it may have started.
"""

import email
import email.policy
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from caffpy import demo

import crafting

PYTHON = "/usr/bin/python3"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNER_EMAIL = "signer@example.org"      # what demo.write_config puts in caffrc

# Records its argv and the message in a JSON file per call and exits with
# $FAKE_SENDMAIL_STATUS (0 by default): the tests see exactly what an MTA would get.
SENDMAIL_SCRIPT = """#!%s
import json, os, sys, tempfile
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sent")
os.makedirs(out, exist_ok=True)
data = sys.stdin.buffer.read()
fd, path = tempfile.mkstemp(dir=out, prefix="%%.6f-" %% __import__("time").time(), suffix=".json")
with os.fdopen(fd, "w") as handle:
    json.dump({"argv": sys.argv[1:], "data": data.decode("latin-1")}, handle)
sys.exit(int(os.environ.get("FAKE_SENDMAIL_STATUS", "0")))
""" % PYTHON

# What must never reach a terminal or a file name raw (security notes T10).
RAW_CONTROLS = [b"\x1b", b"\r", b"\x00", "\u202e".encode(), "\u2028".encode(),
                "\u0085".encode(), b"\x07", b"\x08"]


def short_tempdir() -> str:
    return tempfile.mkdtemp(prefix="cp-", dir="/tmp")


def gpg(home: str, *args, input: bytes = b"", check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--homedir", home] + demo.QUIET + list(args), input=input,
                          capture_output=True, check=check, timeout=120)


def stop_agents(home: str) -> None:
    if os.path.isdir(home):
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True,
                       timeout=60)


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).decode("utf-8", "replace")

    def lines(self) -> List[str]:
        return self.output.split("\n")


@dataclass
class Sent:
    """One call of the fake sendmail."""
    argv: List[str]
    data: bytes

    @property
    def recipient(self) -> str:
        assert self.argv[-2] == "--", self.argv
        return self.argv[-1]


def gpg_mbox_uids(home: str, fingerprint: str, address: str) -> List[bytes]:
    """The UIDs of a key that gpg itself attributes to `address` (its mbox reading).

    Uses gpg's export filter, so the oracle is gpg, not caffpy's re-implementation.
    An A-label domain is given to gpg in its Unicode form, as gpg keeps it.
    """
    local, _, domain = address.partition("@")
    domain = ".".join(label.encode("ascii").decode("idna") if label.startswith("xn--")
                      else label for label in domain.split("."))
    out = gpg(home, "--export-filter", "keep-uid=mbox = %s@%s" % (local, domain),
              "--export", "--", fingerprint).stdout
    return [body for tag, body in crafting.split_packets(out) if tag == crafting.TAG_USER_ID]


class Stage:
    """A party, a caffrc with a recording sendmail, and a caffhome, all under one /tmp dir."""

    def __init__(self, participants: int = 1, extra_config: str = ""):
        self.base = short_tempdir()
        self.homes = []
        try:
            self.party = demo.make_party(self.base, participants)
        finally:
            self.homes += [os.path.join(self.base, "u"), os.path.join(self.base, "p")]
        self.homes.append(os.path.join(self.base, "c", "gnupghome"))
        self.sendmail_dir = os.path.join(self.base, "mta")
        os.makedirs(self.sendmail_dir)
        self.sendmail = os.path.join(self.sendmail_dir, "sendmail")
        with open(self.sendmail, "w") as handle:
            handle.write(SENDMAIL_SCRIPT)
        os.chmod(self.sendmail, 0o755)
        self.config = demo.write_config(self.party, self.sendmail, extra_config)
        self.crafted: Dict[str, crafting.CraftedKey] = {}

    # -- paths ----------------------------------------------------------------------
    @property
    def caffhome(self) -> str:
        return os.path.join(self.base, "c")

    @property
    def caff_gnupghome(self) -> str:
        return os.path.join(self.caffhome, "gnupghome")

    @property
    def participants_home(self) -> str:
        return self.party.participants_home

    def path(self, name: str) -> str:
        return os.path.join(self.base, name)

    # -- keys -----------------------------------------------------------------------
    def generate(self, names: Sequence[str]) -> List[str]:
        """Ordinary keys (ed25519 + cv25519) '<name> <name-lowercased@example.org>', in
        the participants' home; returns their fingerprints in order."""
        lines = []
        for name in names:
            lines += ["%no-protection", "Key-Type: eddsa", "Key-Curve: ed25519",
                      "Key-Usage: cert,sign", "Subkey-Type: ecdh", "Subkey-Curve: cv25519",
                      "Subkey-Usage: encrypt", "Name-Real: %s" % name,
                      "Name-Email: %s@example.org" % name.lower().replace(" ", "."),
                      "Expire-Date: 0", "%commit"]
        gpg(self.participants_home, "--gen-key", input=("\n".join(lines) + "\n").encode())
        fprs = []
        for name in names:
            listing = gpg(self.participants_home, "--with-colons", "--fixed-list-mode",
                          "--list-keys", "--", "<%s@example.org>"
                          % name.lower().replace(" ", ".")).stdout
            fprs.append(next(line.split(":")[9] for line in listing.decode().split("\n")
                             if line.startswith("fpr:")))
        return fprs

    def add_uid(self, fingerprint: str, uid) -> subprocess.CompletedProcess:
        """gpg --quick-add-uid (uid as str or bytes); the caller checks the outcome."""
        return gpg(self.participants_home, "--quick-add-uid", fingerprint, uid, check=False)

    def add_crafted(self, key: crafting.CraftedKey) -> None:
        """Make a crafted key's secret part known, so mails to it can be decrypted."""
        # gpg exits 2 when it drops part of a key (an over-long UID): the listing decides.
        gpg(self.participants_home, "--import", input=key.secret_armored(), check=False)
        gpg(self.participants_home, "--list-secret-keys", "--", key.fingerprint)
        self.crafted[key.fingerprint] = key

    def export(self, fingerprints: Sequence[str], armor: bool = True) -> bytes:
        return gpg(self.participants_home, *(["--armor"] if armor else []), "--export", "--",
                   *fingerprints).stdout

    def write(self, name: str, data: bytes) -> str:
        path = self.path(name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    # -- running caffpy ----------------------------------------------------------------
    def env(self, **extra) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GNUPG", "CAFFPY"))}
        env.update(HOME=self.base, GNUPGHOME=self.party.user_home,
                   CAFFPY_CONFIG_FILES=self.config, PYTHONPATH=REPO, LC_ALL="C.UTF-8",
                   PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 300, env: Optional[dict] = None) -> Result:
        start = time.monotonic()
        proc = subprocess.run([PYTHON, "-m", "caffpy"] + list(args), env=env or self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              cwd=self.base)
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def certify_and_mail(self, fingerprints: Sequence[str], key_files: Sequence[str],
                         download: bool = False, timeout: float = 300) -> Result:
        """caffpy --batch -m yes [-R] --key-file FILE... FPR..."""
        args = ["--batch", "-m", "yes"] + ([] if download else ["-R"])
        for path in key_files:
            args += ["--key-file", path]
        return self.run(*(args + list(fingerprints)), timeout=timeout)

    # -- what came out -------------------------------------------------------------------
    def mails(self) -> List[Sent]:
        folder = os.path.join(self.sendmail_dir, "sent")
        if not os.path.isdir(folder):
            return []
        out = []
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as handle:
                record = json.load(handle)
            out.append(Sent(record["argv"], record["data"].encode("latin-1")))
        return out

    def decrypt(self, mail: Sent) -> email.message.EmailMessage:
        """The inner (decrypted) MIME message of a PGP/MIME mail caffpy sent."""
        outer = email.message_from_bytes(mail.data, policy=email.policy.default)
        assert outer.get_content_type() == "multipart/encrypted", outer.get_content_type()
        encrypted = outer.get_payload()[1].get_payload(decode=True)
        plain = gpg(self.participants_home, "--decrypt", input=encrypted).stdout
        return email.message_from_bytes(plain, policy=email.policy.default)

    def attached_keys(self, mail: Sent) -> List[List[tuple]]:
        """(tag, body) packets of each key attached to a mail (decrypted first)."""
        inner = self.decrypt(mail)
        return [crafting.split_packets(crafting.dearmor(part.get_payload(decode=True)))
                for part in inner.walk() if part.get_content_type() == "application/pgp-keys"]

    def signer_key_ids(self) -> List[str]:
        return [fpr[-16:] for fpr in self.party.signers]

    def saved_files(self) -> List[str]:
        """Every path under caffhome/keys, relative to it."""
        root = os.path.join(self.caffhome, "keys")
        out = []
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                out.append(os.path.relpath(os.path.join(folder, name), root))
        return out

    def close(self) -> None:
        for home in self.homes:
            stop_agents(home)
        shutil.rmtree(self.base, ignore_errors=True)


def issuers(packets: List[tuple]) -> List[str]:
    """Issuer key IDs (upper-case hex) of the signature packets in a list of packets."""
    out = []
    for tag, body in packets:
        if tag != crafting.TAG_SIGNATURE or body[0] != 4:
            continue
        hashed_len = int.from_bytes(body[4:6], "big")
        areas = [body[6:6 + hashed_len]]
        rest = 6 + hashed_len
        areas.append(body[rest + 2:rest + 2 + int.from_bytes(body[rest:rest + 2], "big")])
        issuer = ""
        for area in areas:
            i = 0
            while i < len(area) and not issuer:
                first = area[i]
                if first < 192:
                    length, i = first, i + 1
                elif first < 255:
                    length, i = ((first - 192) << 8) + area[i + 1] + 192, i + 2
                else:
                    length, i = int.from_bytes(area[i + 1:i + 5], "big"), i + 5
                kind, data = area[i] & 0x7F, area[i + 1:i + length]
                if kind == crafting.SUB_ISSUER:
                    issuer = data.hex().upper()
                elif kind == crafting.SUB_ISSUER_FPR:
                    issuer = data[1:].hex().upper()[-16:]
                i += length
        out.append(issuer)
    return out
