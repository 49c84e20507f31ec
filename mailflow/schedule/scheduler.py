"""The rules engine: what falls due for active partnerships at "now", sent once.

For each member of an active partnership, the cadence of `rules/schedule.toml` gives the
dates of check-ins and topics. A tick sends, of each kind, the latest one due that was not
sent yet, unless it fell due longer ago than the rules allow: after downtime each person
gets at most one mail of a kind, never a burst. The `scheduled` table remembers the latest
number sent, so a second tick at the same time finds nothing new, and the outbox's
idempotency key guards the same again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailflow.app import bulk, discussions
from mailflow.app.alerts import alert
from mailflow.app.membership import resume_due
from mailflow.config import parse_time
from mailflow.model import discussions as discussion_store
from mailflow.model import heartbeats, partnerships, tokens
from mailflow.model.participants import Status
from mailflow.program import Program
from mailflow.rulebook.cadence import Cadence, latest_due
from mailflow.rulebook.topics import topic_for_month
from mailflow.schedule.endofterm import end_terms, invite
from mailflow.send import outbox
from mailflow.send.sending import Made, following, make, send_in_batches
from mailflow.store import iso, transaction

REMINDER = "checkin-reminder"


@dataclass(frozen=True)
class Due:
    kind: str  # 'checkin', 'topic' or 'checkin-reminder'
    number: int  # 1 for the first of its kind in this partnership
    due_at: datetime
    partnership_id: int
    participant_id: int
    email: str
    name: str
    partners: tuple[str, ...]  # the other members' names
    term_end: datetime


# id, introduced, term end, members
PartnershipRow = tuple[int, datetime, datetime, tuple[int, ...]]


def _partnerships(program: Program) -> list[PartnershipRow]:
    """Every active partnership, by id, with its members' ids in order."""
    return [
        (p.id, p.created_at, p.term_end, tuple(sorted(p.members)))
        for p in partnerships.running(program.db)
    ]


def _people(program: Program, running: list[PartnershipRow]) -> dict[int, dict]:
    """The participant rows of these partnerships' members, by id."""
    ids, people = sorted({m for *_, members in running for m in members}), {}
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        for q, email, name, status in program.db.execute(
            "SELECT id, email, name, status FROM participants"
            f" WHERE id IN ({', '.join('?' * len(batch))})",
            batch,
        ).fetchall():
            people[q] = {"participant_id": q, "email": email, "name": name, "status": status}
    return people


def _in(partnership: PartnershipRow, people: dict[int, dict]) -> list[dict]:
    """The partnership's members who have a participant row, each with the partnership."""
    partnership_id, introduced, term_end, members = partnership
    shared = {"partnership_id": partnership_id, "introduced": introduced, "term_end": term_end}
    return [{**people[q], **shared} for q in members if q in people]


def _members(program: Program) -> Iterator[tuple[dict, list[dict]]]:
    """(partnership with its member's row, the other members) for every member of an active
    partnership who is still taking part, by partnership and then participant id."""
    running = _partnerships(program)
    people = _people(program, running)
    for partnership in running:
        members = _in(partnership, people)
        for me in members:
            if me["status"] == Status.MATCHED:
                yield me, [other for other in members if other is not me]


def _active(column: str) -> str:
    """A condition that keeps the rows of active partnerships: what a tick reads grows
    with the partnerships running, not with every one there ever was."""
    return f"{column} IN (SELECT id FROM partnerships WHERE state = 'active')"


def _sent(program: Program) -> dict[tuple[int, int, str], tuple[int, str]]:
    """(partnership, participant, kind) -> (the latest number sent, when), for active
    partnerships."""
    rows = program.db.execute(
        "SELECT partnership_id, participant_id, kind, number, sent_at FROM scheduled"
        " WHERE " + _active("partnership_id")
    )
    return {(p, q, kind): (number, at) for p, q, kind, number, at in rows.fetchall()}


def _answered(program: Program) -> dict[tuple[int, int], tuple[int, str]]:
    """(partnership, participant) -> (the latest check-in number answered, when last), for
    active partnerships."""
    rows = program.db.execute(
        "SELECT partnership_id, participant_id, max(number), max(answered_at)"
        " FROM checkin_answers WHERE "
        + _active("partnership_id")
        + " GROUP BY partnership_id, participant_id"
    )
    return {(p, q): (number, at) for p, q, number, at in rows.fetchall()}


def _schedules(
    cadence: Cadence, introduced: datetime, term_end: datetime
) -> tuple[datetime, dict[str, list[datetime]]]:
    """The end of a partnership's term, and the due times of each kind of scheduled mail."""
    return term_end, {
        "checkin": cadence.checkins(introduced, term_end),
        "topic": cadence.topic_days(introduced, term_end),
    }


