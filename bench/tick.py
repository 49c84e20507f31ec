"""The tick benchmark: `python -m bench.tick [--quick] [--people N] [--scenarios ...]`.

One tick of the rules engine (`mailflow.scheduler.tick`) over N people in active
partnerships, on a real SQLite store: the schema comes from the real code path (opening a
`Program` applies `migrations/`), the rows from bulk SQL. The store holds what earlier
ticks would have left: the check-ins, topics and reminders already sent, answers, tokens,
the alerts coordinators already had and the outbox rows of earlier mail (their bodies
shortened), and an earlier term of the same people, ended. Each run ticks once on a fresh
copy of its scenario's store, in a fresh `python -m bench.tick --run ...` process, so that
its peak memory is that tick's alone; the parent prints the table. Measures, never fixes.

Scenarios (introductions spread over 30 days unless said otherwise):
  idle         the store as the last tick left it, ticked again: nothing is due.
  typical      the store as of one day earlier: a day's check-ins (about 1 in 30 people),
               reminders, and alerts to coordinators about silent partnerships.
  worst        a round matched at once, on the day of its first check-in: everyone's at once.
  topic-day    the same round on the first weekday of a month: everyone's topic at once.
  end-of-term  idle, but for a slice of partnerships whose term just ended: term-ended,
               survey and a PDF certificate each; the slice's cost is shown per person.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import exit_problem, markdown_table, run_child
from mailflow import config as configuration
from mailflow.model.participants import address_hash
from mailflow.model.rounds import add_months
from mailflow.program import Program
from mailflow.read.countries import country_name
from mailflow.rulebook.cadence import Cadence
from mailflow.send.compose import new_message_id
from mailflow.store import iso

SEED = 2026
PEOPLE = 100_000
QUICK_PEOPLE = 10_000
ENDING = 200  # people whose term ends in the end-of-term scenario, at any size
PROGRAM = "program@example.org"
PUBLIC_URL = "https://mentoring.example.org"
COORDINATORS = ("coordinator@example.org", "deputy@example.org")
CHILD_TIMEOUT = 3600
BUSY = 0.25  # CPUs used by other processes above which a timing is marked unreliable

# A Tuesday in mid-May, not the first weekday of a month; introductions 70 to 100 days
# before it, so that every partnership has had two or three check-ins and topics.
TYPICAL = datetime(2026, 5, 12, 9, 0, tzinfo=UTC)
SPREAD_FROM, SPREAD_DAYS = TYPICAL - timedelta(days=100), 30
# A round matched all at once (the way `mailflow match` does it), and two of its big days.
ROUND_MATCHED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIRST_CHECKIN = ROUND_MATCHED + timedelta(days=14)
FIRST_TOPIC = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)  # Wednesday 1 April

# How people answer check-ins: a fifth of partnerships never do; otherwise each member
# answers each check-in with this chance, within four days; mostly 1 or 2.
QUIET_PARTNERSHIPS = 0.2
ANSWERS = 0.7
ANSWER_VALUES = ((1, 0.6), (2, 0.3), (3, 0.1))
UNSUBSCRIBE_DAYS = 400  # as mailflow.sending issues them
TERM_MONTHS = 4  # as rules/program.toml says
HISTORY = 1  # earlier terms of the same people, ended, in every store
REPEAT = 3  # runs of a scenario with a target; its row is the median one
EARLIER_BODY = b"(an earlier mail; the benchmark keeps no body)"


@dataclass(frozen=True)
class Scenario:
    name: str
    population: str  # "spread" (introductions over 30 days) or "round" (all at once)
    state_at: datetime  # the store is as ticks up to this moment left it
    now: datetime  # the tick measured
    seconds: float | None = None  # the target, if any
    ending: int = 0  # people whose term ended an hour before `now`


SCENARIOS = (
    Scenario("idle", "spread", TYPICAL, TYPICAL, seconds=2.0),
    Scenario("typical", "spread", TYPICAL - timedelta(days=1), TYPICAL, seconds=10.0),
    Scenario("worst", "round", FIRST_CHECKIN - timedelta(minutes=1), FIRST_CHECKIN),
    Scenario("topic-day", "round", FIRST_TOPIC - timedelta(minutes=1), FIRST_TOPIC),
    Scenario("end-of-term", "spread", TYPICAL, TYPICAL, ending=ENDING),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
MEMORY_MB = 1024.0  # "memory bounded": every tick at 100,000 people under this

# Names from many places: nearly half need more than ASCII in a header.
GIVEN = (
    "Ann", "Chen", "Bo", "Dee", "Ivo", "Jo", "Amara", "Kwame", "Priya", "Arjun", "Mei",
    "Hiroshi", "Sofia", "Lucas", "Emma", "Noah", "Aroha", "Tane", "Fatima", "Omar", "Olga",
    "Ines", "Mateus", "Ana", "Grace", "Joseph", "Nomvula", "Sipho", "Wanjiru", "Ravi",
    "José", "Zoë", "Søren", "Chloé", "Łukasz", "Nguyễn", "Олена", "Δημήτρης", "محمد", "陈",
)  # fmt: skip
FAMILY = (
    "Okafor", "Jing", "Lind", "Brown", "Mwangi", "Otieno", "Mensah", "Sharma", "Patel",
    "Wang", "Tanaka", "Silva", "Martin", "Smith", "Ngata", "Walker", "Khan", "Ahmed",
    "Ivanova", "Garcia", "Santos", "Costa", "Nkosi", "Dlamini", "Kamau", "Reddy", "Kim",
    "Álvarez", "Müller", "Ødegaard", "Dvořák", "Văn An", "Коваль", "Παπαδόπουλος", "静",
)  # fmt: skip


# --- Building a store -----------------------------------------------------------------------


def program_config(home: Path, now: datetime) -> configuration.Config:
    """The Config a `mailflow tick` run at `now` would have in this MAILFLOW_HOME."""
    return configuration.load(
        {
            "MAILFLOW_HOME": str(home),
            "MAILFLOW_ADDRESS": PROGRAM,
            "MAILFLOW_NOW": iso(now),
            "MAILFLOW_COORDINATORS": ",".join(COORDINATORS),
            "MAILFLOW_PUBLIC_URL": PUBLIC_URL,
        },
        cwd=home,
    )


@dataclass
class Store:
    """Rows for the bulk inserts, collected before they are written."""

    participants: list[tuple] = field(default_factory=list)
    applications: list[tuple] = field(default_factory=list)
    partnerships: list[tuple] = field(default_factory=list)
    scheduled: list[tuple] = field(default_factory=list)
    answers: list[tuple] = field(default_factory=list)
    alerts: list[tuple] = field(default_factory=list)
    tokens: list[tuple] = field(default_factory=list)
    outbox: list[tuple] = field(default_factory=list)


def _people(n: int, seed: int, at: datetime) -> list[tuple]:
    """Participant rows shaped like the matching benchmark's applicants (bench.population)."""
    from bench.population import ROLES, _zone_of, population  # the ticks' processes need none

    rng = random.Random(f"tick-names:{seed}")
    rows = []
    for person in population(n, seed):
        name = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        rows.append(
            (
                person.id,
                f"member{person.id}@lib{person.id % 97}.example.org",
                name,
                person.country,
                rng.choice(ROLES),
                person.library_type,
                person.career_stage,
                "; ".join(sorted(person.interests)),
                "; ".join(sorted(person.languages)),
                _zone_of(person),
                "; ".join(sorted(person.contact_methods)),
                person.contact_frequency,
                f"I work in a {person.library_type} library in {country_name(person.country)}.",
                "matched",
                iso(at),
                iso(at),
            )
        )
    return rows


