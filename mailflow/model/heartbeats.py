"""The heartbeats table: when each recurring job ('tick', 'imap') last finished.

Written by the job itself once it has finished, read by `mailflow status`. A row is a
time, never a sign of life: the process that wrote it may have been killed since.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.config import parse_time
from mailflow.store import iso

TICK = "tick"  # the rules ran to the end (`serve`, `mailflow scheduler`, `mailflow tick`)
IMAP = "imap"  # a pass over the IMAP mailbox finished


@dataclass(frozen=True)
class Beat:
    role: str
    at: datetime
    pid: int


def beat(db: sqlite_utils.Database, role: str, now: datetime) -> None:
    """Record that `role` finished at `now`, in this process. One statement: on its own
    it commits at once, inside a caller's transaction it goes with it."""
    db.execute(
        "INSERT INTO heartbeats (role, at, pid) VALUES (?, ?, ?)"
        " ON CONFLICT (role) DO UPDATE SET at = excluded.at, pid = excluded.pid",
        [role, iso(now), os.getpid()],
    )


def last(db: sqlite_utils.Database) -> dict[str, Beat]:
    """Every role's latest beat."""
    rows = db.execute("SELECT role, at, pid FROM heartbeats").fetchall()
    return {role: Beat(role, parse_time(at), pid) for role, at, pid in rows}
