"""The handling process: it moves the spool into the store and handles each message.

`serve` runs it beside the SMTP daemon, so taking mail and handling it each have a core
(Python runs one thread at a time within a process). It takes the oldest spool files,
stores and handles each, and commits a batch of them at once: one fsync for many
messages (group commit), with each message in a savepoint of its own, so one that fails
is set aside alone. Batches are cut at about 50 ms, so the write lock is never held long
from the delivery loop or the scheduler. Only after the commit are the files removed; a
file whose removal a crash prevented is recognised by its name and not stored again.

One handling process runs at a time (a flock beside the database, holding its pid). It
is told of new files by a byte on a pipe from `serve` and tells `serve` to deliver by a
byte on another; when `serve` goes away (even by SIGKILL) the pipe's end tells it, and it
handles what is in the spool and exits. If it dies, `serve` starts another.

Each message has a time budget (`mailflow.budget`): one over it is rolled back and
quarantined, and the batch goes on. What the budget's alarm can't interrupt, `serve`'s
watchdog ends: `spool/current` names the message being handled and, by its time, since
when; past twice the budget and a second, the process is killed. Its successor reads
there which message it died on, so a poison is never handled first again: a spool file
is stored aside with its death counted, and such messages are tried alone once the spool
is empty; after a second death, quarantined, never tried again (`pipeline.process`).
Only the message being handled is blamed: the rest of a killed batch was not committed,
and is taken again as if for the first time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from mailflow import logs, pipeline
from mailflow.config import Config
from mailflow.program import Program
from mailflow.receive.spool import BadSpoolFile, Spool, Spooled
from mailflow.store import lock_file, transaction

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.05  # the longest a batch holds the write lock, about
SWEEP_SECONDS = 60.0  # how often stored-but-unhandled messages are looked for
RESTART_FIRST, RESTART_MOST = 1.0, 60.0  # seconds before a dead process is replaced
WATCH_SECONDS = 0.25  # how often the watchdog looks at what the handling process is on


def watchdog_limit(config: Config) -> float:
    """Seconds on one message after which the handling process is killed: its own alarm
    fires at the budget and undoing the message takes a moment, so past twice the budget
    and a second it is stuck where no signal reaches."""
    return 2 * config.handling_budget + 1.0


@dataclass(frozen=True)
class Doing:
    """What `spool/current` says: process `pid` has been on `kind` ("spool", a file
    being stored and handled; "store", one set aside after a death; "row", a stored
    message) `key` for `age` seconds; `timed_out` once the watchdog killed it for that."""

    pid: int
    kind: str
    key: str
    age: float
    timed_out: bool


class Current:
    """`spool/current`: the message the handling process is on, and since when (the
    file's time). Written in place before each message and blanked after it: two small
    writes, never fsynced, as it has to outlive the process, not the machine (after a
    power cut the message is tried as if for the first time)."""

    WIDTH = 200

    def __init__(self, spool_folder: Path) -> None:
        self.path = spool_folder / "current"
        self._descriptor: int | None = None

    def _write(self, line: str) -> None:
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._descriptor, line.encode()[: self.WIDTH].ljust(self.WIDTH), 0)

    @contextlib.contextmanager
    def on(self, kind: str, key: object) -> Iterator[None]:
        self._write(f"{os.getpid()} {kind} {key}")
        try:
            yield
        finally:
            self._write("")

    def clear(self) -> None:
        self._write("")

    def read(self) -> Doing | None:
        try:
            with open(self.path, "rb") as handle:
                words = handle.read().decode(errors="replace").split()
                age = time.time() - os.fstat(handle.fileno()).st_mtime
        except FileNotFoundError:
            return None
        if len(words) < 3 or not words[0].isdigit():
            return None
        return Doing(int(words[0]), words[1], words[2], age, "timed-out" in words[3:])

    def stop_if_stuck(self, limit: float, pid: int | None) -> bool:
        """Kill process `pid` if it has been on one message longer than `limit` seconds,
        noting first, for its successor, that it timed out; whether it was."""
        doing = self.read()
        if doing is None or doing.pid != pid or doing.age <= limit or doing.timed_out:
            return False
        log.error(
            "the handling process %d has been on %s %s for %.0f s, past its budget: killed",
            doing.pid,
            "message" if doing.kind == "row" else "spool file",
            doing.key,
            doing.age,
        )
        self._write(f"{doing.pid} {doing.kind} {doing.key} timed-out")
        with contextlib.suppress(ProcessLookupError):
            os.kill(doing.pid, signal.SIGKILL)
        return True

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def take(
    program: Program, spool: Spool, names: list[str], current: Current
) -> tuple[list[str], list[str]]:
    """Store and handle spool files, oldest first, committing once: (the names taken, a
    prefix of `names` as the batch ends after BATCH_SECONDS; those of them that failed).
    When the batch can't be committed, each file is tried in a transaction of its own,
    and one that still fails stays in the spool."""
    began = time.monotonic()
    taken: list[str] = []
    failed: list[str] = []
    done: list[tuple[int, str, str]] = []
    try:
        with transaction(program.db):
            for name in names:
                taken.append(name)
                with current.on("spool", name):
                    settled = _take_one(program, spool, name)
                if settled:
                    done.append(settled)
                if time.monotonic() - began > BATCH_SECONDS:
                    break
    except Exception:
        log.exception("a batch of %d spool files could not be committed; one at a time", len(taken))
        done = []
        for name in taken:
            try:
                with transaction(program.db), current.on("spool", name):
                    settled = _take_one(program, spool, name)
            except Exception:
                log.exception("spool file %s could not be stored; it stays in the spool", name)
                failed.append(name)
                continue
            if settled:
                done.append(settled)
    spool.remove([name for name in taken if name not in failed])
    for row_id, state, outcome in done:
        pipeline.log_outcome(program, row_id, state, outcome)
    return taken, failed


def _take_one(program: Program, spool: Spool, name: str) -> tuple[int, str, str] | None:
    """(row, state, outcome) of the message handled now; None for a file stored and
    handled before (a crash came between the commit and the file's removal), or one set
    aside unreadable."""
    known = program.db.execute("SELECT id FROM messages WHERE spool = ?", [name]).fetchone()
    head = None
    if known:
        row_id = known[0]
    else:
        try:
            spooled = spool.read(name)
        except BadSpoolFile as error:
            spool.set_aside(name, str(error))
            return None
        head = pipeline.parsed_once(spooled.raw)
        row_id = _store(program, spooled, name, head)
    state, outcome, now = pipeline.settle(program, row_id, head)
    return (row_id, state, outcome) if now else None


def _store(program: Program, spooled: Spooled, name: str, head=None) -> int:
    """A spool file's message as a row of the store, its file's name kept with it."""
    return pipeline.receive(
        program,
        spooled.raw,
        spooled.envelope_from,
        spooled.recipients,
        spooled.via,
        received_at=spooled.received_at,
        spool=name,
        head=head,
    )


def sweep(program: Program, current: Current, *, tried: bool = False) -> int:
    """Handle what was stored but not handled (a store failure, another receiver that
    stopped midway), or with `tried`, what was being handled when a process died; how
    many. Each in a transaction of its own, so that a death blames that message only."""
    rows = pipeline.pending(program, tried=tried)
    for row_id in rows:
        try:
            with current.on("row", row_id):
                pipeline.process(program, row_id)
        except Exception:
            log.exception("message %d left for the next sweep", row_id)
    return len(rows)


def blame(program: Program, spool: Spool, current: Current, doing: Doing) -> None:
    """The handling process before this one died while on `doing`: that message must not
    be handled first again. A message's row counts the attempt already (`pipeline.process`
    wrote it before it began); a spool file is stored now, aside, with one death counted,
    and its file removed; one whose storing killed a process too goes to `spool/bad/`."""
    how = "timed out" if doing.timed_out else "crashed"
    if doing.kind == "row" and doing.key.isdigit():
        with transaction(program.db):
            still = program.db.execute(
                "UPDATE messages SET timeouts = timeouts + ? WHERE id = ? AND state = 'received'",
                [int(doing.timed_out), int(doing.key)],
            ).rowcount
        if still:
            log.error("message %s %s while being handled: it is tried again last", doing.key, how)
        return
    name = doing.key
    if "/" in name or not (spool.new / name).is_file():
        return
    if doing.kind == "store":
        spool.set_aside(name, f"it {how} while being handled, then again while being stored")
        return
    if program.db.execute("SELECT 1 FROM messages WHERE spool = ?", [name]).fetchone():
        return  # stored and committed: the death came after it
    try:
        spooled = spool.read(name)
    except BadSpoolFile as error:
        spool.set_aside(name, str(error))
        return
    with current.on("store", name), transaction(program.db):
        row_id = _store(program, spooled, name)
        program.db.execute(
            "UPDATE messages SET attempts = 1, timeouts = ? WHERE id = ?",
            [int(doing.timed_out), row_id],
        )
    spool.remove([name])
    log.error(
        "spool file %s %s while being handled: stored as message %d, tried again last",
        name,
        how,
        row_id,
    )


def lock_holder(config: Config, starting: int | None = None) -> int | None:
    """The pid of the handling process holding the lock, which it writes once ready;
    `starting` while it holds the lock but is not ready yet; None if nobody holds it
    (a dead holder's pid stays in the file)."""
    path = config.db.with_name(f"{config.db.name}.handling-lock")
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().decode(errors="replace").strip()
                return int(text) if text.isdigit() else starting
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def wait_for_orphan(config: Config) -> None:
    """Before `serve` opens the store: a handling process left behind by a killed `serve`
    may be stuck on a message with the store's write lock held, and nothing could open
    the store until it let go. While it is on a message, wait; past the limit, kill it."""
    current, limit, said = Current(config.spool), watchdog_limit(config), False
    try:
        while (doing := current.read()) and doing.pid == lock_holder(config):
            if not said:
                log.info("the handling process %d of a stopped serve is busy; waiting", doing.pid)
                said = True
            if current.stop_if_stuck(limit, doing.pid):
                deadline = time.monotonic() + 10
                while lock_holder(config) == doing.pid and time.monotonic() < deadline:
                    time.sleep(0.05)
                return
            time.sleep(0.2)
    finally:
        current.close()


def _drained(descriptor: int) -> bool:
    """Read every byte waiting on a pipe; False once its writer is gone."""
    while True:
        try:
            if not os.read(descriptor, 65536):
                return False
        except BlockingIOError:
            return True


def _tell(descriptor: int) -> None:
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        os.write(descriptor, b".")  # a full pipe already says "deliver"


class _Loop:
    """The handling process's loop, until `serve` stops it or goes away."""

    def __init__(self, config: Config, bell: int, done: int) -> None:
        self.config = config
        self.bell, self.done = bell, done
        self.stopping = threading.Event()
        self.serve_is_there = True
        self.held_back: set[str] = set()  # files that failed, left until the next sweep
        self.said_waiting = False
        self.current = Current(config.spool)

    def _waited(self) -> bool:
        """While the lock is waited for: whether to stop waiting (stopped, or serve gone),
        saying once that this process waits. The one waited for may be an orphan of a
        killed `serve`, with nobody else to watch it: stuck, it is killed here."""
        if not self.said_waiting:
            log.info("waiting for the handling process before this one to finish")
            self.said_waiting = True
        self.current.stop_if_stuck(watchdog_limit(self.config), lock_holder(self.config))
        self.serve_is_there = self.serve_is_there and _drained(self.bell)
        return self.stopping.is_set() or not self.serve_is_there

    def run(self) -> None:
        # An older handling process may still be finishing: it is waited for.
        with lock_file(self.config.db, "handling-lock", self._waited, every=0.2) as lock:
            if lock is None:
                return
            lock.truncate(0)
            lock.seek(0)  # the file may be open without O_APPEND: write from the start
            program = Program(self.config)
            spool = Spool(self.config.spool)
            try:
                if doing := self.current.read():
                    try:
                        blame(program, spool, self.current, doing)
                    except Exception:
                        log.exception("what the last handling process died on is not known")
                    self.current.clear()
                if recovered := sweep(program, self.current):
                    log.info("%d message(s) stored before the last stop were handled", recovered)
                # Its pid in the lock file says who holds it, and that it is ready.
                lock.write(f"{os.getpid()}\n".encode())
                lock.flush()
                self._loop(program, spool)
            finally:
                self.current.close()
                program.close()
        log.info("the handling process stopped")

    def _loop(self, program: Program, spool: Spool) -> None:
        last_sweep = time.monotonic()
        retry_due = True  # what a process died on: once the spool is empty, and every sweep
        while True:
            self.serve_is_there = self.serve_is_there and _drained(self.bell)
            names = [name for name in spool.waiting() if name not in self.held_back]
            if names and not self.stopping.is_set():
                while names and not self.stopping.is_set():
                    taken, failed = take(program, spool, names, self.current)
                    self.held_back.update(failed)
                    names = names[len(taken) :]
                    _tell(self.done)
                continue  # look again: more may have come meanwhile
            if self.stopping.is_set() or not self.serve_is_there:
                return  # with serve gone, only once the spool is empty
            if retry_due:
                retry_due = False
                if sweep(program, self.current, tried=True):
                    _tell(self.done)
                continue
            if time.monotonic() - last_sweep > SWEEP_SECONDS:
                self.held_back.clear()
                if sweep(program, self.current):
                    _tell(self.done)
                retry_due = True
                last_sweep = time.monotonic()
                continue
            # A second at most, so a signal is seen soon (select resumes after one).
            select.select([self.bell], [], [], 1.0)


def main(config: Config, bell: Connection, done: Connection, parent_ends=()) -> None:
    """The handling process: `bell` brings serve's news of spool files, `done` takes
    "deliver" back; `parent_ends` are serve's ends of both, closed here at once (a
    forked process has them too, and the bell's end must close when serve's does)."""
    for end in parent_ends:
        end.close()
    if not logging.getLogger().handlers:
        logs.configure()  # started by spawn: nothing inherited
    loop = _Loop(config, bell.fileno(), done.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.stopping.set())
    os.set_blocking(loop.bell, False)
    os.set_blocking(loop.done, False)
    loop.run()


class Handling:
    """The handling process as `serve` sees it. Made before `serve` starts any thread, it
    forks (the process shares what is already imported and starts at once); one that dies
    is replaced, with backoff, by a freshly spawned one (forking a process with threads
    is unsafe)."""

    def __init__(self, config: Config, wake: threading.Event) -> None:
        self.config = config
        self.wake = wake
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process, self._bell, self._done = self._start("fork")
        self._watcher: threading.Thread | None = None

    def _start(self, method: str):
        context = multiprocessing.get_context(method)
        bell_read, bell_write = context.Pipe(duplex=False)
        done_read, done_write = context.Pipe(duplex=False)
        process = context.Process(
            target=main,
            args=(self.config, bell_read, done_write, (bell_write, done_read)),
            name="mailflow-handling",
        )
        process.start()
        bell_read.close()
        done_write.close()
        os.set_blocking(bell_write.fileno(), False)
        return process, bell_write, done_read

    def watch(self) -> None:
        """Relay its "deliver" to the delivery loop and replace it if it dies."""
        self._watcher = threading.Thread(target=self._watch, name="mailflow-handling-watch")
        self._watcher.start()

    def _watch(self) -> None:
        delay = RESTART_FIRST
        while True:
            process, started = self._process, time.monotonic()
            self._relay(self._done)
            process.join()
            if self._stop.is_set():
                return
            if time.monotonic() - started > 600:
                delay = RESTART_FIRST  # it ran well for a while: not a crash loop
            log.error(
                "the handling process stopped (exit %s); another starts in %.0f s",
                process.exitcode,
                delay,
            )
            if self._stop.wait(delay):
                return
            with self._lock:
                self._bell.close()
                self._process, self._bell, self._done = self._start("spawn")
            delay = min(delay * 2, RESTART_MOST)

    def _relay(self, done: Connection) -> None:
        """Until the process's end of `done` closes, each byte wakes the delivery loop;
        meanwhile, the watchdog: a process stuck on one message is killed."""
        descriptor = done.fileno()
        os.set_blocking(descriptor, False)
        current, limit = Current(self.config.spool), watchdog_limit(self.config)
        while True:
            if not select.select([descriptor], [], [], WATCH_SECONDS)[0]:
                current.stop_if_stuck(limit, self._process.pid)
                continue
            there = _drained(descriptor)
            self.wake.set()
            if not there:
                done.close()
                current.close()
                return

    def ring(self) -> None:
        """Tell it a file is in the spool. Never blocks: a full pipe already says so."""
        with self._lock, contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(self._bell.fileno(), b".")

    def stop(self, timeout: float = 60.0) -> None:
        """Close its bell: it handles what is in the spool and exits."""
        self._stop.set()
        with self._lock:
            self._bell.close()
            process = self._process
        process.join(timeout)
        if process.is_alive():
            log.warning("the handling process is still busy after %.0f s; stopping it", timeout)
            process.terminate()
            process.join(10)
        if self._watcher is not None:
            self._watcher.join(10)
