"""Participants' commands: what anyone may write to the program address."""

from __future__ import annotations

from mailflow import participants
from mailflow.application import details, send_blank_form
from mailflow.commands import command
from mailflow.conversation import Turn
from mailflow.rounds import open_round


@command("HELP", summary="this list of what you can write")
def help_(turn: Turn, arguments: str) -> str:
    turn.answer("help")
    return "help"


@command("APPLY", "JOIN", "SIGN UP", summary="get the application form")
def apply(turn: Turn, arguments: str) -> str:
    return send_blank_form(turn)


@command("STATUS", summary="see the details we hold for you and where you stand")
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
            "partnership": participants.partnership(db, record["id"]),
        },
    )
    return record["status"]
