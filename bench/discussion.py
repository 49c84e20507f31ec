"""A round's discussion at full size: `python -m bench.discussion [--quick] [--people N]`.

A round of N people matched at once (N/2 active partnerships), 30% of them taking every
post, 60% a daily digest and the rest the default (weekly), on a real SQLite store: the
schema from the real code path (opening a `Program` applies `migrations/`), the round
and its history as `bench.tick` builds them, the discussion's rows by bulk SQL.

post     `mailflow serve` (a subprocess, Maildir delivery) takes one post the real way: a
         reply over SMTP to its author's standing discussion token. Timed from the post's
         SMTP transaction to its 250, to the post stored and published, to every copy
         queued, to every copy in the Maildir. Meanwhile, several SMTP clients send
         ordinary mail (HELP, each from its own sender) at a steady rate: their
         acceptance latency before the post (baseline) and during its fan-out and delivery.
digest   a day's posts published in the round, then one tick (`scheduler.tick`, in a
         fresh process) at the digest hour: the daily digests built, queued and delivered.

The write lock is measured from outside, in both: a probe process on the same database
does `BEGIN IMMEDIATE; COMMIT` every few milliseconds, retrying every millisecond when
it is busy; how long it waited bounds from below how long a transaction held the lock
(to within the probe's gap). Measures, never fixes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from bench import ROOT, exit_problem, markdown_table, run_child
from bench.smtp_load import free_port, listening
from bench.tick import (
    COORDINATORS,
    PROGRAM,
    PUBLIC_URL,
    ROUND_MATCHED,
    Scenario,
    _peak_mb,
    _people,
    program_config,
)
from bench.tick import build as build_round
from mailflow.model import tokens
from mailflow.program import Program
from mailflow.store import iso

SEED = 2026
PEOPLE = 5_000
QUICK_PEOPLE = 1_000
EVERY, DAILY = 0.3, 0.6  # shares of the round taking every post, and a daily digest
POSTS = 300  # published in the day before the digest, at full size
QUICK_POSTS = 60
# A Wednesday: the daily digest falls due at the rules' digest hour (06:00), the weekly
# one (Mondays) does not. The round was matched on 2 March; the store is as the ticks up
# to this moment left it, so the tick at it has only the digests to send.
DIGEST_AT = datetime(2026, 4, 15, 6, 0, tzinfo=ROUND_MATCHED.tzinfo)
POST_AT = DIGEST_AT + timedelta(hours=4)  # the daemon's clock in the post scenario
ROUND_ID = 1
ROUND_ADDRESS = f"program+round-{ROUND_ID}@example.org"

LOCK_SECONDS = 1.0  # the longest a transaction may hold the write lock
SMTP_P99_MS = 100.0  # SMTP acceptance during fan-out, p99
TICK_SECONDS = 60.0  # the daemon ticks every minute (mailflow.serve.TICK_SECONDS)
PROBE_GAP = 0.005  # seconds between the probe's transactions
LOAD_CLIENTS = 4
LOAD_RATE = 20.0  # ordinary messages a second, from all clients together
BASELINE_SECONDS = 5.0  # of load before the post
CHILD_TIMEOUT = 1800

# What people write to a round's discussion, to make posts of realistic length and shape.
OPENINGS = (
    "Has anyone tried", "We started", "Our library is piloting", "I would love advice on",
    "Last month we ran", "A question for those in public libraries:", "Sharing a small win:",
    "Does your library charge for", "We are rethinking", "Following up on the topic,",
)  # fmt: skip
THINGS = (
    "a seed library", "reading circles for teenagers", "late-night opening during exams",
    "makerspace sewing machines", "oral history recordings", "a repair café",
    "the loan of laptops and hotspots", "Wikipedia edit-a-thons", "bilingual story time",
    "open-access publishing support", "a zine collection", "digitising local newspapers",
    "outreach to refugee families", "the catalogue's subject headings", "escape rooms",
)  # fmt: skip
MORE = (
    "The first weeks were slow, but word of mouth did the rest.",
    "Our budget is small, so we partnered with the council and a local school.",
    "Volunteers made the difference; we trained twelve of them in an afternoon.",
    "The hardest part was the paperwork, not the people.",
    "Students asked for it in our survey, and they came in numbers.",
    "We measured use for three months before deciding to keep it.",
    "I can share our policy document and the poster we used, in English and Español.",
    "Colleagues in São Paulo and Zürich gave us the idea at a conference.",
    "Next term we want to open it to the wider community, not only members.",
    "If your library has done this, what would you do differently?",
)


def post_text(rng: random.Random) -> tuple[str, str]:
    """(subject, body) of a post: a question or a story, a few short paragraphs."""
    thing = rng.choice(THINGS)
    subject = f"{rng.choice(OPENINGS).rstrip(':,')} {thing}".strip()
    paragraphs = []
    for _ in range(rng.randint(1, 4)):
        sentences = rng.sample(MORE, rng.randint(2, 5))
        paragraphs.append(" ".join(sentences))
    return subject[:1].upper() + subject[1:], f"{subject}?\n\n" + "\n\n".join(paragraphs)


# --- Building the stores -------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    people: int
    posts: int

    @property
    def every(self) -> int:
        return int(self.people * EVERY)

    @property
    def daily(self) -> int:
        return int(self.people * DAILY)


def build(home: Path, sizes: Sizes, seed: int = SEED) -> dict[str, int]:
    """The round at DIGEST_AT in `home` (a MAILFLOW_HOME): bench.tick's store of a round
    matched at once, without earlier terms, and each person's delivery choice, made the
    day they were matched. How many rows of each table."""
    people = _people(sizes.people, seed, ROUND_MATCHED)
    scenario = Scenario("discussion", "round", DIGEST_AT, DIGEST_AT)
    rows = build_round(home, scenario, people, seed, history=0)
    ids = [row[0] for row in people]
    random.Random(f"discussion:{seed}").shuffle(ids)
    modes = ["every"] * sizes.every + ["daily"] * sizes.daily
    choices = [(i, mode, iso(ROUND_MATCHED)) for i, mode in zip(ids, modes, strict=False)]
    with _open(home) as db:
        db.executemany(
            "INSERT INTO discussion_choices (participant_id, mode, changed_at) VALUES (?, ?, ?)",
            choices,
        )
    rows["discussion_choices"] = len(choices)
    return rows


@contextlib.contextmanager
def _open(home: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the store, committed and closed at the end. Closed, not left to the
    garbage collector: a connection left open in this process while the daemon's come and
    go keeps a stale view of the WAL's index here, and reads fail as "malformed"."""
    connection = sqlite3.connect(home / "mailflow.db", timeout=30)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def author(home: Path) -> tuple[str, str]:
    """(address, standing discussion token) of someone who takes every post: the one who
    posts in the post scenario. The token as a topic mail would have issued it."""
    with _open(home) as db:
        email = db.execute(
            "SELECT p.email FROM participants p JOIN discussion_choices c"
            " ON c.participant_id = p.id WHERE c.mode = 'every' ORDER BY p.id LIMIT 1"
        ).fetchone()[0]
    program = Program(program_config(home, ROUND_MATCHED))
    with program.db.conn:
        token = tokens.standing(
            program.db, purpose=tokens.DISCUSSION, address=email, now=ROUND_MATCHED, days=400
        )
    program.close()
    return email, token


