"""STATS figures on a real store: eight people matched in Round 1 and checked in on by the
real scheduler, three applicants of Round 2, one person who asked to be erased; then the
figures, their text for a phone and the chart."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, datetime

import pytest
from PIL import Image

from mailflow import config
from mailflow.app import membership, roster
from mailflow.conversation.coordinator.read import stats_chart, stats_text
from mailflow.matching import matchmaker
from mailflow.model import stats
from mailflow.program import Program
from mailflow.rulebook.cadence import load_cadence
from mailflow.schedule import scheduler
from tests.people import HEADER, PEOPLE

MATCHED_AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = datetime(2026, 4, 16, 9, tzinfo=UTC)
NEWCOMERS = [
    ("kofi@lib.example.ng", "Kofi Ade", "Nigeria", "public", "reading", "Lagos"),
    ("ngozi@lib.example.ng", "Ngozi Eze", "Nigeria", "public", "reading", "Lagos"),
    ("wanjiru@lib.example.ke", "Wanjiru Kamau", "Kenya", "academic", "metadata", "Nairobi"),
    ("zed@lib.example.ng", "Zed Obi", "Nigeria", "school", "reading", "Lagos"),  # erased
]
# (email, check-in number, answer): eight members got check-ins 1 and 2 from the scheduler.
ANSWERS = [
    ("ann@uni.example.edu", 1, 1),
    ("bo@lib.example.se", 1, 2),
    ("chen@lib.example.cn", 1, 3),
    ("dee@lib.example.au", 1, 1),
    ("eli@lib.example.br", 1, 4),
    ("ann@uni.example.edu", 2, 1),
    ("bo@lib.example.se", 2, 1),
]
# (email, rating, would sign up again)
SURVEY = [
    ("ann@uni.example.edu", 5, 1),
    ("bo@lib.example.se", 4, 0),
    ("chen@lib.example.cn", 2, None),
    ("dee@lib.example.au", None, 1),
]


def csv_text(people) -> str:
    rows = [HEADER] + [
        f'{email},{name},{country},Librarian,{kind},early career,"{interests}",English,{zone},'
        f"email,monthly,I work in a library.,"
        for email, name, country, kind, interests, zone in people
    ]
    return "\n".join(rows) + "\n"


def open_program(home) -> Program:
    cfg = config.load(
        {"MAILFLOW_HOME": str(home / "var"), "MAILFLOW_NOW": "2026-03-02T09:00:00Z"}, cwd=home
    )
    return Program(cfg)


def person(program: Program, email: str) -> int:
    return program.db.execute("SELECT id FROM participants WHERE email = ?", [email]).fetchone()[0]


def partnership_of(program: Program, participant_id: int) -> int:
    return program.db.execute(
        "SELECT id FROM partnerships WHERE ? IN (member_a, member_b, member_c)", [participant_id]
    ).fetchone()[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The program at NOW, and the plan Round 1 was matched by."""
    home = tmp_path_factory.mktemp("stats")
    program = open_program(home)
    assert roster.import_csv(program, csv_text(PEOPLE), MATCHED_AT).added == 8
    plan = matchmaker.plan(program, MATCHED_AT)
    matchmaker.carry_out(program, plan, MATCHED_AT)
    db = program.db
    # Check-in 1 falls due on 16 March, check-in 2 on 15 April; on 23 March those who have
    # not answered get a reminder, which is not a check-in of its own.
    scheduler.tick(program, datetime(2026, 3, 17, 9, tzinfo=UTC))
    for email, number, answer in ANSWERS:
        if number == 1:
            add_answer(program, email, number, answer)
    assert scheduler.tick(program, datetime(2026, 3, 23, 9, tzinfo=UTC))["checkin-reminder"] == 3
    assert scheduler.tick(program, NOW)["checkin"] == 8
    for email, number, answer in ANSWERS:
        if number == 2:
            add_answer(program, email, number, answer)
    for email, rating, again in SURVEY:
        q = person(program, email)
        db.execute(
            "INSERT INTO survey_answers (partnership_id, participant_id, rating, again,"
            " answered_at) VALUES (?, ?, ?, ?, ?)",
            [partnership_of(program, q), q, rating, again, NOW.isoformat()],
        )
    db.execute("UPDATE participants SET status = 'paused' WHERE email = 'gus@lib.example.de'")
    db.execute("UPDATE participants SET status = 'left' WHERE email = 'hana@lib.example.jp'")
    assert roster.import_csv(program, csv_text(NEWCOMERS), NOW).round == "Round 2"
    membership.erase(program, "zed@lib.example.ng", NOW, load_cadence(program.config.rules))
    yield program, plan
    program.close()


