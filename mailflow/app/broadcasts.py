"""A coordinator's BROADCAST, mailed to everyone taking part, a batch at a time.

The command stores the broadcast (`start`) in the transaction that carries it out, and
its copies are queued afterwards (`send_pending`, before each delivery pass, as a
discussion post's copies are), in batches made outside the write lock and stored in
short transactions (`sending.send_in_batches`): a broadcast to 70,000 people used to hold
the lock for half a minute inside the coordinator's command while mail coming in waited.
Each copy keeps its idempotency key (the coordinator's message and the participant), and
the progress is stored with each batch, so a crash midway neither loses nor repeats one.
Who is written to is decided as the batch is made: someone who stops meanwhile is not.
"""

from __future__ import annotations

import json
from datetime import datetime

from mailflow.model import participants
from mailflow.model.participants import Status
from mailflow.program import Program
from mailflow.send.sending import make, send_in_batches
from mailflow.store import iso, transaction

# The statuses a broadcast reaches: everyone taking part now. Paused people asked for quiet.
BROADCAST_TO = (Status.APPLIED, Status.WAITING, Status.MATCHED)
CHUNK = 2000  # people read from the store at a time


def audience(
    program: Program, countries: list[str] | None, after: int = 0, limit: int | None = None
) -> list[dict]:
    """Those a broadcast reaches (of `countries`, for a country coordinator's), by id."""
    where = f"status IN ({', '.join('?' for _ in BROADCAST_TO)}) AND id > ?"
    values: list = [*BROADCAST_TO, after]
    if countries is not None:
        where += f" AND country IN ({', '.join('?' for _ in countries)})"
        values += sorted(countries)
    return participants.select(program.db, where, values, limit)


def start(
    program: Program,
    *,
    source_row: int,
    subject: str,
    text: str,
    sender: str,
    countries: list[str] | None,
    now: datetime,
) -> None:
    """Keep a broadcast to be sent, in the caller's transaction."""
    program.db.execute(
        "INSERT INTO broadcasts (source_row, subject, text, sender, countries, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            source_row,
            subject,
            text,
            sender,
            None if countries is None else json.dumps(sorted(countries)),
            iso(now),
        ],
    )


def send_pending(program: Program, now: datetime | None = None) -> int:
    """Queue the copies of every broadcast not yet sent in full; how many were queued."""
    now = now or program.now()
    pending = program.db.execute(
        "SELECT id, source_row, subject, text, sender, countries, after FROM broadcasts"
        " WHERE done_at IS NULL ORDER BY id"
    ).fetchall()
    return sum(_send(program, row, now) for row in pending)


def _send(program: Program, row: tuple, now: datetime) -> int:
    db, queued = program.db, 0
    broadcast_id, source_row, subject, text, sender, countries, after = row
    chosen = None if countries is None else json.loads(countries)
    context = {"subject": subject, "text": text, "sender": sender}

    def copy(record: dict):
        return make(
            program,
            template="broadcast",
            to=record["email"],
            name=record["name"],
            context=context,
            key=f"broadcast:{source_row}:{record['id']}",
            now=now,
        )

    def progress(batch: list[dict]) -> None:
        db.execute("UPDATE broadcasts SET after = ? WHERE id = ?", [batch[-1]["id"], broadcast_id])

    while True:
        people = audience(program, chosen, after, CHUNK)
        queued += send_in_batches(program, people, copy, now, also=progress).queued
        if len(people) < CHUNK:
            break
        after = people[-1]["id"]
    with transaction(db):
        db.execute("UPDATE broadcasts SET done_at = ? WHERE id = ?", [iso(now), broadcast_id])
    return queued
