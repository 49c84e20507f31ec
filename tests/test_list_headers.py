"""The headers filters and mail clients look for, on every message the program sends
(issue 19, point 4): List-Id (RFC 2919) and List-Help (RFC 2369) on all of it,
List-Unsubscribe on all of it but what no unsubscribing could stop or must not keep the
address, the one-click form (RFC 8058) and a footer link where there is a public address,
and X-Auto-Response-Suppress on answers only: a check-in's away notice is stored.

The mail checked is what a conversation walk really delivered to the Maildir, not
templates rendered apart.
"""

from __future__ import annotations

import re
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import Person, compose, form_text, program_at, start_in_process, tick
from tests.mailbox import mails, text, to
from tests.people import ANN, BO, CHEN, COORDINATOR

PUBLIC = "https://mentoring.example.org"
LIST_ID = "Librarians Peer Network <program.example.org>"
LIST_HELP = "<mailto:program@example.org?subject=HELP>"
SUPPRESS = "OOF, AutoReply"
MAILTO = re.compile(r"^<mailto:program\+([a-z2-7]{16})@example\.org>$")
NEWCOMER = "newcomer@lib.example.org"
GUS = "gus@lib.example.de"
# Mail coordinators are sent as coordinators, which no unsubscribing could stop, and the
# farewell after DELETE MY DATA, whose token would keep the erased address.
NO_UNSUBSCRIBE = {"partner-silent-alert", "participant-unreachable", "data-deleted"}
# What the walk below must have delivered, so that a walk that sends less fails.
WALKED = {
    "application-form",
    "application-received",
    "status",
    "help",
    "not-understood",
    "change-confirm",
    "paused",
    "command-confirm",
    "command-result",
    "broadcast",
    "checkin",
    "checkin-thanks",
    "partner-nudge",
    "partner-silent-alert",
    "checkin-reminder",
    "topic",
    "delete-confirm",
    "data-deleted",
}


def at(home: Path, now: str):
    return program_at(home, now, MAILFLOW_PUBLIC_URL=PUBLIC)


def walk(home: Path) -> list[EmailMessage]:
    """A newcomer applies and asks around, a participant pauses, a coordinator broadcasts;
    a check-in with its answers, a nudge, an alert and a reminder; a topic; an erasure.
    The mail the erasure took from the Maildir, as it was delivered."""
    program = at(home, "2026-03-04T09:00:00Z")
    try:
        newcomer = Person(program, NEWCOMER, "Nia Newcomer")
        form = newcomer.say("APPLY", expect="application-form")
        newcomer.reply(form, form_text(name="Nia Newcomer"), expect="application-received")
        newcomer.say("STATUS", expect="status")
        newcomer.say("HELP", expect="help")
        newcomer.say("What is this?", expect="not-understood")
        Person(program, BO, "Bo Lind").say_and_confirm("PAUSE", "paused")
        coordinator = Person(program, COORDINATOR)
        preview = coordinator.say(
            "BROADCAST Webinar on 20 March\nDear all,\n\nJoin us.", expect="command-confirm"
        )
        coordinator.reply(preview, "CONFIRM", expect="command-result")
    finally:
        program.stop()
    tick(home, "2026-03-16T09:00:00Z", MAILFLOW_PUBLIC_URL=PUBLIC)
    program = at(home, "2026-03-17T09:00:00Z")
    try:
        for address, name, answer in ((ANN, "Ann Okafor", "3"), (CHEN, "Chen Jing", "3")):
            [checkin] = [m for m in program.delivered() if addressed(m, address, "checkin")]
            Person(program, address, name).reply(checkin, answer, expect="checkin-thanks")
    finally:
        program.stop()
    tick(home, "2026-03-21T09:00:00Z", MAILFLOW_PUBLIC_URL=PUBLIC)
    tick(home, "2026-04-01T09:00:00Z", MAILFLOW_PUBLIC_URL=PUBLIC)
    program = at(home, "2026-04-02T09:00:00Z")
    try:
        # Gus, whose own mail goes with his data: the rest of the walk's stays to be read.
        asked = Person(program, GUS, "Gus Weber").say("DELETE MY DATA", expect="delete-confirm")
        # Sent, not said: the erasure takes the YES with it, so there is no row to wait on.
        target = str(asked["Reply-To"])
        program.send(compose(GUS, "YES", "Re: x", to=target), sender=GUS, to=[target])
    finally:
        program.stop()
    return [asked]


@pytest.fixture(scope="module")
def walked(matched_template: Path, tmp_path_factory) -> list[EmailMessage]:
    """Every message the walk delivered, made once for this module's tests that read it."""
    home = tmp_path_factory.mktemp("walked") / "var"
    shutil.copytree(matched_template, home)
    erased = walk(home)
    return mails(home) + erased


