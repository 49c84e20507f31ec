"""Single-use, expiring conversation tokens carried in the reply address (local+TOKEN@domain).

A token binds a reply to the conversation that asked for it (Salmon's ConfirmationEngine,
Discourse's reply+KEY@): whoever answers it has received our mail at that address. The
state lives in the database, never in memory.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from mailflow.store import iso, transaction

TOKEN_SHAPE = re.compile(r"^[a-z2-7]{16}$")

# Every purpose a token is issued for; each has one handler, registered with `@continues`
# in the conversation that expects the reply (a test checks that none is missing).
FORM = "form"  # a reply to it carries the form (blank, or with problems to fix)
CONFIRM_APPLICATION = "confirm-application"  # a reply confirms a form that arrived cold
CHECKIN = "checkin"  # a reply answers the monthly check-in
SURVEY = "survey"  # a reply answers the end-of-term survey
UNSUBSCRIBE = "unsubscribe"  # the token behind List-Unsubscribe: writing to it is STOP
STOP_CONFIRM = "stop-confirm"  # a reply to the answer to an unproven STOP
CHANGE = "change-confirm"  # a reply to the confirmation of an unproven change
DELETE = "delete-my-data"  # a reply to delete-confirm
CONFIRM_COMMANDS = "coordinator-confirm"  # a coordinator's reply carries out a preview
DISCUSSION = "discussion"  # the Reply-To of a round's discussion mail: writing to it posts
DISCUSSION_QUIET = "discussion-quiet"  # its List-Unsubscribe: no more discussion mail
DISCUSSION_CONFIRM = "discussion-confirm"  # a reply YES posts, or makes the choice, asked
DISCUSSION_HELD = "discussion-held"  # a coordinator's APPROVE or REJECT of a held post
PURPOSES = (
    FORM,
    CONFIRM_APPLICATION,
    CHECKIN,
    SURVEY,
    UNSUBSCRIBE,
    STOP_CONFIRM,
    CHANGE,
    DELETE,
    CONFIRM_COMMANDS,
    DISCUSSION,
    DISCUSSION_QUIET,
    DISCUSSION_CONFIRM,
    DISCUSSION_HELD,
)


@dataclass(frozen=True)
class Token:
    token: str
    purpose: str
    address: str
    payload: dict
    expires_at: str
    used_at: str | None
    message_id: str | None = None  # of the message that carried it: what a reply answers


def new_token() -> str:
    # 80 random bits, lower-case base32: survives MTAs that fold the local part's case.
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def issue(
    db: sqlite_utils.Database,
    *,
    purpose: str,
    address: str,
    now: datetime,
    days: int,
    payload: dict | None = None,
    message_id: str | None = None,
) -> str:
    """A new token; `message_id` is that of the message carrying it, so that a reply's
    In-Reply-To finds the conversation too."""
    token = new_token()
    insert(db, [row(token, purpose, address, now, days, payload, message_id)])
    return token


def row(
    token: str,
    purpose: str,
    address: str,
    now: datetime,
    days: int,
    payload: dict | None = None,
    message_id: str | None = None,
) -> tuple:
    """The tokens row of a token made now and stored later (`insert`), with its mail."""
    expires = iso(now + timedelta(days=days))
    return (token, purpose, address, json.dumps(payload or {}), iso(now), expires, message_id)


def insert(db: sqlite_utils.Database, rows: list[tuple]) -> None:
    """Store the tokens of `row`, all in one statement (a big send issues thousands). In a
    transaction of its own unless one is open: executemany would open one and leave it."""
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO tokens (token, purpose, address, payload, created_at, expires_at,"
            " outgoing_message_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def standing(
    db: sqlite_utils.Database, *, purpose: str, address: str, now: datetime, days: int
) -> str:
    """A live token of this purpose for the address, reused while it has more than half its
    life left (List-Unsubscribe: one per person, not one per message)."""
    found = live_standing(db, purpose=purpose, address=address, now=now, days=days)
    if found:
        return found
    return issue(db, purpose=purpose, address=address, now=now, days=days)


def live_standing(
    db: sqlite_utils.Database, *, purpose: str, address: str, now: datetime, days: int
) -> str | None:
    """The standing token `standing` would reuse, if there is one; reads only."""
    found = db.execute(
        "SELECT token FROM tokens WHERE address = ? AND purpose = ? AND used_at IS NULL"
        " AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
        [address, purpose, iso(now + timedelta(days=days / 2))],
    ).fetchone()
    return found[0] if found else None


def _row(db: sqlite_utils.Database, where: str, value: str) -> Token | None:
    row = db.execute(
        "SELECT token, purpose, address, payload, expires_at, used_at, outgoing_message_id"
        " FROM tokens WHERE " + where,
        [value],
    ).fetchone()
    if row is None:
        return None
    return Token(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])


def find(db: sqlite_utils.Database, token: str) -> Token | None:
    token = token.lower()
    return _row(db, "token = ?", token) if TOKEN_SHAPE.match(token) else None


def find_by_message_id(db: sqlite_utils.Database, message_id: str) -> Token | None:
    return _row(db, "outgoing_message_id = ?", message_id)


def is_live(token: Token, now: datetime) -> bool:
    return token.used_at is None and token.expires_at > iso(now)


def use(db: sqlite_utils.Database, token: str, now: datetime) -> None:
    db.execute(
        "UPDATE tokens SET used_at = ? WHERE token = ? AND used_at IS NULL", [iso(now), token]
    )
