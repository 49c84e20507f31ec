"""Coordinators' commands on partnerships: MATCH, REMATCH, PAIR and END.

Each has a `preview` that checks everything it can before it is confirmed, so a coordinator
learns of a mistake before replying CONFIRM; the command checks again when it runs, since
the program may have moved on in between. A country coordinator touches only the
participants of their countries; MATCH is for program-wide coordinators only.
"""

from __future__ import annotations

from mailflow import matching
from mailflow.app import membership
from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
    only_program_wide,
    partners_of,
    person,
    who,
)
from mailflow.errors import RulesError
from mailflow.matching import matchmaker
from mailflow.model import participants, partnerships, rounds
from mailflow.model.participants import Status
from mailflow.send.sending import send
from mailflow.store import iso


def _match_preview(ask: Ask) -> str:
    only_program_wide(ask, "MATCH")
    try:
        plan = matchmaker.plan(ask.program, ask.now)
    except RulesError as mistake:  # rules/matching.toml or regions.toml written wrongly
        raise Refusal("partnerships", "match-rules-wrong", mistake=mistake) from None
    return matchmaker.preview_text(ask.program, plan)


@command(
    "MATCH",
    audience=AUDIENCE,
    changes=True,
    preview=_match_preview,
)
def match(ask: Ask) -> str:
    only_program_wide(ask, "MATCH")
    plan = matchmaker.plan(ask.program, ask.now)
    return matchmaker.carry_out(ask.program, plan, ask.now, made_by=ask.sender)


def _rematch_check(ask: Ask) -> tuple[dict, partnerships.Partnership | None, list[dict]]:
    me = person(ask, ask.arguments)
    partnership, partners = partners_of(ask, me)
    if partnership is None and me["status"] != Status.WAITING:
        raise Refusal("partnerships", "rematch-neither", who=who(me), status=me["status"])
    if partnership is None and rounds.running_term(ask.db, ask.now) is None:
        raise Refusal("partnerships", "rematch-no-term", who=who(me))
    return me, partnership, partners


def _rematch_preview(ask: Ask) -> str:
    me, _, partners = _rematch_check(ask)
    waiting = participants.select(ask.db, "status = ? AND id != ?", [Status.WAITING, me["id"]])
    seeker, *candidates = matchmaker.applicants(ask.program, [me, *waiting], ask.now)
    best = matching.best_partner(
        seeker,
        candidates,
        ask.program.rules.weights,
        former=matchmaker.former_partners(ask.program),
    )
    newcomer = None if best is None else next(w for w in waiting if w["id"] in best.members)
    return ask.say(
        "partnerships",
        "rematch-preview",
        partners=[who(p) for p in partners],
        newcomer=None if newcomer is None else who(newcomer),
        score=None if best is None else best.score,
    )


@command(
    "REMATCH",
    usage="REMATCH address",
    audience=AUDIENCE,
    changes=True,
    preview=_rematch_preview,
)
def rematch(ask: Ask) -> str:
    me, partnership, partners = _rematch_check(ask)
    why = f"rematched by coordinator {ask.sender}"
    if partnership is not None:
        partnerships.dissolve(ask.db, partnership.id, why, ask.now)
        for partner in partners:
            _set_waiting(ask, partner, "rematch")
    else:
        round_id, term_end = rounds.running_term(ask.db, ask.now)  # type: ignore[misc]  # checked above
        partnership = partnerships.Partnership(0, round_id, (), ask.now, term_end, ask.now)
    newcomer = membership.rematch(ask.program, me, partnership, ask.now)
    if newcomer is None:
        nxt = _set_waiting(ask, me, "no-one-waiting")
        return ask.say("partnerships", "rematch-nobody-fits", who=who(me), next_round=nxt)
    return ask.say("partnerships", "rematched", who=who(me), newcomer=who(newcomer))


