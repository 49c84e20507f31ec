"""A bounce storm is taken, not deferred (issue 21): after a broadcast, the one mail server
in front passes on thousands of delivery reports within a minute, every one from <> and
from the same peer. Sent to a real daemon over SMTP, each is accepted, scored against the
person its return path names and never answered, while the limits still slow a flood
from one sender, null-sender mail to anything but a return path we gave out, and reports
to return paths we never gave out.

The reports are the Sisimai corpus's real delivery failures, each passed on with a
Message-ID of its own (the store takes a second copy of one message for a duplicate).
"""

from __future__ import annotations

import functools
import re
import secrets
import smtplib
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailflow import config as configuration
from mailflow.read.parse import delivery_failures
from mailflow.send import verp
from tests.conftest import (
    CORPORA,
    PROGRAM,
    Person,
    body,
    command,
    compose,
    environment,
    start_daemon,
    start_in_process,
    wire,
)
from tests.people import ANN, CHEN, COORDINATOR, PEOPLE, roster

CORPUS = sorted((CORPORA / "sisimai-bounces" / "bsd").glob("*.eml"))
STORM = 2000
PEOPLE_TOLD = STORM // 2  # each return path gets a delay, then a failure
FLOOD = "flood@example.net"
AUTO_REPLY = CORPORA / "sisimai-bounces" / "bsd" / "rfc3834-01.eml"


@functools.cache
def reports(kind: str) -> list[bytes]:
    """The corpus's delivery reports of one kind, in file order: 'permanent' names a
    permanent failure, 'temporary' only temporary ones (a delay)."""
    found = []
    for path in CORPUS:
        raw = path.read_bytes()
        temporary, permanent = delivery_failures(raw)
        if permanent if kind == "permanent" else temporary and not permanent:
            found.append(raw)
    return found


def passed_on(raw: bytes) -> bytes:
    """A corpus report with a Message-ID of its own in place of the one it has."""
    head, blank, rest = re.split(rb"(\r?\n\r?\n)", raw, maxsplit=1)
    head = re.sub(rb"(?im)^message-id:.*(?:\r?\n[ \t].*)*(?:\r?\n|$)", b"", head)
    return wire(f"Message-ID: <{uuid.uuid4()}@mx.example.org>\n".encode() + head + blank + rest)


def deliver(client: smtplib.SMTP, raw: bytes, to: str, sender: str = "") -> tuple[str, int]:
    """One message as an MTA hands it over (MAIL, RCPT, DATA): the first command not
    answered 250 and its code, else ('DATA', 250)."""
    client.ehlo_or_helo_if_needed()
    for stage, (code, _) in (("MAIL", client.mail(sender)), ("RCPT", client.rcpt(to))):
        if code != 250:
            client.rset()
            return stage, code
    return "DATA", client.data(raw)[0]


def answers_to_reports(home) -> int:
    """Outgoing messages queued in answer to mail from <>."""
    return home.query(
        "SELECT count(*) AS n FROM outbox WHERE inbound_id IN"
        " (SELECT id FROM messages WHERE envelope_from = '<>')"
    )[0]["n"]


def return_paths(home) -> dict[str, str]:
    """Each recipient's return path, from the mail sent to them."""
    rows = home.query("SELECT DISTINCT recipient, envelope_from FROM outbox")
    return {row["recipient"]: row["envelope_from"] for row in rows}


@pytest.fixture
def broadcast(tmp_path: Path) -> Path:
    """A thousand participants who have just been sent a coordinator's BROADCAST."""
    home = tmp_path / "var"
    people = [
        (f"p{n:04}@lib{n % 40}.example.net", f"Person {n}", *PEOPLE[n % len(PEOPLE)][2:])
        for n in range(PEOPLE_TOLD)
    ]
    command(home, "import", str(roster(tmp_path, people)))
    program = start_in_process(home, MAILFLOW_COORDINATORS=COORDINATOR)
    try:
        coordinator = Person(program, COORDINATOR)
        preview = coordinator.say(
            "BROADCAST Our autumn webinar\nDear all,\n\nJoin us on 20 March.\n",
            expect="command-confirm",
        )
        result = coordinator.reply(preview, "CONFIRM", expect="command-result")
        assert f"to {PEOPLE_TOLD} participants" in body(result)
    finally:
        program.stop()
    return home


