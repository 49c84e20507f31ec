"""Coordinators' messages: every line above the quote is a command, carried out in order.

Read-only commands are answered at once in one `command-result`. Commands that change
data are previewed in one `command-confirm` whose reply address carries a single-use,
expiring token bound to this coordinator and these command lines: only a reply to it
whose first line is CONFIRM (or YES) carries them out, so a forged From changes nothing.
"""

from __future__ import annotations

from mailflow import commands, tokens
from mailflow.conversation import Turn, continues

CONFIRM = "coordinator-confirm"
MAX_LINES = 50


def is_coordinator(turn: Turn) -> bool:
    return turn.sender in turn.program.config.coordinators


def _lines(turn: Turn) -> list[str]:
    lines = [line.strip() for line in turn.message.reply.splitlines() if line.strip()]
    return lines[:MAX_LINES] or [turn.message.command_subject]


def handle(turn: Turn) -> str:
    lines = _lines(turn)
    if [line.upper() for line in lines] == ["HELP"]:
        turn.answer("help", {"commands": commands.listing("coordinator"), "coordinator": True})
        return "help"
    results: list[tuple[str, str]] = []
    pending: list[str] = []
    for line in lines:
        found = commands.find(line, "coordinator")
        if found is None:
            results.append((line, "not understood; write HELP for the list of commands"))
            continue
        entry, arguments = found
        if entry.changes:
            pending.append(line)
            preview = entry.preview(turn, arguments) if entry.preview else "will be carried out"
            results.append((line, preview))
        else:
            results.append((line, entry.run(turn, arguments)))
    if pending:
        turn.answer(
            "command-confirm",
            {"results": results, "pending": pending},
            token_purpose=CONFIRM,
            payload={"lines": pending},
        )
        return "command-confirm"
    turn.answer("command-result", {"results": results, "cancelled": False})
    return "command-result"


@continues(CONFIRM)
def confirmed(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    word = turn.first_line.upper().strip(" .!")
    lines = token.payload.get("lines", [])
    if word not in ("CONFIRM", "YES"):
        # Anything but a clear yes changes nothing; a coordinator who meant yes writes again.
        results = [(line, "not carried out") for line in lines]
        turn.answer("command-result", {"results": results, "cancelled": True})
        return "cancelled"
    results = []
    for line in lines:
        found = commands.find(line, "coordinator")
        if found is None:  # the registry changed since the preview
            results.append((line, "no longer a command; nothing done"))
            continue
        entry, arguments = found
        results.append((line, entry.run(turn, arguments)))
    turn.answer("command-result", {"results": results, "cancelled": False})
    return "confirmed"
