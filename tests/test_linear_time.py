"""No input costs more than linear time (issue 16, point 2; review H1).

Every function that reads text from mail is fed a megabyte of the characters that would
make a backtracking regular expression in it take quadratic time or worse: runs of spaces,
tabs, colons, asterisks, quotes, ">" quote marks, full stops and parentheses, a single
unbroken line, a million short lines, "a:" lines. Each must finish in well under a second
of CPU time; then the whole handling of a message of each shape, from the raw bytes to the
answer queued in a real SQLite store, must take under a second too.

A reader that is quadratic again runs into an alarm after a few seconds instead of hanging
the suite for hours: `_label_line("a" + 16,000 spaces + "x")` took 44 s before H1's fix,
and a megabyte would have taken days.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailflow import config as configuration
from mailflow import pipeline
from mailflow.conversation import commands
from mailflow.conversation.coordinator import rounds as _coordinator  # registers them; ROUND
from mailflow.conversation.participant import commands as _participant  # noqa: F401
from mailflow.program import Program
from mailflow.read import (
    checkin,
    classify,
    countries,
    dates,
    form,
    languages,
    parse,
    survey,
    timezones,
    trim,
    wishes,
)
from tests.conftest import PROGRAM

RULES = Path(__file__).resolve().parents[1] / "rules"
SIZE = 1_000_000
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
READER_CPU = 0.5  # seconds of CPU for one reader over one megabyte: "well under a second"
HANDLING_CPU = 1.0  # seconds of CPU for handling a whole message of a megabyte
ALARM = 5  # seconds of wall time after which a reader is taken to be stuck


def _run(unit: str, before: str = "a", after: str = "x") -> str:
    """`before`, `unit` repeated to a megabyte, `after`: one line or many."""
    return before + unit * ((SIZE - len(before) - len(after)) // len(unit)) + after


# The worst characters for the patterns that read mail: what `\s*`, `[^:]*`, `.*?` and
# their kin backtrack over, and the line shapes that multiply the work per line.
SHAPES: dict[str, str] = {
    "spaces": _run(" "),
    "tabs": _run("\t"),
    "colons": _run(":"),
    "asterisks": _run("*"),
    "quotes": _run('"'),
    "quote-marks": _run(">"),
    "quoted-lines": _run("> \n", before=""),
    "dots": _run("."),
    "parentheses": _run("("),
    "unbroken-line": _run("a"),
    "words": _run("a "),
    "short-lines": _run("a\n", before=""),
    "label-lines": _run("a:\n", before=""),
    "label-and-spaces": _run(" ", before="Name", after=":x"),
    "bold-label-spaces": _run(" ", before="**Name**", after="x"),
    "commas-and": _run(" and , "),
    "at-signs": _run("a@"),
    "brackets": _run("[e.g. "),
    "dashes": _run("-"),
    "numbers": _run("1. "),
    # Encoded words that never end: the email package's decoder rescans the line from each.
    "encoded-words": _run("=?a?q?x "),
    # Distinct lines that may be Zoho's "---- On … wrote ----" (each is read on its own):
    # the pattern that read them was cubic in a line's 400 characters.
    # Repeated keywords of a ROUND line: lazy groups between them backtracked polynomially
    # (16 KB took a minute).
    "round-keywords": _run("OPEN a CLOSE b "),
    "dash-wrapped-lines": "\n".join(f"-- On {n}" + "\t" * 380 + "x-" for n in range(2500)),
}


class Stuck(Exception):
    pass


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Stuck if the code within runs longer than `seconds` (Python's regular expressions
    look at signals as they run, so a backtracking one is stopped too)."""

    def expired(signum, frame):
        raise Stuck(f"still running after {seconds} s: not linear")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cpu_seconds(work: Callable[[], object]) -> float:
    """CPU time of `work` (the machine's other load does not count), stopped if stuck."""
    with alarm(ALARM):
        started = time.process_time()
        work()
        return time.process_time() - started


@pytest.fixture(scope="module")
def choices() -> form.Choices:
    return form.load_choices(RULES)


