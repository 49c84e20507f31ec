"""Acting in a name needs proof of that name (issue 16, review findings M1, M2, M3, M7,
M10, M11): each test replays the review's attack through `mailflow ingest` (its function, in
process), a forged `From:` and nothing else, and checks that nothing changed, what was mailed to the
address's owner instead, and that the owner's own reply still works."""

from __future__ import annotations

import email.policy
import email.utils
import sqlite3
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import compose, form_text, ingest, tick
from tests.mailbox import delivered, templates
from tests.people import ANN, CHEN, COORDINATOR
from tests.signing import DOMAIN, signed

ALICE = "alice@example.net"


def reply(home: Path, to_mail: EmailMessage, sender: str, text: str, now: str = "") -> str:
    """The owner of `sender` replies to mail of ours, as a client does; the outcome."""
    target = email.utils.parseaddr(str(to_mail["Reply-To"] or to_mail["From"]))[1]
    message = compose(
        sender, text, "Re: " + str(to_mail["Subject"]), to=target, in_reply_to=to_mail["Message-ID"]
    )
    return ingest(home, [message], **({"now": now} if now else {}))[0]


def last(home: Path, to: str, template: str) -> EmailMessage:
    return [m for m in delivered(home, to) if m["X-Mailflow-Template"] == template][-1]


def row(home: Path, sql: str, *params) -> tuple | None:
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute(sql, params).fetchone()


def status(home: Path, address: str) -> str | None:
    found = row(home, "SELECT status FROM participants WHERE email = ?", address)
    return found[0] if found else None


def apply_as(home: Path, address: str) -> None:
    """A proper application: APPLY, and the form replied to its token."""
    ingest(home, [compose(address, "APPLY")])
    outcome = reply(home, last(home, address, "application-form"), address, form_text())
    assert "application-received" in outcome


def forged(home: Path, sender: str, text: str, now: str = "") -> str:
    """A message with `sender` on its From line, from someone who never sees its mail."""
    return ingest(home, [compose(sender, text)], **({"now": now} if now else {}))[0]


# --- M1: participants' commands on a forged From --------------------------------------


def test_a_forged_update_changes_nothing_until_the_owner_confirms(home):
    apply_as(home, ALICE)
    outcome = forged(home, ALICE, "UPDATE\nName: Mallory Was Here\nAbout me: rewritten")
    assert outcome.endswith("change-confirm")
    assert row(home, "SELECT name FROM participants WHERE email = ?", ALICE) == ("Ann Okafor",)
    asked = last(home, ALICE, "change-confirm")
    text = asked.get_content()
    assert "Name: Mallory Was Here  (now: Ann Okafor)" in text
    assert "If this wasn't you, ignore this mail: nothing changes." in text
    # A reply that is not a clear yes changes nothing either.
    assert reply(home, asked, ALICE, "What? No!").endswith("change-cancelled")
    assert row(home, "SELECT name FROM participants WHERE email = ?", ALICE) == ("Ann Okafor",)
    # The owner's own UPDATE, confirmed by YES, is carried out.
    forged(home, ALICE, "UPDATE\nTime zone: Lagos")
    assert reply(home, last(home, ALICE, "change-confirm"), ALICE, "YES").endswith("updated")
    assert row(home, "SELECT time_zone FROM participants WHERE email = ?", ALICE) == (
        "Africa/Lagos",
    )


def test_a_forged_stop_stops_the_mail_but_ends_no_partnership_until_proven(matched):
    home = matched
    outcome = forged(home, ANN, "STOP", now="2026-03-10T09:00:00Z")
    assert "mail-stopped" in outcome
    assert status(home, ANN) == "paused" and status(home, CHEN) == "matched"
    assert row(home, "SELECT count(*) FROM partnerships WHERE state = 'active'") == (4,)
    assert [m for m in delivered(home, CHEN) if m["X-Mailflow-Template"] == "partner-left"] == []
    answer = last(home, ANN, "optout-confirmed")
    assert "We have stopped all mail to you" in answer.get_content()
    assert "reply UNDO to this message" in answer.get_content()
    # Scheduled mail has stopped at once: no check-in for Ann, Chen gets hers.
    tick(home, "2026-03-16T09:00:00Z")
    assert "checkin" not in templates(home, ANN) and "checkin" in templates(home, CHEN)
    # It wasn't her: UNDO puts everything back.
    assert reply(home, answer, ANN, "UNDO", now="2026-03-16T10:00:00Z").endswith("resumed")
    assert status(home, ANN) == "matched"
    # Her own STOP, proven by her reply, ends the partnership; Chen is told.
    forged(home, ANN, "STOP", now="2026-03-18T09:00:00Z")
    answer = last(home, ANN, "optout-confirmed")
    assert "left" in reply(home, answer, ANN, "YES", now="2026-03-18T10:00:00Z")
    assert status(home, ANN) == "left"
    assert "partner-left" in templates(home, CHEN)


