"""The durable outbox: queueing composed mail and delivering it exactly once.

Queueing happens in the same transaction as the change that caused it, under an
idempotency key, so handling a message twice cannot queue its answer twice. One process
delivers at a time (a lock file beside the database). Delivery to the Maildir uses a file
name derived from the outbox row, so a crash between writing the file and marking the row
sent never produces a second copy. A relay (`relay.py`) gets retries with exponential
backoff, and a row handed to it is never sent twice: see `_recover`. What keeps failing
is marked failed with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import smtplib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from mailflow.config import Config
from mailflow.errors import SettingError
from mailflow.send import relay
from mailflow.send.compose import Outgoing
from mailflow.store import iso, lock_file, transaction

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MOST = timedelta(hours=6)
BATCH = 500  # outbox rows read at once; delivered to the Maildir, marked sent in one commit
WRITERS = 4  # Maildir files written at once (see _to_maildir)
LOCK_WAIT = 60.0  # seconds a command waits for another process's delivery pass


def queue(
    db: sqlite_utils.Database,
    outgoing: Outgoing,
    *,
    key: str,
    now: datetime,
    inbound_id: int | None = None,
) -> bool:
    """Queue a message unless one with this key exists; True when it was queued now."""
    return queue_many(db, [(outgoing, key, inbound_id)], now) == 1


def queue_many(
    db: sqlite_utils.Database, messages: list[tuple[Outgoing, str, int | None]], now: datetime
) -> int:
    """`queue` for many (outgoing, key, inbound_id) in one statement; how many were queued.
    In a transaction of its own unless one is open: executemany would open one and leave
    it open, holding the write lock until something else committed."""
    with transaction(db):
        cursor = db.conn.executemany(
            "INSERT OR IGNORE INTO outbox (idempotency_key, created_at, template, recipient,"
            " envelope_from, message_id, inbound_id, raw, next_attempt_at)"
            " VALUES (?, ?2, ?, ?, ?, ?, ?, ?, ?2)",
            [
                (
                    key,
                    iso(now),
                    outgoing.template,
                    outgoing.recipient,
                    outgoing.envelope_from,
                    outgoing.message_id,
                    inbound_id,
                    outgoing.raw,
                )
                for outgoing, key, inbound_id in messages
            ],
        )
    return max(cursor.rowcount, 0)


def _maildir_name(row_id: int, created_at: str) -> str:
    stamp = int(datetime.fromisoformat(created_at).timestamp())
    return f"{stamp}.M{row_id}.mailflow"


def _deliver_maildir(
    folder: Path, row_id: int, created_at: str, raw: bytes, seen: frozenset[str]
) -> None:
    name = _maildir_name(row_id, created_at)
    if name in seen:
        return  # written before a crash: never a second copy
    _write(os.path.join(folder, "tmp", name), os.path.join(folder, "new", name), raw)


def _seen(folder: Path) -> frozenset[str]:
    """The names in new/ and cur/ (less a reader's flags), read once a pass: a file that
    a reader moves from new/ to cur/ meanwhile is still known, and only this pass (one at
    a time: the delivery lock) writes files after it. A listing of cur/ for every mail
    grew with the Maildir, the whole of it for each mail."""
    return frozenset(
        entry.name.split(":", 1)[0] for sub in ("new", "cur") for entry in os.scandir(folder / sub)
    )


def _sync_folder(folder: Path) -> None:
    """The renames into `folder` made durable, before the rows are marked sent: else a
    power cut could keep the row's 'sent' and lose the file it names."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write(temporary: str | Path, final: str | Path, raw: bytes) -> None:
    """Maildir's discipline: written whole in tmp/, fsynced, then renamed into place.
    Readable by the owner only, whatever the umask of the process that delivers."""
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(descriptor, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, final)


# The last word to someone whose data was deleted: once it is out, nothing of it is kept.
FORGET_WHEN_SENT = frozenset({"data-deleted"})


def deliver(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime,
    *,
    everything: bool = False,
    wait: float = LOCK_WAIT,
) -> tuple[int, int]:
    """Deliver what is due (or all queued with `everything`); return (sent, still queued).

    One process delivers at a time. When another holds the outbox for longer than `wait`
    seconds, nothing is sent here: the other process sends these rows in its next pass.
    """
    with _delivery_lock(config, wait) as held:
        if not held:
            log.info("another process is delivering the outbox; it will send what is due")
            sent = 0
        else:
            _recover(db)
            _scrub(db, config)
            sent = _deliver_due(db, config, now, everything)
            _truncate_after_erasure(db)
    queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0]
    return sent, queued