def due(program: Program, cadence: Cadence, now: datetime) -> list[Due]:
    """What a tick at `now` sends: the latest unsent check-in and topic of each member, and
    one reminder of a check-in they have not answered."""
    sent, answered, wanted = _sent(program), _answered(program), []
    late, shared = cadence.late, None
    for partnership in _partnerships(program):
        partnership_id, introduced, term_end, members = partnership
        # Partnerships introduced together (a round matched at once) share their dates:
        # worked out once, not for each member.
        if shared is None or shared[0] != (introduced, term_end):
            end, schedules = _schedules(cadence, introduced, term_end)
            latest = [
                (kind, times, latest_due(times, now, late)) for kind, times in schedules.items()
            ]
            shared = ((introduced, term_end), end, latest)
        _, end, latest = shared
        for q in members:
            member = (partnership_id, q)
            for kind, times, number in latest:
                if number is not None and number > sent.get((*member, kind), (0, ""))[0]:
                    wanted.append((partnership, q, kind, number, times[number - 1], end))
            reminder = _reminder(cadence, sent, answered, member)
            if reminder is not None and reminder[1] <= now and now - reminder[1] <= late:
                wanted.append((partnership, q, REMINDER, *reminder, end))
    # Most ticks find little due: people are looked up only for that, and only those
    # still taking part get it.
    people, found = _people(program, [partnership for partnership, *_ in wanted]), []
    for partnership, q, kind, number, at, end in wanted:
        members = _in(partnership, people)
        me = next((m for m in members if m["participant_id"] == q), None)
        if me is not None and me["status"] == Status.MATCHED:
            others = [other for other in members if other is not me]
            found.append(_due(kind, number, at, me, others, end))
    return found


def _reminder(cadence: Cadence, sent, answered, member) -> tuple[int, datetime] | None:
    """(number, due time) of the reminder of the member's latest check-in, unless it was
    answered or reminded already."""
    checkin = sent.get((*member, "checkin"))
    if checkin is None:
        return None
    number, sent_at = checkin
    if answered.get(member, (0, ""))[0] >= number:
        return None
    if sent.get((*member, REMINDER), (0, ""))[0] >= number:
        return None
    return number, parse_time(sent_at) + timedelta(days=cadence.reminder_after_days)


def upcoming(program: Program, cadence: Cadence, now: datetime, days: int) -> list[Due]:
    """Everything the rules would send from `now` for `days` days, in time order, as if each
    tick ran on time, everyone stayed as they are and nobody answered: check-ins, topics,
    the reminder of the latest check-in not yet answered, and the term's end."""
    until, found = now + timedelta(days=days), []
    sent, answered = _sent(program), _answered(program)
    for me, others in _members(program):
        term_end, schedules = _schedules(cadence, me["introduced"], me["term_end"])
        if now < term_end <= until:
            found.append(_due("term-ended", 1, term_end, me, others, term_end))
        member = (me["partnership_id"], me["participant_id"])
        reminder = _reminder(cadence, sent, answered, member)
        if reminder is not None and now - cadence.late <= reminder[1] <= until:
            found.append(_due(REMINDER, *reminder, me, others, term_end))
        for kind, times in schedules.items():
            done = sent.get((me["partnership_id"], me["participant_id"], kind), (0, ""))[0]
            overdue = latest_due(times, now, cadence.late)
            for number, time in enumerate(times, start=1):
                later = now < time <= until
                if number > done and (later or number == overdue):
                    found.append(_due(kind, number, time, me, others, term_end))
    return sorted(found, key=lambda d: (d.due_at, d.kind, d.email))


def _due(kind: str, number: int, at: datetime, me: dict, others: list[dict], end) -> Due:
    return Due(
        kind=kind,
        number=number,
        due_at=at,
        partnership_id=me["partnership_id"],
        participant_id=me["participant_id"],
        email=me["email"],
        name=me["name"],
        partners=tuple(other["name"] for other in others),
        term_end=end,
    )


def _partners(names: tuple[str, ...]) -> str:
    if not names:
        return "your partner"
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + f" and {names[-1]}"


def tick(program: Program, now: datetime, *, terms_at_once: int | None = None) -> Counter[str]:
    """Everything the rules say is due at `now`, sent once; how many of each kind. In order:
    pauses that end, terms that end (at most `terms_at_once` partnerships, the rest at the
    next tick), then check-ins, topics and reminders, alerts to coordinators about silent
    partnerships, and invitations to the next round."""
    cadence = program.rules.cadence
    topics = program.rules.topics
    sent: Counter[str] = Counter()
    sent.update("resumed" for _ in resume_due(program, now))
    sent.update(end_terms(program, now, terms_at_once))
    items = due(program, cadence, now)
    # In batches, each mail and its `scheduled` row together: mail arriving meanwhile
    # waits at most one batch's storing for the write lock, and gets its turn between.
    send_in_batches(
        program,
        items,
        lambda item: _make_due(program, item, topics, now),
        now,
        also=lambda batch: _scheduled(program, batch, now),
        elsewhere=_made_elsewhere,
    )
    sent.update(item.kind for item in items)
    quiet = silent_alerts(program, cadence, now)
    if quiet:
        sent["partner-silent-alert"] += len(program.config.coordinators)
    sent.update(invite(program, now, cadence))
    digests = discussions.send_digests(program, now)
    if digests:
        sent["discussion-digest"] += digests
    heartbeats.beat(program.db, heartbeats.TICK, program.now())  # for `mailflow status`
    bulk.queue_pending(program, now)
    outbox.deliver(program.db, program.config, now)
    return sent


