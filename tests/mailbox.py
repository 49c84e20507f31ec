"""Mail as the tests' correspondents write it (`compose`, `wire`) and as they read what the
program delivered to a home's Maildir (`outbox/new`).

A support module, not a test module: test modules import from here, never from each other.
It only reads the Maildir; it never waits for mail to come.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from email.message import EmailMessage
from pathlib import Path

PROGRAM = "program@example.org"
NOW = "2026-03-02T09:00:00Z"


def compose(
    sender: str,
    body: str,
    subject: str = "",
    to: str = PROGRAM,
    name: str = "",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = email.utils.formataddr((name, sender)) if name else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="client.test")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    return message


def wire(message: EmailMessage | bytes) -> bytes:
    """The bytes a real client puts on the wire: CRLF line ends (smtplib sends bytes as is)."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return re.sub(rb"\r?\n", b"\r\n", raw)


def outbox_row(path: Path) -> int:
    """The outbox row a Maildir file was written from (its name is STAMP.MROW.mailflow)."""
    return int(path.name.split(".M")[1].split(".")[0])


def mails(home: Path) -> list[EmailMessage]:
    """Every delivered message, in the order of the files' names."""
    folder = home / "outbox" / "new"
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(folder.iterdir())
    ]


def to(message: EmailMessage) -> str:
    return message["To"].addresses[0].addr_spec


def scheduled(home: Path, template: str) -> list[EmailMessage]:
    return [m for m in mails(home) if m["X-Mailflow-Template"] == template]


def inbox(home: Path, address: str, template: str | None = None) -> list[EmailMessage]:
    return [
        m
        for m in mails(home)
        if to(m) == address and (template is None or m["X-Mailflow-Template"] == template)
    ]


def delivered(home: Path, address: str) -> list[EmailMessage]:
    """What `address` was sent, in the order it was queued."""
    folder = home / "outbox" / "new"
    files = sorted(folder.glob("*"), key=outbox_row) if folder.exists() else []
    read = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
    return [m for m in read if to(m) == address]


def templates(home: Path, address: str) -> list[str]:
    return [m["X-Mailflow-Template"] for m in delivered(home, address)]


def attachments(message: EmailMessage) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }


def text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()
