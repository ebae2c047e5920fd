"""Building the mails: RFC 3156 PGP/MIME around a text part and the signed key(s).

No text from a key reaches a header: To: is the validated bare address, and
UIDs appear only in the body, which is inside the encryption.
"""

import email.policy
import email.utils
import string
import unicodedata
from dataclasses import dataclass
from email.charset import QP, Charset
from email.encoders import encode_noop
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Optional, Sequence

from caffpy import __version__

# LF line ends (nullmailer corrupts CRLF input) and 78-column folding; every
# part is 7-bit, so each line stays far below SMTP's 998-octet limit. The
# compat32 classes: every header value here is made by caffpy and encoded
# explicitly, and they build a mail in less than half the time of
# email.policy.default's header objects (measured: 0.9 against 2.2 ms).
POLICY = email.policy.compat32.clone(linesep="\n", max_line_length=78)

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


def _text_part(text: str) -> MIMEText:
    charset = Charset("utf-8")
    charset.body_encoding = QP        # 7-bit and short lines, whatever the language
    return MIMEText(text, "plain", charset, policy=POLICY)


def _ascii_part(subtype: str, data: str, **params) -> MIMEApplication:
    """An application/SUBTYPE part whose body (armored OpenPGP data) goes as it is."""
    part = MIMEApplication(data, subtype, encode_noop, policy=POLICY, **params)
    part["Content-Transfer-Encoding"] = "7bit"
    return part


def plain_text(text: str) -> Message:
    """A text-only message body (caffpy doctor's test message)."""
    return _text_part(text)


def build_inner(text: str, attachments: Sequence[Attachment]) -> Message:
    """The multipart/mixed part: the letter and the key(s)."""
    inner = MIMEMultipart("mixed", policy=POLICY)
    inner.attach(_text_part(text))
    for attachment in attachments:
        part = _ascii_part("pgp-keys", attachment.armored, name=attachment.filename)
        part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
        part["Content-Description"] = attachment.description
        inner.attach(part)
    return inner


def serialize(message: Message) -> bytes:
    return message.as_bytes(policy=POLICY)


def build_encrypted(encrypted_armored: bytes) -> Message:
    """The RFC 3156 multipart/encrypted envelope around gpg's output."""
    outer = MIMEMultipart("encrypted", protocol="application/pgp-encrypted", policy=POLICY)
    control = _ascii_part("pgp-encrypted", "Version: 1\n")
    control["Content-Description"] = "PGP/MIME version identification"
    payload = _ascii_part("octet-stream", encrypted_armored.decode("ascii"), name="msg.asc")
    payload.add_header("Content-Disposition", "inline", filename="msg.asc")
    payload["Content-Description"] = "OpenPGP encrypted message"
    outer.attach(control)
    outer.attach(payload)
    outer.preamble = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
    return outer


def _header(value: str) -> str:
    """A header value: RFC 2047 encoded when not ASCII; never a control character
    (Python's line splitting also breaks at \\x1c-\\x1e, U+0085, U+2028...)."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise ValueError("control character in a header value: %r" % value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def add_headers(message: Message, owner: str, sender: str, to: str, subject: str,
                reply_to: Optional[str] = None, date: Optional[float] = None) -> Message:
    """From, To, Subject, Date, Message-ID (and Reply-To); To is the bare address only."""
    for value in (owner, sender, to, reply_to or ""):
        _header(value)      # refuses control characters
    message["From"] = email.utils.formataddr((owner, sender), charset="utf-8")
    message["To"] = to
    message["Subject"] = _header(subject)
    message["Date"] = email.utils.formatdate(date, localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.partition("@")[2])
    if reply_to:
        message["Reply-To"] = reply_to
    message["User-Agent"] = "caffpy %s" % __version__
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
