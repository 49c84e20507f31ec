"""The command registry: every command a person can write, registered once by name.

Each command has its aliases (STOP/LEAVE are one declaration), a usage line and a summary;
HELP is generated from this registry so it never drifts from what exists (Mailman 3's
commands/eml_*.py). Modules that define commands register them on import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    usage: str
    summary: str
    # Participants' commands take (Turn, arguments); coordinators' take one coordination.Ask.
    run: Callable[..., str]
    audience: str = "participant"
    changes: bool = False  # changes data: a coordinator confirms it by reply first
    preview: Callable[..., str] | None = None  # what it would do, for the confirmation
    takes_text: bool = False  # every line after the command is its text (BROADCAST)

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


REGISTRY: list[Command] = []
TRAILING = re.compile(r"[\s.!?,;:]+$")


def command(
    name: str,
    *aliases: str,
    usage: str = "",
    summary: str,
    audience: str = "participant",
    changes: bool = False,
    preview: Callable[..., str] | None = None,
    takes_text: bool = False,
):
    def register(run: Callable[..., str]) -> Callable[..., str]:
        entry = Command(
            name, aliases, usage or name, summary, run, audience, changes, preview, takes_text
        )
        REGISTRY.append(entry)
        return run

    return register


def find(line: str, audience: str = "participant") -> tuple[Command, str] | None:
    """The command a line starts with (whole words, any case; the longest spelling wins)."""
    words = TRAILING.sub("", line.strip()).split()
    if not words:
        return None
    upper = [word.upper() for word in words]
    best: tuple[int, Command] | None = None
    for entry in REGISTRY:
        if entry.audience != audience:
            continue
        for spelling in entry.spellings:
            size = len(spelling.split())
            if upper[:size] == spelling.split() and (best is None or size > best[0]):
                best = (size, entry)
    if best is None:
        return None
    return best[1], " ".join(words[best[0] :])


def listing(audience: str = "participant") -> list[Command]:
    return [entry for entry in REGISTRY if entry.audience == audience]
