"""The router: what an ordinary (not automatic) message asks for, and who answers it.

Routing, in order: a command on the first line; a reply tied to a conversation by its
token (in the reply address or In-Reply-To); a filled form sent cold; a command in the
subject; otherwise `not-understood`. Limits may stop the program answering, but never stop
it acting on a person's own STOP, unsubscribe or confirmed erasure.

Every handler is found through the two imports of handler packages below, each of which
imports all of its modules: a command (`@command`) or a reply conversation (`@continues`)
is registered where it is written, and every process that handles mail has all of them.
"""

from __future__ import annotations

import logging

from mailflow.conversation import commands, coordinator, limits, participant
from mailflow.conversation.coordinator import proof as coordination
from mailflow.conversation.participant import application, discussion
from mailflow.conversation.turn import (
    ALWAYS_ACTED,
    CONVERSATIONS,
    Turn,
    answer_stranger_once,
    conversation_token,
)
from mailflow.model import participants, tokens

log = logging.getLogger(__name__)

# The handler packages: imported for what they register.
HANDLERS = (participant, coordinator)


def _discussion_token(turn: Turn) -> tokens.Token | None:
    """The sender's own live discussion token the message was written to, if it was."""
    _, token = conversation_token(turn)
    if token is None or token.purpose != tokens.DISCUSSION or token.address != turn.sender:
        return None
    return token if tokens.is_live(token, turn.now) else None


def _always_acted(turn: Turn) -> bool:
    """A STOP, or a reply to a token whose purpose is acted on whatever the limits. A post
    to a discussion whose first line begins "Stop" is a post, not a STOP."""
    if discussion.round_address(turn) is not None or _discussion_token(turn) is not None:
        return False
    for line in (turn.first_line, turn.subject_command):
        found = commands.find(line)
        if found and found[0].name in ALWAYS_ACTED:
            return True
    _, token = conversation_token(turn)
    return turn.token_proven and token is not None and token.purpose in ALWAYS_ACTED


def handle(turn: Turn) -> str:
    """Answer one ordinary message; return the outcome recorded with it."""
    if participants.is_erased(turn.program.db, turn.sender):
        return application.from_erased(turn)
    role = coordination.find(turn)
    limit = turn.program.config.reply_limit
    limited = limits.verdict(
        turn.program,
        turn.row_id,
        turn.sender,
        turn.message.reply,
        turn.now,
        proven=turn.token_proven,
        # A coordinator's commands may well fill an hour; an autoresponder's loop is still
        # ended by the repeated-text rule.
        limit=limit * limits.COORDINATOR_FACTOR if role else limit,
    )
    if limited.action != "answer":
        if _always_acted(turn):
            turn.quiet = True
            return f"{limited.reason}:acted:" + _route(turn, role)
        if limited.action == "silent":
            log.info(
                "message %d from %s: not answered (%s)", turn.row_id, turn.sender, limited.reason
            )
            return f"ignored:{limited.reason}"
        until = limited.until.strftime("%H:%M on %d %B %Y") if limited.until else ""
        turn.answer(limits.NOTICE, {"answered": limited.answered, "until": until})
        return f"{limited.reason}:notice"
    return _route(turn, role)


def _route(turn: Turn, role) -> str:
    # Mail to a round's discussion is a post before anything else: its first line is
    # whatever the author wrote ("Help with cataloguing?" is not HELP).
    round_id = discussion.round_address(turn)
    if round_id is not None:
        return "discussion:" + discussion.write_to_round(turn, round_id)
    token = _discussion_token(turn)
    if token is not None:
        return "reply:discussion:" + discussion.reply_to_discussion(turn, token)
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
            return answer_stranger_once(turn, "token-expired")
        handler = CONVERSATIONS.get(token.purpose)
        if handler is not None:
            return f"reply:{token.purpose}:" + handler(turn, token)
    if application.is_form(turn):
        return "form:" + application.cold_form(turn)
    found = commands.find(turn.subject_command)
    if found:
        entry, arguments = found
        return f"command:{entry.name.lower()}:" + entry.run(turn, arguments)
    for line in (turn.first_line, turn.subject_command):
        if commands.find(line, coordination.AUDIENCE):
            return coordination.refuse(turn, line)
    # Nothing they wrote is quoted back: the From may be forged, and the answer would carry
    # the forger's words to it under the program's name.
    return answer_stranger_once(turn, "not-understood")
