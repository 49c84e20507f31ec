"""Big sends queued after the change that asked for them has committed, in batches that
let mail coming in take the write lock between them: a discussion post's copies and a
broadcast's. Every delivery pass runs this first, so whichever process delivers sends them.
"""

from __future__ import annotations

from datetime import datetime

from mailflow.app import broadcasts, discussions
from mailflow.program import Program


def queue_pending(program: Program, now: datetime | None = None) -> int:
    """Queue what big sends have left to queue; how many messages."""
    return broadcasts.send_pending(program, now) + discussions.fan_out(program, now)