def _introductions(scenario: Scenario, partnerships: int, rng: random.Random) -> list[datetime]:
    """When each partnership was introduced: the first `ending` ones so that their term ended
    an hour before the tick, the rest as the scenario's population says."""
    ending = scenario.ending // 2
    ended = add_months(scenario.now - timedelta(hours=1), -TERM_MONTHS)
    found = [ended] * ending
    for _ in range(partnerships - ending):
        if scenario.population == "round":
            found.append(ROUND_MATCHED)
        else:
            found.append(SPREAD_FROM + timedelta(seconds=rng.randrange(SPREAD_DAYS * 86400)))
    return found


def _token(rng: random.Random) -> str:
    return base64.b32encode(rng.randbytes(10)).decode().lower()


def _earlier_mail(store: Store, template: str, key: str, email: str, at: datetime) -> str:
    """An outbox row for mail sent earlier; its Message-ID."""
    message_id = new_message_id("example.org", key)
    store.outbox.append((key, iso(at), template, email, PROGRAM, message_id, EARLIER_BODY))
    return message_id


def _history(
    store: Store,
    cadence: Cadence,
    upto: datetime,
    partnership_id: int,
    members: list[tuple],
    introduced: datetime,
    term_end: datetime,
    rng: random.Random,
    *,
    mail: bool = True,
) -> None:
    """What the ticks up to `upto` sent this partnership, and its answers: the rows
    `scheduler.tick` reads. Mirrors the rules of mailflow.scheduler, so that a tick at
    `upto` would find nothing new. Without `mail`, no tokens or outbox rows (for ended
    partnerships, whose mail only makes those tables bigger)."""
    checkins = [t for t in cadence.checkins(introduced, term_end) if t <= upto]
    topics = [t for t in cadence.topic_days(introduced, term_end) if t <= upto]
    quiet = rng.random() < QUIET_PARTNERSHIPS

    def reminder_at(checkin: datetime) -> datetime:
        return checkin + timedelta(days=cadence.reminder_after_days)

    answered_at: list[datetime] = []  # by anyone in the partnership
    for participant_id, email in members:
        if mail:
            unsubscribe = iso(introduced + timedelta(days=UNSUBSCRIBE_DAYS))
            store.tokens.append(
                (_token(rng), "unsubscribe", email, "{}", iso(introduced), unsubscribe, None, None)
            )
            key = f"intro:{partnership_id}:{participant_id}"
            _earlier_mail(store, "match-intro", key, email, introduced)
        reminded = 0
        for number, sent in enumerate(checkins, start=1):
            answer_at = None
            if not quiet and rng.random() < ANSWERS:
                answer_at = sent + timedelta(seconds=rng.randrange(2 * 3600, 4 * 86400))
                if answer_at > upto:
                    answer_at = None
            if answer_at:
                answered_at.append(answer_at)
                value = rng.choices(*zip(*ANSWER_VALUES, strict=True))[0]
                store.answers.append(
                    (partnership_id, participant_id, number, value, iso(answer_at))
                )
            remind = reminder_at(sent)
            reminder = remind <= upto and (answer_at is None or answer_at > remind)
            for kind, at in (("checkin", sent), ("checkin-reminder", remind)):
                if not mail or (kind == "checkin-reminder" and not reminder):
                    continue
                key = f"{kind}:{partnership_id}:{participant_id}:{number}"
                message_id = _earlier_mail(store, kind, key, email, at)
                payload = json.dumps({"partnership": partnership_id, "number": number})
                used = iso(answer_at) if answer_at and kind == "checkin" else None
                expires = iso(at + timedelta(days=7))
                store.tokens.append(
                    (_token(rng), "checkin", email, payload, iso(at), expires, used, message_id)
                )
            if reminder:
                reminded = number
        # The latest of each kind sent: (kind, number, when it fell due and was sent).
        latest = [
            ("checkin", len(checkins), checkins[-1] if checkins else None),
            ("topic", len(topics), topics[-1] if topics else None),
            ("checkin-reminder", reminded, reminded and reminder_at(checkins[reminded - 1])),
        ]
        for kind, number, at in latest:
            if number:
                store.scheduled.append(
                    (partnership_id, participant_id, kind, number, iso(at), iso(at))
                )
        for number, day in enumerate(topics if mail else [], start=1):
            key = f"topic:{partnership_id}:{participant_id}:{number}"
            _earlier_mail(store, "topic", key, email, day)
    _silences(store, cadence, partnership_id, checkins, answered_at, upto)


