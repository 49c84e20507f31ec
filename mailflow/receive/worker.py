"""One thread, one Program, for the receivers that store and handle a message themselves
and wait for the outcome (the IMAP poller, the one-click unsubscribe), and for `serve`'s
and the command line's work on the store outside the handling process.

The SMTP daemon does not use it: it only spools, and the handling process handles.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from mailflow import pipeline
from mailflow.config import Config
from mailflow.model import heartbeats
from mailflow.program import Program

log = logging.getLogger(__name__)


class Worker:
    """One thread, one Program, for the receivers that store and handle a message
    themselves (the IMAP poller, the one-click unsubscribe) and wait for the outcome."""

    def __init__(self, config: Config, delivered: threading.Event) -> None:
        self.config = config
        self.delivered = delivered
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailflow-worker")
        self.program: Program | None = None

    def _program(self) -> Program:
        if self.program is None:
            self.program = Program(self.config)
        return self.program

    def run(self, job, *args):
        """`job(program, *args)` on this thread."""
        return self.executor.submit(lambda: job(self._program(), *args)).result()

    def process(self, row_id: int) -> None:
        try:
            pipeline.process(self._program(), row_id)
        except Exception:  # the store itself failed: the message stays 'received' for later
            log.exception("message %d left for the next sweep", row_id)
        self.delivered.set()  # wake the delivery loop: the answer is in the outbox

    def beat(self, role: str) -> None:
        """Record that `role` (a pass of a receiver) finished now, for `mailflow status`."""
        self.run(lambda program: heartbeats.beat(program.db, role, program.now()))

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        if self.program is not None:
            self.program.close()