def add_answer(program: Program, email: str, number: int, answer: int) -> None:
    q = person(program, email)
    program.db.execute(
        "INSERT INTO checkin_answers (partnership_id, participant_id, number, answer,"
        " answered_at) VALUES (?, ?, ?, ?, ?)",
        [partnership_of(program, q), q, number, answer, NOW.isoformat()],
    )


def mean_score(plan, emails=None) -> float:
    people = {record["email"]: q for q, record in plan.people.items()}
    wanted = {people[e] for e in emails} if emails else None
    scores = [p.score for p in plan.result.pairs if wanted is None or wanted & set(p.members)]
    return sum(scores) / len(scores)


def test_whole_program(store):
    program, plan = store
    f = stats.figures(program.db, NOW)
    assert f.at == NOW and f.countries is None
    assert f.total == 11  # eight in Round 1, three applicants; the erased row is not counted
    assert f.by_status == (
        ("applied", 3),
        ("waiting", 0),
        ("matched", 6),
        ("paused", 1),
        ("left", 1),
        ("completed", 0),
        ("unreachable", 0),
    )
    assert f.by_country == (
        ("Nigeria", 3),
        ("Australia", 1),
        ("Brazil", 1),
        ("Canada", 1),
        ("China", 1),
        ("Germany", 1),
        ("Japan", 1),
        ("Kenya", 1),
        ("Sweden", 1),
    )
    assert f.by_continent == (
        ("Africa", 4),
        ("Asia", 2),
        ("Europe", 2),
        ("North America", 1),
        ("Oceania", 1),
        ("South America", 1),
    )
    assert f.current_round == stats.CurrentRound("Round 2", 3, None)
    matched = f.matched_round
    assert (matched.name, matched.active_partnerships) == ("Round 1", 4)
    assert matched.term_start == MATCHED_AT
    assert matched.term_end == datetime(2026, 7, 2, 9, tzinfo=UTC)
    assert matched.mean_score == pytest.approx(mean_score(plan))
    # Two check-ins to each of eight; reminders are not counted as check-ins.
    assert f.checkins == stats.CheckIns(16, 7, ((1, 4), (2, 1), (3, 1), (4, 1)))
    assert f.checkins.rate == pytest.approx(7 / 16)
    assert f.survey.answers == 4
    assert f.survey.mean_rating == pytest.approx(11 / 3)  # Dee gave no rating
    assert f.survey.again_share == pytest.approx(2 / 3)  # Chen gave no yes or no


def test_a_country_coordinator_sees_only_their_countries(store):
    program, plan = store
    f = stats.figures(program.db, NOW, frozenset({"NG", "se"}))
    assert f.countries == frozenset({"NG", "SE"})
    assert f.total == 4
    assert dict(f.by_status) == {
        "applied": 2,
        "waiting": 0,
        "matched": 2,
        "paused": 0,
        "left": 0,
        "completed": 0,
        "unreachable": 0,
    }
    assert f.by_country == (("Nigeria", 3), ("Sweden", 1))
    assert f.by_continent == (("Africa", 3), ("Europe", 1))
    assert f.current_round.applications == 2
    # Ann's and Bo's partnerships, each counted once although their partners are abroad.
    assert f.matched_round.active_partnerships == 2
    emails = ["ann@uni.example.edu", "bo@lib.example.se"]
    assert f.matched_round.mean_score == pytest.approx(mean_score(plan, emails))
    assert f.checkins == stats.CheckIns(4, 4, ((1, 3), (2, 1), (3, 0), (4, 0)))
    assert f.survey == stats.Survey(2, 4.5, 0.5)


