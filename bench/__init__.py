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
