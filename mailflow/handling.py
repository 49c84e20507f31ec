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
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from multiprocessing.connection import Connection

from mailflow import logs, pipeline
from mailflow.config import Config
from mailflow.program import Program
from mailflow.spool import Spool, Unreadable
from mailflow.store import lock_file, transaction

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.05  # the longest a batch holds the write lock, about
SWEEP_SECONDS = 60.0  # how often stored-but-unhandled messages are looked for
RESTART_FIRST, RESTART_MOST = 1.0, 60.0  # seconds before a dead process is replaced


def take(program: Program, spool: Spool, names: list[str]) -> tuple[list[str], list[str]]:
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
                with transaction(program.db):
                    settled = _take_one(program, spool, name)
            except Exception:
                log.exception("spool file %s could not be stored; it stays in the spool", name)
                failed.append(name)
                continue
            if settled:
                done.append(settled)
    spool.remove([name for name in taken if name not in failed])
    for row_id, state, outcome in done:
        pipeline.log_outcome(row_id, state, outcome)
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
        except Unreadable as error:
            spool.set_aside(name, str(error))
            return None
        head = pipeline.parsed_once(spooled.raw)
        row_id = pipeline.receive(
            program,
            spooled.raw,
            spooled.envelope_from,
            spooled.recipients,
            spooled.via,
            received_at=spooled.received_at,
            spool=name,
            head=head,
        )
    state, outcome, now = pipeline.settle(program, row_id, head)
    return (row_id, state, outcome) if now else None


def sweep(program: Program) -> int:
    """Handle what was stored but not handled (a store failure, another receiver that
    stopped midway); how many."""
    rows = pipeline.pending(program)
    for row_id in rows:
        try:
            pipeline.process(program, row_id)
        except Exception:
            log.exception("message %d left for the next sweep", row_id)
    return len(rows)


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

    def _waited(self) -> bool:
        """While the lock is waited for: whether to stop waiting (stopped, or serve gone),
        saying once that this process waits."""
        if not self.said_waiting:
            log.info("waiting for the handling process before this one to finish")
            self.said_waiting = True
        self.serve_is_there = self.serve_is_there and _drained(self.bell)
        return self.stopping.is_set() or not self.serve_is_there

    def run(self) -> None:
        # An older handling process may still be finishing: it is waited for.
        with lock_file(self.config.db, "handling-lock", self._waited, every=0.2) as lock:
            if lock is None:
                return
            lock.truncate(0)
            program = Program(self.config)
            try:
                if recovered := sweep(program):
                    log.info("%d message(s) stored before the last stop were handled", recovered)
                # Its pid in the lock file says who holds it, and that it is ready.
                lock.write(f"{os.getpid()}\n".encode())
                lock.flush()
                self._loop(program, Spool(self.config.spool))
            finally:
                program.close()
        log.info("the handling process stopped")

    def _loop(self, program: Program, spool: Spool) -> None:
        last_sweep = time.monotonic()
        while True:
            self.serve_is_there = self.serve_is_there and _drained(self.bell)
            names = [name for name in spool.waiting() if name not in self.held_back]
            if names and not self.stopping.is_set():
                while names and not self.stopping.is_set():
                    taken, failed = take(program, spool, names)
                    self.held_back.update(failed)
                    names = names[len(taken) :]
                    _tell(self.done)
                continue  # look again: more may have come meanwhile
            if self.stopping.is_set() or not self.serve_is_there:
                return  # with serve gone, only once the spool is empty
            if time.monotonic() - last_sweep > SWEEP_SECONDS:
                self.held_back.clear()
                if sweep(program):
                    _tell(self.done)
                last_sweep = time.monotonic()
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
        """Until the process's end of `done` closes, each byte wakes the delivery loop."""
        descriptor = done.fileno()
        os.set_blocking(descriptor, False)
        while True:
            select.select([descriptor], [], [])
            there = _drained(descriptor)
            self.wake.set()
            if not there:
                done.close()
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
