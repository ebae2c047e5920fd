"""Can mail leave this machine? A diagnosis of the local MTA, as any user, sending nothing.

Debian's default exim4 accepts every message (sendmail exits 0) and then
bounces it locally ("Mailing to remote domains not supported"); postfix
"Local only" and nullmailer without remotes do the same silently. So the
exit status of sendmail is no proof: this module reads each MTA's own
configuration and probes, and explains the fix for what it finds.
"""

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import List, Optional

DPKG_STATUS = "/var/lib/dpkg/status"
SENDMAIL = "/usr/sbin/sendmail"
PROBE_RECIPIENT = "caffpy-probe@example.net"   # never sent: only routed (-bt, --pretend)
STUCK_AFTER = 900                              # seconds in the queue that count as stuck

# Verdicts.
DELIVERABLE = "deliverable"
LOCAL_ONLY = "local-only"
NO_RELAY = "no relay configured"
NOT_RUNNING = "not running"
RELAY_IS_SELF = "relay is itself"
STUCK = "mail stuck in the queue"
UNKNOWN = "unknown"
NONE = "none"
BLOCKING = (LOCAL_ONLY, NO_RELAY, NOT_RUNNING, RELAY_IS_SELF, NONE)

MSMTP_FIX = ("install msmtp-mta (apt install msmtp-mta) and write ~/.msmtprc with an "
             "account for your mail provider's submission server (see "
             "/usr/share/doc/caffpy/README.Debian)")


@dataclass
class Diagnosis:
    package: Optional[str] = None       # the installed package providing mail-transport-agent
    sendmail: str = SENDMAIL
    sendmail_is: str = ""               # what the sendmail program really is
    verdict: str = UNKNOWN
    evidence: List[str] = field(default_factory=list)
    fix: str = ""
    warnings: List[str] = field(default_factory=list)

    @property
    def can_send(self) -> bool:
        return self.verdict == DELIVERABLE

    def report(self) -> str:
        lines = ["MTA package:   %s" % (self.package or "none installed"),
                 "%s is: %s" % (self.sendmail, self.sendmail_is or "missing"),
                 "verdict:       %s" % self.verdict]
        lines += ["  evidence: " + e for e in self.evidence]
        lines += ["  warning: " + w for w in self.warnings]
        if self.fix:
            lines.append("  fix: " + self.fix)
        return "\n".join(lines)


def installed_mta(status_file: str = DPKG_STATUS) -> Optional[str]:
    """The installed package that provides mail-transport-agent (removed ones do not count)."""
    from debian import deb822   # slow to import; only the MTA check needs it
    try:
        with open(status_file, encoding="utf-8", errors="replace") as handle:
            for package in deb822.Packages.iter_paragraphs(handle, use_apt_pkg=False):
                state = package.get("Status", "").split()
                if len(state) != 3 or state[2] != "installed":
                    continue     # "deinstall ok config-files" keeps its Provides
                for alternatives in package.relations["provides"]:
                    if any(rel["name"] == "mail-transport-agent" for rel in alternatives):
                        return package["Package"]
    except OSError:
        pass
    return None


def _run(cmd: List[str], timeout: int = 20):
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError) as error:
        return None, str(error)


