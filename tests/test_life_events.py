"""Life events by mail: leaving (STOP, answer 4, List-Unsubscribe), the partner told and
rematched, pausing and resuming, UPDATE, DELETE MY DATA, and what the rules engine does
about unanswered check-ins and silent partners. In process, but for the one-click
unsubscribe, which the daemon's web endpoint takes."""

from __future__ import annotations

import email.utils
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import (
    Person,
    command,
    compose,
    free_port,
    program_at,
    start_daemon,
    tick,
    until,
)
from tests.mailbox import inbox, scheduled, to
from tests.people import (
    ANN,
    BO,
    CHEN,
    COORDINATOR,
    DEE,
    PEOPLE,
    WAITING,
    partnerships,
    roster,
    status,
)


@pytest.fixture
def with_waiting(matched, tmp_path):
    """The same, and Ivo and Jo (both in Kenya) left waiting by round 2's matching."""
    path = roster(tmp_path, WAITING)
    command(matched, "import", str(path), MAILFLOW_NOW="2026-03-03T09:00:00Z")
    command(matched, "match", MAILFLOW_NOW="2026-03-03T09:00:00Z")
    assert status(matched, "ivo@lib.example.ke") == "waiting"
    return matched


# --- Leaving -----------------------------------------------------------------------------


def test_stop_confirms_tells_the_partner_and_rematches_them_with_someone_waiting(with_waiting):
    home = with_waiting
    program = program_at(home, "2026-03-10T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        # The From line proves nothing: STOP stops the mail at once and the reply proves it.
        confirmed = ann.say_and_confirm("STOP", "optout-confirmed", confirm="optout-confirmed")
        assert "You have left" in confirmed.get_content()
        assert confirmed["Auto-Submitted"] == "auto-replied"
    finally:
        program.stop()
    assert status(home, ANN) == "left"
    left = inbox(home, CHEN, "partner-left")
    assert len(left) == 1 and "Ann Okafor has left" in left[0]["Subject"]
    assert "Ivo Mwangi was waiting for a partner" in left[0].get_content()
    # Chen and Ivo (Kenya, palaeography in common) are introduced to each other.
    [chen_intro] = inbox(home, CHEN, "rematch-intro")
    [ivo_intro] = inbox(home, "ivo@lib.example.ke", "rematch-intro")
    assert "Ivo Mwangi <ivo@lib.example.ke>" in chen_intro.get_content()
    assert "Chen Jing <chen@lib.example.cn>" in ivo_intro.get_content()
    assert "a partner has become free" in ivo_intro.get_content()
    assert "2026-07-02" in chen_intro.get_content()  # the rest of the old term
    assert status(home, "ivo@lib.example.ke") == "matched"
    assert status(home, "jo@lib.example.ke") == "waiting"
    assert ("dissolved", ANN, CHEN) in partnerships(home)
    assert ("active", CHEN, "ivo@lib.example.ke") in partnerships(home)
    assert inbox(home, ANN, "partner-left") == []

    # Ann gets nothing more; the new pair's first check-in comes 14 days after they met.
    tick(home, "2026-03-16T09:00:00Z")
    assert {to(m) for m in scheduled(home, "checkin")} == {p[0] for p in PEOPLE} - {ANN, CHEN}
    tick(home, "2026-03-24T09:00:00Z")
    assert {to(m) for m in scheduled(home, "checkin")} >= {CHEN, "ivo@lib.example.ke"}
    assert inbox(home, ANN, "checkin") == []


def test_when_nobody_waits_the_partner_is_told_and_waits_for_the_next_round(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        Person(program, CHEN, "Chen Jing").say_and_confirm(
            "Unsubscribe", "optout-confirmed", confirm="optout-confirmed"
        )
    finally:
        program.stop()
    [left] = inbox(matched, ANN, "partner-left")
    assert "Nobody is waiting for a partner just now" in left.get_content()
    assert "matched in Round 2" in left.get_content()
    assert inbox(matched, ANN, "rematch-intro") == []
    assert status(matched, ANN) == "waiting" and status(matched, CHEN) == "left"
    with sqlite3.connect(matched / "mailflow.db") as db:
        rounds = db.execute(
            "SELECT r.name FROM applications a JOIN rounds r ON r.id = a.round_id"
            " JOIN participants q ON q.id = a.participant_id WHERE q.email = ? ORDER BY a.id",
            [ANN],
        ).fetchall()
    assert rounds == [("Round 1",), ("Round 2",)]


def test_stop_twice_and_stop_from_a_stranger_are_answered_plainly(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        ann.say_and_confirm("LEAVE", "optout-confirmed", confirm="optout-confirmed")
        again = ann.say("opt out", expect="optout-confirmed")
        assert "You had already left" in again.get_content()
        stranger = Person(program, "who@else.example.net").say("STOP", expect="optout-confirmed")
        assert "We hold no application from who@else.example.net" in stranger.get_content()
    finally:
        program.stop()
    assert len(inbox(matched, CHEN, "partner-left")) == 1


def test_scheduled_mail_carries_list_unsubscribe_and_writing_to_it_is_stop(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    [checkin] = inbox(matched, BO, "checkin")
    header = checkin["List-Unsubscribe"]
    assert header.startswith("<mailto:program+") and header.endswith("@example.org>")
    assert "List-Unsubscribe-Post" not in checkin
    # One standing address per person: the next scheduled mail carries the same one.
    tick(matched, "2026-04-01T09:00:00Z")
    [topic] = inbox(matched, BO, "topic")
    assert topic["List-Unsubscribe"] == header
    # Answers to a person's own message carry none.
    target = header.strip("<>").removeprefix("mailto:")
    program = program_at(matched, "2026-04-02T09:00:00Z")
    try:
        bo = Person(program, BO, "Bo Lind")
        message = compose(BO, "", "unsubscribe", to=target)
        bo.send(message, to=target)
        [confirmed] = bo.expect(message, ["optout-confirmed"])
        # Answers carry one too; the one written to is used up, so it is a fresh one.
        assert confirmed["List-Unsubscribe"].startswith("<mailto:program+")
        assert confirmed["List-Unsubscribe"] != header
    finally:
        program.stop()
    assert status(matched, BO) == "left"
    assert len(inbox(matched, DEE, "partner-left")) == 1


def test_one_click_unsubscribe_is_offered_when_there_is_a_public_address(matched):
    command(
        matched, "tick", "--now", "2026-03-16T09:00:00Z", MAILFLOW_PUBLIC_URL="https://mf.example"
    )
    [checkin] = inbox(matched, BO, "checkin")
    mailto, https = checkin["List-Unsubscribe"].split(", ")
    assert mailto.startswith("<mailto:program+")
    assert https.startswith("<https://mf.example/unsubscribe/")
    assert checkin["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


# --- Check-in answers --------------------------------------------------------------------


def checkin_for(home: Path, address: str, number: int = 1):
    return next(m for m in inbox(home, address, "checkin") if f"check-in {number}" in m["Subject"])


def test_answer_three_nudges_the_partner_and_a_second_alerts_the_coordinators(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-17T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        thanks = ann.reply(checkin_for(matched, ANN), "3", expect="checkin-thanks")
        assert "We have sent Chen Jing a friendly note" in thanks.get_content()
        [nudge] = inbox(matched, CHEN, "partner-nudge")
        assert "Ann Okafor <ann@uni.example.edu> told us" in nudge.get_content()
        assert inbox(matched, COORDINATOR) == []
        chen = Person(program, CHEN, "Chen Jing")
        chen.reply(checkin_for(matched, CHEN), "no word from Ann either", expect="checkin-thanks")
    finally:
        program.stop()
    [alert] = inbox(matched, COORDINATOR, "partner-silent-alert")
    text = alert.get_content()
    assert "Ann Okafor <ann@uni.example.edu>, Nigeria" in text
    assert "#1: 3 (2026-03-17)" in text
    assert "2 answers of 'no word from my partner'" in text
    assert "List-Unsubscribe" not in alert
    assert len(inbox(matched, ANN, "partner-nudge")) == 1


def test_answer_four_is_leaving(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-17T09:00:00Z")
    try:
        Person(program, ANN, "Ann Okafor").reply(
            checkin_for(matched, ANN), "4", expect="optout-confirmed"
        )
    finally:
        program.stop()
    assert status(matched, ANN) == "left"
    assert len(inbox(matched, CHEN, "partner-left")) == 1


def test_one_reminder_goes_to_those_who_did_not_answer(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-18T09:00:00Z")
    try:
        Person(program, ANN).reply(checkin_for(matched, ANN), "1", expect="checkin-thanks")
    finally:
        program.stop()
    assert "checkin-reminder" not in tick(matched, "2026-03-21T08:59:00Z")
    assert "checkin-reminder: 7" in tick(matched, "2026-03-21T09:00:00Z")
    reminders = scheduled(matched, "checkin-reminder")
    assert ANN not in {to(m) for m in reminders}
    [bo] = [m for m in reminders if to(m) == BO]
    assert "check-in 1" in bo["Subject"] and "only reminder" in bo.get_content()
    assert "nothing due" in tick(matched, "2026-03-25T09:00:00Z")
    # A reply to the reminder counts as the answer to that check-in.
    program = program_at(matched, "2026-03-25T10:00:00Z")
    try:
        Person(program, BO).reply(bo, "2", expect="checkin-thanks")
    finally:
        program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        assert db.execute(
            "SELECT a.number, a.answer FROM checkin_answers a JOIN participants q"
            " ON q.id = a.participant_id WHERE q.email = ?",
            [BO],
        ).fetchall() == [(1, 2)]


def test_coordinators_hear_of_a_partnership_where_nobody_answers_for_three_weeks(matched):
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-17T09:00:00Z")
    try:
        Person(program, BO).reply(checkin_for(matched, BO), "1", expect="checkin-thanks")
    finally:
        program.stop()
    env = {"MAILFLOW_COORDINATORS": COORDINATOR}

    def alerts_after(now: str) -> list:
        tick(matched, now, **env)
        return inbox(matched, COORDINATOR, "partner-silent-alert")

    assert alerts_after("2026-04-06T08:59:00Z") == []
    [alert] = alerts_after("2026-04-06T09:00:00Z")  # check-in 1 of 16 March, 21 days on
    text = alert.get_content()
    assert alert["Subject"] == "3 partnerships may need you"  # Bo answered for Bo and Dee
    assert "Bo Lind" not in text
    assert "Ann Okafor and Chen Jing: nobody in the partnership has answered" in text
    assert "nobody has answered check-in 1 (sent 2026-03-16) for 21 days" in text
    # Once per silence: the three quiet pairs are not reported again for check-in 2 ...
    assert len(alerts_after("2026-04-07T09:00:00Z")) == 1
    assert len(alerts_after("2026-04-15T09:00:00Z")) == 1  # check-in 2 goes out
    assert len(alerts_after("2026-05-06T08:59:00Z")) == 1
    # ... but Bo and Dee, who answered check-in 1 and not check-in 2, are now.
    alerts = alerts_after("2026-05-06T09:00:00Z")
    assert len(alerts) == 2
    assert alerts[1]["Subject"] == "A partnership may need you: Bo Lind and Dee Brown"
    assert "the last answer came on 2026-03-17" in alerts[1].get_content()
    assert len(alerts_after("2026-05-07T09:00:00Z")) == 2


# --- Pausing -----------------------------------------------------------------------------


def test_pause_until_a_date_holds_everything_back_until_then(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        bo = Person(program, BO, "Bo Lind")
        paused = bo.say_and_confirm("PAUSE until 20 April", "paused")
        assert "paused until 2026-04-20" in paused.get_content()
        assert "Dee Brown" in paused.get_content()  # the partnership goes on
    finally:
        program.stop()
    assert status(matched, BO) == "paused"
    tick(matched, "2026-03-16T09:00:00Z")
    assert BO not in {to(m) for m in scheduled(matched, "checkin")}
    assert DEE in {to(m) for m in scheduled(matched, "checkin")}
    tick(matched, "2026-04-01T09:00:00Z")
    assert inbox(matched, BO, "topic") == []
    assert "resumed: 1" in tick(matched, "2026-04-20T00:00:00Z")
    [back] = inbox(matched, BO, "resumed")
    assert "Your pause has ended, as you asked" in back.get_content()
    assert status(matched, BO) == "matched"
    # Check-in 2 (15 April) is five days old: within the rules' seven, so it comes now.
    assert [m["Subject"] for m in inbox(matched, BO, "checkin")] == [
        "How is your partnership going? (check-in 2)"
    ]


def test_pause_and_resume_by_hand_and_a_date_that_cannot_be_read(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        bo = Person(program, BO, "Bo Lind")
        wrong = bo.say("PAUSE until I feel better", expect="paused")
        assert 'We could not read a date in "PAUSE until I feel better"' in wrong.get_content()
        assert status(matched, BO) == "matched"
        past = bo.say("PAUSE until 2026-01-05", expect="paused")
        assert "has already passed" in past.get_content()
        assert "write RESUME" in bo.say_and_confirm("pause", "paused").get_content()
        assert status(matched, BO) == "paused"
        welcome = bo.say_and_confirm("RESUME", "resumed")
        assert "Welcome back" in welcome.get_content() and "Dee Brown" in welcome.get_content()
        assert "was not paused" in bo.say("RESUME", expect="resumed").get_content()
    finally:
        program.stop()
    assert status(matched, BO) == "matched"


# --- UPDATE ------------------------------------------------------------------------------


def test_update_changes_only_the_lines_written_and_shows_the_result(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        bo = Person(program, BO, "Bo Lind")
        done = bo.say_and_confirm(
            "UPDATE\nTime zone: Europe/Berlin\nInterests: makerspaces; open access; games",
            "updated",
        )
        text = done.get_content()
        assert "Time zone: Europe/Berlin  (was: Europe/Stockholm)" in text
        assert "Country: Sweden (SE)" in text  # unchanged lines shown as held
        wrong = bo.say("UPDATE\nCountry: Atlantis", expect="updated")
        assert "Your details were not changed" in wrong["Subject"]
        assert "Country" in wrong.get_content() and "Atlantis" in wrong.get_content()
        empty = bo.say("UPDATE", expect="updated")
        assert "Time zone: Europe/Berlin" in empty.get_content()  # the example given
    finally:
        program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        row = db.execute(
            "SELECT time_zone, interests, country FROM participants WHERE email = ?", [BO]
        ).fetchone()
    assert row == ("Europe/Berlin", "makerspaces; open access; games", "SE")


# --- DELETE MY DATA ----------------------------------------------------------------------


def test_delete_my_data_asks_then_erases_all_but_a_hash_and_never_writes_again(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        bo = Person(program, BO, "Bo Lind")
        ask = bo.say("DELETE MY DATA", expect="delete-confirm")
        assert "leave your partnership with Dee Brown" in ask.get_content()
        kept = bo.reply(ask, "no thanks", expect="delete-cancelled")
        assert status(matched, BO) == "matched"
        ask = bo.say("delete my data", expect="delete-confirm")
        # The reply itself is erased with the rest, so its answer is found by address.
        target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
        bo.send(compose(BO, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"]), to=target)
        # The erasure removes the Maildir copies of mail to Bo meanwhile: a file listed
        # can be gone by the time it is read, and the next look is taken.
        bye = until(lambda: unless_gone(inbox, matched, BO, "data-deleted"), "the farewell")[0]
        assert "this is the last message you will get from us" in bye.get_content()
        assert kept is not None
        # From now on: silence, whatever they write (but APPLY).
        message = bo.send(compose(BO, "STATUS"))
        assert program.handled(message["Message-ID"])["outcome"] == "ignored:erased"
        assert program.answers_to(message["Message-ID"]) == []
    finally:
        program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM participants WHERE email = ?", [BO]).fetchone() == (
            0,
        )
        [erased] = db.execute(
            "SELECT email, name, country, about_me, status FROM participants WHERE email LIKE ?",
            ["%@erased.invalid"],
        ).fetchall()
        assert erased[1:] == ("", "", "", "left")
        assert db.execute(
            "SELECT count(*) FROM messages WHERE sender = ? OR raw LIKE ?", [BO, "%Bo Lind%"]
        ).fetchone() == (0,)
        queued = db.execute("SELECT template FROM outbox WHERE recipient = ?", [BO]).fetchall()
        assert queued == []  # even the last message is forgotten once delivered
        assert db.execute("SELECT count(*) FROM tokens WHERE address = ?", [BO]).fetchone() == (0,)
        [(digest,)] = db.execute("SELECT address_hash FROM erased").fetchall()
    assert BO not in digest and len(digest) == 64
    assert len(inbox(matched, DEE, "partner-left")) == 1
    tick(matched, "2026-03-16T09:00:00Z")
    assert inbox(matched, BO, "checkin") == []


def unless_gone(look, *args):
    try:
        return look(*args)
    except FileNotFoundError:
        return None


# --- AGAIN -------------------------------------------------------------------------------


def test_again_while_in_a_partnership_waits_for_the_end_of_the_term(matched):
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        said = Person(program, BO).say("AGAIN", expect="signup-again")
        assert "You are in a partnership with Dee Brown until 2026-07-02" in said.get_content()
        form = Person(program, "new@lib.example.org").say("REJOIN", expect="application-form")
        assert form is not None
    finally:
        program.stop()
    assert status(matched, BO) == "matched"


def test_the_address_a_reply_goes_to_is_the_from_address(matched):
    """A forged Reply-To never receives anything: STOP's answer goes to the From address."""
    program = program_at(matched, "2026-03-10T09:00:00Z")
    try:
        bo = Person(program, BO)
        message = compose(BO, "STOP", headers={"Reply-To": "thief@evil.example"})
        bo.send(message)
        [answer] = bo.expect(message, ["optout-confirmed"])
        assert email.utils.parseaddr(answer["To"])[1] == BO
    finally:
        program.stop()


def test_one_click_unsubscribe_is_a_post_and_a_get_changes_nothing(matched):
    port = free_port()
    public = {
        "MAILFLOW_PUBLIC_URL": "https://mf.example",
        "MAILFLOW_HTTP_LISTEN": f"127.0.0.1:{port}",
    }
    daemon = start_daemon(
        matched, MAILFLOW_NOW="2026-03-16T09:00:00Z", MAILFLOW_COORDINATORS=COORDINATOR, **public
    )
    try:
        until(lambda: inbox(matched, BO, "checkin"), "the first check-in")
        [checkin] = inbox(matched, BO, "checkin")
        url = checkin["List-Unsubscribe"].split(", ")[1].strip("<>")
        local = url.replace("https://mf.example", f"http://127.0.0.1:{port}")
        with urllib.request.urlopen(local, timeout=10) as page:  # a link checker's GET
            shown = page.read()
        assert b"<button>Unsubscribe</button>" in shown
        assert f'action="{urllib.parse.urlsplit(local).path}"'.encode() in shown
        assert status(matched, BO) == "matched"
        body = b"List-Unsubscribe=One-Click"
        with urllib.request.urlopen(urllib.request.Request(local, data=body), timeout=10) as done:
            assert done.status == 200 and b"You have left" in done.read()
        assert status(matched, BO) == "left"
        until(lambda: inbox(matched, DEE, "partner-left"), "Dee to hear that Bo left")
        assert len(inbox(matched, BO, "optout-confirmed")) == 1
        wrong = local.rsplit("/", 1)[0] + "/aaaaaaaaaaaaaaaa"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(wrong, data=body), timeout=10)
        assert refused.value.code == 404
        assert b"unknown or has expired" in refused.value.read()
    finally:
        daemon.stop()