def _silences(
    store: Store,
    cadence: Cadence,
    partnership_id: int,
    checkins: list[datetime],
    answered_at: list[datetime],
    upto: datetime,
) -> None:
    """The 'silent' alerts coordinators already had: for each check-in nobody answered within
    the rules' days, once per last answer before it ("never" when there was none), as
    `scheduler.silent_alerts` keys them."""
    silence = timedelta(days=cadence.alert_silent_days)
    known = set()
    for number, sent in enumerate(checkins):
        at = sent + silence
        following = checkins[number + 1] if number + 1 < len(checkins) else None
        if at > upto or (following is not None and at >= following):
            continue
        before = [a for a in answered_at if a <= at]
        last = max(before) if before else None
        if last is not None and last >= sent:
            continue
        since = iso(last) if last else "never"
        if since not in known:
            known.add(since)
            store.alerts.append((partnership_id, "silent", since, iso(at)))


def _pairs(ids: list[int], rng: random.Random) -> list[list[int]]:
    """Everyone in pairs, and the one group of three when the number is odd."""
    ids = list(ids)
    rng.shuffle(ids)
    groups = [sorted(ids[i : i + 2]) for i in range(0, len(ids) - len(ids) % 2, 2)]
    if len(ids) % 2:
        groups[-1] = sorted([*groups[-1], ids[-1]])
    return groups


