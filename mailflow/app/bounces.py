"""Bounces: who a delivery failure is about, its score, and what follows when an address
keeps failing.

Every outgoing message has its own return path (`verp.py`), so a failure report names the
address it is about even when it comes from a forwarding address. A report without that
return path counts only for the addresses it names (flufl.bounce reads them) and only when
it quotes mail we sent them. Permanent
failures score more than temporary ones; scores fade (half-life in `rules/schedule.toml`
[bounce]); past the threshold a participant is unreachable: out of matching and of their
partnership (the partner told and looked after) and the coordinators told. A bounce is
never answered.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailflow.app import membership
from mailflow.model import coordinators, network, participants
from mailflow.model.participants import NO_PAUSE, Status
from mailflow.program import Program
from mailflow.read.parse import Inbound, delivery_failures
from mailflow.rulebook.cadence import Cadence
from mailflow.send.sending import send
from mailflow.send.verp import addressed
from mailflow.store import iso

log = logging.getLogger(__name__)

PERMANENT, TEMPORARY = "permanent", "temporary"


def record(program: Program, message: Inbound, raw: bytes, now: datetime) -> str:
    """Score a delivery failure against whom it is about; the outcome's detail ('' when it
    names nobody we write to)."""
    temporary, permanent = delivery_failures(raw)
    if not temporary and not permanent:
        # An auto-reply sent to the return path (RFC 3834 asks for that), or a report too
        # broken to read: nothing says a delivery failed.
        return ":no failed address found"
    verp = addressed(program, message.recipients)
    if verp is not None:
        kind = PERMANENT if permanent else TEMPORARY
        found = [(verp, kind)]
    else:
        # Without our return path, anyone could write a report naming anyone: it counts
        # only when it quotes the Message-ID of mail we sent to that address (keyed with
        # the installation's secret, so known only to whoever received it).
        named = [(a, PERMANENT) for a in sorted(permanent)]
        named += [(a, TEMPORARY) for a in sorted(temporary - permanent)]
        found = [(a, kind) for a, kind in named if _quotes_our_mail(program, a, raw)]
    cadence = program.rules.cadence
    detail = (message.subject or message.content_type)[:200]
    notes = []
    for address, kind in found:
        score = _add(program, address, kind, detail, now, cadence)
        notes.append(f"{address} {kind} ({score:.1f})")
        if score >= cadence.bounce_unreachable_at:
            notes[-1] += ": " + unreachable(program, address, now, cadence)
    return (":" + "; ".join(notes)) if notes else ":names nobody we write to"


def _quotes_our_mail(program: Program, address: str, raw: bytes) -> bool:
    sent = program.db.execute("SELECT message_id FROM outbox WHERE recipient = ?", [address])
    return any(message_id.encode() in raw for (message_id,) in sent)


def _add(
    program: Program, address: str, kind: str, detail: str, now: datetime, cadence: Cadence
) -> float:
    db = program.db
    row = db.execute(
        "SELECT score, bounces, updated_at FROM bounce_scores WHERE address = ?", [address]
    ).fetchone()
    points = (
        cadence.bounce_permanent_points if kind == PERMANENT else cadence.bounce_temporary_points
    )
    score, bounces = float(points), 1
    if row is not None:
        days = max((now - datetime.fromisoformat(row[2])).total_seconds() / 86400, 0.0)
        score += row[0] * 0.5 ** (days / cadence.bounce_half_life_days)
        bounces += row[1]
    db.execute(
        "INSERT INTO bounce_scores (address, score, bounces, last_kind, last_detail, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET score = excluded.score,"
        " bounces = excluded.bounces, last_kind = excluded.last_kind,"
        " last_detail = excluded.last_detail, updated_at = excluded.updated_at",
        [address, score, bounces, kind, detail, iso(now)],
    )
    return score


def unreachable(program: Program, address: str, now: datetime, cadence: Cadence) -> str:
    """Mark a participant unreachable, once: their partner looked after, coordinators told."""
    me = participants.find(program.db, address)
    if me is None or me["status"] in (Status.LEFT, Status.UNREACHABLE):
        return "not taking part" if me is None else f"already {me['status']}"
    outcome = membership.part_from_partnership(program, me, now, cadence, "unreachable")
    participants.set_status(program.db, me["id"], Status.UNREACHABLE, now, **NO_PAUSE)
    network.unlist(program.db, me["id"])
    bounces, detail, day = program.db.execute(
        "SELECT bounces, last_detail, updated_at FROM bounce_scores WHERE address = ?", [address]
    ).fetchone()
    told = [c for c in coordinators.listing(program.db) if c.covers(me["country"])]
    for coordinator in told:
        send(
            program,
            template="participant-unreachable",
            to=coordinator.email,
            context={
                "person": me,
                "bounces": bounces,
                "detail": detail,
                "last_day": day[:10],
                "partnership": None if outcome == "no partnership" else outcome,
            },
            key=f"unreachable:{me['id']}:{iso(now)}:{coordinator.email}",
            now=now,
            unsubscribe=False,
        )
    if not told:
        log.warning("participant %d is unreachable, but no coordinator is set", me["id"])
    log.info("participant %d marked unreachable (%s)", me["id"], outcome)
    return f"unreachable ({outcome})"
