"""Bounces: outgoing mail returns to a per-recipient address (VERP); delivery reports are
mapped to the person, scored (permanent more than temporary, fading with time), and past
the threshold the participant is unreachable: out of their partnership and of matching,
their partner and the coordinators told. A bounce is never answered, and a forged one
names nobody.

The eight people of the `matched` fixture were introduced on 2 March 2026 (Ann with Chen
Jing); reports go in through `mailflow ingest`, the way an MTA's pipe hands them over.
"""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
import uuid
from pathlib import Path

from tests.conftest import PROGRAM, command, compose, outbox_row, wire

ANN, CHEN = "ann@uni.example.edu", "chen@lib.example.cn"
COORDINATOR = "coord@program.example.org"
VERP = re.compile(r"^program\+bounce-[0-9a-f]{20}@example\.org$")


def report(
    to: str, failed: str, status: str = "5.1.1", action: str = "failed", original: str = ""
) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one, quoting the
    headers of the `original` Message-ID when given."""
    quoted = (
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original}\r\n"
        f"To: {failed}\r\n\r\n"
        if original
        else ""
    )
    return (
        f"From: MAILER-DAEMON@mx.uni.example.edu (Mail Delivery System)\r\n"
        f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4()}@mx.uni.example.edu>\r\nMIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.uni.example.edu\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{failed}>: Recipient address rejected\r\n\r\n"
        f"{quoted}--B--\r\n"
    ).encode()


def db(home: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(home / "mailflow.db")
    connection.row_factory = sqlite3.Row
    return connection


def return_path(home: Path, recipient: str) -> str:
    with db(home) as connection:
        [row] = connection.execute(
            "SELECT envelope_from FROM outbox WHERE recipient = ? ORDER BY id DESC LIMIT 1",
            [recipient],
        ).fetchall()
    return row[0]


def bounce(home: Path, raw: bytes, recipient: str, now: str) -> str:
    printed = command(
        home,
        "ingest",
        "--recipient",
        recipient,
        "--sender",
        "",
        stdin=raw,
        MAILFLOW_NOW=now,
        MAILFLOW_COORDINATORS=COORDINATOR,
    )
    return printed.strip().split(": ", 2)[2]


def status(home: Path, address: str) -> str:
    with db(home) as connection:
        return connection.execute(
            "SELECT status FROM participants WHERE email = ?", [address]
        ).fetchone()[0]


def mail(home: Path) -> list[email.message.EmailMessage]:
    folder = home / "outbox" / "new"
    files = sorted(folder.glob("*"), key=outbox_row)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def test_every_outgoing_message_returns_to_an_address_that_names_its_recipient(matched):
    with db(matched) as connection:
        rows = connection.execute("SELECT recipient, envelope_from FROM outbox").fetchall()
        codes = dict(connection.execute("SELECT code, address FROM bounce_codes").fetchall())
    assert len(rows) == 8  # the introductions
    for recipient, envelope_from in rows:
        assert VERP.match(envelope_from), envelope_from
        code = envelope_from.split("+bounce-")[1].split("@")[0]
        assert codes[code] == recipient
    assert len({envelope_from for _, envelope_from in rows}) == 8


def test_two_permanent_failures_make_a_participant_unreachable(matched):
    verp = return_path(matched, ANN)
    first = bounce(
        matched, report(verp, "ann.okafor@mail.uni.example.edu"), verp, "2026-03-16T10:00:00Z"
    )
    assert first.startswith("ignored:delivery-report:ann@uni.example.edu permanent (3.0)")
    assert status(matched, ANN) == "matched"
    before = len(mail(matched))
    second = bounce(matched, report(verp, ANN), verp, "2026-03-19T10:00:00Z")
    assert "unreachable" in second
    assert status(matched, ANN) == "unreachable"
    new = mail(matched)[before:]
    by_template = {m["X-Mailflow-Template"]: m for m in new}
    assert sorted(by_template) == ["participant-unreachable", "partner-left"]
    notice = by_template["participant-unreachable"]
    assert notice["To"].addresses[0].addr_spec == COORDINATOR
    assert "Ann Okafor <ann@uni.example.edu>" in notice.get_content()
    assert "2 bounce(s)" in notice.get_content()
    partner = by_template["partner-left"]
    assert partner["To"].addresses[0].addr_spec == CHEN
    assert partner["Subject"] == "We can no longer reach Ann Okafor"
    assert "coming back undelivered" in partner.get_content()
    assert not any(m["To"].addresses[0].addr_spec == ANN for m in new)  # never answered
    with db(matched) as connection:
        [(state, why)] = connection.execute(
            "SELECT state, ended_why FROM partnerships WHERE ? IN"
            " (SELECT email FROM participants WHERE id IN (member_a, member_b))",
            [ANN],
        ).fetchall()
    assert (state, why) == ("dissolved", "unreachable")
    exported = command(matched, "export")
    assert re.search(r"^ann@uni\.example\.edu,.*,unreachable,", exported, re.M)
    # A third report changes nothing and tells nobody again.
    bounce(matched, report(verp, ANN), verp, "2026-03-20T10:00:00Z")
    assert len(mail(matched)) == before + 2


def test_scores_fade_so_failures_months_apart_never_add_up(matched):
    verp = return_path(matched, ANN)
    bounce(matched, report(verp, ANN), verp, "2026-03-16T10:00:00Z")
    later = bounce(matched, report(verp, ANN), verp, "2026-05-16T10:00:00Z")
    assert re.search(r"permanent \(3\.1\)", later)  # 3 + 3 x 0.5^(61/14)
    assert status(matched, ANN) == "matched"


def test_temporary_failures_count_for_less(matched):
    verp = return_path(matched, ANN)
    for day in (16, 17, 18, 19):
        bounce(matched, report(verp, ANN, "4.2.2", "delayed"), verp, f"2026-03-{day}T10:00:00Z")
    assert status(matched, ANN) == "matched"
    with db(matched) as connection:
        [(score, count, kind)] = connection.execute(
            "SELECT score, bounces, last_kind FROM bounce_scores WHERE address = ?", [ANN]
        ).fetchall()
    assert (count, kind) == (4, "temporary")
    assert 3.5 < score < 4.0


def test_a_report_without_our_return_path_counts_only_when_it_quotes_our_mail(matched):
    with db(matched) as connection:
        [(intro,)] = connection.execute(
            "SELECT message_id FROM outbox WHERE recipient = ?", [CHEN]
        ).fetchall()
    forged = bounce(matched, report(PROGRAM, CHEN), PROGRAM, "2026-03-16T10:00:00Z")
    assert forged == "ignored:delivery-report:names nobody we write to"
    quoting = report(PROGRAM, CHEN, original=intro)
    outcome = bounce(matched, quoting, PROGRAM, "2026-03-16T11:00:00Z")
    assert outcome == "ignored:delivery-report:chen@lib.example.cn permanent (3.0)"
    stranger = bounce(
        matched, report(PROGRAM, "nobody@else.example"), PROGRAM, "2026-03-16T10:00:00Z"
    )
    assert stranger == "ignored:delivery-report:names nobody we write to"


def test_a_forged_return_path_names_nobody(matched):
    forged = "program+bounce-0123456789abcdef0123@example.org"
    outcome = bounce(
        matched, report(forged, "someone@else.example"), forged, "2026-03-16T10:00:00Z"
    )
    assert outcome == "ignored:delivery-report:names nobody we write to"
    with db(matched) as connection:
        assert connection.execute("SELECT count(*) FROM bounce_scores").fetchone()[0] == 0


def test_an_auto_reply_to_the_return_path_is_not_a_bounce(matched):
    verp = return_path(matched, ANN)
    away = compose(ANN, "I am away until April.", "Out of Office: Welcome", to=verp)
    outcome = bounce(matched, wire(away), verp, "2026-03-16T10:00:00Z")
    assert outcome.startswith("ignored:")
    with db(matched) as connection:
        assert connection.execute("SELECT count(*) FROM bounce_scores").fetchone()[0] == 0
    assert status(matched, ANN) == "matched"


def test_deleting_my_data_forgets_the_return_path_and_the_score(matched):
    verp = return_path(matched, ANN)
    bounce(matched, report(verp, ANN), verp, "2026-03-16T10:00:00Z")
    command(matched, "ingest", stdin=wire(compose(ANN, "DELETE MY DATA")))
    confirm = [m for m in mail(matched) if m["X-Mailflow-Template"] == "delete-confirm"][-1]
    to = email.utils.parseaddr(str(confirm["Reply-To"]))[1]
    yes = compose(ANN, "YES", "Re: " + str(confirm["Subject"]), to=to)
    command(matched, "ingest", "--recipient", to, stdin=wire(yes))
    assert mail(matched)[-1]["X-Mailflow-Template"] == "data-deleted"
    with db(matched) as connection:
        # Not even the farewell's return path keeps the address.
        codes = "SELECT count(*) FROM bounce_codes WHERE address = ?"
        assert connection.execute(codes, [ANN]).fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM bounce_scores").fetchone()[0] == 0
