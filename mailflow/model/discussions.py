"""A round's discussion in the store: its posts, who receives it and how, holds, and the
rounds whose discussion is off.

The only SQL on the discussion tables. Nothing here decides whether a post may go out
(that is `app.discussions`) and nothing here sends mail.

A round's discussion is read by the active participants of the round: members of its
active partnerships whose status is 'matched'. Someone who pauses, leaves, is unreachable
or erased is no longer one, so their delivery ends the moment their status changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.model import partnerships
from mailflow.model.participants import Status
from mailflow.store import iso

ADDRESS_PREFIX = "round-"  # local+round-ID@domain is the round's discussion address
_POST_COLUMNS = ", ".join(
    (
        "id",
        "round_id",
        "author_email",
        "author_name",
        "author_country",
        "facilitator",
        "subject",
        "body",
        "dropped",
        "message_id",
        "parent_id",
        "thread",
        "inbound_id",
        "state",
        "created_at",
        "published_at",
        "decided_by",
        "reason",
    )
)


@dataclass(frozen=True)
class Post:
    id: int
    round_id: int
    author_email: str
    author_name: str
    author_country: str
    facilitator: bool
    subject: str
    body: str
    dropped: str
    message_id: str
    parent_id: int | None
    thread: str  # the References of its copies, space-joined
    inbound_id: int | None
    state: str
    created_at: str
    published_at: str | None
    decided_by: str | None
    reason: str

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(self.thread.split())


@dataclass(frozen=True)
class Reader:
    """An active participant of a round, as the discussion's mail needs them."""

    id: int
    email: str
    name: str
    mode: str  # 'every', 'daily', 'weekly' or 'quiet': their choice, or the rules' default
    chosen_at: str  # when they chose it ('' for the default)


def address(local_part: str, domain: str, round_id: int) -> str:
    return f"{local_part}+{ADDRESS_PREFIX}{round_id}@{domain}"


def round_written_to(recipients, local_part: str, domain: str) -> int | None:
    """The round whose discussion address is among `recipients`, or None."""
    prefix = f"{local_part}+{ADDRESS_PREFIX}"
    for recipient in recipients:
        local, _, at = recipient.lower().rpartition("@")
        number = local[len(prefix) :] if local.startswith(prefix) else ""
        if at == domain and number.isdigit() and len(number) < 10:
            return int(number)
    return None


# --- Who reads it ------------------------------------------------------------------------


def readers(
    db: sqlite_utils.Database,
    round_id: int,
    default: str,
    *,
    modes: tuple[str, ...] | None = None,
    after: int = 0,
    limit: int = -1,
) -> list[Reader]:
    """The round's active participants in id order, past id `after`; only those whose
    delivery is one of `modes` when it is given."""
    rows = db.execute(
        "SELECT p.id, p.email, p.name, coalesce(c.mode, :default), coalesce(c.changed_at, '')"
        " FROM participants p LEFT JOIN discussion_choices c ON c.participant_id = p.id"
        f" WHERE p.id IN ({partnerships.in_round()}) AND p.status = :matched AND p.id > :after"
        + (
            " AND coalesce(c.mode, :default) IN (SELECT value FROM json_each(:modes))"
            if modes
            else ""
        )
        + " ORDER BY p.id LIMIT :limit",
        {
            "round": round_id,
            "default": default,
            "matched": Status.MATCHED,
            "after": after,
            "modes": _json(modes or ()),
            "limit": limit,
        },
    ).fetchall()
    return [Reader(*row) for row in rows]


