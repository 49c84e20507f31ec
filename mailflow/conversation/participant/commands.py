"""Participants' commands: what anyone may write to the program address (leaving, and
erasing one's data, are `participant.leaving`).

What changes a person's data or membership (UPDATE, PAUSE, AGAIN after leaving) is done
at once only for a proven message (see `conversation.turn`); otherwise it travels in the token
of a `change-confirm` mailed to the address, and a clear YES in reply carries it out.
STOP stays easy: unproven, it stops all scheduled mail at once (an open-ended pause) and
its answer carries a token; a reply to that proves it and ends the partnership, and
RESUME (or a reply UNDO) undoes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailflow.app import discussions, membership
from mailflow.conversation import commands
from mailflow.conversation.commands import command
from mailflow.conversation.participant.application import details, send_blank_form
from mailflow.conversation.turn import Turn, continues, says_yes
from mailflow.model import network, participants, partnerships, tokens
from mailflow.model.participants import Status
from mailflow.model.rounds import accepting, open_round
from mailflow.read import form
from mailflow.read.dates import read_date
from mailflow.store import iso


@command("HELP")
def help_(turn: Turn, arguments: str) -> str:
    turn.answer("help", {"commands": commands.listing()})
    return "help"


@command("APPLY", "JOIN", "SIGN UP")
def apply(turn: Turn, arguments: str) -> str:
    return send_blank_form(turn)


@command("STATUS")
def status(turn: Turn, arguments: str) -> str:
    db = turn.program.db
    record = participants.find(db, turn.sender)
    if record is None:
        turn.answer("status", {"participant": None})
        return "unknown"
    application = db.execute(
        "SELECT rounds.name, rounds.state, applications.applied_at FROM applications"
        " JOIN rounds ON rounds.id = applications.round_id"
        " WHERE applications.participant_id = ? ORDER BY applications.id DESC LIMIT 1",
        [record["id"]],
    ).fetchone()
    turn.answer(
        "status",
        {
            "participant": record,
            "details": details(record),
            "application": dict(
                zip(("round", "round_state", "applied_at"), application, strict=True)
            )
            if application
            else None,
            "open_round": open_round(db, turn.now).name,
            "partnership": partnerships.summary(db, record["id"]),
            "discussion": _discussion(turn, record),
            "network": network.listing(db, record["id"]),
        },
    )
    return record["status"]


def _discussion(turn: Turn, record: dict) -> dict:
    """How their round's discussion reaches them, for STATUS."""
    mode, chosen = discussions.delivery(turn.program, record["id"])
    where = discussions.of_participant(turn.program, record["id"])
    return {"mode": mode, "chosen": chosen, "address": where.address if where else None}


# --- Life events -----------------------------------------------------------------------


def sender_record(turn: Turn) -> dict | None:
    """The sender's participant record, if they have one."""
    return participants.find(turn.program.db, turn.sender)


# Changes defined in other modules of this folder, carried out by a confirming reply:
# action -> (turn, the sender's record, the token's payload) -> outcome.
CONFIRMED_CHANGES: dict[str, Callable[[Turn, dict | None, dict], str]] = {}


def ask_first(turn: Turn, action: str, context: dict, payload: dict) -> str:
    """An unproven change: ask the address's owner, the change carried in the token (a
    clear YES in reply carries it out: `change_reply`)."""
    turn.answer(
        "change-confirm",
        {"action": action, **context},
        token_purpose=tokens.CHANGE,
        payload={"action": action, **payload},
    )
    return f"{action}-confirm"


