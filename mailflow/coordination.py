"""Coordinators' messages: every line above the quote is a command, carried out in order.

The From header proves nothing, so:
- read-only commands are answered at once, and only ever to the coordinator's own address;
- commands that change data are previewed in one `command-confirm` whose reply address
  carries a single-use, expiring token bound to this coordinator and these commands: only
  a reply to it whose first line is CONFIRM (or YES) carries them out, so a forged From
  changes nothing. With MAILFLOW_TRUST_DKIM=1, a message whose DKIM signature verifies
  for its From domain is proof enough and runs at once;
- anyone else who writes a coordinator's command gets `command-refused`, with no data.
Every command, proven or not, is written to the audit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailflow import commands, coordinators, parse, signatures, tokens
from mailflow.commands import Command
from mailflow.compose import Attachment
from mailflow.conversation import Turn, continues
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

CONFIRM = "coordinator-confirm"
MAX_LINES = 50
AUDIENCE = "coordinator"


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


@dataclass(frozen=True)
class Order:
    line: str
    entry: Command | None  # None: not understood
    arguments: str = ""
    text: str = ""


def orders(lines: list[str]) -> list[Order]:
    """The commands of a message, in order; BROADCAST takes every line after it."""
    found: list[Order] = []
    written = [line.rstrip() for line in lines]
    index = 0
    while index < len(written) and len(found) < MAX_LINES:
        line = written[index].strip()
        index += 1
        if not line:
            continue
        match = commands.find(line, AUDIENCE)
        if match is None:
            found.append(Order(line, None))
            continue
        entry, arguments = match
        text = ""
        if entry.takes_text:
            text = "\n".join(written[index:]).strip("\n")
            index = len(written)
        found.append(Order(line, entry, arguments, text))
    return found


def _raw(turn: Turn, row_id: int) -> bytes:
    """The stored bytes of a message (b"" once it is gone)."""
    row = turn.program.db.execute("SELECT raw FROM messages WHERE id = ?", [row_id]).fetchone()
    return row[0] if row else b""


def find(turn: Turn) -> coordinators.Coordinator | None:
    return coordinators.find(turn.program.db, turn.sender)


def record(turn: Turn, command: str, proof: str, outcome: str, changed: bool) -> None:
    turn.program.db.execute(
        "INSERT INTO audit (at, sender, message_id, command, proof, changed, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            iso(turn.now),
            turn.sender,
            turn.row_id,
            command[:500],
            proof,
            int(changed),
            outcome[:2000],
        ],
    )


def _carry_out(turn: Turn, ask: Ask, order: Order, proof: str) -> str:
    """Run one command; a refusal is its answer line, and changes nothing."""
    assert order.entry is not None
    try:
        with transaction(turn.program.db):
            outcome = order.entry.run(ask)
        changed = order.entry.changes
    except Refusal as refusal:
        outcome, changed = f"Not done: {refusal}", False
    record(turn, order.line, proof, outcome, changed)
    return outcome


def _dkim_proof(turn: Turn) -> str | None:
    """'dkim:DOMAIN' when the operator trusts DKIM and the message's signature verifies
    for its From domain; else None (a confirmation round trip is needed)."""
    config = turn.program.config
    if not config.trust_dkim:
        return None
    domain = signatures.verified_domain(
        _raw(turn, turn.row_id),
        turn.sender.rsplit("@", 1)[1],
        signatures.key_lookup(config.dkim_resolver),
    )
    return f"dkim:{domain}" if domain else None


def _lines(turn: Turn) -> list[str]:
    lines = turn.message.reply.splitlines()
    return lines if any(line.strip() for line in lines) else [turn.message.command_subject]


def handle(turn: Turn, coordinator: coordinators.Coordinator) -> str:
    wanted = orders(_lines(turn))
    if [order.entry.name if order.entry else "" for order in wanted] == ["HELP"]:
        turn.answer("help", {"commands": commands.listing(AUDIENCE), "coordinator": True})
        record(turn, "HELP", "own address", "help sent", False)
        return "help"
    proof = None
    if any(order.entry and order.entry.changes for order in wanted):
        proof = _dkim_proof(turn)
    results: list[tuple[str, str]] = []
    pending: list[Order] = []
    files: list[Attachment] = []
    for order in wanted:
        if order.entry is None:
            results.append((order.line, "Not understood; write HELP for the list of commands."))
            record(turn, order.line, "own address", "not understood", False)
            continue
        ask = Ask(turn, coordinator, order.arguments, order.text, turn.row_id)
        if not order.entry.changes:
            results.append((order.line, _carry_out(turn, ask, order, "own address")))
        elif proof:
            results.append((order.line, _carry_out(turn, ask, order, proof)))
        else:
            try:
                preview = order.entry.preview(ask) if order.entry.preview else "Will be done."
                pending.append(order)
                record(turn, order.line, "awaiting confirmation", preview, False)
            except Refusal as refusal:
                preview = f"Not possible: {refusal}"
                record(turn, order.line, "own address", preview, False)
            results.append((order.line, preview))
        files.extend(ask.files)
    if pending:
        turn.answer(
            "command-confirm",
            {"results": results, "pending": [order.line for order in pending]},
            token_purpose=CONFIRM,
            payload={
                "orders": [{"line": o.line, "text": o.text} for o in pending],
                "source": turn.row_id,
            },
            attachments=tuple(files),
        )
        return "command-confirm"
    turn.answer(
        "command-result",
        {"results": results, "cancelled": False, "proof": proof},
        attachments=tuple(files),
    )
    return "command-result"


@continues(CONFIRM)
def confirmed(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    coordinator = find(turn)
    if coordinator is None:  # removed since the preview
        return refuse(turn, "CONFIRM")
    word = turn.first_line.upper().strip(" .!")
    written = token.payload.get("orders", [])
    if word not in ("CONFIRM", "YES"):
        # Anything but a clear yes changes nothing; a coordinator who meant yes writes again.
        results = [(order["line"], "Not carried out.") for order in written]
        for order in written:
            record(turn, order["line"], "cancelled", "not carried out", False)
        turn.answer("command-result", {"results": results, "cancelled": True, "proof": None})
        return "cancelled"
    results = []
    files: list[Attachment] = []
    for order in written:
        found = commands.find(order["line"], AUDIENCE)
        if found is None:  # the registry changed since the preview
            results.append((order["line"], "No longer a command; nothing done."))
            continue
        entry, arguments = found
        ask = Ask(turn, coordinator, arguments, order["text"], token.payload.get("source", 0))
        outcome = _carry_out(turn, ask, Order(order["line"], entry), "confirmed by reply")
        results.append((order["line"], outcome))
        files.extend(ask.files)
    turn.answer(
        "command-result",
        {"results": results, "cancelled": False, "proof": None},
        attachments=tuple(files),
    )
    return "confirmed"


def refuse(turn: Turn, line: str) -> str:
    """A coordinator's command from an address that is not a coordinator's: no data."""
    log.info("message %d: a coordinator's command from a non-coordinator", turn.row_id)
    record(turn, line, "refused: not a coordinator", "refused", False)
    turn.answer("command-refused")
    return "command-refused"
