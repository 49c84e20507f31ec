"""A turn of the conversation: one ordinary message being answered, and what every
handler needs to answer it (the router is `conversation.router`).

Answers always go to the From address, never to an unverified Reply-To, and are queued in
the same transaction as the change they report (`Turn.answer`). A reply is tied to the
conversation it continues by its token (`conversation_token`); each token purpose has one
handler, registered with `@continues` where it is written.

The From address names a person; it does not prove them. A message is proven when it is
written to a live token of the sender's own (whoever answers it received our mail at that
address), or, with MAILFLOW_TRUST_DKIM=1, when its DKIM signature is aligned with the From
domain and covers this message to this program. What changes a person's data or
membership needs proof; without it the change is asked about by mail first, and only a
clear YES or CONFIRM in reply carries it out. Limits may stop the program answering, but
never stop it acting on a person's own STOP, unsubscribe or confirmed erasure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from mailflow.conversation import commands
from mailflow.model import coordinators, participants, tokens
from mailflow.program import Program
from mailflow.read.parse import Inbound
from mailflow.send import signatures
from mailflow.send.sending import ANSWER, answering, replies_to_ours, send
from mailflow.store import iso

log = logging.getLogger(__name__)

# Conversations continued by a reply to a token, by the token's purpose.
CONVERSATIONS: dict[str, Callable[[Turn, tokens.Token], str]] = {}
# What is carried out even when the sender is past the answer limits (only the answer is
# held back): leaving and erasure are the person's right, whoever filled their limit.
ALWAYS_ACTED: set[str] = set()  # token purposes and command names
# The one list of words that confirm, for every confirmation the program asks for.
YES_WORDS = frozenset({"yes", "confirm"})
STRANGERS_EVERY = timedelta(days=1)  # at most one such answer to a stranger in this time


def continues(purpose: str, *, always_acted: bool = False):
    def register(handler: Callable[[Turn, tokens.Token], str]):
        CONVERSATIONS[purpose] = handler
        if always_acted:
            ALWAYS_ACTED.add(purpose)
        return handler

    return register


def says_yes(line: str) -> bool:
    """A clear yes: YES or CONFIRM alone on the line (any case, a full stop or "!" after).
    "What is this? I never applied" is not one, nor is "ok" or an empty reply."""
    return " ".join(line.lower().strip(" .!").split()) in YES_WORDS


@dataclass
class Turn:
    """One inbound message being answered."""

    program: Program
    row_id: int
    message: Inbound
    now: datetime
    sent: list[str] = field(default_factory=list)
    quiet: bool = False  # past the limits: act, but answer nothing

    @property
    def sender(self) -> str:
        assert self.message.sender is not None  # classification set aside mail without one
        return self.message.sender

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.message.reply.splitlines() if line.strip()), "")

    @property
    def subject_command(self) -> str:
        """The subject without Re:/Fwd:, where a command may stand; '' for a reply to our
        mail under a "Re:" subject. Answers keep the person's subject, so "Re: STOP" is the
        subject of our answer to their STOP carried back, not a second STOP."""
        message = self.message
        if message.command_subject != message.subject and replies_to_ours(self.program, message):
            return ""
        return message.command_subject

    @cached_property
    def token_proven(self) -> bool:
        """Written to a live token of the sender's own. Read once, before any handler uses
        the token, so that using it does not unprove the message."""
        return _live_reply(self)

    @cached_property
    def proof(self) -> str | None:
        """How the sender proved the From address ('token', 'dkim:DOMAIN'), or None."""
        if self.token_proven:
            return "token"
        domain = _dkim_domain(self)
        return f"dkim:{domain}" if domain else None

    @property
    def proven(self) -> bool:
        return self.proof is not None

    def answer(
        self,
        template: str,
        context: dict | None = None,
        *,
        token_purpose: str | None = None,
        payload: dict | None = None,
        farewell: bool = False,
        attachments: tuple = (),
        anonymous: bool = False,
    ) -> None:
        """Queue `template` to the sender, optionally with a reply token for what comes next.
        `anonymous`: no name in the greeting or the To line (a stranger's display name is
        theirs to write, and would be reflected to whatever address they forged); their
        subject is not repeated either. Otherwise the answer goes under their subject, in
        their thread (`sending.answering`)."""
        if self.quiet:
            log.info("message %d: %s not sent (past the answer limits)", self.row_id, template)
            return
        send(
            self.program,
            template=template,
            to=self.sender,
            name="" if anonymous else self._name(),
            context=context,
            key=f"answer:{self.row_id}:{len(self.sent)}:{template}",
            now=self.now,
            auto_submitted=ANSWER,
            token_purpose=token_purpose,
            payload=payload,
            # Nor to an erased address: its owner's words are not kept, the subject neither.
            thread=answering(
                self.message,
                keep_subject=not (anonymous or farewell),
                replied_to=self._replied_to(),
            ),
            # The farewell follows an erasure that took the inbound message with it.
            inbound_id=None if farewell else self.row_id,
            farewell=farewell,
            attachments=attachments,
        )
        self.sent.append(template)

    def _replied_to(self) -> str | None:
        """The Message-ID of our mail whose reply address the sender wrote to: a reply to
        the check-in is tied to it by its token even when the client dropped References."""
        _, token = conversation_token(self)
        return token.message_id if token and token.address == self.sender else None

    def _name(self) -> str:
        """The name we hold for them, else the one they wrote."""
        record = participants.find(self.program.db, self.sender)
        return (record or {}).get("name") or self.message.sender_name


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


def _dkim_domain(turn: Turn) -> str | None:
    """The From domain, when the operator trusts DKIM and the message's signature is aligned
    with it and covers this message to this program's address; else None."""
    config = turn.program.config
    if not config.trust_dkim:
        return None
    row = turn.program.db.execute("SELECT raw FROM messages WHERE id = ?", [turn.row_id])
    raw = (row.fetchone() or [b""])[0]
    return signatures.verified_domain(
        raw,
        turn.sender.rsplit("@", 1)[1],
        signatures.key_lookup(config.dkim_resolver),
        program_address=config.address,
        now=turn.now,
    )


def answered_lately(turn: Turn, template: str) -> bool:
    """Was `template` sent to this sender within STRANGERS_EVERY?"""
    found = turn.program.db.execute(
        "SELECT 1 FROM outbox WHERE recipient = ? AND template = ? AND created_at >= ? LIMIT 1",
        [turn.sender, template, iso(turn.now - STRANGERS_EVERY)],
    )
    return found.fetchone() is not None


def stranger(turn: Turn) -> bool:
    """Nobody we hold a record for: no participant, no coordinator."""
    db = turn.program.db
    return participants.find(db, turn.sender) is None and not coordinators.find(db, turn.sender)


def answer_stranger_once(turn: Turn, template: str, context: dict | None = None) -> str:
    """`template` in its fixed wording (nothing they wrote, not even their name; `context`
    holds only what the program says); to a stranger at most once a day, so that forged
    mail can't make the program a reflector."""
    if stranger(turn) and answered_lately(turn, template):
        log.info("message %d: %s already sent to this stranger today", turn.row_id, template)
        return f"ignored:{template}-today"
    # The participants' commands, for not-understood; nothing of theirs is in it.
    turn.answer(template, {"commands": commands.listing(), **(context or {})}, anonymous=True)
    return template
