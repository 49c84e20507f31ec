"""One conversation, one thread: Gmail puts mail in one conversation only when the subjects
match (Re:/Fwd: aside) and References point at the earlier messages. An application, a
check-in with its reminder and answer, and a coordinator's command with its confirmation
each stay under one subject, each message referencing all that came before it."""

from __future__ import annotations

import email.utils
import itertools
import re
from email.message import EmailMessage

from tests.conftest import (
    Person,
    compose,
    form_text,
    start_in_process,
    tick,
)
from tests.mailbox import scheduled, to
from tests.people import ANN, COORDINATOR

REPLY_PREFIXES = re.compile(r"^(\s*(re|aw|sv)\s*:\s*)+", re.IGNORECASE)


def client_reply(person: Person, to_answer: EmailMessage, body: str, expect: str):
    """Reply as Thunderbird or Gmail does: to the Reply-To, "Re: " put before the subject as
    it is (so "Re: Re:" when it had one), In-Reply-To its Message-ID, and References its
    References and its Message-ID (RFC 5322 3.6.4)."""
    target = email.utils.parseaddr(str(to_answer["Reply-To"] or to_answer["From"]))[1]
    earlier = str(to_answer["References"] or "").split()
    message = compose(
        person.address,
        body,
        "Re: " + str(to_answer["Subject"]),
        to=target,
        name=person.name,
        headers={
            "In-Reply-To": to_answer["Message-ID"],
            "References": " ".join([*earlier, to_answer["Message-ID"]]),
        },
    )
    person.send(message, to=target)
    return message, person.expect(message, expect)


def ask(person: Person, body: str, subject: str, expect: str):
    """A message of the person's own, not a reply; (it, the answer)."""
    message = compose(person.address, body, subject, name=person.name)
    person.send(message)
    return message, person.expect(message, expect)


def bare(subject: str) -> str:
    return REPLY_PREFIXES.sub("", str(subject)).strip()


def assert_one_thread(chain: list[EmailMessage]) -> None:
    """One subject, Re: aside; what the program sent has at most one "Re:"; each message
    answers the one before it and references every one before it."""
    first = bare(chain[0]["Subject"])
    assert first
    for before, message in itertools.pairwise(chain):
        assert bare(message["Subject"]) == first, (message["Subject"], first)
        assert message["In-Reply-To"] == before["Message-ID"]
        references = str(message["References"]).split()
        assert [m["Message-ID"] for m in chain[: chain.index(message)]] == references
    for message in chain:
        if message["X-Mailflow-Template"]:
            assert not re.match(r"(?i)re:\s*re:", str(message["Subject"]))


def test_an_application_is_one_thread_under_the_subject_it_was_asked_under(ann):
    asked, form = ask(ann, "APPLY", "Joining the peer network", "application-form")
    assert form["Subject"] == "Re: Joining the peer network"
    filled, received = client_reply(ann, form, form_text(), "application-received")
    assert filled["Subject"] == "Re: Re: Joining the peer network"
    assert received["Subject"] == "Re: Joining the peer network"  # one Re:, not two
    assert_one_thread([asked, form, filled, received])


def test_a_form_with_problems_stays_in_the_thread_until_it_is_received(ann):
    asked, form = ask(ann, "", "APPLY", "application-form")
    assert form["Subject"] == "Re: APPLY"
    wrong, problems = client_reply(ann, form, form_text(country="Atlantis"), "application-problems")
    fixed, received = client_reply(ann, problems, "Country: Nigeria", "application-received")
    assert received["Subject"] == "Re: APPLY"
    assert_one_thread([asked, form, wrong, problems, fixed, received])
    # Our "Re: APPLY", carried back by a reply to it, is not a second APPLY.
    client_reply(ann, received, "Thank you!", "not-understood")


def test_a_command_in_our_answers_subject_is_not_run_again(ann):
    asked, helped = ask(ann, "", "HELP", "help")
    assert helped["Subject"] == "Re: HELP"
    thanks, answer = client_reply(ann, helped, "Thanks, that was clear.", "not-understood")
    # Nothing a stranger wrote is carried back under the program's name, their subject
    # neither: the template's stands, still in reply to their message.
    assert answer["Subject"] == "We didn't understand your message"
    assert answer["References"].split() == [
        asked["Message-ID"],
        helped["Message-ID"],
        thanks["Message-ID"],
    ]
    # Their own "Re: HELP" to mail of their own is still a command.
    mine = compose(
        ann.address, "What can I write?", "Re: HELP", headers={"In-Reply-To": "<own@uni.example>"}
    )
    ann.send(mine)
    ann.expect(mine, "help")


