"""Install and configure a real Debian MTA that relays to an SMTP sink on 127.0.0.1.

Only one package can provide mail-transport-agent at a time; `restore()` puts
back what was installed when the tests started (or removes what they added).
"""

import os
import socket
import subprocess
import threading
import time
from typing import List, Optional

from aiosmtpd.controller import Controller

from caffpy import mta

APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=900",
       "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
MTA_PACKAGES = ("msmtp-mta", "postfix", "exim4-daemon-light", "nullmailer")


class Sink:
    """An SMTP server on 127.0.0.1 that keeps every message it is given."""

    def __init__(self):
        self.messages: List[dict] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=_free_port())

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "data": envelope.original_content or envelope.content})
        return "250 OK"

    def start(self) -> int:
        self.controller.start()
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 60) -> List[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.2)
        time.sleep(0.5)     # catch any extra (unexpected) message too
        with self._lock:
            return list(self.messages)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def apt(*args: str) -> None:
    subprocess.run(APT + list(args), env=ENV, check=True, capture_output=True)


def package_states() -> dict:
    """Every package dpkg knows -> its status abbreviation ('ii', 'rc', ...)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n"],
                         capture_output=True, text=True).stdout
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)


def installed_packages() -> List[str]:
    states = package_states()
    return [p for p in MTA_PACKAGES if states.get(p) == "ii"]


def stop_daemons() -> None:
    if os.path.exists("/usr/sbin/postfix"):
        subprocess.run(["postfix", "stop"], capture_output=True)
    for pidfile in ("/run/exim4/exim.pid",):
        _kill_pidfile(pidfile)
    subprocess.run(["pkill", "-x", "nullmailer-send"], capture_output=True)


def _kill_pidfile(path: str) -> None:
    try:
        with open(path) as handle:
            os.kill(int(handle.read().strip()), 15)
    except (OSError, ValueError):
        pass


def restore(before: dict) -> None:
    """Put dpkg back as package_states() found it: reinstall the MTA that was
    there, purge every package the tests added (and configuration they left)."""
    stop_daemons()
    original = [p for p in MTA_PACKAGES if before.get(p) == "ii"]
    if original and installed_packages() != original:
        apt("install", *original)
    now = package_states()
    added = [p for p, state in now.items() if state != before.get(p)
             and before.get(p) in (None, "un", "pn", "rc") and state in ("ii", "rc", "iU", "iF")]
    if added:
        apt("purge", *added)


def setup_msmtp(port: Optional[int]) -> None:
    """msmtp-mta relaying to the sink; port None leaves it without any configuration."""
    stop_daemons()      # the MTA being replaced must not keep running
    apt("install", "msmtp-mta")
    if port is None:
        for path in ("/etc/msmtprc",):
            if os.path.exists(path):
                os.unlink(path)
        return
    with open("/etc/msmtprc", "w") as handle:
        handle.write("defaults\nauth off\ntls off\nsyslog off\n\n"
                     "account default\nhost 127.0.0.1\nport %d\nfrom signer@example.org\n" % port)
    os.chmod("/etc/msmtprc", 0o644)


def setup_postfix(port: int, local_only: bool = False) -> None:
    """postfix as a satellite relaying everything to the sink (or Debian's 'Local only')."""
    selections = ("postfix postfix/main_mailer_type select Satellite system\n"
                  "postfix postfix/relayhost string [127.0.0.1]:%d\n"
                  "postfix postfix/mailname string caffpy-test.example\n" % port)
    subprocess.run(["debconf-set-selections"], input=selections.encode(), check=True)
    stop_daemons()
    apt("install", "postfix")
    subprocess.run(["postconf", "-e", "relayhost=[127.0.0.1]:%d" % port,
                    "inet_interfaces=loopback-only", "maillog_file=/var/log/postfix.log",
                    "smtputf8_enable=no"], check=True)
    if local_only:
        subprocess.run(["postconf", "-e", "default_transport=error",
                        "relay_transport=error"], check=True)
    else:
        subprocess.run(["postconf", "-e", "default_transport=smtp",
                        "relay_transport=relay"], check=True)
    subprocess.run(["postfix", "stop"], capture_output=True)
    subprocess.run(["postfix", "start"], check=True, capture_output=True)


EXIM_CONF = """dc_eximconfig_configtype='{kind}'
dc_other_hostnames=''
dc_local_interfaces='127.0.0.2'
dc_readhost='caffpy-test.example'
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost='{smarthost}'
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname='true'
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
"""


def setup_exim4(port: int, local_only: bool = False) -> None:
    """exim4 sending everything by smarthost to the sink, or Debian's default 'local' setup.

    exim freezes mail whose smarthost is one of its own listening addresses
    ("remote host address is the local host"), so it listens on 127.0.0.2 only and
    the sink on 127.0.0.1 counts as remote.
    """
    stop_daemons()
    apt("install", "exim4-daemon-light")
    with open("/etc/exim4/update-exim4.conf.conf", "w") as handle:
        handle.write(EXIM_CONF.format(kind="local" if local_only else "smarthost",
                                      smarthost="" if local_only else "127.0.0.1::%d" % port))
    subprocess.run(["update-exim4.conf"], check=True, capture_output=True)


def setup_nullmailer(port: Optional[int]) -> None:
    """nullmailer relaying to the sink; port None leaves its relay list empty."""
    subprocess.run(["debconf-set-selections"], check=True,
                   input=b"nullmailer shared/mailname string caffpy-test.example\n"
                         b"nullmailer nullmailer/relayhost string \n")
    stop_daemons()
    apt("install", "nullmailer")
    with open("/etc/nullmailer/remotes", "w") as handle:
        handle.write("" if port is None else "127.0.0.1 smtp --port=%d\n" % port)
    subprocess.run(["pkill", "-x", "nullmailer-send"], capture_output=True)
    subprocess.Popen(["runuser", "-u", "mail", "--", "nullmailer-send"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    time.sleep(0.5)


def flush_nullmailer() -> None:
    try:
        with open("/var/spool/nullmailer/trigger", "wb", buffering=0) as trigger:
            trigger.write(b"x")
    except OSError:
        pass


def flush_postfix() -> None:
    subprocess.run(["postqueue", "-f"], capture_output=True)


def current_verdict(email: str = "signer@example.org") -> str:
    return mta.diagnose(email).verdict
