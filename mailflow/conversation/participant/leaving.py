"""Leaving: STOP, the reply to the List-Unsubscribe address or to its one-click POST,
the fourth answer to a check-in, and DELETE MY DATA.

Leaving is a person's right, whatever the limits: each of these is acted on even when the
sender is past them (only the answer is held back). STOP stays easy: unproven, it stops
all scheduled mail at once (an open-ended pause) and its answer carries a token; a reply
to that proves it and ends the partnership, and RESUME (or a reply UNDO) undoes it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailflow.app import membership
from mailflow.conversation.commands import command
from mailflow.conversation.participant.commands import resume_now, sender_record
from mailflow.conversation.participant.discussion import quiet_one_click
from mailflow.conversation.turn import ALWAYS_ACTED, Turn, continues, says_yes
from mailflow.model import participants, partnerships, tokens
from mailflow.model.participants import Status
from mailflow.program import Program
from mailflow.send.sending import send

log = logging.getLogger(__name__)

UNDO_WORDS = frozenset({"undo", "no", "resume"})
LEAVE_WORDS = frozenset({"yes", "confirm", "stop", "leave", "opt out", "unsubscribe"})


@command(
    "STOP",
    "OPT OUT",
    "UNSUBSCRIBE",
    "LEAVE",
)
def stop(turn: Turn, arguments: str) -> str:
    return leave_now(turn, proven=turn.proven)


ALWAYS_ACTED.add("STOP")


def leave_now(turn: Turn, me: dict | None = None, *, proven: bool) -> str:
    """STOP, answer 4 to a check-in, or a message to the List-Unsubscribe address. Unproven:
    all scheduled mail stops now, and the partnership ends once a reply proves the STOP."""
    me = me or sender_record(turn)
    if me is None or me["status"] == Status.LEFT:
        turn.answer(
            "optout-confirmed",
            {"known": me is not None, "already": me is not None},
            anonymous=me is None,
        )
        return "already-left" if me else "unknown"
    if not proven:
        membership.hold_all_mail(turn.program, me, turn.now)
        _ask_to_prove_stop(turn, me)
        return "mail-stopped (until the STOP is proven)"
    outcome = membership.leave(turn.program, me, turn.now, turn.program.rules.cadence)
    turn.answer("optout-confirmed", {"known": True, "already": False})
    return f"left ({outcome})"


@continues(tokens.UNSUBSCRIBE, always_acted=True)
def unsubscribe_reply(turn: Turn, token: tokens.Token) -> str:
    # Whatever the message says: writing to this address is the request (RFC 2369).
    tokens.use(turn.program.db, token.token, turn.now)
    return leave_now(turn, proven=True)


@continues(tokens.STOP_CONFIRM, always_acted=True)
def stop_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to the answer to an unproven STOP: it proves the address. YES (or STOP)
    finishes leaving; UNDO (or RESUME, NO) takes them back; anything else asks again."""
    tokens.use(turn.program.db, token.token, turn.now)
    word = " ".join(turn.first_line.lower().strip(" .!").split())
    me = sender_record(turn)
    if word in UNDO_WORDS:
        outcome = resume_now(turn, me, proven=True)
        return outcome if outcome == "not-paused" else "stop-undone"
    if word in LEAVE_WORDS or me is None or me["status"] == Status.LEFT:
        return leave_now(turn, me, proven=True)
    _ask_to_prove_stop(turn, me, unclear=True)
    return "stop-unclear"


def _ask_to_prove_stop(turn: Turn, me: dict, *, unclear: bool = False) -> None:
    """The answer to a STOP waiting for its proof: mail has stopped; a reply finishes it."""
    turn.answer(
        "optout-confirmed",
        {
            "known": True,
            "already": False,
            "pending": True,
            "unclear": unclear,
            "partnership": partnerships.summary(turn.program.db, me["id"]),
        },
        token_purpose=tokens.STOP_CONFIRM,
    )


@command("DELETE MY DATA")
def delete_my_data(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    turn.answer(
        "delete-confirm",
        {
            "known": me is not None,
            "partnership": partnerships.summary(turn.program.db, me["id"]) if me else None,
        },
        token_purpose=tokens.DELETE,
    )
    return "delete-confirm"


@continues(tokens.DELETE, always_acted=True)
def delete_reply(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    if not says_yes(turn.first_line):
        turn.answer("delete-cancelled")
        return "kept"
    membership.erase(turn.program, turn.sender, turn.now, turn.program.rules.cadence)
    turn.answer("data-deleted", farewell=True)
    return "erased"


ONE_CLICK = {tokens.UNSUBSCRIBE: "left", tokens.DISCUSSION_QUIET: "quiet"}


def one_click_kind(program: Program, token: str, now: datetime) -> str | None:
    """What a one-click POST to this token does: 'left' (the program's List-Unsubscribe),
    'quiet' (a discussion's: no more discussion mail), or None for no live such token."""
    found = tokens.find(program.db, token)
    if found is None or not tokens.is_live(found, now):
        return None
    return ONE_CLICK.get(found.purpose)


def one_click(program: Program, token: str, now: datetime) -> str | None:
    """STOP for the address an unsubscribe token was issued to, from a mail client's
    one-click POST (RFC 8058), or QUIET for a discussion's; what was done ('left' or
    'quiet'), None when the token is not a live unsubscribe token."""
    kind = one_click_kind(program, token, now)
    if kind is None:
        return None
    found = tokens.find(program.db, token)
    assert found is not None
    if kind == "quiet":
        quiet_one_click(program, found, now)
        return kind
    me = participants.find(program.db, found.address)
    tokens.use(program.db, found.token, now)
    if me is not None and me["status"] != Status.LEFT:
        membership.leave(program, me, now, program.rules.cadence)
        send(
            program,
            template="optout-confirmed",
            to=me["email"],
            name=me["name"],
            context={"known": True, "already": False},
            key=f"optout:one-click:{found.token}",
            now=now,
        )
    log.info("one-click unsubscribe for participant %s", me["id"] if me else "-")
    return kind
