"""Outgoing mail done properly: headers, no injection, small plain text, a durable outbox
delivered to the Maildir or a relay with retries."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

from aiosmtpd.controller import Controller

from tests.conftest import PROGRAM, free_port, run_cli


def test_an_answer_has_every_header_it_needs(ann):
    answer = ann.say("HELP", subject="how?", expect="help")
    assert answer["X-Mailflow-Template"] == "help"
    assert re.fullmatch(r"<[0-9a-f]{32}\.mailflow@example\.org>", answer["Message-ID"])
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["From"].addresses[0].addr_spec == PROGRAM
    assert answer["To"].addresses[0].addr_spec == "ann@uni.example.edu"
    assert answer["References"] == answer["In-Reply-To"]
    assert answer["Date"]
    assert answer.get_content_type() == "text/plain"
    assert answer.get_content_charset() == "utf-8"
    assert not answer.is_multipart()


def test_every_answer_has_its_own_message_id(ann):
    first = ann.say("HELP", expect="help")
    second = ann.say("HELP", expect="help")
    assert first["Message-ID"] != second["Message-ID"]


def test_answers_are_small_plain_text(ann):
    form = ann.say("APPLY", expect="application-form")
    raw = form.as_bytes()
    assert len(raw) < 8000
    assert b"<html" not in raw.lower()


def test_a_display_name_cannot_inject_a_header(program):
    # A line break encoded in the From name is a parse defect: no sender, so no answer at
    # all (L3), let alone one with a Bcc.
    raw = (
        "From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40elsewhere=2Eexample?= <eve@example.net>\r\n"
        f"To: {PROGRAM}\r\nSubject: HELP\r\n"
        "Message-ID: <inject-from@client.test>\r\n\r\nHELP\r\n"
    ).encode()
    program.send(raw, sender="eve@example.net")
    assert program.mail_for("<inject-from@client.test>") == []
    assert program.query("SELECT count(*) AS n FROM outbox")[0]["n"] == 0
    # The same trick in the Subject, from a plain From: answered, with nothing injected.
    raw = (
        "From: Eve <eve@example.net>\r\n"
        f"To: {PROGRAM}\r\nSubject: =?utf-8?q?help=0D=0ABcc=3A_x=40y=2Ez?=\r\n"
        "Message-ID: <inject@client.test>\r\n\r\nHELP\r\n"
    ).encode()
    program.send(raw, sender="eve@example.net")
    [answer] = program.mail_for("<inject@client.test>")
    assert answer["Bcc"] is None
    assert answer["To"].addresses[0].addr_spec == "eve@example.net"
    [stored] = program.query("SELECT raw FROM outbox")
    head = stored["raw"].split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^bcc:", head)
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line[:1].isspace()]
    assert sorted(set(names)) == sorted(
        {
            b"From",
            b"To",
            b"Subject",
            b"Date",
            b"Message-ID",
            b"In-Reply-To",
            b"References",
            b"Auto-Submitted",
            b"List-Id",
            b"List-Help",
            b"List-Unsubscribe",
            b"X-Auto-Response-Suppress",
            b"X-Mailflow-Template",
            b"Content-Type",
            b"Content-Transfer-Encoding",
            b"MIME-Version",
        }
    )


def test_non_ascii_names_and_text_survive(program):
    raw = (
        "From: =?utf-8?q?Zo=C3=AB_K=C3=B6nig?= <zoe@example.de>\r\n"
        f"To: {PROGRAM}\r\nSubject: help\r\nMessage-ID: <zoe@client.test>\r\n\r\nHELP\r\n"
    ).encode()
    program.send(raw, sender="zoe@example.de")
    [answer] = program.mail_for("<zoe@client.test>")
    assert answer["To"].addresses[0].display_name == "Zoë König"
    assert "Hello Zoë König" in answer.get_content()


class Sink:
    """A real SMTP relay on 127.0.0.1 that keeps what it receives."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


def test_relay_delivery_retries_then_flushes(home):
    port = free_port()
    raw = (
        f"From: ann@uni.example.edu\nTo: {PROGRAM}\nSubject: x\n"
        "Message-ID: <relay@client.test>\n\nHELP\n"
    ).encode()
    relay = {"MAILFLOW_SMTP_RELAY": f"127.0.0.1:{port}"}
    first = run_cli(home, "ingest", stdin=raw, **relay)  # nobody listens yet
    assert first.returncode == 0, first.stderr
    listing = run_cli(home, "outbox", **relay).stdout.decode()
    assert "queued" in listing and "help" in listing and "ann@uni.example.edu" in listing
    assert "Connection refused" in listing or "refused" in listing.lower()
    assert not (home / "outbox" / "new").exists()
    sink = Sink(port)
    sink.controller.start()
    try:
        flushed = run_cli(home, "outbox", "flush", **relay)
        assert flushed.returncode == 0, flushed.stderr
        assert b"sent 1, still queued 0" in flushed.stdout
        [(_sender, recipients, data)] = sink.received
        assert recipients == ["ann@uni.example.edu"]
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message["X-Mailflow-Template"] == "help"
        again = run_cli(home, "outbox", "flush", **relay)
        assert b"sent 0, still queued 0" in again.stdout
        assert len(sink.received) == 1  # nothing sent twice
    finally:
        sink.controller.stop()
    assert "sent" in run_cli(home, "outbox", **relay).stdout.decode()


