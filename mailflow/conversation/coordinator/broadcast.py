"""The coordinators' BROADCAST command: the lines after it, mailed to everyone taking part.

A country coordinator reaches only their countries. Paused participants asked for quiet and
people who left are never written to.
"""

from __future__ import annotations

from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
)
from mailflow.model import participants
from mailflow.model.participants import Status
from mailflow.send.sending import send

BROADCAST_CHARACTERS = 20_000  # the text mailed to everyone; kept in the token till CONFIRM
# The statuses a broadcast reaches: everyone taking part now. Paused people asked for quiet.
BROADCAST_TO = (Status.APPLIED, Status.WAITING, Status.MATCHED)


def _broadcast_check(ask: Ask) -> tuple[str, list[dict]]:
    if not ask.text.strip():
        raise Refusal("broadcast", "no-text")
    if len(ask.text) > BROADCAST_CHARACTERS:
        raise Refusal("broadcast", "too-long", most=BROADCAST_CHARACTERS, characters=len(ask.text))
    subject = ask.arguments.strip() or ask.say(
        "broadcast", "default-subject", program_name=ask.program.config.program_name
    )
    where = f"status IN ({', '.join('?' for _ in BROADCAST_TO)})"
    values: list = list(BROADCAST_TO)
    if not ask.coordinator.program_wide:
        where += f" AND country IN ({', '.join('?' for _ in ask.coordinator.countries)})"
        values += sorted(ask.coordinator.countries)
    return subject, participants.select(ask.db, where, values)


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
    for record in recipients:
        send(
            ask.program,
            template="broadcast",
            to=record["email"],
            name=record["name"],
            context={"subject": subject, "text": ask.text.strip("\n"), "sender": ask.sender},
            key=f"broadcast:{ask.source_row}:{record['id']}",
            now=ask.now,
        )
    return ask.say("broadcast", "sent", subject=subject, recipients=len(recipients))
