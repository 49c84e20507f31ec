"""Telling coordinators about a partnership that has gone quiet (`partner-silent-alert`).

An alert is sent once for each reason and silence: 'no-word' when partners answered
"no word from my partner" often enough, 'silent' when nobody answered check-ins for the
rules' number of days. The `alerts` table remembers what was sent.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailflow.countries import country_name
from mailflow.program import Program
from mailflow.sending import send
from mailflow.store import iso

log = logging.getLogger(__name__)

REASONS = {
    "no-word": "a partner answered a check-in with 'no word from my partner'",
    "silent": "nobody in the partnership has answered a check-in",
}


def already_sent(program: Program, partnership_id: int, reason: str, since: str) -> bool:
    found = program.db.execute(
        "SELECT 1 FROM alerts WHERE partnership_id = ? AND reason = ? AND since = ?",
        [partnership_id, reason, since],
    )
    return found.fetchone() is not None


def alert(
    program: Program, partnership_id: int, reason: str, since: str, now: datetime, detail: str
) -> bool:
    """Tell every coordinator about the partnership, once per (reason, since); was it new?"""
    if already_sent(program, partnership_id, reason, since):
        return False
    db = program.db
    program.db.execute(
        "INSERT INTO alerts (partnership_id, reason, since, sent_at) VALUES (?, ?, ?, ?)",
        [partnership_id, reason, since, iso(now)],
    )
    row = db.execute(
        "SELECT term_start, term_end, member_a, member_b, member_c FROM partnerships WHERE id = ?",
        [partnership_id],
    ).fetchone()
    members = [m for m in row[2:5] if m is not None]
    people = []
    for member in members:
        person = db.execute(
            "SELECT id, name, email, country, status FROM participants WHERE id = ?", [member]
        ).fetchone()
        if person is None:
            continue
        answers = db.execute(
            "SELECT number, answer, answered_at FROM checkin_answers"
            " WHERE partnership_id = ? AND participant_id = ? ORDER BY number",
            [partnership_id, member],
        ).fetchall()
        people.append(
            {
                "name": person[1],
                "email": person[2],
                "country": country_name(person[3]),
                "status": person[4],
                "answers": [(n, a, at[:10]) for n, a, at in answers],
            }
        )
    coordinators = program.config.coordinators
    if not coordinators:
        log.warning(
            "partnership %d needs a coordinator (%s), but none is set", partnership_id, reason
        )
    for coordinator in coordinators:
        send(
            program,
            template="partner-silent-alert",
            to=coordinator,
            context={
                "reason": REASONS[reason],
                "detail": detail,
                "people": people,
                "term_start": row[0][:10],
                "term_end": row[1][:10],
            },
            key=f"alert:{partnership_id}:{reason}:{since}:{coordinator}",
            now=now,
            unsubscribe=False,
        )
    return True
