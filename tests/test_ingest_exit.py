"""`mailflow ingest` as an MTA's pipe: what it cannot store, the MTA must keep and retry.

Postfix's pipe(8) defers a message only on exit 75 (EX_TEMPFAIL) or 71 and bounces it to
its sender on any other status. So every failure before the message is committed exits
75 with one line on stderr, and the same message piped again once the cause is gone is
stored, once. Real processes throughout: the CLI, and another process holding the
database's write lock.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from tests.conftest import PROGRAM, command, compose, run_cli, wire

EX_TEMPFAIL = 75

HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes it
db.execute("ROLLBACK")
"""


def _stored(home, message_id: str) -> list[tuple]:
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute(
            "SELECT id, via, state FROM messages WHERE message_id = ?", [message_id]
        ).fetchall()


def test_a_database_locked_at_start_defers_the_message_and_the_retry_stores_it_once(home):
    command(home, "migrate")
    message = compose("ann@uni.example.edu", "HELP", "help")
    raw = wire(message)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home / "mailflow.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        began = time.monotonic()
        # The start-up's write (the round, the configured coordinators) waits out SQLite's
        # busy timeout (10 s, `store.connect`), then gives up: this test's length.
        refused = run_cli(home, "ingest", "--recipient", PROGRAM, stdin=raw)
        waited = time.monotonic() - began
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert refused.returncode == EX_TEMPFAIL, refused.stderr.decode()
    lines = refused.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mailflow ingest: <stdin>: not stored, try again later: ")
    assert "database is locked" in lines[0]
    assert "Traceback" not in refused.stderr.decode()
    assert refused.stdout == b""
    assert waited >= 9, f"gave up after {waited:.1f} s, before the busy timeout"
    assert _stored(home, message["Message-ID"]) == []

    again = run_cli(home, "ingest", "--recipient", PROGRAM, stdin=raw)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode().startswith("<stdin>: message ")
    assert [(via, state) for _, via, state in _stored(home, message["Message-ID"])] == [
        ("ingest", "handled")
    ]


def test_a_wrong_setting_defers_the_message_with_one_line(home):
    command(home, "migrate")
    message = compose("ann@uni.example.edu", "HELP", "help")
    raw = wire(message)
    refused = run_cli(home, "ingest", stdin=raw, MAILFLOW_MAX_SIZE="ten")
    assert refused.returncode == EX_TEMPFAIL
    lines = refused.stderr.decode().splitlines()
    assert lines == [
        "mailflow ingest: not stored, try again later: "
        "MAILFLOW_MAX_SIZE must be a whole number, not 'ten'"
    ]
    assert _stored(home, message["Message-ID"]) == []

    # Once the setting is put right, the same message goes in, once.
    assert run_cli(home, "ingest", stdin=raw).returncode == 0
    assert run_cli(home, "ingest", stdin=raw).returncode == 0
    rows = _stored(home, message["Message-ID"])
    assert [state for _, _, state in rows] == ["handled", "duplicate"]


def test_other_commands_keep_exit_2_for_a_wrong_setting(home):
    result = run_cli(home, "outbox", MAILFLOW_MAX_SIZE="ten")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "mailflow outbox: MAILFLOW_MAX_SIZE must be a whole number, not 'ten'"
    ]


def test_a_file_that_cannot_be_read_is_deferred_too(home, tmp_path):
    command(home, "migrate")
    result = run_cli(home, "ingest", str(tmp_path / "missing.eml"))
    assert result.returncode == EX_TEMPFAIL
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "missing.eml: not stored, try again later" in lines[0]


def test_an_unknown_setting_a_missing_settings_file_or_a_mistyped_option_defers_too(home, tmp_path):
    command(home, "migrate")
    message = compose("ann@uni.example.edu", "HELP", "help")
    raw = wire(message)
    typo = run_cli(home, "ingest", stdin=raw, MAILFLOW_SMTP_RLAY="127.0.0.1:25")
    assert typo.returncode == EX_TEMPFAIL
    assert typo.stderr.decode().splitlines() == [
        "mailflow ingest: not stored, try again later: unknown setting MAILFLOW_SMTP_RLAY;"
        " did you mean MAILFLOW_SMTP_RELAY?"
    ]
    missing = run_cli(home, "-C", str(tmp_path / "gone.toml"), "ingest", stdin=raw)
    assert missing.returncode == EX_TEMPFAIL
    assert len(missing.stderr.decode().splitlines()) == 1
    mistyped = run_cli(home, "ingest", "--sendr=ann@uni.example.edu", stdin=raw)
    assert mistyped.returncode == EX_TEMPFAIL
    assert "unrecognized arguments: --sendr" in mistyped.stderr.decode()
    assert _stored(home, message["Message-ID"]) == []
    # Any other command keeps argparse's exit 2.
    assert run_cli(home, "outbox", "--sendr=x").returncode == 2
