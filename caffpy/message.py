"""Building the mails: RFC 3156 PGP/MIME around a text part and the signed key(s).

No text from a key reaches a header: To: is the validated bare address, and
UIDs appear only in the body, which is inside the encryption.
"""

import email.policy
import email.utils
import string
from dataclasses import dataclass
from email.message import EmailMessage
from email.headerregistry import Address
from typing import Optional, Sequence

from caffpy import __version__

# LF line ends (nullmailer corrupts CRLF input) and 78-column folding; every
# part is 7-bit, so each line stays far below SMTP's 998-octet limit.
POLICY = email.policy.SMTP.clone(linesep="\n", max_line_length=78)

DEFAULT_TEMPLATE = """\
Hello,

thank you for meeting me at the keysigning. I checked your identity and
fingerprint there, and have now certified the following user ID$plural of
your key $fingerprint:

$uids

The certification is attached. This mail is encrypted to your key and was
sent to this address only, so it reaches you only if you both read mail
here and hold the key; every user ID with its own address gets its own mail.

To use it, save the attachment and import it:

    gpg --import 0x$key.*.asc

then publish your key where others look for it, for example:

    gpg --keyserver hkps://keyserver.ubuntu.com --send-keys $fingerprint

Note that keys.openpgp.org shows a certification made by someone else only
after you approve it there (for example with Sequoia: sq key approvals
update), so uploading it there alone will not show this one. Keyservers
such as keyserver.ubuntu.com keep it as it is; you can also publish your
key in your domain's web key directory, or send it to those who need it.

If you have questions, just reply to this mail.

Regards,
-- 
$owner
"""


@dataclass
class Attachment:
    filename: str
    description: str
    armored: str


def render_text(template: str, owner: str, fingerprint: str, uids: Sequence[str]) -> str:
    """Fill the template. string.Template only substitutes names: no code runs."""
    text = string.Template(template or DEFAULT_TEMPLATE).safe_substitute(
        owner=owner, key=fingerprint[-16:], fingerprint=fingerprint,
        uids="\n".join("\t" + uid for uid in uids), plural="s" if len(uids) > 1 else "")
    return text if text.endswith("\n") else text + "\n"


def plain_text(text: str) -> EmailMessage:
    """A text-only message body (caffpy doctor's test message)."""
    mail = EmailMessage(policy=POLICY)
    mail.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    return mail


def build_inner(text: str, attachments: Sequence[Attachment]) -> EmailMessage:
    """The multipart/mixed part: the letter and the key(s)."""
    inner = EmailMessage(policy=POLICY)
    inner.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    inner.make_mixed()
    for attachment in attachments:
        part = EmailMessage(policy=POLICY)
        part.set_content(attachment.armored.encode("ascii"), maintype="application",
                         subtype="pgp-keys", cte="7bit", disposition="attachment",
                         filename=attachment.filename)
        part["Content-Description"] = attachment.description
        inner.attach(part)
    return inner


def serialize(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=POLICY)


def build_encrypted(encrypted_armored: bytes) -> EmailMessage:
    """The RFC 3156 multipart/encrypted envelope around gpg's output."""
    outer = EmailMessage(policy=POLICY)
    outer.set_type("multipart/encrypted")
    outer.set_param("protocol", "application/pgp-encrypted")
    control = EmailMessage(policy=POLICY)
    control.set_content(b"Version: 1\n", maintype="application", subtype="pgp-encrypted",
                        cte="7bit")
    control.replace_header("Content-Type", "application/pgp-encrypted")
    control["Content-Description"] = "PGP/MIME version identification"
    payload = EmailMessage(policy=POLICY)
    payload.set_content(encrypted_armored, maintype="application", subtype="octet-stream",
                        cte="7bit", disposition="inline", filename="msg.asc")
    payload["Content-Description"] = "OpenPGP encrypted message"
    outer.attach(control)
    outer.attach(payload)
    outer.preamble = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
    return outer


def add_headers(message: EmailMessage, owner: str, sender: str, to: str, subject: str,
                reply_to: Optional[str] = None, date: Optional[float] = None) -> EmailMessage:
    local, _, domain = sender.partition("@")
    message["From"] = Address(display_name=owner, username=local, domain=domain)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(date, localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    if reply_to:
        message["Reply-To"] = reply_to
    message["User-Agent"] = "caffpy %s" % __version__
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
    return message


def compose(text: str, attachments: Sequence[Attachment], owner: str, sender: str, to: str,
            subject: str, reply_to: Optional[str] = None,
            encrypt=None) -> bytes:
    """The finished message as bytes; encrypt(bytes) -> armored bytes, or None for plain."""
    inner = build_inner(text, attachments)
    if encrypt is not None:
        message = build_encrypted(encrypt(serialize(inner)))
    else:
        message = inner
    add_headers(message, owner, sender, to, subject, reply_to)
    return serialize(message)