def test_with_a_dkim_key_every_mail_is_signed_for_the_program_domain(home, tmp_path):
    from mailflow.send import signatures
    from tests.dns_stub import make_key

    private, public = make_key(tmp_path)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(private)
    raw = (
        f"From: ann@uni.example.edu\nTo: {PROGRAM}\nSubject: help\n"
        "Message-ID: <signed-1@client.test>\n\nHELP\n"
    ).encode()
    run = run_cli(
        home,
        "ingest",
        stdin=raw,
        MAILFLOW_DKIM_KEY=str(key_file),
        MAILFLOW_DKIM_SELECTOR="mail2026",
    )
    assert run.returncode == 0, run.stderr
    [sent] = [path.read_bytes() for path in (home / "outbox" / "new").iterdir()]
    assert sent.startswith(b"DKIM-Signature:")
    assert b"d=example.org" in sent.split(b"\r\n\r\n")[0].replace(b"\r\n ", b"")

    def lookup(name, timeout=5):
        return (
            f"v=DKIM1; k=rsa; p={public}".encode()
            if name == b"mail2026._domainkey.example.org."
            else b""
        )

    # Checked as Ann's side would: a recent signature of mail written to her.
    to_ann = {"program_address": "ann@uni.example.edu", "now": datetime.now(UTC)}
    assert signatures.verified_domain(sent, "example.org", lookup, **to_ann) == "example.org"
    tampered = sent.replace(b"HELP", b"HALP", 1) if b"HELP" in sent else sent + b"x"
    assert signatures.verified_domain(tampered, "example.org", lookup, **to_ann) is None


def test_a_dkim_key_that_cannot_sign_stops_the_start_with_the_reason(home, tmp_path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    run = run_cli(home, "migrate", MAILFLOW_DKIM_KEY=str(key_file), MAILFLOW_DKIM_SELECTOR="s")
    assert run.returncode == 2
    assert b"dkim.pem: not an RSA private key" in run.stderr
    alone = run_cli(home, "migrate", MAILFLOW_DKIM_KEY=str(key_file))
    assert alone.returncode == 2 and b"go together" in alone.stderr


def _composed(**changes) -> bytes:
    from datetime import UTC, datetime

    from mailflow.send.compose import compose

    given = dict(
        template="help",
        subject="Help",
        body="Hello\n",
        sender_name="Librarians Peer Network",
        sender="program@example.org",
        recipient="ann@uni.example.edu",
        message_id="<abc.mailflow@example.org>",
        now=datetime(2026, 3, 2, 9, tzinfo=UTC),
        reply_to="program+tok@example.org",
    )
    return compose(**{**given, **changes}).raw


def test_ids_and_plain_addresses_are_written_as_given_and_folded_at_spaces():
    """Message-IDs, the Date and bare addresses skip the email package's header parser
    (half the time of composing a reply); the bytes are what it would write, except
    that an ID too long for a line stays whole instead of becoming encoded-words, which
    would break the thread."""
    references = tuple(f"<{'r' * n}{n}@client.example>" for n in range(1, 12))
    long_id = "<" + "y" * 80 + "@client.example>"
    raw = _composed(in_reply_to=long_id, references=references)
    head = email.message_from_bytes(raw, policy=email.policy.default)
    assert head["In-Reply-To"] == long_id
    assert head["References"].split() == [*references[-9:], long_id]
    assert f"In-Reply-To: {long_id}\r\n".encode() in raw
    header_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in header_lines if long_id.encode() not in line)
    assert b"=?" not in raw
    assert b"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n" in raw
    assert b"To: ann@uni.example.edu\r\n" in raw


def test_addresses_that_need_quoting_or_encoding_still_get_it():
    raw = _composed(recipient="odd local@uni.example.edu", recipient_name="")
    assert b'To: "odd local"@uni.example.edu\r\n' in raw
    raw = _composed(recipient="ann@uni.example.edu", recipient_name="Smith, Ann")
    assert b'To: "Smith, Ann" <ann@uni.example.edu>\r\n' in raw
    raw = _composed(recipient="chen@uni.example.edu", recipient_name="陈静")
    assert b"To: =?utf-8?b?6ZmI6Z2Z?= <chen@uni.example.edu>\r\n" in raw
    # A Reply-To or Message-ID that is not a plain value is parsed as before.
    raw = _composed(message_id="not an id")
    assert email.message_from_bytes(raw)["Message-ID"] == "not an id"
