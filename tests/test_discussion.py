"""A round's discussion by mail, as its participants live it: the topic names it, a reply
posts, each person chooses how much arrives (every post, a daily or weekly digest, none),
ARCHIVE sends the month so far, and leaving or erasure ends it for them.

Round 1 of the matched home: Ann (Nigeria) with Chen (China), Bo (Sweden) with Dee
(Australia), Eli (Brazil) with Fay (Canada), Gus (Germany) with Hana (Japan). The rules'
default delivery is the weekly digest.
"""

from __future__ import annotations

import email.utils
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import PROGRAM, InProcess, Person, compose, start_in_process, tick, until
from tests.people import ANN, BO, CHEN, DEE, status

ROUND = "program+round-1@example.org"
ELI, FAY, GUS, HANA = (
    "eli@lib.example.br",
    "fay@lib.example.ca",
    "gus@lib.example.de",
    "hana@lib.example.jp",
)
TOPIC_DAY = "2026-04-01T09:00:00Z"  # the first weekday of the month after the introduction
NAMES = {
    ANN: "Ann Okafor",
    BO: "Bo Lind",
    CHEN: "Chen Jing",
    DEE: "Dee Brown",
    ELI: "Eli Costa",
    FAY: "Fay Roy",
    GUS: "Gus Weber",
    HANA: "Hana Sato",
}


def body(message: EmailMessage) -> str:
    return message.get_content().replace("\r\n", "\n")


def at(home: Path, now: str) -> InProcess:
    return start_in_process(home, "--no-scheduler", MAILFLOW_NOW=now)


def people(program: InProcess) -> dict[str, Person]:
    return {address: Person(program, address, name) for address, name in NAMES.items()}


def delivered_to(program: InProcess, address: str, template: str) -> list[EmailMessage]:
    return [
        m
        for m in program.delivered()
        if m["X-Mailflow-Template"] == template and m["To"].addresses[0].addr_spec == address
    ]


def copies(program: InProcess, template: str = "discussion-post") -> dict[str, list]:
    found: dict[str, list] = {}
    for message in program.delivered():
        if message["X-Mailflow-Template"] == template:
            found.setdefault(message["To"].addresses[0].addr_spec, []).append(message)
    return found


def posts(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "mailflow.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM discussion_posts ORDER BY id").fetchall()


def choose(person: Person, command: str) -> EmailMessage:
    """A delivery choice, written unproven and confirmed by the YES of the address's owner."""
    return person.say_and_confirm(command, "discussion-choice", confirm="discussion-confirm")


@pytest.fixture
def topical(matched: Path) -> Path:
    """The matched home on the first topic day: everyone has had this month's topic."""
    assert "topic: 8" in tick(matched, TOPIC_DAY)
    return matched


