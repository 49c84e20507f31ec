"""Commands by email (HELP, STATUS, what is not understood) and the mail never answered:
automatic mail, bounces, delivery reports. In process, but for the null envelope sender,
which only SMTP can say."""

from __future__ import annotations

import pytest

from tests.conftest import PROGRAM, body, compose, form_text, wire


def test_help_lists_every_command(ann):
    text = body(ann.say("help", expect="help"))
    for word in ("HELP", "APPLY", "JOIN", "SIGN UP", "STATUS"):
        assert word in text


def test_status_for_a_stranger(ann):
    text = body(ann.say("STATUS", expect="status"))
    assert "We have no application from ann@uni.example.edu" in text
    assert "APPLY" in text


def test_status_shows_the_details_exactly_as_stored(ann):
    form = ann.say("APPLY", expect="application-form")
    ann.reply(form, form_text(), expect="application-received")
    text = body(ann.say("", subject="status", expect="status"))
    [saved] = ann.program.query("SELECT * FROM participants")
    for column, label in [
        ("name", "Name"),
        ("role", "Role"),
        ("interests", "Interests"),
        ("languages", "Languages"),
        ("time_zone", "Time zone"),
        ("contact_methods", "Contact methods"),
        ("about_me", "About me"),
    ]:
        assert f"{label}: {saved[column]}" in text
    assert "Country: United States (US)" in text
    assert "Round 1" in text
    assert "your application for Round 1 is received" in text


def test_anything_else_is_not_understood_with_the_help_text(ann):
    answer = ann.say("Hello, how does this work?", subject="question", expect="not-understood")
    text = body(answer)
    assert "APPLY" in text and "STATUS" in text
    # Nothing they wrote comes back, not even the name on their From line.
    assert "how does this work" not in text and "Okafor" not in text
    assert answer["To"].addresses[0].display_name == ""


def test_the_answer_goes_to_from_never_to_reply_to(ann):
    ann.say("HELP", headers={"Reply-To": "victim@elsewhere.example"}, expect="help")
    assert {r["recipient"] for r in ann.program.query("SELECT * FROM outbox")} == {
        "ann@uni.example.edu"
    }


AUTOMATIC = {
    "auto-submitted": {"Auto-Submitted": "auto-replied"},
    "auto-generated": {"Auto-Submitted": "auto-generated"},
    "precedence-bulk": {"Precedence": "bulk"},
    "precedence-junk": {"Precedence": "junk"},
    "precedence-list": {"Precedence": "list"},
    "return-path-null": {"Return-Path": "<>"},
    "x-autoreply": {"X-Autoreply": "yes"},
}


@pytest.mark.parametrize("kind", sorted(AUTOMATIC))
def test_automatic_mail_is_stored_but_never_answered(program, kind):
    message = compose("ann@uni.example.edu", "APPLY", "Out of office", headers=AUTOMATIC[kind])
    program.send(message, sender="ann@uni.example.edu")
    row = program.handled(message["Message-ID"])
    assert row["state"] == "ignored"
    assert row["raw"]
    assert program.answers_to(message["Message-ID"]) == []


def test_auto_submitted_no_is_answered(ann):
    ann.say("HELP", headers={"Auto-Submitted": "no"}, expect="help")


def test_null_envelope_sender_is_never_answered(daemon):
    message = compose("ann@uni.example.edu", "HELP")
    with daemon.smtp() as client:
        client.sendmail("<>", [PROGRAM], wire(message))
    assert daemon.handled(message["Message-ID"])["outcome"] == (
        "ignored:null-sender:no failed address found"
    )
    assert daemon.answers_to(message["Message-ID"]) == []


def test_mailer_daemon_and_delivery_reports_are_never_answered(program):
    bounce = compose("MAILER-DAEMON@mx.example.net", "HELP", "Undelivered Mail")
    program.send(bounce, sender="ann@uni.example.edu")
    assert program.handled(bounce["Message-ID"])["outcome"] == (
        "ignored:mailer-daemon:no failed address found"
    )
    report = (
        "From: Mail Delivery System <postmaster-notices@mx.example.net>\n"
        f"To: {PROGRAM}\nSubject: Delivery Status Notification\n"
        "Message-ID: <dsn-1@mx.example.net>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: rfc822; ann@uni.example.edu\nAction: failed\nStatus: 5.1.1\n"
        "--b--\n"
    ).encode()
    program.send(report, sender="ann@uni.example.edu")
    # It names Ann, but quotes no mail of ours to her: it counts against nobody.
    assert program.handled("<dsn-1@mx.example.net>")["outcome"] == (
        "ignored:delivery-report:names nobody we write to"
    )
    assert program.query("SELECT * FROM outbox") == []


def test_mail_without_a_from_is_logged_not_answered(program):
    raw = f"To: {PROGRAM}\nSubject: help\nMessage-ID: <nofrom@client.test>\n\nHELP\n".encode()
    program.send(raw, sender="ann@uni.example.edu")
    assert program.handled("<nofrom@client.test>")["outcome"] == "ignored:no-sender"
    assert program.query("SELECT * FROM outbox") == []
