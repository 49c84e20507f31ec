"""Participant records: saving a validated profile, enrolling in a round, reading back,
and a participant's status.

Applying by email and `mailflow import` both save through here, so an address always has
exactly one participant row and at most one application per round. `set_status` is the
only code that writes a status: whoever changes where someone stands (matching, a life
event, a term's end, a bounce) goes through it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

import sqlite_utils

from mailflow.read.form import FIELDS, Profile
from mailflow.store import iso, records

LIST_SEPARATOR = "; "
PROFILE_COLUMNS = tuple(entry.key for entry in FIELDS)  # in form order
ERASED_DOMAIN = "erased.invalid"  # RFC 2606: never a real address


class Status(StrEnum):
    """Where a participant stands: the CHECK on participants.status in
    migrations/0001_initial.sql, value for value."""

    APPLIED = "applied"  # applied to a round, not yet matched
    WAITING = "waiting"  # left out of a matching (or their partner left): the next round
    MATCHED = "matched"  # in an active partnership
    PAUSED = "paused"  # nothing scheduled reaches them; resume_status says what they were
    LEFT = "left"  # STOP, or their data erased
    COMPLETED = "completed"  # their term ended
    UNREACHABLE = "unreachable"  # mail to them bounces


# The columns of a pause, cleared with a status that ends one or rules it out (RESUME,
# STOP, a term's end, a bounce): no date to resume on, nothing to return to.
NO_PAUSE = {"paused_until": None, "resume_status": None}


def upsert(
    db: sqlite_utils.Database, email: str, profile: Profile, now: datetime
) -> tuple[int, bool]:
    """Insert or update the participant with this address; (id, was it an update)."""
    record = profile.as_record()
    existing = db.execute("SELECT id FROM participants WHERE email = ?", [email]).fetchone()
    if existing:
        assignments = ", ".join(f"{key} = ?" for key in record)
        db.execute(
            f"UPDATE participants SET {assignments}, updated_at = ? WHERE id = ?",
            [*record.values(), iso(now), existing[0]],
        )
        return existing[0], True
    columns = ", ".join(record)
    marks = ", ".join("?" for _ in record)
    cursor = db.execute(
        f"INSERT INTO participants (email, {columns}, status, created_at, updated_at)"
        f" VALUES (?, {marks}, ?, ?, ?)",
        [email, *record.values(), Status.APPLIED, iso(now), iso(now)],
    )
    return int(cursor.lastrowid), False


def set_status(
    db: sqlite_utils.Database,
    participant_id: int,
    status: Status,
    now: datetime,
    **columns: str | None,
) -> None:
    """Give the participant this status as of `now`; `columns` are the other columns that
    change with it (a pause's, `completed_at`), written in the same UPDATE."""
    assignments = "".join(f", {name} = ?" for name in columns)
    db.execute(
        f"UPDATE participants SET status = ?{assignments}, updated_at = ? WHERE id = ?",
        [Status(status), *columns.values(), iso(now), participant_id],
    )


def enrol(db: sqlite_utils.Database, participant_id: int, round_id: int, now: datetime) -> None:
    """Record (or refresh) the participant's application to a round."""
    db.execute(
        "INSERT INTO applications (participant_id, round_id, applied_at, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (participant_id, round_id)"
        " DO UPDATE SET updated_at = excluded.updated_at",
        [participant_id, round_id, iso(now), iso(now)],
    )


def select(
    db: sqlite_utils.Database, where: str, parameters: list, limit: int | None = None
) -> list[dict]:
    """Whole participant records, in id order (the first `limit` of them)."""
    most = "" if limit is None else f" LIMIT {int(limit)}"
    query = f"SELECT * FROM participants WHERE {where} ORDER BY id{most}"
    return records(db.execute(query, parameters))


def find(db: sqlite_utils.Database, email: str) -> dict | None:
    return next(iter(select(db, "email = ?", [email])), None)


def by_id(db: sqlite_utils.Database, participant_id: int) -> dict | None:
    return next(iter(select(db, "id = ?", [participant_id])), None)


def split(value: str) -> list[str]:
    return [item for item in (value or "").split(LIST_SEPARATOR) if item]


def address_hash(db: sqlite_utils.Database, email: str) -> str:
    """The erasure mark of an address: an HMAC keyed with the installation's secret, so that
    whoever has a copy of the database can't test a guessed address against it."""
    secret = db.execute("SELECT value FROM settings WHERE key = 'message_id_secret'").fetchone()
    return hmac.new(secret[0].encode(), _canonical(email), hashlib.sha256).hexdigest()


def _canonical(email: str) -> bytes:
    return email.strip().lower().encode()


def _marks(db: sqlite_utils.Database, email: str) -> list[str]:
    # Marks written before they were keyed are a bare SHA-256: still honoured, never written.
    return [address_hash(db, email), hashlib.sha256(_canonical(email)).hexdigest()]


def is_erased(db: sqlite_utils.Database, email: str) -> bool:
    """Did the owner of this address have their data deleted? Then we never write to it."""
    found = db.execute("SELECT 1 FROM erased WHERE address_hash IN (?, ?)", _marks(db, email))
    return found.fetchone() is not None


def erased_among(db: sqlite_utils.Database, emails: list[str]) -> set[str]:
    """Those of `emails` whose owners had their data deleted: `is_erased` for a big send,
    the secret read once and the marks looked up a few hundred at a time."""
    secret = db.execute("SELECT value FROM settings WHERE key = 'message_id_secret'").fetchone()
    marks: dict[str, str] = {}
    for email in emails:
        canonical = _canonical(email)
        marks[hmac.new(secret[0].encode(), canonical, hashlib.sha256).hexdigest()] = email
        marks[hashlib.sha256(canonical).hexdigest()] = email
    found, hashes = set(), list(marks)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        places = ", ".join("?" * len(chunk))
        query = f"SELECT address_hash FROM erased WHERE address_hash IN ({places})"
        rows = db.execute(query, chunk)
        found.update(marks[mark] for (mark,) in rows.fetchall())
    return found


def mark_erased(db: sqlite_utils.Database, email: str, now: datetime) -> None:
    db.execute(
        "INSERT OR IGNORE INTO erased (address_hash, erased_at) VALUES (?, ?)",
        [address_hash(db, email), iso(now)],
    )


def unerase(db: sqlite_utils.Database, email: str) -> None:
    """They asked to take part again: the mark goes, whichever form it has."""
    db.execute("DELETE FROM erased WHERE address_hash IN (?, ?)", _marks(db, email))


def erased_placeholder(participant_id: int) -> str:
    """The address an erased participant's row keeps: only its id, at a domain that can
    never receive mail."""
    return f"erased-{participant_id}@{ERASED_DOMAIN}"