def test_2000_reports_within_a_minute_are_all_taken_scored_and_none_answered(broadcast):
    daemon = start_daemon(broadcast, MAILFLOW_COORDINATORS=COORDINATOR)
    try:
        paths = {a: p for a, p in return_paths(daemon).items() if a != COORDINATOR}
        assert len(paths) == PEOPLE_TOLD
        sent_before = daemon.query("SELECT count(*) AS n FROM outbox")[0]["n"]
        delays, failures = reports("temporary"), reports("permanent")
        storm = [(p, delays[n % len(delays)]) for n, p in enumerate(paths.values())]
        storm += [(p, failures[n % len(failures)]) for n, p in enumerate(paths.values())]
        started = time.monotonic()
        with daemon.smtp() as client:
            answers = [deliver(client, passed_on(raw), to) for to, raw in storm]
        # The throttle's window is a minute of the daemon's clock: slower, this proves nothing.
        assert time.monotonic() - started < 60
        assert answers == [("DATA", 250)] * STORM
        # The same peer, within the same minute: one sender's flood is slowed as ever.
        with daemon.smtp() as client:
            flood = [
                deliver(client, wire(compose(FLOOD, f"HELP {n}")), PROGRAM, sender=FLOOD)
                for n in range(61)
            ]
        assert flood == [("DATA", 250)] * 60 + [("MAIL", 451)]

        handled = [r for r in daemon.idle(timeout=600) if r["envelope_from"] == "<>"]
        assert len(handled) == STORM
        assert {r["state"] for r in handled} == {"ignored"}
        scores = daemon.query("SELECT address, score, bounces, last_kind FROM bounce_scores")
        # A delay (1 point), then a failure (3): each address scored twice, still reachable.
        assert {r["address"]: (r["score"], r["bounces"]) for r in scores} == {
            address: (4.0, 2) for address in paths
        }
        assert answers_to_reports(daemon) == 0
        later = daemon.query("SELECT DISTINCT recipient FROM outbox WHERE id > ?", sent_before)
        assert [r["recipient"] for r in later] == [FLOOD]  # its HELPs answered, nobody else
    finally:
        daemon.stop()


def test_reports_to_one_return_path_are_bounded_per_return_path(matched):
    daemon = start_daemon(matched)
    try:
        paths = return_paths(daemon)
        failures = reports("permanent")
        with daemon.smtp() as client:
            to_ann = [deliver(client, passed_on(failures[n]), paths[ANN]) for n in range(12)]
            to_chen = deliver(client, passed_on(failures[12]), paths[CHEN])
        assert to_ann == [("DATA", 250)] * 10 + [("RCPT", 451)] * 2
        assert to_chen == ("DATA", 250)
        daemon.idle(timeout=120)
        counted = daemon.query("SELECT address, bounces FROM bounce_scores ORDER BY address")
        assert [tuple(r) for r in counted] == [(ANN, 10), (CHEN, 1)]
        assert answers_to_reports(daemon) == 0
    finally:
        daemon.stop()


def storm_from(daemon, peer: str, recipients: list[str]) -> list[tuple[str, int]]:
    """Real reports from <>, one to each recipient, from `peer` over one connection."""
    failures = reports("permanent")
    with smtplib.SMTP("127.0.0.1", daemon.port, source_address=(peer, 0)) as client:
        return [
            deliver(client, passed_on(failures[n % len(failures)]), to)
            for n, to in enumerate(recipients)
        ]


def test_null_sender_mail_to_anything_but_a_return_path_is_counted_against_its_peer(matched):
    daemon = start_daemon(matched)
    try:
        # The program's address and +forms that are no return path: 60 a minute, as before.
        recipients = [PROGRAM if n % 2 else f"program+x{n}@example.org" for n in range(100)]
        answers = storm_from(daemon, "127.0.0.2", recipients)
        assert answers == [("DATA", 250)] * 60 + [("RCPT", 451)] * 40
        # Each peer is counted on its own: another server's auto-reply is still taken.
        with smtplib.SMTP("127.0.0.1", daemon.port, source_address=("127.0.0.3", 0)) as client:
            assert deliver(client, wire(AUTO_REPLY.read_bytes()), PROGRAM) == ("DATA", 250)
        daemon.idle(timeout=120)
        assert answers_to_reports(daemon) == 0
    finally:
        daemon.stop()


def test_a_return_path_code_not_in_the_store_earns_no_exemption(matched):
    daemon = start_daemon(matched)
    try:
        forged = [f"program+bounce-{secrets.token_hex(10)}@example.org" for _ in range(100)]
        answers = storm_from(daemon, "127.0.0.2", forged)
        assert answers == [("DATA", 250)] * 60 + [("RCPT", 451)] * 40
        # Odd codes are counted the same way, and nothing in them upsets the daemon.
        odd = [
            "program+bounce-@example.org",
            "program+bounce-%s@example.org" % ("0" * 21),
            "program+bounce-'%3b--@example.org",
            "program+bounce-%s@example.org" % ("f" * 5000),
            "program+bounce-../../mailflow.db@example.org",
        ]
        assert {stage for stage, _ in storm_from(daemon, "127.0.0.2", odd)} == {"RCPT"}
        real = storm_from(daemon, "127.0.0.3", [return_paths(daemon)[ANN].upper()])
        assert real == [("DATA", 250)]
        daemon.idle(timeout=120)
        # The forged reports name nobody we write to; the real one counts against Ann.
        counted = daemon.query("SELECT address, bounces FROM bounce_scores")
        assert [tuple(r) for r in counted] == [(ANN, 1)]
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> configuration.Config:
    return configuration.load(environment(tmp_path_factory.mktemp("config") / "var"))


@given(local=st.text(max_size=80))
def test_a_code_is_read_from_the_return_paths_form_only(config, local: str):
    code = verp.code_of(config, f"{local}@example.org")
    assert code is None or verp.CODE.fullmatch(code)
    assert code is None or local.lower() == f"program+bounce-{code}"
    real = secrets.token_hex(10)
    assert verp.code_of(config, f"<Program+Bounce-{real.upper()}@Example.ORG>") == real
