"""The durable outbox: queueing composed mail and delivering it exactly once.

Queueing happens in the same transaction as the change that caused it, under an
idempotency key, so handling a message twice cannot queue its answer twice. Delivery to
the Maildir uses a file name derived from the outbox row, so a crash between writing the
file and marking the row sent never produces a second copy. A relay gets retries with
exponential backoff; what keeps failing is marked failed with the reason.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from mailflow.compose import Outgoing
from mailflow.config import Config
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MOST = timedelta(hours=6)
BATCH = 500  # outbox rows read at once; delivered to the Maildir, marked sent in one commit
WRITERS = 16  # Maildir files written at once


def queue(
    db: sqlite_utils.Database,
    outgoing: Outgoing,
    *,
    key: str,
    now: datetime,
    inbound_id: int | None = None,
) -> bool:
    """Queue a message unless one with this key exists; True when it was queued now."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO outbox (idempotency_key, created_at, template, recipient,"
        " envelope_from, message_id, inbound_id, raw, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            key,
            iso(now),
            outgoing.template,
            outgoing.recipient,
            outgoing.envelope_from,
            outgoing.message_id,
            inbound_id,
            outgoing.raw,
            iso(now),
        ],
    )
    return cursor.rowcount == 1


def _maildir_name(row_id: int, created_at: str) -> str:
    stamp = int(datetime.fromisoformat(created_at).timestamp())
    return f"{stamp}.M{row_id}.mailflow"


def _deliver_maildir(folder: Path, row_id: int, created_at: str, raw: bytes) -> None:
    name = _maildir_name(row_id, created_at)
    new, cur = os.path.join(folder, "new", name), os.path.join(folder, "cur")
    # Not Path.glob, which compiles a pattern for every name it is given.
    if os.path.exists(new) or any(entry.startswith(name) for entry in os.listdir(cur)):
        return  # written before a crash: never a second copy
    temporary = os.path.join(folder, "tmp", name)
    with open(temporary, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, new)


def _deliver_relay(config: Config, envelope_from: str, recipient: str, raw: bytes) -> None:
    host, _, port = (config.smtp_relay or "").rpartition(":")
    with smtplib.SMTP(host or config.smtp_relay, int(port or 25), timeout=30) as smtp:
        smtp.ehlo(config.domain)
        if config.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo(config.domain)
        if config.smtp_user:
            smtp.login(config.smtp_user, config.smtp_password or "")
        smtp.sendmail(envelope_from, [recipient], raw)


def _permanent(error: Exception) -> bool:
    return isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError) and all(
        code >= 500 for code in _codes(error)
    )


def _codes(error: Exception) -> list[int]:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return [code for code, _ in error.recipients.values()]
    return [getattr(error, "smtp_code", 0)]


# The last word to someone whose data was deleted: once it is out, nothing of it is kept.
FORGET_WHEN_SENT = frozenset({"data-deleted"})


def deliver(
    db: sqlite_utils.Database, config: Config, now: datetime, *, everything: bool = False
) -> tuple[int, int]:
    """Deliver what is due (or all queued with `everything`); return (sent, still queued)."""
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
        sent = _to_relay(db, config, now, due)
    else:
        sent = _to_maildir(db, config, now, due)
    queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0]
    return sent, queued


def _rows(db: sqlite_utils.Database, ids: list[int]) -> Iterator[tuple]:
    """(id, created_at, recipient, envelope_from, raw, attempts, template) of each row still
    there (one can be deleted meanwhile, with its owner's data), a batch at a time."""
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        yield from db.execute(
            "SELECT id, created_at, recipient, envelope_from, raw, attempts, template"
            f" FROM outbox WHERE id IN ({', '.join('?' * len(batch))}) ORDER BY id",
            batch,
        ).fetchall()


def _to_relay(db: sqlite_utils.Database, config: Config, now: datetime, due: list[int]) -> int:
    sent = 0
    for row_id, _, recipient, envelope_from, raw, attempts, template in _rows(db, due):
        try:
            _deliver_relay(config, envelope_from, recipient, raw)
        except (OSError, smtplib.SMTPException) as error:
            _failed(db, config, now, row_id, recipient, attempts, error)
            continue
        # Marked at once: after a crash, a relayed message would be sent again.
        _mark_sent(db, [(row_id, attempts, template)], now)
        sent += 1
    return sent


def _to_maildir(db: sqlite_utils.Database, config: Config, now: datetime, due: list[int]) -> int:
    """Files are written several at a time (a disk takes several fsyncs in about the time of
    one) and their rows marked sent a batch at a time, in one commit: after a crash, a file
    already written is found again, never written twice."""
    if not due:
        return 0
    for sub in ("tmp", "new", "cur"):
        (config.outbox / sub).mkdir(parents=True, exist_ok=True)
    sent = 0
    with ThreadPoolExecutor(WRITERS) as writers:
        for start in range(0, len(due), BATCH):
            jobs = [
                (row, writers.submit(_deliver_maildir, config.outbox, row[0], row[1], row[4]))
                for row in _rows(db, due[start : start + BATCH])
            ]
            written = []
            for (row_id, _, recipient, _, _, attempts, template), job in jobs:
                try:
                    job.result()
                except OSError as error:
                    _failed(db, config, now, row_id, recipient, attempts, error)
                    continue
                written.append((row_id, attempts, template))
            _mark_sent(db, written, now)
            sent += len(written)
    return sent


def _mark_sent(db: sqlite_utils.Database, written: list[tuple[int, int, str]], now) -> None:
    """Mark delivered rows (id, attempts, template) sent, or forget them."""
    if not written:
        return
    with transaction(db):
        for row_id, attempts, template in written:
            if template in FORGET_WHEN_SENT:
                db.execute("DELETE FROM outbox WHERE id = ?", [row_id])
            else:
                db.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = ? WHERE id = ?",
                    [iso(now), attempts + 1, row_id],
                )


def _failed(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime,
    row_id: int,
    recipient: str,
    attempts: int,
    error: Exception,
) -> None:
    """Retry later with exponential backoff, or give up when it is permanent or too often."""
    attempts += 1
    give_up = _permanent(error) or attempts >= config.relay_attempts
    wait = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MOST)
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
