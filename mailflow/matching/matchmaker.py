"""Carrying out a round's matching: from the store to the pure matcher and back.

`plan` reads the round's eligible applicants, former partners and the matching rules,
and asks `matching.match`; it changes nothing, so a preview is free. `carry_out` stores
the partnerships, sends each partner an introduction, tells everyone left out why and
starts the term, in batches that let mail coming in through (see its docstring). What the
coordinator or operator reads of it, the preview and the one-line summary, is
`templates/results/match.txt`'s wording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from mailflow import matching
from mailflow.model import participants, partnerships, rounds
from mailflow.model.participants import Status
from mailflow.program import Program
from mailflow.read import wishes
from mailflow.read.countries import country_name
from mailflow.read.timezones import utc_offset_minutes
from mailflow.send.sending import Made, make, queue_made, send_in_batches
from mailflow.store import iso, transaction

ELIGIBLE = (Status.APPLIED, Status.WAITING)
WEAKEST_SHOWN = 10  # the preview's weakest pairs, for a coordinator to look at


@dataclass(frozen=True)
class Plan:
    round: rounds.Round
    result: matching.Matching
    people: Mapping[int, dict]  # participant records by id, everyone the plan names
    not_eligible: tuple[tuple[int, str], ...]  # (id, status) of applicants not matched


def applicant(
    record: dict, at: datetime, reader: wishes.WishReader, regions: wishes.Regions
) -> matching.Applicant:
    return matching.Applicant(
        id=record["id"],
        country=record["country"],
        languages=frozenset(participants.split(record["languages"])),
        interests=frozenset(i.lower() for i in participants.split(record["interests"])),
        library_type=record["library_type"],
        career_stage=record["career_stage"],
        contact_methods=frozenset(participants.split(record["contact_methods"])),
        contact_frequency=record["contact_frequency"],
        utc_offset=utc_offset_minutes(record["time_zone"], at),
        wishes=reader.read(record["partner_wishes"] or ""),
        regions=regions.of(record["country"]),
    )


def applicants(program: Program, records: list[dict], at: datetime) -> list[matching.Applicant]:
    """The records as the matching sees them; partner wishes are read against the
    interests these people name."""
    regions = program.rules.regions
    interests = {i.lower() for r in records for i in participants.split(r["interests"])}
    reader = wishes.WishReader(program.choices, regions, interests)
    return [applicant(r, at, reader, regions) for r in records]


def _records(program: Program, round_id: int) -> list[dict]:
    return participants.select(
        program.db,
        "id IN (SELECT participant_id FROM applications WHERE round_id = ?)",
        [round_id],
    )


def former_partners(program: Program) -> frozenset[frozenset[int]]:
    return partnerships.ever_paired(program.db)


def plan(
    program: Program, now: datetime, progress: Callable[[str, int, int], None] | None = None
) -> Plan:
    current = rounds.to_match(program.db, now)
    records = _records(program, current.id)
    eligible = [r for r in records if r["status"] in ELIGIBLE]
    not_eligible = tuple((r["id"], r["status"]) for r in records if r["status"] not in ELIGIBLE)
    weights = program.rules.weights
    result = matching.match(
        applicants(program, eligible, now),
        weights,
        former=former_partners(program),
        progress=progress,
    )
    return Plan(current, result, {r["id"]: r for r in records}, not_eligible)


def _who(record: dict) -> str:
    return f"{record['name']} <{record['email']}>, {country_name(record['country'])}"


def preview_text(program: Program, plan: Plan) -> str:
    """The preview a coordinator (or the operator's --dry-run) reads before confirming."""
    result = plan.result
    weakest = sorted(result.pairs, key=lambda pair: pair.score)[:WEAKEST_SHOWN]
    left_out = [*plan.not_eligible, *result.unmatched, *result.deferred]
    shown = [*(pid for pid, _ in left_out), *(m for pair in weakest for m in pair.members)]
    return program.renderer.result(
        "match",
        "preview",
        plan=plan,
        matched=sum(len(pair.members) for pair in result.pairs),
        weakest=weakest,
        who={pid: _who(plan.people[pid]) for pid in shown},
    )


@lru_cache(maxsize=4096)
def hours_together(
    offsets: tuple[int, ...], waking: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """UTC minute ranges of the day when everyone is within waking hours (local, from, to).
    Kept for each set of offsets: a round's 100,000 introductions name a few hundred."""
    first, last = waking[0] * 60, waking[1] * 60
    free = [
        all(first <= (minute + offset) % 1440 < last for offset in offsets)
        for minute in range(0, 1440, 30)
    ]
    ranges, start = [], None
    for index, ok in enumerate([*free, False]):
        if ok and start is None:
            start = index * 30
        if not ok and start is not None:
            ranges.append((start, index * 30))
            start = None
    if len(ranges) > 1 and ranges[0][0] == 0 and ranges[-1][1] == 1440:  # wraps midnight
        ranges = [(ranges[-1][0], ranges[0][1] + 1440), *ranges[1:-1]]
    return tuple(ranges)


def _clock(minutes: int) -> str:
    minutes %= 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def introduction(
    me: dict, others: list[dict], pair: matching.Pair, at: datetime, waking: tuple[int, int]
) -> dict:
    mine = utc_offset_minutes(me["time_zone"], at)
    offsets = (mine, *(utc_offset_minutes(o["time_zone"], at) for o in others))
    together = hours_together(offsets, tuple(waking))
    partners = []
    for other in others:
        theirs = utc_offset_minutes(other["time_zone"], at)
        difference = (theirs - mine) / 60
        partners.append(
            {
                "name": other["name"],
                "email": other["email"],
                "country": country_name(other["country"]),
                "role": other["role"],
                "library_type": other["library_type"],
                "career_stage": other["career_stage"],
                "interests": participants.split(other["interests"]),
                "languages": participants.split(other["languages"]),
                "contact_methods": participants.split(other["contact_methods"]),
                "contact_frequency": other["contact_frequency"],
                "about_me": other["about_me"],
                "time_zone": other["time_zone"],
                "difference": f"{abs(difference):g} hour{'s' if abs(difference) != 1 else ''}"
                + (" ahead of you" if difference > 0 else " behind you" if difference < 0 else ""),
                "hours": [
                    (
                        _clock(start + mine),
                        _clock(end + mine),
                        _clock(start + theirs),
                        _clock(end + theirs),
                    )
                    for start, end in together
                ],
            }
        )
    shared = sorted(
        set.intersection(
            {i.lower() for i in participants.split(me["interests"])},
            *({i.lower() for i in participants.split(o["interests"])} for o in others),
        )
    )
    return {
        "partners": partners,
        "shared": shared,
        "reasons": pair.reasons,
        "trio": len(others) > 1,
    }


def reasons(program: Program, pair: matching.Pair) -> str:
    """Why the pair was made, as its members read it (templates/_matching.txt)."""
    return program.renderer.sentence("_matching", "why_matched", pair.reasons, len(pair.members))


def introduce(
    program: Program,
    partnership_id: int,
    pair: matching.Pair,
    people: Mapping[int, dict],
    round_name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    waking: tuple[int, int],
    *,
    template: str = "match-intro",
    joining: int | None = None,
) -> None:
    """Send each member of a new partnership their introduction (`rematch-intro` in mid-term,
    where `joining` is the one who was waiting)."""
    made = introductions(
        program,
        f"{template}:{partnership_id}",
        pair,
        people,
        round_name,
        (start, end),
        now,
        waking,
        template=template,
        joining=joining,
    )
    queue_made(program, made, now)


def introductions(
    program: Program,
    key: str,
    pair: matching.Pair,
    people: Mapping[int, dict],
    round_name: str,
    term: tuple[datetime, datetime],
    now: datetime,
    waking: tuple[int, int],
    *,
    template: str = "match-intro",
    joining: int | None = None,
) -> list[Made]:
    """Each member's introduction, made and not queued; `key` and the member are its key."""
    start, end = term
    found = []
    for member in pair.members:
        me = people[member]
        others = [people[o] for o in pair.members if o != member]
        made = make(
            program,
            template=template,
            to=me["email"],
            name=me["name"],
            context={
                **introduction(me, others, pair, start, waking),
                "round": round_name,
                "term_start": iso(start)[:10],
                "term_end": iso(end)[:10],
                "joining": member == joining,
            },
            key=f"{key}:{member}",
            now=now,
        )
        if made is not None:
            found.append(made)
    return found


@dataclass(frozen=True)
class _Introducing:
    """A new pair's introductions to make, with all that takes but the program, so that a
    helper process can make them (`send.makers`)."""

    pair: matching.Pair
    people: dict[int, dict]  # its members' records
    key: str
    round_name: str
    term: tuple[datetime, datetime]
    waking: tuple[int, int]


def _introduced(program: Program, item: _Introducing, now: datetime) -> list[Made]:
    return introductions(
        program, item.key, item.pair, item.people, item.round_name, item.term, now, item.waking
    )


def carry_out(program: Program, plan: Plan, now: datetime, made_by: str = "matching") -> str:
    """Store the partnerships, introduce everyone, tell those left out why, start the term;
    a one-line summary (`templates/results/match.txt`).

    A round of 100,000 is stored and mailed in batches (`send_in_batches`), so that mail
    coming in is never kept waiting for long: each batch stores its pairs with their
    introductions, or its people left out with their notices, all or nothing. The round
    is marked matched last: after a crash midway it is still open, those already paired
    are no longer eligible, and matching it again pairs the rest, with no copy twice."""
    db = program.db
    waking = program.rules.weights.waking_hours
    people, current = plan.people, plan.round
    start, end = rounds.term_of(current, now, program.rules.term_months)
    with transaction(db):
        nxt = rounds.next_round(db, current, now)

    introducing = [
        _Introducing(
            pair,
            {member: people[member] for member in pair.members},
            f"match-intro:round-{current.id}",
            current.name,
            (start, end),
            tuple(waking),
        )
        for pair in plan.result.pairs
    ]

    def paired(batch: list[_Introducing]) -> None:
        for pair in (item.pair for item in batch):
            why = reasons(program, pair)
            partnerships.add(
                db, current.id, pair.members, start, end, pair.score, why, made_by, now
            )
            for member in pair.members:
                participants.set_status(db, member, Status.MATCHED, now)

    def notice(left: tuple[int, matching.Finding]) -> Made | None:
        member, why = left
        return make(
            program,
            template="match-waitlisted",
            to=people[member]["email"],
            name=people[member]["name"],
            context={"round": current.name, "next_round": nxt.name, "reason": why},
            key=f"waitlisted:{current.id}:{member}",
            now=now,
        )

    def waiting(batch: list[tuple[int, matching.Finding]]) -> None:
        for member, _ in batch:
            participants.set_status(db, member, Status.WAITING, now)
            participants.enrol(db, member, nxt.id, now)

    send_in_batches(
        program,
        introducing,
        lambda item: _introduced(program, item, now),
        now,
        also=paired,
        elsewhere=_introduced,
    )
    left = [*plan.result.unmatched, *plan.result.deferred]
    send_in_batches(program, left, notice, now, also=waiting)
    with transaction(db):
        rounds.mark_matched(db, current, now, program.rules.term_months)
    result = plan.result
    return program.renderer.result(
        "match",
        "matched",
        round=plan.round.name,
        partnerships=len(result.pairs),
        waiting=len(result.unmatched) + len(result.deferred),
        next_round=nxt.name,
        quality=result.certified_ratio,
        start=iso(start)[:10],
        end=iso(end)[:10],
    )
