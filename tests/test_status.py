"""`mailflow status`: what a monitoring check sees, with exit 0 (OK), 1 (warning) or 2
(critical).

Real homes, a real daemon where liveness matters (its handling process holds a flock
that the kernel lets go when it dies), a real Dovecot for the IMAP pass, and time moved
with MAILFLOW_NOW. The verdicts are read in process (`status.check`, what the command
prints) except where only the process shows them: the exit status and --help.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
from datetime import timedelta

import pytest

from mailflow import config as configuration
from mailflow import status
from mailflow.config import parse_time
from mailflow.receive.spool import Spool
from tests import dovecot as imap_server
from tests.conftest import (
    NOW,
    PROGRAM,
    alive,
    command,
    compose,
    environment,
    free_port,
    handler_pid,
    run_cli,
    start_daemon,
    until,
    wire,
)

START = parse_time(NOW)


def at(delta: timedelta) -> str:
    return (START + delta).isoformat()


def check(home, now: str = NOW, **extra: str) -> status.Report:
    config = configuration.load(environment(home, MAILFLOW_NOW=now, **extra), cwd=home.parent)
    return status.check(config)


def problems(report: status.Report) -> list[tuple[str, str]]:
    return [(status.LEVELS[f.level], f.text) for f in report.findings]


def test_a_running_daemon_is_ok_and_a_killed_one_is_critical_despite_what_it_left(home):
    daemon = start_daemon(home)
    try:
        pid = handler_pid(home)
        # `serve` ticks once at start: the tick is recorded at its "now".
        until(lambda: check(home).facts.get("tick"), "the first tick to be recorded")
        report = check(home)
        assert problems(report) == []
        assert report.code == status.OK
        assert report.facts["handling"] == {"alive": True, "pid": pid}
        assert report.facts["tick"]["at"] == "2026-03-02T09:00:00+00:00"
        assert report.facts["tick"]["pid"] == daemon.process.pid
        assert report.facts["database"]["quick_check"] == "ok"
        assert "imap" not in report.facts  # no MAILFLOW_IMAP_URL: not judged
        assert report.as_text().splitlines()[0] == "mailflow OK"

        printed = run_cli(home, "status")
        assert printed.returncode == 0, printed.stdout.decode()
        assert f"handling process: running, pid {pid}" in printed.stdout.decode()

        # The same daemon, seen from later: the tick is late, then very late.
        assert problems(check(home, at(timedelta(minutes=6)))) == [
            ("WARNING", "the last tick finished 6 min ago")
        ]
        late = run_cli(home, "status", "--json", MAILFLOW_NOW=at(timedelta(hours=2)))
        assert late.returncode == 2
        verdict = json.loads(late.stdout)
        assert verdict["status"] == "critical"
        assert verdict["problems"] == [
            {"level": "critical", "text": "the last tick finished 2 h ago"}
        ]
        assert verdict["tick"]["age"] == 7200
    finally:
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
    os.kill(pid, signal.SIGKILL)
    until(lambda: not alive(pid), "the handling process to die")
    # What the killed processes left says otherwise: the lock file still names the pid,
    # and the tick's row is fresh. Neither is taken for life.
    assert (home / "mailflow.db.handling-lock").read_text().strip() == str(pid)
    report = check(home)
    assert report.facts["handling"] == {"alive": False, "pid": None}
    assert problems(report) == [
        ("CRITICAL", "the handling process is not running (is `mailflow serve` up?)")
    ]
    assert run_cli(home, "status").returncode == 2


def test_a_handling_process_still_starting_is_alive(home):
    """It holds the lock from the start, and writes its pid once its recovery sweep is
    done; meanwhile it is starting, not dead. Held here as a starting process holds it."""
    command(home, "migrate")
    with open(home / "mailflow.db.handling-lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        report = check(home)
        assert report.facts["handling"] == {"alive": True, "pid": None}
        assert "handling process: starting" in report.as_text().splitlines()
        assert not any("handling" in text for _, text in problems(report))
    report = check(home)
    assert report.facts["handling"] == {"alive": False, "pid": None}
    assert "handling process: not running" in report.as_text().splitlines()


def test_the_spool_and_the_outbox_are_judged_by_their_oldest(home):
    command(home, "migrate")
    # A HELP whose answer the relay never takes (nothing listens there): queued.
    dead_relay = f"127.0.0.1:{free_port()}"
    command(
        home,
        "ingest",
        stdin=wire(compose("ann@uni.example.edu", "HELP")),
        MAILFLOW_SMTP_RELAY=dead_relay,
    )
    command(home, "tick")
    spool = Spool(home / "spool")
    spool.write(
        wire(compose("bo@lib.example.org", "HELP")),
        "bo@lib.example.org",
        [PROGRAM],
        START + timedelta(minutes=20),
    )
    spool.write(
        wire(compose("cy@lib.example.org", "HELP")),
        "cy@lib.example.org",
        [PROGRAM],
        START + timedelta(minutes=21),
    )

    report = check(home, at(timedelta(minutes=30)))
    assert report.facts["spool"] == {"waiting": 2, "oldest_age": 600, "bad": 0}
    assert report.facts["outbox"]["counts"] == {"queued": 1}
    assert report.facts["outbox"]["oldest_queued_age"] == 1800
    found = problems(report)
    assert ("WARNING", "the oldest spool file came 10 min ago") in found
    assert not any("queued" in text for _, text in found)  # half an hour: retrying is normal

    found = problems(check(home, at(timedelta(hours=2))))
    assert ("CRITICAL", "the oldest spool file came 100 min ago") in found
    assert ("WARNING", "the oldest queued mail was queued 2 h ago") in found
    found = problems(check(home, at(timedelta(days=2))))
    assert ("CRITICAL", "the oldest queued mail was queued 2 days ago") in found

    # Taken from the spool, and one unreadable file set aside: a warning of its own.
    spool.remove(spool.waiting())
    (home / "spool" / "bad" / "0001").write_bytes(b"no envelope")
    with sqlite3.connect(home / "mailflow.db") as db:
        db.execute("UPDATE outbox SET state = 'unconfirmed'")
    report = check(home, at(timedelta(minutes=1)))
    assert report.facts["spool"] == {"waiting": 0, "oldest_age": None, "bad": 1}
    found = problems(report)
    assert ("WARNING", "1 file(s) in spool/bad to look at") in found
    assert ("WARNING", "1 outbox row(s) unconfirmed (guide, section 9)") in found
    assert not any("spool file came" in text or "queued" in text for _, text in found)


def test_status_only_reads_and_a_missing_database_is_critical(home):
    report = check(home)
    assert ("CRITICAL", f"no database at {home / 'mailflow.db'} (run `mailflow migrate`)") in (
        problems(report)
    )
    assert not home.exists(), "status created something"


def test_a_damaged_database_is_critical(home):
    command(home, "migrate")
    command(home, "tick")
    with sqlite3.connect(home / "mailflow.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    with open(home / "mailflow.db", "r+b") as raw:
        raw.seek((root - 1) * page_size)
        raw.write(b"\xff" * 64)  # the table's root page: its header is garbage
    report = check(home)
    assert report.code == status.CRITICAL
    found = [text for level, text in problems(report) if level == "CRITICAL"]
    assert any(
        text.startswith(("the database is damaged", "the database cannot be read"))
        for text in found
    ), found


@pytest.fixture(scope="module")
def dovecot():
    if not imap_server.executable():
        if os.geteuid() == 0:  # CI installs it: never skip there silently
            pytest.fail("dovecot is not installed (make test installs dovecot-imapd as root)")
        pytest.skip("dovecot is not installed")
    server = imap_server.Dovecot().start()
    yield server
    server.remove()


def test_the_last_imap_pass_is_judged_only_when_imap_is_configured(home, dovecot):
    url = dovecot.account("status").url()
    command(home, "migrate")
    command(home, "tick")
    assert problems(check(home, MAILFLOW_IMAP_URL=url))[-1:] == [
        ("WARNING", "no IMAP pass recorded yet")
    ]
    passed = run_cli(home, "poll-imap", "--once", MAILFLOW_IMAP_URL=url)
    assert passed.returncode == 0, passed.stderr.decode()
    report = check(home, at(timedelta(minutes=4)), MAILFLOW_IMAP_URL=url)
    assert report.facts["imap"]["at"] == "2026-03-02T09:00:00+00:00"
    assert not any("IMAP" in text for _, text in problems(report))
    # Polled every 60 s unless set: late after 5 minutes, and after 3 polls if longer.
    assert ("WARNING", "the last IMAP pass finished 6 min ago") in problems(
        check(home, at(timedelta(minutes=6)), MAILFLOW_IMAP_URL=url)
    )
    assert not any(
        "IMAP" in text
        for _, text in problems(
            check(home, at(timedelta(minutes=6)), MAILFLOW_IMAP_URL=url, MAILFLOW_IMAP_POLL="600")
        )
    )
    assert ("CRITICAL", "the last IMAP pass finished 2 h ago") in problems(
        check(home, at(timedelta(hours=2)), MAILFLOW_IMAP_URL=url)
    )
    assert "imap" not in check(home).facts  # without the setting, not looked at


def test_help_states_the_thresholds_the_code_uses():
    assert (timedelta(minutes=5), timedelta(minutes=30)) == status.SPOOL_AGE
    assert (timedelta(hours=1), timedelta(days=1)) == status.QUEUED_AGE
    assert (timedelta(minutes=5), timedelta(hours=1)) == status.TICK_AGE
    text = " ".join(status.THRESHOLDS.split())
    for sentence in (
        "the oldest spool file waits over 30 min",
        "the oldest queued outbox row is over 1 day old",
        "the last tick is over 1 h old",
        "Warning: that spool file over 5 min, that queued row over 1 h, that tick over 5 min",
    ):
        assert sentence in text
