"""The command registry: every command a person can write, registered once by name.

Each command has its aliases (STOP/LEAVE are one declaration) and a usage line: its
syntax. HELP is generated from this registry so it never drifts from what exists (Mailman
3's commands/eml_*.py); the sentence that says what a command does is never here but in
templates/_summaries.txt, keyed by audience and name. Modules that define commands
register them on import.
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
    # Participants' commands take (Turn, arguments); coordinators' take one coordinator.ask.Ask.
    run: Callable[..., str]
    audience: str = "participant"
    changes: bool = False  # changes data: a coordinator confirms it by reply first
    preview: Callable[..., str] | None = None  # what it would do, for the confirmation
    takes_text: bool = False  # every line after the command is its text (BROADCAST)

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


REGISTRY: list[Command] = []
# Punctuation after a command ("STOP.", "HELP?"), taken off with str.rstrip: the regex
# r"[\s.!?,;:]+$" it replaces is quadratic on a long run of spaces or full stops.
TRAILING = ".!?,;:"
# A command is a few short words at the start of a line; no more of the line is looked at
# to find one (its arguments are the rest of the line, however long).
HEAD = 200
_JUNK = re.compile(r"[\s.!?,;:]*")  # with fullmatch: anchored at both ends, linear


def command(
    name: str,
    *aliases: str,
    usage: str = "",
    audience: str = "participant",
    changes: bool = False,
    preview: Callable[..., str] | None = None,
    takes_text: bool = False,
):
    def register(run: Callable[..., str]) -> Callable[..., str]:
        entry = Command(name, aliases, usage or name, run, audience, changes, preview, takes_text)
        REGISTRY.append(entry)
        return run

    return register


def find(line: str, audience: str = "participant") -> tuple[Command, str] | None:
    """The command a line starts with (whole words, any case; the longest spelling wins)."""
    text = line.lstrip()
    head, rest = text[:HEAD], text[HEAD:]
    if _JUNK.fullmatch(rest):  # all of it, or only spaces and punctuation after the head
        words = _words(head)
    else:
        words = head.split()
        if not head[-1].isspace() and not rest[0].isspace():
            words.pop()  # cut short at the end of the head: not a word to read
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
    if rest:
        words = _words(text)
    return best[1], " ".join(words[best[0] :])


def _words(text: str) -> list[str]:
    """The words of `text` without the whitespace and TRAILING punctuation at its end."""
    words = text.split()
    while words and not words[-1].rstrip(TRAILING):
        words.pop()
    if words:
        words[-1] = words[-1].rstrip(TRAILING)
    return words


def listing(audience: str = "participant") -> list[Command]:
    return [entry for entry in REGISTRY if entry.audience == audience]