def add_posts(home: Path, count: int, seed: int = SEED) -> int:
    """`count` posts published in the round in the day before DIGEST_AT, each already fanned
    out (its copies went as it came); some in reply to others. How many were added."""
    rng = random.Random(f"discussion-posts:{seed}")
    with _open(home) as db:
        writers = db.execute("SELECT email, name, country FROM participants ORDER BY id").fetchall()
        top = db.execute("SELECT max(id) FROM participants").fetchone()[0]
        rows = []
        for n in range(count):
            email, name, country = rng.choice(writers)
            at = DIGEST_AT - timedelta(days=1) + timedelta(seconds=(n + 1) * 86400 // (count + 1))
            subject, body = post_text(rng)
            parent = rng.randrange(1, n + 1) if n and rng.random() < 0.6 else None
            if parent:
                subject = f"Re: {rows[parent - 1][5].removeprefix('Re: ')}"
            message_id = f"<bench-post-{n + 1}.mailflow@example.org>"
            post = (n + 1, ROUND_ID, email, name, country, subject, body, message_id, parent)
            rows.append((*post, iso(at), top))
        with db:
            db.executemany(
                "INSERT INTO discussion_posts (id, round_id, author_email, author_name,"
                " author_country, subject, body, message_id, parent_id, state, created_at,"
                " published_at, fanned_to, fanned_out_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'published', ?10, ?10, ?11, ?10)",
                rows,
            )
    return len(rows)


# --- The write-lock probe (a process of its own) -----------------------------------------------


def probe(db: Path, stop: Path, how: str, gap: float = PROBE_GAP) -> list[tuple[float, float]]:
    """(moment it began to ask, seconds it waited) for each `BEGIN IMMEDIATE; COMMIT`,
    until `stop` exists. `how` it waits: "fine", trying again every millisecond, which
    measures how long the lock was held; "busy", in SQLite's busy handler as every
    connection of mailflow waits (`store.connect`), whose sleeps grow to 100 ms between
    tries: what a writer of the daemon, such as the handling of incoming mail, waits."""
    connection = sqlite3.connect(db, timeout=10 if how == "busy" else 0, isolation_level=None)
    samples = []
    while not stop.exists():
        began = time.monotonic()
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                if how == "busy":
                    raise
                time.sleep(0.001)
        waited = time.monotonic() - began
        connection.execute("COMMIT")
        samples.append((began, waited))
        time.sleep(gap)
    connection.close()
    return samples


PROBE_COMMAND = (sys.executable, "-m", "bench.discussion", "--probe")
PROBES = ("fine", "busy")


class Probes:
    """Both probes, each in a process of its own, while something happens; their samples."""

    def __init__(self, db: Path, folder: Path) -> None:
        self.stop_file = folder / "probe-stop"
        self.stop_file.unlink(missing_ok=True)
        self.processes = {
            how: subprocess.Popen(
                [*PROBE_COMMAND, str(db), "--probe-stop", str(self.stop_file), "--probe-how", how],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for how in PROBES
        }

    def stop(self) -> dict[str, list[tuple[float, float]]]:
        self.stop_file.touch()
        found = {}
        for how, process in self.processes.items():
            out, _ = process.communicate(timeout=60)
            found[how] = [tuple(sample) for sample in json.loads(out)] if out else []
        return found


def held(samples: dict[str, list[tuple[float, float]]], start: float, end: float) -> dict:
    """For each probe, (longest wait, p99 wait, how many samples) of its asks begun in
    [start, end]."""
    found = {}
    for how, taken in samples.items():
        waits = sorted(waited for began, waited in taken if start <= began <= end)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else 0.0
        found[how] = (waits[-1] if waits else 0.0, p99, len(waits))
    return found


# --- The post scenario -----------------------------------------------------------------------


def ordinary(n: int) -> tuple[str, bytes]:
    message = EmailMessage()
    message["From"] = sender = f"p{n}@load{n % 50}.example"
    message["To"] = PROGRAM
    message["Subject"] = "help"
    message["Message-ID"] = f"<load-{n}@bench.example>"
    message.set_content(f"HELP\n\nI am number {n}.\n")
    return sender, message.as_bytes().replace(b"\n", b"\r\n")


class Load:
    """Ordinary mail at a steady `rate` from `clients` SMTP clients, each on its own
    connection, until stopped: (moment sent, seconds to the answer, the answer's code)."""

    def __init__(self, port: int, clients: int, rate: float) -> None:
        self.port, self.clients, self.rate = port, clients, rate
        self.sent: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> list[tuple[float, float, int]]:
        self.done.set()
        for thread in self.threads:
            thread.join()
        return sorted(self.sent)

    def _client(self, number: int) -> None:
        every = self.clients / self.rate
        at = time.monotonic() + every * number / self.clients
        n = number
        with smtplib.SMTP("127.0.0.1", self.port, timeout=120) as smtp:
            while not self.done.is_set():
                time.sleep(max(0.0, at - time.monotonic()))
                at += every
                sender, raw = ordinary(n)
                n += self.clients
                began = time.monotonic()
                try:
                    smtp.sendmail(sender, [PROGRAM], raw)
                    code = 250
                except smtplib.SMTPResponseException as refused:
                    code = refused.smtp_code
                except smtplib.SMTPRecipientsRefused as refused:
                    code = next(iter(refused.recipients.values()))[0]
                with self.lock:
                    self.sent.append((began, time.monotonic() - began, code))


def latencies(sent: list[tuple[float, float, int]], start: float, end: float) -> dict:
    """p50, p99 and max acceptance latency (ms) of the messages sent in [start, end)."""
    chosen = [(seconds, code) for began, seconds, code in sent if start <= began < end]
    ms = sorted(seconds * 1000 for seconds, _ in chosen)
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
        "refused": sum(1 for _, code in chosen if code != 250),
    }


def the_post(sender: str, token: str) -> bytes:
    rng = random.Random("the-post")
    subject, body = post_text(rng)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"program+{token}@example.org"
    message["Subject"] = f"Re: [Round {ROUND_ID}] {subject}"
    message["Message-ID"] = "<the-post@lib.example.org>"
    message["Date"] = "Wed, 15 Apr 2026 10:00:00 +0000"
    message.set_content(body + "\n")
    return message.as_bytes().replace(b"\n", b"\r\n")


def _daemon_env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    env.update(
        MAILFLOW_HOME=str(home),
        MAILFLOW_ADDRESS=PROGRAM,
        MAILFLOW_LISTEN=f"127.0.0.1:{port}",
        MAILFLOW_NOW=iso(POST_AT),
        MAILFLOW_COORDINATORS=",".join(COORDINATORS),
        MAILFLOW_PUBLIC_URL=PUBLIC_URL,
        MAILFLOW_SENDER_RATE="1000000",
        # The daemon imports this checkout's code, whichever `mailflow` is installed.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def _progress(
    connection: sqlite3.Connection, first_outbox: int
) -> tuple[str | None, str | None, int, int]:
    """(the post's state, when its fan-out ended, copies queued, copies sent)."""
    row = connection.execute(
        "SELECT state, fanned_out_at FROM discussion_posts ORDER BY id DESC LIMIT 1"
    ).fetchone()
    queued, sent = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'sent') FROM outbox"
        " WHERE id > ? AND template = 'discussion-post'",
        [first_outbox],
    ).fetchone()
    state, fanned = row if row else (None, None)
    return state, fanned, queued, sent


