"""The From header, read as RFC 5322 and a DMARC check upstream read it (review L3), by the
program in process, the bytes as a forger wrote them: a From that is not exactly one clear
mailbox (the coordinator's address before an attacker's angle address, two mailboxes, the
header given twice, a quoted name folded over two lines) is no sender at all: nothing is answered to
either reading, nothing done in the coordinator's name, and the message is recorded as
set aside. One reading gives both the stored sender and the answer address, so a display
name over 998 characters no longer stores no sender while it is answered.
"""

from __future__ import annotations

import email.utils

import pytest

from tests.conftest import PROGRAM, start_in_process

COORDINATOR = "coord@example.org"
ATTACKER = "attacker@evil.example"


@pytest.fixture
def configured(home):
    """In process, with COORDINATOR configured."""
    program = start_in_process(home, MAILFLOW_COORDINATORS=COORDINATOR)
    yield program
    program.stop()


def raw_message(from_lines: list[str], body: str) -> tuple[bytes, str]:
    """A message as a forger writes it, header lines byte for byte; (bytes, Message-ID)."""
    message_id = email.utils.make_msgid(domain="forger.test")
    head = [*from_lines, f"To: {PROGRAM}", "Subject: hello", f"Message-ID: {message_id}"]
    text = "\r\n".join(head) + "\r\n\r\n" + body + "\r\n"
    return text.encode("utf-8"), message_id


def sent_to(program, message_id: str) -> list[str]:
    return [row["recipient"] for row in program.answers_to(message_id)]


@pytest.mark.parametrize(
    "from_lines",
    [
        # Python 3.11's getaddresses read this as the coordinator (CVE-2023-27043); RFC 5322
        # and DMARC see the attacker's address.
        [f"From: {COORDINATOR}<{ATTACKER}>"],
        [f"From: {COORDINATOR}, {ATTACKER}"],
        [f"From: {COORDINATOR}", f"From: {ATTACKER}"],
        [f'From: "{COORDINATOR}" <{COORDINATOR}>, <{ATTACKER}>'],
    ],
    ids=["angle-address-after", "two-mailboxes", "two-from-headers", "quoted-and-second"],
)
def test_a_from_naming_the_coordinator_among_others_acts_in_nobodys_name(
    configured, from_lines: list[str]
):
    raw, message_id = raw_message(from_lines, f"COORDINATOR ADD helper@{ATTACKER.split('@')[1]}")
    configured.send(raw, sender=ATTACKER)
    row = configured.handled(message_id)
    assert (row["state"], row["outcome"]) == ("ignored", "ignored:no-sender")
    assert row["sender"] is None
    assert sent_to(configured, message_id) == []  # no command-confirm, to anybody
    assert configured.query("SELECT * FROM outbox") == []
    assert not configured.query(
        "SELECT * FROM coordinators WHERE email LIKE ?", f"%{ATTACKER.split('@')[1]}"
    )


def test_a_quoted_name_folded_over_two_lines_gets_no_answer_anywhere(configured):
    # Lenient readers see a second address, x@y.z, in the second line of the fold.
    raw, message_id = raw_message(['From: "Eve\\"', ' Bcc: x@y.z" <eve@example.net>'], "HELP")
    configured.send(raw, sender="eve@example.net")
    row = configured.handled(message_id)
    assert (row["state"], row["outcome"]) == ("ignored", "ignored:no-sender")
    assert row["sender"] is None
    assert sent_to(configured, message_id) == []
    assert configured.query("SELECT * FROM outbox WHERE recipient = 'x@y.z'") == []


def test_a_display_name_over_998_characters_stores_the_sender_it_answers(configured):
    name = "Ann " + "Okafor" * 200  # 1,204 characters
    raw, message_id = raw_message([f'From: "{name}" <ann@uni.example.edu>'], "HELP")
    configured.send(raw, sender="ann@uni.example.edu")
    row = configured.handled(message_id)
    assert row["sender"] == "ann@uni.example.edu"
    assert sent_to(configured, message_id) == ["ann@uni.example.edu"]
    # The repeated-text rule counts by the stored sender: it sees these messages too.
    again, again_id = raw_message([f'From: "{name}" <ann@uni.example.edu>'], "HELP")
    configured.send(again, sender="ann@uni.example.edu")
    assert configured.handled(again_id)["sender"] == "ann@uni.example.edu"


@pytest.mark.parametrize(
    "from_line",
    [
        "From: Joe Q. Public <joe@example.net>",  # RFC 5322's own example, obsolete phrase
        'From: "Public, Joe" <joe@example.net>',
        "From: =?utf-8?q?Jo=C3=AB_Public?= <joe@example.net>",
        "From: joe@example.net (Joe Public)",
    ],
)
def test_ordinary_from_headers_are_still_answered(configured, from_line: str):
    raw, message_id = raw_message([from_line], "HELP")
    configured.send(raw, sender="joe@example.net")
    row = configured.handled(message_id)
    assert row["sender"] == "joe@example.net"
    assert sent_to(configured, message_id) == ["joe@example.net"]
