"""The coordinators' COORDINATOR ADD and REMOVE commands: who coordinates which countries.

Program-wide coordinators only; the last program-wide coordinator is never removed, so the
program always has someone who can change it.
"""

from __future__ import annotations

from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
    email_address,
    only_program_wide,
)
from mailflow.model import coordinators as roles

UNKNOWN_SHOWN = 10  # words that name no country, quoted back to COORDINATOR ADD


def _coordinator_add_check(ask: Ask) -> tuple[str, frozenset[str]]:
    only_program_wide(ask, "COORDINATOR ADD")
    words = ask.arguments.split()
    if not words:
        raise Refusal("coordinators", "add-no-address")
    address = email_address(words[0])
    countries, unknown = roles.read_countries(words[1:])
    if unknown:
        raise Refusal("coordinators", "not-countries", unknown=unknown, shown=UNKNOWN_SHOWN)
    return address, countries


def _coordinator_add_preview(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    coordinator = roles.Coordinator(address, countries)
    return ask.say("coordinators", "add-preview", address=address, coordinator=coordinator)


@command(
    "COORDINATOR ADD",
    usage="COORDINATOR ADD address [country ...]",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_add_preview,
)
def coordinator_add(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    new = roles.add(ask.db, address, countries, source="command", by=ask.sender, now=ask.now)
    coordinator = roles.Coordinator(address, countries)
    return ask.say("coordinators", "added", address=address, new=new, coordinator=coordinator)


def _coordinator_remove_check(ask: Ask) -> roles.Coordinator:
    only_program_wide(ask, "COORDINATOR REMOVE")
    address = email_address(ask.arguments)
    found = roles.find(ask.db, address)
    if found is None:
        raise Refusal("coordinators", "not-a-coordinator", address=address)
    others = [c for c in roles.listing(ask.db) if c.program_wide and c.email != address]
    if found.program_wide and not others:
        raise Refusal("coordinators", "last-program-wide", address=address)
    return found


def _coordinator_remove_preview(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    return ask.say(
        "coordinators",
        "remove-preview",
        address=found.email,
        coordinator=found,
        from_settings=found.source == "config",
    )


@command(
    "COORDINATOR REMOVE",
    usage="COORDINATOR REMOVE address",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_remove_preview,
)
def coordinator_remove(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    roles.remove(ask.db, found.email)
    return ask.say("coordinators", "removed", address=found.email)