def build(
    path: Path, scenario: Scenario, people: list[tuple], seed: int, history: int
) -> dict[str, int]:
    """A store at `path` (a MAILFLOW_HOME) for the scenario, with `history` earlier terms
    of the same people, ended; how many rows of each table."""
    path.mkdir(parents=True, exist_ok=True)
    program = Program(program_config(path, scenario.state_at))
    cadence = program.rules.cadence
    rng = random.Random(f"tick:{scenario.name}:{len(people)}:{seed}:{history}")
    store = Store(participants=people)
    ids = [row[0] for row in people]
    emails = {row[0]: row[1] for row in people}
    groups = _pairs(ids, rng)
    introductions = _introductions(scenario, len(groups), rng)
    terms = []  # (round, state, its partnerships as (members, introduced)), earliest first
    for back in range(history, 0, -1):
        # Each earlier term ended two weeks before the next began, with other partners.
        earlier = [
            add_months(at, -TERM_MONTHS * back) - timedelta(days=14 * back) for at in introductions
        ]
        terms.append(("ended", list(zip(_pairs(ids, rng), earlier, strict=True))))
    terms.append(("active", list(zip(groups, introductions, strict=True))))
    number = 0
    for round_id, (state, partnerships) in enumerate(terms, start=1):
        for members, introduced in partnerships:
            number += 1
            term_end = add_months(introduced, TERM_MONTHS)
            ended = iso(term_end) if state == "ended" else None
            store.partnerships.append(
                (
                    number,
                    round_id,
                    *members,
                    *([None] * (3 - len(members))),
                    iso(introduced),
                    iso(term_end),
                    state,
                    iso(introduced),
                    ended,
                    ended and "term",
                )
            )
            for member in members:
                store.applications.append((member, round_id, iso(introduced)))
            pairs = [(member, emails[member]) for member in members]
            upto = min(scenario.state_at, term_end)
            _history(store, cadence, upto, number, pairs, introduced, term_end, rng, mail=not ended)
    rounds = [
        (
            f"Round {number}",
            min(at for _, at in partnerships),
            "ended" if state == "ended" else "matched",
        )
        for number, (state, partnerships) in enumerate(terms, start=1)
    ]
    first = rounds[0][1]
    erased = [(address_hash(program.db, f"gone{i}@example.net"), iso(first)) for i in range(500)]
    db = program.db.conn
    with db:
        db.execute("DELETE FROM rounds")
        for round_id, (name, start, state) in enumerate(rounds, start=1):
            db.execute(
                "INSERT INTO rounds (id, name, opens_at, term_start, term_end, state, matched_at,"
                " created_at) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?3, ?3)",
                [round_id, name, iso(start), iso(add_months(start, TERM_MONTHS)), state],
            )
        db.execute(
            "INSERT INTO rounds (name, opens_at, state, created_at) VALUES (?, ?, 'open', ?2)",
            [f"Round {len(rounds) + 1}", iso(rounds[-1][1])],
        )
        db.executemany(
            "INSERT INTO participants (id, email, name, country, role, library_type,"
            " career_stage, interests, languages, time_zone, contact_methods,"
            " contact_frequency, about_me, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            store.participants,
        )
        db.executemany(
            "INSERT INTO applications (participant_id, round_id, applied_at, updated_at)"
            " VALUES (?, ?, ?, ?3)",
            store.applications,
        )
        db.executemany(
            "INSERT INTO partnerships (id, round_id, member_a, member_b, member_c, term_start,"
            " term_end, state, score, reasons, made_by, created_at, ended_at, ended_why)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 40, 'you share an interest', 'matching', ?, ?, ?)",
            store.partnerships,
        )
        db.executemany("INSERT INTO scheduled VALUES (?, ?, ?, ?, ?, ?)", store.scheduled)
        db.executemany(
            "INSERT INTO checkin_answers (partnership_id, participant_id, number, answer,"
            " answered_at) VALUES (?, ?, ?, ?, ?)",
            store.answers,
        )
        db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?)", store.alerts)
        db.executemany(
            "INSERT INTO tokens (token, purpose, address, payload, created_at, expires_at,"
            " used_at, outgoing_message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            store.tokens,
        )
        db.executemany(
            "INSERT INTO outbox (idempotency_key, created_at, template, recipient,"
            " envelope_from, message_id, raw, state, attempts, next_attempt_at, sent_at)"
            " VALUES (?, ?2, ?, ?, ?, ?, ?, 'sent', 1, ?2, ?2)",
            store.outbox,
        )
        db.executemany("INSERT INTO erased VALUES (?, ?)", erased)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    program.close()
    return {
        "participants": len(store.participants),
        "partnerships": len(store.partnerships),
        "scheduled": len(store.scheduled),
        "checkin_answers": len(store.answers),
        "alerts": len(store.alerts),
        "tokens": len(store.tokens),
        "outbox": len(store.outbox),
    }


