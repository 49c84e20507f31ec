"""Applying by email: the form, its problems, proof of address, updates. In process, but
for one whole application over real SMTP, which keeps the daemon's path in the exchange."""

from __future__ import annotations

import re

import pytest

from tests.conftest import (
    PROGRAM,
    Person,
    body,
    compose,
    form_text,
    run_cli,
    start_in_process,
)

TOKEN_ADDRESS = re.compile(r"^program\+([a-z2-7]{16})@example\.org$")
LABELS = (
    "Name:",
    "Country:",
    "Role:",
    "Library type:",
    "Career stage:",
    "Interests:",
    "Languages:",
    "Time zone:",
    "Contact methods:",
    "Contact frequency:",
    "About me:",
    "Partner wishes:",
)


def participants(program):
    return [dict(row) for row in program.query("SELECT * FROM participants ORDER BY id")]


@pytest.mark.parametrize("word", ["APPLY", "join", "Sign up", "apply."])
def test_apply_sends_the_form_with_a_token_reply_address(ann, word):
    form = ann.say(word, expect="application-form")
    assert TOKEN_ADDRESS.match(str(form["Reply-To"]))
    text = body(form)
    for label in LABELS:
        assert label in text
    assert "reply to this message" in text.lower()
    assert form["Auto-Submitted"] == "auto-replied"
    assert participants(ann.program) == []


def test_apply_in_the_subject_with_an_empty_body(ann):
    ann.say("", subject="Apply", expect="application-form")


def test_a_valid_form_replied_to_the_token_is_saved(daemon):
    ann = Person(daemon, "ann@uni.example.edu", "Ann Okafor")  # over SMTP, the whole way
    form = ann.say("APPLY", expect="application-form")
    received = ann.reply(form, form_text(), expect="application-received")
    text = body(received)
    assert "Country: United States (US)" in text
    assert "Time zone: America/New_York" in text
    [saved] = participants(ann.program)
    assert saved["email"] == "ann@uni.example.edu"
    assert saved["country"] == "US"
    assert saved["time_zone"] == "America/New_York"
    assert saved["languages"] == "English; Spanish"
    assert saved["status"] == "applied"
    [application] = ann.program.query("SELECT * FROM applications")
    assert application["participant_id"] == saved["id"]
    assert ann.program.query("SELECT name FROM rounds WHERE id = ?", application["round_id"])[0][0]


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("USA", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("Deutschland", "DE"),
        ("Côte d'Ivoire", "CI"),
        ("ke", "KE"),
        ("BRA", "BR"),
    ],
)
def test_countries_in_the_forms_people_write_them(ann, written, code):
    form = ann.say("APPLY", expect="application-form")
    ann.reply(form, form_text(country=written, time_zone="UTC+3"), expect="application-received")
    assert participants(ann.program)[0]["country"] == code


def test_every_problem_is_listed_at_once_and_only_wrong_lines_need_fixing(ann):
    form = ann.say("APPLY", expect="application-form")
    answers = form_text(country="Atlantis", time_zone="Middle Earth", career_stage="")
    problems = ann.reply(form, answers, expect="application-problems")
    text = body(problems)
    assert '1. Country ("Atlantis")' in text
    assert "2. Career stage" in text
    assert '3. Time zone ("Middle Earth")' in text
    assert "Name: Ann Okafor" in text  # the answers quoted back
    assert "Role: Reference librarian" in text
    assert TOKEN_ADDRESS.match(str(problems["Reply-To"]))
    assert participants(ann.program) == []
    fixed = "Country: Nigeria\nCareer stage: mid career\nTime zone: Lagos"
    received = ann.reply(problems, fixed, expect="application-received")
    assert "Country: Nigeria (NG)" in body(received)
    [saved] = participants(ann.program)
    assert (saved["country"], saved["career_stage"], saved["time_zone"]) == (
        "NG",
        "mid career",
        "Africa/Lagos",
    )
    assert saved["role"] == "Reference librarian"


def test_a_cold_form_is_confirmed_by_reply_before_it_is_saved(ann):
    confirm = ann.say(form_text(), subject="My application", expect="application-confirm")
    assert "Name: Ann Okafor" in body(confirm)
    assert TOKEN_ADDRESS.match(str(confirm["Reply-To"]))
    assert participants(ann.program) == []
    ann.reply(confirm, "yes", expect="application-received")
    assert [p["email"] for p in participants(ann.program)] == ["ann@uni.example.edu"]


def test_a_cold_form_can_be_cancelled(ann):
    confirm = ann.say(form_text(), expect="application-confirm")
    ann.reply(confirm, "CANCEL", expect="application-cancelled")
    assert participants(ann.program) == []


def test_a_forger_cannot_apply_for_someone_else(ann, bob):
    # Bob sends Ann's form under her address, but the confirmation goes to Ann; his reply to
    # a token he never received is refused, and nothing is saved for anyone.
    confirm = ann.say(form_text(), expect="application-confirm")
    bob.reply(confirm, "yes", expect="token-expired")
    assert participants(ann.program) == []


