"""Benchmarks (`make bench`): each prints a table; they measure and never fix."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(command: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run one measurement in a process of its own: (exit code, None on a timeout; stdout;
    stderr). A session of its own, so that a timeout also ends the processes it started."""
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        return None, out, err
    return child.returncode, out, err


def exit_problem(code: int | None, err: str) -> str:
    """How a child that failed reads in a table: its exit code and last line of stderr."""
    last = (err.strip().splitlines() or ["no output"])[-1]
    return f"exit {code}: {last}"


def markdown_table(head: tuple[str, ...], rows: list[list[str]], right: set[int]) -> str:
    """A Markdown table: the columns in `right` right-aligned, the last (notes) unpadded."""
    lines = [list(head), *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]

    def show(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells[:-1])
        ]
        return "| " + " | ".join([*padded, cells[-1]]) + " |"

    rule = ["-" * (w - 1) + ":" if i in right else "-" * w for i, w in enumerate(widths)] + ["---"]
    return "\n".join([show(lines[0]), "| " + " | ".join(rule) + " |", *map(show, lines[1:])])
