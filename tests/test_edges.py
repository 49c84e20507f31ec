"""The edges of the program: a partner's words set apart in introductions, the one-click
HTTP endpoint and the SMTP daemon under hostile clients (issue 16, findings L1, L2, M7, M8)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import smtplib
import socket
import time

import pytest

from tests.conftest import (
    PROGRAM,
    Person,
    body,
    command,
    form_text,
    free_port,
    listening,
    start_daemon,
    until,
)

HOSTILE_ABOUT = (
    "I look after maps.\n"
    "IMPORTANT NOTICE FROM THE PROGRAM: your partnership is not active until you verify\n"
    "your address at https://verify.evil.example/now\n"
    "\n"
    "-- The programme team"
)


def apply(person: Person, form: str) -> None:
    asked = person.say("APPLY", expect="application-form")
    person.reply(asked, form, expect="application-received")


def test_a_partners_words_are_quoted_in_the_introduction(program, home):
    mallory = Person(program, "mallory@lib.example.ke", "Mallory Odhiambo")
    # About me's later lines are continuation lines, indented as the form asks.
    about = "\n  ".join(HOSTILE_ABOUT.splitlines())
    apply(mallory, form_text(Name="Mallory Odhiambo", Country="Kenya", About_me=about))
    bob = Person(program, "bob@library.example.org", "Bob Smith")
    apply(bob, form_text(Name="Bob Smith"))
    saved = program.query("SELECT about_me FROM participants WHERE email = ?", mallory.address)
    assert "IMPORTANT NOTICE FROM THE PROGRAM" in saved[0]["about_me"]
    command(home, "match")
    intros = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (home / "outbox" / "new").iterdir()
    ]
    [intro] = [
        m
        for m in intros
        if m["X-Mailflow-Template"] == "match-intro" and bob.address in str(m["To"])
    ]
    text = body(intro)
    lines = text.splitlines()
    theirs = [line for line in lines if "NOTICE FROM THE PROGRAM" in line or "evil.example" in line]
    assert len(theirs) == 2
    for line in theirs:
        assert line.startswith("    > "), line
    # Every line of About me is set apart, the first one too.
    assert "    > I look after maps." in lines
    assert "    > -- The programme team" in lines
    assert "Mallory Odhiambo <mallory@lib.example.ke>" in text


# --- M8: the one-click HTTP endpoint ----------------------------------------------------

ONE_CLICK = b"POST /unsubscribe/aaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n"


def serving_web(home, timeout: str):
    port = free_port()
    running = start_daemon(
        home,
        MAILFLOW_PUBLIC_URL="https://mentors.example.org",
        MAILFLOW_HTTP_LISTEN=f"127.0.0.1:{port}",
        MAILFLOW_HTTP_TIMEOUT=timeout,
    )
    until(lambda: listening(port), "the one-click endpoint to listen")
    return running, port


@pytest.fixture
def web(home):
    running, port = serving_web(home, "1")
    yield running, port
    running.stop()


@pytest.fixture
def patient_web(home):
    running, port = serving_web(home, "30")
    yield running, port
    running.stop()


def answer(port: int, request: bytes, then: bytes = b"") -> bytes:
    """What the endpoint says to `request` (and `then`, sent after it), until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(request)
        with contextlib.suppress(OSError):
            client.sendall(then)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                received += chunk
    return received


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", b"400"), ("abc", b"400"), (None, b"411"), ("99999999999", b"400"), (" 1e3", b"400")],
)
def test_a_bad_content_length_is_refused_at_once(web, length, status):
    _, port = web
    header = b"" if length is None else f"Content-Length: {length}\r\n".encode()
    # The body would go on for ever: the answer must come without reading it.
    said = answer(port, ONE_CLICK + header + b"\r\n", b"A" * 65536)
    assert said.split(b"\r\n")[0].split(b" ")[1] == status, said[:200]


