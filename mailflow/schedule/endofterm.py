"""The end of a term: the partnership ends, and each member gets `term-ended`, a `survey`
they answer by reply (answered in `conversation.participant.survey`), and a `certificate`
with a PDF; later, an invitation to the round that is accepting applications
(`round-open`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from mailflow.config import parse_time
from mailflow.model import network, participants, partnerships, rounds, tokens
from mailflow.model.participants import NO_PAUSE, Status
from mailflow.model.partnerships import Partnership
from mailflow.program import Program
from mailflow.read.countries import country_name
from mailflow.rulebook.cadence import Cadence
from mailflow.schedule.certificate import certificate_pdf
from mailflow.send.compose import Attachment
from mailflow.send.sending import send
from mailflow.store import iso, records, transaction

SURVEY_DAYS = 60  # people answer a survey when they have a moment, not within the week
FINISHING = (Status.MATCHED, Status.PAUSED)  # members still in the partnership when its term ends


def end_terms(program: Program, now: datetime, limit: int | None = None) -> Counter[str]:
    """End the active partnerships whose term is over by `now` (at most `limit` of them,
    the rest at the next tick: a round's end must not hold up the daemon); what was sent."""
    db, sent = program.db, Counter()
    for partnership in partnerships.ending_by(db, now, limit):
        with transaction(db):
            partnerships.end(db, partnership.id, now)
            people = _people(program, list(partnership.members))
            round_name = rounds.get(db, partnership.round_id).name
            for me in people:
                if me["status"] not in FINISHING:
                    continue
                others = [other for other in people if other is not me]
                _finish(program, me, others, partnership, round_name, now)
                sent.update(("term-ended", "survey", "certificate"))
            db.execute(
                "UPDATE rounds SET state = 'ended' WHERE id = ? AND state = 'matched' AND NOT"
                " EXISTS (SELECT 1 FROM partnerships WHERE round_id = ? AND state = 'active')",
                [partnership.round_id, partnership.round_id],
            )
    return sent


def _people(program: Program, ids: list[int]) -> list[dict]:
    marks = ", ".join("?" for _ in ids)
    return records(
        program.db.execute(
            f"SELECT id, email, name, country, status FROM participants WHERE id IN ({marks})"
            " ORDER BY id",
            ids,
        )
    )


def _finish(
    program: Program,
    me: dict,
    others: list[dict],
    partnership: Partnership,
    round_name: str,
    now: datetime,
) -> None:
    partnership_id = partnership.id
    term_start, term_end = iso(partnership.term_start), iso(partnership.term_end)
    participants.set_status(
        program.db, me["id"], Status.COMPLETED, now, completed_at=iso(now), **NO_PAUSE
    )
    countries = [country_name(other["country"]) for other in others]
    context = {
        "round": round_name,
        "partners": [other["name"] for other in others],
        "countries": countries,
        "term_start": term_start[:10],
        "term_end": term_end[:10],
        "next_round": rounds.open_round(program.db, now).name,
        "listed": network.is_listed(program.db, me["id"]),  # else invited to join
    }
    pdf = certificate_pdf(
        name=me["name"],
        program=program.config.program_name,
        round_name=round_name,
        partner_countries=countries,
        term_start=term_start[:10],
        term_end=term_end[:10],
        words=lambda context: program.renderer.lines("certificate-pdf", context),
    )
    mails = (
        ("term-ended", {}),
        (
            "survey",
            {
                "token_purpose": tokens.SURVEY,
                "payload": {"partnership": partnership_id},
                "token_days": SURVEY_DAYS,
            },
        ),
        ("certificate", {"attachments": (Attachment("certificate.pdf", "application/pdf", pdf),)}),
    )
    for template, extra in mails:
        send(
            program,
            template=template,
            to=me["email"],
            name=me["name"],
            context=context,
            key=f"{template}:{partnership_id}:{me['id']}",
            now=now,
            **extra,
        )


def invite(program: Program, now: datetime, cadence: Cadence) -> Counter[str]:
    """`round-open` to those who completed a term a while ago, once per round, unless they
    already signed up for it."""
    current = rounds.open_round(program.db, now)
    before = iso(now - timedelta(days=cadence.invitation_after_term_days))
    rows = program.db.execute(
        "SELECT id, email, name, completed_at FROM participants q"
        " WHERE status = ? AND completed_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.participant_id = q.id"
        "   AND a.round_id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.participant_id = q.id"
        "   AND i.round_id = ?)"
        " ORDER BY id",
        [Status.COMPLETED, before, current.id, current.id],
    ).fetchall()
    with transaction(program.db):
        for participant_id, email, name, completed_at in rows:
            program.db.execute(
                "INSERT INTO invitations (round_id, participant_id, sent_at) VALUES (?, ?, ?)",
                [current.id, participant_id, iso(now)],
            )
            send(
                program,
                template="round-open",
                to=email,
                name=name,
                context={
                    "round": current.name,
                    "closes": current.closes_at[:10] if current.closes_at else None,
                    "completed": parse_time(completed_at).date().isoformat(),
                },
                key=f"round-open:{current.id}:{participant_id}",
                now=now,
            )
    return Counter({"round-open": len(rows)}) if rows else Counter()
