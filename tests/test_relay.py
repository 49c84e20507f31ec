"""Outgoing mail through a real SMTP relay on 127.0.0.1 (tests/relay_sink.py), and the
daemon's own STARTTLS.

The relay plays what a deployment meets: STARTTLS and a login, a wrong password, a 451
that wants a later try, a 550, no relay at all, and the client dying after the relay has
the whole message but before it answers. Each test checks what the relay received (by
Message-ID: nothing lost, nothing twice), what the outbox says, and what was NOT sent.
Time moves with MAILFLOW_NOW, never by sleeping.
"""

from __future__ import annotations

import logging
import signal
import smtplib
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mailflow import config as configuration
from mailflow.errors import SettingError
from mailflow.send.relay import tls_mode as relay_mode
from tests.certs import Certificate, make_certificate
from tests.conftest import (
    MAILFLOW,
    NOW,
    PROGRAM,
    WAIT,
    Person,
    command,
    compose,
    environment,
    free_port,
    run_cli,
    start_daemon,
    until,
    wire,
)
from tests.relay_sink import RelaySink, trusting

START = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
ANN = "ann@uni.example.edu"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def at(**delta: float) -> str:
    """MAILFLOW_NOW this long after the tests' NOW."""
    return (START + timedelta(**delta)).isoformat()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def helps(folder: Path, count: int) -> list[Path]:
    """HELP messages from `count` different people, as files for `mailflow ingest`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(1, count + 1):
        path = folder / f"help-{n:02}.eml"
        path.write_bytes(wire(compose(f"person{n:02}@members.example", "HELP", "help")))
        files.append(path)
    return files


def ingest(home: Path, *files: Path, **env: str) -> subprocess.CompletedProcess:
    run = run_cli(home, "ingest", *map(str, files), **env)
    assert run.returncode == 0, run.stderr.decode()
    return run


def outbox(home: Path) -> list[sqlite3.Row]:
    connection = sqlite3.connect(home / "mailflow.db", timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM outbox ORDER BY id").fetchall()
    finally:
        connection.close()


def maildir(home: Path) -> list[Path]:
    folder = home / "outbox" / "new"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_an_answer_goes_through_a_relay_that_wants_starttls_and_a_login(home, certificate):
    question = compose(ANN, "HELP", "how does this work?")
    with RelaySink(certificate=certificate, require_starttls=True, login=True) as sink:
        run = run_cli(home, "ingest", stdin=wire(question), **sink.settings())
        assert run.returncode == 0, run.stderr.decode()
    [got] = sink.received
    assert got.tls, "sent in the clear"
    assert got.user == sink.user
    assert got.recipients == (ANN,)
    answer = got.message
    assert answer["To"].addresses[0].addr_spec == ANN
    assert answer["X-Mailflow-Template"] == "help"
    assert answer["In-Reply-To"] == question["Message-ID"]
    [row] = outbox(home)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["message_id"] == got.message_id
    assert got.sender == row["envelope_from"]
    # The stored bytes are the bytes sent (dot-stuffing undone by the relay).
    assert got.content.rstrip(b"\r\n") == bytes(row["raw"]).rstrip(b"\r\n")
    assert maildir(home) == []


def test_a_wrong_password_keeps_the_mail_queued_until_it_is_right(home, tmp_path, certificate):
    [question] = helps(tmp_path / "in", 1)
    with RelaySink(certificate=certificate, require_starttls=True, login=True) as sink:
        run = ingest(home, question, **sink.settings(password="not-" + sink.password))
        assert sink.received == [] and sink.recipients_tried == []
        [row] = outbox(home)
        assert (row["state"], row["attempts"]) == ("queued", 1)
        assert "login" in row["last_error"].lower() or "authentication" in row["last_error"].lower()
        assert "535" in row["last_error"]
        assert moment(row["next_attempt_at"]) == START + timedelta(minutes=1)
        assert b"535" in run.stderr  # logged for the operator
        assert sink.password not in row["last_error"]
        flushed = run_cli(home, "outbox", "flush", **sink.settings())
        assert flushed.returncode == 0, flushed.stderr.decode()
        assert b"sent 1, still queued 0" in flushed.stdout
        again = run_cli(home, "outbox", "flush", **sink.settings())
        assert b"sent 0, still queued 0" in again.stdout
    [got] = sink.received
    assert got.user == sink.user and got.recipients == ("person01@members.example",)
    [row] = outbox(home)
    assert (row["state"], row["message_id"]) == ("sent", got.message_id)
    assert maildir(home) == []


def test_a_relay_whose_certificate_is_not_trusted_gets_nothing(home, tmp_path, certificate):
    other = make_certificate(tmp_path / "other-ca")
    [question] = helps(tmp_path / "in", 1)
    with RelaySink(certificate=certificate, require_starttls=True, login=True) as sink:
        settings = {**sink.settings(), "SSL_CERT_FILE": str(other.cert)}
        ingest(home, question, **settings)
        assert sink.received == [] and sink.recipients_tried == []
    [row] = outbox(home)
    assert (row["state"], row["attempts"]) == ("queued", 1)
    assert "certificate" in row["last_error"].lower()
    assert maildir(home) == []


def test_a_451_is_retried_after_a_minute_then_after_two(home, tmp_path):
    [question] = helps(tmp_path / "in", 1)
    with RelaySink() as sink:
        relay = sink.settings()
        sink.answer_data("451 4.3.0 Greylisted, try again later")
        ingest(home, question, **relay)
        assert (sink.data_seen, sink.received) == (1, [])
        [row] = outbox(home)
        assert (row["state"], row["attempts"]) == ("queued", 1)
        assert "451" in row["last_error"] and "Greylisted" in row["last_error"]
        assert moment(row["next_attempt_at"]) == START + timedelta(minutes=1)

        early = run_cli(home, "tick", MAILFLOW_NOW=at(seconds=30), **relay)
        assert early.returncode == 0, early.stderr.decode()
        assert sink.data_seen == 1, "retried before its time"
        assert outbox(home)[0]["attempts"] == 1

        sink.answer_data("451 4.3.0 Greylisted, try again later")
        run_cli(home, "tick", MAILFLOW_NOW=at(minutes=2), **relay)
        assert (sink.data_seen, sink.received) == (2, [])
        [row] = outbox(home)
        assert (row["state"], row["attempts"]) == ("queued", 2)
        assert moment(row["next_attempt_at"]) == START + timedelta(minutes=2 + 2)  # doubled

        run_cli(home, "tick", MAILFLOW_NOW=at(minutes=4), **relay)
    [got] = sink.received
    assert got.recipients == ("person01@members.example",)
    [row] = outbox(home)
    assert (row["state"], row["attempts"], row["message_id"]) == ("sent", 3, got.message_id)
    assert sink.data_seen == 3


def test_after_its_last_attempt_a_deferred_message_is_failed(home, tmp_path):
    [question] = helps(tmp_path / "in", 1)
    with RelaySink() as sink:
        relay = {**sink.settings(), "MAILFLOW_RELAY_ATTEMPTS": "2"}
        sink.answer_data("451 4.3.0 Try again later", count=5)
        ingest(home, question, **relay)
        run_cli(home, "outbox", "flush", **relay)
        [row] = outbox(home)
        assert (row["state"], row["attempts"]) == ("failed", 2)
        flushed = run_cli(home, "outbox", "flush", **relay)
        assert flushed.returncode == 0
        assert sink.data_seen == 2 and sink.received == []


def test_a_550_is_failed_not_retried_and_resent_when_the_operator_asks(home, tmp_path):
    ann, bob = helps(tmp_path / "in", 2)
    with RelaySink() as sink:
        relay = sink.settings()
        sink.refuse_recipient("person01@members.example", "550 5.1.1 No such user here")
        sink.answer_data("554 5.6.0 Message refused")  # the first DATA: Bob's answer
        ingest(home, ann, bob, **relay)
        assert sink.received == []
        first, second = outbox(home)
        assert (first["state"], first["attempts"]) == ("failed", 1)
        assert "550" in first["last_error"] and "No such user" in first["last_error"]
        assert (second["state"], second["attempts"]) == ("failed", 1)
        assert "554" in second["last_error"]
        tried, seen = len(sink.recipients_tried), sink.data_seen

        flushed = run_cli(home, "outbox", "flush", **relay)
        assert flushed.returncode == 0 and b"sent 0, still queued 0" in flushed.stdout
        assert (len(sink.recipients_tried), sink.data_seen) == (tried, seen), "a 5xx was retried"
        assert [row["state"] for row in outbox(home)] == ["failed", "failed"]

        sink.accept_recipient("person01@members.example")
        resent = run_cli(home, "outbox", "resend", str(first["id"]), **relay)
        assert resent.returncode == 0, resent.stderr.decode()
        run_cli(home, "outbox", "flush", **relay)
        refused = run_cli(home, "outbox", "resend", str(first["id"]), **relay)
        assert refused.returncode != 0  # it is sent: nothing to resend
    [got] = sink.received
    assert got.recipients == ("person01@members.example",)
    assert got.message_id == first["message_id"]
    first, second = outbox(home)
    assert first["state"] == "sent"
    assert second["state"] == "failed"  # only what the operator asked for


def test_with_the_relay_down_nothing_is_lost_and_a_flush_sends_each_once(home, tmp_path):
    port = free_port()  # nobody listens there yet
    relay = {"MAILFLOW_SMTP_RELAY": f"127.0.0.1:{port}"}
    run = ingest(home, *helps(tmp_path / "in", 3), **relay)
    assert b"relay" in run.stderr.lower()  # logged
    rows = outbox(home)
    assert len(rows) == 3
    for row in rows:
        assert (row["state"], row["attempts"]) == ("queued", 1)
        assert moment(row["next_attempt_at"]) == START + timedelta(minutes=1)
        assert row["last_error"]
    assert maildir(home) == []
    listing = run_cli(home, "outbox", **relay).stdout.decode()
    assert "queued 3" in listing

    with RelaySink(port) as sink:
        flushed = run_cli(home, "outbox", "flush", **relay)
        assert flushed.returncode == 0, flushed.stderr.decode()
        assert b"sent 3, still queued 0" in flushed.stdout
        assert sink.connections() == 1  # one connection for the pass
        again = run_cli(home, "outbox", "flush", **relay)
        assert b"sent 0, still queued 0" in again.stdout
    assert sink.message_ids() == {row["message_id"]: 1 for row in rows}
    assert sorted(r for item in sink.received for r in item.recipients) == [
        "person01@members.example",
        "person02@members.example",
        "person03@members.example",
    ]
    assert [row["state"] for row in outbox(home)] == ["sent"] * 3


def test_a_connection_lost_after_the_final_dot_is_unconfirmed_not_sent_twice(home, tmp_path):
    files = helps(tmp_path / "in", 3)
    with RelaySink() as sink:
        relay = sink.settings()
        sink.drop_after_data(1)  # the relay has the first answer; its 250 never comes
        ingest(home, *files, **relay)
        first, *rest = outbox(home)
        assert first["state"] == "unconfirmed"
        assert [row["state"] for row in rest] == ["sent", "sent"]  # a new connection
        flushed = run_cli(home, "outbox", "flush", **relay)
        assert flushed.returncode == 0
    assert sink.message_ids() == {row["message_id"]: 1 for row in outbox(home)}
    assert outbox(home)[0]["state"] == "unconfirmed"


def test_a_sender_killed_while_the_relay_holds_a_message_never_sends_it_twice(home, tmp_path):
    port = free_port()
    relay = {"MAILFLOW_SMTP_RELAY": f"127.0.0.1:{port}"}
    ingest(home, *helps(tmp_path / "in", 20), **relay)  # the relay is down: all queued
    rows = outbox(home)
    assert [row["state"] for row in rows] == ["queued"] * 20

    with RelaySink(port) as sink:
        held = sink.hold(8)
        flush = subprocess.Popen(
            [str(MAILFLOW), "outbox", "flush"],
            env=environment(home, **relay),
            cwd=home.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert held.arrived.wait(WAIT), "the eighth message never reached the relay"
            flush.send_signal(signal.SIGKILL)  # waiting for the relay's 250
            flush.wait(WAIT)
        finally:
            if flush.poll() is None:
                flush.kill()
                flush.wait()
            held.release.set()
        assert flush.returncode == -signal.SIGKILL

        after_kill = outbox(home)
        assert [row["state"] for row in after_kill[:7]] == ["sent"] * 7
        assert after_kill[7]["state"] == "sending" and after_kill[7]["handed_at"]
        for row in after_kill[8:]:
            assert row["state"] in ("queued", "sending") and row["handed_at"] is None
        assert sink.message_ids() == {row["message_id"]: 1 for row in rows[:8]}

        again = run_cli(home, "outbox", "flush", **relay)
        assert again.returncode == 0, again.stderr.decode()
        assert b"sent 12, still queued 0" in again.stdout
        unconfirmed = rows[7]["id"]
        # The operator is told which message may have reached the relay.
        assert b"unconfirmed" in again.stderr and rows[7]["recipient"].encode() in again.stderr
        states = [row["state"] for row in outbox(home)]
        assert states == ["sent"] * 7 + ["unconfirmed"] + ["sent"] * 12
        assert sink.message_ids() == {row["message_id"]: 1 for row in rows}
        listing = run_cli(home, "outbox", **relay).stdout.decode()
        assert "unconfirmed 1" in listing

        third = run_cli(home, "outbox", "flush", **relay)
        assert b"sent 0, still queued 0" in third.stdout
        assert len(sink.received) == 20

        resent = run_cli(home, "outbox", "resend", str(unconfirmed), **relay)
        assert resent.returncode == 0, resent.stderr.decode()
        run_cli(home, "outbox", "flush", **relay)
    counts = sink.message_ids()
    assert counts[rows[7]["message_id"]] == 2  # the operator asked for the second copy
    assert sum(counts.values()) == 21
    assert [row["state"] for row in outbox(home)] == ["sent"] * 20


def test_the_daemon_sends_its_answers_to_the_relay(home, certificate):
    with RelaySink(certificate=certificate, require_starttls=True, login=True) as sink:
        daemon = start_daemon(home, **sink.settings())
        try:
            question = Person(daemon, ANN).send(compose(ANN, "HELP", "help"))
            [got] = until(lambda: list(sink.received), "the answer at the relay", timeout=5)
            assert got.tls and got.user == sink.user
            assert got.recipients == (ANN,)
            assert got.message["X-Mailflow-Template"] == "help"
            assert got.message["In-Reply-To"] == question["Message-ID"]
            until(
                lambda: [r["state"] for r in daemon.query("SELECT state FROM outbox")] == ["sent"],
                "the outbox row to be sent",
            )
        finally:
            daemon.stop()
    assert len(sink.received) == 1
    assert maildir(home) == []


def test_the_daemon_offers_starttls_with_a_certificate(home, tmp_path, certificate):
    daemon = start_daemon(
        home, MAILFLOW_TLS_CERT=str(certificate.cert), MAILFLOW_TLS_KEY=str(certificate.key)
    )
    try:
        question = compose(ANN, "HELP", "help")
        with daemon.smtp() as client:
            client.ehlo()
            assert client.has_extn("starttls")
            code, _ = client.starttls(context=trusting(certificate))
            assert code == 220
            client.ehlo()
            assert not client.has_extn("starttls")  # once is enough (RFC 3207)
            client.sendmail(ANN, [PROGRAM], wire(question))
        [answer] = daemon.mail_for(question["Message-ID"])
        assert answer["X-Mailflow-Template"] == "help"
        assert answer["To"].addresses[0].addr_spec == ANN
    finally:
        daemon.stop()

    plain = start_daemon(tmp_path / "plain")
    try:
        with plain.smtp() as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                client.starttls(context=trusting(certificate))
    finally:
        plain.stop()


# --- implicit TLS (RFC 8314) and the one line per hand-off ------------------------------


def test_an_answer_goes_over_implicit_tls_when_the_relay_speaks_it(home, certificate):
    question = compose(ANN, "HELP", "how does this work?")
    with RelaySink(certificate=certificate, implicit_tls=True, login=True) as sink:
        settings = sink.settings()
        assert settings["MAILFLOW_SMTP_TLS"] == "implicit"
        assert "MAILFLOW_SMTP_STARTTLS" not in settings
        run = run_cli(home, "ingest", stdin=wire(question), **settings)
        assert run.returncode == 0, run.stderr.decode()
    [got] = sink.received
    assert got.tls, "sent in the clear"
    assert (got.user, got.mechanism) == (sink.user, "PLAIN")
    assert got.message["In-Reply-To"] == question["Message-ID"]
    [row] = outbox(home)
    assert (row["state"], row["attempts"], row["message_id"]) == ("sent", 1, got.message_id)


@pytest.mark.parametrize("untrusted", [False, True], ids=["starttls-relay", "untrusted"])
def test_implicit_tls_to_a_relay_that_wants_starttls_or_is_not_trusted_sends_nothing(
    home, tmp_path, certificate, untrusted
):
    """TLS from the first byte to a relay that greets in the clear, or whose certificate
    nobody vouches for: one line, the mail queued for later, nothing in the clear."""
    [question] = helps(tmp_path / "in", 1)
    with RelaySink(certificate=certificate, implicit_tls=untrusted, login=True) as sink:
        settings = {**sink.settings(), "MAILFLOW_SMTP_TLS": "implicit"}
        settings.pop("MAILFLOW_SMTP_STARTTLS", None)
        if untrusted:
            settings["SSL_CERT_FILE"] = str(make_certificate(tmp_path / "other-ca").cert)
        run = ingest(home, question, **settings)
        assert sink.received == [] and sink.recipients_tried == []
    [row] = outbox(home)
    assert (row["state"], row["attempts"]) == ("queued", 1)
    assert moment(row["next_attempt_at"]) == START + timedelta(minutes=1)
    assert b"relay unavailable" in run.stderr and b"over implicit TLS" in run.stderr
    if untrusted:
        assert "certificate" in row["last_error"].lower()
    assert sink.password.encode() not in run.stderr


def test_port_465_is_implicit_tls_unless_a_setting_says_otherwise(tmp_path):
    def mode(**env: str) -> str:
        return relay_mode(configuration.load({"MAILFLOW_HOME": str(tmp_path), **env}, tmp_path))

    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org:465") == "implicit"
    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org:587", MAILFLOW_SMTP_STARTTLS="1") == (
        "starttls"
    )
    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org:587") == "none"
    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org") == "none"  # port 25
    assert mode(MAILFLOW_SMTP_RELAY="127.0.0.1:2465", MAILFLOW_SMTP_TLS="implicit") == "implicit"
    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org:465", MAILFLOW_SMTP_TLS="starttls") == (
        "starttls"
    )
    assert mode(MAILFLOW_SMTP_RELAY="127.0.0.1:465", MAILFLOW_SMTP_TLS="none") == "none"
    assert mode(MAILFLOW_SMTP_RELAY="smtp.example.org:465", MAILFLOW_SMTP_STARTTLS="1") == (
        "implicit"  # the old boolean asks for TLS; on 465 that is TLS from the first byte
    )
    with pytest.raises(SettingError, match="MAILFLOW_SMTP_TLS must be starttls, implicit or"):
        mode(MAILFLOW_SMTP_RELAY="smtp.example.org:465", MAILFLOW_SMTP_TLS="ssl")
    with pytest.raises(SettingError, match="MAILFLOW_SMTP_STARTTLS is on but"):
        mode(MAILFLOW_SMTP_TLS="none", MAILFLOW_SMTP_STARTTLS="1")


def test_a_relay_on_port_465_gets_the_mail_over_implicit_tls_with_no_tls_setting(home, certificate):
    try:
        sink = RelaySink(465, certificate=certificate, implicit_tls=True).start()
    except (OSError, RuntimeError) as error:  # not root, or 465 taken on this machine
        pytest.skip(f"cannot listen on 127.0.0.1:465: {error}")
    question = compose(ANN, "HELP", "help")
    try:
        settings = sink.settings()
        assert "MAILFLOW_SMTP_TLS" not in settings and "MAILFLOW_SMTP_STARTTLS" not in settings
        run = run_cli(home, "ingest", stdin=wire(question), **settings)
        assert run.returncode == 0, run.stderr.decode()
    finally:
        sink.stop()
    [got] = sink.received
    assert got.tls and got.message["In-Reply-To"] == question["Message-ID"]


def test_each_hand_off_to_the_relay_is_one_line_with_the_relays_answer(home, tmp_path, caplog):
    """Accepted: one INFO line with the row, the Message-ID, the recipient and the relay's
    250 (its "queued as"), in Postfix's words; refused or deferred: one WARNING line each."""
    caplog.set_level(logging.INFO)
    files = helps(tmp_path / "in", 3)
    with RelaySink() as sink:
        sink.refuse_recipient("person02@members.example", "550 5.1.1 No such user here")
        sink.refuse_recipient("person03@members.example", "450 4.2.0 Mailbox busy")
        command(home, "ingest", *map(str, files), **sink.settings())
    [got] = sink.received
    sent, refused, deferred = outbox(home)
    assert (sent["state"], refused["state"], deferred["state"]) == ("sent", "failed", "queued")
    lines = {
        row["id"]: [r for r in caplog.records if r.getMessage().startswith(f"outbox {row['id']}:")]
        for row in (sent, refused, deferred)
    }
    assert all(len(found) == 1 for found in lines.values()), lines
    [accepted], [failed], [later] = lines.values()
    assert accepted.levelno == logging.INFO
    assert accepted.getMessage() == (
        f"outbox {sent['id']}: to=<person01@members.example>, message-id={got.message_id},"
        f" relay={sink.address}, status=sent (250 2.0.0 OK: queued as {got.queued_as})"
    )
    assert failed.levelno == logging.WARNING
    assert failed.getMessage() == (
        f"outbox {refused['id']}: to=<person02@members.example>,"
        f" message-id={refused['message_id']}, relay={sink.address},"
        " status=failed (550 5.1.1 No such user here): giving up"
    )
    assert later.levelno == logging.WARNING
    assert later.getMessage() == (
        f"outbox {deferred['id']}: to=<person03@members.example>,"
        f" message-id={deferred['message_id']}, relay={sink.address},"
        " status=deferred (450 4.2.0 Mailbox busy): retry in 0:01:00"
    )
