"""The coordinators' ROUND command: open a round and schedule its applications and term.

Program-wide coordinators only. Its preview says whether the line creates a round or
schedules the one accepting applications, before anything is written.
"""

from __future__ import annotations

from datetime import datetime

from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
    only_program_wide,
)
from mailflow.model import rounds
from mailflow.read import dates
from mailflow.store import iso

ROUND_KEYWORDS = ("OPEN", "CLOSE", "START")
NAME_CHARACTERS = 60  # of a round's name, shown in mail subjects and STATS


def read_round_line(arguments: str) -> dict[str, str | None] | None:
    """`name OPEN date CLOSE date START date [END date]`, each part up to the next keyword.
    Words are walked once: a pattern of lazy groups backtracked polynomially on repeated
    keywords (16 KB of 'OPEN a CLOSE b' took a minute)."""
    words = arguments.split()
    parts: dict[str, list[str]] = {"name": []}
    current = "name"
    for index, word in enumerate(words):
        keyword = word.upper()
        wanted = ROUND_KEYWORDS[len(parts) - 1] if len(parts) <= len(ROUND_KEYWORDS) else None
        # END splits START's date only when something follows it (as the pattern did).
        if keyword == wanted or (
            keyword == "END" and current == "start" and index + 1 < len(words)
        ):
            if not parts[current]:
                return None
            current = keyword.lower()
            parts[current] = []
            continue
        parts[current].append(word)
    if "start" not in parts or not parts[current]:
        return None
    found: dict[str, str | None] = {key: " ".join(value) for key, value in parts.items()}
    found.setdefault("end", None)
    return found


def _round_check(ask: Ask) -> tuple[str, dict[str, datetime | None], rounds.Round | None]:
    only_program_wide(ask, "ROUND")
    found = read_round_line(ask.arguments)
    if not found:
        raise Refusal("rounds", "round-unreadable")
    name = found["name"].strip()
    if len(name) > NAME_CHARACTERS:
        raise Refusal("rounds", "name-too-long", most=NAME_CHARACTERS)
    moments: dict[str, datetime | None] = {}
    for key in ("open", "close", "start", "end"):
        if found[key] is None:
            moments[key] = None
            continue
        moments[key] = dates.read_date(found[key], ask.now)
        if moments[key] is None:
            raise Refusal("rounds", "date-unreadable", keyword=key.upper(), written=found[key])
    if not moments["open"] < moments["close"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("rounds", "dates-out-of-order")
    if moments["end"] is not None and moments["end"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("rounds", "end-before-start")
    if moments["close"] <= ask.now:  # type: ignore[operator]
        raise Refusal("rounds", "close-past")
    return name, moments, rounds.to_schedule(ask.db, name, ask.now)


def _days(moments: dict[str, datetime | None]) -> dict[str, str | None]:
    return {key: iso(moment)[:10] if moment else None for key, moment in moments.items()}


def _round_preview(ask: Ask) -> str:
    name, moments, existing = _round_check(ask)
    if existing is None:
        return ask.say("rounds", "creates", name=name, day=_days(moments))
    return ask.say("rounds", "schedules", name=name, day=_days(moments), existing=existing.name)


@command(
    "ROUND",
    usage="ROUND name OPEN date CLOSE date START date [END date]",
    audience=AUDIENCE,
    changes=True,
    preview=_round_preview,
)
def round_(ask: Ask) -> str:
    name, moments, existing = _round_check(ask)
    rounds.schedule(
        ask.db,
        existing,
        name,
        moments["open"],  # type: ignore[arg-type]  # checked: only END may be missing
        moments["close"],  # type: ignore[arg-type]
        moments["start"],  # type: ignore[arg-type]
        moments["end"],
        ask.now,
    )
    outcome = "created" if existing is None else "scheduled"
    return ask.say("rounds", outcome, name=name, day=_days(moments))
