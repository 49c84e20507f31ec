"""The `mailflow` command line (CONTRACT.md): every command applies pending migrations
first, delivers what it queued before it exits, and fails with one line on stderr."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

from mailflow import config as configuration
from mailflow import logs, pipeline, status, store
from mailflow.app import bulk, roster
from mailflow.conversation.coordinator.ask import wording
from mailflow.errors import MailflowError, SettingError
from mailflow.model import coordinators
from mailflow.program import Program
from mailflow.receive import envelope
from mailflow.receive.worker import Worker
from mailflow.send import outbox

EX_TEMPFAIL = 75  # sysexits.h

log = logging.getLogger("mailflow.cli")


def cmd_ingest(config: configuration.Config, args: argparse.Namespace) -> int:
    """Store each message, then handle it. An MTA's pipe (Postfix, Exim) keeps a message
    and tries again later only on EX_TEMPFAIL (and EX_OSERR); any other status bounces it
    to its sender. So every failure before a message is committed is 75 with one line on
    stderr, the store's start-up (migrations, a database locked past the busy timeout)
    included; once it is committed, nothing after it may undo the 0."""
    name = "<stdin>"
    try:
        program = Program(config)
        for name in args.files or ["<stdin>"]:
            raw = Path(name).read_bytes() if args.files else sys.stdin.buffer.read()
            sender, recipients = envelope.read(config, raw, args.recipient, args.sender)
            row_id = pipeline.receive(program, raw, sender, recipients, "ingest")
            try:
                outcome = pipeline.process(program, row_id)
            except Exception:  # stored: the daemon's sweep handles it, as after a crash
                log.exception("message %d stored, its handling left for the daemon", row_id)
                print(f"{name}: message {row_id}: stored; the daemon handles it")
                continue
            print(f"{name}: message {row_id}: {outcome}")
    except Exception as error:  # a bug too: deferred, the mail waits for its fix
        return _tempfail(error, name)
    try:
        bulk.queue_pending(program)
        outbox.deliver(program.db, config, program.now())
    except Exception:  # the daemon's delivery loop sends what is left
        log.exception("ingest: delivery left for the daemon")
    return 0


def _tempfail(error: BaseException, name: str | None = None) -> int:
    """One line on stderr, which the MTA logs with the deferral; EX_TEMPFAIL."""
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, MailflowError | OSError | sqlite3.Error):
        text = f"{type(error).__name__}: {text}"  # a bug's, not the operator's or the store's
    where = f"{name}: " if name else ""
    print(f"mailflow ingest: {where}not stored, try again later: {text}", file=sys.stderr)
    return EX_TEMPFAIL


def cmd_migrate(config: configuration.Config, args: argparse.Namespace) -> int:
    db = store.connect(config.db)
    applied = store.migrate(db, config.migrations, config.clock())
    print("applied: " + ", ".join(applied) if applied else "up to date")
    Program(config).close()
    return 0


def cmd_outbox(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    if args.action == "resend":
        if args.row is None:
            raise SettingError(
                "outbox resend needs the id of an outbox row (see `mailflow outbox`)"
            )
        was = outbox.resend(program.db, args.row, program.now())
        print(f"outbox {args.row} ({was}) queued again")
        bulk.queue_pending(program)
        sent, queued = outbox.deliver(program.db, config, program.now())
        print(f"sent {sent}, still queued {queued}")
        return 0
    if args.action == "flush":
        sent, queued = outbox.deliver(program.db, config, program.now(), everything=True)
        print(f"sent {sent}, still queued {queued}")
        return 0 if queued == 0 else 1
    rows = program.db.execute(
        "SELECT id, state, created_at, template, recipient, attempts, coalesce(last_error, '')"
        " FROM outbox ORDER BY id DESC LIMIT ?",
        [args.limit],
    ).fetchall()
    for row in reversed(rows):
        print("  ".join(str(value) for value in row))
    counts = program.db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
    print("total: " + (", ".join(f"{state} {n}" for state, n in counts) or "empty"))
    return 0


def cmd_import(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    text = Path(args.file).read_text(encoding="utf-8-sig", errors="replace")
    report = roster.import_csv(program, text, program.now())
    print(wording(program, "import", "imported", report=report))
    if not report.problems:
        return 0
    # The contract's one-line reason on stderr; the rows themselves are listed above.
    first = wording(program, "import", "first-problem", report=report)
    print(f"mailflow import: {first}", file=sys.stderr)
    return 1


def cmd_export(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    rows = (roster.export_partnerships if args.partnerships else roster.export_participants)(
        program.db
    )
    text = roster.to_csv(rows)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _progress():
    """A tqdm bar per stage when a person watches a terminal; nothing in logs or pipes."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def report(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage))
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


