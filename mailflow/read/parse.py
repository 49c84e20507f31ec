"""Parsing: raw bytes into one small immutable value that everything after works on.

Nothing downstream looks at MIME again. Every header value taken from the message is
decoded and stripped of control characters here, so no CR/LF from a sender can reach an
outgoing header. This module must never raise on hostile input: what cannot be read
becomes an empty field, and only a message with no readable structure at all raises
`Unreadable`.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.headerregistry
import email.message
import email.policy
import email.utils
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import mailparser
from flufl.bounce import all_failures

from mailflow.read.flowed import part_text
from mailflow.read.trim import trim_reply

log = logging.getLogger(__name__)

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.-]{1,252}$")
MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
SUBJECT_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|vl|tr|rv|r|ref|antw|odp|ynt|res|enc|答复|回复|转发)\s*"
    r"(\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE,
)
MAX_TEXT = 1_000_000  # a body longer than this is cut before trimming: no reply needs more


def delivery_failures(raw: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """(temporary, permanent) failed addresses a delivery report names, lower-cased: RFC 3464
    and the common non-standard forms (flufl.bounce, Mailman's detectors). Only for mail
    already taken for a bounce; never raises."""
    try:
        temporary, permanent = all_failures(email.message_from_bytes(raw[: 4 * 1024 * 1024]))
    except Exception:  # a report too broken to read names nobody
        log.info("a bounce could not be read for its failed addresses", exc_info=True)
        return frozenset(), frozenset()

    def addresses(found) -> frozenset[str]:
        texts = (a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in found)
        bare = (text.strip().strip("<>").lower() for text in texts)
        return frozenset(address for address in bare if ADDRESS.match(address))

    return addresses(temporary), addresses(permanent)


class Unreadable(Exception):
    """The bytes are not a message at all (reason in the text)."""


@dataclass(frozen=True)
class Inbound:
    message_id: str | None
    sender: str | None  # lower-cased address from From, None when unusable
    sender_name: str
    envelope_from: str | None
    recipients: tuple[str, ...]
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str  # the whole plain-text body
    reply: str  # only the new text, above any quote and signature
    content_type: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, decoded value)
    null_sender: bool = False  # the envelope or Return-Path is <>: a bounce or notification

    def header(self, name: str) -> str:
        """The first value of a header, '' when absent."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), "")

    def has_header(self, name: str) -> bool:
        name = name.lower()
        return any(key == name for key, _ in self.headers)

    @property
    def command_subject(self) -> str:
        """The subject without Re:/Fwd: prefixes, where a command may stand."""
        return SUBJECT_PREFIX.sub("", self.subject).strip()


# A dot-atom addr-spec and nothing else: parseaddr would return it as it is.
BARE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\Z"
)


def clean(text: str, limit: int = 998) -> str:
    """A header value safe to show or reuse: no control characters, bounded length."""
    return CONTROL.sub(" ", text).strip()[:limit]


def decode_header(value: str, limit: int | None = None) -> str:
    """The header's encoded words decoded; with `limit`, only as much of it as can make
    that many characters (a character takes at most twelve, "=F0=9F=98=80" in Q), since a
    megabyte of encoded words takes most of a second to decode."""
    if limit is not None:
        value = value[: 12 * limit]
    if "=?" not in value:
        return value  # no encoded words: what the email package would give back
    # The email package looks for the end of an encoded word from every "=?" of a line,
    # to the line's end when none ends: quadratic ("=?a?q?x " 16,000 times took 13 s).
    # Nothing after the last "?=" can be encoded: there, each "=?" is kept apart (by a
    # NUL, taken out again) so that the decoder never starts an encoded word.
    end = value.rfind("?=") + 2
    if end < 2:
        return value
    tail = value[end:].replace("\0", "")
    try:
        words = email.header.decode_header(value[:end] + tail.replace("=?", "=\0?"))
        return str(email.header.make_header(words)).replace("\0", "")
    except Exception:  # unknown charsets, broken encoded words: keep the raw text
        return value


def address(value: str | None) -> str | None:
    """A plain addr-spec, lower-cased, or None when it is not a usable address."""
    if not value:
        return None
    if BARE_ADDRESS.match(value):  # nothing for parseaddr to take apart
        addr = value.lower()
    else:
        try:
            addr = email.utils.parseaddr(clean(value))[1].strip().lower()
        except RecursionError:  # parseaddr recurses on each ":" or "(" of a route or comment
            return None
    return addr if ADDRESS.match(addr) else None


