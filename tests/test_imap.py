"""Inbound over IMAP against a real Dovecot (tests/dovecot.py): `mailflow poll-imap --once`,
IDLE, a server restart, the poller inside `mailflow serve`, and imaps.

One Dovecot serves the module; each test has its own user, so its INBOX and its
`mailflow-handled` folder are its own. Mail goes in with IMAP APPEND, as a provider's
delivery agent would leave it, and answers are read from the program's Maildir.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests import dovecot as imap_server
from tests.certs import make_certificate
from tests.conftest import (
    MAILFLOW,
    PROGRAM,
    Person,
    compose,
    environment,
    free_port,
    outbox_row,
    run_cli,
    start_daemon,
    until,
    wire,
)

DONE = "mailflow-handled"
ANN = "ann@uni.example.edu"
BOB = "bob@library.example.org"
CAROL = "carol@city.example.net"


def dovecot_or_skip() -> None:
    if imap_server.executable():
        return
    if os.geteuid() == 0:  # CI runs as root and installs it: never skip there silently
        pytest.fail("dovecot is not installed (make test installs dovecot-imapd as root)")
    pytest.skip("dovecot is not installed (make test installs dovecot-imapd as root)")


@pytest.fixture(scope="module")
def dovecot():
    dovecot_or_skip()
    server = imap_server.Dovecot().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def dovecot_tls(tmp_path_factory):
    dovecot_or_skip()
    server = imap_server.Dovecot(tls=make_certificate(tmp_path_factory.mktemp("tls"))).start()
    yield server
    server.remove()


def delivered(message: EmailMessage, sender: str | None = None) -> bytes:
    """The message as a delivery agent files it: Return-Path and Delivered-To on top."""
    return_path = message["From"].addresses[0].addr_spec if sender is None else sender
    trace = f"Return-Path: <{return_path}>\r\nDelivered-To: {PROGRAM}\r\n".encode()
    return trace + wire(message)


def poll(home: Path, url: str, **extra: str) -> subprocess.CompletedProcess:
    return run_cli(home, "poll-imap", "--once", MAILFLOW_IMAP_URL=url, **extra)


def passed(result: subprocess.CompletedProcess) -> list[str]:
    """The lines of a successful pass."""
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


def query(home: Path, sql: str, *params) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "mailflow.db", timeout=10) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()


def count(home: Path, table: str) -> int:
    return query(home, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def answers(home: Path) -> list[EmailMessage]:
    """Every message in the program's Maildir, oldest first."""
    folder = home / "outbox" / "new"
    files = sorted(folder.glob("*"), key=outbox_row) if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def answers_to(home: Path, message: EmailMessage) -> list[EmailMessage]:
    return [a for a in answers(home) if a["In-Reply-To"] == message["Message-ID"]]


def answer_arrives(home: Path, message: EmailMessage, timeout: float) -> EmailMessage:
    [answer] = until(lambda: answers_to(home, message), "the answer in the Maildir", timeout)
    return answer


