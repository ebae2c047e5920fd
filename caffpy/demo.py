"""A generated keysigning party, for `make demo`, the tests and the benchmark.

Keys are without passphrase, made in throwaway GNUPGHOMEs with short paths
(gpg-agent's socket path is length-limited): ed25519/cv25519 (fast to make),
and RSA 3072 (gpg 2.2's default) for one kind in eight. The mix covers what a
real party brings: several user IDs, a revoked one, a user ID without address,
a photo ID, a sign-only key, an expired key, RSA and non-ASCII names.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List

from caffpy.colons import parse_keys

GPG = "gpg"
QUIET = ["--batch", "--no-tty", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
# The smallest file gpg accepts as a JPEG photo ID.
TINY_JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
             b"\xff\xd9")
FIRST_NAMES = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi",
               "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil"]
# The kinds of participant, in the order they repeat.
KINDS = ["multi", "noaddr", "signonly", "expired", "photo", "plain", "unicode", "rsa"]


@dataclass
class Participant:
    kind: str
    name: str
    fingerprint: str = ""
    mailable: List[str] = field(default_factory=list)   # addresses that must get a mail
    other_uids: List[str] = field(default_factory=list)  # revoked or address-less UIDs


@dataclass
class Party:
    base: str
    user_home: str            # the signer's GNUPGHOME
    participants_home: str    # holds every participant's secret key (to decrypt mails)
    key_file: str
    signers: List[str] = field(default_factory=list)
    participants: List[Participant] = field(default_factory=list)

    @property
    def fingerprints(self) -> List[str]:
        return [p.fingerprint for p in self.participants]

    def expected_mails(self) -> Dict[str, str]:
        """address -> fingerprint, for every mail a run must produce."""
        return {a: p.fingerprint for p in self.participants for a in p.mailable}


def gpg(home: str, *args: str, input: bytes = b"") -> bytes:
    return subprocess.run([GPG, "--homedir", home] + QUIET + list(args), input=input,
                          capture_output=True, check=True).stdout


def new_home(base: str, name: str) -> str:
    path = os.path.join(base, name)
    os.makedirs(path, mode=0o700)
    return path


def _batch_keys(home: str, specs: List[dict]) -> None:
    """Generate many keys in one gpg process (a parameter file with several %commit)."""
    lines = []
    for spec in specs:
        if spec.get("rsa"):         # gpg 2.2's default key: RSA 3072 with an RSA subkey
            lines += ["%no-protection", "Key-Type: rsa", "Key-Length: 3072",
                      "Key-Usage: cert,sign", "Subkey-Type: rsa", "Subkey-Length: 3072",
                      "Subkey-Usage: encrypt"]
        else:
            lines += ["%no-protection", "Key-Type: eddsa", "Key-Curve: ed25519",
                      "Key-Usage: cert,sign"]
        if spec.get("encrypt", True) and not spec.get("rsa"):
            lines += ["Subkey-Type: ecdh", "Subkey-Curve: cv25519", "Subkey-Usage: encrypt"]
        lines += ["Name-Real: %s" % spec["name"]]
        if spec.get("email"):
            lines += ["Name-Email: %s" % spec["email"]]
        lines += ["Expire-Date: 0", "%commit"]
    gpg(home, "--gen-key", input=("\n".join(lines) + "\n").encode("utf-8"))


def _fingerprint_of(home: str, email: str) -> str:
    keys = parse_keys(gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys",
                          "--", "<%s>" % email))
    return keys[0].fingerprint


def make_party(base: str, count: int = 7) -> Party:
    """Generate a signer with two keys and `count` participants (deterministic names)."""
    party = Party(base=base, user_home=new_home(base, "u"),
                  participants_home=new_home(base, "p"), key_file=os.path.join(base, "party.asc"))
    _batch_keys(party.user_home, [
        {"name": "Demo Signer", "email": "signer@example.org"},
        {"name": "Demo Signer (second key)", "email": "signer2@example.org"}])
    party.signers = [_fingerprint_of(party.user_home, "signer@example.org"),
                     _fingerprint_of(party.user_home, "signer2@example.org")]

    specs, plans = [], []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        name = "%s Example%d" % (first, index) if kind != "unicode" else \
            "Jürgen Ærø Exämple%d" % index
        email = "%s%d@example.org" % (first.lower(), index)
        participant = Participant(kind, name)
        if kind == "expired":
            plans.append((participant, email))
            continue        # made below, in the past
        specs.append({"name": name, "email": email, "encrypt": kind != "signonly",
                      "rsa": kind == "rsa"})
        participant.mailable.append(email)
        plans.append((participant, email))
    _batch_keys(party.participants_home, specs)

    home = party.participants_home
    for participant, email in plans:
        if participant.kind == "expired":
            gpg(home, "--faked-system-time", "20200101T000000!", "--quick-gen-key",
                "%s <%s>" % (participant.name, email), "ed25519", "cert,sign", "1y")
            participant.fingerprint = _fingerprint_of(home, email)
            participant.other_uids.append(email)
            party.participants.append(participant)
            continue
        fpr = participant.fingerprint = _fingerprint_of(home, email)
        if participant.kind == "multi":
            second = email.replace("@", ".work@")
            revoked = email.replace("@", ".old@")
            gpg(home, "--quick-add-uid", fpr, "%s <%s>" % (participant.name, second))
            gpg(home, "--quick-add-uid", fpr, "%s <%s>" % (participant.name, revoked))
            gpg(home, "--quick-revoke-uid", fpr, "%s <%s>" % (participant.name, revoked))
            participant.mailable.append(second)
            participant.other_uids.append(revoked)
        elif participant.kind == "noaddr":
            gpg(home, "--quick-add-uid", fpr, participant.name)
            participant.other_uids.append(participant.name)
        elif participant.kind == "photo":
            jpeg = os.path.join(base, "photo.jpg")
            with open(jpeg, "wb") as handle:
                handle.write(TINY_JPEG)
            subprocess.run([GPG, "--homedir", home, "--batch", "--no-tty", "--command-fd", "0",
                            "--edit-key", fpr],
                           input=("addphoto\n%s\nsave\n" % jpeg).encode(), capture_output=True, check=True)
        party.participants.append(participant)
    with open(party.key_file, "wb") as handle:
        handle.write(gpg(home, "--armor", "--export", "--", *party.fingerprints))
    return party


def write_config(party: Party, sendmail: str = "/usr/sbin/sendmail", extra: str = "") -> str:
    path = os.path.join(party.base, "caffrc")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("owner = Demo Signer\nemail = signer@example.org\n"
                     "keyid = %s\ncaffhome = %s\nsendmail = %s\n%s"
                     % (", ".join(party.signers), os.path.join(party.base, "c"), sendmail, extra))
    return path


def stop_agents(party: Party) -> None:
    for home in (party.user_home, party.participants_home,
                 os.path.join(party.base, "c", "gnupghome")):
        if os.path.isdir(home):
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                           capture_output=True)


def main(argv=None) -> int:
    """make demo: a party of eight, certified and 'mailed' into an mbox."""
    parser = argparse.ArgumentParser(description="Run caffpy on a generated demo party.")
    parser.add_argument("--keys", type=int, default=len(KINDS))
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="cp-demo-", dir="/tmp")
    print("Generating a demo party of %d keys in %s ..." % (args.keys, base))
    party = make_party(base, args.keys)
    config = write_config(party)
    mbox = os.path.join(base, "mails.mbox")
    env = dict(os.environ, GNUPGHOME=party.user_home, CAFFPY_CONFIG_FILES=config)
    cmd = [sys.executable, "-m", "caffpy", "--batch", "-m", "yes", "-R",
           "--key-file", party.key_file, "--mbox", mbox] + party.fingerprints
    print("Running:", " ".join(cmd[:9]), "FPR...")
    status = subprocess.call(cmd, env=env)
    stop_agents(party)
    print("\ncaffpy exited with status %d." % status)
    print("The mails (encrypted to each participant) are in:  %s" % mbox)
    print("Read them with:  mutt -f %s   (or any mail reader)" % mbox)
    print("Saved keys and messages:  %s" % os.path.join(base, "c", "keys"))
    print("The participants' secret keys are in %s: with GNUPGHOME=%s a mail reader "
          "decrypts the mails as their recipients would." % (party.participants_home,
                                                             party.participants_home))
    return status


if __name__ == "__main__":
    sys.exit(main())
