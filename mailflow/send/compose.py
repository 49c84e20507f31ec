"""Composing one outgoing message: headers done properly, body small plain UTF-8 text.

Every value that reaches a header goes through `parse.clean` and the SMTP policy, which
refuses CR/LF; a display name like `=?utf-8?q?Eve=0D=0ABcc...?=` therefore stays a name.
It must never put a line over 998 octets on the wire (RFC 5322 2.1.1): the policy folds
headers at 78, a long body line goes quoted-printable, attachments go base64.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage

from mailflow.read.parse import clean


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    template: str
    recipient: str
    envelope_from: str
    message_id: str
    raw: bytes


class _FoldedOnce(BaseHeader):
    """A header that keeps its folded form: a shared header is folded once, not per mail."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        folded = self.__dict__.get("_folded")
        if folded is None or folded[0] is not policy:
            folded = self._folded = (policy, super().fold(policy=policy))
        return folded[1]


# Header values made here of printable ASCII words: Message-IDs, the Date, a bare address.
_WORDS = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")
_MESSAGE_IDS = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>(?: <[\x21-\x3b\x3d\x3f-\x7e]+>)*\Z")
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\Z"
)
# An unstructured header of such words, none longer than a folded line can take: the list
# headers, whose unsubscribe addresses differ for every recipient.
_SHORT_WORDS = re.compile(r"[\x21-\x7e]{1,76}(?: [\x21-\x7e]{1,76})*\Z")
# A display name of plain words (no specials, nothing to encode or quote): written as is.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)*\Z")
_PLAIN_HEADERS = {
    "message-id": _MESSAGE_IDS,
    "in-reply-to": _MESSAGE_IDS,
    "references": _MESSAGE_IDS,
    "date": _WORDS,
    "reply-to": _ADDRESS,
    "to": _ADDRESS,
    "list-unsubscribe": _SHORT_WORDS,
}


class _Plain(str):
    """A header whose value needs no parsing, encoding or quoting (see _PLAIN_HEADERS),
    folded at its spaces as the email package would fold it. Parsing such a value with
    the email package's header parser took half the time of composing a reply."""

    defects = ()

    def __new__(cls, name: str, value: str) -> _Plain:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: email.policy.Policy) -> str:
        lines, line = [], f"{self.name}:"
        for word in self.split(" "):
            if len(line) + 1 + len(word) > policy.max_line_length and line != f"{self.name}:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


class _Headers(HeaderRegistry):
    """The standard header classes and parsing, made once and reused. A tick composes
    thousands of mails whose From, Date, Subject and MIME headers are the same text, and
    the email package would parse and fold each of them anew (and make a new class for
    every header) for most of the time a mail takes. Header objects are immutable values,
    so the bytes are the same as without the cache."""

    def __init__(self) -> None:
        super().__init__(base_class=_FoldedOnce)
        self._classes: dict[str, type[BaseHeader]] = {}
        self._made = functools.lru_cache(maxsize=1024)(self._make)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        if name not in self._classes:
            self._classes[name] = super().__getitem__(name)
        return self._classes[name]

    def __call__(self, name: str, value) -> BaseHeader | _Plain:
        plain = _PLAIN_HEADERS.get(name.lower())
        if isinstance(value, Address) and plain is _ADDRESS:
            if not value.display_name:
                value = value.addr_spec
            elif _named(name, value):
                # "Ann Okafor <ann@...>" on one line is the email package's own fold of it;
                # its parser took a quarter of a tick's time, the address different each time.
                return _Plain(name, f"{value.display_name} <{value.addr_spec}>")
        if plain is not None and isinstance(value, str) and plain.match(value):
            return _Plain(name, value)
        if isinstance(value, str):
            return self._made(name, value)
        if isinstance(value, Address):
            return self._made(name, None, value.display_name, value.username, value.domain)
        return super().__call__(name, value)

    def _make(self, name: str, value: str | None, *address: str) -> BaseHeader:
        if value is None:
            return super().__call__(name, Address(*address))
        return super().__call__(name, value)


def _named(name: str, value: Address) -> bool:
    """Is `name: Display Name <addr>` plain words that fit one line as they are?"""
    line = len(name) + len(value.display_name) + len(value.addr_spec) + 5
    return (
        line <= 78
        and _PLAIN_NAME.match(value.display_name) is not None
        and _ADDRESS.match(value.addr_spec) is not None
    )


POLICY = email.policy.SMTP.clone(header_factory=_Headers())


# The longest body line sent as 7bit. RFC 5322 2.1.1 allows 998 octets; sendmail's SMTP
# mailers break lines at 990 (smtp.m4's L=990), Postfix's client at 998 (its
# smtp_line_length_limit), Exim 4.95+ refuses longer ones. A broken line changes the
# body our DKIM signature covers. Not RFC 5322's 78: our own paragraphs are one line each
# and clients wrap them; 7bit keeps short mail small and its raw text readable.
SEVEN_BIT_LINE = 990


def transfer_encoding(body: str) -> str:
    """7bit for ASCII text whose every line fits SEVEN_BIT_LINE; else quoted-printable,
    whose soft line breaks (RFC 2045 6.7) every client joins again, so a 2,000-character
    "About me" or a long broadcast paragraph arrives whole and as signed."""
    # Lines as the email package splits them: bytes split at CR and LF only.
    if body.isascii() and all(len(x) <= SEVEN_BIT_LINE for x in body.encode().splitlines()):
        return "7bit"
    return "quoted-printable"


def new_message_id(domain: str, seed: str, secret: str = "") -> str:
    """A Message-ID that is unique but stable for one idempotency key (a re-run composes
    the same message, so a retry after a crash cannot look like a second message). Keyed
    by the installation's secret: a reply's In-Reply-To ties it to a conversation, so the
    ID must be known only to whoever received the mail."""
    digest = hmac.new(secret.encode(), seed.encode(), hashlib.sha256).hexdigest()[:32]
    return f"<{digest}.mailflow@{domain}>"


def compose(
    *,
    template: str,
    subject: str,
    body: str,
    sender_name: str,
    sender: str,
    recipient: str,
    recipient_name: str = "",
    message_id: str,
    now: datetime,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    auto_submitted: str = "auto-replied",
    extra_headers: tuple[tuple[str, str], ...] = (),
    attachments: tuple[Attachment, ...] = (),
    envelope_from: str | None = None,
) -> Outgoing:
    message = EmailMessage(policy=POLICY)
    local, _, domain = sender.partition("@")
    message["From"] = Address(display_name=clean(sender_name, 200), username=local, domain=domain)
    to_local, _, to_domain = recipient.partition("@")
    message["To"] = Address(
        display_name=clean(recipient_name, 200), username=to_local, domain=to_domain
    )
    message["Subject"] = clean(subject, 250)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = message_id
    if reply_to:
        message["Reply-To"] = reply_to
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        chain = [*references[-9:], in_reply_to] if in_reply_to not in references else references
        message["References"] = " ".join(chain[-10:])
    message["Auto-Submitted"] = auto_submitted
    message["X-Mailflow-Template"] = template
    for name, value in extra_headers:
        message[name] = clean(value, 900)
    message.set_content(body, charset="utf-8", cte=transfer_encoding(body))
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return Outgoing(
        template=template,
        recipient=recipient,
        envelope_from=envelope_from or sender,
        message_id=message_id,
        raw=message.as_bytes(),
    )