@contextlib.contextmanager
def _delivery_lock(config: Config, wait: float) -> Iterator[bool]:
    """An exclusive flock beside the database, released by the kernel when its holder dies,
    so a row found 'sending' by the holder belongs to a process that is gone."""
    deadline = time.monotonic() + wait
    with lock_file(config.db, "outbox-lock", lambda: time.monotonic() >= deadline) as held:
        yield held is not None


SCRUB = "erasure_scrub"  # settings key: outbox rows whose Maildir copies must follow them


def scrub_later(db: sqlite_utils.Database, row_ids: list[int]) -> None:
    """After an erasure, in its transaction: the Maildir copies of these rows are deleted
    (the row is gone) or rewritten from the row (redacted) by the next delivery pass, which
    also truncates the WAL, so the erased data leaves the disk once this has committed."""
    found = db.execute("SELECT value FROM settings WHERE key = ?", [SCRUB]).fetchone()
    pending = set(json.loads(found[0])) if found else set()
    db.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
        [SCRUB, json.dumps(sorted(pending | set(row_ids)))],
    )


def _scrub(db: sqlite_utils.Database, config: Config) -> None:
    found = db.execute("SELECT value FROM settings WHERE key = ?", [SCRUB]).fetchone()
    if found is None:
        return
    rows = set(json.loads(found[0]))
    for sub in ("new", "cur"):
        folder = config.outbox / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            row_id = _maildir_row(entry.name)
            if row_id not in rows:
                continue
            kept = db.execute("SELECT raw FROM outbox WHERE id = ?", [row_id]).fetchone()
            if kept is None or not kept[0]:
                os.unlink(entry.path)
                continue
            _write(config.outbox / "tmp" / entry.name, entry.path, kept[0])
    with transaction(db):
        done = "UPDATE settings SET value = '[]' WHERE key = ? AND value = ?"
        db.execute(done, [SCRUB, found[0]])


def _truncate_after_erasure(db: sqlite_utils.Database) -> None:
    """The erased rows' old pages are zeroed in the database (secure_delete), but the WAL
    keeps copies until it is checkpointed and truncated: that is done once the last word
    to the erased person (`data-deleted`) is delivered and forgotten too."""
    if db.execute("SELECT 1 FROM settings WHERE key = ?", [SCRUB]).fetchone() is None:
        return
    forgetting = ", ".join(f"'{template}'" for template in sorted(FORGET_WHEN_SENT))
    unsent = db.execute(
        f"SELECT 1 FROM outbox WHERE state = 'queued' AND template IN ({forgetting}) LIMIT 1"
    ).fetchone()
    if unsent is not None:
        return
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        log.warning("the WAL could not be truncated after an erasure: tried again next pass")
        return
    with transaction(db):
        db.execute("DELETE FROM settings WHERE key = ?", [SCRUB])


def _maildir_row(name: str) -> int | None:
    """The outbox row a Maildir file was written from (STAMP.MROW.mailflow[:2,FLAGS])."""
    _, marker, rest = name.partition(".M")
    number = rest.split(".", 1)[0]
    return int(number) if marker and number.isdigit() else None


def _recover(db: sqlite_utils.Database) -> None:
    """Rows a dead process left 'sending': queued again when the relay never saw the end of
    the message, 'unconfirmed' when it may have it (never sent twice unasked)."""
    stranded = db.execute(
        "SELECT id, recipient, message_id, handed_at FROM outbox WHERE state = 'sending'"
    ).fetchall()
    if not stranded:
        return
    with transaction(db):
        for row_id, recipient, message_id, handed_at in stranded:
            if handed_at is None:
                db.execute("UPDATE outbox SET state = 'queued' WHERE id = ?", [row_id])
                continue
            log.warning(
                "outbox %d to %s (%s) was handed to the relay at %s when the sending process"
                " stopped, before the relay confirmed it: marked unconfirmed, not sent again."
                " If the relay's log has no such Message-ID, `mailflow outbox resend %d`",
                row_id,
                recipient,
                message_id,
                handed_at,
                row_id,
            )
            db.execute(
                "UPDATE outbox SET state = 'unconfirmed', last_error = ? WHERE id = ?",
                [f"the sender stopped after handing it to the relay at {handed_at}", row_id],
            )


