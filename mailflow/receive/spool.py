"""The daemon's spool: each message taken over SMTP is a file, fsynced before its 250.

Like Postfix's incoming queue or Mailman 3's queue directories, it parts taking mail from
handling it. The SMTP daemon only writes files, so it never waits for the database
(a long IMPORT, a round's end, a slow disk commit) and never shares a core with the
handling; the handling process (`mailflow.receive.handling`) moves each file into the store and
handles it in one transaction, then removes the file. Maildir's discipline keeps it
safe: a file is written in `tmp/`, fsynced, and renamed into `new/` with the directory
fsynced, so a file in `new/` is whole, and a crash mid-write leaves only debris in
`tmp/` that got no 250 (cleared at the next start). A file that can't be read is moved
to `bad/`, with a log line, never deleted. Beside the folders, `current` names the
message the handling process is on, for its watchdog and its successor.

A file is one JSON line with the envelope and the time it came, then the raw message.
Names sort in the order the messages came.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailflow.store import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spooled:
    name: str
    envelope_from: str | None
    recipients: tuple[str, ...]
    received_at: str
    via: str
    raw: bytes


class BadSpoolFile(ValueError):
    """A file in `new/` without the envelope line (written by hand, or damaged)."""


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp, self.new, self.bad = folder / "tmp", folder / "new", folder / "bad"
        for path in (self.tmp, self.new, self.bad):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def _name(self) -> str:
        with self._lock:
            number = next(self._numbers)
        return f"{time.time_ns():020d}.{os.getpid()}.{number:08d}"

    def write(
        self,
        raw: bytes,
        envelope_from: str | None,
        recipients: list[str] | tuple[str, ...],
        received_at: datetime,
        via: str = "smtp",
    ) -> str:
        """Store one message durably; its name. Safe from several threads at once."""
        name = self._name()
        envelope = json.dumps(
            {
                "from": envelope_from,
                "to": list(recipients),
                "received_at": iso(received_at),
                "via": via,
            }
        ).encode()
        written = self.tmp / name
        # The owner's alone, whatever the umask of the process that takes the mail.
        descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "wb") as handle:
            handle.write(envelope + b"\n")
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(written, self.new / name)
        _fsync_folder(self.new)
        return name

    def waiting(self, limit: int | None = None) -> list[str]:
        """Names in `new/`, oldest first."""
        names = sorted(entry.name for entry in os.scandir(self.new) if entry.is_file())
        return names[:limit] if limit else names

    def read(self, name: str) -> Spooled:
        data = (self.new / name).read_bytes()
        line, separator, raw = data.partition(b"\n")
        try:
            envelope = json.loads(line) if separator else None
            if not isinstance(envelope, dict) or not isinstance(envelope.get("to"), list):
                raise ValueError("no envelope")
            return Spooled(
                name=name,
                envelope_from=envelope.get("from"),
                recipients=tuple(str(r) for r in envelope["to"]),
                received_at=str(envelope["received_at"]),
                via=str(envelope.get("via", "smtp")),
                raw=raw,
            )
        except (ValueError, KeyError) as error:
            raise BadSpoolFile(f"spool file {name} has no envelope line: {error}") from error

    def remove(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.new / name)

    def set_aside(self, name: str, reason: str) -> None:
        os.rename(self.new / name, self.bad / name)
        log.error("spool file %s moved to %s: %s", name, self.bad, reason)

    def clear_debris(self, older_than: float = 600.0) -> int:
        """Remove the half-written files of a process that stopped mid-write (none got a
        250). A write takes milliseconds: a file in `tmp/` ten minutes old is debris."""
        cleared = 0
        for entry in os.scandir(self.tmp):
            if time.time() - entry.stat().st_mtime > older_than:
                os.unlink(entry.path)
                cleared += 1
        return cleared


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