@continues(tokens.CHANGE)
def change_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to change-confirm: only a clear YES carries the change out."""
    tokens.use(turn.program.db, token.token, turn.now)
    action = token.payload.get("action", "")
    if not says_yes(turn.first_line):
        turn.answer("change-cancelled", {"action": action})
        return f"{action}-cancelled"
    me = sender_record(turn)
    if action == "update":
        return _update(turn, me, token.payload.get("changes", {}), proven=True)
    if action == "pause":
        until = token.payload.get("until")
        return _pause(turn, me, datetime.fromisoformat(until) if until else None, proven=True)
    if action == "again":
        return _again(turn, me, proven=True)
    if action == "resume":
        return resume_now(turn, me, proven=True)
    if action in CONFIRMED_CHANGES:
        return CONFIRMED_CHANGES[action](turn, me, token.payload)
    turn.answer("change-cancelled", {"action": action})
    return "unknown-change"


@command(
    "PAUSE",
    usage="PAUSE [until DATE]",
)
def pause(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None or me["status"] not in (*membership.TAKING_PART, Status.PAUSED):
        turn.answer("paused", {"state": "not-taking-part", "status": me and me["status"]})
        return "not-taking-part"
    until = None
    if arguments.strip():
        until = read_date(arguments, turn.now)
        problem = None
        if until is None:
            problem = "unreadable"
        elif until <= turn.now:
            problem = "past"
        if problem:
            turn.answer("paused", {"state": problem, "written": arguments[:100]})
            return f"date-{problem}"
    return _pause(turn, me, until, proven=turn.proven)


def _pause(turn: Turn, me: dict | None, until: datetime | None, *, proven: bool) -> str:
    if me is None or me["status"] not in (*membership.TAKING_PART, Status.PAUSED):
        turn.answer("paused", {"state": "not-taking-part", "status": me and me["status"]})
        return "not-taking-part"
    if until is not None and until <= turn.now:  # confirmed after the date it named
        turn.answer("paused", {"state": "past", "written": f"until {until.date().isoformat()}"})
        return "date-past"
    if not proven:
        shown = until.date().isoformat() if until else None
        return ask_first(turn, "pause", {"until": shown}, {"until": iso(until) if until else None})
    state = membership.pause(turn.program, me, until, turn.now)
    turn.answer(
        "paused",
        {
            "state": state,
            "until": until.date().isoformat() if until else None,
            "partnership": partnerships.summary(turn.program.db, me["id"]),
        },
    )
    return state


@command("RESUME")
def resume(turn: Turn, arguments: str) -> str:
    return resume_now(turn, sender_record(turn), proven=turn.proven)


def resume_now(turn: Turn, me: dict | None, *, proven: bool) -> str:
    if me is None or me["status"] != Status.PAUSED:
        turn.answer("resumed", {"was_paused": False, "status": me and me["status"]})
        return "not-paused"
    if not proven:
        # A forged RESUME would restart the mail of someone who paused, or whose STOP
        # is waiting for its proof: a STOP is always acted on, so its undoing needs proof.
        return ask_first(turn, "resume", {}, {})
    status = membership.resume(turn.program, me, turn.now)
    turn.answer("resumed", membership.resumed_context(turn.program, me["id"], by_date=False))
    return status


@command(
    "UPDATE",
    usage="UPDATE, then Field: value lines",
)
def update(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None:
        turn.answer("updated", {"known": False})
        return "unknown"
    lines = turn.message.reply.splitlines()
    # The first line is UPDATE itself, perhaps followed by a first change on the same line.
    rest = [arguments, *lines[1:]] if lines and commands.find(lines[0]) else lines
    changes = form.read_answers("\n".join(rest))
    if not changes:
        turn.answer("updated", {"known": True, "changes": [], "problems": [], "labels": _labels()})
        return "nothing-to-change"
    return _update(turn, me, changes, proven=turn.proven)


def _update(turn: Turn, me: dict | None, changes: dict[str, str], *, proven: bool) -> str:
    if me is None:
        turn.answer("updated", {"known": False})
        return "unknown"
    before = form.answers_from_record(me)
    profile, problems = form.validate({**before, **changes}, turn.program.choices)
    if problems:
        turn.answer(
            "updated",
            {"known": True, "changes": [], "problems": problems, "labels": _labels()},
        )
        return "update-problems"
    assert profile is not None
    after = details({**me, **profile.as_record()})
    old = dict(details(me))
    changed = [
        (label, old.get(label, ""), value) for label, value in after if old.get(label) != value
    ]
    if changed and not proven:
        return ask_first(turn, "update", {"changes": changed}, {"changes": changes})
    participants.upsert(turn.program.db, turn.sender, profile, turn.now)
    turn.answer("updated", {"known": True, "changes": changed, "problems": [], "details": after})
    return "updated" if changed else "unchanged"


def _labels() -> list[str]:
    return [entry.label for entry in form.FIELDS]


# The statuses AGAIN takes back in: asked to confirm unless proven, then applied afresh.
OUT_OF_THE_PROGRAM = (Status.COMPLETED, Status.LEFT, Status.UNREACHABLE)


@command(
    "AGAIN",
    "REJOIN",
    "SIGN UP AGAIN",
)
def again(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None:
        return send_blank_form(turn)
    return _again(turn, me, proven=turn.proven)


def _again(turn: Turn, me: dict | None, *, proven: bool) -> str:
    db = turn.program.db
    if me is None:
        return send_blank_form(turn)
    if me["status"] in (Status.MATCHED, Status.PAUSED):
        turn.answer(
            "signup-again",
            {"state": me["status"], "partnership": partnerships.summary(db, me["id"])},
        )
        return f"still-{me['status']}"
    current, _ = accepting(db, turn.now)
    if me["status"] in OUT_OF_THE_PROGRAM and not proven:
        return ask_first(turn, "again", {"round": current.name, "was": me["status"]}, {})
    participants.enrol(db, me["id"], current.id, turn.now)
    if me["status"] in OUT_OF_THE_PROGRAM:
        participants.set_status(db, me["id"], Status.APPLIED, turn.now, completed_at=None)
    turn.answer(
        "signup-again",
        {"state": "enrolled", "was": me["status"], "round": current.name, "details": details(me)},
    )
    return "enrolled"
