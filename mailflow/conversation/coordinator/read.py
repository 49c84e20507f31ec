"""Coordinators' read-only commands: HELP, STATS, FIND, COORDINATOR LIST and EXPORT.

They change nothing, so they are answered at once, and only to the coordinator's own
address. A country coordinator sees only the participants of their countries; what is not
theirs is answered as if it did not exist. They never write to the store.
"""

from __future__ import annotations

from datetime import UTC

from mailflow.app import roster
from mailflow.conversation.commands import command, listing
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
    partners_of,
    who,
    wording,
)
from mailflow.model import coordinators as roles
from mailflow.model import search, stats
from mailflow.read.countries import country_name
from mailflow.send.compose import Attachment

FOUND_AT_MOST = 20
# Each word of FIND is one more LIKE over every participant; a few say what is wanted.
FIND_WORDS = 8
FIND_CHARACTERS = 200


@command("HELP", audience=AUDIENCE)
def help_(ask: Ask) -> str:
    return ask.say("read", "help", commands=listing(AUDIENCE))


@command(
    "STATS",
    audience=AUDIENCE,
)
def stats_(ask: Ask) -> str:
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    figures = stats.figures(ask.db, ask.now, countries)
    ask.files.append(Attachment("stats.png", "image/png", stats_chart(ask.program, figures)))
    return stats_text(ask.program, figures)


def stats_chart(program, figures: stats.Figures) -> bytes:
    """The STATS chart, its titles from `templates/results/stats.txt`."""
    titles = tuple(
        wording(program, "stats", outcome, f=figures)
        for outcome in ("chart-by-status", "chart-by-continent")
    )
    return stats.chart_png(figures, titles, wording(program, "stats", "chart-empty"))


def stats_text(program, figures: stats.Figures) -> str:
    """The figures as a STATS reply reads them (`templates/results/stats.txt`)."""
    names = None
    if figures.countries is not None:
        names = sorted(country_name(code) for code in figures.countries)
    return wording(
        program, "stats", "figures", f=figures, at=figures.at.astimezone(UTC), country_names=names
    )


@command(
    "FIND",
    usage="FIND text",
    audience=AUDIENCE,
)
def find(ask: Ask) -> str:
    words = ask.arguments.split()
    if not words:
        raise Refusal("read", "find-nothing-asked")
    if len(words) > FIND_WORDS or len(ask.arguments) > FIND_CHARACTERS:
        raise Refusal(
            "read",
            "find-too-long",
            words=len(words),
            most_words=FIND_WORDS,
            most_characters=FIND_CHARACTERS,
        )
    countries, rest = roles.read_countries(words, codes_in_capitals=True)
    rest = [w for w in rest if w.lower() not in ("in", "from", "of", "and")]
    if not ask.coordinator.program_wide:
        countries = (countries & ask.coordinator.countries) if countries else None
        countries = countries if countries is not None else ask.coordinator.countries
        if not countries:
            return ask.say("read", "find-none-in-countries")
    found = search.participants_with(ask.db, rest, countries)
    if not found:
        return ask.say("read", "find-none", asked=ask.arguments)
    shown = []
    for record in found[:FOUND_AT_MOST]:
        _, partners = partners_of(ask, record)
        shown.append(
            {"who": who(record), "status": record["status"], "partners": [who(p) for p in partners]}
        )
    return ask.say("read", "found", total=len(found), shown=shown)


@command(
    "COORDINATOR LIST",
    audience=AUDIENCE,
)
def coordinator_list(ask: Ask) -> str:
    return ask.say("read", "coordinators", coordinators=roles.listing(ask.db))


@command(
    "EXPORT",
    audience=AUDIENCE,
)
def export(ask: Ask) -> str:
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    people = list(roster.export_participants(ask.db, countries))
    partnerships = list(roster.export_partnerships(ask.db, countries))
    ask.files.append(Attachment("participants.csv", "text/csv", roster.to_csv(people).encode()))
    ask.files.append(
        Attachment("partnerships.csv", "text/csv", roster.to_csv(partnerships).encode())
    )
    # Each file's first row is its header.
    return ask.say(
        "read", "exported", participants=len(people) - 1, partnerships=len(partnerships) - 1
    )