def test_a_forged_resume_does_not_undo_her_stop(matched):
    home = matched
    forged(home, ANN, "STOP", now="2026-03-10T09:00:00Z")
    assert status(home, ANN) == "paused"
    # A forger writes RESUME in her name: her mail must not start again unasked.
    outcome = forged(home, ANN, "RESUME", now="2026-03-11T09:00:00Z")
    assert outcome.endswith("change-confirm")
    assert status(home, ANN) == "paused"
    tick(home, "2026-03-16T09:00:00Z")
    assert "checkin" not in templates(home, ANN)
    asked = last(home, ANN, "change-confirm")
    assert "end your pause" in asked.get_content()
    # Her own YES to the question resumes it.
    assert reply(home, asked, ANN, "YES", now="2026-03-16T10:00:00Z").endswith("resumed")
    assert status(home, ANN) == "matched"


def test_a_forged_pause_is_asked_about_first(matched):
    outcome = forged(matched, ANN, "PAUSE until 1 January 2028", now="2026-03-10T09:00:00Z")
    assert outcome.endswith("change-confirm")
    assert status(matched, ANN) == "matched"
    asked = last(matched, ANN, "change-confirm")
    assert "pause your participation until 2028-01-01" in asked.get_content()
    assert reply(matched, asked, ANN, "yes", now="2026-03-10T10:00:00Z").endswith("paused")
    assert status(matched, ANN) == "paused"


def test_a_forged_again_does_not_sign_up_someone_who_left(home):
    apply_as(home, ALICE)
    with sqlite3.connect(home / "mailflow.db") as db:  # she left (how is not the point here)
        db.execute("UPDATE participants SET status = 'left' WHERE email = ?", [ALICE])
    assert forged(home, ALICE, "AGAIN").endswith("change-confirm")
    assert status(home, ALICE) == "left"
    asked = last(home, ALICE, "change-confirm")
    assert "sign you up again" in asked.get_content()
    assert reply(home, asked, ALICE, "Confirm.").endswith("signup-again")
    assert status(home, ALICE) == "applied"


# --- M2: a cold form confirmed by a refusal ----------------------------------------------


def test_a_cold_form_is_not_confirmed_by_a_puzzled_reply(home):
    vera = "vera@example.com"
    assert forged(home, vera, form_text(name="Vera (see http evil)")).endswith(
        "application-confirm"
    )
    confirm = last(home, vera, "application-confirm")
    outcome = reply(home, confirm, vera, "What is this? I never applied.")
    assert outcome.endswith("application-cancelled")
    assert row(home, "SELECT count(*) FROM participants") == (0,)
    assert row(home, "SELECT count(*) FROM applications") == (0,)


# --- M3: a forged APPLY lifting an erasure -------------------------------------------------


def test_a_forged_apply_does_not_lift_an_erasure(home):
    gone = "gone@example.com"
    apply_as(home, gone)
    forged(home, gone, "DELETE MY DATA")
    assert "erased" in reply(home, last(home, gone, "delete-confirm"), gone, "YES")
    assert forged(home, gone, "HELP") == "ignored:erased"
    # The forged APPLY: the form goes to the address as the farewell did; the mark stays.
    assert forged(home, gone, "APPLY").endswith("application-form")
    assert forged(home, gone, "HELP") == "ignored:erased"
    assert forged(home, gone, "APPLY") == "ignored:erased:form-sent-today"
    assert row(home, "SELECT count(*) FROM erased") == (1,)
    # Only the owner, answering that form, is taken back. (Read from the outbox: its row id
    # may be the farewell's, forgotten once delivered, and so its Maildir file name too.)
    raw = row(home, "SELECT raw FROM outbox WHERE recipient = ? ORDER BY id DESC", gone)[0]
    form = email.message_from_bytes(raw, policy=email.policy.default)
    assert form["X-Mailflow-Template"] == "application-form"
    assert reply(home, form, gone, form_text()).endswith("application-received")
    assert row(home, "SELECT count(*) FROM erased") == (0,)
    assert status(home, gone) == "applied"


# --- M7: reflected spam ------------------------------------------------------------------


