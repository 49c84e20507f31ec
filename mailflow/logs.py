"""The journal: one format for every process of mailflow, on standard error.

Under systemd, standard error is a stream to journald, which stamps each line with its
own time and files it at the priority a `<N>` prefix gives (sd-daemon(3)); without the
prefix every line would be "info", and `journalctl -p warning` would show nothing. So
there each line, a traceback's too, starts with its syslog priority and carries no time
of ours. systemd says it is there by JOURNAL_STREAM, the device and inode of the stream
it connected (systemd.exec(5)): only when standard error is still that stream, not when a
command run from a service's shell sends it to a file or a pipe.
"""

from __future__ import annotations

import logging
import os
import sys

# syslog(3) priorities of Python's levels, from the highest: crit, err, warning, info, debug.
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL = "%(name)s: %(message)s"


def to_journal(stream=None) -> bool:
    """Whether `stream` (standard error) is the journal stream systemd gave this process."""
    stream = stream or sys.stderr
    given = os.environ.get("JOURNAL_STREAM", "")
    device, colon, inode = given.partition(":")
    if not colon or not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a file at all
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


class JournalFormatter(logging.Formatter):
    """`<N>` before every line of a record, so a traceback's lines keep its priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def configure() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(JOURNAL) if to_journal() else logging.Formatter(PLAIN))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # mail-parser logs every MIME part it does not render; that is routine, not news.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    # aiosmtpd logs every SMTP verb; the pipeline's one line per message is what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