@pytest.fixture(scope="module")
def wish_reader(choices) -> wishes.WishReader:
    return wishes.WishReader(choices, wishes.load_regions(RULES), ["cataloguing", "outreach"])


def _message(body: str, subject: str = "hello", sender: str = "stranger@example.net") -> bytes:
    head = (
        f"From: {sender}\r\nTo: {PROGRAM}\r\nSubject: {subject}\r\n"
        "Message-ID: <shape@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return head.encode() + body.replace("\n", "\r\n").encode()


def _html(body: str) -> bytes:
    head = (
        f"From: stranger@example.net\r\nTo: {PROGRAM}\r\nSubject: hi\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
    )
    return head.encode() + f"<html><body><blockquote>{body}</blockquote></body></html>".encode()


LINE = ("spaces", "tabs", "colons", "dots", "words", "unbroken-line", "parentheses")
LINES = ("short-lines", "label-lines", "quoted-lines")
FORM = (*LINE, *LINES, "asterisks", "label-and-spaces", "bold-label-spaces", "commas-and")
ANSWER = ("spaces", "tabs", "dots", "words", "parentheses", "commas-and", "brackets")
HEADER = (
    "spaces",
    "colons",
    "quotes",
    "parentheses",
    "at-signs",
    "brackets",
    "dots",
    "encoded-words",
)

# Every reader of text that comes in mail, called as the program calls it, with the shapes
# that are worst for its patterns (each reads what a sender controls: the body, the reply
# above the quote, a line, a form answer, a header).
READERS: dict[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "commands.find": (
        lambda text, **_: (commands.find(text), commands.find(text, "coordinator")),
        LINE,
    ),
    "form.read_answers": (lambda text, **_: form.looks_like_form(text), FORM),
    "form.read_answers(about)": (lambda text, **_: form.read_answers("About me: " + text), FORM),
    # A megabyte of answers, spread over the fields as a form would have it.
    "form.validate": (
        lambda text, choices, **_: form.validate(
            dict.fromkeys(form._CHECKS, text[: SIZE // len(form._CHECKS)]), choices
        ),
        ANSWER,
    ),
    # What each check sees at most: an answer just within MAX_ANSWER.
    "form.validate(checks)": (
        lambda text, choices, **_: [
            form.validate({key: text[: form.MAX_ANSWER]}, choices) for key in form._CHECKS
        ],
        ANSWER,
    ),
    "trim.trim_reply": (
        lambda text, **_: trim.trim_reply(text),
        (
            *LINE,
            *LINES,
            "quote-marks",
            "dashes",
            "at-signs",
            "asterisks",
            "numbers",
            "dash-wrapped-lines",
        ),
    ),
    "survey.read_survey": (
        lambda text, **_: survey.read_survey(text),
        (*LINE, "short-lines", "numbers", "asterisks"),
    ),
    "dates.read_date": (lambda text, **_: dates.read_date(text, NOW), (*LINE, "numbers")),
    "timezones.normalise_time_zone": (
        lambda text, **_: timezones.normalise_time_zone(text),
        LINE,
    ),
    "languages.normalise_language": (lambda text, **_: languages.normalise_language(text), LINE),
    "countries.normalise_country": (lambda text, **_: countries.normalise_country(text), LINE),
    "countries.fold_name": (lambda text, **_: countries.fold_name(text), LINE),
    "wishes.read": (lambda text, wish_reader, **_: wish_reader.read(text), ("words", *LINES)),
    "checkin.read_answer": (lambda text, **_: checkin.read_answer(text), (*LINE, "numbers")),
    "parse.html_to_text": (lambda text, **_: parse.html_to_text(text), ("spaces", *LINES)),
    "parse.parse(body)": (
        lambda text, **_: parse.parse(_message(text), None, (PROGRAM,)),
        ("spaces", "unbroken-line", *LINES),
    ),
    "parse.parse(html)": (
        lambda text, **_: parse.parse(_html(text), None, (PROGRAM,)),
        ("spaces", "short-lines"),
    ),
    "parse.parse(subject)+classify": (
        lambda text, **_: classify.automatic(
            parse.parse(_message("hi", subject=text.replace("\n", " ")), None, (PROGRAM,))
        ),
        HEADER,
    ),
    "parse.sender_of": (
        lambda text, **_: parse.parse(
            _message("hi", sender=f'"{text.replace(chr(10), " ")}" <a@example.net>'),
            None,
            (PROGRAM,),
        ),
        HEADER,
    ),
    "coordinator.read_round_line": (
        lambda text, **_: _coordinator.read_round_line(text),
        ("round-keywords", *LINE),
    ),
    "parse.message_ids": (lambda text, **_: parse.message_ids(text), HEADER),
    "parse.address": (lambda text, **_: parse.address(text), HEADER),
}
CASES = [(reader, shape) for reader, (_, shapes) in READERS.items() for shape in shapes]


@pytest.fixture(scope="module")
def warm(choices, wish_reader) -> dict:
    """Every reader run once on ordinary text: the country, language and city tables are
    built once, and that is not the reading's cost."""
    tools = {"choices": choices, "wish_reader": wish_reader}
    for reader, _ in READERS.values():
        reader("Name: Ann\nCountry: Kenya\nTime zone: Nairobi\nLanguages: English", **tools)
    return tools


@pytest.mark.parametrize(("reader", "shape"), CASES)
def test_each_reader_is_linear_in_a_megabyte_of_its_worst_characters(warm, reader, shape):
    text = SHAPES[shape]
    spent = cpu_seconds(lambda: READERS[reader][0](text, **warm))
    assert spent < READER_CPU, f"{reader} took {spent:.2f} s of CPU on 1 MB of {shape}"


# --- the whole handling ------------------------------------------------------------------


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Iterator[Program]:
    home = tmp_path_factory.mktemp("linear") / "var"
    env = {"MAILFLOW_HOME": str(home), "MAILFLOW_ADDRESS": PROGRAM}
    config = configuration.load(env, cwd=home.parent)
    running = Program(dataclasses.replace(config, now=configuration.parse_time("2026-03-02")))
    # Warm: the tables of countries, languages and cities, and the templates.
    warm = program_raw("Name: Ann\nCountry: Kenya\nTime zone: Nairobi", 0)
    pipeline.handle(running, warm, None, [PROGRAM], "ingest")
    yield running
    running.close()


def program_raw(body: str, number: int, subject: str = "hello") -> bytes:
    return _message(body, subject=subject, sender=f"sender{number}@example.net").replace(
        b"<shape@example.net>", f"<shape{number}@example.net>".encode()
    )


# A message of each shape as a stranger writes it: as the reply, as a form's answer, as the
# first line (where commands are looked for) and as the subject.
MESSAGES: dict[str, tuple[str, str]] = {
    **{f"body-{name}": (text, "hello") for name, text in SHAPES.items()},
    **{
        f"form-{name}": ("Name: Ann\nCountry: Kenya\nAbout me: " + text, "my form")
        for name, text in SHAPES.items()
        if name in ("spaces", "label-lines", "commas-and", "parentheses", "short-lines")
    },
    "command-then-dots": ("STOP" + SHAPES["dots"], "hello"),
    "subject-spaces": ("hi", SHAPES["spaces"]),
    "subject-encoded-words": ("hi", SHAPES["encoded-words"]),
}


@pytest.mark.parametrize("name", MESSAGES)
def test_handling_a_megabyte_message_of_each_shape_takes_under_a_second(program, name):
    body, subject = MESSAGES[name]
    number = list(MESSAGES).index(name) + 1
    raw = program_raw(body, number, subject)
    outcome: list[tuple[int, str]] = []
    spent = cpu_seconds(
        lambda: outcome.append(pipeline.handle(program, raw, None, [PROGRAM], "ingest"))
    )
    [(row_id, _)] = outcome
    state = program.db.execute("SELECT state FROM messages WHERE id = ?", [row_id]).fetchone()
    assert state[0] in ("handled", "ignored"), outcome
    assert spent < HANDLING_CPU, f"handling {name} took {spent:.2f} s of CPU"