def _deliver_due(db: sqlite_utils.Database, config: Config, now: datetime, everything: bool):
    # The ids first, the messages as they go: a day's mail is never all in memory.
    due = [
        row_id
        for (row_id,) in db.execute(
            "SELECT id FROM outbox WHERE state = 'queued'"
            + ("" if everything else " AND next_attempt_at <= ?")
            + " ORDER BY id",
            [] if everything else [iso(now)],
        ).fetchall()
    ]
    if config.smtp_relay:
        return _to_relay(db, config, now, due)
    return _to_maildir(db, config, now, due)


def resend(db: sqlite_utils.Database, row_id: int, now: datetime) -> str:
    """Put a failed or unconfirmed row back in the queue (the operator asked); its old state."""
    row = db.execute("SELECT state FROM outbox WHERE id = ?", [row_id]).fetchone()
    if row is None:
        raise SettingError(f"no outbox row {row_id}")
    if row[0] not in ("failed", "unconfirmed"):
        raise SettingError(f"outbox row {row_id} is {row[0]}: only failed or unconfirmed mail")
    with transaction(db):
        db.execute(
            "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?,"
            " handed_at = NULL WHERE id = ?",
            [iso(now), row_id],
        )
    return row[0]


def _rows(db: sqlite_utils.Database, ids: list[int]) -> Iterator[tuple]:
    """(id, created_at, recipient, envelope_from, raw, attempts, template, message_id) of
    each row still there (one can be deleted meanwhile, with its owner's data), a batch at
    a time."""
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        yield from db.execute(
            "SELECT id, created_at, recipient, envelope_from, raw, attempts, template,"
            " message_id"
            f" FROM outbox WHERE id IN ({', '.join('?' * len(batch))}) ORDER BY id",
            batch,
        ).fetchall()


def _to_relay(db: sqlite_utils.Database, config: Config, now: datetime, due: list[int]) -> int:
    """Over one connection, reopened after a message that broke it. When the relay can't be
    reached or refuses the login, every row left waits with backoff: a network or set-up
    problem is never a reason to give up on mail."""
    sent = 0
    with relay.Connection(config) as connection:
        rows = _rows(db, due)
        for row_id, _, recipient, envelope_from, raw, attempts, template, message_id in rows:
            if not _claim(db, row_id):
                continue
            handed = functools.partial(_handed, db, row_id, now)
            # Postfix's words (to=, relay=, status=), so one grep finds a mail in both logs.
            trace = f"outbox {row_id}: to=<{recipient}>, message-id={message_id}"
            try:
                answer = connection.send(envelope_from, recipient, raw, handed)
            except relay.Unavailable as error:
                log.warning("relay unavailable (%s): the outbox waits with backoff", error)
                _release(db, now, due[due.index(row_id) :], error)
                break
            except relay.Unconfirmed as error:
                _unconfirmed(db, row_id, recipient, error)
                continue
            except (OSError, smtplib.SMTPException) as error:
                relayed = f"{trace}, relay={connection.target}"
                _failed(db, config, now, row_id, recipient, attempts, error, relayed)
                continue
            log.info("%s, relay=%s, status=sent (%s)", trace, connection.target, answer)
            # Marked at once: a relayed message is never sent again.
            _mark_sent(db, [(row_id, attempts, template)], now)
            sent += 1
    return sent


def _claim(db: sqlite_utils.Database, row_id: int) -> bool:
    with transaction(db):
        claimed = db.execute(
            "UPDATE outbox SET state = 'sending', handed_at = NULL"
            " WHERE id = ? AND state = 'queued'",
            [row_id],
        )
    return claimed.rowcount == 1


def _handed(db: sqlite_utils.Database, row_id: int, now: datetime) -> None:
    """Committed before the final "." of DATA: from here on a crash can't tell whether the
    relay has the message, so it is never sent again unasked."""
    with transaction(db):
        db.execute("UPDATE outbox SET handed_at = ? WHERE id = ?", [iso(now), row_id])


def _unconfirmed(db: sqlite_utils.Database, row_id: int, recipient: str, error: Exception) -> None:
    log.warning(
        "outbox %d to %s: the relay took the message but did not confirm it (%s): marked"
        " unconfirmed, not sent again; `mailflow outbox resend %d` if it did not arrive",
        row_id,
        recipient,
        error,
        row_id,
    )
    with transaction(db):
        db.execute(
            "UPDATE outbox SET state = 'unconfirmed', last_error = ? WHERE id = ?",
            [f"handed to the relay, not confirmed: {error}"[:500], row_id],
        )