def post_scenario(home: Path, folder: Path, args: argparse.Namespace, expected: int) -> dict:
    """Run the daemon on `home`, send the post under load; the timings (seconds from the
    post's first SMTP command, by time.monotonic) and what the probe and the load saw."""
    sender, token = author(home)
    db = home / "mailflow.db"
    with _open(home) as connection:
        first_outbox = connection.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    port = free_port()
    log = (folder / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "serve", "--no-scheduler"],
        env=_daemon_env(home, port),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    result: dict = {"expected": expected, "problems": []}
    probe_run = load = None
    stack = contextlib.ExitStack()
    try:
        listening(port, daemon)
        probe_run = Probes(db, folder)
        load = Load(port, args.clients, args.rate)
        load.start()
        baseline_from = time.monotonic()
        time.sleep(args.baseline)
        began = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            smtp.sendmail(sender, [f"program+{token}@example.org"], the_post(sender, token))
        marks = {"accepted": time.monotonic()}
        deadline = began + args.timeout
        reader = stack.enter_context(_open(home))
        while time.monotonic() < deadline:
            state, fanned, queued, sent = _progress(reader, first_outbox)
            now = time.monotonic()
            if state is not None and "stored" not in marks:
                marks["stored"] = now
                result["state"] = state
            if fanned and "queued" not in marks:
                marks["queued"] = now
            if fanned and sent >= queued and "delivered" not in marks:
                marks["delivered"] = now
                result["copies"], result["sent"] = queued, sent
                break
            if state in ("held", "rejected", "unconfirmed") and now - marks["stored"] > 10:
                break
            time.sleep(0.02)
        else:
            result["problems"].append(f"not delivered within {args.timeout:.0f} s")
        end = time.monotonic()
        time.sleep(0.5)  # the load goes on a little after, as it would
        result["seconds"] = {name: at - began for name, at in marks.items()}
        result["load_before"] = latencies(load.stop(), baseline_from, began)
        result["load_during"] = latencies(load.sent, began, end)
        queued_at = marks.get("queued", end)
        result["load_queuing"] = latencies(load.sent, began, queued_at)
        result["load_delivering"] = latencies(load.sent, queued_at, end)
        load = None
        samples = probe_run.stop()
        probe_run = None
        result["lock_before"] = held(samples, baseline_from, began)
        result["lock_during"] = held(samples, began, end)
    finally:
        if load is not None:
            load.stop()
        if probe_run is not None:
            probe_run.stop()
        stack.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
        log.close()
    if result.get("state") != "published":
        result["problems"].append(f"the post is {result.get('state')}, not published")
    if result.get("copies") is not None and result["copies"] != expected:
        result["problems"].append(f"{result['copies']} copies queued, {expected} expected")
    files = _maildir_count(home, "discussion-post", first_outbox)
    if result.get("copies") is not None and files != result["copies"]:
        result["problems"].append(f"{files} copies in the Maildir for {result['copies']} queued")
    return result


