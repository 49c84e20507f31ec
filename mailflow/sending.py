"""Sending one message from a template: render, compose, queue, in the caller's transaction.

Answers to an inbound message and messages the program starts (introductions, notices)
take this one path, so headers, tokens and idempotency are the same for all of them.
"""

from __future__ import annotations

from datetime import datetime

from mailflow import commands, outbox, tokens
from mailflow.compose import compose, new_message_id
from mailflow.program import Program

ANSWER = "auto-replied"  # RFC 3834: a reply to a message
NOTICE = "auto-generated"  # RFC 3834: started by the program itself


def send(
    program: Program,
    *,
    template: str,
    to: str,
    name: str = "",
    context: dict | None = None,
    key: str,
    now: datetime,
    auto_submitted: str = NOTICE,
    token_purpose: str | None = None,
    payload: dict | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    inbound_id: int | None = None,
) -> str:
    """Queue `template` to `to` unless `key` was queued before; return its Message-ID."""
    config = program.config
    token = None
    if token_purpose:
        token = tokens.issue(
            program.db,
            purpose=token_purpose,
            address=to,
            now=now,
            days=config.token_days,
            payload=payload,
        )
    values = {
        "program": {"name": config.program_name, "address": config.address},
        "name": name,
        "email": to,
        "commands": commands.listing(),
        "token_days": config.token_days,
        **(context or {}),
    }
    rendered = program.renderer.render(template, values)
    message_id = new_message_id(config.domain, key)
    outgoing = compose(
        template=template,
        subject=rendered.subject,
        body=rendered.body,
        sender_name=config.program_name,
        sender=config.address,
        recipient=to,
        recipient_name=name,
        message_id=message_id,
        now=now,
        reply_to=config.token_address(token) if token else None,
        in_reply_to=in_reply_to,
        references=references,
        auto_submitted=auto_submitted,
    )
    outbox.queue(program.db, outgoing, key=key, now=now, inbound_id=inbound_id)
    if token:
        tokens.attach_message_id(program.db, token, message_id)
    return message_id