def test_a_second_application_updates_and_never_duplicates(ann):
    form = ann.say("APPLY", expect="application-form")
    ann.reply(form, form_text(), expect="application-received")
    form = ann.say("JOIN", expect="application-form")
    again = ann.reply(
        form, form_text(role="Head of research services"), expect="application-received"
    )
    # The answer stays in the form's thread: the update is said in the text, not the subject.
    assert again["Subject"] == "Re: " + form["Subject"]
    assert "We have updated your application" in again.get_content()
    [saved] = participants(ann.program)
    assert saved["role"] == "Head of research services"
    assert len(ann.program.query("SELECT * FROM applications")) == 1


def test_a_token_works_once(ann):
    form = ann.say("APPLY", expect="application-form")
    ann.reply(form, form_text(), expect="application-received")
    ann.reply(form, form_text(role="Archivist"), expect="token-expired")
    assert participants(ann.program)[0]["role"] == "Reference librarian"


def test_an_unknown_token_address_is_answered(ann):
    ann.say(form_text(), to="program+aaaaaaaaaaaaaaaa@example.org", expect="token-expired")
    assert participants(ann.program) == []


def test_a_token_expires_after_seven_days(home):
    first = start_in_process(home)
    ann = Person(first, "ann@uni.example.edu")
    form = ann.say("APPLY", expect="application-form")
    first.stop()
    later = start_in_process(home, MAILFLOW_NOW="2026-03-09T09:00:01Z")
    try:
        late = Person(later, "ann@uni.example.edu")
        late.reply(form, form_text(), expect="token-expired")
        assert participants(later) == []
    finally:
        later.stop()


QUOTES = {
    "gmail": "On Mon, 2 Mar 2026 at 10:00, Program <program@example.org> wrote:\n"
    "> Name:\n> Country: Atlantis\n",
    "outlook": "________________________________\nFrom: Program <program@example.org>\n"
    "Sent: Monday, March 2, 2026 10:00 AM\nTo: Ann <ann@uni.example.edu>\n"
    "Subject: Your application form\n\nName:\nCountry: Atlantis\n",
    "outlook-original": "-----Original Message-----\nFrom: program@example.org\n"
    "Sent: 02 March 2026 10:00\nSubject: Your application form\n\n"
    "Country: Atlantis\n",
    "apple-mail": "> On 2 Mar 2026, at 10:00, Program <program@example.org> wrote:\n>\n"
    "> Country: Atlantis\n",
    "iphone": "Sent from my iPhone\n\n> On 2 Mar 2026, at 10:00, Program "
    "<program@example.org> wrote:\n> Country: Atlantis\n",
    "french": "Le lun. 2 mars 2026 à 10:00, Program <program@example.org> a écrit :\n"
    "> Country: Atlantis\n",
    "german": "Am 02.03.2026 um 10:00 schrieb Program <program@example.org>:\n"
    "> Country: Atlantis\n",
}


@pytest.mark.parametrize("client", sorted(QUOTES))
def test_only_the_text_above_the_quote_counts(ann, client):
    form = ann.say("APPLY", expect="application-form")
    text = form_text(country="Kenya", time_zone="Nairobi") + "\n\n" + QUOTES[client]
    ann.reply(form, text, quote=False, expect="application-received")
    [saved] = participants(ann.program)
    assert (saved["country"], saved["time_zone"]) == ("KE", "Africa/Nairobi")


def test_the_form_is_read_from_html_only_mail(ann):
    form = ann.say("APPLY", expect="application-form")
    html = (
        "<html><body>"
        + "".join(
            f"<div>{line}</div>"
            for line in form_text(country="Ghana", time_zone="Accra").splitlines()
        )
        + "<blockquote>Country: Atlantis</blockquote></body></html>"
    )
    message = compose(
        ann.address, "", "Re: form", to=str(form["Reply-To"]), in_reply_to=form["Message-ID"]
    )
    message.set_content(html, subtype="html")
    ann.send(message, to=str(form["Reply-To"]))
    ann.expect(message, "application-received")
    assert participants(ann.program)[0]["country"] == "GH"


def test_ingest_applies_the_same_way(home, tmp_path):
    raw = (
        f"From: Ann <ann@uni.example.edu>\nTo: {PROGRAM}\nSubject: apply\n"
        "Message-ID: <ingest-1@client.test>\n\nAPPLY\n"
    ).encode()
    result = run_cli(home, "ingest", stdin=raw)
    assert result.returncode == 0, result.stderr
    assert b"command:apply" in result.stdout
    files = list((home / "outbox" / "new").iterdir())
    assert len(files) == 1
    assert b"X-Mailflow-Template: application-form" in files[0].read_bytes()


def test_an_application_after_the_window_closed_waits_for_the_next_round(ann):
    with ann.program.db() as db:
        db.execute("UPDATE rounds SET closes_at = '2026-03-01T00:00:00+00:00' WHERE id = 1")
    form = ann.say("APPLY", expect="application-form")
    waitlisted = ann.reply(form, form_text(), expect="application-waitlisted")
    text = body(waitlisted)
    assert "Applications for Round 1 had already closed" in text
    assert "saved it for the next round, Round 2" in text
    rounds = ann.program.query("SELECT id, name, state FROM rounds ORDER BY id")
    assert [(r["name"], r["state"]) for r in rounds] == [("Round 1", "open"), ("Round 2", "open")]
    [application] = ann.program.query("SELECT round_id FROM applications")
    assert application["round_id"] == rounds[1]["id"]
