"""`mailflow serve`: the SMTP or LMTP daemon (MAILFLOW_LISTEN), the handling process, the
delivery loop and the scheduler.

The daemon writes each message to the spool before its 250; the handling process
(`mailflow.receive.handling`, a process of its own so that it has a core of its own) stores and
handles it, and at start whatever was stored but not handled before a crash. This
thread delivers the outbox within a second of anything queued, and runs the rules
(`tick`) at start and every minute, unless `--no-scheduler`. With MAILFLOW_IMAP_URL it
also reads that mailbox on a thread of its own, unless `--no-imap`. `mailflow scheduler`
and `mailflow poll-imap` are the rules loop and the poller alone, for Procfile lines of
their own.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from mailflow.app import bulk
from mailflow.config import Config
from mailflow.program import Program
from mailflow.read.countries import normalise_country
from mailflow.read.languages import normalise_language
from mailflow.read.timezones import normalise_time_zone
from mailflow.receive import http
from mailflow.receive.handling import Handling, wait_for_orphan
from mailflow.receive.smtp import controller
from mailflow.receive.spool import Spool
from mailflow.receive.worker import Worker
from mailflow.schedule import scheduler
from mailflow.send import outbox

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0
# Delivery passes at most this often: under a stream of mail, each handled batch asks for
# one, and a pass has a cost of its own; answers still go within the second.
DELIVERY_GAP = 0.25
# Ending a term makes each member a certificate: a round's end is spread over a few ticks
# so that delivery and incoming mail are never held up for long.
TERMS_PER_TICK = 250


def warm_up() -> None:
    normalise_country("Kenya")
    normalise_language("English")
    normalise_time_zone("Sydney")


def _stop_on_signals(stop: threading.Event, *also: threading.Event) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: [event.set() for event in (stop, *also)])


def run_rules(program: Program) -> None:
    """One tick; a failure is logged and retried at the next, never fatal to the daemon."""
    try:
        sent = scheduler.tick(program, program.now(), terms_at_once=TERMS_PER_TICK)
        if sent:
            log.info("tick: sent %d scheduled message(s)", sum(sent.values()))
    except Exception:
        log.exception("tick failed; trying again in a minute")


def run_scheduler(config: Config, stop: threading.Event | None = None) -> None:
    """The rules loop alone: a tick every minute until stopped."""
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    program = Program(config)
    log.info("mailflow scheduler running")
    try:
        while not stop.is_set():
            run_rules(program)
            stop.wait(TICK_SECONDS)
    finally:
        program.close()


def run_poller(config: Config, stop: threading.Event | None = None) -> None:
    """`mailflow poll-imap`: the IMAP poller alone, delivering what it queues."""
    from mailflow.receive.imap import Poller

    stop = stop or threading.Event()
    _stop_on_signals(stop)
    worker = Worker(config, threading.Event())
    poller = Poller(config, worker, stop=stop, deliver=True)
    log.info("mailflow poll-imap running for %s", config.address)
    try:
        poller.run()
    finally:
        worker.close()
        log.info("mailflow poll-imap stopped")


def serve(
    config: Config,
    stop: threading.Event | None = None,
    *,
    rules: bool = True,
    imap: bool = True,
) -> None:
    stop = stop or threading.Event()
    wake = threading.Event()
    # Before any thread starts: the store migrated and the country, language and city
    # tables built (not while the first form waits), then the handling process forked,
    # so it starts with all of that at once.
    wait_for_orphan(config)
    Program(config).close()
    warm_up()
    spool = Spool(config.spool)
    if cleared := spool.clear_debris():
        log.info("%d half-written spool file(s) of a stopped daemon removed", cleared)
    handling = Handling(config, wake)
    _stop_on_signals(stop, wake)
    handling.watch()
    worker = Worker(config, wake)
    daemon = web = poller = program = None
    try:
        daemon = controller(config, spool, handling.ring)  # a wrong TLS file stops here
        daemon.start()
        log.info("mailflow listening on %s for %s", config.listen, config.address)
        web = http.start(worker, config.http_listen) if config.public_url else None
        if imap and config.imap_url:
            from mailflow.receive.imap import Poller

            # The daemon's delivery loop sends what the poller queues: the worker wakes it.
            poller = threading.Thread(
                target=Poller(config, worker, stop=stop, deliver=False).run,
                name="mailflow-imap",
                daemon=True,
            )
            poller.start()
        program = Program(config)  # the delivery loop's own connection
        last_tick = None
        while not stop.is_set():
            wake.clear()
            try:
                # Another process delivering (`outbox flush`) is not waited for: the next
                # second's pass takes what it leaves.
                bulk.queue_pending(program)  # posts and broadcasts, in short transactions
                outbox.deliver(program.db, config, program.now(), wait=0)
            except Exception:
                log.exception("delivery loop failed; retrying")
            if rules and (last_tick is None or time.monotonic() - last_tick > TICK_SECONDS):
                run_rules(program)
                last_tick = time.monotonic()
            if not stop.wait(DELIVERY_GAP):
                wake.wait(1.0 - DELIVERY_GAP)
    finally:
        if web is not None:
            web.shutdown()
        if daemon is not None:
            daemon.stop()
        if poller is not None:
            poller.join(timeout=10)
        handling.stop()  # it handles what the spool holds first
        worker.close()
        if program is not None:
            outbox.deliver(program.db, config, program.now())
            program.close()
        log.info("mailflow stopped")
