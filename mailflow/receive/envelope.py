"""The envelope of a message that arrived without one (`mailflow ingest`, an IMAP mailbox):
the options an MTA gave, else what the message's own headers say."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils

from mailflow.config import Config

HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def read(
    config: Config, raw: bytes, recipient: str | None = None, sender: str | None = None
) -> tuple[str | None, list[str]]:
    """(sender, recipients): the recipient from Delivered-To (the newest, on top), else the
    To/Cc addresses at the program's domain, else the program; the sender from Return-Path."""
    head = HEADERS.parsebytes(raw[:262_144])
    if recipient:
        recipients = [recipient]
    elif head.get_all("Delivered-To"):
        recipients = [str(head.get_all("Delivered-To")[0]).strip()]
    else:
        found = email.utils.getaddresses(
            [str(v) for v in head.get_all("To", []) + head.get_all("Cc", [])]
        )
        recipients = [a for _, a in found if a.lower().endswith("@" + config.domain)]
        recipients = recipients or [config.address]
    if sender is None and head.get("Return-Path") is not None:
        sender = str(head.get("Return-Path")).strip().strip("<>")
    return sender, recipients
