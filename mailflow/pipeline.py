"""The one path every message takes: store raw -> parse -> classify -> act -> outbox.

`receive` commits the raw bytes before anything else happens; receivers acknowledge
(250) only after it returns, or, for the SMTP daemon, once the message is in the spool
(`mailflow.spool`), from which the handling process stores and handles it in one
transaction. `process` then does everything else in one transaction, so a crash leaves
the message 'received' and it is handled, once, at the next start. A message already
handled (same Message-ID and From, else same content) is stored as a duplicate and does
nothing. Nothing here may raise to a receiver for one bad message.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.parser
import email.policy
import hashlib
import json
import logging

from mailflow import budget
from mailflow.app import bounces
from mailflow.conversation import router as conversation
from mailflow.conversation.participant import checkins
from mailflow.program import Program
from mailflow.read import classify
from mailflow.read.parse import Unreadable, parse, sender_of
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

HEADERS_ONLY = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def parsed_once(raw: bytes) -> email.message.Message | None:
    """The message parsed (compat32), to hand to `receive` and `settle` so that neither
    parses it again; None if it can't be (each then tries on its own)."""
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:
        return None


def dedupe_key(
    raw: bytes, head: email.message.Message | None = None
) -> tuple[str, str | None, str | None]:
    """(key, Message-ID, sender) read from the header alone, cheaply, or from `head`. The
    sender is read as `parse` reads it for the answer (`sender_of`): None for a From that
    is not one clear mailbox, never another reading of it."""
    try:
        head = head if head is not None else HEADERS_ONLY.parsebytes(raw[:262_144])
        message_id = str(head.get("Message-ID", "")).strip()[:250] or None
        sender = sender_of(head)[1]
    except Exception:  # a header too broken to read is keyed by content below
        message_id, sender = None, None
    if message_id:
        digest = hashlib.sha256(f"{message_id}\0{sender or ''}".encode(errors="replace"))
        return "id:" + digest.hexdigest(), message_id, sender
    return "sha256:" + hashlib.sha256(raw).hexdigest(), None, sender


def receive(
    program: Program,
    raw: bytes,
    envelope_from: str | None,
    recipients: list[str] | tuple[str, ...],
    via: str,
    *,
    received_at: str | None = None,
    spool: str | None = None,
    head: email.message.Message | None = None,
) -> int:
    """Store the raw message durably; return its row id. Raises only if the store fails.
    A message from the spool keeps the time it came and its file's name."""
    key, message_id, sender = dedupe_key(raw, head)
    with transaction(program.db):
        cursor = program.db.execute(
            "INSERT INTO messages (received_at, via, envelope_from, envelope_to, message_id,"
            " sender, dedupe_key, size, raw, spool) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                received_at or iso(program.now()),
                via,
                envelope_from,
                json.dumps(list(recipients)),
                message_id,
                sender,
                key,
                len(raw),
                raw,
                spool,
            ],
        )
    return int(cursor.lastrowid)


def _finish(program: Program, row_id: int, state: str, outcome: str) -> None:
    program.db.execute(
        "UPDATE messages SET state = ?, outcome = ?, handled_at = ? WHERE id = ?",
        [state, outcome[:500], iso(program.now()), row_id],
    )


