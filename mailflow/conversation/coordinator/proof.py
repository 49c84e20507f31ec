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

A coordinator's address is enough to ask, so what a message can cost is bounded before
anything runs: at most MAX_LINES commands of at most LINE_CHARACTERS each; commands whose
work grows with the program (a full matching, every participant) at most PER_MESSAGE[X]
times a message and, together, EXPENSIVE_PER_HOUR times an hour per coordinator, counted
from the audit; and one MATCH or IMPORT preview at a time awaiting the coordinator's
reply. Proven work (a confirmed reply, a trusted signature) is counted but never refused.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailflow.config import parse_time
from mailflow.conversation import commands
from mailflow.conversation.commands import Command
from mailflow.conversation.coordinator.ask import AUDIENCE, Ask, Refusal, wording
from mailflow.conversation.turn import Turn, continues, says_yes
from mailflow.model import coordinators, tokens
from mailflow.send.compose import Attachment
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

MAX_LINES = 50  # commands read from one message
LINE_CHARACTERS = 1000  # one command line (BROADCAST's text has its own bound)
QUOTED_CHARACTERS = 200  # of a refused line, quoted back in the answer
# Commands whose cost grows with the program, and how many of each one message may ask.
PER_MESSAGE = {"MATCH": 1, "IMPORT": 1, "EXPORT": 1, "STATS": 1, "FIND": 5, "REMATCH": 5}
EXPENSIVE_PER_HOUR = 30  # of those, per coordinator, proven or not
# Previews that cost a full matching or a whole file: one awaits the coordinator at a time.
ONE_PREVIEW_AT_A_TIME = ("MATCH", "IMPORT")


@dataclass(frozen=True)
class Order:
    line: str
    entry: Command | None  # None: not understood, or `problem`
    arguments: str = ""
    text: str = ""
    problem: Refusal | None = None  # why it is not even read (too long, past MAX_LINES)


def _quoted(line: str) -> str:
    return line if len(line) <= QUOTED_CHARACTERS else line[:QUOTED_CHARACTERS] + "…"


def orders(lines: list[str]) -> list[Order]:
    """The commands of a message, in order; BROADCAST takes every line after it. Past
    MAX_LINES commands, the rest is one order saying it was not read."""
    found: list[Order] = []
    written = [line.rstrip() for line in lines]
    index = 0
    while index < len(written):
        line = written[index].strip()
        index += 1
        if not line:
            continue
        if len(found) == MAX_LINES:
            left = 1 + sum(1 for rest in written[index:] if rest.strip())
            found.append(
                Order(
                    _quoted(line),
                    None,
                    problem=Refusal("proof", "too-many-lines", after=left - 1, most=MAX_LINES),
                )
            )
            break
        if len(line) > LINE_CHARACTERS:
            found.append(
                Order(
                    _quoted(line),
                    None,
                    problem=Refusal(
                        "proof", "line-too-long", most=LINE_CHARACTERS, characters=len(line)
                    ),
                )
            )
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


def _said(turn: Turn, outcome: str, **data) -> str:
    """A line of `templates/results/proof.txt`: what the message answers around a command."""
    return wording(turn.program, "proof", outcome, **data)


def _carry_out(turn: Turn, ask: Ask, order: Order, proof: str) -> str:
    """Run one command; a refusal is its answer line, and changes nothing."""
    assert order.entry is not None
    try:
        with transaction(turn.program.db):
            outcome = order.entry.run(ask)
        changed = order.entry.changes
    except Refusal as refusal:
        outcome, changed = _said(turn, "not-done", reason=refusal.said(turn.program)), False
    record(turn, order.line, proof, outcome, changed)
    return outcome


def _lines(turn: Turn) -> list[str]:
    lines = turn.message.reply.splitlines()
    return lines if any(line.strip() for line in lines) else [turn.subject_command]


def _kind(line: str) -> str:
    """The name of the command a line asks for ('' if none)."""
    found = commands.find(line, AUDIENCE)
    return found[0].name if found else ""


def _spent(turn: Turn) -> list[datetime]:
    """When this coordinator's expensive commands of the last hour ran (or were previewed),
    oldest first. What was refused or cancelled cost nothing and is not counted."""
    rows = turn.program.db.execute(
        "SELECT at, command FROM audit WHERE sender = ? AND at > ? AND proof NOT LIKE 'refused%'"
        " AND proof != 'cancelled' AND outcome != 'not understood' ORDER BY at",
        [turn.sender, iso(turn.now - timedelta(hours=1))],
    ).fetchall()
    return [parse_time(at) for at, line in rows if _kind(line) in PER_MESSAGE]


def _preview_waiting(turn: Turn, name: str) -> datetime | None:
    """When a preview of command `name` was sent that still awaits this coordinator's
    reply (a live, unused confirmation token holding it), else None."""
    rows = turn.program.db.execute(
        "SELECT created_at, payload FROM tokens WHERE purpose = ? AND address = ?"
        " AND used_at IS NULL AND expires_at > ? ORDER BY created_at",
        [tokens.CONFIRM_COMMANDS, turn.sender, iso(turn.now)],
    ).fetchall()
    for created_at, payload in rows:
        written = json.loads(payload).get("orders", [])
        if any(_kind(order.get("line", "")) == name for order in written):
            return parse_time(created_at)
    return None


