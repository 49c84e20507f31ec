"""The coordinators' BROADCAST command: the lines after it, mailed to everyone taking part.

A country coordinator reaches only their countries. Paused participants asked for quiet and
people who left are never written to.
"""

from __future__ import annotations

from mailflow.app import broadcasts
from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
)

BROADCAST_CHARACTERS = 20_000  # the text mailed to everyone; kept in the token till CONFIRM


def _broadcast_check(ask: Ask) -> tuple[str, list[dict]]:
    if not ask.text.strip():
        raise Refusal("broadcast", "no-text")
    if len(ask.text) > BROADCAST_CHARACTERS:
        raise Refusal("broadcast", "too-long", most=BROADCAST_CHARACTERS, characters=len(ask.text))
    subject = ask.arguments.strip() or ask.say(
        "broadcast", "default-subject", program_name=ask.program.config.program_name
    )
    return subject, broadcasts.audience(ask.program, _countries(ask))


def _countries(ask: Ask) -> list[str] | None:
    """A country coordinator's countries, None for a program-wide one."""
    return None if ask.coordinator.program_wide else sorted(ask.coordinator.countries)


def _broadcast_preview(ask: Ask) -> str:
    subject, recipients = _broadcast_check(ask)
    first = ask.text.strip().splitlines()[0][:80]
    return ask.say("broadcast", "preview", subject=subject, recipients=len(recipients), first=first)


@command(
    "BROADCAST",
    usage="BROADCAST [subject]",
    audience=AUDIENCE,
    changes=True,
    preview=_broadcast_preview,
    takes_text=True,
)
def broadcast(ask: Ask) -> str:
    subject, recipients = _broadcast_check(ask)
    # Sent once this command has committed, in batches that let incoming mail in between.
    broadcasts.start(
        ask.program,
        source_row=ask.source_row,
        subject=subject,
        text=ask.text.strip("\n"),
        sender=ask.sender,
        countries=_countries(ask),
        now=ask.now,
    )
    return ask.say("broadcast", "sent", subject=subject, recipients=len(recipients))
