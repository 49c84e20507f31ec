"""Automatic mail is never answered: the 589 delivery failures and auto-replies of the
Sisimai corpus, sent to a real daemon over SMTP, get nothing back, while the corpus's two
ordinary messages are answered as ordinary mail. An out-of-office reply to a check-in is
recorded as such and is not taken for an answer.
"""

from __future__ import annotations

import email
import email.utils
from pathlib import Path

import pytest

from mailflow.read import classify
from mailflow.read.parse import parse
from tests.conftest import (
    CORPORA,
    PROGRAM,
    Person,
    compose,
    start_daemon,
    start_in_process,
    tick,
    until,
    wire,
)

SISIMAI = CORPORA / "sisimai-bounces"
BOUNCES = sorted((SISIMAI / "bsd").glob("*.eml"))
ORDINARY = sorted((SISIMAI / "not-bounces").glob("*.eml"))


def envelope_sender(raw: bytes) -> str:
    """The Return-Path the message arrived with, as an MTA would give it: '' for <>."""
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(b"return-path:"):
            return email.utils.parseaddr(line[12:].decode("latin-1"))[1]
    return "someone@example.net"


def test_the_corpus_is_whole():
    assert len(BOUNCES) == 589
    assert len(ORDINARY) == 2


@pytest.mark.parametrize("path", BOUNCES, ids=lambda p: p.name)
def test_each_bounce_and_auto_reply_is_recognised(path: Path):
    message = parse(path.read_bytes(), None, (PROGRAM,))
    assert classify.automatic(message) is not None


@pytest.mark.parametrize("path", ORDINARY, ids=lambda p: p.name)
def test_ordinary_mail_is_not_taken_for_automatic(path: Path):
    message = parse(path.read_bytes(), None, (PROGRAM,))
    assert classify.automatic(message) is None


@pytest.fixture
def daemon(home: Path):
    # Most of the corpus comes from <> or a few mail systems: more than the 60 a minute a
    # sender may send (test_limits checks that throttle).
    running = start_daemon(home, MAILFLOW_SENDER_RATE="100000")
    yield running
    running.stop()


def test_none_of_589_automatic_messages_gets_an_answer_over_smtp(daemon):
    with daemon.smtp() as client:
        for path in BOUNCES:
            raw = path.read_bytes()
            # Lines past RFC 5321's 1,000 octets too: Amazon SES's reports have them.
            client.sendmail(envelope_sender(raw), [PROGRAM], wire(raw))

    def all_handled():
        rows = daemon.query("SELECT state, outcome FROM messages WHERE state != 'received'")
        return rows if len(rows) == len(BOUNCES) else None

    handled = until(all_handled, "every accepted message to be handled", timeout=120)
    answered = [row["outcome"] for row in handled if row["state"] == "handled"]
    assert answered == []
    assert {row["state"] for row in handled} <= {"ignored", "duplicate", "quarantined"}
    assert daemon.query("SELECT count(*) AS n FROM outbox")[0]["n"] == 0
    # The two ordinary messages, from the same daemon, are answered.
    for path in ORDINARY:
        raw = path.read_bytes()
        head = email.message_from_bytes(raw)
        sender = email.utils.parseaddr(str(head["From"]))[1]
        with daemon.smtp() as client:
            client.sendmail(envelope_sender(raw), [PROGRAM], wire(raw))
        [answer] = daemon.mail_for(str(head["Message-ID"]).strip())
        assert answer["To"].addresses[0].addr_spec == sender
        assert answer["X-Mailflow-Template"] == "not-understood"


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Your check-in",
        "Automatic reply: Your check-in",
        "Abwesenheitsnotiz: Ihr Check-in",
        "Réponse automatique : votre point",
        "Respuesta automática: Tu check-in",
        "Resposta automática: check-in",
        "Automatisch antwoord: check-in",
        "Autosvar: check-in",
        "自动回复: check-in",
    ],
)
def test_out_of_office_subjects_in_many_languages(subject: str):
    message = parse(wire(compose("ann@uni.example.edu", "I am away.", subject)), None, (PROGRAM,))
    rule = classify.automatic(message)
    assert rule is not None and rule.name == "away-subject"


@pytest.mark.parametrize(
    "subject", ["Re: my vacation plans", "Absence of my partner", "Re: Out of ideas for topics"]
)
def test_a_persons_subject_is_not_taken_for_an_auto_reply(subject: str):
    message = parse(wire(compose("ann@uni.example.edu", "1", subject)), None, (PROGRAM,))
    assert classify.automatic(message) is None


def test_an_out_of_office_reply_to_a_check_in_is_recorded_not_taken_as_an_answer(matched: Path):
    tick(matched, "2026-03-16T09:00:00Z")
    program = start_in_process(matched, MAILFLOW_NOW="2026-03-16T10:00:00Z")
    try:
        ann = Person(program, "ann@uni.example.edu", "Ann Okafor")
        [checkin] = [
            m
            for m in program.delivered()
            if m["X-Mailflow-Template"] == "checkin"
            and m["To"].addresses[0].addr_spec == ann.address
        ]
        away = ann.reply(
            checkin,
            "I am out of the office until 30 March.",
            expect=None,
            headers={"Auto-Submitted": "auto-replied"},
        )
        assert away is None
        [row] = program.query("SELECT * FROM away_notices")
        assert row["number"] == 1
        assert (
            program.query(
                "SELECT * FROM checkin_answers WHERE participant_id = ?", row["participant_id"]
            )
            == []
        )
        # The check-in can still be answered when they are back.
        thanks = ann.reply(checkin, "1", expect="checkin-thanks")
        assert "regular contact" in thanks.get_content()
    finally:
        program.stop()