def test_a_check_in_its_reminder_the_answer_and_the_thanks_are_one_thread(matched):
    assert "checkin: 8" in tick(matched, "2026-03-16T09:00:00Z")
    assert "checkin-reminder: 8" in tick(matched, "2026-03-21T09:00:00Z")
    [checkin] = [m for m in scheduled(matched, "checkin") if to(m) == ANN]
    [reminder] = [m for m in scheduled(matched, "checkin-reminder") if to(m) == ANN]
    assert checkin["Subject"] == "How is your partnership going? (check-in 1)"
    assert reminder["Subject"] == "Re: How is your partnership going? (check-in 1)"
    assert reminder["In-Reply-To"] == checkin["Message-ID"]
    assert "We have not had your answer" in reminder.get_content()
    program = start_in_process(matched, "--no-scheduler", MAILFLOW_NOW="2026-03-21T12:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        answer, thanks = client_reply(ann, reminder, "1", "checkin-thanks")
        assert_one_thread([checkin, reminder, answer, thanks])
        stored = program.query(
            "SELECT answer FROM checkin_answers q JOIN participants p ON p.id = q.participant_id"
            " WHERE p.email = ?",
            ANN,
        )
        assert [row["answer"] for row in stored] == [1]
    finally:
        program.stop()


def test_a_coordinators_command_its_confirmation_and_result_are_one_thread(coordinated):
    coordinator = Person(coordinated, COORDINATOR)
    order, preview = ask(coordinator, f"END {ANN}", "Ann and Chen", "command-confirm")
    confirmed, result = client_reply(coordinator, preview, "CONFIRM", "command-result")
    assert "Ended the partnership" in result.get_content()
    assert result["Subject"] == "Re: Ann and Chen"
    assert_one_thread([order, preview, confirmed, result])


def test_localised_reply_prefixes_are_not_piled_up(ann):
    answer = ann.say("HELP", subject="AW: SV: Re: RE: Frage zum Programm", expect="help")
    assert answer["Subject"] == "Re: Frage zum Programm"


def test_a_long_subject_is_kept_whole_and_folded(ann):
    subject = "Bonjour, une question à propos du programme de mentorat " * 3
    subject = subject.strip()
    message = compose(ann.address, "HELP", subject, name=ann.name)
    ann.send(message)
    answer = ann.expect(message, "help")
    assert answer["Subject"] == "Re: " + subject
    [raw] = ann.program.query("SELECT raw FROM outbox WHERE message_id = ?", answer["Message-ID"])
    head = bytes(raw["raw"]).split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert b"\r\n " in head.split(b"Subject:", 1)[1].split(b"\r\nDate:", 1)[0]


def test_a_long_references_chain_keeps_its_first_and_latest(ann):
    earlier = [f"<{n}@thread.example>" for n in range(30)]
    message = compose(
        ann.address,
        "HELP",
        "Re: an old thread",
        headers={"In-Reply-To": earlier[-1], "References": " ".join(earlier)},
    )
    ann.send(message)
    answer = ann.expect(message, "help")
    references = str(answer["References"]).split()
    assert references == [earlier[0], *earlier[-8:], message["Message-ID"]]


def test_without_references_a_single_in_reply_to_stands_for_them(ann):
    message = compose(
        ann.address, "HELP", "Re: a question", headers={"In-Reply-To": "<root@thread.example>"}
    )
    ann.send(message)
    answer = ann.expect(message, "help")
    assert str(answer["References"]).split() == ["<root@thread.example>", message["Message-ID"]]


def test_a_reply_without_references_is_tied_to_our_mail_by_its_reply_address(matched):
    """Some webmail and phone clients drop References and In-Reply-To: the token in the
    reply address still says which of our mails was answered."""
    tick(matched, "2026-03-16T09:00:00Z")
    [checkin] = [m for m in scheduled(matched, "checkin") if to(m) == ANN]
    program = start_in_process(matched, "--no-scheduler", MAILFLOW_NOW="2026-03-17T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        address = email.utils.parseaddr(str(checkin["Reply-To"]))[1]
        answer = compose(ANN, "2", "Re: " + str(checkin["Subject"]), to=address)
        ann.send(answer, to=address)
        thanks = ann.expect(answer, "checkin-thanks")
        assert thanks["Subject"] == "Re: How is your partnership going? (check-in 1)"
        assert str(thanks["References"]).split() == [checkin["Message-ID"], answer["Message-ID"]]
    finally:
        program.stop()
