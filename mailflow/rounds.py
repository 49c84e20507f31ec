"""Rounds: which round is accepting applications. (Windows, matching and terms: issue 3.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.store import iso


@dataclass(frozen=True)
class Round:
    id: int
    name: str
    opens_at: str
    closes_at: str | None
    state: str


def open_round(db: sqlite_utils.Database, now: datetime) -> Round:
    """The round accepting applications; a new database gets its first one (CONTRACT.md)."""
    row = db.execute(
        "SELECT id, name, opens_at, closes_at, state FROM rounds WHERE state = 'open'"
        " ORDER BY opens_at, id LIMIT 1"
    ).fetchone()
    if row is None:
        number = db.execute("SELECT count(*) FROM rounds").fetchone()[0] + 1
        cursor = db.execute(
            "INSERT INTO rounds (name, opens_at, state, created_at) VALUES (?, ?, 'open', ?)",
            [f"Round {number}", iso(now), iso(now)],
        )
        return Round(cursor.lastrowid, f"Round {number}", iso(now), None, "open")
    return Round(*row)