# A From header longer than this names nobody: no mailbox needs it (a display name of
# 1,000 characters still fits), and the strict parser below takes time quadratic in it.
MAX_FROM = 2_000
_MAILBOXES = email.headerregistry.HeaderRegistry()
_FOLD = re.compile(r"\r?\n(?=[ \t])")


# What the strict parser says of a display name's form or encoding only, and common in
# ordinary mail: "Joe Q. Public" (RFC 5322's own example), an encoded word in quotes,
# a charset Python does not know. Every other defect is about the mailbox itself.
_NAME_ONLY_DEFECTS = (
    email.errors.CharsetError,
    email.errors.UndecodableBytesDefect,
    email.errors.NonPrintableDefect,
    email.errors.InvalidBase64PaddingDefect,
    email.errors.InvalidBase64CharactersDefect,
    email.errors.InvalidBase64LengthDefect,
)


def _harmful(defect: email.errors.MessageDefect) -> bool:
    if isinstance(defect, _NAME_ONLY_DEFECTS):
        return False
    said = str(defect)
    if isinstance(defect, email.errors.ObsoleteHeaderDefect):
        return said not in ("period in 'phrase'", "comment found without atom")
    return "encoded word" not in said and "encoded-word" not in said


def _folded_in_quotes(value: str) -> bool:
    """Whether a line break falls inside a quoted display name: `"Eve\\"<CRLF> Bcc: x@y.z"`
    is one name to RFC 5322 and a second address to lenient readers."""
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted and char in "\r\n":
            return True
    return False


def sender_of(head: email.message.Message) -> tuple[str, str | None]:
    """(display name, address) of the message's author, as RFC 5322, and a DMARC check
    upstream, read the From header; ("", None) unless that is exactly one mailbox that
    both a strict and a lenient parser read alike.

    Python 3.11's getaddresses reads `coord@example.org<attacker@evil.example>` as the
    coordinator (CVE-2023-27043) and a quoted name folded over two lines as another
    address, while DMARC aligns on what the strict parser finds: a From header given
    twice, with two mailboxes, with a parse defect, or read differently by the two, is
    no sender at all, so nothing is answered to, or done in the name of, either reading.
    The one reading serves both the stored (dedupe) sender and the answer address.
    """
    try:
        values = head.get_all("From") or []
        if len(values) != 1:
            return "", None
        value = str(values[0])
        if len(value) > MAX_FROM:
            return "", None
        # Unfolded (RFC 5322 2.2.3) for the strict reading; a line break left after that is
        # no fold. The lenient reading takes the value as it came, folds and all.
        unfolded = _FOLD.sub("", value)
        if "\r" in unfolded or "\n" in unfolded or _folded_in_quotes(value):
            return "", None
        strict = _MAILBOXES("from", unfolded)
        lenient = email.utils.getaddresses([value])
        if any(map(_harmful, strict.defects)) or len(strict.groups) != 1:
            return "", None
        if strict.groups[0].display_name:  # a group ("team: a@x.org;") is no mailbox
            return "", None
        mailboxes = strict.groups[0].addresses
        if len(mailboxes) != 1 or len(lenient) != 1:
            return "", None
        mailbox = mailboxes[0]
        found = address(mailbox.addr_spec)
        if found is None or found != address(lenient[0][1]):
            return "", None
        return clean(mailbox.display_name, 200), found
    except Exception:  # whatever a parser trips on is a defect too
        log.info("a From header could not be read strictly", exc_info=True)
        return "", None


def message_ids(value: str) -> tuple[str, ...]:
    return tuple(MESSAGE_ID.findall(value or ""))[:50]


class _HtmlText(HTMLParser):
    """HTML to plain text, keeping quotes recognisable (blockquote becomes '> ')."""

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "tr",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "ul",
            "ol",
            "pre",
            "hr",
            "blockquote",
            "section",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        if tag == "blockquote":
            self.depth += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        if tag == "blockquote":
            self.depth = max(0, self.depth - 1)
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self.depth and (not self.parts or self.parts[-1].endswith("\n")):
            text = "> " * self.depth + text.lstrip()
        self.parts.append(text)

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).splitlines()]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    converter = _HtmlText()
    try:
        converter.feed(html)
        converter.close()
    except Exception:  # malformed markup: keep what was read
        pass
    return converter.text()


