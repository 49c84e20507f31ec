"""Loops and floods: at most MAILFLOW_REPLY_LIMIT answers to a sender an hour, then one
`rate-limited` notice and silence; an autoresponder that sets no header stops within a few
messages, even when it answers through reply tokens; coordinators get ten times the limit.

Mail goes in through `mailflow ingest` (the path an MTA's pipe takes), its function run in
process (conftest's `ingest`), several messages a run, and time moves with MAILFLOW_NOW.
The flood of one envelope sender is the SMTP daemon's to slow, so that test keeps it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import smtplib
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import PROGRAM, compose, ingest, run_cli, start_daemon, wire
from tests.mailbox import delivered, templates

ANN = "ann@uni.example.edu"
OUT_OF_OFFICE = "I am away until Monday with no access to email. For urgent matters call the desk."


def stored(home: Path, sender: str) -> int:
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute("SELECT count(*) FROM messages WHERE sender = ?", [sender]).fetchone()[0]


def test_after_the_limit_one_notice_then_silence_and_an_hour_later_answers_again(home):
    questions = [compose(ANN, f"HELP with question {n}") for n in range(12)]
    outcomes = ingest(home, questions, MAILFLOW_REPLY_LIMIT="4")
    assert templates(home, ANN) == ["help"] * 4 + ["rate-limited"]
    assert outcomes[4] == "rate-limited:notice -> rate-limited"
    assert outcomes[5:] == ["ignored:rate-limited"] * 7
    notice = delivered(home, ANN)[-1]
    assert notice["Auto-Submitted"] == "auto-replied"
    assert "answered 4 messages" in notice.get_content()
    assert "10:00 on 02 March 2026" in notice["Subject"]
    assert stored(home, ANN) == 12  # kept, not acted on
    # An hour after the first answer the window has moved on.
    ingest(home, [compose(ANN, "HELP again")], now="2026-03-02T10:00:01Z", MAILFLOW_REPLY_LIMIT="4")
    assert templates(home, ANN)[-1] == "help"
    assert len(templates(home, ANN)) == 6


def test_the_default_limit_is_ten_answers_an_hour(home):
    ingest(home, [compose(ANN, f"HELP {n}") for n in range(13)])
    assert templates(home, ANN) == ["help"] * 10 + ["rate-limited"]


def autoresponder_loop(home: Path, first: EmailMessage, rounds: int = 30) -> int:
    """An autoresponder that sets no header and answers every mail it gets, to its Reply-To
    (else From), with the same text above the quote; how many mails the program sent it."""
    ingest(home, [first])
    answered = 0
    for _ in range(rounds):
        mails = delivered(home, "desk@library.example")
        if len(mails) == answered:
            break  # the program went quiet: the loop is over
        answered = len(mails)
        latest = mails[-1]
        target = email.utils.parseaddr(str(latest["Reply-To"] or latest["From"]))[1]
        quoted = "\n".join("> " + line for line in latest.get_content().splitlines())
        reply = compose(
            "desk@library.example",
            f"{OUT_OF_OFFICE}\n\nOn Mon, 2 Mar 2026, {PROGRAM} wrote:\n{quoted}",
            "Re: " + str(latest["Subject"]),
            to=target,
            in_reply_to=latest["Message-ID"],
        )
        ingest(home, [reply])
    return answered


@pytest.mark.parametrize(
    ("first", "template", "most", "last"),
    [
        # A stranger's mail that is not understood is answered once a day.
        ("HELP", "help", 2, "not-understood"),
        # Each answer asks for a reply to a fresh token, and the autoresponder obliges: replies
        # to a live token are not held to the repeated-text rule (three YES to three
        # confirmations are three answers), so the hourly count of proven mail ends it; the
        # notice's own answer is the one answer a stranger's not-understood mail gets a day.
        ("APPLY", "application-form", 13, "not-understood"),
    ],
    ids=["to the program address", "through reply tokens"],
)
def test_a_headerless_autoresponder_is_stopped_within_a_few_messages(
    home, first, template, most, last
):
    sent = autoresponder_loop(home, compose("desk@library.example", first))
    assert sent <= most
    names = templates(home, "desk@library.example")
    assert names[0] == template
    assert names[-1] == last
    assert names.count("rate-limited") <= 1 and names.count("not-understood") <= 1


def test_mail_in_a_persons_name_does_not_use_up_the_limit_of_their_replies(home):
    """Replies to live tokens are counted apart from mail anyone could have sent in the
    person's name: a flood of the latter doesn't stop the program answering the former."""
    ingest(home, [compose(ANN, "APPLY")], MAILFLOW_REPLY_LIMIT="2")
    ingest(home, [compose(ANN, f"HELP {n}") for n in range(4)], MAILFLOW_REPLY_LIMIT="2")
    assert templates(home, ANN) == ["application-form", "help", "rate-limited"]
    form = delivered(home, ANN)[0]
    for attempt in range(2):
        assert form["X-Mailflow-Template"] in ("application-form", "application-problems")
        reply = compose(
            ANN,
            f"Name: Ann Okafor\nCountry: Atlantis {attempt}",
            "Re: " + str(form["Subject"]),
            to=email.utils.parseaddr(str(form["Reply-To"]))[1],
            in_reply_to=form["Message-ID"],
        )
        ingest(home, [reply], MAILFLOW_REPLY_LIMIT="2")
        form = delivered(home, ANN)[-1]
    assert templates(home, ANN)[3:] == ["application-problems"] * 2


def test_coordinators_get_ten_times_the_limit(home):
    boss = "coord@program.example.org"
    ingest(
        home,
        [compose(boss, f"STATS\nReference {n}") for n in range(22)],
        MAILFLOW_REPLY_LIMIT="2",
        MAILFLOW_COORDINATORS=boss,
    )
    assert templates(home, boss) == ["command-result"] * 20 + ["rate-limited"]


def test_a_bad_limit_is_refused_with_one_line(home):
    run = run_cli(home, "migrate", MAILFLOW_REPLY_LIMIT="many")
    assert run.returncode == 2
    assert run.stderr.decode().strip() == (
        "mailflow migrate: MAILFLOW_REPLY_LIMIT must be a whole number from 1, not 'many'"
    )


def test_a_sender_flooding_the_daemon_is_slowed_with_451_and_others_are_served(home):
    flood = "flood@example.net"
    daemon = start_daemon(home, MAILFLOW_SENDER_RATE="5")
    try:
        with daemon.smtp() as client:
            for n in range(5):
                client.sendmail(flood, [PROGRAM], wire(compose(flood, f"HELP {n}")))
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail(flood, [PROGRAM], wire(compose(flood, "HELP 5")))
            assert refused.value.smtp_code == 451
            assert b"try again later" in refused.value.smtp_error
        question = compose(ANN, "HELP")
        daemon.send(question, sender=ANN)
        [answer] = daemon.mail_for(question["Message-ID"])
        assert answer["X-Mailflow-Template"] == "help"
        stored = daemon.query("SELECT count(*) AS n FROM messages WHERE sender = ?", flood)
        assert stored[0]["n"] == 5
    finally:
        daemon.stop()