def background_poller(home: Path, url: str, **extra: str) -> subprocess.Popen:
    """`mailflow poll-imap` running; its stderr (the log) goes to poller.log beside home."""
    home.parent.mkdir(parents=True, exist_ok=True)
    with (
        (home.parent / "poller.out").open("ab") as out,
        (home.parent / "poller.log").open("ab") as log,
    ):
        return subprocess.Popen(
            [str(MAILFLOW), "poll-imap"],
            env=environment(home, MAILFLOW_IMAP_URL=url, **extra),
            stdout=out,
            stderr=log,
            cwd=home.parent,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("the poller did not stop on SIGTERM") from None


def test_a_first_pass_answers_people_ignores_a_bounce_and_files_all_three(dovecot, home):
    account = dovecot.account("first-pass@example.org")
    help_ = compose(ANN, "HELP", "question", name="Ann Okafor")
    apply = compose(BOB, "APPLY", "joining")
    bounce = compose(
        "MAILER-DAEMON@mx.example.net",
        "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you...",
        "Undelivered Mail Returned to Sender",
        headers={"Auto-Submitted": "auto-replied"},
    )
    uids = [
        account.append("INBOX", delivered(help_)),
        account.append("INBOX", wire(apply)),  # no trace headers: the envelope comes from To
        account.append("INBOX", delivered(bounce, sender="")),
    ]

    lines = passed(poll(home, account.url()))

    outcomes = dict(zip(uids, ("command:help", "command:apply", "ignored:"), strict=True))
    for uid, outcome in outcomes.items():
        [line] = [line for line in lines if line.startswith(f"imap uid {uid}: message ")]
        assert outcome in line, lines
    assert lines[-1] == "poll-imap: 3 handled, 0 left in place"
    [to_ann] = answers_to(home, help_)
    assert to_ann["X-Mailflow-Template"] == "help"
    assert to_ann["To"].addresses[0].addr_spec == ANN
    [to_bob] = answers_to(home, apply)
    assert to_bob["X-Mailflow-Template"] == "application-form"
    assert to_bob["To"].addresses[0].addr_spec == BOB
    assert len(answers(home)) == 2  # nothing for the bounce
    assert [r["recipient"] for r in query(home, "SELECT recipient FROM outbox")] == [ANN, BOB]
    assert account.uids("INBOX") == []
    assert sorted(account.message_ids(DONE)) == sorted(
        m["Message-ID"] for m in (help_, apply, bounce)
    )
    rows = query(home, "SELECT * FROM messages ORDER BY id")
    assert [(r["via"], r["state"]) for r in rows] == [
        ("imap", "handled"),
        ("imap", "handled"),
        ("imap", "ignored"),
    ]
    assert rows[0]["envelope_from"] == ANN  # from Return-Path
    assert json.loads(rows[1]["envelope_to"]) == [PROGRAM]
    assert rows[0]["raw"].endswith(wire(help_))
    seen = query(home, "SELECT uid, message_row FROM imap_messages ORDER BY uid")
    assert [(r["uid"], r["message_row"]) for r in seen] == list(
        zip(uids, [r["id"] for r in rows], strict=True)
    )


def test_a_second_pass_handles_nothing_twice_and_a_copy_is_a_duplicate(dovecot, home):
    account = dovecot.account("second-pass@example.org")
    message = compose(ANN, "APPLY")
    account.append("INBOX", delivered(message))
    assert passed(poll(home, account.url()))[-1] == "poll-imap: 1 handled, 0 left in place"

    again = passed(poll(home, account.url()))

    assert again == ["poll-imap: 0 handled, 0 left in place"]
    assert count(home, "messages") == 1
    assert count(home, "outbox") == 1

    copy = account.append("INBOX", delivered(message))  # the provider delivered it twice
    lines = passed(poll(home, account.url()))

    [line] = [line for line in lines if line.startswith(f"imap uid {copy}: message ")]
    assert "duplicate of message 1" in line
    rows = query(home, "SELECT state, via, duplicate_of FROM messages ORDER BY id")
    assert [(r["state"], r["duplicate_of"]) for r in rows] == [("handled", None), ("duplicate", 1)]
    assert count(home, "outbox") == 1
    assert len(answers(home)) == 1
    assert account.uids("INBOX") == []
    assert account.message_ids(DONE) == [message["Message-ID"]] * 2


def test_a_recreated_folder_is_read_again_without_answering_twice(dovecot, home):
    account = dovecot.account("recreated@example.org")
    old = [compose(ANN, "HELP"), compose(BOB, "APPLY")]
    for message in old:
        account.append("Projects", delivered(message))
    url = account.url("Projects")
    assert passed(poll(home, url))[-1] == "poll-imap: 2 handled, 0 left in place"
    before = account.uidvalidity("Projects")
    assert count(home, "outbox") == 2

    account.delete("Projects")
    account.create("Projects")
    assert account.uidvalidity("Projects") != before
    # The new folder's UIDs start at 1 again: only UIDVALIDITY tells them apart.
    new = compose(CAROL, "HELP")
    uids = [account.append("Projects", delivered(m)) for m in [*old, new]]
    assert uids == [1, 2, 3]
    lines = passed(poll(home, url))

    assert lines[-1] == "poll-imap: 3 handled, 0 left in place"
    assert "duplicate of message 1" in lines[0]
    assert "duplicate of message 2" in lines[1]
    assert "command:help" in lines[2]
    assert [r["recipient"] for r in query(home, "SELECT recipient FROM outbox")] == [
        ANN,
        BOB,
        CAROL,
    ]
    assert answers_to(home, new)[0]["X-Mailflow-Template"] == "help"
    assert account.uids("Projects") == []
    [mailbox] = query(home, "SELECT * FROM imap_mailboxes")
    assert mailbox["uidvalidity"] == account.uidvalidity("Projects")
    assert mailbox["last_uid"] == 3


def test_without_a_done_folder_handled_mail_stays_marked_seen(dovecot, home):
    account = dovecot.account("no-done@example.org")
    first = [compose(ANN, "HELP"), compose(BOB, "APPLY")]
    uids = [account.append("INBOX", delivered(m)) for m in first]

    lines = passed(poll(home, account.url(), MAILFLOW_IMAP_DONE=""))

    assert lines[-1] == "poll-imap: 2 handled, 0 left in place"
    assert account.uids("INBOX") == uids
    assert all("\\Seen" in flags for flags in account.flags("INBOX").values())
    assert DONE not in account.folders()
    assert len(answers(home)) == 2

    later = compose(CAROL, "HELP")
    uid = account.append("INBOX", delivered(later))
    lines = passed(poll(home, account.url(), MAILFLOW_IMAP_DONE=""))

    [line] = [line for line in lines if line.startswith("imap uid")]
    assert line.startswith(f"imap uid {uid}: message "), line
    assert lines[-1] == "poll-imap: 1 handled, 0 left in place"
    assert count(home, "messages") == 3
    assert [r["recipient"] for r in query(home, "SELECT recipient FROM outbox")] == [
        ANN,
        BOB,
        CAROL,
    ]
    assert account.uids("INBOX") == [*uids, uid]


def test_too_large_and_unreadable_mail_is_flagged_left_in_place_and_reported_once(dovecot, home):
    account = dovecot.account("left@example.org")
    big = compose(ANN, "APPLY\n" + ("x" * 70 + "\n") * 450)  # about 32 kB
    fine = compose(BOB, "HELP")
    big_uid = account.append("INBOX", delivered(big))
    broken_uid = account.append("INBOX", b"\r\n\r\n")
    fine_uid = account.append("INBOX", delivered(fine))

    lines = passed(poll(home, account.url(), MAILFLOW_MAX_SIZE="20000"))

    assert any(line.startswith(f"imap uid {big_uid}: left in INBOX: ") for line in lines), lines
    assert any(line.startswith(f"imap uid {broken_uid}: left in INBOX: ") for line in lines), lines
    assert any(line.startswith(f"imap uid {fine_uid}: message ") for line in lines), lines
    assert lines[-1] == "poll-imap: 1 handled, 2 left in place"
    flags = account.flags("INBOX")
    assert sorted(flags) == [big_uid, broken_uid]
    assert all("\\Flagged" in f for f in flags.values())
    rows = query(home, "SELECT state, size FROM messages ORDER BY id")
    # The large one was never fetched: nothing of it is stored.
    assert sorted(r["state"] for r in rows) == ["handled", "quarantined"]
    assert all(r["size"] < 20000 for r in rows)
    [(row, outcome)] = query(
        home, "SELECT message_row, outcome FROM imap_messages WHERE uid = ?", big_uid
    )
    assert row is None
    assert outcome
    assert [a["To"].addresses[0].addr_spec for a in answers(home)] == [BOB]

    again = passed(poll(home, account.url(), MAILFLOW_MAX_SIZE="20000"))

    assert again == ["poll-imap: 0 handled, 0 left in place"]
    assert count(home, "messages") == 2
    assert sorted(account.flags("INBOX")) == [big_uid, broken_uid]


def test_idle_brings_new_mail_in_within_seconds(dovecot, home):
    account = dovecot.account("idle@example.org")
    first = compose(ANN, "HELP")
    account.append("INBOX", delivered(first))
    # No fallback polling in the time this test takes: only IDLE can bring the second one.
    poller = background_poller(home, account.url(), MAILFLOW_IMAP_POLL="600")
    try:
        answer_arrives(home, first, timeout=15)
        second = compose(BOB, "HELP")
        account.append("INBOX", delivered(second))

        answer = answer_arrives(home, second, timeout=15)

        assert answer["X-Mailflow-Template"] == "help"
        assert poller.poll() is None
    finally:
        stop(poller)
    assert count(home, "messages") == 2
    assert count(home, "outbox") == 2
    assert account.uids("INBOX") == []


def test_the_poller_reconnects_after_the_server_restarts(home):
    dovecot_or_skip()
    # Its own server: stopping it must not cut the connections of other tests.
    server = imap_server.Dovecot().start()
    poller = None
    try:
        account = server.account("restart@example.org")
        first = compose(ANN, "HELP")
        account.append("INBOX", delivered(first))
        poller = background_poller(home, account.url(), MAILFLOW_IMAP_POLL="600")
        answer_arrives(home, first, timeout=15)
        log = home.parent / "poller.log"

        server.stop()
        until(lambda: "imap: connection lost (" in log.read_text(), "the lost line", 15)
        server.start()
        second = compose(BOB, "APPLY")
        account.append("INBOX", delivered(second))

        # Reconnecting backs off 1, 2, 4, 8, 16 s while the server comes back, which under
        # a loaded CI machine can take a while: a minute covers five tries.
        answer = answer_arrives(home, second, timeout=60)

        assert answer["X-Mailflow-Template"] == "application-form"
        assert poller.poll() is None
        stderr = log.read_text()
        assert "reconnecting in " in stderr
        assert [r["recipient"] for r in query(home, "SELECT recipient FROM outbox")] == [ANN, BOB]
        assert count(home, "messages") == 2
        assert account.uids("INBOX") == []
        assert sorted(account.message_ids(DONE)) == sorted(
            [first["Message-ID"], second["Message-ID"]]
        )
    finally:
        if poller:
            stop(poller)
        server.remove()


def test_serve_reads_the_mailbox_too(dovecot, home):
    account = dovecot.account("serve@example.org")
    waiting = compose(ANN, "HELP")
    account.append("INBOX", delivered(waiting))
    daemon = start_daemon(home, MAILFLOW_IMAP_URL=account.url(), MAILFLOW_IMAP_POLL="600")
    try:
        [answer] = daemon.mail_for(waiting["Message-ID"])
        assert answer["X-Mailflow-Template"] == "help"
        arriving = compose(BOB, "APPLY")
        account.append("INBOX", delivered(arriving))
        [form] = daemon.mail_for(arriving["Message-ID"])
        assert form["X-Mailflow-Template"] == "application-form"
        Person(daemon, CAROL).say("HELP", expect="help")  # SMTP still works alongside
    finally:
        daemon.stop()
    vias = [r["via"] for r in daemon.query("SELECT via FROM messages ORDER BY id")]
    assert vias == ["imap", "imap", "smtp"]
    assert account.uids("INBOX") == []


def test_serve_without_imap_leaves_the_mailbox_alone(dovecot, home):
    account = dovecot.account("no-imap@example.org")
    waiting = compose(ANN, "HELP")
    uid = account.append("INBOX", delivered(waiting))
    logins = dovecot.logins(account.name)  # the test's own, so far
    daemon = start_daemon(home, "--no-imap", MAILFLOW_IMAP_URL=account.url())
    try:
        Person(daemon, BOB).say("HELP", expect="help")
    finally:
        daemon.stop()
    assert [r["via"] for r in daemon.query("SELECT via FROM messages")] == ["smtp"]
    assert dovecot.logins(account.name) == logins
    assert account.uids("INBOX") == [uid]
    assert answers_to(home, waiting) == []


def test_imaps_with_a_trusted_certificate(dovecot_tls, home):
    account = dovecot_tls.account("tls@example.org")
    message = compose(ANN, "HELP")
    account.append("INBOX", delivered(message))

    lines = passed(poll(home, account.url(), SSL_CERT_FILE=str(dovecot_tls.tls.cert)))

    assert lines[-1] == "poll-imap: 1 handled, 0 left in place"
    assert answers_to(home, message)[0]["X-Mailflow-Template"] == "help"
    assert account.uids("INBOX") == []


@pytest.mark.parametrize("problem", ["wrong password", "untrusted certificate", "no server"])
def test_a_mailbox_it_cannot_use_fails_with_one_line_and_stores_nothing(
    dovecot_tls, home, tmp_path, problem
):
    account = dovecot_tls.account("refused@example.org")
    message = compose(ANN, "HELP")
    uid = account.append("INBOX", delivered(message))
    url = account.url()
    trust = {"SSL_CERT_FILE": str(dovecot_tls.tls.cert)}
    if problem == "wrong password":
        url = account.url(password="not-" + account.password)
    elif problem == "untrusted certificate":
        trust = {"SSL_CERT_FILE": str(make_certificate(tmp_path / "other").cert)}
    else:
        url = url.replace(f":{dovecot_tls.port}/", f":{free_port()}/")

    result = poll(home, url, **trust)

    assert result.returncode == 2, (result.stdout, result.stderr)
    stderr = result.stderr.decode().strip().splitlines()
    assert len(stderr) == 1, stderr
    assert stderr[0].startswith("mailflow poll-imap: ")
    assert account.password not in stderr[0]
    assert result.stdout == b""
    # It may fail before it opens the store at all; if it opened it, nothing is in it.
    assert not (home / "mailflow.db").exists() or count(home, "messages") == 0
    assert answers(home) == []
    assert uid in account.uids("INBOX")