def process(program: Program, row_id: int) -> str:
    """Handle one stored message exactly once, in a transaction of its own; its outcome.

    The attempt is committed first, on its own: if the process dies midway (killed as
    stuck, out of memory, a crash in C), whoever finds the message next knows it, handles
    it after the rest of the mail, and after a second such death quarantines it instead
    of trying again. An attempt that ends, even in an exception, is not held against it."""
    with transaction(program.db):
        row = program.db.execute(
            "SELECT state, outcome, attempts, timeouts FROM messages WHERE id = ?", [row_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"no message {row_id}")
        state, outcome, attempts, timeouts = row
        if state != "received":
            return outcome or state
        if attempts >= 2:
            outcome = f"{_deaths(attempts, timeouts)} while being handled; not tried again"
            _finish(program, row_id, "quarantined", outcome)
        else:
            program.db.execute("UPDATE messages SET attempts = attempts + 1 WHERE id = ?", [row_id])
    if attempts >= 2:
        log_outcome(program, row_id, "quarantined", outcome)
        return outcome
    try:
        with transaction(program.db):
            state, outcome, now = settle(program, row_id)
    except BaseException:
        with contextlib.suppress(Exception), transaction(program.db):
            program.db.execute(
                "UPDATE messages SET attempts = attempts - 1 WHERE id = ? AND attempts > 0",
                [row_id],
            )
        raise
    if now:
        log_outcome(program, row_id, state, outcome)
    return outcome


def _deaths(attempts: int, timeouts: int) -> str:
    """How the handlings of a message that never finished ended, for the quarantine."""
    if timeouts >= attempts:
        return "timed out twice"
    return "crashed twice" if not timeouts else "crashed once and timed out once"


def settle(
    program: Program, row_id: int, head: email.message.Message | None = None
) -> tuple[str, str, bool]:
    """Handle one stored message inside the caller's transaction: (state, outcome, whether
    it was handled now). The state is read under the write lock, so of two processes
    reaching the same message, one handles it and the other finds it done."""
    row = program.db.execute(
        "SELECT state, outcome, dedupe_key, raw, envelope_from, envelope_to FROM messages"
        " WHERE id = ?",
        [row_id],
    ).fetchone()
    if row is None:
        raise KeyError(f"no message {row_id}")
    state, outcome, key, raw, envelope_from, envelope_to = row
    if state != "received":
        return state, outcome or state, False
    now = program.now()
    try:
        with transaction(program.db):
            # The alarm may strike inside a nested transaction's own bookkeeping and leave
            # its savepoint open: rolling back to one of this name undoes that one too.
            program.db.conn.execute("SAVEPOINT handling")
            try:
                with budget.deadline(program.config.handling_budget):
                    state, outcome = _decide(
                        program,
                        row_id,
                        key,
                        raw,
                        envelope_from,
                        tuple(json.loads(envelope_to)),
                        now,
                        head,
                    )
            except budget.OverBudget:
                program.db.conn.execute("ROLLBACK TO handling")
                raise
            finally:
                program.db.conn.execute("RELEASE handling")
            _finish(program, row_id, state, outcome)
    except budget.OverBudget as over:  # linear handling would never come here: set aside
        state, outcome = "quarantined", f"over budget: {over} (MAILFLOW_HANDLING_BUDGET)"
        _finish(program, row_id, state, outcome)
    except Exception as error:  # a bug or a store failure: set aside, keep serving
        log.exception("message %d could not be handled", row_id)
        state, outcome = "quarantined", f"error: {type(error).__name__}: {error}"
        _finish(program, row_id, state, outcome)
    return state, outcome, True


def log_outcome(program: Program, row_id: int, state: str, outcome: str) -> None:
    """The journal's one line a message, written once its handling is committed; a
    warning for one set aside, which the operator should look at. It names the spool
    file (the "queued as" of the daemon's 250, in the MTA's log) or the way it came, and
    the Message-ID, so one mail can be followed from Postfix's log into mailflow's."""
    level = logging.WARNING if state == "quarantined" else logging.INFO
    row = program.db.execute(
        "SELECT spool, via, message_id FROM messages WHERE id = ?", [row_id]
    ).fetchone()
    spool, via, message_id = row if row else (None, "?", None)
    came = f"spool {spool}" if spool else f"via {via}"
    log.log(
        level,
        "message %d: %s %s (%s, Message-ID %s)",
        row_id,
        state,
        outcome,
        came,
        message_id or "none",
    )


def _decide(
    program: Program,
    row_id: int,
    key: str,
    raw: bytes,
    envelope_from: str | None,
    recipients: tuple[str, ...],
    now,
    head: email.message.Message | None = None,
) -> tuple[str, str]:
    earlier = program.db.execute(
        "SELECT id FROM messages WHERE dedupe_key = ? AND id < ? AND state != 'quarantined'"
        " ORDER BY id LIMIT 1",
        [key, row_id],
    ).fetchone()
    if earlier:
        program.db.execute(
            "UPDATE messages SET duplicate_of = ? WHERE id = ?", [earlier[0], row_id]
        )
        return "duplicate", f"duplicate of message {earlier[0]}"
    try:
        message = parse(raw, envelope_from, recipients, head)
    except Unreadable as error:
        return "quarantined", f"unreadable: {error}"
    rule = classify.automatic(message)
    turn = conversation.Turn(program=program, row_id=row_id, message=message, now=now)
    if rule is None:
        outcome = conversation.handle(turn)
        return "handled", outcome + (" -> " + ", ".join(turn.sent) if turn.sent else "")
    note = ""
    if rule.kind == classify.BOUNCE:
        note = bounces.record(program, message, raw, now)
    elif rule.kind == classify.AWAY and message.sender:
        note = checkins.record_away(turn)
    return "ignored", f"ignored:{rule.name}{note}"


def pending(program: Program, *, tried: bool = False) -> list[int]:
    """Messages stored but not yet handled: those never tried (the process stopped after
    the 250), or with `tried`, those whose handling began and died (see `process`), which
    are handled after all the rest."""
    rows = program.db.execute(
        "SELECT id FROM messages WHERE state = 'received' AND (attempts > 0) = ? ORDER BY id",
        [tried],
    )
    return [row[0] for row in rows.fetchall()]


def handle(
    program: Program,
    raw: bytes,
    envelope_from: str | None,
    recipients: list[str] | tuple[str, ...],
    via: str,
) -> tuple[int, str]:
    row_id = receive(program, raw, envelope_from, recipients, via)
    return row_id, process(program, row_id)
