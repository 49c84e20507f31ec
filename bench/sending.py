"""Outgoing mail against the disk: `python -m bench.sending [--quick] [--people N]`.

The busiest ticks of bench.tick (everyone's check-in at once, everyone's topic at once)
over N people, rendered, queued and delivered to the Maildir by `scheduler.tick`, and a
round of N applicants from a dozen countries carried out (`matchmaker.carry_out`, the
introductions and notices) and delivered, each beside a bare loop that writes the same
bytes as the same files with the same fsync discipline (written in tmp/ by four writers,
each fsynced, renamed into new/, new/ fsynced once a batch), timed right after in the
same process with the same SMTP load beside it: its messages/s is the ceiling this disk
and machine allow, and the ratio is what mailflow reaches of it. While each send runs,
`mailflow serve` on a store of its own takes mail from SMTP clients: the p50 and p99 of
its acceptance then, and the longest any of the send's transactions held the write lock.
Measures, never fixes.

Measured on main, 100,000 people, 2 shared CPUs, ext4, one run, the bare loop under the
same SMTP load (the load's daemon and clients used about 0.7 CPUs beside it). Here the
bare loop itself spends about 0.7 ms of kernel time a file (fsync on this virtual disk):
writing takes one of the two cores and more, so the helpers that make the mail
(mailflow.send.makers) and the writing compete for the same CPUs.

| send          |   mails | seconds | mails/s | ceiling mails/s | ratio | longest lock |
| ------------- | ------: | ------: | ------: | --------------: | ----: | -----------: |
| check-ins     | 100,000 |   99.66 |   1,003 |           3,032 |  0.33 |       478 ms |
| topic day     | 100,000 |  115.27 |     868 |           2,782 |  0.31 |       515 ms |
| introductions | 100,000 |  102.66 |     974 |           2,706 |  0.36 |       803 ms |

| during        | accepted | p50 acceptance | p99 acceptance | longest lock |
| ------------- | -------: | -------------: | -------------: | -----------: |
| check-ins     |   18,897 |         8.1 ms |        39.3 ms |       478 ms |
| topic day     |   20,653 |         9.3 ms |        44.6 ms |       515 ms |
| introductions |   18,842 |         8.5 ms |        37.6 ms |       803 ms |
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from argparse import Namespace
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import markdown_table, smtp_load
from bench import tick as tick_bench
from bench.population import shaped_round, to_csv
from mailflow.config import parse_time
from mailflow.program import Program
from mailflow.send import outbox
from mailflow.store import iso

PEOPLE = 100_000
QUICK_PEOPLE = 5_000
SCENARIOS = ("worst", "topic-day")  # everyone's check-in; everyone's topic
SHOWN = {"worst": "check-ins", "topic-day": "topic day", "introductions": "introductions"}
TICKED = "rendered, queued and delivered by `scheduler.tick`"
NOTES = {
    "worst": TICKED,
    "topic-day": TICKED,
    "introductions": "a round carried out (`matchmaker.carry_out`) and delivered",
}
WRITERS = 4  # as mailflow.send.outbox
BATCH = 500  # as mailflow.send.outbox


def ceiling(raws: list[bytes], folder: Path) -> float:
    """Messages/s of a bare loop writing `raws` as Maildir files, as the outbox does."""
    for sub in ("tmp", "new"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    def write(number: int) -> None:
        name = f"{number}.bare"
        temporary = folder / "tmp" / name
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "wb") as handle:
            handle.write(raws[number])
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, folder / "new" / name)

    began = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as writers:
        for start in range(0, len(raws), BATCH):
            list(writers.map(write, range(start, min(start + BATCH, len(raws)))))
            descriptor = os.open(folder / "new", os.O_RDONLY)
            os.fsync(descriptor)
            os.close(descriptor)
    return len(raws) / (time.perf_counter() - began)


class Load:
    """SMTP clients sending to `mailflow serve` until stopped; acceptance latencies."""

    def __init__(self, folder: Path, clients: int = 4) -> None:
        self.folder, self.clients = folder, clients
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def __enter__(self) -> Load:
        home, self.port = self.folder / "var", smtp_load.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
        env.update(
            MAILFLOW_HOME=str(home),
            MAILFLOW_ADDRESS=smtp_load.PROGRAM,
            MAILFLOW_LISTEN=f"127.0.0.1:{self.port}",
            MAILFLOW_NOW="2026-03-02T09:00:00Z",
            MAILFLOW_SENDER_RATE="1000000",
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "daemon.log").open("w")
        self.daemon = subprocess.Popen(
            [str(smtp_load.MAILFLOW), "serve", "--no-scheduler"],
            env=env,
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        smtp_load.listening(self.port, self.daemon)
        return self

    def start(self) -> None:
        mail = smtp_load.messages(200_000)

        def client(share: list[tuple[str, bytes]]) -> None:
            import smtplib

            with smtplib.SMTP("127.0.0.1", self.port, timeout=120) as smtp:
                for sender, raw in share:
                    if self.stopping.is_set():
                        return
                    began = time.perf_counter()
                    smtp.sendmail(sender, [smtp_load.PROGRAM], raw)
                    self.latencies.append(time.perf_counter() - began)
                    time.sleep(0.01)  # steady incoming mail, not a flood

        self.threads = [
            threading.Thread(target=client, args=(mail[i :: self.clients],), daemon=True)
            for i in range(self.clients)
        ]
        for thread in self.threads:
            thread.start()

    def so_far(self) -> list[float]:
        return sorted(self.latencies)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def __exit__(self, *exc) -> None:
        self.daemon.terminate()
        self.daemon.wait()


@contextlib.contextmanager
def _loaded(folder: Path, load: bool) -> Iterator[Load | None]:
    """SMTP clients sending to `mailflow serve`, settled, for all that is measured inside:
    the send and its bare loop alike, so that the ratio compares the two under the same
    load. None without load."""
    if not load:
        yield None
        return
    with Load(folder) as incoming:
        incoming.start()
        time.sleep(1.0)  # the clients settled before the send starts
        try:
            yield incoming
        finally:
            incoming.stop()


def _timed(send, module, incoming: Load | None) -> tuple[float, list[float], float]:
    """Seconds `send()` took, the SMTP load's acceptance latencies meanwhile (sorted), and
    the longest transaction of the batches `module.send_in_batches` stored."""
    held: list[float] = []
    original = module.send_in_batches

    def batches(*args, **kwargs):
        done = original(*args, **kwargs)
        held.append(done.longest)
        return done

    module.send_in_batches = batches
    try:
        began = time.perf_counter()
        send()
        seconds = time.perf_counter() - began
    finally:
        module.send_in_batches = original
    return seconds, incoming.so_far() if incoming else [], max(held or [0.0])


def _found(program: Program, now, mails: int, timed: tuple, bare: Path) -> dict:
    """The figures of a send, its ceiling measured on the bytes it wrote."""
    seconds, latencies, held = timed
    sent_now = program.db.execute("SELECT raw FROM outbox WHERE sent_at = ?", [iso(now)])
    raws = [raw for (raw,) in sent_now.fetchall()]
    program.close()
    ceiling_rate = ceiling(raws, bare)
    shutil.rmtree(bare, ignore_errors=True)
    return {
        "mails": mails,
        "seconds": seconds,
        "ceiling": ceiling_rate,
        "held": held,
        "latencies": latencies,
    }


def measure(scenario: str, template: Path, work: Path, load: bool) -> dict:
    from mailflow.schedule import scheduler

    home = work / f"run-{scenario}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copyfile(template / "mailflow.db", home / "mailflow.db")
    now = tick_bench.BY_NAME[scenario].now
    program = Program(tick_bench.program_config(home, now))
    sent = Counter()
    with _loaded(work / f"load-{scenario}", load) as incoming:
        timed = _timed(lambda: sent.update(scheduler.tick(program, now)), scheduler, incoming)
        found = _found(program, now, sum(sent.values()), timed, work / f"bare-{scenario}")
    shutil.rmtree(home, ignore_errors=True)
    return found


INTRODUCTIONS = "introductions"
INTRODUCED_AT = parse_time("2026-03-02T09:00:00Z")


def measure_introductions(people: int, work: Path, load: bool) -> dict:
    """A round of `people` applicants from a dozen countries (bench.population), imported
    and planned untimed; then `mailflow match`'s own steps after the preview, timed: the
    round carried out (pairs stored and introduced in batches, those left out told) and
    its mail delivered."""
    from mailflow.app import bulk, roster
    from mailflow.matching import matchmaker

    home = work / f"run-{INTRODUCTIONS}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    program = Program(tick_bench.program_config(home, INTRODUCED_AT))
    applicants, _ = shaped_round(people, tick_bench.SEED, "dozen")
    report = roster.import_csv(program, to_csv(applicants), INTRODUCED_AT)
    if report.problems:
        raise SystemExit(f"the round's import failed: {report.problems[:3]}")
    plan = matchmaker.plan(program, INTRODUCED_AT)

    def carried_out() -> None:
        matchmaker.carry_out(program, plan, INTRODUCED_AT, made_by="operator")
        bulk.queue_pending(program)
        outbox.deliver(program.db, program.config, INTRODUCED_AT)

    with _loaded(work / f"load-{INTRODUCTIONS}", load) as incoming:
        timed = _timed(carried_out, matchmaker, incoming)
        mails = program.db.execute(
            "SELECT count(*) FROM outbox WHERE sent_at = ?", [iso(INTRODUCED_AT)]
        ).fetchone()[0]
        found = _found(program, INTRODUCED_AT, mails, timed, work / f"bare-{INTRODUCTIONS}")
    shutil.rmtree(home, ignore_errors=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sending", description=__doc__)
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PEOPLE:,} people")
    parser.add_argument("--dir", type=Path, help="build the stores here (kept)")
    parser.add_argument("--no-load", action="store_true", help="no SMTP clients meanwhile")
    parser.add_argument(
        "--sends",
        default=",".join([*SCENARIOS, INTRODUCTIONS]),
        help="which, comma-separated: worst (check-ins), topic-day, introductions",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.people = QUICK_PEOPLE
    sends = args.sends.split(",")
    if unknown := [name for name in sends if name not in NOTES]:
        parser.error(f"--sends: no send {', '.join(unknown)}; there are {', '.join(NOTES)}")
    work = args.dir or Path(tempfile.mkdtemp(prefix="mailflow-sending-"))
    work.mkdir(parents=True, exist_ok=True)
    options = Namespace(people=args.people, seed=tick_bench.SEED, history=tick_bench.HISTORY)
    chosen = [tick_bench.BY_NAME[name] for name in SCENARIOS if name in sends]
    templates = tick_bench._templates(chosen, work, options) if chosen else {}
    busy, started = tick_bench._busy_cpu_seconds(), time.perf_counter()
    ours = os.times()
    rows, loads = [], []
    for scenario in sends:
        if scenario == INTRODUCTIONS:
            found = measure_introductions(args.people, work, load=not args.no_load)
        else:
            found = measure(scenario, templates[scenario], work, load=not args.no_load)
        rate = found["mails"] / found["seconds"]
        rows.append(
            [
                SHOWN[scenario],
                f"{found['mails']:,}",
                f"{found['seconds']:.2f}",
                f"{rate:,.0f}",
                f"{found['ceiling']:,.0f}",
                f"{rate / found['ceiling']:.2f}",
                f"{found['held'] * 1000:.0f} ms",
                NOTES[scenario],
            ]
        )
        if found["latencies"]:
            ordered = found["latencies"]
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            loads.append(
                [
                    SHOWN[scenario],
                    f"{len(ordered):,}",
                    f"{statistics.median(ordered) * 1000:.1f} ms",
                    f"{p99 * 1000:.1f} ms",
                    f"{found['held'] * 1000:.0f} ms",
                    "4 SMTP clients to `mailflow serve` while the send ran",
                ]
            )
    wall = time.perf_counter() - started
    mine = os.times()
    own = (mine.user - ours.user) + (mine.system - ours.system)
    others = max(0.0, (tick_bench._busy_cpu_seconds() - busy - own) / wall)
    print(
        f"Sending {args.people:,} mails at once, {os.cpu_count()} CPUs, Maildir on"
        f" {tick_bench._filesystem(work)}; other processes used about {others:.1f} CPUs"
        " meanwhile (the SMTP daemon and its clients among them when measured)."
    )
    print()
    head = ("send", "mails", "seconds", "mails/s", "ceiling mails/s", "ratio", "longest lock")
    print(markdown_table((*head, "note"), rows, right={1, 2, 3, 4, 5, 6}))
    if loads:
        print()
        head = ("during", "accepted", "p50 acceptance", "p99 acceptance", "longest lock")
        print(markdown_table((*head, "note"), loads, right={1, 2, 3, 4}))
    print()
    print(
        "* ceiling: the same bytes written as Maildir files by a bare loop right after, with"
        " the outbox's fsync discipline and the same SMTP load beside it; ratio: mailflow's"
        " mails/s over it (target 0.5)."
        " longest lock: the longest transaction of the send's batches."
    )
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