# --- Measuring one tick, inside the child ---------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """The most this process has been resident. Not ru_maxrss: Linux starts a child's at
    its parent's peak (the parent that built the stores is big)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Stages:
    """Wall time spent in the tick's parts, by wrapping the functions `tick` calls."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.undo: list[Callable[[], None]] = []

    def wrap(self, module: object, attribute: str, stage: str) -> None:
        original = getattr(module, attribute, None)
        if original is None:
            return  # renamed since: that stage is not shown

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started

        setattr(module, attribute, timed)
        self.undo.append(lambda: setattr(module, attribute, original))

    def restore(self) -> None:
        while self.undo:
            self.undo.pop()()


def measure(scenario: Scenario, home: Path, profile: Path | None) -> dict:
    """Tick once at the scenario's `now` on the store in `home`; what it did and cost."""
    from mailflow.schedule import endofterm, scheduler
    from mailflow.send import outbox

    program = Program(program_config(home, scenario.now))
    base_mb = _rss_mb()
    stages = Stages()
    for attribute, stage in (
        ("resume_due", "resume"),
        ("end_terms", "end-of-term"),
        ("due", "due"),
        ("send_in_batches", "queue"),
        ("silent_alerts", "alerts"),
        ("invite", "invite"),
    ):
        stages.wrap(scheduler, attribute, stage)
    stages.wrap(endofterm, "certificate_pdf", "pdf")
    stages.wrap(outbox, "deliver", "deliver")
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    sent = scheduler.tick(program, scenario.now)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak_mb = _peak_mb()
    stages.restore()
    if profiler and profile:
        profiler.dump_stats(profile)
    maildir = program.config.outbox / "new"
    files = len(os.listdir(maildir)) if maildir.exists() else 0
    started = time.perf_counter()
    again = scheduler.tick(program, scenario.now)
    again_seconds = time.perf_counter() - started
    program.close()
    return {
        "scenario": scenario.name,
        "sent": dict(sent),
        "seconds": seconds,
        "stages": dict(stages.seconds),
        "base_mb": base_mb,
        "peak_mb": peak_mb,
        "files": files,
        "again": sum(again.values()),
        "again_seconds": again_seconds,
        "profiled": bool(profiler),
    }


