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
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from mailflow.compose import Outgoing
from mailflow.config import Config
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MOST = timedelta(hours=6)


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
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    name = _maildir_name(row_id, created_at)
    if (folder / "new" / name).exists() or any((folder / "cur").glob(name + "*")):
        return  # written before a crash: never a second copy
    temporary = folder / "tmp" / name
    with temporary.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, folder / "new" / name)


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
    rows = db.execute(
        "SELECT id, created_at, recipient, envelope_from, raw, attempts, template FROM outbox"
        " WHERE state = 'queued'"
        + ("" if everything else " AND next_attempt_at <= ?")
        + " ORDER BY id",
        [] if everything else [iso(now)],
    ).fetchall()
    sent = 0
    for row_id, created_at, recipient, envelope_from, raw, attempts, template in rows:
        try:
            if config.smtp_relay:
                _deliver_relay(config, envelope_from, recipient, raw)
            else:
                _deliver_maildir(config.outbox, row_id, created_at, raw)
        except (OSError, smtplib.SMTPException) as error:
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
            continue
        with transaction(db):
            if template in FORGET_WHEN_SENT:
                db.execute("DELETE FROM outbox WHERE id = ?", [row_id])
            else:
                db.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = ? WHERE id = ?",
                    [iso(now), attempts + 1, row_id],
                )
        sent += 1
    queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0]
    return sent, queued
