"""Answer limits: no sender can make the program write to them without end.

Two checks, both counted over the last hour from the store (never in memory, so they
hold across restarts and processes). A sender who has had MAILFLOW_REPLY_LIMIT answers
gets one `rate-limited` notice and then silence. A sender whose new text is the same as
in REPEATS earlier messages is an autoresponder that sets no header (RFC 3834 asks it
to, not all do): the same notice once, then silence, so a loop stops within a few
messages, even one through reply tokens (each answer asking for an answer). Coordinators
are exempt from both, and replies to a live token from the first: the caller decides.
This module only counts; it never sends.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailflow.program import Program
from mailflow.store import iso

WINDOW = timedelta(hours=1)
REPEATS = 3  # identical messages answered in a window before the notice
NOTICE = "rate-limited"
SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Verdict:
    action: str  # 'answer', 'notice' (send the one notice) or 'silent'
    reason: str = ""
    answered: int = 0
    until: datetime | None = None


def digest(text: str) -> str:
    """The same words, whatever the spacing or case: an autoresponder's fixed text."""
    return hashlib.sha256(SPACE.sub(" ", text).strip().lower().encode()).hexdigest()


def verdict(
    program: Program, row_id: int, sender: str, reply: str, now: datetime, *, counted: bool
) -> Verdict:
    """Whether to answer message `row_id` from `sender`; records its digest either way.
    `counted`: the message counts against the hourly limit (not a reply to a live token)."""
    db, since = program.db, iso(now - WINDOW)
    mine = digest(reply)
    db.execute("UPDATE messages SET reply_digest = ? WHERE id = ?", [mine, row_id])
    answered, notices, first = db.execute(
        "SELECT count(*), coalesce(sum(template = ?), 0), min(created_at) FROM outbox"
        " WHERE recipient = ? AND created_at >= ? AND inbound_id IS NOT NULL",
        [NOTICE, sender, since],
    ).fetchone()
    repeats = db.execute(
        "SELECT count(*) FROM messages WHERE sender = ? AND received_at >= ? AND id < ?"
        " AND reply_digest = ?",
        [sender, since, row_id, mine],
    ).fetchone()[0]
    over = counted and answered >= program.config.reply_limit
    if not over and repeats < REPEATS:
        return Verdict("answer")
    reason = "repeated" if repeats >= REPEATS else "rate-limited"
    if notices:
        return Verdict("silent", reason, answered)
    until = datetime.fromisoformat(first) + WINDOW if first else now + WINDOW
    return Verdict("notice", reason, answered, until)