@pytest.fixture
def running(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    yield program
    program.stop()


def test_the_topic_names_the_discussion_and_a_reply_to_it_posts(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    try:
        everyone = people(program)
        for address in (BO, DEE, ELI):
            choose(everyone[address], "DISCUSS")
        [topic] = delivered_to(program, ANN, "topic")
        text = body(topic)
        assert ROUND in text
        assert "everyone who has not chosen receives a weekly digest of the posts" in text
        assert "DIGEST DAILY" in text and "QUIET" in text
        assert topic["Reply-To"].startswith("program+")
        everyone[ANN].reply(topic, "Our makerspace lends sewing machines. Does yours?", None)
        sent = copies(program)
        assert sorted(sent) == sorted([BO, DEE, ELI])  # those who take every post, but Ann
        [copy] = sent[BO]
        assert (
            copy["Subject"]
            == "[Round 1] Re: This month's topic: " + topic["Subject"].split(": ", 1)[1]
        )
        sender = copy["From"].addresses[0].display_name
        assert sender == "Ann Okafor (Nigeria) via Librarians Peer Network"
        assert copy["From"].addresses[0].addr_spec == PROGRAM
        assert ANN not in str(copy) and "uni.example.edu" not in str(copy)
        assert body(copy).startswith("Our makerspace lends sewing machines. Does yours?\n")
        assert "On Mon, 2 Mar 2026" not in body(copy)  # the quote stays behind
        assert copy["List-Post"] == f"<mailto:{ROUND}>"
        assert copy["List-Id"].endswith("<round-1.program.example.org>")
        assert copy["List-Unsubscribe"].startswith("<mailto:program+")
        assert copy["Reply-To"] != sent[DEE][0]["Reply-To"]  # each reader's own token
        # Every copy is the one post: one Message-ID, so replies thread for everyone.
        assert len({m["Message-ID"] for m in (copy, sent[DEE][0], sent[ELI][0])}) == 1
        [stored] = posts(topical)
        assert stored["state"] == "published" and stored["author_email"] == ANN
        assert stored["fanned_out_at"] is not None
    finally:
        program.stop()


def test_replies_thread_under_one_subject_and_one_prefix(running: InProcess):
    everyone = people(running)
    for address in (BO, DEE):
        choose(everyone[address], "DISCUSS")
    # Mail to the round's address proves nothing: Ann is asked first.
    confirm = everyone[ANN].say(
        "Who has tried reading circles?", "Reading circles", to=ROUND, expect="discussion-confirm"
    )
    assert "Who has tried reading circles?" in body(confirm)
    assert copies(running) == {}
    everyone[ANN].reply(confirm, "YES", None)
    [first] = copies(running)[BO]
    assert first["Subject"] == "[Round 1] Reading circles"
    answer = everyone[BO].reply(first, "We run one every Thursday.", None)
    assert answer is None
    [_, second] = copies(running)[DEE]
    assert second["Subject"] == "[Round 1] Re: Reading circles"
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"].split() == [first["Message-ID"]]
    third = everyone[DEE].reply(second, "Ours meets online.", None)
    assert third is None
    [_, reply_of_dee] = copies(running)[BO]
    assert reply_of_dee["Subject"] == "[Round 1] Re: Reading circles"
    assert reply_of_dee["References"].split() == [first["Message-ID"], second["Message-ID"]]


def test_a_weekly_digest_gathers_the_week_and_nothing_goes_to_the_quiet(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    try:
        everyone = people(program)
        choose(everyone[CHEN], "QUIET")
        choose(everyone[DEE], "DIGEST DAILY")
    finally:
        program.stop()
    program = at(topical, "2026-04-01T11:00:00Z")  # the posts come after the choices
    try:
        everyone = people(program)
        [topic] = delivered_to(program, ANN, "topic")
        everyone[ANN].reply(topic, "First post of the month.", None)
        [topic] = delivered_to(program, BO, "topic")
        everyone[BO].reply(topic, "Second post.", None)
        assert copies(program) == {}  # nobody takes every post
    finally:
        program.stop()
    assert "discussion-digest: 1" in tick(topical, "2026-04-02T06:00:00Z")  # Dee's daily
    assert "discussion-digest: 6" in tick(topical, "2026-04-06T06:00:00Z")  # Monday's weekly
    program = at(topical, "2026-04-06T07:00:00Z")
    try:
        digests = copies(program, "discussion-digest")
        assert CHEN not in digests  # quiet
        assert sorted(digests) == sorted([ANN, BO, DEE, ELI, FAY, GUS, HANA])
        [daily] = digests[DEE]
        assert daily["Subject"].startswith("[Round 1] Daily digest, 2 April 2026 (2 posts)")
        [weekly] = digests[ANN]
        assert weekly["Subject"].startswith("[Round 1] Weekly digest, 6 April 2026 (2 posts)")
        text = body(weekly)
        assert "  1. Re: This month's topic" in text and "(Ann Okafor (Nigeria))" in text
        assert "First post of the month." in text and "Second post." in text
        assert text.index("First post") < text.index("Second post")
        assert "Message: 2\nFrom: Bo Lind (Sweden)\n" in text
        assert weekly["List-Post"] == f"<mailto:{ROUND}>"
        assert ANN not in text.replace(weekly["To"].addresses[0].addr_spec, "")
    finally:
        program.stop()
    # Nothing new: no empty digest next week.
    assert "discussion-digest" not in tick(topical, "2026-04-13T06:00:00Z")


def test_archive_sends_this_months_discussion(running: InProcess):
    everyone = people(running)
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Archive me, please.", None)
    answer = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
    assert "Archive me, please." in body(answer)
    assert "1. Re: This month's topic" in body(answer)
    assert "Ann Okafor (Nigeria)" in body(answer)
    stranger = Person(running, "who@else.example.net")
    lost = stranger.say("ARCHIVE", expect="discussion-archive")
    assert "Archive me" not in body(lost) and "Ann" not in body(lost)


def test_status_and_help_show_the_choice_and_the_commands(running: InProcess):
    everyone = people(running)
    help_ = everyone[ANN].say("HELP", expect="help")
    for word in ("DISCUSS", "DIGEST DAILY", "DIGEST WEEKLY", "QUIET", "ARCHIVE"):
        assert word in body(help_)


def test_leaving_and_erasure_end_the_discussion_for_them(running: InProcess, topical: Path):
    everyone = people(running)
    for address in (BO, DEE):
        choose(everyone[address], "DISCUSS")
    everyone[BO].say("STOP", expect="optout-confirmed")  # unproven: mail stops at once
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Is anyone there?", None)
    assert sorted(copies(running)) == [DEE]
    assert status(topical, BO) != "matched"
    [topic] = delivered_to(running, CHEN, "topic")
    everyone[CHEN].reply(topic, "Chen's words, to be erased.", None)
    assert len(posts(topical)) == 2
    ask = everyone[CHEN].say("DELETE MY DATA", expect="delete-confirm")
    target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
    yes = compose(CHEN, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"])
    everyone[CHEN].send(yes, to=target)  # the erasure takes this message with it
    until(lambda: running.query("SELECT * FROM erased"), "the erasure")
    assert [p["body"] for p in posts(topical)] == ["Is anyone there?"]
    answer = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
    assert "Chen" not in body(answer) and "Is anyone there?" in body(answer)


def test_what_is_refused_and_why(running: InProcess, topical: Path):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    refused = everyone[ANN].reply(topic, "x" * 9000, "discussion-refused")
    assert "9000 characters" in body(refused) and "at most 8000" in body(refused)
    for number in range(3):
        everyone[ANN].reply(topic, f"Post {number}", None)
    late = everyone[ANN].reply(topic, "Post 4", "discussion-refused")
    assert "3 posts" in body(late)
    stranger = Person(running, "who@else.example.net")
    stranger.say("Hello all", to=ROUND, expect="discussion-refused")
    stranger.say("Hello again", to=ROUND, expect=None)  # once a day at most
    assert [p["body"] for p in posts(topical)] == ["Post 0", "Post 1", "Post 2"]
    assert len(copies(running)[BO]) == 3


def test_a_reply_that_is_only_a_command_is_the_command(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Hello!", None)
    [copy] = copies(running)[BO]
    everyone[BO].reply(copy, "QUIET", "discussion-choice")  # the reply address proves Bo
    assert len(copies(running)[BO]) == 1  # nothing posted
    everyone[ANN].reply(topic, "Anyone?", None)
    assert len(copies(running)[BO]) == 1


def test_an_attachment_is_left_out_with_a_note(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    message = compose(
        ANN,
        "Our reading list is attached.",
        "Re: " + str(topic["Subject"]),
        to=str(topic["Reply-To"]),
        in_reply_to=topic["Message-ID"],
    )
    message.add_attachment(b"%PDF-1.4 ...", "application", "pdf", filename="list.pdf")
    everyone[ANN].send(message, to=str(topic["Reply-To"]))
    [copy] = copies(running)[BO]
    assert "Our reading list is attached." in body(copy)
    assert "[Left out: list.pdf." in body(copy)
    assert not any(part.get_filename() for part in copy.walk())