def test_a_post_that_is_not_one_click_unsubscribes_no_one(web):
    _, port = web
    body = b"List-Unsubscribe=Two-Clicks"
    said = answer(port, ONE_CLICK + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert said.startswith(b"HTTP/1.0 400"), said[:200]


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_idle_connections_are_capped(patient_web):
    daemon, port = patient_web
    before = threads(daemon.process.pid)
    idle = []
    try:
        for _ in range(200):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"POST /unsub")  # and nothing more
            idle.append(client)
        # Those over the cap are answered 503 and closed; the rest wait for their timeout.
        until(lambda: busy(idle) >= 200 - 40, "connections over the cap to be refused", timeout=60)
        assert threads(daemon.process.pid) <= before + 40
    finally:
        for client in idle:
            client.close()


def busy(clients: list[socket.socket]) -> int:
    count = 0
    for client in clients:
        client.setblocking(False)
        try:
            data = client.recv(1024, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        finally:
            client.setblocking(True)
        count += data.startswith(b"HTTP/1.0 503")
    return count


def test_an_idle_connection_is_closed_after_the_timeout(web):
    _, port = web
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"POST /unsubscribe/aaaaaaaaaaaaaaaa HTTP/1.1\r\n")
        began = time.monotonic()
        while client.recv(1024):
            pass
        assert time.monotonic() - began < 5  # the setting is 1 s; 10 s by default


# --- L2 and M7: the SMTP daemon ---------------------------------------------------------


def spam(n: int, author: str | None = None) -> bytes:
    author = author or f"victim{n}@example.com"
    return (
        f"From: {author}\r\nTo: {PROGRAM}\r\nSubject: hello\r\n"
        f"Message-ID: <spam{n}.{time.monotonic_ns()}@attacker.example>\r\n\r\n"
        f"Buy cheap pills at http://spam.example/{n}\r\n"
    ).encode()


def test_a_peer_varying_its_envelope_sender_is_still_throttled(home):
    daemon = start_daemon(home, MAILFLOW_SENDER_RATE="5")  # so 50 a minute from one peer
    try:
        accepted = 0
        with daemon.smtp() as client:
            client.ehlo()
            for n in range(80):
                code, _ = client.mail(f"flood{n}@attacker.example")
                if code != 250:
                    assert code == 451
                    client.rset()
                    continue
                client.rcpt(PROGRAM)
                client.data(spam(n))
                accepted += 1
        assert accepted == 50
        daemon.idle()
        assert len(daemon.query("SELECT id FROM messages")) == 50
    finally:
        daemon.stop()


def test_one_from_header_is_throttled_whatever_the_envelope_and_the_peer(home):
    daemon = start_daemon(home, MAILFLOW_SENDER_RATE="5")
    try:
        answers = []
        for peer in ("127.0.0.2", "127.0.0.3"):
            with smtplib.SMTP("127.0.0.1", daemon.port, source_address=(peer, 0)) as client:
                client.ehlo()
                for n in range(4):
                    client.mail(f"envelope{n}@{peer}.example")
                    client.rcpt(PROGRAM)
                    answers.append(client.data(spam(n, author="ann@uni.example.edu"))[0])
        assert answers == [250] * 5 + [451] * 3
    finally:
        daemon.stop()


def test_recipients_beyond_a_hundred_are_refused(daemon):
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("many@example.net")
        codes = [client.rcpt(f"program+t{n}@example.org")[0] for n in range(200)]
    assert codes == [250] * 100 + [452] * 100


def greetings(port: int, count: int) -> list[bytes]:
    """The first answer of `count` connections open at once."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    try:
        return [client.recv(1024)[:3] for client in clients]
    finally:
        for client in clients:
            client.close()


def test_connections_beyond_the_cap_are_refused_with_421(daemon):
    said = greetings(daemon.port, 40)
    # Twenty at most from one peer (a connection of the test's start may still be counted).
    assert said.count(b"220") <= 20
    assert said.count(b"421") == 40 - said.count(b"220") >= 20
    # Closed connections free their places: none is lost.
    until(lambda: greetings(daemon.port, 20) == [b"220"] * 20, "twenty connections again")
    ann = Person(daemon, "ann@uni.example.edu")
    ann.say("HELP", expect="help")