def _json(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


def reads(db: sqlite_utils.Database, round_id: int, participant_id: int) -> bool:
    """Is this participant one of the round's active participants?"""
    return (
        db.execute(
            f"SELECT 1 FROM participants WHERE id = :id AND status = :matched"
            f" AND id IN ({partnerships.in_round()})",
            {"id": participant_id, "matched": Status.MATCHED, "round": round_id},
        ).fetchone()
        is not None
    )


def mode(db: sqlite_utils.Database, participant_id: int) -> str | None:
    """Their own choice of delivery, or None when they never chose (the default applies)."""
    row = db.execute(
        "SELECT mode FROM discussion_choices WHERE participant_id = ?", [participant_id]
    ).fetchone()
    return row[0] if row else None


def choose(db: sqlite_utils.Database, participant_id: int, chosen: str, now: datetime) -> None:
    db.execute(
        "INSERT INTO discussion_choices (participant_id, mode, changed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (participant_id) DO UPDATE SET mode = excluded.mode,"
        " changed_at = excluded.changed_at",
        [participant_id, chosen, iso(now)],
    )


def digest_through(db: sqlite_utils.Database, participant_id: int) -> str | None:
    row = db.execute(
        "SELECT through FROM discussion_digests WHERE participant_id = ?", [participant_id]
    ).fetchone()
    return row[0] if row else None


def digests_through(db: sqlite_utils.Database, ids: list[int]) -> dict[int, str]:
    """What each of these people's last digest covered, for those who had one."""
    rows = db.execute(
        "SELECT participant_id, through FROM discussion_digests"
        " WHERE participant_id IN (SELECT value FROM json_each(?))",
        [_json(tuple(str(i) for i in ids))],
    )
    return dict(rows.fetchall())


def oldest_digest(db: sqlite_utils.Database, round_id: int) -> str | None:
    """The earliest time a digest to anyone in the round's active partnerships went up to
    (ISO), None when none has had one."""
    return db.execute(
        "SELECT min(through) FROM discussion_digests"
        f" WHERE participant_id IN ({partnerships.in_round()})",
        {"round": round_id},
    ).fetchone()[0]


def digested(db: sqlite_utils.Database, participant_id: int, through: datetime) -> None:
    db.execute(
        "INSERT INTO discussion_digests (participant_id, through) VALUES (?, ?)"
        " ON CONFLICT (participant_id) DO UPDATE SET through = excluded.through",
        [participant_id, iso(through)],
    )


# --- Posts -----------------------------------------------------------------------------


def add_post(
    db: sqlite_utils.Database,
    *,
    round_id: int,
    author_email: str,
    author_name: str,
    author_country: str,
    facilitator: bool,
    subject: str,
    body: str,
    dropped: str,
    message_id: str,
    parent_id: int | None,
    thread: tuple[str, ...],
    inbound_id: int | None,
    state: str,
    now: datetime,
) -> int:
    cursor = db.execute(
        "INSERT INTO discussion_posts (round_id, author_email, author_name, author_country,"
        " facilitator, subject, body, dropped, message_id, parent_id, thread, inbound_id,"
        " state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            round_id,
            author_email,
            author_name,
            author_country,
            int(facilitator),
            subject,
            body,
            dropped,
            message_id,
            parent_id,
            " ".join(thread),
            inbound_id,
            state,
            iso(now),
        ],
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _post(row) -> Post:
    values = list(row)
    values[5] = bool(values[5])
    return Post(*values)


def post(db: sqlite_utils.Database, post_id: int) -> Post | None:
    row = db.execute(
        f"SELECT {_POST_COLUMNS} FROM discussion_posts WHERE id = ?", [post_id]
    ).fetchone()
    return _post(row) if row else None


def post_answered(db: sqlite_utils.Database, round_id: int, message_ids) -> Post | None:
    """The published post of this round that one of `message_ids` names, the latest named
    first (In-Reply-To before References, References from the end)."""
    for message_id in message_ids:
        row = db.execute(
            f"SELECT {_POST_COLUMNS} FROM discussion_posts"
            " WHERE message_id = ? AND round_id = ? AND state = 'published'",
            [message_id, round_id],
        ).fetchone()
        if row:
            return _post(row)
    return None


def posts_since(db: sqlite_utils.Database, author_email: str, since: datetime) -> int:
    """How many posts this address had held or published since then; not the unconfirmed
    ones, which anyone can write in its name."""
    return db.execute(
        "SELECT count(*) FROM discussion_posts WHERE author_email = ? AND created_at >= ?"
        " AND state IN ('held', 'published')",
        [author_email, iso(since)],
    ).fetchone()[0]


def has_published(db: sqlite_utils.Database, round_id: int, author_email: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM discussion_posts WHERE round_id = ? AND author_email = ?"
            " AND state = 'published' LIMIT 1",
            [round_id, author_email],
        ).fetchone()
        is not None
    )


def published(
    db: sqlite_utils.Database,
    round_id: int,
    after: str | None,
    through: datetime,
    limit: int,
) -> list[Post]:
    """The round's posts published after `after` (ISO time; None: from the start) up to
    `through`, oldest first, at most `limit` (the latest of them)."""
    rows = db.execute(
        f"SELECT {_POST_COLUMNS} FROM (SELECT * FROM discussion_posts"
        " WHERE round_id = ? AND state = 'published' AND published_at > ?"
        " AND published_at <= ? ORDER BY published_at DESC, id DESC LIMIT ?)"
        " ORDER BY published_at, id",
        [round_id, after or "", iso(through), limit],
    ).fetchall()
    return [_post(row) for row in rows]


