"""What a coordinator's command is given (`Ask`), and how it says no (`Refusal`).

The commands (`coordinator.commands`) and the proof and audit around them
(`coordinator.proof`) both use these; neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailflow.conversation.turn import Turn
from mailflow.model import coordinators
from mailflow.read import parse
from mailflow.send.compose import Attachment

AUDIENCE = "coordinator"  # the registry's name for coordinators' commands


class Refusal(Exception):
    """A command that can't be carried out as written; the text says why and what to do."""


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

    def attachments(self) -> list[tuple[str, str, bytes]]:
        return parse.attachments(_raw(self.turn, self.source_row))


def _raw(turn: Turn, row_id: int) -> bytes:
    """The stored bytes of a message (b"" once it is gone)."""
    row = turn.program.db.execute("SELECT raw FROM messages WHERE id = ?", [row_id]).fetchone()
    return row[0] if row else b""
