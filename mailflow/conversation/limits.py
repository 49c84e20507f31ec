"""Answer limits: no sender can make the program write to them without end.

Two checks, both counted over the last hour from the store (never in memory, so they
hold across restarts and processes). A sender who has had MAILFLOW_REPLY_LIMIT answers
gets one `rate-limited` notice and then silence. A sender whose new text is the same as
in REPEATS earlier messages is an autoresponder that sets no header (RFC 3834 asks it
to, not all do): the same notice once, then silence, so a loop stops within a few
messages.

Anyone can put a person's address in From, so proven mail (a reply to a live token of
the sender's own) and unproven mail are counted apart: forged mail fills only the
unproven count, and can't silence the person's own replies. Replies to a live token are
not held to the repeated-text rule (three YES to three confirmations are three answers);
an autoresponder answering through reply tokens is ended by the hourly count of proven
mail. Coordinators get COORDINATOR_FACTOR times the hourly limit, and the same
repeated-text rule as everyone. This module only counts; it never sends, and the caller
decides what is acted on whatever the count.
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
COORDINATOR_FACTOR = 10  # a coordinator's hourly limit, in MAILFLOW_REPLY_LIMITs
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
    program: Program,
    row_id: int,
    sender: str,
    reply: str,
    now: datetime,
    *,
    proven: bool,
    limit: int,
) -> Verdict:
    """Whether to answer message `row_id` from `sender`, counting only mail as proven as it
    is (`proven`: a reply to a live token of the sender's own); records its digest and its
    proof either way. `limit`: answers an hour."""
    db, since = program.db, iso(now - WINDOW)
    mine = digest(reply)
    db.execute(
        "UPDATE messages SET reply_digest = ?, proven = ? WHERE id = ?",
        [mine, int(proven), row_id],
    )
    answered, notices, first = db.execute(
        "SELECT count(*), coalesce(sum(outbox.template = ?), 0), min(outbox.created_at)"
        " FROM outbox JOIN messages ON messages.id = outbox.inbound_id"
        " WHERE outbox.recipient = ? AND outbox.created_at >= ? AND messages.proven = ?",
        [NOTICE, sender, since, int(proven)],
    ).fetchone()
    repeats = 0
    if not proven:
        repeats = db.execute(
            "SELECT count(*) FROM messages WHERE sender = ? AND received_at >= ? AND id < ?"
            " AND reply_digest = ? AND proven = 0",
            [sender, since, row_id, mine],
        ).fetchone()[0]
    if answered < limit and repeats < REPEATS:
        return Verdict("answer")
    reason = "repeated" if repeats >= REPEATS else "rate-limited"
    if notices:
        return Verdict("silent", reason, answered)
    until = datetime.fromisoformat(first) + WINDOW if first else now + WINDOW
    return Verdict("notice", reason, answered, until)
