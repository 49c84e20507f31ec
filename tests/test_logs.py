"""The journal: what an operator reads, under systemd and without it.

Under systemd (JOURNAL_STREAM names standard error's device and inode) every line starts
with its syslog priority, `<4>` for a warning, so that `journalctl -p warning` finds it,
and carries no time of ours (journald stamps its own). Anywhere else, lines keep their
time and level name. Each message handled has one line naming its spool file (the
"queued as" of the daemon's 250, which Postfix logs) and its Message-ID. Real processes:
the CLI with its standard error in a file, and the daemon over SMTP.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

from mailflow import logs
from tests.conftest import (
    MAILFLOW,
    PROGRAM,
    command,
    compose,
    environment,
    free_port,
    journal,
    start_daemon,
    until,
    wire,
)

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def ingest_logging(home, journal_stream: str | None) -> tuple[list[str], str]:
    """`mailflow ingest` of a HELP whose answer meets a relay that is not there, its
    standard error in a file; (its lines, the HELP's Message-ID). `journal_stream`: the
    JOURNAL_STREAM to give it, "same" for the file's own device and inode."""
    command(home, "migrate")
    message = compose("ann@uni.example.edu", "HELP")
    path = home.parent / "stderr.log"
    with open(path, "wb") as stderr:
        status = os.fstat(stderr.fileno())
        extra = {"MAILFLOW_SMTP_RELAY": f"127.0.0.1:{free_port()}"}
        if journal_stream == "same":
            extra["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        elif journal_stream is not None:
            extra["JOURNAL_STREAM"] = journal_stream
        result = subprocess.run(
            [str(MAILFLOW), "ingest"],
            input=wire(message),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=environment(home, **extra),
            cwd=home.parent,
            timeout=120,
        )
    assert result.returncode == 0
    return path.read_text().splitlines(), message["Message-ID"]


def test_under_systemd_each_line_has_its_priority_and_no_time_of_ours(home):
    lines, message_id = ingest_logging(home, "same")
    assert lines, "nothing logged"
    assert all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert not any(STAMP.search(line) for line in lines), lines
    handled = [line for line in lines if line.startswith("<6>mailflow.pipeline: message 1: ")]
    assert len(handled) == 1, lines
    assert handled[0].startswith("<6>mailflow.pipeline: message 1: handled command:help")
    assert handled[0].endswith(f"(via ingest, Message-ID {message_id})")
    assert any(line.startswith("<4>mailflow.send.outbox: relay unavailable") for line in lines)


def test_elsewhere_lines_keep_their_time_and_level_name(home):
    # A JOURNAL_STREAM inherited from a service, with standard error sent elsewhere since.
    lines, message_id = ingest_logging(home, "1:2")
    assert not any(re.match(r"<[0-7]>", line) for line in lines), lines
    handled = [line for line in lines if " INFO mailflow.pipeline: message 1: " in line]
    assert len(handled) == 1 and STAMP.match(handled[0]), lines
    assert f"Message-ID {message_id}" in handled[0]
    assert any(" WARNING mailflow.send.outbox: relay unavailable" in line for line in lines)


def test_a_traceback_keeps_its_priority_on_every_line():
    try:
        raise RuntimeError("the store went away")
    except RuntimeError:
        record = logging.LogRecord(
            "mailflow.serve", logging.ERROR, __file__, 1, "tick failed", None, sys.exc_info()
        )
    text = logs.JournalFormatter(logs.JOURNAL).format(record)
    lines = text.splitlines()
    assert lines[0] == "<3>mailflow.serve: tick failed"
    assert lines[-1] == "<3>RuntimeError: the store went away"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    warning = logging.LogRecord("x", logging.WARNING, __file__, 1, "late", None, None)
    debug = logging.LogRecord("x", logging.DEBUG, __file__, 1, "detail", None, None)
    assert logs.JournalFormatter(logs.JOURNAL).format(warning) == "<4>x: late"
    assert logs.JournalFormatter(logs.JOURNAL).format(debug) == "<7>x: detail"


def test_the_daemon_logs_each_message_with_the_spool_name_its_250_gave(home):
    daemon = start_daemon(home)
    try:
        message = compose("ann@uni.example.edu", "HELP")
        with daemon.smtp() as client:
            client.ehlo()
            client.mail("ann@uni.example.edu")
            client.rcpt(PROGRAM)
            code, reply = client.data(wire(message))
        assert code == 250
        name = reply.decode().rsplit("queued as ", 1)[1]
        row = daemon.handled(message["Message-ID"])
        wanted = f"INFO mailflow.pipeline: message {row['id']}: handled command:help"
        tail = f"(spool {name}, Message-ID {message['Message-ID']})"
        line = until(
            lambda: next(
                (
                    line
                    for line in journal(home).splitlines()
                    if wanted in line and line.endswith(tail)
                ),
                None,
            ),
            "the message's line in the journal",
        )
        assert journal(home).count(tail) == 1, line
    finally:
        daemon.stop()