def addressed(message, address: str, template: str) -> bool:
    return to(message) == address and message["X-Mailflow-Template"] == template


def test_every_message_of_a_walk_carries_list_id_help_and_unsubscribe(walked):
    sent = walked
    assert {m["X-Mailflow-Template"] for m in sent} >= WALKED
    # The introductions were sent by `match` before the walk, without a public address.
    before = {"match-intro"}
    for message in sent:
        template = message["X-Mailflow-Template"]
        where = f"{template} to {to(message)}"
        assert message["List-Id"] == LIST_ID, where
        assert message["List-Help"] == LIST_HELP, where
        unsubscribe = message["List-Unsubscribe"]
        if template in NO_UNSUBSCRIBE:
            assert unsubscribe is None, where
            assert "List-Unsubscribe-Post" not in message, where
            assert f"{PUBLIC}/unsubscribe/" not in text(message), where
            continue
        mailto, *https = unsubscribe.split(", ")
        assert MAILTO.match(mailto), where
        if template in before:
            assert https == [] and "List-Unsubscribe-Post" not in message, where
            continue
        token = MAILTO.match(mailto)[1]
        url = f"{PUBLIC}/unsubscribe/{token}"
        assert https == [f"<{url}>"], where
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", where
        # The footer's one line, with the same page the header names.
        [line] = [line for line in text(message).splitlines() if url in line]
        assert line.endswith(url) and len(line) < 100, where


def test_answers_suppress_out_of_office_replies_and_nothing_the_program_starts_does(
    walked: list[EmailMessage],
):
    answers = notices = 0
    for message in walked:
        where = f"{message['X-Mailflow-Template']} to {to(message)}"
        if message["Auto-Submitted"] == "auto-replied":
            answers += 1
            assert message["X-Auto-Response-Suppress"] == SUPPRESS, where
        else:
            assert message["Auto-Submitted"] == "auto-generated", where
            notices += 1
            assert "X-Auto-Response-Suppress" not in message, where
        # Neither asks for bulk treatment: Auto-Submitted already tells RFC 3834 responders.
        assert "Precedence" not in message, where
    assert answers >= 12 and notices >= 12


def test_a_check_in_keeps_its_away_notices_and_its_answer_suppresses_them(matched: Path):
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-16T10:00:00Z")
    try:
        [checkin] = [m for m in program.delivered() if addressed(m, ANN, "checkin")]
        assert checkin["Auto-Submitted"] == "auto-generated"
        assert "X-Auto-Response-Suppress" not in checkin
        assert checkin["List-Id"] == LIST_ID and MAILTO.match(checkin["List-Unsubscribe"])
        ann = Person(program, ANN, "Ann Okafor")
        # An out-of-office reply, which the check-in did not ask Outlook to hold back.
        ann.reply(
            checkin,
            "I am out of the office until 20 March.",
            headers={"Auto-Submitted": "auto-replied"},
        )
        [away] = program.query("SELECT * FROM away_notices")
        assert away["number"] == 1
        thanks = ann.reply(checkin, "1", expect="checkin-thanks")
        assert thanks["Auto-Submitted"] == "auto-replied"
        assert thanks["X-Auto-Response-Suppress"] == SUPPRESS
        assert (
            thanks["List-Id"] == LIST_ID
            and thanks["List-Unsubscribe"] == (checkin["List-Unsubscribe"])
        )
    finally:
        program.stop()


def test_unsubscribing_an_address_that_takes_no_part_is_harmless(program):
    stranger = Person(program, "who@else.example.net")
    form = stranger.say("APPLY", expect="application-form")
    target = MAILTO.match(form["List-Unsubscribe"])
    assert target, form["List-Unsubscribe"]
    address = f"program+{target[1]}@example.org"
    done = stranger.say("unsubscribe", to=address, expect="optout-confirmed")
    assert "We hold no application from who@else.example.net" in text(done)
    assert program.query("SELECT * FROM participants") == []
    # Nothing was barred either: they may still apply.
    again = stranger.say("APPLY", expect="application-form")
    assert MAILTO.match(again["List-Unsubscribe"])


def test_a_program_name_with_a_comma_is_quoted_in_list_id(home: Path):
    program = start_in_process(home, MAILFLOW_PROGRAM_NAME="Peer Network, Inc.")
    try:
        answer = Person(program, ANN).say("HELP", expect="help")
    finally:
        program.stop()
    assert answer["List-Id"] == '"Peer Network, Inc." <program.example.org>'
