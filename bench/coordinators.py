"""The coordinators' heaviest commands at scale: `python -m bench.coordinators [--people N]`.

STATS (figures, text and chart) and BROADCAST over N participants on a real SQLite store:
the schema from the real code path (opening a `Program` applies `migrations/`), the rows
from bulk SQL, the commands through the same `Ask` a coordinator's message
builds. BROADCAST's cost is the time one message's handling holds the store's write lock.
Measures, never fixes.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from mailflow import config, pipeline
from mailflow.conversation.coordinator import read
from mailflow.conversation.coordinator.ask import Ask
from mailflow.conversation.coordinator.broadcast import broadcast
from mailflow.conversation.turn import Turn
from mailflow.model import coordinators, stats
from mailflow.program import Program
from mailflow.read.parse import parse
from mailflow.store import transaction

COUNTRIES = ["KE", "NG", "SE", "DE", "JP", "BR", "CA", "AU", "IN", "ZA", "GH", "US"]
STATUSES = ["matched"] * 6 + ["waiting", "applied", "paused", "left", "completed"]
COORDINATOR = "coord@program.example.org"


def _populate(program: Program, people: int, rng: random.Random) -> None:
    rows = [
        (
            f"p{i}@lib{i % 97}.example.org",
            f"Person {i}",
            rng.choice(COUNTRIES),
            rng.choice(STATUSES),
        )
        for i in range(people)
    ]
    with transaction(program.db):
        program.db.conn.executemany(
            "INSERT INTO participants (email, name, country, role, library_type, career_stage,"
            " interests, languages, time_zone, contact_methods, contact_frequency, about_me,"
            " status, created_at, updated_at) VALUES (?, ?, ?, 'Librarian', 'public',"
            " 'early career', 'outreach', 'English', 'Nairobi', 'email', 'monthly', '', ?,"
            " '2026-01-01', '2026-01-01')",
            rows,
        )


def _ask(program: Program, arguments: str = "", text: str = "") -> Ask:
    raw = f"From: {COORDINATOR}\nTo: program@example.org\nSubject: x\n\nSTATS\n".encode()
    row_id = pipeline.receive(program, raw, COORDINATOR, ["program@example.org"], "bench")
    message = parse(raw, COORDINATOR, ("program@example.org",))
    turn = Turn(program=program, row_id=row_id, message=message, now=program.now())
    role = coordinators.find(program.db, COORDINATOR)
    assert role is not None
    return Ask(turn, role, arguments, text, row_id)


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--people", type=int, default=100_000)
    args = options.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="mailflow-bench-"))
    program = Program(
        config.load(
            {
                "MAILFLOW_HOME": str(folder / "var"),
                "MAILFLOW_NOW": "2026-03-02T09:00:00Z",
                "MAILFLOW_ADDRESS": "program@example.org",
                "MAILFLOW_COORDINATORS": COORDINATOR,
            },
            cwd=folder,
        )
    )
    _populate(program, args.people, random.Random(5))
    rows: list[tuple[str, float, str]] = []
    figures = stats.figures(program.db, program.now())
    rows.append(("STATS figures", _timed(lambda: stats.figures(program.db, program.now())), ""))
    rows.append(
        (
            "STATS text + chart",
            _timed(lambda: (read.stats_text(program, figures), read.stats_chart(program, figures))),
            "",
        )
    )
    ask = _ask(program, "News", "Hello all.\n\nThe coordinators")
    with transaction(program.db):
        took = _timed(lambda: broadcast(ask))
    sent = program.db.execute("SELECT count(*) FROM outbox WHERE template = 'broadcast'")
    count = sent.fetchone()[0]
    rows.append(
        ("BROADCAST (queueing)", took, f"{count:,} mails, {took / count * 1000:.2f} ms each")
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ncoordinators' commands over {args.people:,} participants (peak {peak:.0f} MB)")
    print(f"| {'command':<22} | {'time':>9} | note")
    print(f"|{'-' * 24}|{'-' * 11}|------")
    for name, seconds, note in rows:
        print(f"| {name:<22} | {seconds:>7.2f} s | {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
