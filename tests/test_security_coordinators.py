"""Attacks through a coordinator's address, in process and by `mailflow ingest` (issue 16:
H2, M4, M5, M9, L4 of the security review). Each test reproduces the attack and checks
what is answered, what is stored and what is not done.

A coordinator's address is enough to ask, so nothing a message asks may cost more than a
bounded amount before the coordinator proves it is theirs; a signature proves only a
recent message written to this program; a country coordinator's IMPORT neither reaches
nor reveals anyone outside their countries; an exported cell never runs as a formula.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import time
from pathlib import Path

from mailflow.model.coordinators import read_countries
from mailflow.send import signatures
from tests.conftest import PROGRAM, Person, command, compose, run_cli, wire
from tests.mailbox import attachments, text
from tests.people import ANN, COORDINATOR, HEADER, IVO, KENYA, audit, status
from tests.signing import DOMAIN, SELECTOR, signing_at

MALLORY = "mallory@evil.example"
JO = "jo@lib.example.ke"


def row(email: str, name: str = "Newcomer", country: str = "Kenya", about: str = "Hi.") -> str:
    name, about = (value.replace('"', '""') for value in (name, about))
    return (
        f'{email},"{name}",{country},Librarian,public,early career,outreach,English,Nairobi,'
        f'email,monthly,"{about}",'
    )


def with_csv(sender: str, rows: list[str], filename: str = "people.csv"):
    message = compose(sender, "IMPORT", "roster")
    message.add_attachment(
        "\n".join([HEADER, *rows]).encode(), maintype="text", subtype="csv", filename=filename
    )
    return message


def query(home: Path, sql: str, *values) -> list[tuple]:
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute(sql, values).fetchall()


# -- H2: a forged coordinator From buys only bounded work ---------------------------------


def test_find_with_3200_words_is_answered_at_once_and_runs_no_search(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    started = time.monotonic()
    answer = coordinator.say("FIND " + "xq " * 3200, expect="command-result")
    assert time.monotonic() - started < 5  # 35 s before, then quarantined unanswered
    written = text(answer)
    assert re.search(
        r"Not done: a command line may have 1,000 characters; this one has 9,6\d\d\.", written
    )
    assert "xq " * 100 not in written  # the line is quoted back cut short
    # Within the line's bound, FIND still takes only a few words.
    answer = coordinator.say("FIND " + "xq " * 60, expect="command-result")
    assert "Not done: FIND takes at most 8 words and 200 characters" in text(answer)
    assert "60 words" in text(answer)


def test_reading_countries_is_linear_in_the_words():
    started = time.monotonic()
    found, unknown = read_countries(("xq " * 3200).split(), codes_in_capitals=True)
    assert time.monotonic() - started < 5  # 31 s before: every run of words was tried
    assert (found, len(unknown)) == (frozenset(), 3200)
    found, unknown = read_countries(
        [
            "Kenya",
            "South",
            "Africa",
            "the",
            "United",
            "Kingdom",
            "of",
            "Great",
            "Britain",
            "and",
            "Northern",
            "Ireland",
            "xq",
        ]
    )
    assert found == {"KE", "ZA", "GB"} and unknown == ["xq"]


def test_coordinator_add_with_thousands_of_words_adds_nobody(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    words = " ".join(["Atlantis"] * 3000)
    answer = coordinator.say(f"COORDINATOR ADD {MALLORY} {words}", expect="command-result")
    assert "Not done: a command line may have 1,000 characters" in text(answer)
    many = " ".join(["Atlantis"] * 100)
    answer = coordinator.say(f"COORDINATOR ADD {MALLORY} {many}", expect="command-result")
    assert "Not possible: not a country: Atlantis, Atlantis" in text(answer)
    assert "and 90 more." in text(answer)
    assert query(coordinated.home, "SELECT * FROM coordinators WHERE email = ?", MALLORY) == []
    assert (
        query(coordinated.home, "SELECT * FROM tokens WHERE purpose = 'coordinator-confirm'") == []
    )


def test_fifty_match_lines_make_one_preview(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    preview = coordinator.say("MATCH\n" * 50, expect="command-confirm")
    written = text(preview)
    assert written.count("Not done: one MATCH per message") == 49
    previews = [r for r in audit(coordinated.home) if r[2] == "awaiting confirmation"]
    assert previews == [(COORDINATOR, "MATCH", "awaiting confirmation", 0)]

    # While that preview awaits the coordinator's reply, a forged MATCH computes nothing.
    again = coordinator.say("MATCH", expect="command-result")
    assert "Not done: a MATCH preview sent at 09:00 UTC on 04 March still awaits your reply" in (
        text(again)
    )
    assert len([r for r in audit(coordinated.home) if r[2] == "awaiting confirmation"]) == 1
    # The coordinator cancels the first: a new preview can be made.
    coordinator.reply(preview, "CANCEL", expect="command-result")
    coordinator.say("MATCH", expect="command-confirm")


def test_fifty_export_lines_attach_one_export(coordinated):
    answer = Person(coordinated, COORDINATOR).say("EXPORT\n" * 50, expect="command-result")
    assert sorted(attachments(answer)) == ["participants.csv", "partnerships.csv"]
    assert text(answer).count("Not done: one EXPORT per message") == 49
    assert len(answer.as_bytes()) < 100_000  # 22.7 MB from a 300-byte message before


def test_expensive_commands_are_limited_per_coordinator_per_hour(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    # 7 of them a message, in words that differ (the same words again are a loop).
    asks = [
        f"FIND a{n}\nFIND b{n}\nFIND c{n}\nFIND d{n}\nFIND e{n}\nSTATS\nEXPORT" for n in range(5)
    ]
    for ask in asks[:4]:
        answer = coordinator.say(ask, expect="command-result")
        assert "Not done" not in text(answer)
    answer = text(coordinator.say(asks[4], expect="command-result"))  # 28 spent: 2 more run
    assert answer.count("Not done: limit reached, try again after 10:00 UTC") == 5
    assert len([r for r in audit(coordinated.home) if r[2] == "refused: limit"]) == 5
    # Another coordinator's budget is their own.
    assert "Not done" not in text(Person(coordinated, KENYA).say("STATS", expect="command-result"))
    # An hour later the coordinator may again (through `mailflow ingest`, an hour on).
    coordinated.stop()
    later = wire(compose(COORDINATOR, "STATS"))
    command(
        coordinated.home,
        "ingest",
        stdin=later,
        MAILFLOW_NOW="2026-03-04T10:01:00Z",
        MAILFLOW_COORDINATORS=COORDINATOR,
    )
    [(outcome,)] = query(coordinated.home, "SELECT outcome FROM audit ORDER BY id DESC LIMIT 1")
    assert "Participants" in outcome and "Not done" not in outcome


def test_too_many_lines_are_answered_with_what_was_read_and_a_note(coordinated):
    lines = "\n".join(f"FIND nobody{n}" if n < 5 else "COORDINATOR LIST" for n in range(60))
    answer = text(Person(coordinated, COORDINATOR).say(lines, expect="command-result"))
    assert answer.count("- coord@program.example.org: the whole program") == 45
    assert "Not done: this line and the 9 after it were not read: one message may carry 50" in (
        answer
    )


# -- M9: a signature proves a message to this program, not a copy of one to another ------


def test_a_signed_command_to_another_installation_needs_confirmation(home, dns, keys):
    def ingest(to: str) -> None:
        message = compose(COORDINATOR, f"COORDINATOR ADD {MALLORY}", "admin", to=to)
        with signing_at("2026-03-02T09:00:00Z"):
            raw = signatures.sign(wire(message), SELECTOR, DOMAIN, keys[DOMAIN][0])
        command(
            home,
            "ingest",
            "--recipient",
            PROGRAM,
            stdin=raw,
            MAILFLOW_COORDINATORS=COORDINATOR,
            MAILFLOW_TRUST_DKIM="1",
            MAILFLOW_DKIM_RESOLVER=dns.address,
        )

    ingest("program@other-network.example")  # the same coordinator's mail, resent here
    assert query(home, "SELECT * FROM coordinators WHERE email = ?", MALLORY) == []
    assert query(home, "SELECT proof, changed FROM audit") == [("awaiting confirmation", 0)]
    assert query(home, "SELECT template, recipient FROM outbox") == [
        ("command-confirm", COORDINATOR)
    ]
    ingest(PROGRAM)  # written to this coordinated: the signature is proof
    assert query(home, "SELECT proof, changed FROM audit ORDER BY id")[-1] == (f"dkim:{DOMAIN}", 1)
    assert query(home, "SELECT source FROM coordinators WHERE email = ?", MALLORY) == [("command",)]


# -- M4: a country coordinator's IMPORT stays in their countries --------------------------


def test_a_country_coordinators_import_neither_reaches_nor_reveals_others(coordinated):
    kenya = Person(coordinated, KENYA)
    before = query(coordinated.home, "SELECT * FROM participants WHERE email = ?", ANN)
    message = with_csv(KENYA, [row(ANN, "Overwritten"), row("new@lib.example.ke")])
    preview = text(kenya.expect(kenya.send(message), "command-confirm"))
    # Ann (Nigeria) and a newcomer read the same: nothing says who is a participant.
    assert "people.csv: Would be: 2 added or updated, 0 rows with problems" in preview
    assert ANN not in preview
    result = text(
        kenya.reply(kenya.expect(message, "command-confirm"), "CONFIRM", expect="command-result")
    )
    assert "people.csv: 1 added or updated, 1 rows with problems" in result
    same = "the email address is missing, invalid or not one you can import"
    assert f"row 2 ({ANN}): {same}" in result
    assert query(coordinated.home, "SELECT * FROM participants WHERE email = ?", ANN) == before
    assert status(coordinated.home, "new@lib.example.ke") == "applied"
    # A bad address reads exactly as someone else's does.
    bad = with_csv(KENYA, ["not-an-address" + row("x")[1:]])
    assert f"row 2 (not-an-address): {same}" in text(
        kenya.expect(kenya.send(bad), "command-confirm")
    )


def test_only_a_program_wide_coordinator_changes_a_country(coordinated):
    kenya = Person(coordinated, KENYA)
    message = with_csv(KENYA, [row(IVO, "Ivo Moved", country="Sweden")])
    preview = text(kenya.expect(kenya.send(message), "command-confirm"))
    assert f"row 2 ({IVO}): only a program-wide coordinator can change a country" in preview
    assert query(coordinated.home, "SELECT country FROM participants WHERE email = ?", IVO) == [
        ("KE",)
    ]
    coordinator = Person(coordinated, COORDINATOR)
    wide = with_csv(COORDINATOR, [row(IVO, "Ivo Moved", country="Sweden")])
    preview = coordinator.expect(coordinator.send(wide), "command-confirm")
    assert "0 added, 1 updated, 0 rows with problems" in text(preview)


# -- M5: an exported cell never runs as a formula, and imports back unchanged -------------

FORMULA = '=CONCAT("Ca";"rla")'
DDE = "=cmd|' /C calc'!A0"


def test_export_neutralises_formulas_and_import_takes_them_back(home, tmp_path):
    path = tmp_path / "people.csv"
    eve = row("eve@example.net", FORMULA, about=DDE)
    path.write_text("\n".join([HEADER, eve]) + "\n", encoding="utf-8")
    command(home, "import", str(path))
    exported = command(home, "export")
    [record] = list(csv.DictReader(io.StringIO(exported)))
    assert record["name"] == "'" + FORMULA and record["about_me"] == "'" + DDE
    for cells in csv.reader(io.StringIO(exported)):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    # The exported file imports unchanged: the ' is taken off again.
    again = tmp_path / "again.csv"
    again.write_text(exported, encoding="utf-8")
    result = command(home, "import", str(again))
    assert "0 added, 1 updated, 0 rows with problems" in result
    assert query(home, "SELECT name, about_me FROM participants") == [(FORMULA, DDE)]


def test_a_coordinators_export_neutralises_formulas(coordinated):
    with sqlite3.connect(coordinated.home / "mailflow.db") as db:
        db.execute(
            "UPDATE participants SET name = ?, about_me = ? WHERE email = ?",
            [FORMULA, "+1 " + DDE, IVO],
        )
    answer = Person(coordinated, COORDINATOR).say("EXPORT", expect="command-result")
    people = list(csv.DictReader(io.StringIO(attachments(answer)["participants.csv"].decode())))
    ivo = next(p for p in people if p["email"] == IVO)
    assert (ivo["name"], ivo["about_me"]) == ("'" + FORMULA, "'+1 " + DDE)


# -- L4: a cell over the csv module's limit is a problem with the row ---------------------


def test_a_huge_cell_is_a_problem_with_its_row_not_a_crash(home, tmp_path, coordinated):
    huge = row("big@lib.example.ke", about="x" * 200_000)
    path = tmp_path / "big.csv"
    path.write_text("\n".join([HEADER, row("first@lib.example.ke"), huge]) + "\n", encoding="utf-8")
    result = run_cli(coordinated.home, "import", str(path), MAILFLOW_COORDINATORS=COORDINATOR)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    [reason] = result.stderr.decode().splitlines()[-1:]
    assert reason.startswith("mailflow import: row 3: the row cannot be read")
    assert "row 3 (no email): the row cannot be read (field larger than field limit" in (
        result.stdout.decode()
    )
    assert status(coordinated.home, "first@lib.example.ke") == "applied"
    # Emailed, the coordinator is answered with the problem; nothing is quarantined.
    coordinator = Person(coordinated, COORDINATOR)
    message = with_csv(COORDINATOR, [row("second@lib.example.ke"), huge])
    preview = text(coordinator.expect(coordinator.send(message), "command-confirm"))
    assert "people.csv: Would be: 1 added, 0 updated, 1 rows with problems" in preview
    assert "row 3 (no email): the row cannot be read (field larger than field limit" in preview
    assert coordinated.handled(message["Message-ID"])["state"] != "quarantined"


def test_what_forgers_spent_does_not_hold_back_the_coordinators_signed_message(home, dns, keys):
    def ingest(body: str, signed: bool = False) -> str:
        raw = wire(compose(COORDINATOR, body, "admin"))
        if signed:
            with signing_at("2026-03-02T09:00:00Z"):
                raw = signatures.sign(raw, SELECTOR, DOMAIN, keys[DOMAIN][0])
        command(
            home,
            "ingest",
            stdin=raw,
            MAILFLOW_COORDINATORS=COORDINATOR,
            MAILFLOW_TRUST_DKIM="1",
            MAILFLOW_DKIM_RESOLVER=dns.address,
        )
        [(outcome,)] = query(home, "SELECT outcome FROM audit ORDER BY id DESC LIMIT 1")
        return outcome

    for n in range(5):  # forged: 35 expensive commands, the last 5 refused
        ingest(f"FIND a{n}\nFIND b{n}\nFIND c{n}\nFIND d{n}\nFIND e{n}\nSTATS\nEXPORT")
    assert ingest("STATS").startswith("limit reached, try again after 10:00 UTC")
    assert "Participants" in ingest("STATS", signed=True)


def test_an_emailed_import_reads_a_bounded_number_of_rows(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    rows = [row(f"p{n}@lib.example.ke") for n in range(5_003)]
    preview = text(
        coordinator.expect(coordinator.send(with_csv(COORDINATOR, rows)), "command-confirm")
    )
    assert "people.csv: Would be: 5000 added, 0 updated, 1 rows with problems" in preview
    assert "row 5002 (no email): this row and those after it were not read: one file may" in (
        preview
    )
