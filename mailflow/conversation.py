"""The conversation: what an ordinary (not automatic) message asks for, and the answer.

Routing, in order: a command on the first line; a reply tied to a conversation by its
token (in the reply address or In-Reply-To); a filled form sent cold; a command in the
subject; otherwise `not-understood`. Answers always go to the From address, never to an
unverified Reply-To, and are queued in the same transaction as the change they report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from mailflow import commands, limits, participants, tokens
from mailflow.parse import Inbound
from mailflow.program import Program
from mailflow.sending import ANSWER, send

log = logging.getLogger(__name__)

# Conversations continued by a reply to a token, by the token's purpose.
CONVERSATIONS: dict[str, Callable[[Turn, tokens.Token], str]] = {}


def continues(purpose: str):
    def register(handler: Callable[[Turn, tokens.Token], str]):
        CONVERSATIONS[purpose] = handler
        return handler

    return register


@dataclass
class Turn:
    """One inbound message being answered."""

    program: Program
    row_id: int
    message: Inbound
    now: datetime
    sent: list[str] = field(default_factory=list)

    @property
    def sender(self) -> str:
        assert self.message.sender is not None  # classification set aside mail without one
        return self.message.sender

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.message.reply.splitlines() if line.strip()), "")

    def answer(
        self,
        template: str,
        context: dict | None = None,
        *,
        token_purpose: str | None = None,
        payload: dict | None = None,
        farewell: bool = False,
        attachments: tuple = (),
    ) -> None:
        """Queue `template` to the sender, optionally with a reply token for what comes next."""
        send(
            self.program,
            template=template,
            to=self.sender,
            name=self.message.sender_name,
            context=context,
            key=f"answer:{self.row_id}:{len(self.sent)}:{template}",
            now=self.now,
            auto_submitted=ANSWER,
            token_purpose=token_purpose,
            payload=payload,
            in_reply_to=self.message.message_id,
            references=self.message.references,
            # The farewell follows an erasure that took the inbound message with it.
            inbound_id=None if farewell else self.row_id,
            farewell=farewell,
            attachments=attachments,
        )
        self.sent.append(template)


def conversation_token(turn: Turn) -> tuple[str | None, tokens.Token | None]:
    """(the token written to, its record) from a +TOKEN recipient, else from In-Reply-To."""
    config = turn.program.config
    prefix = config.local_part + "+"
    for recipient in turn.message.recipients:
        local, _, domain = recipient.partition("@")
        if domain == config.domain and local.startswith(prefix):
            written = local[len(prefix) :]
            return written, tokens.find(turn.program.db, written)
    for message_id in turn.message.in_reply_to:
        found = tokens.find_by_message_id(turn.program.db, message_id)
        if found:
            return found.token, found
    return None, None


def _live_reply(turn: Turn) -> bool:
    """A reply to a live token of the sender's own: a conversation the program began."""
    _, token = conversation_token(turn)
    return token is not None and tokens.is_live(token, turn.now) and token.address == turn.sender


def handle(turn: Turn) -> str:
    """Answer one ordinary message; return the outcome recorded with it."""
    # Imported here: these modules register their commands and conversations, and need Turn.
    from mailflow import application, checkins, coordination  # noqa: F401
    from mailflow.commands import coordinator, participant  # noqa: F401

    if participants.is_erased(turn.program.db, turn.sender):
        # Their data was deleted at their request: nothing is written to them again, unless
        # they ask to apply afresh.
        found = commands.find(turn.first_line) or commands.find(turn.message.command_subject)
        if found is None or found[0].name not in ("APPLY", "AGAIN"):
            log.info("message %d from an erased address: not answered, not kept", turn.row_id)
            turn.program.db.execute(
                "UPDATE messages SET raw = x'', sender = NULL, envelope_from = NULL WHERE id = ?",
                [turn.row_id],
            )
            return "ignored:erased"
        turn.program.db.execute(
            "DELETE FROM erased WHERE address_hash = ?", [participants.address_hash(turn.sender)]
        )
    role = coordination.find(turn)
    if role is None:
        limited = limits.verdict(
            turn.program,
            turn.row_id,
            turn.sender,
            turn.message.reply,
            turn.now,
            counted=not _live_reply(turn),
        )
        if limited.action == "silent":
            log.info(
                "message %d from %s: not answered (%s)", turn.row_id, turn.sender, limited.reason
            )
            return f"ignored:{limited.reason}"
        if limited.action == "notice":
            until = limited.until.strftime("%H:%M on %d %B %Y") if limited.until else ""
            turn.answer(limits.NOTICE, {"answered": limited.answered, "until": until})
            return f"{limited.reason}:notice"
    if role is not None and conversation_token(turn)[0] is None:
        # A coordinator may take part too: a participant's command that is not also a
        # coordinator's (STATUS, PAUSE; not HELP), or a filled form, is theirs as a participant.
        line = turn.first_line
        as_participant = commands.find(line) and not commands.find(line, coordination.AUDIENCE)
        if not as_participant and not application.is_form(turn):
            return "coordinator:" + coordination.handle(turn, role)
    found = commands.find(turn.first_line)
    if found:
        entry, arguments = found
        return f"command:{entry.name.lower()}:" + entry.run(turn, arguments)
    written, token = conversation_token(turn)
    if written is not None:
        if token is None or not tokens.is_live(token, turn.now) or token.address != turn.sender:
            turn.answer("token-expired")
            return "token-expired"
        handler = CONVERSATIONS.get(token.purpose)
        if handler is not None:
            return f"reply:{token.purpose}:" + handler(turn, token)
    if application.is_form(turn):
        return "form:" + application.cold_form(turn)
    found = commands.find(turn.message.command_subject)
    if found:
        entry, arguments = found
        return f"command:{entry.name.lower()}:" + entry.run(turn, arguments)
    for line in (turn.first_line, turn.message.command_subject):
        if commands.find(line, coordination.AUDIENCE):
            return coordination.refuse(turn, line)
    turn.answer("not-understood", {"first_line": turn.first_line[:200]})
    return "not-understood"
