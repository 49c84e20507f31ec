"""Mail of a big send made in processes beside this one.

Making a message (its template rendered, its headers and body written, its tokens drawn)
is Python from end to end, about 0.2 ms of one core each, and a process makes one at a
time: a tick's 100,000 check-ins kept one core busy for 25 s while the other waited for
the disk. Here helper processes make them, a few hundred to a task, and hand back each
item's mail in order; the process that asked stores and delivers it as before
(`sending.send_in_batches`), so what is stored, in which transactions, and what a crash
leaves, are the same.

Each helper is spawned, not forked (`serve` runs threads, which a fork would copy
half-way), and opens the program as a helper (`Program(helping=True)`): its own
connection to the store, reading only, and its own templates. Items and their mail cross
between the processes pickled; what makes the mail is a module's function, named there.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mailflow.config import Config
    from mailflow.program import Program
    from mailflow.send.sending import Made

Item = TypeVar("Item")
Maker = Callable[["Program", Item, datetime], "Made | list[Made] | None"]

HELPED_FROM = 4000  # items; fewer are made here: starting the helpers costs about a second
TASK = 250  # items a task: a message costs 0.2 ms to make, a task's passage a few
AHEAD = 4  # tasks under way for each helper: enough to keep them busy, and no more in memory

_program: Program | None = None  # a helper's own


MOST_HELPERS = 4  # each holds the program (about 100 MB); beyond four, storing is the limit


def helpers() -> int:
    """How many helper processes: one a core, at least two and at most MOST_HELPERS. This
    process meanwhile only stores what they made, which takes a fraction of one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    return min(MOST_HELPERS, max(2, cores))


def made(
    program: Program, maker: Maker, items: Sequence[Item], now: datetime
) -> Iterator[Made | list[Made] | None]:
    """`maker(program, item, now)` of each item, in order, made by helper processes that
    open `program` for themselves, as helpers."""
    context = multiprocessing.get_context("spawn")
    opening, count = (type(program), program.config), helpers()
    with ProcessPoolExecutor(
        count, mp_context=context, initializer=_open, initargs=opening
    ) as pool:
        tasks = (items[start : start + TASK] for start in range(0, len(items), TASK))
        running: deque[Future] = deque()
        try:
            for task in tasks:
                running.append(pool.submit(_make, maker, task, now))
                if len(running) >= AHEAD * count:
                    yield from running.popleft().result()
            while running:
                yield from running.popleft().result()
        finally:
            for future in running:  # stopped midway (an error here): nothing more is made
                future.cancel()


def _open(kind: type[Program], config: Config) -> None:
    global _program
    _program = kind(config, helping=True)


def _make(maker: Maker, items: Sequence[Item], now: datetime) -> list:
    assert _program is not None  # opened as the helper started
    return [maker(_program, item, now) for item in items]
