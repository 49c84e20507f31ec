"""Coordinators facilitate a round's discussion: held posts decided by a reply (APPROVE,
REJECT reason), HOLD and RELEASE, DISCUSSION OFF and ON, country coordinators kept to
their countries, and no mail loop through the discussion's address. In process, on a copy
of conftest's `prepared` program (round 1: eight people in four partnerships; Ivo and Jo
waiting; a coordinator for Kenya and Sweden), with its own rules folder so that a test can
say what is held."""

from __future__ import annotations

import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import ROOT, InProcess, Person, compose, start_in_process
from tests.mailbox import PROGRAM, delivered, inbox, mails, text, to
from tests.people import ANN, BO, CHEN, COORDINATOR, DEE, KENYA, audit

NOW = "2026-03-04T09:00:00Z"
RULES = """[delivery]
default = "every"

[moderation]
hold = "{hold}"
"""


def set_hold(running: InProcess, hold: str) -> None:
    """rules/discussion.toml says what is held; every post goes to everyone as it comes. The
    running program reads the file again when it changes."""
    (Path(running.program.config.rules) / "discussion.toml").write_text(
        RULES.format(hold=hold), encoding="utf-8"
    )


@pytest.fixture
def moderated(prepared: Path, tmp_path: Path):
    """The prepared program on 4 March 2026, COORDINATOR configured, its rules a copy of the
    shipped ones that the test may change (nothing held to begin with)."""
    home = tmp_path / "var"
    shutil.copytree(prepared, home)
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    running = start_in_process(
        home, MAILFLOW_NOW=NOW, MAILFLOW_COORDINATORS=COORDINATOR, MAILFLOW_RULES=str(rules)
    )
    set_hold(running, "none")
    yield running
    running.stop()


def rows(running: InProcess, sql: str, *params) -> list[tuple]:
    return [tuple(row) for row in running.query(sql, *params)]


def round_of(running: InProcess, address: str = ANN) -> int:
    [(round_id,)] = running.query(
        "SELECT p.round_id FROM partnerships p JOIN participants q"
        " ON q.id IN (p.member_a, p.member_b) WHERE q.email = ? AND p.state = 'active'",
        address,
    )
    return round_id


def round_address(running: InProcess, address: str = ANN) -> str:
    return f"program+round-{round_of(running, address)}@example.org"


def posts(running: InProcess) -> list[tuple]:
    return [
        tuple(row)
        for row in running.query(
            "SELECT author_email, subject, state, decided_by, reason FROM discussion_posts"
            " ORDER BY id"
        )
    ]


def copies(running: InProcess) -> list[EmailMessage]:
    return [m for m in mails(running.home) if m["X-Mailflow-Template"] == "discussion-post"]


def held_mails(running: InProcess, coordinator: str) -> list[EmailMessage]:
    return inbox(running.home, coordinator, "discussion-held")


def post(
    running: InProcess,
    sender: str,
    body: str,
    subject: str,
    expect: str | None,
    *,
    name: str = "",
    where: str = "",
):
    """`sender` writes to their round's address (or `where`) and replies YES to the
    confirmation, as the owner of the address does; the answer to that YES
    (discussion-pending when held)."""
    writer = Person(running, sender, name)
    where = where or round_address(running, sender)
    asked = writer.say(body, subject=subject, to=where, expect="discussion-confirm")
    return writer.reply(asked, "YES", expect=expect)


def decide(running: InProcess, coordinator: str, held: EmailMessage, line: str, expect):
    return Person(running, coordinator).reply(held, line, expect=expect)


# --- What the rules hold ----------------------------------------------------------------------


def test_with_hold_first_a_first_post_waits_and_the_next_goes_at_once(moderated):
    set_hold(moderated, "first")
    pending = post(
        moderated, ANN, "Who catalogues manuscripts?", "Manuscripts", "discussion-pending"
    )
    assert "waits for a coordinator" in text(pending)
    assert posts(moderated) == [(ANN, "Manuscripts", "held", None, "first")]
    assert copies(moderated) == []
    [held] = held_mails(moderated, COORDINATOR)
    assert "each person's first post is read first" in text(held)
    assert "Who catalogues manuscripts?" in text(held)
    # Ann (Nigeria) is not the Kenya and Sweden coordinator's to decide: never asked.
    assert held_mails(moderated, KENYA) == []
    decide(moderated, COORDINATOR, held, "Approve.", "discussion-decided")
    assert len(copies(moderated)) == 7
    # Her second post is not her first published one: it goes out at once, unasked.
    post(moderated, ANN, "And who digitises them?", "Digitising", None)
    assert [p[2] for p in posts(moderated)] == ["published", "published"]
    assert len(copies(moderated)) == 14
    assert len(held_mails(moderated, COORDINATOR)) == 1


