"""Telling coordinators about a partnership that has gone quiet (`partner-silent-alert`).

An alert is sent once for each reason and silence: 'no-word' when partners answered
"no word from my partner" often enough, 'silent' when nobody answered check-ins for the
rules' number of days. The `alerts` table remembers what was sent. The words for each
reason and its facts are the template's; this module passes the reason's name and numbers.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailflow.model import partnerships
from mailflow.program import Program
from mailflow.read.countries import country_name
from mailflow.send.sending import send
from mailflow.store import iso

log = logging.getLogger(__name__)


def already_sent(program: Program, partnership_id: int, reason: str, since: str) -> bool:
    found = program.db.execute(
        "SELECT 1 FROM alerts WHERE partnership_id = ? AND reason = ? AND since = ?",
        [partnership_id, reason, since],
    )
    return found.fetchone() is not None


def alert(program: Program, found: list[tuple[int, str, str, dict]], now: datetime) -> int:
    """Tell every coordinator, in one message, about each partnership of `found` (id,
    reason, since, facts for the template to word) not reported for that reason and silence
    before; how many."""
    db = program.db
    new = [item for item in found if not already_sent(program, *item[:3])]
    if not new:
        return 0
    quiet = []
    for partnership_id, reason, since, facts in new:
        db.execute(
            "INSERT INTO alerts (partnership_id, reason, since, sent_at) VALUES (?, ?, ?, ?)",
            [partnership_id, reason, since, iso(now)],
        )
        quiet.append({**_partnership(program, partnership_id), "reason": reason, "facts": facts})
    coordinators = program.config.coordinators
    if not coordinators:
        log.warning("%d partnership(s) need a coordinator, but none is set", len(new))
    ids = ",".join(str(item[0]) for item in new)
    for coordinator in coordinators:
        send(
            program,
            template="partner-silent-alert",
            to=coordinator,
            context={"partnerships": quiet},
            key=f"alert:{iso(now)}:{ids}:{coordinator}",
            now=now,
            unsubscribe=False,
        )
    return len(new)


def _partnership(program: Program, partnership_id: int) -> dict:
    """Its term and members, with their check-in answers, as coordinators read them."""
    db = program.db
    partnership = partnerships.get(db, partnership_id)
    people = []
    for member in partnership.members:
        person = db.execute(
            "SELECT name, email, country, status FROM participants WHERE id = ?", [member]
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
                "name": person[0],
                "email": person[1],
                "country": country_name(person[2]),
                "status": person[3],
                "answers": [(n, a, at[:10]) for n, a, at in answers],
            }
        )
    return {
        "people": people,
        "term_start": iso(partnership.term_start)[:10],
        "term_end": iso(partnership.term_end)[:10],
    }
