"""Answers to check-ins: a reply to a `checkin` mail, read from its first line above the
quote (read/checkin.py), stored, and followed up."""

from __future__ import annotations

from mailflow.app.alerts import alert
from mailflow.conversation.participant.leaving import leave_now
from mailflow.conversation.turn import Turn, continues, conversation_token
from mailflow.model import partnerships, tokens
from mailflow.model.participants import Status
from mailflow.model.participants import find as find_participant
from mailflow.read.checkin import read_answer
from mailflow.send.sending import send
from mailflow.store import iso


def record_away(turn: Turn) -> str:
    """An auto-reply (out of office) to a check-in: kept as such, not as an answer, so the
    check-in stays open for when they are back. '' when it was not a reply to a check-in."""
    _, token = conversation_token(turn)
    if token is None or token.purpose != tokens.CHECKIN or token.address != turn.sender:
        return ""
    me = find_participant(turn.program.db, turn.sender)
    if me is None:
        return ""
    number = token.payload["number"]
    turn.program.db.execute(
        "INSERT INTO away_notices (partnership_id, participant_id, number, message_row,"
        " received_at) VALUES (?, ?, ?, ?, ?)",
        [token.payload["partnership"], me["id"], number, turn.row_id, iso(turn.now)],
    )
    return f":away from check-in {number}"


@continues(tokens.CHECKIN)
def checkin_reply(turn: Turn, token: tokens.Token) -> str:
    answer = read_answer(turn.first_line)
    if answer is None:
        # A fresh reply address for the same check-in: they may simply answer it again.
        tokens.use(turn.program.db, token.token, turn.now)
        turn.answer(
            "checkin-unclear",
            {"first_line": turn.first_line[:200]},
            token_purpose=tokens.CHECKIN,
            payload=token.payload,
        )
        return "checkin-unclear"
    tokens.use(turn.program.db, token.token, turn.now)
    me = find_participant(turn.program.db, turn.sender)
    partnership_id = token.payload["partnership"]
    if me is not None:
        turn.program.db.execute(
            "INSERT INTO checkin_answers (partnership_id, participant_id, number, answer,"
            " answered_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (partnership_id, participant_id, number)"
            " DO UPDATE SET answer = excluded.answer, answered_at = excluded.answered_at",
            [partnership_id, me["id"], token.payload["number"], answer, iso(turn.now)],
        )
    if answer == 4 and me is not None:
        # "I want to leave": the same as STOP, answered with optout-confirmed; a reply to
        # the check-in's token proves it, so the partnership ends at once.
        return "checkin-4:" + leave_now(turn, me, proven=True)
    nudged = []
    if answer == 3 and me is not None:
        nudged = _no_word(turn, me, partnership_id, token.payload["number"])
    turn.answer("checkin-thanks", {"answer": answer, "nudged": nudged})
    return f"checkin-{answer}"


def _no_word(turn: Turn, me: dict, partnership_id: int, number: int) -> list[str]:
    """Nudge the silent partner(s) at once; past the rules' count of such answers in this
    partnership, tell the coordinators. The names of those nudged."""
    db, program = turn.program.db, turn.program
    members = partnerships.members(db, partnership_id)
    if not members:  # it ended: nobody to nudge, nothing to alert about
        return []
    nudged = []
    for member in [m for m in members if m != me["id"]]:
        partner = db.execute(
            "SELECT email, name FROM participants WHERE id = ? AND status = ?",
            [member, Status.MATCHED],
        ).fetchone()
        if partner is None:
            continue
        send(
            program,
            template="partner-nudge",
            to=partner[0],
            name=partner[1],
            context={"partner": me["name"], "partner_email": me["email"]},
            key=f"nudge:{partnership_id}:{number}:{me['id']}:{member}",
            now=turn.now,
        )
        nudged.append(partner[1])
    count = db.execute(
        "SELECT count(*) FROM checkin_answers WHERE partnership_id = ? AND answer = 3",
        [partnership_id],
    ).fetchone()[0]
    threshold = program.rules.cadence.alert_no_word_answers
    if count >= threshold:
        alert(program, [(partnership_id, "no-word", "-", {"answers": count})], turn.now)
    return nudged
