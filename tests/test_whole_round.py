"""A whole round, five months of daily ticks: 52 people matched on 2 March 2026, answering
check-ins in the styles of different mail clients or never, one leaving, one pausing, one
reporting a silent partner; the exact mails each one receives, day by day.

The program runs in-process (the same `Program`, `pipeline` and `scheduler.tick` the
daemon uses) with "now" moved forward a day at a time; a daemon per day would only make
the run slower. Replies are raw RFC 5322 messages, as a client writes them.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import sqlite3
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from email.message import EmailMessage

from mailflow import config as configuration
from mailflow import pipeline
from mailflow.config import parse_time
from mailflow.program import Program
from mailflow.schedule import scheduler
from tests.conftest import PROGRAM, command, environment
from tests.people import roster

COORDINATOR = "coord@program.example.org"
PLACES = [
    ("Nigeria", "Africa/Lagos"),
    ("Sweden", "Europe/Stockholm"),
    ("China", "Asia/Shanghai"),
    ("Australia", "Australia/Sydney"),
    ("Brazil", "America/Sao_Paulo"),
    ("Canada", "America/Toronto"),
    ("Germany", "Europe/Berlin"),
    ("Japan", "Asia/Tokyo"),
    ("Kenya", "Africa/Nairobi"),
    ("India", "Asia/Kolkata"),
    ("Mexico", "America/Mexico_City"),
    ("France", "Europe/Paris"),
    ("Chile", "America/Santiago"),
]
KINDS = ["academic", "public", "school", "special"]
TOPICS = ["metadata", "outreach", "archives", "makerspaces", "open access", "reading"]
PEOPLE = [
    (
        f"p{i:02d}@lib{i % 13}.example.org",
        f"Person {i:02d}",
        PLACES[i % 13][0],
        KINDS[i % 4],
        f"{TOPICS[i % 6]}; {TOPICS[(i // 6) % 6]}",
        PLACES[i % 13][1],
    )
    for i in range(52)
]

# The introductions are on 2 March at 09:00; the term ends on 2 July at 09:00.
CHECKINS = ["03-16", "04-15", "05-15", "06-14"]
TOPIC_DAYS = ["04-01", "05-01", "06-01", "07-01"]


def at(day: str, hour: int = 9) -> datetime:
    return parse_time(f"2026-{day}T{hour:02d}:00:00Z")


def day_after(day: str) -> str:
    return (at(day) + timedelta(days=1)).strftime("%m-%d")


def plus(day: str, days: int) -> str:
    return (at(day) + timedelta(days=days)).strftime("%m-%d")


# How a person writes the first line of their answer, and how their client quotes.
def gmail(text: str, original: EmailMessage) -> str:
    quoted = "\n".join("> " + line for line in original.get_content().splitlines())
    return f"{text}\n\nOn Mon, 16 Mar 2026 at 10:00, {PROGRAM} wrote:\n{quoted}\n"


def outlook(text: str, original: EmailMessage) -> str:
    return (
        f"{text}\n\n________________________________\nFrom: Peers <{PROGRAM}>\n"
        f"Sent: Monday, March 16, 2026 10:00 AM\nTo: you\nSubject: {original['Subject']}\n\n"
        + original.get_content()
    )


def iphone(text: str, original: EmailMessage) -> str:
    quoted = "\n".join("> " + line for line in original.get_content().splitlines())
    header = f"> On 16 Mar 2026, at 10:00, {PROGRAM} wrote:\n>\n"
    return f"{text}\n\nSent from my iPhone\n\n{header}{quoted}\n"


STYLES = [
    (gmail, "1"),
    (outlook, "Regular contact, we talk every week"),
    (iphone, "2"),
    (gmail, "2. Some contact so far"),
]


class Round:
    """The program at one moment, and what it has sent."""

    def __init__(self, home, config) -> None:
        self.home, self.config = home, config

    def program(self, now: datetime) -> Program:
        return Program(dataclasses.replace(self.config, now=now))

    def sent(self) -> list[tuple[str, str, str, bytes]]:
        """(recipient, template, day 'MM-DD', raw) of everything queued, in order."""
        with sqlite3.connect(self.home / "mailflow.db") as db:
            rows = db.execute(
                "SELECT recipient, template, created_at, raw FROM outbox ORDER BY id"
            ).fetchall()
        return [(r, t, c[5:10], raw) for r, t, c, raw in rows]

    def latest(self, address: str, template: str) -> EmailMessage:
        raw = [raw for r, t, _, raw in self.sent() if r == address and t == template][-1]
        return email.message_from_bytes(raw, policy=email.policy.default)

    def write(
        self,
        now: datetime,
        sender: str,
        body: str,
        original: EmailMessage | None = None,
        to: str | None = None,
    ):
        message = EmailMessage()
        message["From"] = sender
        message["Subject"] = ("Re: " + str(original["Subject"])) if original else body[:40]
        message["Date"] = email.utils.format_datetime(now)
        message["Message-ID"] = email.utils.make_msgid(domain="client.example")
        target = to or PROGRAM
        if original is not None:
            target = email.utils.parseaddr(str(original["Reply-To"]))[1]
            message["In-Reply-To"] = original["Message-ID"]
        message["To"] = target
        message.set_content(body)
        program = self.program(now)
        try:
            _, outcome = pipeline.handle(program, message.as_bytes(), sender, [target], "smtp")
        finally:
            program.close()
        return outcome


def test_a_whole_round_over_five_months(home, tmp_path):
    command(home, "import", str(roster(tmp_path, PEOPLE)))
    command(home, "match")
    env = environment(home, MAILFLOW_COORDINATORS=COORDINATOR)
    world = Round(home, configuration.load(env, cwd=home.parent))

    with sqlite3.connect(home / "mailflow.db") as db:
        pairs = db.execute(
            "SELECT a.email, b.email FROM partnerships p JOIN participants a ON a.id = p.member_a"
            " JOIN participants b ON b.id = p.member_b WHERE p.member_c IS NULL ORDER BY p.id"
        ).fetchall()
    assert len(pairs) == 26  # everyone is matched, in pairs

    answerers = [person for pair in pairs[:10] for person in pair]
    silent = [person for pair in pairs[10:15] for person in pair]
    reporter, ignored = pairs[15]
    leaver, left_behind = pairs[16]
    pauser, pausers_partner = pairs[17]
    more_answerers = [person for pair in pairs[18:] for person in pair]
    answering = [*answerers, *more_answerers, reporter, leaver, left_behind, pauser]
    answering += [pausers_partner]
    surveyed, returner = answerers[:5], answerers[5]
    style = {person: STYLES[i % len(STYLES)] for i, person in enumerate(answering)}
    style[reporter] = (outlook, "No word from my partner yet")

    day, outcomes = at("03-03"), Counter()
    while day <= at("07-31"):
        today = day.strftime("%m-%d")
        morning = day - timedelta(hours=1)
        # Yesterday's check-in is answered this morning, by those who answer.
        if today in {day_after(d) for d in CHECKINS}:
            for person in answering:
                gone = person in (leaver, left_behind) and today > "04-10"
                if gone or (person == pauser and "04-20" <= today < "05-10"):
                    continue
                client, text = style[person]
                checkin = world.latest(person, "checkin")
                outcomes[world.write(morning, person, client(text, checkin), checkin)] += 1
        if today == "04-10":
            # The List-Unsubscribe address of our mail: proof enough, so it is leaving at once.
            topic = world.latest(leaver, "topic")
            unsubscribe = topic["List-Unsubscribe"].strip("<>").removeprefix("mailto:")
            outcomes[world.write(morning, leaver, "STOP", to=unsubscribe)] += 1
        if today == "04-20":
            outcomes[world.write(morning, pauser, "PAUSE until 10 May, please")] += 1
            asked = world.latest(pauser, "change-confirm")
            outcomes[world.write(morning, pauser, gmail("Yes", asked), asked)] += 1
        if today == "07-03":
            for person in surveyed:
                survey = world.latest(person, "survey")
                outcomes[world.write(morning, person, gmail("5, yes", survey), survey)] += 1
        if today == "07-05":
            outcomes[world.write(morning, returner, "AGAIN")] += 1
            asked = world.latest(returner, "change-confirm")
            outcomes[world.write(morning, returner, gmail("YES", asked), asked)] += 1
        program = world.program(day)
        try:
            scheduler.tick(program, day)
        finally:
            program.close()
        day += timedelta(days=1)

    assert not [o for o in outcomes if "unclear" in o or "not-understood" in o], outcomes
    received: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for recipient, template, sent_on, _ in world.sent():
        received[recipient].append((sent_on, template))

    def answered(extra=()) -> list[tuple[str, str]]:
        mails = [("03-02", "match-intro")]
        mails += [(d, "checkin") for d in CHECKINS]
        mails += [(day_after(d), "checkin-thanks") for d in CHECKINS]
        mails += [(d, "topic") for d in TOPIC_DAYS]
        mails += [("07-02", "term-ended"), ("07-02", "survey"), ("07-02", "certificate")]
        return sorted([*mails, *extra])

    def unanswered(extra=()) -> list[tuple[str, str]]:
        mails = [(d, t) for d, t in answered() if t != "checkin-thanks"]
        mails += [(plus(d, 5), "checkin-reminder") for d in CHECKINS]
        return sorted([*mails, *extra])

    invited = [("07-16", "round-open")]
    for person in [*answerers, *more_answerers, pausers_partner]:
        if person in surveyed:
            expected = answered([("07-03", "survey-thanks"), *invited])
        elif person == returner:
            expected = answered([("07-05", "change-confirm"), ("07-05", "signup-again")])
        else:
            expected = answered(invited)
        assert sorted(received[person]) == expected, person
    for person in silent:
        assert sorted(received[person]) == unanswered(invited), person
    assert sorted(received[reporter]) == answered(invited)
    nudges = [(day_after(d), "partner-nudge") for d in CHECKINS]
    assert sorted(received[ignored]) == unanswered([*nudges, *invited])
    assert sorted(received[leaver]) == [
        ("03-02", "match-intro"),
        ("03-16", "checkin"),
        ("03-17", "checkin-thanks"),
        ("04-01", "topic"),
        ("04-10", "optout-confirmed"),
    ]
    # Nobody waits in an even round: the partner left behind waits for Round 2.
    assert sorted(received[left_behind]) == [
        ("03-02", "match-intro"),
        ("03-16", "checkin"),
        ("03-17", "checkin-thanks"),
        ("04-01", "topic"),
        ("04-10", "partner-left"),
    ]
    # Paused from 20 April to 10 May: May's topic (1 May) fell in the pause and is skipped.
    assert sorted(received[pauser]) == sorted(
        [
            *[(d, t) for d, t in answered(invited) if (d, t) != ("05-01", "topic")],
            ("04-20", "change-confirm"),
            ("04-20", "paused"),
            ("05-10", "resumed"),
        ]
    )
    # The coordinator hears of the five silent pairs once, 21 days after check-in 1, and of
    # the reporter's silent partner after the second "no word".
    assert received[COORDINATOR] == [
        ("04-06", "partner-silent-alert"),
        ("04-16", "partner-silent-alert"),
    ]
    digest = world.latest(COORDINATOR, "partner-silent-alert")
    assert "answers of 'no word from my partner'" in digest.get_content()

    for recipient, mails in received.items():
        twice = [mail for mail, count in Counter(mails).items() if count > 1]
        assert not twice, f"{recipient} got the same template twice on one day: {twice}"
    with sqlite3.connect(home / "mailflow.db") as db:
        statuses = dict(db.execute("SELECT email, status FROM participants").fetchall())
        answers = db.execute("SELECT count(*) FROM checkin_answers").fetchone()[0]
        surveys = db.execute("SELECT rating, again FROM survey_answers").fetchall()
    assert statuses[leaver] == "left" and statuses[left_behind] == "waiting"
    assert statuses[returner] == "applied"
    assert Counter(statuses.values()) == {"completed": 49, "left": 1, "waiting": 1, "applied": 1}
    # Four answers from each who answers, but one from the leaver and their partner.
    assert answers == 4 * (len(answering) - 2) + 2
    assert surveys == [(5, 1)] * 5
