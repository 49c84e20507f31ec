"""The rules files' one reader: every mistake a RulesError naming file, section and key;
each file read once and again only when it changes; and on the command line, an
operator's mistake is one line while a bug keeps its traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from mailflow import config as configuration
from mailflow.errors import MailflowError, RulesError, SettingError
from mailflow.program import Program, Rules
from mailflow.read import form
from mailflow.rulebook import Shelf
from mailflow.rulebook.cadence import load_cadence
from mailflow.rulebook.regions import load_regions
from mailflow.rulebook.term import term_months
from mailflow.rulebook.topics import load_topics
from mailflow.rulebook.weights import load_weights
from tests.conftest import run_cli

RULES = Path(__file__).resolve().parents[1] / "rules"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules, for a test to break."""
    return Path(shutil.copytree(RULES, tmp_path / "rules"))


def rewrite(path: Path, text: str) -> None:
    """Write `text` and move the modification time on, as a coordinator's later save would:
    two writes within one tick of the file system's clock may share a time."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


# --- one error style ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "load", "section", "key"),
    [
        ("schedule.toml", "[checkin]\nevery_days = 0\n", load_cadence, "[checkin]", "every_days"),
        ("matching.toml", '[score]\npair = "high"\n', load_weights, "[score]", "pair"),
        ("matching.toml", "[time]\nwaking_hours = [9]\n", load_weights, "[time]", "waking_hours"),
        (
            "regions.toml",
            '[regions.Nordic]\ncountries = "SE"\n',
            load_regions,
            "[regions.Nordic]",
            "countries",
        ),
        (
            "regions.toml",
            '[regions."Latin America"]\ncountries = ["MX"]\nnames = "latam"\n',
            load_regions,
            '[regions."Latin America"]',
            "names",
        ),
        ("program.toml", "[round]\nterm_months = 30\n", term_months, "[round]", "term_months"),
        ("program.toml", "[round]\n", term_months, "[round]", "term_months"),
        (
            "form.toml",
            "[library_types]\nacademic = 'university'\n[career_stages]\na = []\n"
            "[contact_methods]\na = []\n[contact_frequencies]\na = []\n",
            form.load_choices,
            "[library_types]",
            "'academic'",
        ),
    ],
)
def test_a_wrong_value_names_the_file_the_section_and_the_key(
    rules, file, text, load, section, key
):
    path = rules / file
    rewrite(path, text)
    with pytest.raises(RulesError) as raised:
        load(rules)
    message = str(raised.value)
    assert message.startswith(f"{path}: {section} {key} "), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("file", "load", "known"),
    [
        ("schedule.toml", load_cadence, "[checkin]"),
        ("matching.toml", load_weights, "[score]"),
        ("regions.toml", load_regions, "[regions]"),
        ("program.toml", term_months, "[round]"),
        ("form.toml", form.load_choices, "[library_types]"),
    ],
)
def test_an_unknown_section_is_named_alike_in_every_file(rules, file, load, known):
    path = rules / file
    rewrite(path, path.read_text(encoding="utf-8") + "\n[colours]\nred = 1\n")
    with pytest.raises(RulesError) as raised:
        load(rules)
    assert str(raised.value).startswith(f"{path}: unknown section [colours]; the sections are ")
    assert known in str(raised.value)


@pytest.mark.parametrize(
    ("file", "section", "line", "load"),
    [
        ("schedule.toml", "checkin", "weekly = 3", load_cadence),
        ("matching.toml", "score", "same_libary_type = 10", load_weights),
        ("program.toml", "round", "term_weeks = 3", term_months),
    ],
)
def test_an_unknown_key_is_named_alike_in_every_file(tmp_path, file, section, line, load):
    path = tmp_path / file
    rewrite(path, f"[{section}]\n{line}\n")
    with pytest.raises(RulesError) as raised:
        load(tmp_path)
    key = line.split(" = ")[0]
    assert str(raised.value).startswith(f"{path}: [{section}] has no key {key!r}; it has ")


def test_the_topics_name_the_file_the_topic_and_the_key(rules):
    path = rules / "topics.toml"
    rewrite(path, "[[topic]]\ntitle = 'Spaces'\ntext = 3\n")
    with pytest.raises(RulesError, match=r"topic 1: text must be some text") as raised:
        load_topics(rules)
    assert str(raised.value).startswith(str(path))


@pytest.mark.parametrize(
    "load", [load_cadence, load_topics, form.load_choices, term_months], ids=lambda f: f.__name__
)
def test_a_missing_or_broken_file_is_a_rules_error_naming_it(tmp_path, load):
    with pytest.raises(RulesError, match="cannot be read"):
        load(tmp_path)
    for name in ("schedule.toml", "topics.toml", "form.toml", "program.toml"):
        rewrite(tmp_path / name, "[broken\n")
    with pytest.raises(RulesError, match="not valid TOML") as raised:
        load(tmp_path)
    assert str(raised.value).startswith(str(tmp_path))


def test_rules_and_settings_errors_are_the_operators_and_still_value_errors():
    for kind in (RulesError, SettingError):
        assert issubclass(kind, MailflowError) and issubclass(kind, ValueError)
    assert not issubclass(KeyError, MailflowError)
    with pytest.raises(SettingError, match="MAILFLOW_MAX_SIZE must be a whole number"):
        configuration.load({"MAILFLOW_MAX_SIZE": "ten"}, Path.cwd())
    with pytest.raises(SettingError, match="MAILFLOW_HTTP_LISTEN must be host:port"):
        configuration.load({"MAILFLOW_HTTP_LISTEN": "localhost:web"}, Path.cwd())


# --- read once, again when changed ------------------------------------------------------


def test_a_file_is_read_once_however_often_it_is_asked_for(rules):
    reads = []

    def counted(folder: Path):
        reads.append(folder)
        return load_cadence(folder)

    shelf = Shelf(rules)
    first = shelf.get("schedule.toml", counted)
    for _ in range(100):  # as many STOPs, bounces and "no word" answers
        assert shelf.get("schedule.toml", counted) is first
    assert reads == [rules]


def test_an_edited_file_is_read_again_and_a_broken_one_until_it_is_mended(rules):
    shelf = Rules(rules)
    before = shelf.cadence
    assert shelf.cadence is before
    path = rules / "schedule.toml"
    shipped = path.read_text(encoding="utf-8")
    rewrite(path, shipped.replace("every_days = 30", "every_days = 21"))
    after = shelf.cadence
    assert after is not before
    assert (before.checkin_every_days, after.checkin_every_days) == (30, 21)
    assert shelf.cadence is after

    rewrite(path, "[checkin]\nevery_days = 0\n")
    for _ in range(2):  # not kept: each use says so, until it is put right
        with pytest.raises(RulesError, match=r"\[checkin\] every_days"):
            _ = shelf.cadence
    rewrite(path, shipped)
    assert shelf.cadence == before


def test_a_file_that_appears_or_goes_is_noticed(tmp_path):
    shelf = Rules(tmp_path)
    assert shelf.weights.same_library_type == 15  # no matching.toml: the defaults
    rewrite(tmp_path / "matching.toml", "[score]\nsame_library_type = 40\n")
    assert shelf.weights.same_library_type == 40
    (tmp_path / "matching.toml").unlink()
    assert shelf.weights.same_library_type == 15


def test_the_programs_of_a_process_share_one_reading(tmp_path, rules):
    environ = {"MAILFLOW_HOME": str(tmp_path / "home"), "MAILFLOW_RULES": str(rules)}
    config = configuration.load(environ, tmp_path)
    one, two = Program(config), Program(config)
    try:
        assert one.rules is two.rules
        assert one.rules.cadence is two.rules.cadence
        assert one.choices is two.rules.choices
        assert one.rules.term_months == 4
        assert "Scandinavia" in one.rules.regions.of("SE")
        assert one.rules.topics == load_topics(RULES)
    finally:
        one.close()
        two.close()


# --- the command line -------------------------------------------------------------------


def test_a_bad_setting_or_rules_file_is_one_line(tmp_path, rules):
    home = tmp_path / "home"
    run = run_cli(home, "migrate", MAILFLOW_MAX_SIZE="ten")
    assert run.returncode == 2
    assert run.stderr.decode().strip() == (
        "mailflow migrate: MAILFLOW_MAX_SIZE must be a whole number, not 'ten'"
    )
    rewrite(rules / "schedule.toml", "[checkin]\nevery_days = 0\n")
    run = run_cli(home, "schedule", MAILFLOW_RULES=str(rules))
    assert run.returncode == 2
    [line] = run.stderr.decode().strip().splitlines()
    assert line.startswith(f"mailflow schedule: {rules / 'schedule.toml'}: [checkin] every_days")


def test_a_bug_keeps_its_traceback(tmp_path):
    home = tmp_path / "home"
    assert run_cli(home, "migrate").returncode == 0
    # A store no migration would leave: the code that reads it fails, as a bug would.
    with sqlite3.connect(home / "mailflow.db") as db:
        db.execute("DELETE FROM settings WHERE key = 'message_id_secret'")
    run = run_cli(home, "audit")
    assert run.returncode == 1
    stderr = run.stderr.decode()
    assert "Traceback (most recent call last)" in stderr
    assert "TypeError" in stderr
    assert "mailflow audit:" not in stderr