def _maildir_count(home: Path, template: str, after: int) -> int:
    """Files in the Maildir written from outbox rows of `template` past id `after`."""
    with _open(home) as connection:
        ids = {
            row_id
            for (row_id,) in connection.execute(
                "SELECT id FROM outbox WHERE id > ? AND template = ?", [after, template]
            )
        }
    found = 0
    for entry in os.scandir(home / "outbox" / "new"):
        _, _, rest = entry.name.partition(".M")
        number = rest.split(".", 1)[0]
        found += number.isdigit() and int(number) in ids
    return found


# --- The digest scenario ---------------------------------------------------------------------


def measure_digests(home: Path) -> dict:
    """One tick at DIGEST_AT on the store in `home`, in this process: what it sent, how
    long building and queuing the digests took and when (time.monotonic), the delivery
    after it, the peak memory, and the sizes of the digests."""
    from mailflow.app import discussions
    from mailflow.schedule import scheduler
    from mailflow.send import outbox

    program = Program(program_config(home, DIGEST_AT))
    with program.db.conn:
        first = program.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    windows: dict[str, tuple[float, float]] = {}

    def timed(module, name: str, stage: str):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            began = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                windows[stage] = (began, time.monotonic())

        setattr(module, name, wrapper)
        return lambda: setattr(module, name, original)

    undo = [
        timed(discussions, "send_digests", "digests"),
        timed(outbox, "deliver", "deliver"),
    ]
    began = time.monotonic()
    sent = scheduler.tick(program, DIGEST_AT)
    ended = time.monotonic()
    for restore in undo:
        restore()
    sizes = [
        n
        for (n,) in program.db.execute(
            "SELECT length(raw) FROM outbox WHERE id > ? AND template = 'discussion-digest'",
            [first],
        )
    ]
    unsent = program.db.execute(
        "SELECT count(*) FROM outbox WHERE id > ? AND state != 'sent'", [first]
    ).fetchone()[0]
    again = scheduler.tick(program, DIGEST_AT)
    program.close()
    return {
        "sent": dict(sent),
        "tick": (began, ended),
        "windows": windows,
        "peak_mb": _peak_mb(),
        "sizes": sizes,
        "unsent": unsent,
        "again": sum(again.values()),
    }


