"""A round's matching end to end: the operator's `mailflow match`, a coordinator's MATCH and
CONFIRM (in process), and the introductions each partner receives."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Person, body, command, run_cli, start_in_process
from tests.people import COORDINATOR, PEOPLE, roster


def test_dry_run_previews_and_changes_nothing(home, tmp_path):
    assert run_cli(home, "import", str(roster(tmp_path))).returncode == 0
    result = run_cli(home, "match", "--dry-run")
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "pairs: 4 of the 4 possible" in out
    assert re.search(r"quality: \d+\.\d%", out)
    assert "weakest pairs:" in out
    partnerships = run_cli(home, "export", "--partnerships").stdout.decode().splitlines()
    assert partnerships == ["round,email_a,email_b,email_c,start,end,status,score"]
    assert not (home / "outbox" / "new").exists()


def test_match_pairs_everyone_abroad_and_introduces_them(home, tmp_path):
    command(home, "import", str(roster(tmp_path)))
    result = command(home, "match")
    assert "Round 1 matched: 4 partnerships" in result
    rows = command(home, "export", "--partnerships").splitlines()[1:]
    countries = {email: country for email, _, country, *_ in PEOPLE}
    pairs = [row.split(",")[1:3] for row in rows]
    assert len(pairs) == 4
    for a, b in pairs:
        assert countries[a] != countries[b]
    # The two who alone share a rare interest are partners.
    assert ["ann@uni.example.edu", "chen@lib.example.cn"] in [sorted(p) for p in pairs]
    assert all(row.split(",")[6] == "active" for row in rows)
    assert rows[0].split(",")[4].startswith("2026-03-02")
    assert rows[0].split(",")[5].startswith("2026-07-02")  # four calendar months
    mails = sorted((home / "outbox" / "new").iterdir())
    assert len(mails) == 8
    intro = next(m.read_text() for m in mails if "To: Ann Okafor" in m.read_text())
    assert "X-Mailflow-Template: match-intro" in intro
    assert "Chen Jing <chen@lib.example.cn>" in intro
    assert "Country: China" in intro
    assert "7 hours ahead of you" in intro
    assert "What you share: palaeography" in intro
    assert "Where do you work" in intro and "How often would you like to be in touch" in intro
    assert "Auto-Submitted: auto-generated" in intro
    statuses = command(home, "export")
    assert statuses.count(",matched,") == 8


def test_the_odd_one_out_is_told(home, tmp_path):
    people = [p for p in PEOPLE if p[2] in ("Nigeria", "China", "Sweden")]
    people.append(("kofi@lib.example.ng", "Kofi Ade", "Nigeria", "public", "reading", "Lagos"))
    people.append(("ngozi@lib.example.ng", "Ngozi Eze", "Nigeria", "public", "reading", "Lagos"))
    command(home, "import", str(roster(tmp_path, people)))
    out = command(home, "match")
    assert "waiting for Round 2" in out
    mails = [m.read_text() for m in (home / "outbox" / "new").iterdir()]
    templates = sorted(re.search(r"X-Mailflow-Template: (\S+)", m).group(1) for m in mails)
    # Three of five live in Nigeria: two pairs abroad, and no group of three can avoid
    # putting two Nigerians together, so one waits and is told why.
    assert templates == ["match-intro"] * 4 + ["match-waitlisted"]
    waitlisted = next(m for m in mails if "match-waitlisted" in m)
    assert "could not give you a partner this time" in waitlisted
    assert "first in line" in waitlisted


@pytest.fixture
def imported(home, tmp_path):
    """The roster imported, not matched; in process with COORDINATOR configured."""
    command(home, "import", str(roster(tmp_path)))
    program = start_in_process(home, MAILFLOW_COORDINATORS=COORDINATOR)
    yield program
    program.stop()


def test_a_coordinator_previews_then_confirms_the_matching(imported):
    coordinator = Person(imported, COORDINATOR, "Coordinator")
    confirm = coordinator.say("MATCH", expect="command-confirm")
    text = body(confirm)
    assert "Nothing has changed yet" in text
    assert "pairs: 4 of the 4 possible" in text
    assert re.search(r"quality: \d+\.\d%", text)
    assert imported.query("SELECT * FROM partnerships") == []
    result = coordinator.reply(confirm, "CONFIRM", expect="command-result")
    assert "Round 1 matched: 4 partnerships" in body(result)
    assert len(imported.query("SELECT * FROM partnerships")) == 4
    intros = imported.query("SELECT recipient FROM outbox WHERE template = 'match-intro'")
    assert len(intros) == 8


def test_only_the_coordinator_can_confirm_and_cancel_changes_nothing(imported):
    coordinator = Person(imported, COORDINATOR)
    forger = Person(imported, "mallory@evil.example")
    confirm = coordinator.say("MATCH", expect="command-confirm")
    forger.reply(confirm, "CONFIRM", expect="token-expired")
    assert imported.query("SELECT * FROM partnerships") == []
    cancelled = coordinator.reply(confirm, "CANCEL", expect="command-result")
    assert "nothing was changed" in body(cancelled)
    assert imported.query("SELECT * FROM partnerships") == []
    coordinator.reply(confirm, "CONFIRM", expect="token-expired")  # single use
    assert imported.query("SELECT * FROM partnerships") == []


def test_match_from_a_participant_is_refused_and_shows_nothing(imported):
    refused = Person(imported, "ann@uni.example.edu").say("MATCH", expect="command-refused")
    assert "nothing was done" in body(refused)
    assert "Chen" not in body(refused) and "pairs:" not in body(refused)
    assert imported.query("SELECT * FROM partnerships") == []


def test_coordinators_get_their_own_help(imported):
    text = body(Person(imported, COORDINATOR).say("HELP", expect="help"))
    assert "You are a coordinator" in text
    assert "MATCH" in text