def _read_kv(path: str) -> Optional[dict]:
    """KEY='value' lines (debconf-style files); None if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return {m.group(1): m.group(2) for m in
            re.finditer(r"^\s*(\w+)\s*=\s*'?([^'\n]*)'?\s*$", text, re.M)}


def _is_self(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    return host in ("localhost", "127.0.0.1", "::1", os.uname().nodename.lower())


def _direct_warning(email: Optional[str]) -> str:
    domain = email.partition("@")[2] if email else "your domain"
    return ("mail would go straight from this host to each recipient's mail server: "
            "providers often block outgoing port 25, and receivers reject or spam-folder "
            "mail for %s that does not come from %s's own servers; relay through your "
            "provider instead (%s)" % (domain, domain, MSMTP_FIX))


def diagnose(email: Optional[str] = None, sendmail: str = SENDMAIL,
             status_file: str = DPKG_STATUS) -> Diagnosis:
    found = Diagnosis(package=installed_mta(status_file), sendmail=sendmail)
    if os.path.lexists(sendmail):
        found.sendmail_is = os.path.realpath(sendmail)
    if not found.sendmail_is or not os.access(sendmail, os.X_OK):
        found.verdict = NONE
        found.fix = "no mail transport agent is installed: " + MSMTP_FIX
        return found
    real = found.sendmail_is
    package = found.package or ""
    if package.startswith("exim4") or real.endswith("/exim4"):
        _exim(found, email)
    elif package == "postfix":
        _postfix(found, email)
    elif package == "msmtp-mta" or real.endswith("/msmtp"):
        _msmtp(found, email)
    elif package == "nullmailer":
        _nullmailer(found)
    else:
        found.verdict = UNKNOWN
        found.evidence.append("caffpy has no checks for %s" % (package or real))
        found.fix = ("check by hand, for example with: caffpy doctor --send-test "
                     "an-address-of-yours@elsewhere")
    return found


def _exim(found: Diagnosis, email: Optional[str]) -> None:
    conf = _read_kv("/etc/exim4/update-exim4.conf.conf") or {}
    kind = conf.get("dc_eximconfig_configtype", "")
    smarthost = conf.get("dc_smarthost", "")
    if kind:
        found.evidence.append("dc_eximconfig_configtype='%s' in /etc/exim4/update-exim4.conf.conf"
                              % kind)
    code, out = _run(["exim4", "-bt", PROBE_RECIPIENT])
    found.evidence.append("exim4 -bt %s: exit %s: %s" % (PROBE_RECIPIENT, code,
                                                          " ".join(out.split())[:200]))
    reconfigure = ("run 'dpkg-reconfigure exim4-config' as root and choose 'mail sent by "
                   "smarthost; no local mail' with your provider's server, or " + MSMTP_FIX)
    if kind in ("local", "none") or (code == 2 and "undeliverable" in out):
        found.verdict = LOCAL_ONLY
        found.fix = "exim4 is set up for local delivery only: " + reconfigure
    elif "remote host address is the local host" in out or (
            kind in ("smarthost", "satellite") and smarthost
            and _is_self(smarthost.split("::")[0].split(":")[0])
            and "::" not in smarthost):
        found.verdict = RELAY_IS_SELF
        found.fix = "exim4's smarthost (%s) is this machine itself: %s" % (smarthost, reconfigure)
    elif kind in ("smarthost", "satellite") and not smarthost:
        found.verdict = NO_RELAY
        found.fix = "no smarthost is set: " + reconfigure
    elif code == 0:
        found.verdict = DELIVERABLE
        if "router = dnslookup" in out or kind == "internet":
            found.warnings.append(_direct_warning(email))
    else:
        found.verdict = UNKNOWN
        found.fix = "exim4 could not route a test address; see the evidence above"
    _exim_queue(found)


def _exim_queue(found: Diagnosis) -> None:
    code, out = _run(["exim4", "-bpc"])
    if code == 0 and out.strip().isdigit() and int(out.strip()) > 0:
        found.evidence.append("%s message(s) in exim4's queue" % out.strip())


def _postfix(found: Diagnosis, email: Optional[str]) -> None:
    if not os.path.exists("/etc/postfix/main.cf"):
        found.verdict = NO_RELAY
        found.evidence.append("/etc/postfix/main.cf does not exist")
        found.fix = ("postfix is not configured: run 'dpkg-reconfigure postfix' as root and "
                     "choose 'Satellite system' with your provider's relay host, or "
                     + MSMTP_FIX)
        return
    code, out = _run(["postconf", "-h", "default_transport", "relay_transport", "relayhost"])
    values = out.split("\n") + ["", "", ""]
    default_transport, relay_transport, relayhost = (v.strip() for v in values[:3])
    found.evidence.append("postconf: default_transport=%s relay_transport=%s relayhost=%s"
                          % (default_transport, relay_transport, relayhost or "(empty)"))
    reconfigure = ("run 'dpkg-reconfigure postfix' as root and choose 'Satellite system' with "
                   "your provider's relay host, or " + MSMTP_FIX)
    queue_code, queue = _run(["postqueue", "-j"])
    if default_transport in ("error", "discard") or relay_transport in ("error", "discard"):
        found.verdict = LOCAL_ONLY
        found.fix = "postfix is set up for local delivery only: " + reconfigure
    elif relayhost and _is_self(re.sub(r":\d+$", "", relayhost.strip("[]"))) \
            and not re.search(r":\d+$", relayhost):
        found.verdict = RELAY_IS_SELF
        found.fix = "postfix relays to itself (%s): %s" % (relayhost, reconfigure)
    elif queue_code == 69 or "mail system is down" in queue:
        found.verdict = NOT_RUNNING
        found.evidence.append("postqueue: %s" % " ".join(queue.split())[:160])
        found.fix = ("postfix is not running, so mail waits in its queue: start it "
                     "(as root: postfix start, or service postfix start)")
    else:
        found.verdict = DELIVERABLE
        if not relayhost:
            found.warnings.append(_direct_warning(email))
        _postfix_stuck(found, queue)


def _postfix_stuck(found: Diagnosis, queue_json: str) -> None:
    now = time.time()
    old = [line for line in queue_json.splitlines()
           if re.search(r'"arrival_time":\s*(\d+)', line)
           and now - int(re.search(r'"arrival_time":\s*(\d+)', line).group(1)) > STUCK_AFTER]
    if old:
        found.verdict = STUCK
        found.evidence.append("%d message(s) have waited in postfix's queue for over %d "
                              "minutes" % (len(old), STUCK_AFTER // 60))
        found.fix = "see why with 'postqueue -p' (and /var/log/mail.log), then 'postqueue -f'"


def _msmtp(found: Diagnosis, email: Optional[str]) -> None:
    cmd = ["msmtp", "--pretend"] + (["-f", email] if email else []) + ["--", PROBE_RECIPIENT]
    code, out = _run(cmd)
    summary = [line.strip() for line in out.splitlines()
               if re.match(r"\s*(account|host|port|from|tls|auth)\s", line)]
    found.evidence.append("%s: exit %s%s" % (shlex.join(cmd), code,
                                             (": " + "; ".join(summary)) if summary else
                                             (": " + " ".join(out.split())[:200])))
    if code == 0 and any(s.startswith("host") for s in summary):
        found.verdict = DELIVERABLE
        if not email and not any(s.startswith("from") for s in summary):
            found.warnings.append("the msmtp account has no 'from'; caffpy always passes -f")
    else:
        found.verdict = NO_RELAY
        found.fix = ("msmtp has no usable account for this user: write ~/.msmtprc (or "
                     "/etc/msmtprc, readable by you) with 'account default', 'host', "
                     "'from' and your provider's login; see /usr/share/doc/caffpy/README.Debian")


def _nullmailer(found: Diagnosis) -> None:
    remotes_path = "/etc/nullmailer/remotes"
    try:
        with open(remotes_path, encoding="utf-8", errors="replace") as handle:
            remotes = [l for l in handle.read().splitlines() if l.strip() and not l.startswith("#")]
    except FileNotFoundError:
        remotes = []
    except OSError:
        remotes = None
    running = any(_comm(pid) == "nullmailer-send" for pid in os.listdir("/proc") if pid.isdigit())
    found.evidence.append("nullmailer-send is %srunning" % ("" if running else "not "))
    fix = ("put your provider's relay into /etc/nullmailer/remotes (as root; for example "
           "'smtp.example.org smtp --port=587 --starttls --user=... --pass=...'), or " + MSMTP_FIX)
    if remotes is None:
        found.evidence.append("%s is not readable by this user" % remotes_path)
    else:
        found.evidence.append("%s lists %d relay(s)" % (remotes_path, len(remotes)))
    if remotes == []:
        found.verdict = NO_RELAY
        found.fix = "nullmailer has no relay, so mail waits forever: " + fix
    elif not running:
        found.verdict = NOT_RUNNING
        found.fix = "start nullmailer-send (as root: service nullmailer start)"
    elif _nullmailer_stuck():
        found.verdict = STUCK
        found.fix = "mail is waiting in nullmailer's queue; see 'mailq' and the mail log"
    elif remotes is None:
        found.verdict = UNKNOWN
        found.fix = ("nullmailer's relay list is readable by root only; check it as root "
                     "with caffpy doctor, or send a test with caffpy doctor --send-test")
    else:
        found.verdict = DELIVERABLE


def _comm(pid: str) -> str:
    try:
        with open("/proc/%s/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _nullmailer_stuck() -> bool:
    queue = "/var/spool/nullmailer/queue"
    try:
        return any(time.time() - os.path.getmtime(os.path.join(queue, name)) > STUCK_AFTER
                   for name in os.listdir(queue))
    except OSError:
        return False    # the queue is root's; the verdict then stays "unknown"
