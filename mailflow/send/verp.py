"""Per-recipient return paths (VERP): `local+bounce-CODE@domain`, CODE keyed with the
installation's secret, so a bounce names the address it is about (whatever address the
report itself names) and nobody can forge one that names somebody else."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

from mailflow.config import Config
from mailflow.store import transaction

if TYPE_CHECKING:  # named for its type only: the program is built above sending
    from mailflow.program import Program


PREFIX = "bounce-"
CODE_LENGTH = 20  # hex digits of the HMAC: 80 bits, not guessed by trying
CODE = re.compile(f"[0-9a-f]{{{CODE_LENGTH}}}")


def return_path(program: Program, recipient: str) -> str:
    """The envelope sender for mail to `recipient`: the VERP address that names them."""
    path, code = coded(program, recipient)
    remember(program, [code])
    return path


def coded(program: Program, recipient: str) -> tuple[str, tuple[str, str]]:
    """The return path for `recipient`, and the (code, address) row that `remember` keeps
    so that a bounce to it can be read; reads and writes nothing."""
    config = program.config
    code = hmac.new(
        program.secret.encode(), b"bounce:" + recipient.lower().encode(), hashlib.sha256
    ).hexdigest()[:CODE_LENGTH]
    return f"{config.local_part}+{PREFIX}{code}@{config.domain}", (code, recipient.lower())


def remember(program: Program, codes: list[tuple[str, str]]) -> None:
    with transaction(program.db):  # executemany would open one and leave it open
        program.db.conn.executemany(
            "INSERT OR IGNORE INTO bounce_codes (code, address) VALUES (?, ?)", codes
        )


def code_of(config: Config, recipient: str) -> str | None:
    """The CODE of an address in the return paths' form, None for any other address. Only
    the store says whether the code is one we gave out; this reads the form alone."""
    local, _, domain = recipient.strip("<> ").lower().rpartition("@")
    start = f"{config.local_part}+{PREFIX}"
    if domain != config.domain or not local.startswith(start):
        return None
    code = local[len(start) :]
    return code if CODE.fullmatch(code) else None


def addressed(program: Program, recipients: tuple[str, ...]) -> str | None:
    """The address a bounce is about, from the VERP recipient it was sent to."""
    for recipient in recipients:
        code = code_of(program.config, recipient)
        if code is not None:
            row = program.db.execute(
                "SELECT address FROM bounce_codes WHERE code = ?", [code]
            ).fetchone()
            if row:
                return row[0]
    return None
