"""Coordinators run the program by email: a conversation for each command, several
commands in one message, country coordinators kept to their countries, and the audit. In
process, on conftest's `coordinated` program (four partnerships, Ivo and Jo waiting, a
coordinator for Kenya and Sweden). Forged senders and DKIM are in test_coordinator_proof.py."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from email.message import EmailMessage

from PIL import Image

from mailflow.conversation import commands
from tests.conftest import Person, body, command, compose
from tests.mailbox import attachments, inbox, text
from tests.people import (
    ANN,
    BO,
    CHEN,
    COORDINATOR,
    DEE,
    HEADER,
    IVO,
    KENYA,
    audit,
    partnerships,
    status,
)


def confirm(person: Person, lines: str, **options) -> tuple[EmailMessage, EmailMessage]:
    """Send commands, check the preview changed nothing, CONFIRM; (preview, result)."""
    preview = person.say(lines, expect="command-confirm", **options)
    assert "Nothing has changed yet" in text(preview)
    return preview, person.reply(preview, "CONFIRM", expect="command-result")


def test_help_lists_every_coordinator_command_from_the_registry(coordinated):
    answer = Person(coordinated, COORDINATOR).say("HELP", expect="help")
    usages = [entry.usage for entry in commands.listing("coordinator")]
    assert len(usages) >= 14
    for usage in usages:
        assert usage in body(answer)
    assert "APPLY" not in body(answer)
    assert "up to 50 commands" in body(answer) and "30 times an hour" in body(answer)


def test_stats_answers_at_once_with_figures_and_a_chart(coordinated):
    answer = Person(coordinated, COORDINATOR).say("STATS", expect="command-result")
    figures = text(answer)
    assert "Participants                          10" in figures
    assert "matched                              8" in figures
    assert "waiting                              2" in figures
    assert "Kenya" in figures and "Africa" in figures
    chart = Image.open(io.BytesIO(attachments(answer)["stats.png"]))
    assert chart.format == "PNG" and chart.width <= 600
    assert audit(coordinated.home) == [(COORDINATOR, "STATS", "own address", 0)]


def test_several_commands_run_in_order_and_what_is_not_understood_is_named(coordinated):
    answer = Person(coordinated, COORDINATOR).say(
        "FIND palaeography\nPLEASE SEND EVERYTHING\nFIND Kenya", expect="command-result"
    )
    sections = re.split(r"^> ", text(answer), flags=re.MULTILINE)[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "FIND palaeography",
        "PLEASE SEND EVERYTHING",
        "FIND Kenya",
    ]
    assert "Ann Okafor <ann@uni.example.edu> (Nigeria): matched, with Chen Jing" in sections[0]
    assert "Ivo Mwangi" in sections[0]  # palaeography too; waiting, no partner named
    assert "Not understood; write HELP" in sections[1]
    assert "2 found" in sections[2] and "Jo Otieno" in sections[2] and "Ann" not in sections[2]


def test_end_then_pair_by_hand(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    preview, result = confirm(coordinator, f"END {ANN}")
    assert "Ends the partnership of Ann Okafor" in text(preview)
    assert "Ended the partnership" in text(result)
    assert status(coordinated.home, ANN) == status(coordinated.home, CHEN) == "waiting"
    assert [m["Subject"] for m in inbox(coordinated.home, CHEN, "partnership-ended")] == [
        "Your partnership has ended"
    ]
    # Ann and Chen were partners: a pair by hand says so, and is made as asked.
    preview, result = confirm(coordinator, f"PAIR {ANN} {IVO}")
    assert "Pairs Ann Okafor" in text(preview) and "until 2026-07-03" in text(preview)
    assert "Paired Ann Okafor" in text(result)
    assert ("active", ANN, IVO) in partnerships(coordinated.home)
    intro = inbox(coordinated.home, IVO, "match-intro")[-1]
    assert "Ann Okafor <ann@uni.example.edu>" in text(intro)
    assert status(coordinated.home, IVO) == "matched"
    refused = coordinator.say(f"PAIR {ANN} {BO}", expect="command-result")
    assert "Not possible: Ann Okafor" in text(refused) and "already in a partnership" in text(
        refused
    )


def test_rematch_ends_a_partnership_and_finds_the_best_person_waiting(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    preview, result = confirm(coordinator, f"REMATCH {ANN}")
    assert "Ends the partnership with Chen Jing" in text(preview)
    assert "New partner: Ivo Mwangi" in text(preview)  # palaeography, like Ann
    assert "Ann Okafor <ann@uni.example.edu> (Nigeria) is now with Ivo Mwangi" in text(result)
    assert ("dissolved", ANN, CHEN) in partnerships(coordinated.home)
    assert ("active", ANN, IVO) in partnerships(coordinated.home)
    assert len(inbox(coordinated.home, ANN, "rematch-intro")) == 1
    assert len(inbox(coordinated.home, CHEN, "partnership-ended")) == 1
    assert inbox(coordinated.home, CHEN, "rematch-intro") == []
    assert status(coordinated.home, CHEN) == "waiting"


def test_round_schedules_the_next_round_and_its_term_starts_on_start(coordinated, tmp_path):
    coordinator = Person(coordinated, COORDINATOR)
    line = "ROUND Spring 2027 OPEN 1 Feb 2027 CLOSE 28 Feb 2027 START 1 Mar 2027 END 1 Jul 2027"
    preview, result = confirm(coordinator, line)
    assert "Schedules Round 3 as Spring 2027" in text(preview)
    assert "applications 2027-02-01 to 2027-02-28; term from 2027-03-01 to 2027-07-01" in text(
        result
    )
    with sqlite3.connect(coordinated.home / "mailflow.db") as db:
        row = db.execute(
            "SELECT name, opens_at, closes_at, match_at, term_end FROM rounds WHERE state = 'open'"
        ).fetchall()
    assert row == [
        (
            "Spring 2027",
            "2027-02-01T00:00:00+00:00",
            "2027-02-28T00:00:00+00:00",
            "2027-03-01T00:00:00+00:00",
            "2027-07-01T00:00:00+00:00",
        )
    ]


def test_a_round_with_dates_out_of_order_is_named_and_changes_nothing(coordinated):
    answer = Person(coordinated, COORDINATOR).say(
        "ROUND Later OPEN 1 May 2027 CLOSE 1 Apr 2027 START 2 May 2027", expect="command-result"
    )
    assert "Not possible: the dates must come in order" in text(answer)
    with sqlite3.connect(coordinated.home / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM rounds WHERE name = 'Later'").fetchone() == (0,)


def test_import_previews_each_row_then_adds_the_good_ones(coordinated):
    rows = [
        HEADER,
        "kim@lib.example.kr,Kim Min,South Korea,Librarian,academic,early career,metadata,"
        "English,Seoul,email,monthly,I catalogue.,",
        "lea@lib.example.fr,Léa Martin,France,Librarian,public,mid career,outreach,"
        "English; French,Paris,email,monthly,I run events.,",
        "bad-address,Nobody,Atlantis,Librarian,public,early career,x,English,Paris,email,"
        "monthly,x,",
    ]
    message = compose(COORDINATOR, "IMPORT", "roster")
    message.add_attachment(
        "\n".join(rows).encode(), maintype="text", subtype="csv", filename="spring.csv"
    )
    coordinator = Person(coordinated, COORDINATOR)
    preview = coordinator.expect(coordinator.send(message), "command-confirm")
    assert "spring.csv: Would be: 2 added, 0 updated, 1 rows with problems" in text(preview)
    assert "row 4 (bad-address): the email address is missing or invalid" in text(preview)
    assert status(coordinated.home, "kim@lib.example.kr") is None
    result = coordinator.reply(preview, "CONFIRM", expect="command-result")
    assert "spring.csv: 2 added, 0 updated, 1 rows with problems" in text(result)
    assert status(coordinated.home, "kim@lib.example.kr") == "applied"
    assert status(coordinated.home, "lea@lib.example.fr") == "applied"


def test_import_without_a_csv_says_what_to_attach(coordinated):
    answer = Person(coordinated, COORDINATOR).say("IMPORT", expect="command-result")
    assert "Not possible: attach the CSV file" in text(answer)


def test_export_attaches_participants_and_partnerships(coordinated):
    answer = Person(coordinated, COORDINATOR).say("EXPORT", expect="command-result")
    files = attachments(answer)
    people = list(csv.DictReader(io.StringIO(files["participants.csv"].decode())))
    assert len(people) == 10
    ann = next(p for p in people if p["email"] == ANN)
    assert (ann["country"], ann["status"], ann["partner_email"]) == ("Nigeria", "matched", CHEN)
    pairs = list(csv.DictReader(io.StringIO(files["partnerships.csv"].decode())))
    assert len(pairs) == 4 and {pairs[0]["email_a"], pairs[0]["email_b"]} == {ANN, CHEN}


def test_broadcast_reaches_everyone_taking_part_with_one_click_unsubscribe(coordinated):
    Person(coordinated, DEE).say_and_confirm("PAUSE", "paused")
    _, result = confirm(
        Person(coordinated, COORDINATOR),
        "BROADCAST Webinar on 20 March\nDear all,\n\nJoin us on 20 March.\n\nThe coordinators",
    )
    assert "Sent 'Webinar on 20 March' to 9 participants" in text(result)
    sent = [m for m in coordinated.delivered() if m["X-Mailflow-Template"] == "broadcast"]
    assert len(sent) == 9
    assert DEE not in {m["To"].addresses[0].addr_spec for m in sent}
    one = sent[0]
    assert one["Subject"] == "Webinar on 20 March"
    assert "Join us on 20 March." in text(one)
    assert one["List-Unsubscribe"].startswith("<mailto:program+")
    assert "https://mentoring.example.org/unsubscribe/" in one["List-Unsubscribe"]
    assert one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert one["Auto-Submitted"] == "auto-generated"


def test_coordinator_add_and_remove_by_mail(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    newcomer = Person(coordinated, "amy@program.example.org")
    newcomer.say("STATS", expect="command-refused")
    confirm(coordinator, "COORDINATOR ADD amy@program.example.org South Africa Ghana")
    answer = newcomer.say("STATS", expect="command-result")
    assert "Ghana, South Africa" in text(answer)
    assert "Participants                           0" in text(answer)
    listing = coordinator.say("COORDINATOR LIST", expect="command-result")
    assert "- amy@program.example.org: Ghana, South Africa" in text(listing)
    confirm(coordinator, "COORDINATOR REMOVE amy@program.example.org")
    newcomer.say("STATS", expect="command-refused")
    last = coordinator.say(f"COORDINATOR REMOVE {COORDINATOR}", expect="command-result")
    assert "is the last program-wide coordinator" in text(last)


def test_a_country_coordinator_sees_and_changes_only_their_countries(coordinated):
    kenya = Person(coordinated, KENYA)
    figures = text(kenya.say("STATS", expect="command-result"))
    assert "Participants                           3" in figures  # Ivo, Jo, Bo
    assert "Nigeria" not in figures
    found = text(kenya.say(f"FIND ann\nFIND bo\nFIND {ANN}", expect="command-result"))
    assert "Ann" not in found and "Bo Lind" in found
    refused = kenya.say(
        f"END {ANN}\nMATCH\nROUND X OPEN 1 May CLOSE 2 May START 3 May",
        expect="command-result",
    )
    answer = text(refused)
    assert f"Not possible: no participant in your countries has the address {ANN}" in answer
    assert "only a program-wide coordinator can match a round" in answer
    assert "only a program-wide coordinator can schedule rounds" in answer
    assert ("active", ANN, CHEN) in partnerships(coordinated.home)
    files = attachments(kenya.say("EXPORT", expect="command-result"))
    emails = [
        row["email"] for row in csv.DictReader(io.StringIO(files["participants.csv"].decode()))
    ]
    assert sorted(emails) == [BO, IVO, "jo@lib.example.ke"]
    # In their countries, they act as any coordinator does.
    _, result = confirm(kenya, f"END {BO}")
    assert "Ended the partnership of Bo Lind" in text(result)
    assert status(coordinated.home, DEE) == "waiting"
    trail = [row for row in audit(coordinated.home) if row[0] == KENYA]
    assert (KENYA, f"END {ANN}", "own address", 0) in trail
    assert (KENYA, f"END {BO}", "confirmed by reply", 1) in trail


def test_a_country_coordinators_broadcast_reaches_only_their_countries(coordinated):
    _, result = confirm(Person(coordinated, KENYA), "BROADCAST\nA meetup in Nairobi.")
    assert "to 3 participants" in text(result)
    sent = {
        m["To"].addresses[0].addr_spec
        for m in coordinated.delivered()
        if m["X-Mailflow-Template"] == "broadcast"
    }
    assert sent == {BO, IVO, "jo@lib.example.ke"}


def test_the_audit_lists_who_did_what_and_how_it_was_proven(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    confirm(coordinator, f"FIND ann\nEND {BO}")
    Person(coordinated, "mallory@evil.example").say("EXPORT", expect="command-refused")
    listing = command(coordinated.home, "audit").splitlines()
    assert listing[-1] == "4 command(s) shown"
    assert "[own address]  -  FIND ann" in listing[0]
    assert "[awaiting confirmation]  -  END bo@lib.example.se" in listing[1]
    assert "[confirmed by reply]  changed  END bo@lib.example.se" in listing[2]
    assert "mallory@evil.example  [refused: not a coordinator]  -  EXPORT" in listing[3]


def test_a_coordinator_who_takes_part_uses_the_participants_commands_too(coordinated):
    command(coordinated.home, "coordinator", "add", BO)  # Bo, matched with Dee, coordinates too
    bo = Person(coordinated, BO)
    assert "Dee Brown" in text(bo.say("STATUS", expect="status"))
    assert "Participants" in text(bo.say("STATS", expect="command-result"))
    assert "You are a coordinator" in text(bo.say("HELP", expect="help"))
