"""The time budget of handling one message (MAILFLOW_HANDLING_BUDGET).

Handling a message should take time linear in its size; one that still runs over its
budget (a pattern nobody foresaw, a coordinator's command over too much data) must not
hold the store's write lock and every later message with it. `deadline` is the alarm
inside the process: a SIGALRM interval timer whose handler raises `OverBudget` into the
Python code at work, so that the message's savepoint is rolled back and it is
quarantined with the reason. Python's regular expressions look at signals as they run,
but other C code (a SQLite statement, an extension) does not, and a signal's handler can
only run in the main thread: for those, the handling process has a watchdog in `serve`
(`mailflow.receive.handling`) that kills it.

It must never be armed around anything but the handling of one message: the exception
can come from any line within.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OverBudget(BaseException):
    """The message's handling ran longer than its budget. A BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way takes it for a failure
    of its own and carries on."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"handling took longer than {seconds:g} s")
        self.seconds = seconds


_armed: float | None = None  # the budget of the deadline running now


def _expired(signum, frame) -> None:
    global _armed
    seconds, _armed = _armed, None
    if seconds is not None:  # else an alarm that was on its way as it was disarmed
        raise OverBudget(seconds)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise OverBudget in the code within if it runs longer than `seconds` of wall time.
    Only in the main thread (where signals are handled); elsewhere, and within another
    deadline, it does nothing."""
    global _armed
    if _armed is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGALRM) is not _expired:
        signal.signal(signal.SIGALRM, _expired)
    _armed = seconds
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _armed = None
        signal.setitimer(signal.ITIMER_REAL, 0)