def test_a_country_with_nobody_counts_nothing(store):
    program, _ = store
    f = stats.figures(program.db, NOW, frozenset({"FR"}))
    assert f.total == 0 and f.by_country == () and f.by_continent == ()
    assert all(count == 0 for _, count in f.by_status)
    assert f.current_round == stats.CurrentRound("Round 2", 0, None)
    assert f.matched_round.active_partnerships == 0
    assert f.matched_round.mean_score is None
    assert f.checkins == stats.CheckIns(0, 0, ((1, 0), (2, 0), (3, 0), (4, 0)))
    assert f.checkins.rate is None
    assert f.survey == stats.Survey(0, None, None)


def test_erased_rows_are_never_counted(store):
    program, _ = store
    db = program.db
    erased = db.execute(
        "SELECT status, country FROM participants WHERE email LIKE '%@erased.invalid'"
    ).fetchall()
    assert erased == [("left", "")]  # the row is still there, emptied
    # Whatever is still tied to the row's id (here put back by hand) is not counted either.
    zed = db.execute("SELECT id FROM participants WHERE email LIKE '%@erased.invalid'").fetchone()
    ann = person(program, "ann@uni.example.edu")
    db.execute("UPDATE participants SET country = 'NG' WHERE id = ?", [zed[0]])
    db.execute(
        "INSERT INTO survey_answers (partnership_id, participant_id, rating, again, answered_at)"
        " VALUES (?, ?, 1, 0, ?)",
        [partnership_of(program, ann), zed[0], NOW.isoformat()],
    )
    try:
        for countries in (None, frozenset({"NG"})):
            f = stats.figures(db, NOW, countries)
            assert dict(f.by_status)["left"] == (1 if countries is None else 0)
            assert dict(f.by_country)["Nigeria"] == 3
            assert f.survey.answers == (4 if countries is None else 1)
    finally:
        db.execute("DELETE FROM survey_answers WHERE participant_id = ?", [zed[0]])
        db.execute("UPDATE participants SET country = '' WHERE id = ?", [zed[0]])


def test_a_new_program_and_a_closing_date(tmp_path):
    program = open_program(tmp_path)
    try:
        f = stats.figures(program.db, MATCHED_AT)
        assert f.total == 0
        assert f.current_round == stats.CurrentRound("Round 1", 0, None)
        assert f.matched_round is None
        assert "open until matched" in stats_text(program, f)
        assert "none yet" in stats_text(program, f)
        program.db.execute("UPDATE rounds SET closes_at = '2026-03-20T00:00:00+00:00'")
        f = stats.figures(program.db, MATCHED_AT)
        assert f.current_round.closes_at == datetime(2026, 3, 20, tzinfo=UTC)
        assert re.search(r"^  closes +2026-03-20$", stats_text(program, f), re.M)
        later = stats_text(program, stats.figures(program.db, datetime(2026, 3, 21, tzinfo=UTC)))
        assert re.search(r"^  closed +2026-03-20$", later, re.M)
        rounds = program.db.execute("SELECT count(*) FROM rounds").fetchone()[0]
        assert rounds == 1  # reading the figures never opens a round
    finally:
        program.close()