# --- The table, in the parent ---------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    people: int
    sent: dict = field(default_factory=dict)
    seconds: float | None = None
    stages: dict = field(default_factory=dict)
    base_mb: float | None = None
    peak_mb: float | None = None
    runs: list[float] = field(default_factory=list)  # seconds of each run, when repeated
    files: int | None = None
    again: int | None = None
    again_seconds: float | None = None
    profiled: bool = False
    others: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def mails(self) -> int:
        return sum(self.sent.values())


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (fsync costs differ by orders of size)."""
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, fstype, *_ = line.split()
            inside = str(path).startswith(point.rstrip("/") + "/") or str(path) == point
            if inside and len(point) > len(best):
                best, kind = point, fstype
    return kind


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (/proc/stat). As in
    bench.matching, which is not imported here: numpy and scipy would make this parent
    bigger than the ticks it measures."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(scenario: Scenario, template: Path, work: Path, args: argparse.Namespace) -> Row:
    """One tick on a fresh copy of the scenario's store, in a fresh process."""
    row = Row(scenario.name, args.people)
    home = work / f"run-{scenario.name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copyfile(template / "mailflow.db", home / "mailflow.db")
    command = [sys.executable, "-m", "bench.tick", "--run", scenario.name, "--home", str(home)]
    profile = work / f"{scenario.name}.prof" if args.profile else None
    if profile:
        command += ["--profile-to", str(profile)]
    busy, ours, started = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    code, out, err = run_child(command, args.timeout)
    if code is None:
        row.problems.append(f"timed out after {args.timeout:.0f} s")
        return row
    wall = time.perf_counter() - started
    others = (_busy_cpu_seconds() - busy) - (_children_cpu_seconds() - ours)
    row.others = max(0.0, others / wall)
    if row.others > BUSY:
        row.notes.append(f"MACHINE BUSY: other processes used {row.others:.1f} CPUs")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        row.problems.append(exit_problem(code, err))
        return row
    for key, value in json.loads(lines[-1]).items():
        if key != "scenario":
            setattr(row, key, value)
    if profile:
        _print_profile(scenario.name, profile, args.profile)
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return row


def run_scenario(scenario: Scenario, template: Path, work: Path, args) -> Row:
    """The scenario's row: a single run, or for a scenario with a target the run of median
    time among `--repeat` (a shared machine makes one run's time vary by half)."""
    times = args.repeat if scenario.seconds else 1
    rows = [run_once(scenario, template, work, args) for _ in range(times)]
    measured = sorted((r for r in rows if r.seconds is not None), key=lambda r: r.seconds)
    if not measured:
        return rows[0]
    row = measured[(len(measured) - 1) // 2]
    if len(rows) > 1:
        row.runs = [r.seconds for r in rows if r.seconds is not None]
        row.notes = sorted({note for r in rows for note in r.notes})
        row.problems = sorted({problem for r in rows for problem in r.problems})
        row.others = max(r.others for r in rows)
    return row


def _print_profile(name: str, path: Path, lines: int) -> None:
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(path), stream=text).sort_stats(order).print_stats(lines)
        body = text.getvalue()
        body = body[body.find("   ncalls") :]
        print(f"\n### {name}: top {lines} by {order}\n{body}", file=sys.stderr, flush=True)


def _expected(scenario: Scenario, row: Row) -> list[str]:
    """What is wrong with the row, as short sentences."""
    problems = []
    if row.files is not None and row.files != row.mails:
        problems.append(f"{row.files} files in the Maildir for {row.mails} mails")
    if row.again:
        problems.append(f"a second tick at the same time sent {row.again} more")
    wanted = {
        "idle": lambda sent: not sent,
        "worst": lambda sent: sent.get("checkin") == row.people,
        "topic-day": lambda sent: sent.get("topic") == row.people,
        "end-of-term": lambda sent: sent.get("certificate") == scenario.ending,
    }.get(scenario.name)
    if wanted and not wanted(row.sent):
        problems.append(f"unexpected mail: {row.sent}")
    return problems