def digest_scenario(home: Path, folder: Path, args: argparse.Namespace, expected: int) -> dict:
    """The digest tick in a fresh process, the probe on the same store meanwhile."""
    probe_run = Probes(home / "mailflow.db", folder)
    try:
        code, out, err = run_child(
            [sys.executable, "-m", "bench.discussion", "--run-digest", str(home)], args.timeout
        )
    finally:
        samples = probe_run.stop()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        return {"problems": [exit_problem(code, err)]}
    result = json.loads(lines[-1])
    result["problems"] = []
    result["lock"] = held(samples, *result["windows"]["digests"])
    digests = result["sent"].get("discussion-digest", 0)
    others = {kind: n for kind, n in result["sent"].items() if kind != "discussion-digest"}
    if digests != expected:
        result["problems"].append(f"{digests} digests, {expected} expected")
    if others:
        result["problems"].append(f"other mail in the tick: {others}")
    if result["unsent"]:
        result["problems"].append(f"{result['unsent']} not delivered by the tick")
    if result["again"]:
        result["problems"].append(f"a second tick at the same time sent {result['again']}")
    return result


# --- The table -----------------------------------------------------------------------------


@dataclass
class Line:
    what: str
    value: str
    target: str = ""
    met: str = ""
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        return [self.what, self.value, self.target, self.met, "; ".join(filter(None, self.notes))]


def _verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