def test_a_stranger_gets_one_fixed_answer_a_day_that_quotes_nothing(home):
    spam = [
        compose(
            f"victim{n % 2}@example.com",
            f"Buy cheap pills at http://spam.example/{n}",
            name="Cheap Pills Here",
        )
        for n in range(6)
    ]
    outcomes = ingest(home, spam)
    assert [o.split(" ")[0] for o in outcomes] == ["not-understood"] * 2 + [
        "ignored:not-understood-today"
    ] * 4
    for victim in ("victim0@example.com", "victim1@example.com"):
        [answer] = delivered(home, victim)
        assert "spam.example" not in answer.as_string() and "Pills" not in answer.as_string()
        assert answer["To"].addresses[0].display_name == ""
    # A day later, one more each.
    later = [compose(f"victim{n}@example.com", "Buy cheap pills") for n in range(2)]
    ingest(home, later, now="2026-03-03T09:00:01Z")
    assert len(delivered(home, "victim0@example.com")) == 2


def test_token_expired_to_a_stranger_is_fixed_and_once_a_day(home):
    wrong = [
        compose(
            "x@example.com",
            "Buy pills",
            to="program+aaaaaaaaaaaaaaaa@example.org",
            name="Buy Pills",
        )
        for _ in range(3)
    ]
    outcomes = ingest(home, wrong)
    assert outcomes == ["token-expired -> token-expired"] + ["ignored:token-expired-today"] * 2
    [answer] = delivered(home, "x@example.com")
    assert "Pills" not in answer.as_string()


def test_a_cold_form_quoting_a_forgers_text_reaches_a_stranger_once_a_day(home):
    spam = [
        compose("target@example.com", form_text(about_me=f"Cheap pills at spam.example {n}"))
        for n in range(3)
    ]
    outcomes = ingest(home, spam)
    assert outcomes[0].endswith("application-confirm")
    assert outcomes[1:] == ["form:ignored:cold-form-today"] * 2
    assert len(delivered(home, "target@example.com")) == 1


# --- M10: a forger silencing the person's own STOP and erasure -------------------------------


def test_a_flood_in_her_name_does_not_stop_her_stop_being_acted_on(matched):
    now = "2026-03-10T09:00:00Z"
    ingest(matched, [compose(ANN, f"hello {n}") for n in range(11)], now=now)
    assert forged(matched, ANN, "STOP", now=now).startswith("rate-limited:acted:")
    assert status(matched, ANN) == "paused"  # her mail has stopped


def test_forged_yes_does_not_stop_her_yes_to_delete_being_acted_on(home):
    apply_as(home, ALICE)
    forged(home, ALICE, "DELETE MY DATA")
    confirm = last(home, ALICE, "delete-confirm")
    ingest(home, [compose(ALICE, "YES") for _ in range(3)])
    assert "erased" in reply(home, confirm, ALICE, "YES")
    assert row(home, "SELECT count(*) FROM participants WHERE email = ?", ALICE) == (0,)


def test_forged_unsubscribe_text_does_not_stop_her_unsubscribe(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    [checkin] = [m for m in delivered(matched, ANN) if m["X-Mailflow-Template"] == "checkin"]
    target = checkin["List-Unsubscribe"].strip("<>").removeprefix("mailto:")
    fixed = "This message was automatically generated by Gmail."
    now = "2026-03-17T09:00:00Z"
    ingest(matched, [compose(ANN, fixed) for _ in range(3)], now=now)
    ingest(matched, [compose(ANN, fixed, to=target)], now=now)
    assert status(matched, ANN) == "left"
    assert "partner-left" in templates(matched, CHEN)


# --- M11: a coordinator's autoresponder ---------------------------------------------------


def test_a_coordinators_autoresponder_loop_ends_within_ten_messages(home):
    env = {"MAILFLOW_COORDINATORS": COORDINATOR}
    ingest(home, [compose(COORDINATOR, "STATS")], **env)
    away = "Thank you for your message. I am away until Monday."
    for _ in range(20):
        latest = delivered(home, COORDINATOR)[-1]
        message = compose(
            COORDINATOR, away, "Re: " + str(latest["Subject"]), in_reply_to=latest["Message-ID"]
        )
        ingest(home, [message], **env)
    sent = templates(home, COORDINATOR)
    assert len(sent) <= 10, sent
    assert sent[-1] == "rate-limited"


# --- Proof by a trusted DKIM signature ---------------------------------------------------


def test_a_trusted_dkim_signature_proves_the_address_and_the_change_is_made_at_once(
    home,
    dns,
    keys,
):
    pat = "pat@program.example.org"  # the domain the test DNS publishes a key for
    apply_as(home, pat)
    trust = {"MAILFLOW_TRUST_DKIM": "1", "MAILFLOW_DKIM_RESOLVER": dns.address}
    _, raw = signed("UPDATE\nTime zone: Lagos", keys[DOMAIN][0], sender=pat)
    assert ingest(home, [email.message_from_bytes(raw)], **trust)[0].endswith("updated")
    assert row(home, "SELECT time_zone FROM participants WHERE email = ?", pat) == ("Africa/Lagos",)
    # Unsigned, the same From is asked about first.
    assert forged(home, pat, "PAUSE").endswith("change-confirm")
