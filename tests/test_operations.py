"""What an operator runs beside the daemon: the Procfile's processes, an online backup,
the quarantine listing, and start-up refusing a TLS set-up it can't use."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

from mailflow.cli import parser
from tests.conftest import PROGRAM, ROOT, compose, run_cli, start_daemon, wire


def test_every_procfile_line_is_a_command_the_cli_knows():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    processes = dict(line.split(":", 1) for line in lines)
    assert set(processes) == {"smtp", "scheduler", "imap"}
    for command in processes.values():
        program, *args = shlex.split(command)
        assert program == "mailflow"
        parser().parse_args(args)  # SystemExit on a flag or command it does not know
    # Three processes, each one job: the daemon must not also tick or read the mailbox.
    assert "--no-scheduler" in processes["smtp"] and "--no-imap" in processes["smtp"]


def test_a_backup_taken_while_the_daemon_runs_holds_what_was_stored(home: Path, tmp_path: Path):
    daemon = start_daemon(home)
    try:
        message = compose("ann@uni.example.edu", "HELP")
        daemon.send(message, sender="ann@uni.example.edu")
        daemon.mail_for(message["Message-ID"])
        target = tmp_path / "copies" / "mailflow-backup.db"
        run = run_cli(home, "backup", str(target))
        assert run.returncode == 0, run.stderr
        assert "checked" in run.stdout.decode()
    finally:
        daemon.stop()
    with sqlite3.connect(target) as copy:
        [(stored,)] = copy.execute("SELECT count(*) FROM messages WHERE message_id = ?",
                                   [message["Message-ID"]]).fetchall()  # fmt: skip
        templates = [row[0] for row in copy.execute("SELECT template FROM outbox")]
        versions = [row[0] for row in copy.execute("SELECT version FROM schema_migrations")]
    assert stored == 1
    assert templates == ["help"]
    assert max(versions) == len(list((ROOT / "migrations").glob("*.sql")))
    again = run_cli(home, "backup", str(target))
    assert again.returncode == 2
    assert b"never overwrites" in again.stderr


def test_quarantine_lists_what_was_set_aside_and_why(home: Path):
    readable = wire(compose("bo@example.net", "HELP"))
    for raw in (b"\r\n\r\n", readable):
        assert run_cli(home, "ingest", stdin=raw, **{"MAILFLOW_ADDRESS": PROGRAM}).returncode == 0
    run = run_cli(home, "quarantine")
    assert run.returncode == 0
    lines = run.stdout.decode().splitlines()
    assert lines[-1] == "1 quarantined message(s) shown"
    [entry] = lines[:-1]
    assert "ingest" in entry and "unreadable: empty message" in entry
    assert "bo@example.net" not in run.stdout.decode()


def test_serve_refuses_a_tls_certificate_it_cannot_read(home: Path, tmp_path: Path):
    missing = tmp_path / "no-such-cert.pem"
    run = run_cli(home, "serve", MAILFLOW_TLS_CERT=str(missing), MAILFLOW_TLS_KEY=str(missing))
    assert run.returncode == 2
    [line] = run.stderr.decode().strip().splitlines()[-1:]
    assert line.startswith("mailflow serve: MAILFLOW_TLS_CERT/MAILFLOW_TLS_KEY")
    half = run_cli(home, "serve", MAILFLOW_TLS_CERT=str(missing))
    assert half.returncode == 2
    assert b"go together" in half.stderr