def _made_elsewhere(program: Program, item: Due, now: datetime) -> Made | None:
    """`_make_due` in a helper process (`send.makers`), with its own program's topics."""
    return _make_due(program, item, program.rules.topics, now)


def _make_due(program: Program, item: Due, topics, now: datetime) -> Made | None:
    checkin = item.kind in ("checkin", REMINDER)
    context = {
        "number": item.number,
        "partners": _partners(item.partners),
        "term_end": iso(item.term_end)[:10],
    }
    discussed = False
    if item.kind == "topic":
        context["topic"] = topic_for_month(topics, item.number)
        context["discussion"] = _discussion(program, item)
        discussed = context["discussion"]["on"]
    which = f"{item.partnership_id}:{item.participant_id}:{item.number}"
    return make(
        program,
        template=item.kind,
        to=item.email,
        name=item.name,
        context=context,
        key=f"{item.kind}:{which}",
        now=now,
        # A reminder continues its check-in's conversation: the same subject, and
        # References to it, so that Gmail shows them as one.
        thread=following(program, f"checkin:{which}") if item.kind == REMINDER else None,
        # A reply to the topic is a post to the round's discussion, as its text says.
        token_purpose=tokens.CHECKIN if checkin else tokens.DISCUSSION if discussed else None,
        payload={"partnership": item.partnership_id, "number": item.number} if checkin else None,
        token_days=discussions.TOKEN_DAYS if discussed else None,
    )


def _scheduled(program: Program, items: list[Due], now: datetime) -> None:
    """Remember the latest of each kind sent to each of them (with their mail)."""
    program.db.conn.executemany(
        "INSERT INTO scheduled (partnership_id, participant_id, kind, number, due_at,"
        " sent_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (partnership_id, participant_id, kind)"
        " DO UPDATE SET number = excluded.number, due_at = excluded.due_at,"
        " sent_at = excluded.sent_at",
        [
            (
                item.partnership_id,
                item.participant_id,
                item.kind,
                item.number,
                iso(item.due_at),
                iso(now),
            )
            for item in items
        ],
    )


def _discussion(program: Program, item: Due) -> dict:
    """What the topic mail says of the round's discussion: its address, whether it is on,
    and how it reaches this person (and whether that is the rules' default)."""
    partnership = partnerships.get(program.db, item.partnership_id)
    assert partnership is not None
    where = discussions.discussion(program, partnership.round_id)
    mode, chosen = discussions.delivery(program, item.participant_id)
    return {
        "address": where.address,
        "round": where.round.name,
        "on": not discussion_store.is_off(program.db, partnership.round_id),
        "mode": mode,
        "chosen": chosen,
        "default": program.rules.discussion.default,
    }


def silent_alerts(program: Program, cadence: Cadence, now: datetime) -> int:
    """Alert coordinators about each active partnership where nobody has answered the
    latest check-in for the rules' number of days. Once per silence: a partnership that
    stays quiet is reported once, and again only after someone answered in between.
    All of them in one message to each coordinator; how many partnerships."""
    rows = program.db.execute(
        "SELECT s.partnership_id, max(s.sent_at), max(s.number),"
        " (SELECT max(answered_at) FROM checkin_answers a"
        "   WHERE a.partnership_id = s.partnership_id)"
        " FROM scheduled s WHERE s.kind = 'checkin' AND "
        + _active("s.partnership_id")
        + " GROUP BY s.partnership_id ORDER BY s.partnership_id"
    ).fetchall()
    known = set(
        program.db.execute(
            "SELECT partnership_id, since FROM alerts WHERE reason = 'silent' AND "
            + _active("partnership_id")
        ).fetchall()
    )
    silence = timedelta(days=cadence.alert_silent_days)
    found = []
    for partnership_id, sent_at, number, last_answer in rows:
        since = last_answer or "never"
        quiet = last_answer is None or last_answer < sent_at
        if not quiet or now - parse_time(sent_at) < silence or (partnership_id, since) in known:
            continue
        facts = {
            "checkin": number,
            "sent": sent_at[:10],
            "days": (now - parse_time(sent_at)).days,
            "last_answer": (last_answer or "")[:10],
        }
        found.append((partnership_id, "silent", since, facts))
    with transaction(program.db):
        return alert(program, found, now)
