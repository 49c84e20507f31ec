"""Sending one message from a template: render, compose, queue, in the caller's transaction.

Answers to an inbound message and messages the program starts (introductions, notices)
take this one path, so headers, tokens and idempotency are the same for all of them.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from mailflow.model import participants, tokens
from mailflow.send import outbox, signatures, verp
from mailflow.send.compose import Attachment, compose, new_message_id

if TYPE_CHECKING:  # named for its type only: the program is built above sending
    from mailflow.program import Program

log = logging.getLogger(__name__)

ANSWER = "auto-replied"  # RFC 3834: a reply to a message
NOTICE = "auto-generated"  # RFC 3834: started by the program itself
UNSUBSCRIBE_DAYS = 400  # outlives a term and the next round's wait


def unsubscribe_headers(program: Program, to: str, now: datetime) -> tuple[tuple[str, str], ...]:
    """List-Unsubscribe (RFC 2369) to the address's standing unsubscribe token, and the
    one-click form (RFC 8058) when the program has a public HTTPS address."""
    token = tokens.standing(
        program.db, purpose=tokens.UNSUBSCRIBE, address=to, now=now, days=UNSUBSCRIBE_DAYS
    )
    targets = [f"<mailto:{program.config.token_address(token)}>"]
    public = program.config.public_url
    if public:
        targets.append(f"<{public.rstrip('/')}/unsubscribe/{token}>")
    headers = [("List-Unsubscribe", ", ".join(targets))]
    if public:
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


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
    unsubscribe: bool | None = None,
    attachments: tuple[Attachment, ...] = (),
    farewell: bool = False,
    token_days: int | None = None,
) -> str | None:
    """Queue `template` to `to` unless `key` was queued before; return its Message-ID.

    Mail the program starts itself carries List-Unsubscribe unless `unsubscribe` is False
    (mail to coordinators). Nothing is ever queued to an address whose owner had their
    data deleted (None, with a log line), but the `farewell` that tells them it is done.
    """
    config = program.config
    if not farewell and participants.is_erased(program.db, to):
        log.info("not sending %s: the address's data was deleted at its owner's request", template)
        return None
    if unsubscribe is None:
        unsubscribe = auto_submitted == NOTICE
    message_id = new_message_id(config.domain, key, program.secret)
    token = None
    if token_purpose:
        token = tokens.issue(
            program.db,
            purpose=token_purpose,
            address=to,
            now=now,
            days=token_days or config.token_days,
            payload=payload,
            message_id=message_id,
        )
    values = {
        "program": {"name": config.program_name, "address": config.address},
        "name": name,
        "email": to,
        "token_days": token_days or config.token_days,
        **(context or {}),
    }
    rendered = program.renderer.render(template, values)
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
        extra_headers=unsubscribe_headers(program, to, now) if unsubscribe else (),
        attachments=attachments,
        # A bounce of this mail names its recipient; not for the farewell, which must leave
        # nothing of the address behind.
        envelope_from=None if farewell else verp.return_path(program, to),
    )
    if program.dkim_key is not None:
        # Signed as queued: the stored bytes are the bytes sent, at every retry.
        signed = signatures.sign(
            outgoing.raw, config.dkim_selector or "", config.domain, program.dkim_key
        )
        outgoing = dataclasses.replace(outgoing, raw=signed)
    outbox.queue(program.db, outgoing, key=key, now=now, inbound_id=inbound_id)
    return message_id
