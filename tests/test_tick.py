"""The rules engine from the command line: `mailflow tick` sends check-ins and topics when
they fall due, once, and `mailflow schedule` shows what is coming."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailflow.config import parse_time
from mailflow.rulebook.cadence import Cadence, latest_due, load_cadence
from tests.conftest import Person, command, run_cli, start_daemon, start_in_process, tick, until
from tests.mailbox import scheduled
from tests.people import PEOPLE

RULES = Path(__file__).resolve().parents[1] / "rules"


def test_nothing_is_sent_before_the_first_check_in_is_due(matched):
    # The command itself, in a process of its own; the other tests call its function.
    result = run_cli(matched, "tick", "--now", "2026-03-15T23:59:00Z")
    assert result.returncode == 0, result.stderr.decode()
    assert "nothing due" in result.stdout.decode()
    assert scheduled(matched, "checkin") == [] and scheduled(matched, "topic") == []


def test_the_first_check_in_goes_to_everyone_once_fourteen_days_after_the_introduction(matched):
    assert "checkin: 8" in tick(matched, "2026-03-16T09:00:00Z")
    checkins = scheduled(matched, "checkin")
    assert sorted(m["To"].addresses[0].addr_spec for m in checkins) == sorted(p[0] for p in PEOPLE)
    ann = next(m for m in checkins if m["To"].addresses[0].addr_spec == "ann@uni.example.edu")
    text = ann.get_content()
    assert "check-in 1" in ann["Subject"]
    assert "Chen Jing" in text  # her partner, named
    assert "1  we are in regular contact" in text and "4  I want to leave" in text
    assert "2026-07-02" in text  # the end of the term
    assert "+" in ann["Reply-To"].addresses[0].addr_spec  # a reply is tied to this check-in
    assert ann["Auto-Submitted"] == "auto-generated"

    # The same tick again, and a later one the same day, send nothing more.
    assert "nothing due" in tick(matched, "2026-03-16T09:00:00Z")
    assert "nothing due" in tick(matched, "2026-03-16T18:00:00Z")
    assert len(scheduled(matched, "checkin")) == 8


def test_topics_come_on_the_first_weekday_of_each_month_in_the_rules_order(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    assert "topic" not in tick(matched, "2026-03-31T23:00:00Z")
    assert "topic: 8" in tick(matched, "2026-04-01T06:00:00Z")  # Wednesday 1 April
    first = scheduled(matched, "topic")
    assert {m["Subject"] for m in first} == {
        "This month's topic: Library spaces you love, and loathe"
    }
    assert "Send each other a photo" in first[0].get_content()
    # 1 August 2026 is a Saturday, but the term ends on 2 July: June's topic is the third.
    tick(matched, "2026-05-01T06:00:00Z")
    assert "topic: 8" in tick(matched, "2026-06-01T06:00:00Z")
    subjects = [m["Subject"] for m in scheduled(matched, "topic")]
    assert subjects.count("This month's topic: Library advocacy and lobbying") == 8


def test_after_downtime_only_the_latest_of_each_kind_is_sent_and_stale_ones_are_skipped(matched):
    # Nothing ran from the introduction until 20 May: check-ins 1 (16 March) and 2 (15 April)
    # were missed, 3 (15 May) is five days late, within the rules' seven; May's topic
    # (1 May) is nineteen days late and is skipped.
    out = tick(matched, "2026-05-20T12:00:00Z")
    assert "checkin: 8" in out and "topic" not in out
    checkins = scheduled(matched, "checkin")
    assert len(checkins) == 8
    assert all("check-in 3" in m["Subject"] for m in checkins)
    assert scheduled(matched, "topic") == []
    assert "topic: 8" in tick(matched, "2026-06-01T06:00:00Z")
    assert {m["Subject"] for m in scheduled(matched, "topic")} == {
        "This month's topic: Library advocacy and lobbying"
    }


def test_nothing_is_sent_after_the_term_or_to_someone_who_is_not_taking_part(matched):
    with sqlite3.connect(matched / "mailflow.db") as db:
        db.execute("UPDATE participants SET status = 'paused' WHERE email = 'ann@uni.example.edu'")
    assert "checkin: 7" in tick(matched, "2026-03-16T09:00:00Z")
    assert "ann@uni.example.edu" not in {
        m["To"].addresses[0].addr_spec for m in scheduled(matched, "checkin")
    }
    checkins, topics = len(scheduled(matched, "checkin")), len(scheduled(matched, "topic"))
    out = tick(matched, "2026-07-14T09:00:00Z")  # past the term's end: only the end itself
    assert "checkin:" not in out and "topic:" not in out and "term-ended: 8" in out
    assert len(scheduled(matched, "checkin")) == checkins
    assert len(scheduled(matched, "topic")) == topics


def test_schedule_lists_what_is_coming_without_sending_it(matched):
    result = run_cli(matched, "schedule", "--days", "31", MAILFLOW_NOW="2026-03-02T10:00:00Z")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("16 scheduled mail(s)")
    assert sum("2026-03-16  checkin          #1" in line for line in lines) == 8
    assert sum("2026-04-01  topic            #1" in line for line in lines) == 8
    assert scheduled(matched, "checkin") == []


def test_a_broken_schedule_file_stops_the_tick_with_the_key_named(matched):
    rules = matched.parent / "rules"
    rules.mkdir(exist_ok=True)
    for path in RULES.iterdir():
        (rules / path.name).write_bytes(path.read_bytes())
    (rules / "schedule.toml").write_text("[checkin]\nevery_days = 0\n", encoding="utf-8")
    result = run_cli(matched, "tick", MAILFLOW_RULES=str(rules))
    assert result.returncode != 0
    assert "[checkin] every_days must be a whole number of days from 1 to 365, not 0" in (
        result.stderr.decode()
    )


def test_the_shipped_cadence_is_the_programs_usual_one():
    assert load_cadence(RULES) == Cadence(
        checkin_first_after_days=14,
        checkin_every_days=30,
        reminder_after_days=5,
        topics=True,
        alert_no_word_answers=2,
        alert_silent_days=21,
        rematch_min_days_left=30,
        invitation_after_term_days=14,
        skip_after_days=7,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[checkin]\nfirst_after_days = 'two weeks'\n", "first_after_days must be a whole number"),
        ("[checkin]\nweekly = 3\n", "[checkin] has no key 'weekly'"),
        ("[reminders]\nafter_days = 5\n", "unknown section [reminders]"),
        ("[alert]\nno_word_answers = 0\n", "a whole number of answers from 1 to 12, not 0"),
        ("[topic]\nfirst_weekday_of_month = 'yes'\n", "must be true or false"),
        ("[late]\nskip_after_days = -1\n", "skip_after_days must be a whole number of days"),
        ("[checkin\n", "not valid TOML"),
    ],
)
def test_a_broken_schedule_file_names_the_key(tmp_path, text, problem):
    (tmp_path / "schedule.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_cadence(tmp_path)
    assert problem in str(error.value)


def test_check_ins_run_every_thirty_days_within_the_term():
    cadence = Cadence()
    start, end = parse_time("2026-03-02T09:00:00Z"), parse_time("2026-07-02T09:00:00Z")
    assert [t.date().isoformat() for t in cadence.checkins(start, end)] == [
        "2026-03-16",
        "2026-04-15",
        "2026-05-15",
        "2026-06-14",
    ]
    assert [t.date().isoformat() for t in cadence.topic_days(start, end)] == [
        "2026-04-01",
        "2026-05-01",
        "2026-06-01",
        "2026-07-01",
    ]
    times = cadence.checkins(start, end)
    assert latest_due(times, parse_time("2026-03-16T08:59:00Z"), cadence.late) is None
    assert latest_due(times, parse_time("2026-04-20T00:00:00Z"), cadence.late) == 2
    assert latest_due(times, parse_time("2026-04-30T00:00:00Z"), cadence.late) is None


def test_serve_runs_the_rules_on_its_own(matched):
    daemon = start_daemon(matched, MAILFLOW_NOW="2026-03-16T09:00:00Z")
    try:
        until(lambda: len(scheduled(matched, "checkin")) == 8, "the first check-ins")
    finally:
        daemon.stop()
    assert "nothing due" in tick(matched, "2026-03-16T09:00:00Z")
    assert len(scheduled(matched, "checkin")) == 8


def answer_checkin(program, person: Person, text: str, expect: str):
    checkin = next(
        m
        for m in scheduled(program.home, "checkin")
        if m["To"].addresses[0].addr_spec == person.address
    )
    return person.reply(checkin, text, expect=expect)


def answers(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "mailflow.db") as db:
        rows = db.execute(
            "SELECT q.email, a.answer FROM checkin_answers a"
            " JOIN participants q ON q.id = a.participant_id WHERE a.number = 1"
        ).fetchall()
    return dict(rows)


@pytest.fixture
def checked_in(matched):
    """In process on 16 March, whose start runs the rules as `serve`'s does."""
    program = start_in_process(matched, MAILFLOW_NOW="2026-03-16T09:00:00Z")
    until(lambda: len(scheduled(matched, "checkin")) == 8, "the first check-ins")
    yield program
    program.stop()


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("1", 1),
        ("2. Some contact so far", 2),
        ("No word from my partner yet, sadly.", 3),
        ("Regular contact, we write every week!", 1),
    ],
)
def test_a_check_in_answer_above_the_quote_is_recorded_and_thanked(checked_in, text, answer):
    ann = Person(checked_in, "ann@uni.example.edu", "Ann Okafor")
    thanks = answer_checkin(checked_in, ann, text, "checkin-thanks")
    assert f"We have recorded your answer: {answer}" in thanks.get_content()
    assert answers(checked_in.home) == {"ann@uni.example.edu": answer}


def test_an_unclear_check_in_answer_is_asked_again_and_the_second_reply_counts(checked_in):
    chen = Person(checked_in, "chen@lib.example.cn", "Chen Jing")
    again = answer_checkin(checked_in, chen, "Hmm, hard to say", "checkin-unclear")
    assert '"Hmm, hard to say"' in again.get_content()
    assert "3  I have had no word from my partner" in again.get_content()
    assert answers(checked_in.home) == {}
    chen.reply(again, "3", expect="checkin-thanks")
    assert answers(checked_in.home) == {"chen@lib.example.cn": 3}


def test_schedule_also_shows_reminders_due_and_the_end_of_the_term(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    result = command(matched, "schedule", "--days", "10", MAILFLOW_NOW="2026-03-17T09:00:00Z")
    lines = result.splitlines()
    assert sum("2026-03-21  checkin-reminder #1" in line for line in lines) == 8
    assert "term-ended" not in result
    result = command(matched, "schedule", "--days", "30", MAILFLOW_NOW="2026-06-15T09:00:00Z")
    lines = result.splitlines()
    assert sum("2026-07-02  term-ended       #1" in line for line in lines) == 8
    assert sum("2026-07-01  topic            #4" in line for line in lines) == 8
