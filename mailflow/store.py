"""The SQLite store: opening it safely and applying numbered migrations.

The schema lives only in `migrations/NNNN_name.sql`; this module never creates tables of
its own apart from the ledger of applied migrations.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import sqlite_utils

from mailflow.errors import MailflowError

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def iso(moment: datetime) -> str:
    """The one text form of a time in the store: UTC, seconds, with offset."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def records(cursor) -> list[dict]:
    """The rows of a query as dicts by column name."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """All or nothing. sqlite-utils commits every write on its own unless a transaction is
    open, so every multi-statement change opens one here. IMMEDIATE takes the write lock at
    the start: with two writer threads, a read-then-write transaction would otherwise fail
    with SQLITE_BUSY instead of waiting its turn.

    Inside an open transaction (a command run while a message is handled) it is a
    savepoint: the inner change is still all or nothing, and the outer one commits it.
    """
    if db.conn.in_transaction:
        db.conn.execute("SAVEPOINT inner")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK TO inner")
            db.conn.execute("RELEASE inner")
            raise
        db.conn.execute("RELEASE inner")
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.rollback()
        raise
    db.conn.commit()


BATCH_SECONDS = 0.5  # the longest a transaction of a big send holds the write lock
# A break this long before the next, once batches have held it longer than this without
# one, so that a writer waiting for the lock (the handling of incoming mail) gets it:
# SQLite's busy handler, in which every connection waits, sleeps up to 100 ms between
# tries, and without a break it found the next batch running each time, for seconds on
# end (bench/discussion.py).
BATCH_BREAK = 0.1


def give_way(rested: float) -> float:
    """Before a transaction of a big send: a break of BATCH_BREAK when those before it held
    the write lock for longer than that since the last break (`rested`), so that a writer
    waiting for it has its turn. When the last break was, for the next. The big sends of
    discussions, ticks, broadcasts and introductions all take their turns through it."""
    if time.monotonic() - rested <= BATCH_BREAK:
        return rested
    time.sleep(BATCH_BREAK)
    return time.monotonic()


def connect(path: Path) -> sqlite_utils.Database:
    """Open the database in WAL mode, waiting rather than failing when another writer holds it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created for the owner only: SQLite gives its -wal and -shm files the database's mode.
    # Only when it is not there: closing a descriptor of an open database drops every
    # POSIX lock this process holds on it, its other connections' included, and a reader
    # elsewhere then found the database "malformed" while this one wrote.
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across process crashes in WAL mode; FULL adds power-loss safety
    # for the acknowledgement promise ("stored before 250").
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    # Deleted data is overwritten, not left in free pages (an erasure must erase).
    db.execute("PRAGMA secure_delete = ON")
    return db


def backup(db: sqlite_utils.Database, target: Path) -> int:
    """SQLite's online backup into a new file, consistent while others write (WAL), then
    checked with `PRAGMA integrity_check`; the number of pages copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    copy = sqlite3.connect(target)
    try:
        db.conn.backup(copy)
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        pages = copy.execute("PRAGMA page_count").fetchone()[0]
    finally:
        copy.close()
    if verdict != "ok":
        raise MailflowError(f"the backup {target} failed its integrity check: {verdict}")
    return int(pages)


def migrations(folder: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MailflowError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path.stem, path))
    numbers = [number for number, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise MailflowError("two migration files share a number")
    return found


def migrate(db: sqlite_utils.Database, folder: Path, now: datetime) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their names."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for number, name, path in migrations(folder):
        if number in done:
            continue
        script = path.read_text(encoding="utf-8")
        # executescript commits first; BEGIN/COMMIT inside makes the file all-or-nothing.
        try:
            db.conn.executescript(
                "BEGIN;\n"
                + script
                + f"\nINSERT INTO schema_migrations VALUES ({number}, '{name}', '{iso(now)}');"
                + "\nCOMMIT;"
            )
        except Exception as error:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise MailflowError(f"migration {path.name} failed: {error}") from error
        applied.append(name)
    return applied


@contextlib.contextmanager
def lock_file(
    db_path: Path, name: str, give_up: Callable[[], bool], every: float = 0.05
) -> Iterator[BinaryIO | None]:
    """An exclusive flock on `<db>.<name>` beside the database, released by the kernel when
    its holder dies; tried every `every` seconds until `give_up()` says to stop. The open
    file while held (its holder may write to it), None when given up."""
    path = db_path.with_name(f"{db_path.name}.{name}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if give_up():
                    yield None
                    return
                time.sleep(every)
        try:
            yield handle
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
