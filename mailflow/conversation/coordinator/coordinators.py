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
    only_program_wide(ask, "add coordinators")
    words = ask.arguments.split()
    if not words:
        raise Refusal("write the address: COORDINATOR ADD someone@example.org [countries].")
    address = email_address(words[0])
    countries, unknown = roles.read_countries(words[1:])
    if unknown:
        more = len(unknown) - UNKNOWN_SHOWN
        named = ", ".join(unknown[:UNKNOWN_SHOWN]) + (f" and {more:,} more" if more > 0 else "")
        raise Refusal(f"not a country: {named}.")
    return address, countries


def _coordinator_add_preview(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    scope = roles.Coordinator(address, countries).scope()
    return f"Makes {address} a coordinator for {scope}."


@command(
    "COORDINATOR ADD",
    usage="COORDINATOR ADD address [country ...]",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_add_preview,
    summary="add a coordinator, for the whole program or for the countries named",
)
def coordinator_add(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    new = roles.add(ask.db, address, countries, source="command", by=ask.sender, now=ask.now)
    scope = roles.Coordinator(address, countries).scope()
    return f"{address} is {'now' if new else 'still'} a coordinator, for {scope}."


def _coordinator_remove_check(ask: Ask) -> roles.Coordinator:
    only_program_wide(ask, "remove coordinators")
    address = email_address(ask.arguments)
    found = roles.find(ask.db, address)
    if found is None:
        raise Refusal(f"{address} is not a coordinator.")
    others = [c for c in roles.listing(ask.db) if c.program_wide and c.email != address]
    if found.program_wide and not others:
        raise Refusal(f"{address} is the last program-wide coordinator.")
    return found


def _coordinator_remove_preview(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    note = (
        " They are in MAILFLOW_COORDINATORS, so they come back when the program restarts"
        " unless the operator takes them out of it."
        if found.source == "config"
        else ""
    )
    return f"Removes {found.email} ({found.scope()}).{note}"


@command(
    "COORDINATOR REMOVE",
    usage="COORDINATOR REMOVE address",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_remove_preview,
    summary="remove a coordinator",
)
def coordinator_remove(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    roles.remove(ask.db, found.email)
    return f"{found.email} is no longer a coordinator."
