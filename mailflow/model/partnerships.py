"""Partnerships: made (by a round's matching, or a rematch or a pair by hand), narrowed
(a group of three that goes on as a pair), ended at the term's end or dissolved before
it, and read back.

The only SQL that writes the partnerships table or names its member columns; everyone
else asks here. Nothing here decides who is partnered (that is `matching` and `app`) and
nothing here sends mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.config import parse_time
from mailflow.model import participants
from mailflow.store import iso

MEMBER_COLUMNS = ("member_a", "member_b", "member_c")  # a pair leaves member_c NULL
MEMBERS = ", ".join(MEMBER_COLUMNS)


def members_of(alias: str) -> str:
    """The member columns of the partnership row named `alias` in a query."""
    return ", ".join(f"{alias}.{column}" for column in MEMBER_COLUMNS)


def in_round() -> str:
    """A query of the participant ids in a round's active partnerships, for `IN (...)`;
    it takes the round's id as the named parameter :round."""
    return " UNION ALL ".join(
        f"SELECT {column} FROM partnerships"
        f" WHERE round_id = :round AND state = 'active' AND {column} IS NOT NULL"
        for column in MEMBER_COLUMNS
    )


MOST = 3


@dataclass(frozen=True)
class Partnership:
    id: int
    round_id: int
    members: tuple[int, ...]  # participant ids, in the order stored
    term_start: datetime
    term_end: datetime
    created_at: datetime  # when its members were introduced
    state: str = "active"  # or 'ended' (the term is over) or 'dissolved' (before it)


def _read(
    db: sqlite_utils.Database, where: str, parameters: Iterable = (), limit: int = -1
) -> list[Partnership]:
    """The partnerships that meet `where`, in id order."""
    rows = db.execute(
        f"SELECT id, round_id, {MEMBERS}, term_start, term_end, created_at, state"
        f" FROM partnerships WHERE {where} ORDER BY id LIMIT ?",
        [*parameters, limit],
    ).fetchall()
    # Partnerships introduced together share their dates: each text is read once (a tick
    # reads every active partnership).
    times: dict[str, datetime] = {}

    def time(text: str) -> datetime:
        if text not in times:
            times[text] = parse_time(text)
        return times[text]

    return [
        Partnership(
            id=partnership_id,
            round_id=round_id,
            members=tuple(m for m in (a, b, c) if m is not None),
            term_start=time(start),
            term_end=time(end),
            created_at=time(created),
            state=state,
        )
        for partnership_id, round_id, a, b, c, start, end, created, state in rows
    ]


# --- Reading ---------------------------------------------------------------------------


def get(db: sqlite_utils.Database, partnership_id: int) -> Partnership | None:
    """The partnership with this id, in whatever state."""
    return next(iter(_read(db, "id = ?", [partnership_id])), None)


def active(db: sqlite_utils.Database, participant_id: int) -> Partnership | None:
    """The participant's active partnership (the latest, were there ever two)."""
    found = _read(db, f"state = 'active' AND ? IN ({MEMBERS})", [participant_id])
    return found[-1] if found else None


def running(db: sqlite_utils.Database) -> list[Partnership]:
    """Every active partnership, in id order."""
    return _read(db, "state = 'active'")


def running_rounds(db: sqlite_utils.Database) -> list[int]:
    """The rounds with an active partnership: those whose discussion is going on."""
    rows = db.execute(
        "SELECT DISTINCT round_id FROM partnerships WHERE state = 'active' ORDER BY round_id"
    )
    return [row[0] for row in rows.fetchall()]


def ending_by(db: sqlite_utils.Database, now: datetime, limit: int | None) -> list[Partnership]:
    """The active partnerships whose term is over by `now`, the first `limit` by id."""
    return _read(
        db, "state = 'active' AND term_end <= ?", [iso(now)], -1 if limit is None else limit
    )


def members(db: sqlite_utils.Database, partnership_id: int) -> tuple[int, ...]:
    """The members of the partnership while it is active; none once it ended."""
    partnership = get(db, partnership_id)
    return partnership.members if partnership and partnership.state == "active" else ()


def ever_paired(db: sqlite_utils.Database) -> frozenset[frozenset[int]]:
    """Every two people who were ever in one partnership, whatever became of it."""
    pairs = set()
    for row in db.execute(f"SELECT {MEMBERS} FROM partnerships"):
        present = [m for m in row if m is not None]
        pairs.update(frozenset((a, b)) for a in present for b in present if a < b)
    return frozenset(pairs)


def summary(db: sqlite_utils.Database, participant_id: int) -> dict | None:
    """The participant's active partnership as their mail shows it: the partners' names
    and addresses, and the term's dates."""
    partnership = active(db, participant_id)
    if partnership is None:
        return None
    others = [m for m in partnership.members if m != participant_id]
    marks = ", ".join("?" for _ in others)
    partners = participants.select(db, f"id IN ({marks})", others)
    return {
        "partners": [{"name": p["name"], "email": p["email"]} for p in partners],
        "term_start": iso(partnership.term_start)[:10],
        "term_end": iso(partnership.term_end)[:10],
    }


def listing(db: sqlite_utils.Database) -> Iterable[tuple]:
    """Every partnership as the roster exports it, in id order: the round's name, the
    members' addresses (the third empty for a pair), term start and end, state and score,
    then the members' countries (for a coordinator's own countries)."""
    return db.execute(
        "SELECT rounds.name, a.email, b.email, c.email, p.term_start, p.term_end, p.state,"
        " p.score, a.country, b.country, c.country FROM partnerships p"
        " JOIN rounds ON rounds.id = p.round_id"
        " JOIN participants a ON a.id = p.member_a JOIN participants b ON b.id = p.member_b"
        " LEFT JOIN participants c ON c.id = p.member_c ORDER BY p.id"
    )


# --- Changing --------------------------------------------------------------------------


def add(
    db: sqlite_utils.Database,
    round_id: int,
    members: Sequence[int],
    term_start: datetime,
    term_end: datetime,
    score: int,
    reasons: str,
    made_by: str,
    now: datetime,
) -> int:
    """A new active partnership of two or three people; its id. `reasons` are kept as
    the partners read them."""
    cursor = db.execute(
        f"INSERT INTO partnerships (round_id, {MEMBERS}, term_start, term_end, score, reasons,"
        " made_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            round_id,
            *members,
            *[None] * (MOST - len(members)),
            iso(term_start),
            iso(term_end),
            score,
            reasons,
            made_by,
            iso(now),
        ],
    )
    return int(cursor.lastrowid)


def go_on_as_pair(db: sqlite_utils.Database, partnership_id: int, a: int, b: int) -> None:
    """A group of three, one of whom left, goes on as the pair `a` and `b`."""
    db.execute(
        "UPDATE partnerships SET member_a = ?, member_b = ?, member_c = NULL WHERE id = ?",
        [a, b, partnership_id],
    )


def end(db: sqlite_utils.Database, partnership_id: int, now: datetime) -> None:
    """The term is over."""
    db.execute(
        "UPDATE partnerships SET state = 'ended', ended_at = ?, ended_why = 'term' WHERE id = ?",
        [iso(now), partnership_id],
    )


def dissolve(db: sqlite_utils.Database, partnership_id: int, why: str, now: datetime) -> None:
    """Ended before its term (someone left, was erased, a coordinator ended it)."""
    db.execute(
        "UPDATE partnerships SET state = 'dissolved', ended_at = ?, ended_why = ? WHERE id = ?",
        [iso(now), why, partnership_id],
    )