def _cells(row: Row) -> list[str]:
    def number(value: float | None, form: str) -> str:
        return "" if value is None else format(value, form)

    scenario = BY_NAME[row.scenario]
    deliver = row.stages.get("deliver")
    queue = row.seconds - deliver if row.seconds is not None and deliver is not None else None
    target = f"< {scenario.seconds:g} s" if scenario.seconds else ""
    met = ""
    if scenario.seconds and row.seconds is not None:
        met = "yes" if row.seconds <= scenario.seconds else "NO"
    if row.peak_mb is not None and row.peak_mb > MEMORY_MB:
        met = (met + ", " if met else "") + "MEMORY"
    order = ("resume", "end-of-term", "pdf", "due", "queue", "alerts", "invite", "deliver")
    stages = ", ".join(f"{s} {row.stages[s]:.2f}" for s in order if row.stages.get(s, 0) >= 0.005)
    notes = [", ".join(f"{kind} {n:,}" for kind, n in sorted(row.sent.items()))]
    if stages:
        notes.append(f"stages (s): {stages}")
    if scenario.ending and row.stages.get("end-of-term"):
        notes.append(
            f"{row.stages['end-of-term'] / scenario.ending * 1000:.0f} ms per person whose"
            f" term ended, of which {row.stages.get('pdf', 0) / scenario.ending * 1000:.0f} ms"
            " the PDF"
        )
    if len(row.runs) > 1:
        notes.append(
            f"median of {len(row.runs)} runs ({min(row.runs):.2f} to {max(row.runs):.2f} s)"
        )
    if row.again_seconds is not None:
        notes.append(f"again at the same time: {row.again_seconds:.2f} s, {row.again} sent")
    if row.profiled:
        notes.append("PROFILED: times inflated")
    notes += row.notes + [f"PROBLEM: {p}" for p in row.problems]
    per_mail = row.seconds / row.mails * 1000 if row.seconds and row.mails else None
    return [
        row.scenario,
        f"{row.people:,}",
        f"{row.mails:,}",
        number(row.seconds, ".2f"),
        number(queue, ".2f"),
        number(deliver, ".2f"),
        number(per_mail, ".2f"),
        number(row.peak_mb, ".0f"),
        number(row.base_mb, ".0f"),
        target,
        met,
        "; ".join(note for note in notes if note),
    ]


HEAD = (
    "scenario",
    "people",
    "mails",
    "seconds",
    "queue s",
    "deliver s",
    "ms/mail",
    "peak MB",
    "base MB",
    "target",
    "met?",
    "notes",
)
RIGHT = {1, 2, 3, 4, 5, 6, 7, 8}


def table(rows: list[Row]) -> str:
    return markdown_table(HEAD, [_cells(row) for row in rows], RIGHT)


FOOTNOTES = (
    "seconds: `scheduler.tick` alone, on a fresh copy of the scenario's store, in a fresh"
    " process (opening the Program is not counted); a scenario with a target shows the"
    " median of its runs. deliver s: its `outbox.deliver` (one Maildir file per mail, fsynced,"
    " and the rows marked sent); queue s: the rest (what is due, rendering, composing,"
    " queueing in one transaction, alerts). ms/mail: seconds / mails.",
    "peak MB: the most the tick's process was resident (VmHWM: interpreter, libraries,"
    " store cache and the tick); base MB: resident just before the tick started.",
    "again: a second tick at the same moment in the same process, which must send nothing"
    " (the idempotency the rules promise); it is also an idle tick with warm caches.",
)