def _release(db: sqlite_utils.Database, now: datetime, ids: list[int], error: Exception) -> None:
    """Every row left waits for its next try, the claimed one included."""
    with transaction(db):
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            for row_id, attempts in db.execute(
                "SELECT id, attempts FROM outbox WHERE state IN ('queued', 'sending')"
                f" AND id IN ({', '.join('?' * len(batch))})",
                batch,
            ).fetchall():
                db.execute(
                    "UPDATE outbox SET state = 'queued', attempts = ?, last_error = ?,"
                    " next_attempt_at = ?, handed_at = NULL WHERE id = ?",
                    [attempts + 1, str(error)[:500], iso(now + _backoff(attempts + 1)), row_id],
                )


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MOST)


def _to_maildir(db: sqlite_utils.Database, config: Config, now: datetime, due: list[int]) -> int:
    """Files are written several at a time (a disk takes several fsyncs in about the time of
    one) and their rows marked sent a batch at a time, in one commit: after a crash, a file
    already written is found again, never written twice. Four writers: sixteen delivered
    a tick's 10,000 mails no faster (3.2 to 4.4 s either way), and in `serve` they took
    the interpreter from the SMTP daemon beside them (fully handled under load: 0.50 of a
    bare server with sixteen, 0.60 with four, the median of ten rounds)."""
    if not due:
        return 0
    for sub in ("tmp", "new", "cur"):
        (config.outbox / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    sent, seen = 0, _seen(config.outbox)
    # Threads only for a batch worth them: starting sixteen for a message or two cost more
    # than the writes (the daemon's delivery loop often finds just a few due).
    with ThreadPoolExecutor(min(WRITERS, len(due))) as writers:
        for start in range(0, len(due), BATCH):
            jobs = [
                (
                    row,
                    writers.submit(_deliver_maildir, config.outbox, row[0], row[1], row[4], seen),
                )
                for row in _rows(db, due[start : start + BATCH])
            ]
            written = []
            for (row_id, _, recipient, _, _, attempts, template, _), job in jobs:
                try:
                    job.result()
                except OSError as error:
                    _failed(db, config, now, row_id, recipient, attempts, error)
                    continue
                written.append((row_id, attempts, template))
            if written:
                _sync_folder(config.outbox / "new")
            _mark_sent(db, written, now)
            sent += len(written)
    return sent


def _mark_sent(db: sqlite_utils.Database, written: list[tuple[int, int, str]], now) -> None:
    """Mark delivered rows (id, attempts, template) sent, or forget them."""
    if not written:
        return
    with transaction(db):
        db.conn.executemany(
            "DELETE FROM outbox WHERE id = ?",
            [(row_id,) for row_id, _, template in written if template in FORGET_WHEN_SENT],
        )
        db.conn.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = ?, last_error = NULL"
            " WHERE id = ?",
            [
                (iso(now), attempts + 1, row_id)
                for row_id, attempts, template in written
                if template not in FORGET_WHEN_SENT
            ],
        )


def _failed(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime,
    row_id: int,
    recipient: str,
    attempts: int,
    error: Exception,
    relayed: str | None = None,
) -> None:
    """Retry later with exponential backoff, or give up when it is permanent or too often.
    `relayed`: the hand-off's trace (outbox, to=, message-id=, relay=) when a relay refused."""
    attempts += 1
    give_up = relay.permanent(error) or attempts >= config.relay_attempts
    wait = _backoff(attempts)
    if relayed:
        status = "failed" if give_up else "deferred"
        later = "giving up" if give_up else f"retry in {wait}"
        log.warning("%s, status=%s (%s): %s", relayed, status, relay.refusal(error), later)
    else:
        log.warning(
            "delivery of outbox %d to %s failed (%s)%s",
            row_id,
            recipient,
            error,
            ": giving up" if give_up else f": retry in {wait}",
        )
    with transaction(db):
        db.execute(
            "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ?,"
            " state = ? WHERE id = ?",
            [
                attempts,
                str(error)[:500],
                iso(now + wait),
                "failed" if give_up else "queued",
                row_id,
            ],
        )
