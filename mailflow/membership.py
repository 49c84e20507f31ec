"""Life events: leaving, pausing and resuming, erasure, and the rematch a partner gets when
the other leaves.

These change the store and tell the partners; the answer to the person who asked (STOP,
PAUSE, ...) is the caller's. Every function runs inside the caller's transaction (or opens
its own), so a change and the mail that reports it are stored together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from mailflow import matching, matchmaker, participants, rounds
from mailflow.cadence import Cadence
from mailflow.config import parse_time
from mailflow.program import Program
from mailflow.sending import send
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

TAKING_PART = ("applied", "waiting", "matched")  # the statuses PAUSE may pause


@dataclass(frozen=True)
class Partnership:
    id: int
    round_id: int
    members: tuple[int, ...]
    term_start: datetime
    term_end: datetime
    created_at: datetime


def active_partnership(program: Program, participant_id: int) -> Partnership | None:
    row = program.db.execute(
        "SELECT id, round_id, member_a, member_b, member_c, term_start, term_end, created_at"
        " FROM partnerships WHERE state = 'active' AND ? IN (member_a, member_b, member_c)"
        " ORDER BY id DESC LIMIT 1",
        [participant_id],
    ).fetchone()
    if row is None:
        return None
    members = tuple(m for m in row[2:5] if m is not None)
    return Partnership(
        row[0], row[1], members, parse_time(row[5]), parse_time(row[6]), parse_time(row[7])
    )


def set_status(program: Program, participant_id: int, status: str, now: datetime) -> None:
    program.db.execute(
        "UPDATE participants SET status = ?, paused_until = NULL, resume_status = NULL,"
        " updated_at = ? WHERE id = ?",
        [status, iso(now), participant_id],
    )


# --- Leaving ---------------------------------------------------------------------------


def leave(program: Program, me: dict, now: datetime, cadence: Cadence, why: str = "left") -> str:
    """STOP: nothing is sent to them any more; their partner is told and, while the term has
    time left, gets a new partner. Returns what became of the partnership, for the log."""
    with transaction(program.db):
        outcome = part_from_partnership(program, me, now, cadence, why)
        set_status(program, me["id"], "left", now)
    return outcome


def part_from_partnership(
    program: Program, me: dict, now: datetime, cadence: Cadence, why: str
) -> str:
    """Take `me` out of their active partnership, if any, and look after those who stay."""
    partnership = active_partnership(program, me["id"])
    if partnership is None:
        return "no partnership"
    db = program.db
    stayers = [m for m in partnership.members if m != me["id"]]
    if len(stayers) == 2:
        # A group of three goes on as a pair.
        a, b = stayers
        db.execute(
            "UPDATE partnerships SET member_a = ?, member_b = ?, member_c = NULL WHERE id = ?",
            [a, b, partnership.id],
        )
        for stayer in stayers:
            other = participants.by_id(program.db, b if stayer == a else a)
            _tell_partner_left(program, stayer, me, partnership, now, why, still_with=other)
        return "group of three goes on as a pair"
    dissolve(program, partnership.id, why, now)
    outcomes = []
    for stayer in stayers:
        outcomes.append(_after_partner_left(program, stayer, me, partnership, now, cadence, why))
    return "; ".join(outcomes)


def dissolve(program: Program, partnership_id: int, why: str, now: datetime) -> None:
    """End a partnership before its term (someone left, was erased, a coordinator ended it)."""
    program.db.execute(
        "UPDATE partnerships SET state = 'dissolved', ended_at = ?, ended_why = ? WHERE id = ?",
        [iso(now), why, partnership_id],
    )


def wait_for_next_round(program: Program, me: dict, now: datetime) -> rounds.Round:
    """Out of a partnership: enrolled in the round accepting applications, and waiting (a
    paused person waits once they resume). Returns that round."""
    nxt = rounds.open_round(program.db, now)
    participants.enrol(program.db, me["id"], nxt.id, now)
    if me["status"] == "paused":
        program.db.execute(
            "UPDATE participants SET resume_status = 'waiting', updated_at = ? WHERE id = ?",
            [iso(now), me["id"]],
        )
    elif me["status"] == "matched":
        set_status(program, me["id"], "waiting", now)
    return nxt


def _after_partner_left(
    program: Program,
    stayer_id: int,
    leaver: dict,
    old: Partnership,
    now: datetime,
    cadence,
    why: str = "left",
) -> str:
    stayer = participants.by_id(program.db, stayer_id)
    if stayer is None:
        return "partner gone"
    days_left = (old.term_end - now).days
    if stayer["status"] == "matched" and days_left >= cadence.rematch_min_days_left:
        newcomer = rematch(program, stayer, old, now)
        if newcomer is not None:
            _tell_partner_left(program, stayer_id, leaver, old, now, why, new_partner=newcomer)
            return f"rematched with {newcomer['id']}"
    # No one to rematch with (or the term is nearly over): they wait for the next round.
    nxt = wait_for_next_round(program, stayer, now)
    _tell_partner_left(
        program,
        stayer_id,
        leaver,
        old,
        now,
        why,
        next_round=nxt.name,
        nearly_over=days_left < cadence.rematch_min_days_left,
    )
    return "partner waits for the next round"


def _tell_partner_left(
    program: Program,
    stayer_id: int,
    leaver: dict,
    old: Partnership,
    now: datetime,
    why: str,
    *,
    still_with: dict | None = None,
    new_partner: dict | None = None,
    next_round: str | None = None,
    nearly_over: bool = False,
) -> None:
    stayer = participants.by_id(program.db, stayer_id)
    assert stayer is not None
    send(
        program,
        template="partner-left",
        to=stayer["email"],
        name=stayer["name"],
        context={
            "leaver": leaver["name"],
            "unreachable": why == "unreachable",
            "still_with": still_with["name"] if still_with else None,
            "new_partner": new_partner["name"] if new_partner else None,
            "next_round": next_round,
            "nearly_over": nearly_over,
            "term_end": iso(old.term_end)[:10],
        },
        key=f"partner-left:{old.id}:{leaver['id']}:{stayer_id}",
        now=now,
    )


def take(program: Program, participant_id: int, now: datetime) -> None:
    """Matched outside a round's matching: they no longer wait for the next round's."""
    set_status(program, participant_id, "matched", now)
    program.db.execute(
        "DELETE FROM applications WHERE participant_id = ?"
        " AND round_id IN (SELECT id FROM rounds WHERE state = 'open')",
        [participant_id],
    )


def add_partnership(
    program: Program,
    round_id: int,
    pair: matching.Pair,
    term_end: datetime,
    made_by: str,
    now: datetime,
) -> int:
    """A partnership made outside a round's matching (a rematch, a pair by hand), from now
    to `term_end`; its members are taken out of the wait. Returns its id."""
    members = sorted(pair.members)
    cursor = program.db.execute(
        "INSERT INTO partnerships (round_id, member_a, member_b, member_c, term_start, term_end,"
        " score, reasons, made_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            round_id,
            *members,
            *[None] * (3 - len(members)),
            iso(now),
            iso(term_end),
            pair.score,
            "; ".join(pair.reasons),
            made_by,
            iso(now),
        ],
    )
    for member in members:
        take(program, member, now)
    return int(cursor.lastrowid)


def rematch(program: Program, stayer: dict, old: Partnership, now: datetime) -> dict | None:
    """Pair the stayer with the best allowed person waiting for a partner, for the rest of
    the old term; introduce them to each other. None when nobody waiting fits."""
    db = program.db
    waiting = participants.select(db, "status = 'waiting' AND id != ?", [stayer["id"]])
    if not waiting:
        return None
    weights = matching.load_weights(program.config.rules)
    seeker, *candidates = matchmaker.applicants(program, [stayer, *waiting], now)
    pair = matching.best_partner(
        seeker,
        candidates,
        weights,
        former=matchmaker.former_partners(program),
    )
    if pair is None:
        return None
    newcomer = next(r for r in waiting if r["id"] in pair.members and r["id"] != stayer["id"])
    partnership_id = add_partnership(program, old.round_id, pair, old.term_end, "rematch", now)
    matchmaker.introduce(
        program,
        partnership_id,
        pair,
        {stayer["id"]: stayer, newcomer["id"]: newcomer},
        rounds.get(db, old.round_id).name,
        now,
        old.term_end,
        now,
        weights.waking_hours,
        template="rematch-intro",
        joining=newcomer["id"],
    )
    return newcomer


# --- Pausing ---------------------------------------------------------------------------


def pause(program: Program, me: dict, until: datetime | None, now: datetime) -> str:
    """PAUSE [until DATE]: nothing scheduled reaches them until then (or RESUME)."""
    if me["status"] == "paused":
        program.db.execute(
            "UPDATE participants SET paused_until = ?, updated_at = ? WHERE id = ?",
            [iso(until) if until else None, iso(now), me["id"]],
        )
        return "changed"
    program.db.execute(
        "UPDATE participants SET status = 'paused', resume_status = ?, paused_until = ?,"
        " updated_at = ? WHERE id = ?",
        [me["status"], iso(until) if until else None, iso(now), me["id"]],
    )
    return "paused"


def resume(program: Program, me: dict, now: datetime) -> str:
    """Back to where they were: in their partnership if it still runs, else waiting."""
    status = me["resume_status"] or "applied"
    if status == "matched" and active_partnership(program, me["id"]) is None:
        status = "waiting"
    set_status(program, me["id"], status, now)
    return status


def resume_due(program: Program, now: datetime) -> list[dict]:
    """Everyone whose pause ends by `now`: resumed and told (the tick's part)."""
    due = participants.select(
        program.db,
        "status = 'paused' AND paused_until IS NOT NULL AND paused_until <= ?",
        [iso(now)],
    )
    for me in due:
        with transaction(program.db):
            resume(program, me, now)
            send(
                program,
                template="resumed",
                to=me["email"],
                name=me["name"],
                context=resumed_context(program, me["id"], by_date=True),
                key=f"resumed:{me['id']}:{me['paused_until']}",
                now=now,
            )
    return due


def resumed_context(program: Program, participant_id: int, *, by_date: bool) -> dict:
    return {
        "was_paused": True,
        "by_date": by_date,
        "partnership": participants.partnership(program.db, participant_id),
    }


# --- Erasure ---------------------------------------------------------------------------


def erase(program: Program, email: str, now: datetime, cadence: Cadence) -> None:
    """DELETE MY DATA: take them out of any partnership (their partner is looked after),
    then remove everything held about the address but a hash that keeps it from being
    written to again. Partnerships keep their member's row id, for the partners' history
    and so that the pair is never made again; that row keeps nothing but the id."""
    db = program.db
    with transaction(db):
        me = participants.find(db, email)
        if me is not None:
            part_from_partnership(program, me, now, cadence, "erased")
            for table in (
                "applications",
                "checkin_answers",
                "away_notices",
                "survey_answers",
                "invitations",
            ):
                db.execute(f"DELETE FROM {table} WHERE participant_id = ?", [me["id"]])
            db.execute("DELETE FROM scheduled WHERE participant_id = ?", [me["id"]])
            blank = ", ".join(f"{column} = ''" for column in participants.PROFILE_COLUMNS)
            db.execute(
                f"UPDATE participants SET email = ?, {blank}, status = 'left',"
                " paused_until = NULL, resume_status = NULL, completed_at = NULL,"
                " created_at = ?, updated_at = ? WHERE id = ?",
                [participants.erased_placeholder(me["id"]), iso(now), iso(now), me["id"]],
            )
        db.execute("DELETE FROM tokens WHERE address = ?", [email])
        inbound = "SELECT id FROM messages WHERE sender = ? COLLATE NOCASE"
        db.execute(f"UPDATE outbox SET inbound_id = NULL WHERE inbound_id IN ({inbound})", [email])
        db.execute("DELETE FROM messages WHERE sender = ? COLLATE NOCASE", [email])
        db.execute("DELETE FROM outbox WHERE recipient = ? COLLATE NOCASE", [email])
        db.execute("DELETE FROM bounce_codes WHERE address = ?", [email])
        db.execute("DELETE FROM bounce_scores WHERE address = ?", [email])
        db.execute(
            "INSERT OR IGNORE INTO erased (address_hash, erased_at) VALUES (?, ?)",
            [participants.address_hash(email), iso(now)],
        )
    log.info("data deleted at its owner's request (participant %s)", me["id"] if me else "-")