def _sizes(rows: dict[str, int]) -> str:
    return ", ".join(f"{table} {n:,}" for table, n in rows.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tick", description=__doc__)
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PEOPLE:,} people")
    parser.add_argument("--scenarios", nargs="+", choices=list(BY_NAME), default=list(BY_NAME))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--dir", type=Path, help="build the stores here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores and Maildirs")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="LINES", help="cProfile each tick: top LINES"
    )
    parser.add_argument(
        "--timeout", type=float, default=CHILD_TIMEOUT, help="seconds allowed to each tick"
    )
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help="runs of a scenario with a target (median)"
    )
    parser.add_argument(
        "--history", type=int, default=HISTORY, help="earlier terms of the same people, ended"
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(measure(BY_NAME[args.run], args.home, args.profile_to)))
        return 0
    if args.quick:
        args.people = QUICK_PEOPLE
    if args.people < max(ENDING, 4):
        parser.error(f"--people must be at least {ENDING}")
    chosen = [BY_NAME[name] for name in args.scenarios]
    for work in _workspace(args):
        templates = _templates(chosen, work, args)
        rows = []
        for number, scenario in enumerate(chosen, start=1):
            print(f"[{number}/{len(chosen)}] {scenario.name}", file=sys.stderr, flush=True)
            row = run_scenario(scenario, templates[scenario.name], work, args)
            row.problems += _expected(scenario, row)
            rows.append(row)
            print(f"    {row.seconds or 0:.2f} s, {row.mails:,} mails", file=sys.stderr)
        print(
            f"Tick over {args.people:,} people in active partnerships ({args.history} earlier"
            f" term(s) of theirs in the store), seed {args.seed}, {os.cpu_count()} CPUs,"
            f" stores on {_filesystem(work)}."
        )
        print()
        print(table(rows))
        print()
        print("Stores (rows):")
        for scenario in chosen:
            sizes = json.loads((templates[scenario.name] / PARAMS).read_text())["sizes"]
            print(f"  - {scenario.name}: {_sizes(sizes)}")
        print()
        print("Targets:")
        for row in rows:
            scenario = BY_NAME[row.scenario]
            if scenario.seconds and row.seconds is not None:
                verdict = "met" if row.seconds <= scenario.seconds else "MISSED"
                print(
                    f"  - {scenario.name} tick under {scenario.seconds:g} s:"
                    f" {row.seconds:.2f} s: {verdict}"
                )
        peaks = [row.peak_mb for row in rows if row.peak_mb is not None]
        if peaks:
            verdict = "met" if max(peaks) <= MEMORY_MB else "MISSED"
            most = max(peaks)
            print(f"  - every tick under {MEMORY_MB:,.0f} MB: at most {most:.0f} MB: {verdict}")
        if args.people != PEOPLE:
            print(f"  (the targets are for {PEOPLE:,} people; this run had {args.people:,})")
        print()
        print("\n".join(f"* {note}" for note in FOOTNOTES))
        problems = [row for row in rows if row.problems]
        if problems:
            print(f"\n{len(problems)} rows with problems (see notes).")
        busy = [row for row in rows if row.others > BUSY]
        if busy:
            print(
                f"\n{len(busy)} rows were measured while other processes used more than {BUSY}"
                " CPUs (MACHINE BUSY in notes): their seconds are not to be trusted."
            )
    return 0


PARAMS = "bench-params.json"  # what a template store was built with


def _templates(chosen: list[Scenario], work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """A template store for each scenario, built unless --dir already holds one made with
    the same arguments."""
    print(f"Stores of {args.people:,} people in {work} ({_filesystem(work)})", file=sys.stderr)
    started = time.perf_counter()
    people: dict[datetime, list[tuple]] = {}
    templates = {}
    for scenario in chosen:
        template = templates[scenario.name] = work / f"template-{scenario.name}"
        wanted = {"people": args.people, "seed": args.seed, "history": args.history}
        params = template / PARAMS
        if params.exists() and json.loads(params.read_text())["made"] == wanted:
            print(f"  {scenario.name}: reused", file=sys.stderr)
            continue
        shutil.rmtree(template, ignore_errors=True)
        at = ROUND_MATCHED if scenario.population == "round" else SPREAD_FROM
        if at not in people:
            people[at] = _people(args.people, args.seed, at)
        sizes = build(template, scenario, people[at], args.seed, args.history)
        params.write_text(json.dumps({"made": wanted, "sizes": sizes}))
        print(
            f"  {scenario.name}: {_sizes(sizes)} ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return templates


def _workspace(args: argparse.Namespace) -> Iterator[Path]:
    """The folder to build in: --dir as given (kept), else a temp dir removed afterwards
    unless --keep."""
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        yield args.dir.resolve()
        return
    work = Path(tempfile.mkdtemp(prefix="mailflow-tick-"))
    try:
        yield work
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
