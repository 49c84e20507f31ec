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
    only_program_wide(ask, "schedule rounds")
    found = read_round_line(ask.arguments)
    if not found:
        raise Refusal(
            "write ROUND name OPEN date CLOSE date START date, and END date if the term is not"
            " the usual length, e.g. ROUND Spring 2027 OPEN 1 Feb 2027 CLOSE 28 Feb 2027"
            " START 1 Mar 2027."
        )
    name = found["name"].strip()
    if len(name) > 60:
        raise Refusal("a round's name can be at most 60 characters.")
    moments: dict[str, datetime | None] = {}
    for key in ("open", "close", "start", "end"):
        if found[key] is None:
            moments[key] = None
            continue
        moments[key] = dates.read_date(found[key], ask.now)
        if moments[key] is None:
            raise Refusal(f"{key.upper()} {found[key]!r} is not a date I can read.")
    if not moments["open"] < moments["close"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("the dates must come in order: OPEN before CLOSE, CLOSE no later than START.")
    if moments["end"] is not None and moments["end"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("END must come after START.")
    if moments["close"] <= ask.now:  # type: ignore[operator]
        raise Refusal("CLOSE is in the past.")
    return name, moments, rounds.to_schedule(ask.db, name, ask.now)


def _round_description(name: str, moments: dict[str, datetime | None]) -> str:
    day = {k: iso(v)[:10] if v else None for k, v in moments.items()}
    term = f"term from {day['start']}" + (f" to {day['end']}" if day["end"] else "")
    return f"{name}: applications {day['open']} to {day['close']}; {term}"


def _round_preview(ask: Ask) -> str:
    name, moments, existing = _round_check(ask)
    what = "Creates" if existing is None else f"Schedules {existing.name} as"
    return f"{what} {_round_description(name, moments)}."


@command(
    "ROUND",
    usage="ROUND name OPEN date CLOSE date START date [END date]",
    audience=AUDIENCE,
    changes=True,
    preview=_round_preview,
    summary="open and schedule a round: applications, then the term from START",
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
    if existing is None:
        return f"Created {_round_description(name, moments)}."
    return f"Scheduled {_round_description(name, moments)}."
