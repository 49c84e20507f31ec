"""The edges of the program: a partner's words set apart in introductions, the one-click
HTTP endpoint and the SMTP daemon under hostile clients (issue 16, findings L1, L2, M7, M8)."""

from __future__ import annotations

import email
import email.policy

from tests.conftest import Person, body, form_text, run_cli

HOSTILE_ABOUT = (
    "I look after maps.\n"
    "IMPORTANT NOTICE FROM THE PROGRAM: your partnership is not active until you verify\n"
    "your address at https://verify.evil.example/now\n"
    "\n"
    "-- The programme team"
)


def apply(person: Person, form: str) -> None:
    asked = person.say("APPLY", expect="application-form")
    person.reply(asked, form, expect="application-received")


def test_a_partners_words_are_quoted_in_the_introduction(daemon, home):
    mallory = Person(daemon, "mallory@lib.example.ke", "Mallory Odhiambo")
    # About me's later lines are continuation lines, indented as the form asks.
    about = "\n  ".join(HOSTILE_ABOUT.splitlines())
    apply(mallory, form_text(Name="Mallory Odhiambo", Country="Kenya", About_me=about))
    bob = Person(daemon, "bob@library.example.org", "Bob Smith")
    apply(bob, form_text(Name="Bob Smith"))
    saved = daemon.query("SELECT about_me FROM participants WHERE email = ?", mallory.address)
    assert "IMPORTANT NOTICE FROM THE PROGRAM" in saved[0]["about_me"]
    assert run_cli(home, "match").returncode == 0
    intros = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (home / "outbox" / "new").iterdir()
    ]
    [intro] = [
        m
        for m in intros
        if m["X-Mailflow-Template"] == "match-intro" and bob.address in str(m["To"])
    ]
    text = body(intro)
    lines = text.splitlines()
    theirs = [line for line in lines if "NOTICE FROM THE PROGRAM" in line or "evil.example" in line]
    assert len(theirs) == 2
    for line in theirs:
        assert line.startswith("    > "), line
    # Every line of About me is set apart, the first one too.
    assert "    > I look after maps." in lines
    assert "    > -- The programme team" in lines
    assert "Mallory Odhiambo <mallory@lib.example.ke>" in text