def cmd_match(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.matching import matchmaker

    program = Program(config)
    plan = matchmaker.plan(program, program.now(), progress=_progress())
    print(matchmaker.preview_text(program, plan))
    if args.dry_run:
        return 0
    print(matchmaker.carry_out(program, plan, program.now(), made_by="operator"))
    bulk.queue_pending(program)
    outbox.deliver(program.db, config, program.now())
    return 0


def cmd_tick(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.schedule import scheduler

    try:
        now = configuration.parse_time(args.now) if args.now else config.clock()
    except ValueError:
        raise SettingError(f"--now is not an ISO 8601 time: {args.now!r}") from None
    program = Program(config)
    sent = scheduler.tick(program, now)
    summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(sent.items())) or "nothing due"
    print(f"tick at {now.isoformat()}: {summary}")
    return 0


def cmd_schedule(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.schedule import scheduler

    if args.days < 0:
        raise SettingError("--days must be 0 or more")
    program = Program(config)
    now = program.now()
    items = scheduler.upcoming(program, program.rules.cadence, now, args.days)
    print(f"{len(items)} scheduled mail(s) from {now.isoformat()} for {args.days} days:")
    for item in items:
        print(f"{item.due_at.date().isoformat()}  {item.kind:<16} #{item.number:<2} {item.email}")
    return 0


def cmd_coordinator(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    db, now = program.db, program.now()
    if args.action == "list":
        for coordinator in coordinators.listing(db):
            scope = wording(program, "coordinators", "scope", coordinator=coordinator)
            print(f"{coordinator.email}  {scope}  ({coordinator.source})")
        return 0
    if not args.address or not roster.ADDRESS.match(args.address.lower()):
        raise SettingError(f"{args.action} needs a coordinator's email address")
    if args.action == "remove":
        if not coordinators.remove(db, args.address):
            raise SettingError(f"{args.address} is not a coordinator")
        print(f"removed {args.address.lower()}")
        return 0
    countries, unknown = coordinators.read_countries((args.countries or "").split(","))
    if unknown:
        raise SettingError(f"--countries: not a country: {', '.join(unknown)}")
    with store.transaction(db):
        coordinators.add(db, args.address, countries, source="cli", by="operator", now=now)
    added = coordinators.find(db, args.address)
    assert added is not None
    scope = wording(program, "coordinators", "scope", coordinator=added)
    print(f"{added.email} coordinates {scope}")
    return 0


def cmd_audit(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    rows = program.db.execute(
        "SELECT at, sender, proof, changed, command, outcome FROM audit ORDER BY id DESC LIMIT ?",
        [args.limit],
    ).fetchall()
    for at, sender, proof, changed, command, outcome in reversed(rows):
        mark = "changed" if changed else "-"
        summary = " ".join(outcome.split())[:160]
        print(f"{at}  {sender}  [{proof}]  {mark}  {command[:80]}  => {summary}")
    print(f"{len(rows)} command(s) shown")
    return 0


def cmd_serve(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.serve import serve

    serve(config, rules=not args.no_scheduler, imap=not args.no_imap)
    return 0


def cmd_poll_imap(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.receive.imap import Poller

    Program(config).close()  # migrations first, as every command, even if IMAP is down
    if args.once:
        worker = Worker(config, threading.Event())
        try:
            report = Poller(config, worker).once()
        finally:
            worker.close()
        for line in report.lines:
            print(line)
        print(f"poll-imap: {report.handled} handled, {report.left} left in place")
        return 0
    from mailflow.serve import run_poller

    run_poller(config)
    return 0


def cmd_backup(config: configuration.Config, args: argparse.Namespace) -> int:
    target = Path(args.file)
    if target.exists():
        raise SettingError(f"{target} exists; a backup never overwrites a file")
    program = Program(config)
    pages = store.backup(program.db, target)
    print(f"backed up {config.db} to {target} ({pages} pages, checked)")
    return 0


def cmd_quarantine(config: configuration.Config, args: argparse.Namespace) -> int:
    program = Program(config)
    rows = program.db.execute(
        "SELECT id, received_at, via, coalesce(sender, envelope_from, '?'), size, outcome"
        " FROM messages WHERE state = 'quarantined' ORDER BY id DESC LIMIT ?",
        [args.limit],
    ).fetchall()
    for row_id, at, via, sender, size, outcome in reversed(rows):
        print(f"{row_id}  {at}  {via}  {sender}  {size} bytes  {outcome}")
    print(f"{len(rows)} quarantined message(s) shown")
    return 0


def cmd_config(config: configuration.Config, args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(configuration.reference())
        return 0
    for line in configuration.in_force(config):
        print(line)
    return 0


def cmd_status(config: configuration.Config, args: argparse.Namespace) -> int:
    report = status.check(config)
    print(report.as_json() if args.json else report.as_text())
    return report.code


def cmd_scheduler(config: configuration.Config, args: argparse.Namespace) -> int:
    from mailflow.serve import run_scheduler

    run_scheduler(config)
    return 0


def version() -> str:
    try:
        return importlib.metadata.version("mailflow")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


EPILOG = """\
environment:
  Settings come from MAILFLOW_ variables, over the settings file, over defaults.
  The settings file is -C FILE, else MAILFLOW_CONFIG, else ./mailflow.toml; its keys
  are the names below in lower case, without MAILFLOW_. An unknown name stops the
  start. `mailflow config` shows what is in force; docs/settings.md has the defaults.
{variables}

files:
  mailflow.toml          the settings file (-C FILE or MAILFLOW_CONFIG name another)
  HOME/mailflow.db       the database: people, mail in and out, the schedule (SQLite)
  HOME/spool/            mail the SMTP daemon took, until the handling process stores it
  HOME/outbox/           a Maildir copy of every message sent
  (HOME is MAILFLOW_HOME.)

exit status:
  0   done
  1   done in part: import found problems, outbox flush left mail queued, status
      found a warning; or a bug (with its traceback)
  2   a wrong setting, argument or file, said in one line; status: critical
  75  ingest only: the message was not stored, try again later (EX_TEMPFAIL: an MTA's
      pipe keeps it and retries, where any other status would bounce it)
"""


def epilog() -> str:
    width = max(len(setting.variable) for setting in configuration.SETTINGS) + 4
    lines = []
    for setting in configuration.SETTINGS:
        lines += textwrap.wrap(
            setting.meaning,
            width=88,
            initial_indent=f"  {setting.variable:<{width - 2}}",
            subsequent_indent=" " * width,
        )
    return EPILOG.format(variables="\n".join(lines))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mailflow",
        description="A peer-mentoring program run by email.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"mailflow {version()}")
    top.add_argument(
        "-C",
        "--config",
        dest="config_file",
        metavar="FILE",
        help=f"the settings file (else ${configuration.CONFIG_VARIABLE}, else ./mailflow.toml)",
    )
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="the SMTP daemon, delivering the outbox and ticking")
    serve.add_argument("--no-scheduler", action="store_true", help="without the rules loop")
    serve.add_argument(
        "--no-imap", action="store_true", help="without the IMAP poller (a process of its own)"
    )
    serve.set_defaults(run=cmd_serve)
    loop = sub.add_parser("scheduler", help="the rules loop alone: a tick every minute")
    loop.set_defaults(run=cmd_scheduler)
    polling = sub.add_parser("poll-imap", help="read MAILFLOW_IMAP_URL: IDLE, or --once")
    polling.add_argument("--once", action="store_true", help="one pass, then exit")
    polling.set_defaults(run=cmd_poll_imap)
    ingest = sub.add_parser("ingest", help="handle raw messages from files or stdin")
    ingest.add_argument("files", nargs="*")
    ingest.add_argument("--recipient", help="envelope recipient (for an MTA's pipe)")
    ingest.add_argument("--sender", help="envelope sender (for an MTA's pipe)")
    ingest.set_defaults(run=cmd_ingest)
    migrate = sub.add_parser("migrate", help="apply migrations/")
    migrate.set_defaults(run=cmd_migrate)
    box = sub.add_parser(
        "outbox", help="list queued and sent mail; 'flush' retries; 'resend ID' queues one again"
    )
    box.add_argument("action", nargs="?", choices=["list", "flush", "resend"], default="list")
    box.add_argument("row", nargs="?", type=int, help="resend: the outbox row to queue again")
    box.add_argument("--limit", type=int, default=50)
    box.set_defaults(run=cmd_outbox)
    matching = sub.add_parser("match", help="match the round (the operator is trusted)")
    matching.add_argument("--dry-run", action="store_true", help="print the preview only")
    matching.set_defaults(run=cmd_match)
    importing = sub.add_parser("import", help="add or update applicants from a CSV file")
    importing.add_argument("file")
    importing.set_defaults(run=cmd_import)
    exporting = sub.add_parser("export", help="participants (or partnerships) as CSV")
    exporting.add_argument("--partnerships", action="store_true")
    exporting.add_argument("-o", "--output", help="write to this file, not standard output")
    exporting.set_defaults(run=cmd_export)
    ticking = sub.add_parser("tick", help="run the rules once at 'now' and send what is due")
    ticking.add_argument("--now", help="ISO 8601 time to take as now")
    ticking.set_defaults(run=cmd_tick)
    schedule = sub.add_parser("schedule", help="what the rules would send, without sending")
    schedule.add_argument("--days", type=int, default=30)
    schedule.set_defaults(run=cmd_schedule)
    coordinating = sub.add_parser("coordinator", help="add, list or remove coordinators")
    coordinating.add_argument("action", choices=["add", "list", "remove"])
    coordinating.add_argument("address", nargs="?")
    coordinating.add_argument("--countries", help="country coordinator: codes or names, CC,CC")
    coordinating.set_defaults(run=cmd_coordinator)
    auditing = sub.add_parser("audit", help="the coordinators' commands: who, how proven, what")
    auditing.add_argument("--limit", type=int, default=200)
    auditing.set_defaults(run=cmd_audit)
    backing = sub.add_parser("backup", help="an online copy of the database, safe while running")
    backing.add_argument("file", help="the new file to write")
    backing.set_defaults(run=cmd_backup)
    quarantined = sub.add_parser("quarantine", help="messages set aside, with the reason")
    quarantined.add_argument("--limit", type=int, default=200)
    quarantined.set_defaults(run=cmd_quarantine)
    checking = sub.add_parser(
        "status",
        help="the health check: spool, outbox, last tick and IMAP pass, handling process,"
        " database; exit 0 OK, 1 warning, 2 critical",
        epilog=status.THRESHOLDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checking.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    checking.set_defaults(run=cmd_status)
    showing = sub.add_parser(
        "config", help="every setting in force and where it came from, passwords masked"
    )
    showing.add_argument(
        "--reference", action="store_true", help="the settings reference (docs/settings.md)"
    )
    showing.set_defaults(run=cmd_config)
    return top


def main(argv: list[str] | None = None) -> int:
    # Before anything opens the database, the spool or the Maildir: they hold every
    # profile, every message and the installation's secret, for the owner's eyes only.
    os.umask(0o077)
    logs.configure()
    given = sys.argv[1:] if argv is None else argv
    try:
        args = parser().parse_args(given)
    except SystemExit as stop:
        # A mistyped option in master.cf's pipe must defer the mail, not bounce it; argparse
        # has said what was wrong on stderr, which the MTA logs with the deferral.
        if stop.code == 2 and "ingest" in given:
            return EX_TEMPFAIL
        raise
    try:
        config = configuration.load(file=args.config_file)
    except (MailflowError, OSError) as error:
        if args.command == "ingest":  # a wrong setting must not bounce the mail: deferred
            return _tempfail(error)
        print(f"mailflow {args.command}: {error}", file=sys.stderr)
        return 2
    try:
        return args.run(config, args)
    # The operator's mistakes only: a ValueError or KeyError from code is a bug, and its
    # traceback is what finds it.
    except (MailflowError, OSError) as error:
        print(f"mailflow {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