class _Allowance:
    """What one message may still spend: PER_MESSAGE of each kind, EXPENSIVE_PER_HOUR in
    all. `refusal` says why an order may not run (None: it may, and is counted)."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self.asked: Counter[str] = Counter()
        self.spent = _spent(turn)

    def refusal(self, order: Order) -> Refusal | None:
        assert order.entry is not None
        name = order.entry.name
        if name not in PER_MESSAGE:
            return None
        self.asked[name] += 1
        if self.asked[name] > PER_MESSAGE[name]:
            return Refusal("proof", "once-per-message", command=name, most=PER_MESSAGE[name])
        # A signed message of the coordinator's own is not held back by what forgers spent.
        if len(self.spent) >= EXPENSIVE_PER_HOUR and not self.turn.proven:
            free = self.spent[len(self.spent) - EXPENSIVE_PER_HOUR] + timedelta(hours=1)
            return Refusal(
                "proof",
                "hourly-limit",
                free=free,
                commands=list(PER_MESSAGE),
                most=EXPENSIVE_PER_HOUR,
            )
        self.spent.append(self.turn.now)
        return None


def handle(turn: Turn, coordinator: coordinators.Coordinator) -> str:
    wanted = orders(_lines(turn))
    if [order.entry.name if order.entry else "" for order in wanted] == ["HELP"]:
        bounds = {"lines": MAX_LINES, "per_hour": EXPENSIVE_PER_HOUR}
        context = {"commands": commands.listing(AUDIENCE), "coordinator": True, "bounds": bounds}
        turn.answer("help", context)
        record(turn, "HELP", "own address", "help sent", False)
        return "help"
    # Never a reply to a token here (that is `confirmed`): the proof is a trusted signature.
    # Looked up only when something needs it: a change, or the hourly allowance spent.
    proof = turn.proof if any(order.entry and order.entry.changes for order in wanted) else None
    allowance = _Allowance(turn)
    results: list[tuple[str, str]] = []
    pending: list[Order] = []
    files: list[Attachment] = []
    for order in wanted:
        if order.entry is None:
            if order.problem:
                problem = order.problem.said(turn.program)
                results.append((order.line, _said(turn, "not-done", reason=problem)))
                record(turn, order.line, "refused: too much", problem, False)
            else:
                results.append((order.line, _said(turn, "not-understood")))
                record(turn, order.line, "own address", "not understood", False)
            continue
        refusal = None if proof or not order.entry.changes else _waiting(turn, order.entry.name)
        refusal = refusal or allowance.refusal(order)
        if refusal is not None:
            reason = refusal.said(turn.program)
            results.append((order.line, _said(turn, "not-done", reason=reason)))
            record(turn, order.line, "refused: limit", reason, False)
            continue
        ask = Ask(turn, coordinator, order.arguments, order.text, turn.row_id)
        if not order.entry.changes:
            results.append((order.line, _carry_out(turn, ask, order, "own address")))
        elif proof:
            results.append((order.line, _carry_out(turn, ask, order, proof)))
        else:
            try:
                preview = (
                    order.entry.preview(ask) if order.entry.preview else _said(turn, "will-be-done")
                )
                pending.append(order)
                record(turn, order.line, "awaiting confirmation", preview, False)
            except Refusal as refusal_:
                preview = _said(turn, "not-possible", reason=refusal_.said(turn.program))
                record(turn, order.line, "own address", preview, False)
            results.append((order.line, preview))
        files.extend(ask.files)
    if pending:
        turn.answer(
            "command-confirm",
            {"results": results, "pending": [order.line for order in pending]},
            token_purpose=tokens.CONFIRM_COMMANDS,
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


def _waiting(turn: Turn, name: str) -> Refusal | None:
    """Why an unproven preview of `name` is not made now: another awaits the reply."""
    if name not in ONE_PREVIEW_AT_A_TIME:
        return None
    sent = _preview_waiting(turn, name)
    if sent is None:
        return None
    return Refusal("proof", "preview-waiting", command=name, sent=sent)


@continues(tokens.CONFIRM_COMMANDS)
def confirmed(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    coordinator = find(turn)
    if coordinator is None:  # removed since the preview
        return refuse(turn, "CONFIRM")
    written = token.payload.get("orders", [])
    if not says_yes(turn.first_line):
        # Anything but a clear yes changes nothing; a coordinator who meant yes writes again.
        results = [(order["line"], _said(turn, "not-carried-out")) for order in written]
        for order in written:
            record(turn, order["line"], "cancelled", "not carried out", False)
        turn.answer("command-result", {"results": results, "cancelled": True, "proof": None})
        return "cancelled"
    results = []
    files: list[Attachment] = []
    for order in written:
        found = commands.find(order["line"], AUDIENCE)
        if found is None:  # the registry changed since the preview
            results.append((order["line"], _said(turn, "no-longer-a-command")))
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
    turn.answer("command-refused", {"commands": commands.listing()})
    return "command-refused"
