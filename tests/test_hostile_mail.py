"""Broken and hostile input: every message of the imap-tools corpus (bad MIME, odd
charsets, RFC 6532 headers), and mail built to hurt (no From, thousands of recipients,
MIME nested a hundred deep, NUL bytes, invalid UTF-8, a 10,000-character header line),
is stored and handled without an exception: answered, ignored or quarantined with its
reason, and the daemon keeps serving. A hypothesis fuzz test feeds random and mutated
messages down the path `mailflow ingest` takes.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow import config as configuration
from mailflow import pipeline
from mailflow.program import Program
from tests.conftest import CORPORA, PROGRAM, compose, run_cli, wire

IMAP_TOOLS = sorted((CORPORA / "imap-tools-messages").rglob("*.eml"))
SAMPLES = [path.read_bytes() for path in IMAP_TOOLS[:40]]
FINAL = {"handled", "ignored", "duplicate", "quarantined"}


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Program:
    home = tmp_path_factory.mktemp("hostile") / "var"
    env = {"MAILFLOW_HOME": str(home), "MAILFLOW_ADDRESS": PROGRAM}
    config = configuration.load(env, cwd=home.parent)
    running = Program(dataclasses.replace(config, now=configuration.parse_time("2026-03-02")))
    yield running
    running.close()


def handled(program: Program, raw: bytes, sender: str | None = "someone@example.net"):
    row_id, outcome = pipeline.handle(program, raw, sender, [PROGRAM], "ingest")
    state = program.db.execute("SELECT state FROM messages WHERE id = ?", [row_id]).fetchone()[0]
    return state, outcome


def test_the_corpus_is_whole():
    assert len(IMAP_TOOLS) == 113


@pytest.mark.parametrize("path", IMAP_TOOLS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_each_corpus_message_is_handled_without_an_exception(program, path: Path):
    state, outcome = handled(program, path.read_bytes())
    assert state in FINAL
    # An exception while handling quarantines the message as "error: ..."; none may.
    assert not outcome.startswith("error:"), outcome


def nested(depth: int) -> bytes:
    head = f"From: deep@example.net\r\nTo: {PROGRAM}\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = "".join(
        f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(depth)
    )
    ends = "".join(f"\r\n--b{n}--\r\n" for n in reversed(range(depth)))
    return (head + parts + "Content-Type: text/plain\r\n\r\nHELP" + ends).encode()


HOSTILE = {
    "no From": (b"To: program@example.org\r\nSubject: HELP\r\n\r\nHELP\r\n", "ignored"),
    "empty": (b"", "quarantined"),
    "only a blank line": (b"\r\n\r\n", "quarantined"),
    "nesting a hundred deep": (nested(100), None),
    "NUL bytes": (b"From: nul@example.net\r\nSubject: HE\x00LP\r\n\r\nHE\x00LP\x00\r\n", None),
    "invalid UTF-8": (
        b"From: =?utf-8?b?/w==?= <bad@example.net>\r\nSubject: \xff\xfe\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xc3\x28 HELP \xa0\xa1\r\n",
        None,
    ),
    "unknown charset": (
        b"From: x@example.net\r\nContent-Type: text/plain; charset=x-unknown-42\r\n\r\nHELP\r\n",
        None,
    ),
    "10,000-character header line": (
        b"From: long@example.net\r\nX-Long: "
        + b"a" * 10_000
        + b"\r\nSubject: HELP\r\n\r\nHELP\r\n",
        None,
    ),
    "5,000 recipients in To": (
        b"From: many@example.net\r\nTo: "
        + b", ".join(b"p%d@example.com" % n for n in range(5000))
        + b"\r\nSubject: HELP\r\n\r\nHELP\r\n",
        None,
    ),
    "header without a colon": (b"From: c@example.net\r\nno colon here\r\n\r\nHELP\r\n", None),
    "binary garbage": (bytes(range(256)) * 40, None),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_answered_ignored_or_quarantined(program, name: str):
    raw, expected = HOSTILE[name]
    state, outcome = handled(program, raw)
    assert state in FINAL
    assert not outcome.startswith("error:"), outcome
    if expected:
        assert state == expected, outcome


def test_an_encoded_word_cannot_smuggle_a_header_into_the_answer(program):
    raw = (
        b"From: =?utf-8?q?Eve_=22Bcc=3A_x=40y=2Ez=22?= <eve@example.net>\r\n"
        b"Subject: =?utf-8?q?HELP=0D=0ABcc=3A_x=40y=2Ez?=\r\n"
        b"Message-ID: <smuggle@t>\r\n\r\nHELP\r\n"
    )
    state, _ = handled(program, raw)
    assert state == "handled"
    [answer] = program.db.execute(
        "SELECT raw FROM outbox WHERE inbound_id = (SELECT id FROM messages"
        " WHERE message_id = '<smuggle@t>')"
    ).fetchall()
    parsed = email.message_from_bytes(answer[0], policy=email.policy.default)
    assert parsed["Bcc"] is None
    # The name stays a name, quoted: the only address is Eve's own.
    assert [a.addr_spec for a in parsed["To"].addresses] == ["eve@example.net"]


def test_a_line_break_encoded_in_the_from_name_leaves_no_sender(program):
    # A display name that decodes to a line break is no name a person writes, and RFC 5322
    # readers refuse it: the message has no sender to answer (review L3).
    raw = (
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40y=2Ez?= <eve@example.net>\r\n"
        b"Subject: hello\r\nMessage-ID: <smuggle-from@t>\r\n\r\nHELP\r\n"
    )
    assert handled(program, raw) == ("ignored", "ignored:no-sender")
    assert not program.db.execute(
        "SELECT 1 FROM outbox WHERE inbound_id = (SELECT id FROM messages"
        " WHERE message_id = '<smuggle-from@t>')"
    ).fetchall()


def test_the_daemon_keeps_serving_after_hostile_mail_over_smtp(daemon):
    with daemon.smtp() as client:
        for raw, _ in HOSTILE.values():
            if raw:
                client.sendmail("hostile@example.net", [PROGRAM], raw)
        # A thousand recipients at RCPT, every one a +TOKEN form: accepted once, handled once.
        many = [f"program+t{n}@example.org" for n in range(1000)]
        client.sendmail("many@example.net", many, wire(compose("many@example.net", "HELP")))
    question = compose("after@example.net", "HELP")
    daemon.send(question, sender="after@example.net")
    [answer] = daemon.mail_for(question["Message-ID"])
    assert answer["X-Mailflow-Template"] == "help"
    errors = daemon.query("SELECT outcome FROM messages WHERE outcome LIKE 'error:%'")
    assert [row["outcome"] for row in errors] == []
    listed = run_cli(daemon.home, "quarantine").stdout.decode()
    assert "quarantined message(s) shown" in listed


def mutate(raw: bytes, data: st.DataObject) -> bytes:
    """A real message with a few bytes flipped, cut, or repeated."""
    cut = data.draw(st.integers(0, len(raw)))
    noise = data.draw(st.binary(max_size=64))
    how = data.draw(st.sampled_from(["insert", "truncate", "replace", "double"]))
    if how == "insert":
        return raw[:cut] + noise + raw[cut:]
    if how == "truncate":
        return raw[:cut]
    if how == "replace":
        return raw[:cut] + noise + raw[cut + len(noise) :]
    return raw[:cut] + raw[cut:] * 2


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_and_mutated_messages_never_break_the_pipeline(program, data):
    if data.draw(st.booleans()):
        raw = data.draw(st.binary(max_size=2000))
    else:
        raw = mutate(data.draw(st.sampled_from(SAMPLES)), data)
    sender = data.draw(st.sampled_from([None, "", "fuzz@example.net", "<>", "\x00@x"]))
    state, outcome = handled(program, raw, sender)
    assert state in FINAL
    assert not outcome.startswith("error:"), outcome