def _lock_lines(what: str, lock: dict, before: dict | None = None) -> list[Line]:
    """The longest hold of the write lock (the fine probe), with its target, and the
    longest wait of a writer in SQLite's busy handler (the busy probe)."""
    longest, p99, count = lock["fine"]
    waited, waited_p99, waits = lock["busy"]
    notes = [f"p99 {p99 * 1000:.0f} ms of {count:,} probes"]
    if before:
        notes.append(f"before the post: {before['fine'][0] * 1000:.0f} ms")
    return [
        Line(
            f"{what}: write lock held, longest",
            f"{longest * 1000:,.0f} ms",
            f"≤ {LOCK_SECONDS:g} s",
            _verdict(longest <= LOCK_SECONDS),
            notes,
        ),
        Line(
            f"{what}: a writer's wait, longest",
            f"{waited * 1000:,.0f} ms",
            notes=[
                f"p99 {waited_p99 * 1000:.0f} ms of {waits:,}; in SQLite's busy handler, as"
                " the handling of incoming mail waits"
            ],
        ),
    ]


def _load_note(name: str, stats: dict) -> str:
    if not stats.get("count"):
        return f"{name}: none sent"
    return (
        f"{name}: p50 {stats['p50']:.1f}, p99 {stats['p99']:.1f}, max {stats['max']:.1f} ms"
        f" of {stats['count']:,}"
    )


def post_lines(result: dict) -> list[Line]:
    seconds = result.get("seconds", {})
    copies = result.get("copies", result["expected"])
    lines = [
        Line("post: SMTP 250", _seconds(seconds.get("accepted")), notes=["from its first command"]),
        Line(
            "post: stored and published",
            _seconds(seconds.get("stored")),
            notes=[f"state {result.get('state')}"],
        ),
        Line(
            f"post: {copies:,} copies queued",
            _seconds(seconds.get("queued")),
            notes=["fan_out, in the daemon's delivery loop"],
        ),
        Line(
            f"post: {copies:,} copies in the Maildir",
            _seconds(seconds.get("delivered")),
            notes=["every copy's file written, fsynced, its row marked sent"],
        ),
    ]
    if "lock_during" in result:
        lines += _lock_lines("post", result["lock_during"], result["lock_before"])
    during = result.get("load_during", {})
    if during.get("count"):
        notes = [
            f"p50 {during['p50']:.1f} ms, max {during['max']:.1f} ms",
            f"{during['count']:,} messages, {during['refused']} not answered 250",
            _load_note("while queuing", result["load_queuing"]),
            _load_note("while delivering", result["load_delivering"]),
            _load_note("before the post", result["load_before"]),
        ]
        lines.append(
            Line(
                "post: other mail's SMTP acceptance, p99",
                f"{during['p99']:.1f} ms",
                f"< {SMTP_P99_MS:g} ms",
                _verdict(during["p99"] < SMTP_P99_MS and not during["refused"]),
                notes,
            )
        )
    for problem in result["problems"]:
        lines[-1].notes.append(f"PROBLEM: {problem}")
    return lines


def digest_lines(result: dict, expected: int) -> list[Line]:
    if "windows" not in result:
        return [Line("digest", "", notes=[f"PROBLEM: {p}" for p in result["problems"]])]
    built = result["windows"]["digests"]
    deliver = result["windows"].get("deliver")
    tick = result["tick"][1] - result["tick"][0]
    digests = result["sent"].get("discussion-digest", 0)
    sizes = sorted(result["sizes"]) or [0]
    lines = [
        Line(
            f"digest: {digests:,} daily digests built and queued",
            _seconds(built[1] - built[0]),
            f"all {expected:,} in one tick",
            _verdict(digests == expected and tick <= TICK_SECONDS),
            [
                f"the whole tick {tick:.2f} s",
                f"delivering them {deliver[1] - deliver[0]:.2f} s of it" if deliver else "",
                f"the daemon ticks every {TICK_SECONDS:g} s",
            ],
        ),
        Line(
            "digest: peak memory",
            f"{result['peak_mb']:.0f} MB",
            notes=["the tick's fresh process, VmHWM"],
        ),
        *_lock_lines("digest", result["lock"]),
        Line(
            "digest: size",
            f"{statistics.median(sizes) / 1024:.0f} KB",
            notes=[
                f"median; max {sizes[-1] / 1024:.0f} KB; the latest posts in full, the rest counted"
            ],
        ),
    ]
    for problem in result["problems"]:
        lines[-1].notes.append(f"PROBLEM: {problem}")
    return lines