def _pair_check(ask: Ask) -> tuple[list[dict], matching.Pair, list[str]]:
    words = ask.arguments.replace(",", " ").split()
    if len(words) != 2:
        raise Refusal("partnerships", "pair-two-addresses")
    people = [person(ask, word) for word in words]
    if people[0]["id"] == people[1]["id"]:
        raise Refusal("partnerships", "pair-same-person")
    for record in people:
        if record["status"] == Status.MATCHED:
            raise Refusal("partnerships", "pair-partnered", who=who(record))
        if record["status"] not in (Status.APPLIED, Status.WAITING, Status.COMPLETED):
            raise Refusal("partnerships", "pair-status", who=who(record), status=record["status"])
    applicants = matchmaker.applicants(ask.program, people, ask.now)
    former = matchmaker.former_partners(ask.program)
    weights = ask.program.rules.weights
    ids = [record["id"] for record in people]
    result = matching.match(applicants, weights, former=former, fixed=[ids], country_cap=0)
    return people, result.pairs[0], matching.broken_rules(*applicants, former)


def _pair_preview(ask: Ask) -> str:
    people, pair, notes = _pair_check(ask)
    running = rounds.running_term(ask.db, ask.now)
    return ask.say(
        "partnerships",
        "pair-preview",
        first=who(people[0]),
        second=who(people[1]),
        score=pair.score,
        until=iso(running[1])[:10] if running else None,
        notes=notes,
    )


@command(
    "PAIR",
    usage="PAIR address address",
    audience=AUDIENCE,
    changes=True,
    preview=_pair_preview,
)
def pair(ask: Ask) -> str:
    people, made, _ = _pair_check(ask)
    running = rounds.running_term(ask.db, ask.now)
    if running:
        round_id, end = running
    else:
        round_id = rounds.to_match(ask.db, ask.now).id
        end = rounds.add_months(ask.now, ask.program.rules.term_months)
    partnership_id = membership.add_partnership(
        ask.program, round_id, made, end, ask.sender, ask.now
    )
    matchmaker.introduce(
        ask.program,
        partnership_id,
        made,
        {record["id"]: record for record in people},
        rounds.get(ask.db, round_id).name,
        ask.now,
        end,
        ask.now,
        ask.program.rules.weights.waking_hours,
    )
    return ask.say(
        "partnerships", "paired", first=who(people[0]), second=who(people[1]), until=iso(end)[:10]
    )


def _end_check(ask: Ask) -> tuple[dict, partnerships.Partnership, list[dict]]:
    me = person(ask, ask.arguments)
    partnership, partners = partners_of(ask, me)
    if partnership is None:
        raise Refusal("partnerships", "end-not-partnered", who=who(me), status=me["status"])
    return me, partnership, partners


def _end_preview(ask: Ask) -> str:
    me, _, partners = _end_check(ask)
    return ask.say("partnerships", "end-preview", everyone=[who(p) for p in [me, *partners]])


@command(
    "END",
    usage="END address",
    audience=AUDIENCE,
    changes=True,
    preview=_end_preview,
)
def end(ask: Ask) -> str:
    me, partnership, partners = _end_check(ask)
    partnerships.dissolve(ask.db, partnership.id, f"ended by coordinator {ask.sender}", ask.now)
    nxt = ""
    for record in [me, *partners]:
        nxt = _set_waiting(ask, record, "ended")
    everyone = [who(p) for p in [me, *partners]]
    return ask.say("partnerships", "ended", everyone=everyone, next_round=nxt)


def _set_waiting(ask: Ask, record: dict, why: str) -> str:
    """Out of a partnership by a coordinator's hand: they wait for the next round, and are
    told. Returns the round they wait for."""
    nxt = membership.wait_for_next_round(ask.program, record, ask.now)
    send(
        ask.program,
        template="partnership-ended",
        to=record["email"],
        name=record["name"],
        context={"why": why, "next_round": nxt.name},
        key=f"partnership-ended:{ask.source_row}:{ask.turn.row_id}:{record['id']}",
        now=ask.now,
    )
    return nxt.name
