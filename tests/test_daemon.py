"""The daemon's edge: who it accepts mail for, size limits, storing before 250, duplicates,
migrations and WAL."""

from __future__ import annotations

import json
import shutil
import smtplib
import sqlite3

import pytest

from tests.conftest import (
    PROGRAM,
    ROOT,
    Person,
    compose,
    run_cli,
    start_daemon,
    until,
    wire,
)


@pytest.mark.parametrize(
    ("recipient", "code"),
    [
        ("someone@gmail.example", 550),
        ("postmaster@example.org", 550),
        ("programme@example.org", 550),
        ("program@other.example", 550),
    ],
)
def test_only_the_program_address_is_accepted(daemon, recipient, code):
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("ann@uni.example.edu")
        assert client.rcpt(recipient)[0] == code
        assert client.rcpt(PROGRAM)[0] == 250
        assert client.rcpt("PROGRAM@EXAMPLE.ORG")[0] == 250
        assert client.rcpt("program+anything@example.org")[0] == 250
    assert daemon.query("SELECT * FROM messages") == []


def test_never_an_open_relay(daemon):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        daemon.send(compose("ann@uni.example.edu", "hi"), to=["victim@elsewhere.example"])
    assert daemon.query("SELECT * FROM messages") == []


def test_oversized_mail_gets_552(home):
    small = start_daemon(home, MAILFLOW_MAX_SIZE="20000")
    try:
        big = wire(compose("ann@uni.example.edu", ("x" * 70 + "\n") * 450, "APPLY"))
        with small.smtp() as client:
            client.ehlo()
            assert client.mail("ann@uni.example.edu")[0] == 250  # no SIZE= given
            assert client.rcpt(PROGRAM)[0] == 250
            code, _ = client.data(big)
        assert code == 552
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= given by smtplib
            small.send(big, sender="ann@uni.example.edu")
        assert refused.value.smtp_code == 552
        assert small.query("SELECT * FROM messages") == []
    finally:
        small.stop()


def test_the_message_is_stored_before_the_250(daemon):
    message = compose("ann@uni.example.edu", "HELP", "question")
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("ann@uni.example.edu")
        client.rcpt(PROGRAM)
        code, reply = client.data(wire(message))
    assert code == 250
    name = reply.decode().rsplit(" ", 1)[1]
    # No waiting: the moment the client has its 250, the message is in the spool, or
    # already in the store (a spool file is removed only after its row is committed).
    spooled = daemon.home / "spool" / "new" / name
    try:
        envelope, raw = spooled.read_bytes().split(b"\n", 1)
    except FileNotFoundError:
        [row] = daemon.query("SELECT * FROM messages WHERE spool = ?", name)
        assert (row["raw"], row["envelope_from"]) == (wire(message), "ann@uni.example.edu")
    else:
        assert raw == wire(message)
        assert json.loads(envelope)["from"] == "ann@uni.example.edu"
        assert json.loads(envelope)["to"] == [PROGRAM]
    # And handled from there, with the time it came and the file's name kept.
    row = daemon.handled(message["Message-ID"])
    assert row["spool"] == name
    assert row["raw"] == wire(message)
    assert row["received_at"] == "2026-03-02T09:00:00+00:00"
    daemon.idle()
    assert not spooled.exists()


def test_a_message_seen_twice_acts_once(daemon):
    message = compose("ann@uni.example.edu", "APPLY")
    daemon.send(message, sender="ann@uni.example.edu")
    daemon.send(message, sender="ann@uni.example.edu")
    rows = daemon.idle()
    assert [r["state"] for r in rows] == ["handled", "duplicate"]
    assert rows[1]["duplicate_of"] == rows[0]["id"]
    assert [a["template"] for a in daemon.query("SELECT * FROM outbox")] == ["application-form"]


def test_same_message_id_from_another_sender_is_not_a_duplicate(daemon):
    first = compose("ann@uni.example.edu", "HELP")
    second = compose("bob@library.example.org", "HELP")
    del second["Message-ID"]
    second["Message-ID"] = first["Message-ID"]
    daemon.send(first)
    daemon.send(second)
    daemon.handled(first["Message-ID"])
    until(lambda: len(daemon.query("SELECT * FROM outbox")) == 2, "two answers")
    assert {r["recipient"] for r in daemon.query("SELECT * FROM outbox")} == {
        "ann@uni.example.edu",
        "bob@library.example.org",
    }


def test_without_a_message_id_the_same_content_is_a_duplicate(home):
    raw = f"From: ann@uni.example.edu\nTo: {PROGRAM}\nSubject: help\n\nHELP\n".encode()
    first = run_cli(home, "ingest", stdin=raw)
    second = run_cli(home, "ingest", stdin=raw)
    assert b"command:help" in first.stdout
    assert b"duplicate of message 1" in second.stdout
    assert len(list((home / "outbox" / "new").iterdir())) == 1


def test_migrate_applies_numbered_files_once_in_wal_mode(home):
    first = run_cli(home, "migrate")
    assert first.returncode == 0, first.stderr
    assert b"0001_initial" in first.stdout
    second = run_cli(home, "migrate")
    assert second.stdout.strip() == b"up to date"
    with sqlite3.connect(home / "mailflow.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        applied = [r[0] for r in db.execute("SELECT version FROM schema_migrations")]
        assert applied == sorted(int(p.name[:4]) for p in (ROOT / "migrations").glob("*.sql"))
        assert applied[:5] == [1, 2, 3, 4, 5]
        [(_name, state)] = db.execute("SELECT name, state FROM rounds").fetchall()
        assert state == "open"


def test_a_bad_setting_fails_with_one_line(home):
    result = run_cli(home, "migrate", MAILFLOW_ADDRESS="not-an-address")
    assert result.returncode != 0
    assert result.stderr.decode().strip().count("\n") == 0
    assert "MAILFLOW_ADDRESS" in result.stderr.decode()


def test_a_message_stored_but_not_handled_is_handled_once_at_the_next_start(home):
    first = start_daemon(home)
    first.stop()
    raw = wire(compose("ann@uni.example.edu", "HELP"))
    with sqlite3.connect(home / "mailflow.db") as db:  # as if the process died after the 250
        db.execute(
            "INSERT INTO messages (received_at, via, envelope_from, envelope_to, message_id,"
            " sender, dedupe_key, size, raw) VALUES ('2026-03-02T09:00:00+00:00', 'smtp',"
            " 'ann@uni.example.edu', ?, '<left@client.test>', 'ann@uni.example.edu', 'k', ?, ?)",
            ['["program@example.org"]', len(raw), raw],
        )
    second = start_daemon(home)
    try:
        assert [a["template"] for a in second.answers_to("<left@client.test>")] == ["help"]
    finally:
        second.stop()
    third = start_daemon(home)
    third.stop()
    with sqlite3.connect(home / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1


def test_a_failure_while_handling_changes_nothing_and_the_daemon_keeps_serving(home, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    form = templates / "application-form.txt"
    form.write_text(form.read_text() + "{{ a_value_nobody_passes }}\n")
    broken = start_daemon(home, MAILFLOW_TEMPLATES=str(templates))
    try:
        ann = Person(broken, "ann@uni.example.edu")
        message = compose(ann.address, "APPLY")
        ann.send(message)
        row = broken.handled(message["Message-ID"])
        assert row["state"] == "quarantined"
        assert "a_value_nobody_passes" in row["outcome"]
        # The token issued before the failure was rolled back with everything else.
        assert broken.query("SELECT * FROM tokens") == []
        assert broken.query("SELECT * FROM outbox") == []
        ann.say("HELP", expect="help")
    finally:
        broken.stop()
