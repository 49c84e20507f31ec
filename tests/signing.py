"""A coordinator's mail signed as their provider signs it (DKIM), for the tests of proof.

The keys are made by `tests.dns_stub.make_key` and published by its DnsStub (conftest's
`keys` and `dns` fixtures). A support module, not a test module: it never sends anything.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from unittest import mock

import dkim

from mailflow.send import signatures
from tests.mailbox import NOW, compose, wire
from tests.people import COORDINATOR

DOMAIN = "program.example.org"
EVIL = "evil.example"
SELECTOR = "sel"


@contextmanager
def signing_at(moment: str = NOW):
    """dkimpy writes t= from the clock; the program lives at MAILFLOW_NOW, and a signature
    from months after its "now" would be in the future for it."""
    stamp = datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    with mock.patch.object(dkim.time, "time", return_value=stamp):
        yield


def signed(
    text: str,
    key: bytes,
    domain: str = DOMAIN,
    selector: str = SELECTOR,
    sender: str = COORDINATOR,
) -> tuple[str, bytes]:
    """(Message-ID, the exact CRLF bytes to send) of a message signed as a provider signs."""
    message = compose(sender, text, "Programme admin", name="Carla Coordinator")
    with signing_at():
        raw = signatures.sign(wire(message), selector, domain, key)
    return str(message["Message-ID"]), raw
