"""Handing a message to the local MTA through the sendmail interface, and nothing else.

One recipient per call, given after '--' (never -t, which MTAs interpret
differently), -oi so a lone '.' line does not end the message, and -f so the
envelope sender (where bounces go) is the user's address. Exit status 0 means
the MTA took the message; anything else is an error that keeps it unsent.
"""

import logging
import os
import shlex
import subprocess

from caffpy.errors import MailError, MtaError

log = logging.getLogger(__name__)

SEND_TIMEOUT = 300   # seconds; msmtp talks to the relay synchronously


def sendmail_command(sendmail: str, sender: str, recipient: str) -> list:
    if recipient.startswith("-") or sender.startswith("-"):
        raise MailError("refusing address %r: it would be read as an option" % recipient)
    return [sendmail, "-oi", "-f", sender, "--", recipient]


def send(message: bytes, sendmail: str, sender: str, recipient: str) -> None:
    """Hand message to sendmail for recipient; MailError/MtaError when it was not taken."""
    cmd = sendmail_command(sendmail, sender, recipient)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("running %s", shlex.join(cmd))
    try:
        # A session of its own: Ctrl-C in the terminal must not kill the MTA halfway
        # through a message; caffpy stops after this call instead.
        proc = subprocess.run(cmd, input=message, capture_output=True, timeout=SEND_TIMEOUT,
                              start_new_session=True)
    except FileNotFoundError:
        raise MtaError("%s does not exist: no mail transport agent is installed. Install "
                       "one (apt install msmtp-mta, or see /usr/share/doc/caffpy/"
                       "README.Debian)" % sendmail)
    except PermissionError:
        raise MtaError("%s cannot be run (permission denied)" % sendmail)
    except subprocess.TimeoutExpired:
        raise MailError("%s did not finish within %d seconds" % (sendmail, SEND_TIMEOUT))
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip() or proc.stdout.decode(
            "utf-8", "replace").strip()
        raise MailError("%s exited with status %d%s" % (
            os.path.basename(sendmail), proc.returncode, (": " + said[-500:]) if said else ""))