def test_with_hold_all_every_post_waits(moderated):
    set_hold(moderated, "all")
    post(moderated, CHEN, "Metadata tips, anyone?", "Metadata", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    assert "every post is read first" in text(held)
    decide(moderated, COORDINATOR, held, "APPROVE", "discussion-decided")
    post(moderated, CHEN, "Thanks all.", "Thanks", "discussion-pending")
    assert [p[2] for p in posts(moderated)] == ["published", "held"]
    assert len(held_mails(moderated, COORDINATOR)) == 2
    assert len(copies(moderated)) == 7


# --- HOLD, a held post, APPROVE --------------------------------------------------------------


def confirm(person: Person, lines: str) -> tuple[EmailMessage, EmailMessage]:
    preview = person.say(lines, expect="command-confirm")
    assert "Nothing has changed yet" in text(preview)
    return preview, person.reply(preview, "CONFIRM", expect="command-result")


def test_hold_then_a_held_post_approved_by_reply_reaches_everyone_else(moderated):
    coordinator = Person(moderated, COORDINATOR)
    preview, result = confirm(coordinator, f"HOLD {ANN}")
    assert "Holds the discussion posts of Ann Okafor <ann@uni.example.edu> (Nigeria)" in text(
        preview
    )
    assert "now wait for a coordinator's APPROVE" in text(result)
    assert rows(moderated, "SELECT email, held_by FROM discussion_holds") == [(ANN, COORDINATOR)]

    post(
        moderated, ANN, "Hello all, I work on palaeography.", "Introductions", "discussion-pending"
    )
    assert posts(moderated) == [(ANN, "Introductions", "held", None, "held")]
    [held] = held_mails(moderated, COORDINATOR)
    assert held["Subject"] == "Approve a post: Introductions"
    assert "its author's posts are held" in text(held)
    assert "Ann Okafor (Nigeria) <ann@uni.example.edu>" in text(held)
    assert copies(moderated) == []

    answer = decide(moderated, COORDINATOR, held, "approve", "discussion-decided")
    assert answer["Subject"] == "Re: Approve a post: Introductions"  # in its thread
    assert "sent to the Round 1 discussion: to its 7 other participants" in text(answer)
    assert posts(moderated) == [(ANN, "Introductions", "published", COORDINATOR, "held")]
    sent = copies(moderated)
    assert sorted(to(m) for m in sent) == sorted(
        a[0]
        for a in moderated.query("SELECT email FROM participants WHERE status = 'matched'")
        if a[0] != ANN
    )
    for copy in sent:
        assert copy["Subject"] == "[Round 1] Introductions"
        assert copy["From"].addresses[0].display_name.startswith("Ann Okafor (Nigeria) via ")
        assert ANN not in str(copy) and "ann@" not in copy.as_string()
        assert "Hello all, I work on palaeography." in text(copy)
    assert len({copy["Message-ID"] for copy in sent}) == 1
    # The author is not told of the approval; nobody else is told anything about it.
    assert [m["X-Mailflow-Template"] for m in delivered(moderated.home, ANN)][-1] == (
        "discussion-pending"
    )
    assert [row[1:3] for row in audit(moderated.home)][-1] == (
        "approve [post 1]",
        "held post reply",
    )
    # The token was single-use: replying APPROVE again to the same mail is a dead token.
    Person(moderated, COORDINATOR).reply(held, "APPROVE", expect="token-expired")
    assert len(copies(moderated)) == 7


def test_reject_with_a_reason_reaches_the_author_and_nobody_else(moderated):
    set_hold(moderated, "all")
    post(moderated, BO, "Buy my library software!", "Offer", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    before = len(mails(moderated.home))
    answer = decide(
        moderated,
        COORDINATOR,
        held,
        "REJECT: advertising is not allowed here",
        "discussion-decided",
    )
    assert "Its author was told, with your reason" in text(answer)
    assert posts(moderated) == [
        (BO, "Offer", "rejected", COORDINATOR, "advertising is not allowed here")
    ]
    [told] = inbox(moderated.home, BO, "discussion-rejected")
    assert told["Subject"] == "Your post was not sent: Offer"
    assert "advertising is not allowed here" in text(told)
    assert COORDINATOR not in told.as_string()  # a coordinator decided, unnamed
    # Two mails, and only two: the answer to the coordinator, the notice to the author.
    new = mails(moderated.home)[before:]
    assert sorted((to(m), m["X-Mailflow-Template"]) for m in new) == [
        (BO, "discussion-rejected"),
        (COORDINATOR, "discussion-decided"),
    ]
    assert copies(moderated) == []


def test_a_long_reason_is_cut_and_a_reason_on_the_next_line_is_read(moderated):
    set_hold(moderated, "all")
    post(moderated, BO, "First", "One", "discussion-pending")
    post(moderated, BO, "Second", "Two", "discussion-pending")
    first, second = held_mails(moderated, COORDINATOR)
    decide(moderated, COORDINATOR, first, "Reject\n" + "too long " * 100, "discussion-decided")
    decide(moderated, COORDINATOR, second, "reject", "discussion-decided")
    reasons = [p[4] for p in posts(moderated)]
    assert len(reasons[0]) <= 500 and reasons[0].startswith("too long") and reasons[0][-1] == "…"
    assert reasons[1] == ""
    told = inbox(moderated.home, BO, "discussion-rejected")
    assert "The coordinator gave no reason." in text(told[1])


def test_the_first_coordinator_decides_and_a_later_one_is_told_who_did(moderated):
    set_hold(moderated, "all")
    post(moderated, BO, "Makerspaces in Stockholm", "Makerspaces", "discussion-pending")
    # Bo is in Sweden: both the program-wide and the Kenya and Sweden coordinator are asked.
    [mine] = held_mails(moderated, COORDINATOR)
    [theirs] = held_mails(moderated, KENYA)
    assert mine["Reply-To"] != theirs["Reply-To"]
    decide(moderated, KENYA, theirs, "APPROVE", "discussion-decided")
    late = decide(moderated, COORDINATOR, mine, "REJECT off topic", "discussion-decided")
    assert f"already approved by {KENYA}" in text(late)
    assert posts(moderated) == [(BO, "Makerspaces", "published", KENYA, "all")]
    assert inbox(moderated.home, BO, "discussion-rejected") == []
    assert len(copies(moderated)) == 7


def test_a_forged_approve_does_nothing(moderated):
    set_hold(moderated, "all")
    post(moderated, ANN, "A held post", "Held", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    # Written cold to the program's address, in the coordinator's name: not a command.
    cold = Person(moderated, COORDINATOR).say("APPROVE", expect="command-result")
    assert "Not understood" in text(cold)
    # To the token's address, from another address: a dead token to that sender.
    Person(moderated, "mallory@evil.example").reply(held, "APPROVE", expect="token-expired")
    # From another coordinator, to a token that is not theirs: the same.
    Person(moderated, KENYA).reply(held, "APPROVE", expect="token-expired")
    assert [p[2] for p in posts(moderated)] == ["held"]
    assert copies(moderated) == []
    # The owner's reply still decides.
    decide(moderated, COORDINATOR, held, "APPROVE", "discussion-decided")
    assert len(copies(moderated)) == 7


def test_an_unclear_reply_asks_again_and_its_answer_decides(moderated):
    set_hold(moderated, "all")
    post(moderated, ANN, "A held post", "Held", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    again = decide(moderated, COORDINATOR, held, "Approve? not sure", "discussion-decided")
    assert "neither APPROVE nor REJECT" in text(again)
    assert [p[2] for p in posts(moderated)] == ["held"] and copies(moderated) == []
    decide(moderated, COORDINATOR, again, "approve!", "discussion-decided")
    assert [p[2] for p in posts(moderated)] == ["published"]
    assert len(copies(moderated)) == 7


def test_a_post_whose_author_was_erased_is_gone(moderated):
    set_hold(moderated, "all")
    post(moderated, ANN, "A held post", "Held", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    ann = Person(moderated, ANN)
    asked = ann.say("DELETE MY DATA", expect="delete-confirm")
    target = asked["Reply-To"].addresses[0].addr_spec
    ann.send(compose(ANN, "YES", "Re: x", to=target, in_reply_to=asked["Message-ID"]), to=target)
    assert inbox(moderated.home, ANN, "data-deleted")  # the farewell; her message is gone
    answer = decide(moderated, COORDINATOR, held, "APPROVE", "discussion-decided")
    assert "That post is gone" in text(answer)
    assert posts(moderated) == [] and copies(moderated) == []


# --- Country coordinators --------------------------------------------------------------------


def test_a_country_coordinator_holds_only_their_countries(moderated):
    kenya = Person(moderated, KENYA)
    refused = kenya.say(f"HOLD {ANN}", expect="command-result")
    assert f"Not possible: no participant in your countries has the address {ANN}" in text(refused)
    refused = kenya.say("HOLD someone@nowhere.example", expect="command-result")
    assert "no participant in your countries" in text(refused)
    preview, result = confirm(kenya, f"HOLD {BO}")
    assert "Bo Lind <bo@lib.example.se> (Sweden)" in text(result)
    assert rows(moderated, "SELECT email, held_by FROM discussion_holds") == [(BO, KENYA)]
    # A program-wide coordinator may hold an address nobody has yet.
    preview, _ = confirm(Person(moderated, COORDINATOR), "HOLD newcomer@lib.example.org")
    assert "No participant has this address yet" in text(preview)
    held = {row[0] for row in moderated.query("SELECT email FROM discussion_holds")}
    assert held == {BO, "newcomer@lib.example.org"}


def test_release_and_what_the_previews_say(moderated):
    coordinator = Person(moderated, COORDINATOR)
    refused = coordinator.say(f"RELEASE {DEE}", expect="command-result")
    assert "Not possible: the discussion posts of Dee Brown" in text(refused)
    confirm(coordinator, f"HOLD {DEE}")
    refused = coordinator.say(f"HOLD {DEE}", expect="command-result")
    assert "are already held" in text(refused)
    post(moderated, DEE, "Outreach ideas", "Outreach", "discussion-pending")
    preview, result = confirm(coordinator, f"RELEASE {DEE}")
    assert "Releases Dee Brown" in text(preview)
    assert "1 post of theirs already waits for APPROVE or REJECT" in text(preview)
    assert "no longer wait for a coordinator" in text(result)
    assert moderated.query("SELECT * FROM discussion_holds") == []
    # Released: the next post goes at once; the one held before still waits.
    post(moderated, DEE, "More outreach", "More", None)
    assert [p[2] for p in posts(moderated)] == ["held", "published"]
    assert len(copies(moderated)) == 7


# --- DISCUSSION OFF and ON -------------------------------------------------------------------


def test_discussion_off_refuses_posts_and_approvals_and_on_brings_them_back(moderated):
    set_hold(moderated, "all")
    post(moderated, ANN, "Held before the pause", "Before", "discussion-pending")
    [held] = held_mails(moderated, COORDINATOR)
    coordinator = Person(moderated, COORDINATOR)
    # Only a program-wide coordinator turns a discussion off.
    refused = Person(moderated, KENYA).say("DISCUSSION OFF", expect="command-result")
    assert "only a program-wide coordinator can turn a round's discussion off" in text(refused)
    preview, result = confirm(coordinator, "DISCUSSION OFF")
    assert "Turns the Round 1 discussion off" in text(preview)
    assert "The Round 1 discussion is off" in text(result)
    round_id = round_of(moderated)
    assert rows(moderated, "SELECT round_id, turned_off_by FROM discussion_off") == [
        (round_id, COORDINATOR)
    ]
    refused = coordinator.say("DISCUSSION OFF Round 1", expect="command-result")
    assert "already off" in text(refused)
    # A post is refused while it is off ...
    writer = Person(moderated, CHEN)
    refusal = writer.say(
        "While off", subject="Off", to=round_address(moderated, CHEN), expect="discussion-refused"
    )
    assert "paused the Round 1 discussion" in text(refusal)
    # ... and a held post can't be approved; the answer asks again once it is on.
    again = decide(moderated, COORDINATOR, held, "APPROVE", "discussion-decided")
    assert "The Round 1 discussion is turned off" in text(again)
    assert [p[2] for p in posts(moderated)] == ["held"] and copies(moderated) == []

    preview, result = confirm(coordinator, "DISCUSSION ON round 1")
    assert "Turns the Round 1 discussion on again" in text(preview)
    assert "is on again" in text(result)
    assert moderated.query("SELECT * FROM discussion_off") == []
    decide(moderated, COORDINATOR, again, "APPROVE", "discussion-decided")
    assert [p[2] for p in posts(moderated)] == ["published"]
    assert len(copies(moderated)) == 7
    refused = coordinator.say("DISCUSSION ON", expect="command-result")
    assert "the Round 1 discussion is not off" in text(refused)
    refused = coordinator.say("DISCUSSION OFF Round 9", expect="command-result")
    assert "no round is named 'Round 9'" in text(refused)


# --- No loops -----------------------------------------------------------------------------


LOOPS = {  # case: (headers, From, the outcome recorded)
    "own address": ({}, PROGRAM, "discussion:ignored:own-mail"),
    "own token address": ({}, "program+round-1@example.org", "discussion:ignored:own-mail"),
    "own mail come back": (
        {"X-Mailflow-Template": "discussion-post"},
        ANN,
        "discussion:ignored:own-mail",
    ),
    "list mail": ({"List-Id": "<other.lists.example.org>"}, ANN, "ignored:list-mail"),
    "precedence list": ({"Precedence": "list"}, ANN, "ignored:precedence"),
    "auto-submitted": ({"Auto-Submitted": "auto-replied"}, ANN, "ignored:auto-submitted"),
    "out of office": ({}, ANN, "ignored:away-subject"),
    "autoresponder": ({"X-Autoreply": "yes"}, ANN, "ignored:autoreply-header"),
}


@pytest.mark.parametrize("case", list(LOOPS))
def test_mail_from_programs_never_reaches_the_discussion_and_is_not_answered(moderated, case):
    headers, sender, outcome = LOOPS[case]
    subject = "Out of office: back Monday" if case == "out of office" else "[Round 1] Hello"
    before = len(mails(moderated.home))
    where = round_address(moderated)
    message = compose(sender, "I am away until Monday.", subject, to=where, headers=headers)
    moderated.send(message, sender=sender, to=[where])
    assert moderated.handled(message["Message-ID"])["outcome"] == outcome
    assert posts(moderated) == []
    assert len(mails(moderated.home)) == before  # nothing answered, nothing posted


def test_a_copy_of_a_post_sent_back_to_the_discussion_is_set_aside(moderated):
    """A forwarder (or a participant's rule) sends a copy, as it came, to the round's address."""
    post(moderated, ANN, "Hello everyone", "Hello", None)
    copy = copies(moderated)[0]
    before = len(mails(moderated.home))
    del copy["Message-ID"]
    copy["Message-ID"] = "<forwarded-copy@lib.example.cn>"
    moderated.send(copy, sender=CHEN, to=[round_address(moderated)])
    assert moderated.handled("<forwarded-copy@lib.example.cn>")["outcome"].startswith("ignored:")
    assert len(posts(moderated)) == 1
    assert len(mails(moderated.home)) == before


def test_a_coordinator_at_the_programs_domain_posts_as_a_facilitator(moderated):
    """The program's own addresses are set aside, not everyone at its domain."""
    set_hold(moderated, "all")
    confirm(Person(moderated, COORDINATOR), "COORDINATOR ADD alice@example.org")
    where = round_address(moderated)
    post(moderated, "alice@example.org", "Welcome!", "Welcome", None, name="Alice", where=where)
    assert [p[:3] for p in posts(moderated)] == [("alice@example.org", "Welcome", "published")]
    sent = copies(moderated)
    assert len(sent) == 8  # every participant of the round; a facilitator is never held
    assert sent[0]["From"].addresses[0].display_name.startswith("Alice (facilitator) via ")


def test_a_coordinator_removed_since_decides_nothing(moderated):
    set_hold(moderated, "all")
    post(moderated, BO, "Makerspaces in Stockholm", "Makerspaces", "discussion-pending")
    [theirs] = held_mails(moderated, KENYA)
    confirm(Person(moderated, COORDINATOR), f"COORDINATOR REMOVE {KENYA}")
    answer = decide(moderated, KENYA, theirs, "APPROVE", "discussion-decided")
    assert "no longer one of the program's coordinators" in text(answer)
    assert "Makerspaces" not in text(answer)
    assert [p[2] for p in posts(moderated)] == ["held"] and copies(moderated) == []
    assert audit(moderated.home)[-1] == (KENYA, "APPROVE", "held post reply", 0)