HEAD = ("measure", "value", "target", "met?", "notes")


# --- Main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.discussion", description=__doc__)
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument("--posts", type=int, help=f"posts of the day ({POSTS} at full size)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PEOPLE:,} people")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--clients", type=int, default=LOAD_CLIENTS)
    parser.add_argument("--rate", type=float, default=LOAD_RATE, help="ordinary mail a second")
    parser.add_argument("--baseline", type=float, default=BASELINE_SECONDS)
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT)
    parser.add_argument("--only", choices=("post", "digest"), help="one scenario")
    parser.add_argument("--keep", action="store_true", help="keep the stores and Maildirs")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe-stop", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe-how", choices=PROBES, help=argparse.SUPPRESS)
    parser.add_argument("--run-digest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.probe_stop, args.probe_how)))
        return 0
    if args.run_digest:
        print(json.dumps(measure_digests(args.run_digest)))
        return 0
    if args.quick:
        args.people = QUICK_PEOPLE
    if args.posts is None:
        args.posts = QUICK_POSTS if args.quick else POSTS
    sizes = Sizes(args.people, args.posts)
    work = Path(tempfile.mkdtemp(prefix="mailflow-discussion-"))
    try:
        print(f"building a round of {sizes.people:,} in {work}", file=sys.stderr, flush=True)
        base = work / "base"
        rows = build(base, sizes, args.seed)
        post_home, digest_home = work / "post" / "var", work / "digest" / "var"
        for home in (post_home, digest_home):
            home.mkdir(parents=True)
            shutil.copyfile(base / "mailflow.db", home / "mailflow.db")
        add_posts(digest_home, sizes.posts, args.seed)
        print("post scenario", file=sys.stderr, flush=True)
        lines = []
        if args.only in (None, "post"):
            posted = post_scenario(post_home, post_home.parent, args, sizes.every - 1)
            lines += post_lines(posted)
        if args.only in (None, "digest"):
            print("digest scenario", file=sys.stderr, flush=True)
            digested = digest_scenario(digest_home, digest_home.parent, args, sizes.daily)
            lines += digest_lines(digested, sizes.daily)
        print(
            f"A round's discussion: {sizes.people:,} people in {sizes.people // 2:,}"
            f" partnerships, {sizes.every:,} taking every post, {sizes.daily:,} a daily"
            f" digest, {sizes.people - sizes.every - sizes.daily:,} the default (weekly);"
            f" {sizes.posts} posts in the digests' day; seed {args.seed}; {os.cpu_count()} CPUs."
        )
        print(f"Store: {', '.join(f'{table} {n:,}' for table, n in rows.items())}.")
        print(
            f"Load during the post: {args.clients} SMTP clients, {args.rate:g} messages/s"
            f" together, {args.baseline:g} s of it before the post."
        )
        print()
        print(markdown_table(HEAD, [line.cells() for line in lines], right={1}))
        print()
        print("\n".join(f"* {note}" for note in FOOTNOTES))
        if args.people != PEOPLE:
            print(f"\n(the targets are for {PEOPLE:,} people; this run had {args.people:,})")
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


FOOTNOTES = (
    "post: seconds from the post's first SMTP command; the daemon (`mailflow serve"
    " --no-scheduler`, its handling process and delivery loop) on the store, Maildir delivery.",
    "write lock held: the longest a probe process waited for `BEGIN IMMEDIATE` meanwhile,"
    f" asking every {PROBE_GAP * 1000:g} ms and trying again every millisecond while it was"
    " busy: the lock was held that long without a break (by one transaction, or by several"
    " back to back). A writer's wait: the same from a second probe that waits in SQLite's"
    " busy handler, as mailflow's connections do, and so may miss a short break.",
    "SMTP acceptance: from the MAIL command to the 250 after DATA, for the ordinary mail"
    " sent from the post's first command until its last copy was in the Maildir.",
    "digest: one `scheduler.tick` at the digest hour in a fresh process: the daily digests"
    " built and queued (`send_digests`), then delivered to the Maildir in the same tick.",
)


if __name__ == "__main__":
    sys.exit(main())
