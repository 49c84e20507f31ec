"""Composing one outgoing message: headers done properly, body small plain UTF-8 text.

Every value that reaches a header goes through `parse.clean` and the SMTP policy, which
refuses CR/LF; a display name like `=?utf-8?q?Eve=0D=0ABcc...?=` therefore stays a name.
It must never put a line over 998 octets on the wire (RFC 5322 2.1.1): the policy folds
headers at 78, a long body line goes quoted-printable, attachments go base64.
"""

from __future__ import annotations

import base64
import email.policy
import email.quoprimime
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
            elif (encoded := _encoded(value)) is not None:
                return _Plain(name, encoded)
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


# The most UTF-8 an encoded word of 75 characters holds ("=?utf-8?b?" and "?=" around
# 60 characters of base64).
_ENCODED_OCTETS = 45


def _encoded(value: Address) -> str | None:
    """`=?utf-8?b?...?= <addr>` for a display name beyond ASCII, as encoded words of whole
    characters (RFC 2047 5(3), 6.3); None when the email package should write it. Its
    own encoder chooses Q or B word by word and took three fifths of a check-in's time
    for the two in five people whose names are not in ASCII."""
    display = value.display_name
    if display.isascii() or not display.isprintable() or not _ADDRESS.match(value.addr_spec):
        return None
    words, word = [], b""
    for character in display:
        octets = character.encode()
        if len(word) + len(octets) > _ENCODED_OCTETS:
            words.append(word)
            word = b""
        word += octets
    words.append(word)
    encoded = [f"=?utf-8?b?{base64.b64encode(word).decode()}?=" for word in words]
    return " ".join([*encoded, f"<{value.addr_spec}>"])


POLICY = email.policy.SMTP.clone(header_factory=_Headers())
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # as the email package's generator splits lines


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
    local, _, domain = sender.partition("@")
    to_local, _, to_domain = recipient.partition("@")
    headers: list[tuple[str, str | Address]] = [
        ("From", Address(display_name=clean(sender_name, 200), username=local, domain=domain)),
        (
            "To",
            Address(display_name=clean(recipient_name, 200), username=to_local, domain=to_domain),
        ),
        ("Subject", clean(subject, 250)),
        ("Date", email.utils.format_datetime(now)),
        ("Message-ID", message_id),
    ]
    if reply_to:
        headers.append(("Reply-To", reply_to))
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
        chain = [*references[-9:], in_reply_to] if in_reply_to not in references else references
        headers.append(("References", " ".join(chain[-10:])))
    headers += [("Auto-Submitted", auto_submitted), ("X-Mailflow-Template", template)]
    headers += [(name, clean(value, 900)) for name, value in extra_headers]
    cte = transfer_encoding(body)
    raw = None if attachments else written(headers, body, cte)
    return Outgoing(
        template=template,
        recipient=recipient,
        envelope_from=envelope_from or sender,
        message_id=message_id,
        raw=raw or by_the_email_package(headers, body, cte, attachments),
    )


def by_the_email_package(
    headers: list[tuple[str, str | Address]],
    body: str,
    cte: str,
    attachments: tuple[Attachment, ...] = (),
) -> bytes:
    """The message as the email package writes it: any header, any attachment."""
    message = EmailMessage(policy=POLICY)
    for name, value in headers:
        message[name] = value
    message.set_content(body, charset="utf-8", cte=cte)
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message.as_bytes()


def written(headers: list[tuple[str, str | Address]], body: str, cte: str) -> bytes | None:
    """The bytes `by_the_email_package` makes of a message of one text part, written
    directly: each header made and folded by the same policy, the body encoded as the
    email package encodes it. A tick's check-ins spent two thirds of their composing in
    the email package's message object and generator. None for what it must judge
    itself: a header named twice or one of the body's own, a value of several lines."""
    names = {name.lower() for name, _ in headers}
    if len(names) < len(headers) or names & _BODY_HEADERS:
        return None
    folded = []
    for name, value in headers:
        if isinstance(value, str) and len(value.splitlines()) > 1:
            return None  # the email package refuses it, and says why
        if name.lower() in _PER_RECIPIENT:
            folded.append(POLICY.fold_binary(name, POLICY.header_factory(name, value)))
            continue
        if isinstance(value, Address):
            value = (value.display_name, value.username, value.domain)
        folded.append(_folded(name, value))
    lines = body.encode().splitlines()
    if cte == "7bit":
        text = b"\r\n".join(lines) + b"\r\n"
    else:  # quoted-printable, as email.contentmanager and the generator write it
        encoded = email.quoprimime.body_encode(
            (b"\n".join(lines) + b"\n").decode("latin-1"), POLICY.max_line_length
        )
        *complete, last = _LINE_BREAK.split(encoded)
        text = "".join(line + "\r\n" for line in complete).encode("ascii") + last.encode()
    return b"".join(folded) + _body_headers(cte) + b"\r\n" + text


_BODY_HEADERS = {"content-type", "content-transfer-encoding", "mime-version"}


# Different in every mail, and naming its recipient or carrying their tokens: never kept.
_PER_RECIPIENT = {"to", "message-id", "reply-to", "in-reply-to", "references", "list-unsubscribe"}


@functools.lru_cache(maxsize=256)
def _folded(name: str, value: str | tuple[str, str, str]) -> bytes:
    """A header's line(s) as the generator writes them; `value` a text, or an address as
    (display name, local part, domain). Most of a big send's headers are the same in
    every mail (From, Subject, the list headers): kept, they are made once."""
    made = POLICY.header_factory(name, value if isinstance(value, str) else Address(*value))
    return POLICY.fold_binary(name, made)


@functools.cache
def _body_headers(cte: str) -> bytes:
    """Content-Type, Content-Transfer-Encoding and MIME-Version, as `set_content` writes
    them for UTF-8 text in `cte`."""
    raw = by_the_email_package([], "", cte)
    return raw.partition(b"\r\n\r\n")[0] + b"\r\n"