def test_text_reads_on_a_phone(store):
    program, plan = store
    text = stats_text(program, stats.figures(program.db, NOW))
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[:2] == ["Program figures", "at 2026-04-16 09:00 UTC"]
    for heading in (
        "By status",
        "By continent",
        "By country",
        "Round accepting applications",
        "Latest matched round",
        "Check-ins",
        "End-of-term survey",
    ):
        assert heading in lines
    figure = {
        "Participants": "11",
        "  applied": "3   27%",
        "  matched": "6   55%",
        "  unreachable": "0    0%",
        "  Africa": "4   36%",
        "  Nigeria": "3   27%",
        "  applications": "3",
        "  active partnerships": "4",
        "  term": "2026-03-02 to 2026-07-02",
        "  mean score": f"{mean_score(plan):.1f}",
        "  sent": "16",
        "  answered": "7   44%",
        "  1 regular contact": "4   57%",
        "  4 wants to leave": "1   14%",
        "  answers": "4",
        "  mean rating (1-5)": "3.7",
        "  would sign up again": "67%",
    }
    for label, value in figure.items():
        assert re.search(rf"^{re.escape(label)} +{re.escape(value)}$", text, re.M), label
    # Numbers end in one column, whatever the section.
    assert len({line.rfind("6") for line in lines if line.endswith((" 16", " 6   55%"))}) == 1
    assert "  Round 2" in lines and "  Round 1" in lines
    assert "*" not in text and "#" not in text  # plain text, no markdown


def test_text_shows_the_top_fifteen_countries_and_wraps_long_names(store):
    program, _ = store
    f = stats.figures(program.db, NOW, frozenset({"NG", "SE"}))
    long_name = "South Georgia and the South Sandwich Islands"
    countries = ((long_name, 30), *((f"Country {n:02}", 20 - n) for n in range(19)))
    text = stats_text(program, dataclasses.replace(f, total=300, by_country=countries))
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert "  and 5 more countries" in lines
    assert "  Country 13" in text and "Country 14" not in text
    at = lines.index(f"  {long_name}")
    assert re.fullmatch(r" +30 +10%", lines[at + 1])
    assert "Countries: Nigeria, Sweden" in lines


def test_chart_is_a_small_deterministic_png(store):
    program, _ = store
    f = stats.figures(program.db, NOW)
    png = stats_chart(program, f)
    assert png == stats_chart(program, f)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 20_000
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width == stats.CHART_WIDTH <= 600
    # Six continents and seven statuses: one row each, under a title per panel.
    rows = 7 + 6
    assert image.height == 3 * stats.MARGIN + 2 * stats.TITLE + rows * stats.ROW
    # The longest bar of each panel is as long as the room allows; a panel with fewer
    # people draws different bars.
    pixels = image.convert("RGB")
    matched_row = stats.MARGIN + stats.TITLE + 2 * stats.ROW + stats.BAR_HEIGHT // 2
    left = stats.MARGIN + stats.LABEL_WIDTH
    assert pixels.getpixel((left + 200, matched_row)) != (255, 255, 255)
    waiting_row = matched_row - stats.ROW
    assert pixels.getpixel((left + 200, waiting_row)) == (255, 255, 255)
    other = stats_chart(program, stats.figures(program.db, NOW, frozenset({"NG"})))
    assert other != png and len(other) < 20_000


def test_figures_add_up_over_thousands_of_rows(tmp_path):
    """12,000 participants in bulk: every group adds up (the speed is bench/coordinators.py's)."""
    program = open_program(tmp_path)
    try:
        codes = ["NG", "SE", "BR", "JP", "KE", "AQ"]
        rows = [(f"p{n}@example.org", codes[n % 6], stats.STATUSES[n % 7]) for n in range(12_000)]
        with program.db.conn:
            program.db.conn.executemany(
                "INSERT INTO participants (email, name, country, role, library_type,"
                " career_stage, interests, languages, time_zone, contact_methods,"
                " contact_frequency, about_me, status, created_at, updated_at)"
                " VALUES (?, 'x', ?, '', '', '', '', '', 'UTC', '', '', '', ?, '', '')",
                rows,
            )
        f = stats.figures(program.db, NOW)
        assert f.total == 12_000
        assert dict(f.by_status)["applied"] == 1_715
        assert dict(f.by_continent) == {
            "Africa": 4_000,
            "Europe": 2_000,
            "South America": 2_000,
            "Asia": 2_000,
            "Other": 2_000,  # Antarctica: none of the continents wishes.py knows
        }
    finally:
        program.close()