class _BodyParser(mailparser.MailParser):
    """mail-parser for what is read here: the text parts. Its summary of every header
    (`mail` and `mail_partial`, each made from all the headers, addresses parsed) is not
    used, and took a fifth of its time."""

    def _make_mail(self, complete: bool = True) -> dict:
        return {}

    def _decode_body_payload(self, part, charset, part_index):
        # Each text part is decoded here, the one place that still knows its Content-Type:
        # the texts mail-parser hands back no longer say whether they were flowed.
        return part_text(part, super()._decode_body_payload(part, charset, part_index))


def _part_text(part: email.message.Message) -> str:
    """One text part decoded, then unflowed when it is format=flowed."""
    return part_text(part, _decoded(part))


def _decoded(part: email.message.Message) -> str:
    """A part's payload decoded: by its charset, else as UTF-8 (a charset label that is
    wrong, often us-ascii on UTF-8 text, or one Python does not know), else by its
    charset with replacement characters, as mail-parser decodes a part."""
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    for encoding, errors in ((charset, "strict"), ("utf-8", "strict"), (charset, "replace")):
        try:
            return payload.decode(encoding, errors)
        except (LookupError, UnicodeError):
            continue
    return payload.decode("utf-8", "replace")


def _one_plain_part(message: email.message.Message) -> bool:
    return (
        not message.is_multipart()
        and message.get_content_type() == "text/plain"
        and message.get_content_disposition() in (None, "inline")
        and not message.get_filename()
    )


def _body_text(message: email.message.Message) -> tuple[str, str]:
    """(plain text, content type). A message that is one text/plain part has nothing in
    it to untangle: it is decoded as mail-parser would decode that part, without the
    rest of mail-parser's work (a third of the time a message takes to handle). Every
    other message is read by mail-parser, given the message already parsed (as it would
    parse it: compat32), falling back to the standard library."""
    if _one_plain_part(message):
        return _part_text(message), "text/plain"
    try:
        parsed = _BodyParser(message)
        content_type = parsed.message.get_content_type()
        if parsed.text_plain:
            return "\n".join(parsed.text_plain), content_type
        if parsed.text_html:
            return html_to_text("\n".join(parsed.text_html)), content_type
        return "", content_type
    except Exception as error:
        log.info("mail-parser could not read the body (%s); using the standard parser", error)
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            text = _part_text(part)
            if part.get_content_subtype() == "html":
                text = html_to_text(text)
            return text, message.get_content_type()
    return "", message.get_content_type()


def parse(
    raw: bytes,
    envelope_from: str | None,
    recipients: tuple[str, ...],
    head: email.message.Message | None = None,
) -> Inbound:
    """`head`: `raw` already parsed (compat32), if the caller has it."""
    if not raw.strip():
        raise Unreadable("empty message")
    try:
        if head is None:
            head = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as error:
        raise Unreadable(f"no readable header: {error}") from error
    headers = tuple(
        (str(name).lower(), clean(decode_header(str(value), 4000), 4000))
        for name, value in head.items()[:500]
    )
    sender_name, sender = sender_of(head)
    text, content_type = _body_text(head)
    text = text.replace("\r\n", "\n").replace("\x00", "")[:MAX_TEXT]
    ids = message_ids(str(head.get("Message-ID", "")))
    return Inbound(
        message_id=ids[0] if ids else None,
        sender=sender,
        sender_name=sender_name,
        envelope_from=address(envelope_from) if envelope_from else None,
        recipients=tuple(r.lower() for r in recipients),
        subject=clean(decode_header(str(head.get("Subject", "")), 500), 500),
        in_reply_to=message_ids(str(head.get("In-Reply-To", ""))),
        references=message_ids(str(head.get("References", ""))),
        text=text,
        reply=trim_reply(text),
        content_type=content_type,
        headers=headers,
        null_sender=(envelope_from is not None and envelope_from.strip("<> ") == "")
        or str(head.get("Return-Path", "x")).strip() in ("<>", ""),
    )


def attachments(raw: bytes, limit: int = 20) -> list[tuple[str, str, bytes]]:
    """The attached files as (filename, content type, bytes), at most `limit` of them.

    Read on demand from the stored message (a coordinator's IMPORT), not for every message:
    nothing else needs them. Never raises: a part that can't be decoded is left out.
    """
    found: list[tuple[str, str, bytes]] = []
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        parts = list(message.walk())
    except Exception as error:
        log.info("attachments unreadable: %s", error)
        return found
    for part in parts:
        if part.is_multipart() or len(found) >= limit:
            continue
        filename = part.get_filename()
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        if not filename and disposition != "attachment":
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception as error:
            log.info("an attachment could not be decoded: %s", error)
            continue
        name = clean(decode_header(filename or "", 200), 200)
        found.append((name, part.get_content_type(), data))
    return found