def count_published(
    db: sqlite_utils.Database, round_id: int, after: str | None, through: datetime
) -> int:
    return db.execute(
        "SELECT count(*) FROM discussion_posts WHERE round_id = ? AND state = 'published'"
        " AND published_at > ? AND published_at <= ?",
        [round_id, after or "", iso(through)],
    ).fetchone()[0]


def publish(db: sqlite_utils.Database, post_id: int, now: datetime, by: str | None = None):
    db.execute(
        "UPDATE discussion_posts SET state = 'published', published_at = ?,"
        " decided_by = coalesce(?, decided_by) WHERE id = ?",
        [iso(now), by, post_id],
    )


def set_state(
    db: sqlite_utils.Database, post_id: int, state: str, *, reason: str = "", by: str | None = None
) -> None:
    db.execute(
        "UPDATE discussion_posts SET state = ?, reason = ?, decided_by = coalesce(?, decided_by)"
        " WHERE id = ?",
        [state, reason, by, post_id],
    )


def to_fan_out(db: sqlite_utils.Database) -> Iterator[tuple[int, int]]:
    """(post id, the last participant id given a copy) of each published post whose copies
    are not all queued yet, oldest first."""
    yield from db.execute(
        "SELECT id, fanned_to FROM discussion_posts"
        " WHERE fanned_out_at IS NULL AND state = 'published' ORDER BY id"
    ).fetchall()


def fanned(db: sqlite_utils.Database, post_id: int, through: int, done: datetime | None) -> None:
    """Copies of the post are queued for everyone up to participant `through`; `done`: for
    everyone."""
    db.execute(
        "UPDATE discussion_posts SET fanned_to = ?, fanned_out_at = ? WHERE id = ?",
        [through, iso(done) if done else None, post_id],
    )


# --- Holds and rounds turned off ---------------------------------------------------------


def is_held(db: sqlite_utils.Database, email: str) -> bool:
    return (
        db.execute("SELECT 1 FROM discussion_holds WHERE email = ?", [email]).fetchone() is not None
    )


def hold(db: sqlite_utils.Database, email: str, by: str, now: datetime) -> bool:
    """Hold this address's posts; False if they were held already."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO discussion_holds (email, held_by, held_at) VALUES (?, ?, ?)",
        [email, by, iso(now)],
    )
    return cursor.rowcount > 0


def release(db: sqlite_utils.Database, email: str) -> bool:
    """No longer hold this address's posts; False if they were not held."""
    return db.execute("DELETE FROM discussion_holds WHERE email = ?", [email]).rowcount > 0


def held_posts(db: sqlite_utils.Database, email: str) -> int:
    """How many of this address's posts wait for a coordinator's decision."""
    return db.execute(
        "SELECT count(*) FROM discussion_posts WHERE author_email = ? AND state = 'held'", [email]
    ).fetchone()[0]


def is_off(db: sqlite_utils.Database, round_id: int) -> bool:
    return (
        db.execute("SELECT 1 FROM discussion_off WHERE round_id = ?", [round_id]).fetchone()
        is not None
    )


def turn_off(db: sqlite_utils.Database, round_id: int, by: str, now: datetime) -> bool:
    cursor = db.execute(
        "INSERT OR IGNORE INTO discussion_off (round_id, turned_off_by, turned_off_at)"
        " VALUES (?, ?, ?)",
        [round_id, by, iso(now)],
    )
    return cursor.rowcount > 0


def turn_on(db: sqlite_utils.Database, round_id: int) -> bool:
    return db.execute("DELETE FROM discussion_off WHERE round_id = ?", [round_id]).rowcount > 0


def latest_topic(db: sqlite_utils.Database, email: str) -> str | None:
    """When the latest monthly topic was queued to this address (ISO time), if ever."""
    row = db.execute(
        "SELECT max(created_at) FROM outbox WHERE recipient = ? AND template = 'topic'", [email]
    ).fetchone()
    return row[0] if row else None


def forget(db: sqlite_utils.Database, email: str, participant_id: int | None) -> int:
    """An erasure: their posts (published or not), their choice, their hold. Copies of a
    post already queued are the outbox's to scrub; digests and archives are built from
    the posts, so none not yet sent will hold theirs. How many posts were removed."""
    removed = db.execute("DELETE FROM discussion_posts WHERE author_email = ?", [email]).rowcount
    db.execute("DELETE FROM discussion_holds WHERE email = ?", [email])
    if participant_id is not None:
        db.execute("DELETE FROM discussion_choices WHERE participant_id = ?", [participant_id])
        db.execute("DELETE FROM discussion_digests WHERE participant_id = ?", [participant_id])
    return removed
