"""The end of a term: the partnership ends, everyone who finished it gets term-ended, a
survey they answer by reply and a certificate with a PDF; later an invitation to the next
round, and AGAIN brings a returner back, never to a former partner. In process."""

from __future__ import annotations

import dataclasses
import io
import sqlite3

import pypdf

from mailflow import config as configuration
from mailflow.config import parse_time
from mailflow.program import Program
from mailflow.schedule import scheduler
from tests.conftest import Person, command, environment, program_at, tick
from tests.mailbox import inbox
from tests.people import ANN, BO, CHEN, PEOPLE, status

END = "2026-07-02T09:00:00Z"  # four months after the introductions of 2 March, 09:00


def test_at_the_end_of_the_term_everyone_gets_term_ended_a_survey_and_a_certificate(matched):
    assert "term-ended" not in tick(matched, "2026-07-02T08:59:00Z")
    out = tick(matched, END)
    assert "certificate: 8" in out and "survey: 8" in out and "term-ended: 8" in out
    [ended] = inbox(matched, ANN, "term-ended")
    assert "with Chen Jing ended on 2026-07-02" in ended.get_content()
    assert "Write AGAIN to sign up for Round 2" in ended.get_content()
    [survey] = inbox(matched, ANN, "survey")
    assert "Rating:" in survey.get_content() and "+" in survey["Reply-To"].addresses[0].addr_spec
    [certificate] = inbox(matched, ANN, "certificate")
    assert "with a partner in China" in certificate.get_body(("plain",)).get_content()
    [pdf] = [part for part in certificate.iter_attachments()]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "certificate.pdf"
    text = pypdf.PdfReader(io.BytesIO(pdf.get_content())).pages[0].extract_text()
    for words in ("Ann Okafor", "Round 1", "China", "2 March 2026", "2 July 2026"):
        assert words in " ".join(text.split()), words
    assert {status(matched, p[0]) for p in PEOPLE} == {"completed"}
    with sqlite3.connect(matched / "mailflow.db") as db:
        assert db.execute("SELECT DISTINCT state FROM partnerships").fetchall() == [("ended",)]
        assert db.execute("SELECT state FROM rounds WHERE name = 'Round 1'").fetchone() == (
            "ended",
        )
    # Nothing twice, and nothing scheduled any more.
    assert "nothing due" in tick(matched, END)
    assert "nothing due" in tick(matched, "2026-07-10T09:00:00Z")


def test_the_survey_is_answered_by_reply_and_stored(matched):
    tick(matched, END)
    program = program_at(matched, "2026-07-03T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        [survey] = inbox(matched, ANN, "survey")
        thanks = ann.reply(survey, "5, yes\nIt was lovely to talk to Chen.", expect="survey-thanks")
        assert "Rating: 5" in thanks.get_content()
        assert "Would sign up again: yes" in thanks.get_content()
        assert "Write AGAIN whenever you are ready" in thanks.get_content()
        chen = Person(program, CHEN, "Chen Jing")
        [survey] = inbox(matched, CHEN, "survey")
        partial = chen.reply(survey, "Rating: 3", expect="survey-thanks")
        assert "To add what is missing" in partial.get_content()
        chen.reply(partial, "Again: no\nComment: too busy this year", expect="survey-thanks")
    finally:
        program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        rows = db.execute(
            "SELECT q.email, s.rating, s.again, s.comment FROM survey_answers s"
            " JOIN participants q ON q.id = s.participant_id ORDER BY q.email"
        ).fetchall()
    assert rows == [
        (ANN, 5, 1, "It was lovely to talk to Chen."),
        (CHEN, 3, 0, "too busy this year"),
    ]


def test_returners_are_invited_sign_up_again_and_never_meet_a_former_partner(matched):
    tick(matched, END)
    program = program_at(matched, "2026-07-05T09:00:00Z")
    try:
        # Signing up again someone whose term ended needs proof of the address: a YES.
        again = Person(program, ANN, "Ann Okafor").say_and_confirm("AGAIN", "signup-again")
        assert "You are signed up for Round 2" in again.get_content()
        assert "Country: Nigeria (NG)" in again.get_content()
    finally:
        program.stop()
    assert status(matched, ANN) == "applied"
    assert "round-open" not in tick(matched, "2026-07-15T09:00:00Z")
    assert "round-open: 7" in tick(matched, "2026-07-16T09:00:00Z")
    assert inbox(matched, ANN, "round-open") == []
    [invitation] = inbox(matched, BO, "round-open")
    assert "Round 2 is now accepting applications" in invitation.get_content()
    assert "nothing due" in tick(matched, "2026-07-17T09:00:00Z")  # once per round

    program = program_at(matched, "2026-07-17T10:00:00Z")
    try:
        for address, name, *_ in PEOPLE[1:]:
            person = Person(program, address, name)
            asked = person.reply(
                inbox(matched, address, "round-open")[0], "AGAIN", expect="change-confirm"
            )
            person.reply(asked, "YES", expect="signup-again")
    finally:
        program.stop()
    command(matched, "match", MAILFLOW_NOW="2026-07-20T09:00:00Z")
    with sqlite3.connect(matched / "mailflow.db") as db:
        pairs = db.execute(
            "SELECT r.name, member_a, member_b FROM partnerships p JOIN rounds r"
            " ON r.id = p.round_id"
        ).fetchall()
    before = {frozenset((a, b)) for name, a, b in pairs if name == "Round 1"}
    after = {frozenset((a, b)) for name, a, b in pairs if name == "Round 2"}
    assert len(after) == 4 and not before & after


def test_the_daemon_spreads_a_rounds_end_over_several_ticks(matched):
    """`serve` ends at most a few hundred terms a tick, so a round's certificates never hold
    up delivery; here three partnerships a tick, of four."""
    config = configuration.load(environment(matched), cwd=matched.parent)
    now = parse_time(END)
    program = Program(dataclasses.replace(config, now=now))
    try:
        first = scheduler.tick(program, now, terms_at_once=3)
        second = scheduler.tick(program, now, terms_at_once=3)
        third = scheduler.tick(program, now, terms_at_once=3)
    finally:
        program.close()
    assert first["certificate"] == 6 and second["certificate"] == 2 and not third
    assert len(inbox(matched, ANN, "certificate")) == 1
