"""What a coordinator's command is given (`Ask`), how it says no (`Refusal`), and who and
what a coordinator may touch.

The commands (one module per family in this folder) and the proof and audit around them
(`coordinator.proof`) all use these; none imports another for them, and this module never
imports a command module back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailflow.app import roster
from mailflow.conversation.turn import Turn
from mailflow.model import coordinators, participants, partnerships
from mailflow.read import parse
from mailflow.read.countries import country_name
from mailflow.send.compose import Attachment

AUDIENCE = "coordinator"  # the registry's name for coordinators' commands


class Refusal(Exception):
    """A command that can't be carried out as written: the outcome of its family's wording
    that says why and what to do, with the data it names."""

    def __init__(self, family: str, outcome: str, **data) -> None:
        super().__init__(family, outcome)
        self.family, self.outcome, self.data = family, outcome, data

    def said(self, program) -> str:
        return wording(program, self.family, self.outcome, **self.data)


def wording(program, family: str, outcome: str, **data) -> str:
    """What a coordinator reads for `outcome`, worded by `templates/results/<family>.txt`."""
    return program.renderer.result(family, outcome, **data)


@dataclass
class Ask:
    """One command of a coordinator's message, as its function sees it."""

    turn: Turn
    coordinator: coordinators.Coordinator
    arguments: str
    text: str = ""  # BROADCAST: the lines after the command
    source_row: int = 0  # the message that asked (for IMPORT's attachment)
    files: list[Attachment] = field(default_factory=list)  # attached to the answer

    @property
    def program(self):
        return self.turn.program

    @property
    def db(self):
        return self.turn.program.db

    @property
    def now(self):
        return self.turn.now

    @property
    def sender(self) -> str:
        return self.coordinator.email

    def say(self, family: str, outcome: str, **data) -> str:
        """The answer line of `outcome`, from the wording of the command's family."""
        return wording(self.program, family, outcome, **data)

    def attachments(self) -> list[tuple[str, str, bytes]]:
        return parse.attachments(_raw(self.turn, self.source_row))


def _raw(turn: Turn, row_id: int) -> bytes:
    """The stored bytes of a message (b"" once it is gone)."""
    row = turn.program.db.execute("SELECT raw FROM messages WHERE id = ?", [row_id]).fetchone()
    return row[0] if row else b""


# --- Who and what a coordinator may touch -----------------------------------------------


def only_program_wide(ask: Ask, command: str) -> None:
    """Refused unless the coordinator coordinates the whole program."""
    if not ask.coordinator.program_wide:
        raise Refusal("ask", "program-wide-only", command=command, coordinator=ask.coordinator)


def email_address(text: str) -> str:
    """The address written, as stored; refused if it is not one."""
    address = text.strip().strip("<>").lower()
    if not roster.ADDRESS.match(address):
        raise Refusal("ask", "not-an-address", written=text.strip())
    return address


def person(ask: Ask, text: str) -> dict:
    """The participant with this address, if the coordinator may see them."""
    address = email_address(text)
    found = participants.find(ask.db, address)
    if found is None or not ask.coordinator.covers(found["country"]):
        raise Refusal(
            "ask",
            "no-such-participant",
            address=address,
            program_wide=ask.coordinator.program_wide,
        )
    return found


def who(record: dict) -> str:
    """A participant as a coordinator reads them: name, address and country."""
    return f"{record['name']} <{record['email']}> ({country_name(record['country'])})"


def partners_of(ask: Ask, record: dict) -> tuple[partnerships.Partnership | None, list[dict]]:
    """The active partnership of a participant, and the other members of it."""
    partnership = partnerships.active(ask.db, record["id"])
    if partnership is None:
        return None, []
    others = [participants.by_id(ask.db, m) for m in partnership.members if m != record["id"]]
    return partnership, [o for o in others if o is not None]
