"""Rounds: which round accepts applications, which is matched next, and the term it runs.

A new database has one round accepting applications. An application that arrives after a
round's window has closed (its `closes_at`, set by a coordinator) joins the next round.
When a round is matched its term starts, lasting `term_months` from `rules/program.toml`
unless the round says otherwise, and the next round starts accepting applications.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.config import parse_time

# The default term is read with the other rules files (`program.rules.term_months`); the
# name stays here too, beside the arithmetic that uses it.
from mailflow.rulebook.term import term_months as term_months
from mailflow.store import iso

COLUMNS = "id, name, opens_at, closes_at, term_start, term_end, state, match_at, matched_at"


@dataclass(frozen=True)
class Round:
    id: int
    name: str
    opens_at: str
    closes_at: str | None
    term_start: str | None
    term_end: str | None
    state: str
    match_at: str | None = None
    matched_at: str | None = None


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months: 31 January plus one month is the last day of February."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _open_rounds(db: sqlite_utils.Database) -> list[Round]:
    rows = db.execute(
        f"SELECT {COLUMNS} FROM rounds WHERE state = 'open' ORDER BY opens_at, id"
    ).fetchall()
    return [Round(*row) for row in rows]


def create(db: sqlite_utils.Database, now: datetime, name: str | None = None) -> Round:
    number = db.execute("SELECT count(*) FROM rounds").fetchone()[0] + 1
    name = name or f"Round {number}"
    cursor = db.execute(
        "INSERT INTO rounds (name, opens_at, state, created_at) VALUES (?, ?, 'open', ?)",
        [name, iso(now), iso(now)],
    )
    return Round(cursor.lastrowid, name, iso(now), None, None, None, "open")


def accepting(db: sqlite_utils.Database, now: datetime) -> tuple[Round, Round | None]:
    """(the round an application made now joins, the round whose window it missed)."""
    missed = None
    for candidate in _open_rounds(db):
        if candidate.closes_at is None or parse_time(candidate.closes_at) > now:
            return candidate, missed
        missed = candidate
    return create(db, now), missed


def open_round(db: sqlite_utils.Database, now: datetime) -> Round:
    """The round accepting applications now; a new database gets its first one."""
    return accepting(db, now)[0]


def to_match(db: sqlite_utils.Database, now: datetime) -> Round:
    """The round the next matching is for: the earliest round not yet matched."""
    rounds = _open_rounds(db)
    return rounds[0] if rounds else create(db, now)


def term_of(matched: Round, now: datetime, months: int) -> tuple[datetime, datetime]:
    """The term a round matched `now` runs: from now, or from the START a coordinator gave
    it if that is later, for `months` unless an end was given."""
    start = max(now, parse_time(matched.match_at)) if matched.match_at else now
    end = parse_time(matched.term_end) if matched.term_end else add_months(start, months)
    return start, end


def next_round(db: sqlite_utils.Database, matched: Round, now: datetime) -> Round:
    """The round those left out of `matched` wait for, the one accepting applications
    once it is matched; created when there is none."""
    for candidate in _open_rounds(db):
        if candidate.id != matched.id and (
            candidate.closes_at is None or parse_time(candidate.closes_at) > now
        ):
            return candidate
    return create(db, now)


def mark_matched(
    db: sqlite_utils.Database, matched: Round, now: datetime, months: int
) -> tuple[datetime, datetime]:
    """Start the round's term (`term_of`) and make sure a next round accepts applications."""
    start, end = term_of(matched, now, months)
    db.execute(
        "UPDATE rounds SET state = 'matched', matched_at = ?, term_start = ?, term_end = ?"
        " WHERE id = ?",
        [iso(now), iso(start), iso(end), matched.id],
    )
    if not [r for r in _open_rounds(db) if r.id != matched.id]:
        create(db, now)
    return start, end


def get(db: sqlite_utils.Database, round_id: int) -> Round:
    return Round(*db.execute(f"SELECT {COLUMNS} FROM rounds WHERE id = ?", [round_id]).fetchone())


def named(db: sqlite_utils.Database, name: str) -> Round | None:
    """The round of this name (any case); of two so named, the later."""
    row = db.execute(
        f"SELECT {COLUMNS} FROM rounds WHERE lower(name) = lower(?) ORDER BY id DESC LIMIT 1",
        [name.strip()],
    ).fetchone()
    return Round(*row) if row else None


def running_term(db: sqlite_utils.Database, now: datetime) -> tuple[int, datetime] | None:
    """(round id, term end) of the latest round whose term is running at `now`."""
    row = db.execute(
        "SELECT id, term_end FROM rounds WHERE state = 'matched' AND term_end > ?"
        " ORDER BY term_end DESC, id DESC LIMIT 1",
        [iso(now)],
    ).fetchone()
    return (row[0], parse_time(row[1])) if row else None


def to_schedule(db: sqlite_utils.Database, name: str, now: datetime) -> Round | None:
    """The round a coordinator's schedule of `name` changes: the open round of that name,
    else the round now accepting applications if nobody has scheduled it yet; None: a new
    round."""
    row = db.execute(
        f"SELECT {COLUMNS} FROM rounds WHERE state = 'open' AND lower(name) = lower(?)",
        [name],
    ).fetchone()
    if row:
        return Round(*row)
    current = open_round(db, now)
    return current if current.closes_at is None else None


def schedule(
    db: sqlite_utils.Database,
    existing: Round | None,
    name: str,
    opens: datetime,
    closes: datetime,
    start: datetime,
    end: datetime | None,
    now: datetime,
) -> None:
    """Give a round its name, application window and term (`end` None: the usual length
    from START): `existing`, or a new open round when it is None."""
    values = [name, iso(opens), iso(closes), iso(start), iso(end) if end else None]
    if existing is None:
        db.execute(
            "INSERT INTO rounds (name, opens_at, closes_at, match_at, term_end, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'open', ?)",
            [*values, iso(now)],
        )
        return
    db.execute(
        "UPDATE rounds SET name = ?, opens_at = ?, closes_at = ?, match_at = ?, term_end = ?"
        " WHERE id = ?",
        [*values, existing.id],
    )
