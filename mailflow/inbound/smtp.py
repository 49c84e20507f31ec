"""The SMTP receiver (aiosmtpd): 550 for anyone but the program, 250 only once stored.

Like Mailman 3's runners/lmtp.py it decides per recipient and does nothing else. The
store and the handling run on one worker thread that owns the database connection, so
the event loop keeps accepting connections while a message is handled.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor, Future

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailflow import pipeline
from mailflow.config import Config
from mailflow.program import Program

log = logging.getLogger(__name__)


def recipient_refusal(config: Config, recipient: str) -> str | None:
    """Why a recipient is refused at RCPT, or None if it is the program or a +TOKEN form."""
    local, _, domain = recipient.strip("<> ").lower().rpartition("@")
    if domain != config.domain:
        return "550 5.7.1 Relaying denied: this server only accepts mail for " + config.address
    if local == config.local_part or local.startswith(config.local_part + "+"):
        return None
    return "550 5.1.1 No such mailbox here"


class Lanes(Executor):
    """One thread, two lanes. `submit` is the urgent lane: storing a message, whose sender
    waits for the 250, and other callers who wait for the result. `later` is for handling
    a message already stored, which nobody waits on. Under load, acceptance stays as quick
    as a commit and handling catches up in the gaps; a message is durable either way.
    `shutdown` runs what both lanes hold first."""

    URGENT, LATER, LAST = 0, 1, 2

    def __init__(self, name: str) -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._put(self.URGENT, fn, args, kwargs)

    def later(self, fn, /, *args, **kwargs) -> Future:
        return self._put(self.LATER, fn, args, kwargs)

    def _put(self, lane: int, fn, args, kwargs) -> Future:
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        future: Future = Future()
        self._queue.put((lane, next(self._order), future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            _, _, future, fn, args, kwargs = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put((self.LAST, next(self._order), None, None, (), {}))
        if wait:
            self._thread.join()


class Worker:
    """One thread, one Program: every store write of the daemon goes through here."""

    def __init__(self, config: Config, delivered: threading.Event) -> None:
        self.config = config
        self.delivered = delivered
        self.executor = Lanes("mailflow-worker")
        self.program: Program | None = None

    def _program(self) -> Program:
        if self.program is None:
            self.program = Program(self.config)
        return self.program

    def run(self, job, *args):
        """`job(program, *args)` on this thread, for another receiver (the IMAP poller)."""
        return self.executor.submit(lambda: job(self._program(), *args)).result()

    def receive(self, raw: bytes, envelope_from: str, recipients: list[str]) -> int:
        return pipeline.receive(self._program(), raw, envelope_from, recipients, "smtp")

    def process(self, row_id: int) -> None:
        try:
            pipeline.process(self._program(), row_id)
        except Exception:  # the store itself failed: the message stays 'received' for later
            log.exception("message %d left for the next sweep", row_id)
        self.delivered.set()  # wake the delivery loop: the answer is in the outbox

    def recover(self) -> int:
        """Queue for handling what was stored but not handled (the process stopped after a
        250, or handling failed); a message handled meanwhile is not handled again."""
        rows = pipeline.pending(self._program())
        for row_id in rows:
            self.executor.later(self.process, row_id)
        return len(rows)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        if self.program is not None:
            self.program.close()


class Throttle:
    """At most `limit` messages a minute from one envelope sender (the peer's address for
    <>): a flood is answered 451, so the sending server slows down and retries, and
    everyone else is served meanwhile. In memory on purpose: it guards this process's
    event loop, and forgetting it at a restart costs nothing."""

    WINDOW = 60.0
    KEYS = 100_000  # senders remembered at once; the oldest are forgotten first

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        times = self.seen.pop(key, None) or deque()
        while times and now - times[0] > self.WINDOW:
            times.popleft()
        allowed = len(times) < self.limit
        if allowed:
            times.append(now)
        self.seen[key] = times
        while len(self.seen) > self.KEYS:
            self.seen.popitem(last=False)
        return allowed


class Handler:
    def __init__(self, config: Config, worker: Worker) -> None:
        self.config = config
        self.worker = worker
        self.throttle = Throttle(config.sender_rate)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        key = address.lower() if address else f"<> from {session.peer[0]}"
        if not self.throttle.allow(key, time.monotonic()):
            log.warning("451 to %s: more than %d messages a minute", key, self.throttle.limit)
            return "451 4.7.1 Too much mail from this sender just now; please try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = recipient_refusal(self.config, address)
        if refusal:
            log.info("refused RCPT %s from %s", address, session.peer)
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        loop = asyncio.get_running_loop()
        try:
            row_id = await loop.run_in_executor(
                self.worker.executor,
                self.worker.receive,
                raw,
                envelope.mail_from,
                list(envelope.rcpt_tos),
            )
        except Exception:
            log.exception("could not store a message from %s", envelope.mail_from)
            return "451 4.3.0 Could not store the message; please try again later"
        # Stored: the 250 is safe. Handling follows on the worker, after what is urgent.
        self.worker.executor.later(self.worker.process, row_id)
        return f"250 2.0.0 OK: stored as message {row_id}"


def tls_context(config: Config) -> ssl.SSLContext | None:
    """STARTTLS (RFC 3207) with MAILFLOW_TLS_CERT and MAILFLOW_TLS_KEY; a wrong file stops
    the start with the reason, not the first client's handshake."""
    if not config.tls_cert or not config.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(
            f"MAILFLOW_TLS_CERT/MAILFLOW_TLS_KEY ({config.tls_cert}, {config.tls_key}) can't be"
            f" used: {error}"
        ) from error
    return context


# RFC 5321 4.5.3.1.6 allows 1,000 octets a line, and aiosmtpd refuses more with a 500. Real
# mail breaks it: Amazon SES and GMX delivery reports carry one long line, and refusing a
# bounce loses it (its sender never bounces a bounce). Postfix folds such lines; we take
# them whole, up to the size limit, and parsing copes.
LONGEST_LINE = 1_000_000


class _Server(SMTP):
    line_length_limit = LONGEST_LINE


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)


def controller(config: Config, worker: Worker) -> Controller:
    return _Controller(
        Handler(config, worker),
        hostname=config.listen_host,
        port=config.listen_port,
        data_size_limit=config.max_size,
        ident="mailflow ESMTP",
        server_hostname=config.domain,
        tls_context=tls_context(config),
    )
