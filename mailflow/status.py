"""`mailflow status`: the health of an installation, as a monitoring check reads it.

It looks at what the running processes leave behind and judges it: the spool's depth and
its oldest file, the outbox by state and its oldest queued row, the last tick and the
last IMAP pass (the `heartbeats` table), whether the handling process is alive (its
flock, which the kernel releases when it dies, so a killed process never looks alive),
and SQLite's `PRAGMA quick_check`. The verdict is the worst finding: 0 OK, 1 warning,
2 critical, as Nagios and its heirs expect. The thresholds are here and nowhere else;
`--help` and the operator's guide state them.

It only reads: it never creates the database, the spool or a table, never migrates, and
takes no write lock, so it may run every minute beside a busy daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mailflow import store
from mailflow.config import Config, parse_time
from mailflow.model import heartbeats
from mailflow.receive.handling import lock_holder

OK, WARNING, CRITICAL = 0, 1, 2
LEVELS = ("OK", "WARNING", "CRITICAL")

# (warning, critical): a finding older than these is one.
SPOOL_AGE = (timedelta(minutes=5), timedelta(minutes=30))  # the oldest file not yet taken
QUEUED_AGE = (timedelta(hours=1), timedelta(days=1))  # the oldest outbox row still queued
TICK_AGE = (timedelta(minutes=5), timedelta(hours=1))  # the rules run every minute


def imap_age(config: Config) -> tuple[timedelta, timedelta]:
    """A pass ends at least every `imap_poll` seconds (IDLE is renewed before then)."""
    poll = timedelta(seconds=config.imap_poll)
    return max(timedelta(minutes=5), 3 * poll), max(timedelta(hours=1), 10 * poll)


# What `--help` and the guide say; a test holds them to the numbers above.
THRESHOLDS = """\
exit status: 0 OK, 1 warning, 2 critical, as a Nagios-style check. Critical: the handling
process is not running; PRAGMA quick_check finds damage; no database; the oldest spool
file waits over 30 min; the oldest queued outbox row is over 1 day old; the last tick is
over 1 h old; the last IMAP pass (with MAILFLOW_IMAP_URL) is over 1 h (or 10 x
MAILFLOW_IMAP_POLL) old. Warning: that spool file over 5 min, that queued row over 1 h,
that tick over 5 min, that IMAP pass over 5 min (or 3 x MAILFLOW_IMAP_POLL) or none
recorded yet; any outbox row unconfirmed; a file in spool/bad; migrations not applied.
Failed outbox rows are counted, not judged: a rising count is worth a look."""


@dataclass(frozen=True)
class Finding:
    level: int
    text: str


@dataclass
class Report:
    now: datetime
    facts: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def code(self) -> int:
        return max((finding.level for finding in self.findings), default=OK)

    def add(self, level: int, text: str) -> None:
        self.findings.append(Finding(level, text))

    def as_json(self) -> str:
        return json.dumps(
            {
                "status": LEVELS[self.code].lower(),
                "code": self.code,
                "now": store.iso(self.now),
                "problems": [
                    {"level": LEVELS[f.level].lower(), "text": f.text} for f in self.findings
                ],
                **self.facts,
            },
            indent=2,
        )

    def as_text(self) -> str:
        """The first line is the verdict, as a monitoring check's output begins."""
        worst = sorted(self.findings, key=lambda f: -f.level)
        head = f"mailflow {LEVELS[self.code]}"
        lines = [head + (": " + "; ".join(f.text for f in worst) if worst else "")]
        facts = self.facts
        if spool := facts.get("spool"):
            oldest = spool["oldest_age"]
            lines.append(
                f"spool: {spool['waiting']} waiting"
                + (f" (oldest {ago(oldest)})" if oldest is not None else "")
                + f", {spool['bad']} set aside in spool/bad"
            )
        if (outbox := facts.get("outbox")) is not None:
            counts = ", ".join(f"{state} {n}" for state, n in outbox["counts"].items())
            oldest = outbox["oldest_queued_age"]
            lines.append(
                f"outbox: {counts or 'empty'}"
                + (f"; oldest queued {ago(oldest)}" if oldest is not None else "")
            )
        for key, name in (("tick", "last tick"), ("imap", "last IMAP pass")):
            if key not in facts:
                continue
            beat = facts[key]
            if beat is None:
                lines.append(f"{name}: none recorded")
            else:
                lines.append(f"{name}: {beat['at']}, {ago(beat['age'])} (pid {beat['pid']})")
        if handling := facts.get("handling"):
            alive, pid = handling["alive"], handling["pid"]
            lines.append(
                "handling process: "
                + (f"running, pid {pid}" if pid else "starting" if alive else "not running")
            )
        if database := facts.get("database"):
            lines.append(f"database: {database['path']}, quick_check {database['quick_check']}")
        return "\n".join(lines)


def ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _age(now: datetime, then: datetime) -> int:
    return max(0, int((now - then).total_seconds()))


def _judge(report: Report, age: int, limits: tuple[timedelta, timedelta], what: str) -> None:
    for level, limit in ((CRITICAL, limits[1]), (WARNING, limits[0])):
        if age > limit.total_seconds():
            report.add(level, f"{what} {ago(age)}")
            return


def check(config: Config) -> Report:
    report = Report(now=config.clock())
    _spool(config, report)
    _handling(config, report)
    if not config.db.exists():
        report.add(CRITICAL, f"no database at {config.db} (run `mailflow migrate`)")
        return report
    try:
        db = store.connect(config.db)
    except sqlite3.Error as error:
        report.add(CRITICAL, f"the database cannot be opened: {error}")
        return report
    try:
        _database(config, db, report)
        _outbox(db, report)
        _beats(config, db, report)
    except sqlite3.DatabaseError as error:  # damage past what quick_check could report
        report.add(CRITICAL, f"the database cannot be read: {error}")
    finally:
        db.conn.close()
    return report


def _spool(config: Config, report: Report) -> None:
    new, bad = config.spool / "new", config.spool / "bad"
    names = sorted(_files(new))
    oldest = None
    if names:
        oldest = _spooled_at(new / names[0])
    report.facts["spool"] = {
        "waiting": len(names),
        "oldest_age": _age(report.now, oldest) if oldest else None,
        "bad": len(_files(bad)),
    }
    if oldest:
        _judge(report, _age(report.now, oldest), SPOOL_AGE, "the oldest spool file came")
    if report.facts["spool"]["bad"]:
        report.add(WARNING, f"{report.facts['spool']['bad']} file(s) in spool/bad to look at")


def _files(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except FileNotFoundError:
        return []


def _spooled_at(path: Path) -> datetime | None:
    """When a spool file came, from its envelope line (the time the daemon wrote, which is
    MAILFLOW_NOW under a test); None when it is gone meanwhile or unreadable."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError), open(path, "rb") as handle:
        return parse_time(json.loads(handle.readline())["received_at"])
    return None


def _handling(config: Config, report: Report) -> None:
    # 0: it holds the lock but is still starting (a sweep after a crash may take a while).
    pid = lock_holder(config, starting=0)
    report.facts["handling"] = {"alive": pid is not None, "pid": pid or None}
    if pid is None:
        report.add(CRITICAL, "the handling process is not running (is `mailflow serve` up?)")


def _database(config: Config, db, report: Report) -> None:
    verdict = "; ".join(row[0] for row in db.execute("PRAGMA quick_check").fetchall())
    applied = {
        row[0]
        for row in _rows(db, "SELECT version FROM schema_migrations")
        if isinstance(row[0], int)
    }
    pending = [
        name for number, name, _ in store.migrations(config.migrations) if number not in applied
    ]
    report.facts["database"] = {
        "path": str(config.db),
        "quick_check": verdict,
        "pending_migrations": pending,
    }
    if verdict != "ok":
        report.add(CRITICAL, f"the database is damaged: {verdict[:200]}")
    if pending:
        report.add(WARNING, f"{len(pending)} migration(s) not applied: run `mailflow migrate`")


def _rows(db, sql: str, params=()) -> list[tuple]:
    """The rows, or none when the table is not there yet (a store never migrated)."""
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise


def _outbox(db, report: Report) -> None:
    counts = dict(_rows(db, "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state"))
    oldest = _rows(db, "SELECT min(created_at) FROM outbox WHERE state = 'queued'")
    oldest_at = parse_time(oldest[0][0]) if oldest and oldest[0][0] else None
    report.facts["outbox"] = {
        "counts": counts,
        "oldest_queued_age": _age(report.now, oldest_at) if oldest_at else None,
    }
    if oldest_at:
        _judge(report, _age(report.now, oldest_at), QUEUED_AGE, "the oldest queued mail was queued")
    if counts.get("unconfirmed"):
        report.add(WARNING, f"{counts['unconfirmed']} outbox row(s) unconfirmed (guide, section 9)")


def _beats(config: Config, db, report: Report) -> None:
    try:
        beats = heartbeats.last(db)
    except sqlite3.OperationalError:  # migrations not applied yet: said above
        beats = {}
    roles = [(heartbeats.TICK, "tick", TICK_AGE)]
    if config.imap_url:
        roles.append((heartbeats.IMAP, "IMAP pass", imap_age(config)))
    for role, name, limits in roles:
        beat = beats.get(role)
        if beat is None:
            report.facts[role] = None
            report.add(WARNING, f"no {name} recorded yet")
            continue
        age = _age(report.now, beat.at)
        report.facts[role] = {"at": store.iso(beat.at), "age": age, "pid": beat.pid}
        _judge(report, age, limits, f"the last {name} finished")
