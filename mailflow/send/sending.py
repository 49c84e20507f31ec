"""Sending one message from a template: render, compose, queue, in the caller's transaction.

Answers to an inbound message and messages the program starts (introductions, notices)
take this one path, so headers, tokens and idempotency are the same for all of them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
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


@dataclasses.dataclass(frozen=True)
class Listing:
    """The headers filters and mail clients look for, and the footer's unsubscribe link."""

    headers: tuple[tuple[str, str], ...]
    unsubscribe_url: str = ""  # the one-click page, when the program has a public address


def list_headers(
    program: Program, to: str, now: datetime, *, answer: bool, unsubscribe: bool
) -> Listing:
    """List-Id (RFC 2919) and List-Help (RFC 2369) on every message, so a filter can sort
    all of the program's mail by one header; List-Unsubscribe to the address's standing
    unsubscribe token, and the one-click form (RFC 8058) with a link for the footer when
    the program has a public HTTPS address, unless `unsubscribe` is False.

    Unsubscribing an address that takes no part (a stranger answered) stops nothing and
    harms nothing: it is answered as STOP from a stranger is. Answers ask Exchange and
    Outlook not to send out-of-office replies (an answer goes to someone who just wrote,
    so "I am away" is no news), but only the out-of-office kinds: delivery reports are
    our bounces. Mail the program starts keeps them: a check-in's away notice is stored.
    No `Precedence: bulk`, which Exchange also reads: it is not a standard, and filters
    (Gmail's among them) may count it against the mail; Auto-Submitted (RFC 3834) already
    tells every other responder."""
    config = program.config
    headers = [
        ("List-Id", f"{_phrase(config.program_name)} <{config.local_part}.{config.domain}>"),
        ("List-Help", f"<mailto:{config.address}?subject=HELP>"),
    ]
    url = ""
    if unsubscribe:
        token = tokens.standing(
            program.db, purpose=tokens.UNSUBSCRIBE, address=to, now=now, days=UNSUBSCRIBE_DAYS
        )
        targets = [f"<mailto:{config.token_address(token)}>"]
        if config.public_url:
            url = f"{config.public_url.rstrip('/')}/unsubscribe/{token}"
            targets.append(f"<{url}>")
        headers.append(("List-Unsubscribe", ", ".join(targets)))
        if url:
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if answer:
        # [MS-OXCMAIL] 2.1.3.2.20: OOF and AutoReply; not DR/NDR, which would stop bounces.
        headers.append(("X-Auto-Response-Suppress", "OOF, AutoReply"))
    return Listing(tuple(headers), url)


def _phrase(name: str) -> str:
    """The program's name as the phrase before List-Id's <id>: quoted if it holds a
    character RFC 5322 reserves; a name beyond ASCII is left to the header's encoding."""
    name = " ".join(name.split())
    if name.isascii() and re.search(r'[()<>\[\]:;@\\,."]', name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


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
    unsubscribe: bool = True,
    attachments: tuple[Attachment, ...] = (),
    farewell: bool = False,
    token_days: int | None = None,
) -> str | None:
    """Queue `template` to `to` unless `key` was queued before; return its Message-ID.

    Every message carries List-Unsubscribe but the farewell (its token would keep the
    erased address) and mail with `unsubscribe` False: what coordinators are sent as
    coordinators, which no unsubscribing could stop. Nothing is ever queued to an address
    whose owner had their data deleted (None, with a log line), but the `farewell` that
    tells them it is done.
    """
    config = program.config
    if not farewell and participants.is_erased(program.db, to):
        log.info("not sending %s: the address's data was deleted at its owner's request", template)
        return None
    listing = list_headers(
        program, to, now, answer=auto_submitted == ANSWER, unsubscribe=unsubscribe and not farewell
    )
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
        "unsubscribe_url": listing.unsubscribe_url,
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
        extra_headers=listing.headers,
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
