"""The program the tests write to, in two backends with one face, and the homes they use.

- In process (`start_in_process`, the `program` fixture; Salmon's RouterConversation): a
  message is stored and handled the handling process's way (`pipeline.receive`, then
  `pipeline.settle`) on a real Program over the home's SQLite file, and its answers are
  delivered to the real Maildir at once. No daemon, no subprocess, no socket: for tests
  of what the program answers.
- The daemon (`start_daemon`, the `daemon` fixture): `mailflow serve` in a subprocess on a
  free 127.0.0.1 port, mail sent over real SMTP. For tests of receiving: SMTP, the spool,
  the handling process, crash safety, IMAP, the relay.

Conversation tests read like the exchange they check:
`reply = ann.say("APPLY", expect="application-form")`. "Nothing was sent" is checked
without sleeping: the store says when a message is handled, and its answers are queued in
the same transaction, so after that point the outbox rows for it are final.

A matched home (eight people in four partnerships) is made once a run by the real CLI and
copied for each test that asks for one (`matched`), or extended once a module (`prepared`).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import io
import os
import random
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow import cli, pipeline, serve
from mailflow import config as configuration
from mailflow.app import bulk
from mailflow.program import Program
from mailflow.receive.smtp import recipient_refusal
from mailflow.send import outbox
from mailflow.store import transaction
from tests.dns_stub import DnsStub, make_key
from tests.mailbox import NOW, PROGRAM, compose, outbox_row, wire
from tests.people import COORDINATOR, KENYA, WAITING, roster, status
from tests.signing import DOMAIN, EVIL, SELECTOR

__all__ = ["NOW", "PROGRAM", "compose", "outbox_row", "wire"]  # the tests import them from here

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
MAILFLOW = Path(sys.executable).parent / "mailflow"
WAIT = 15.0


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out on its own
# (port 0) may be taken by a client connection's local end before the daemon binds it,
# which failed a daemon's start now and then while another worker was busy connecting.
# Drawn from the system, not `random`, which pytest-randomly seeds alike in every worker.
PORTS = range(20000, 32000)
CHOOSE = random.SystemRandom().choice


def free_port() -> int:
    """A port nothing listens on, from a range the kernel never picks by itself."""
    for _ in range(200):
        port = CHOOSE(PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    env.update(MAILFLOW_HOME=str(home), MAILFLOW_ADDRESS=PROGRAM, MAILFLOW_NOW=NOW)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, stdin: bytes | None = None, **extra: str):
    return subprocess.run(
        [str(MAILFLOW), *args],
        input=stdin,
        capture_output=True,
        env=environment(home, **extra),
        cwd=home.parent,
        timeout=120,
    )


def command(home: Path, *args: str, stdin: bytes = b"", **extra: str) -> str:
    """`mailflow ARGS`, which must succeed; what it printed. Run by the command's own
    function (`cli.parser`'s choice) in this process with the CLI's settings: that spares a
    test starting Python and SciPy for each command. `run_cli` runs the real process: for
    what only the process shows (its exit status, its stderr, its umask)."""
    chosen = cli.parser().parse_args(list(args))
    config = configuration.load(environment(home, **extra), cwd=home.parent)
    printed = io.StringIO()
    given = io.TextIOWrapper(io.BytesIO(stdin))  # `ingest` reads sys.stdin.buffer
    with contextlib.redirect_stdout(printed), swapped_stdin(given):
        assert chosen.run(config, chosen) == 0, f"mailflow {' '.join(args)} failed"
    return printed.getvalue()


@contextlib.contextmanager
def swapped_stdin(stream: io.TextIOWrapper):
    before, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = before


def tick(home: Path, now: str, **extra: str) -> str:
    """`mailflow tick --now NOW`, in process; what it printed."""
    return command(home, "tick", "--now", now, **extra)


def ingest(home: Path, messages: list[EmailMessage], now: str = NOW, **env: str) -> list[str]:
    """`mailflow ingest` of each message as a file, one run in process; each one's outcome."""
    folder = home.parent / "in"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for message in messages:
        path = folder / f"{len(list(folder.iterdir())):04}.eml"
        path.write_bytes(wire(message))
        files.append(str(path))
    printed = command(home, "ingest", *files, MAILFLOW_NOW=now, **env)
    return [line.split(": ", 2)[2] for line in printed.splitlines()]


def until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Home:
    """What both backends share: the home's store and Maildir, read as the daemon's are."""

    home: Path

    @property
    def maildir(self) -> Path:
        return self.home / "outbox"

    def db(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.home / "mailflow.db", timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def query(self, sql: str, *params) -> list[sqlite3.Row]:
        with self.db() as connection:
            return connection.execute(sql, params).fetchall()

    def handled(self, message_id: str) -> sqlite3.Row:
        """Wait until the message is handled; its row (state, outcome)."""
        return until(
            lambda: next(
                iter(
                    self.query(
                        "SELECT * FROM messages WHERE message_id = ? AND state != 'received'",
                        message_id,
                    )
                ),
                None,
            ),
            f"message {message_id} to be handled",
        )

    def spooled(self) -> list[Path]:
        """Spool files the handling process has not yet taken."""
        folder = self.home / "spool" / "new"
        return sorted(folder.iterdir()) if folder.exists() else []

    def idle(self, timeout: float = WAIT) -> list[sqlite3.Row]:
        """Wait until everything accepted is handled; every message row. A spool file is
        removed only after its message is stored and handled, so an empty spool and no
        row 'received' is the end of it."""

        def settled():
            if self.spooled():
                return None
            rows = self.query("SELECT * FROM messages ORDER BY id")
            return None if any(row["state"] == "received" for row in rows) else rows or [None]

        rows = until(settled, "the daemon to handle everything accepted", timeout)
        return [row for row in rows if row is not None]

    def answers_to(self, message_id: str) -> list[sqlite3.Row]:
        row = self.handled(message_id)
        return self.query("SELECT * FROM outbox WHERE inbound_id = ? ORDER BY id", row["id"])

    def delivered(self) -> list[EmailMessage]:
        """Every message in the Maildir, oldest first."""
        folder = self.maildir / "new"
        files = sorted(folder.glob("*"), key=outbox_row) if folder.exists() else []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files
        ]

    def mail_for(self, message_id: str) -> list[EmailMessage]:
        """The answers to one inbound message, once all of them are in the Maildir."""
        wanted = {row["message_id"] for row in self.answers_to(message_id)}

        def arrived() -> list[EmailMessage] | None:
            mails = [m for m in self.delivered() if m["Message-ID"] in wanted]
            return mails if len(mails) == len(wanted) else None

        return until(arrived, f"answers to {message_id} in the Maildir") if wanted else []


@dataclass
class Daemon(Home):
    port: int
    process: subprocess.Popen

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT)

    def send(self, message: EmailMessage | bytes, sender: str = "", to: list[str] | None = None):
        raw = wire(message)
        with self.smtp() as client:
            return client.sendmail(sender or "bounce@example.net", to or [PROGRAM], raw)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daemon(home: Path, *options: str, **extra: str) -> Daemon:
    """`mailflow serve OPTIONS` on a free port, once it listens."""
    port = free_port()
    if "MAILFLOW_PUBLIC_URL" in extra and "MAILFLOW_HTTP_LISTEN" not in extra:
        # The one-click endpoint's default port would be shared by every test's daemon.
        extra["MAILFLOW_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"
    home.parent.mkdir(parents=True, exist_ok=True)
    log = (home.parent / "daemon.log").open("ab")
    process = subprocess.Popen(
        [str(MAILFLOW), "serve", *options],
        env=environment(home, MAILFLOW_LISTEN=f"127.0.0.1:{port}", **extra),
        stdout=log,
        stderr=log,
        cwd=home.parent,
    )
    daemon = Daemon(home=home, port=port, process=process)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                "mailflow serve exited:\n" + (home.parent / "daemon.log").read_text()
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    until(listening, "the daemon to listen", timeout=30)
    return daemon


@dataclass
class InProcess(Home):
    """The program without the daemon (Salmon's RouterConversation). A message said to it
    is refused per recipient as the SMTP daemon's RCPT refuses it, else stored and handled
    in one transaction as the handling process does (`pipeline.receive` with the message
    parsed once, then `pipeline.settle`), and what that queued is delivered to the Maildir
    at once, as the delivery loop would within the second. Its "now" is MAILFLOW_NOW."""

    program: Program
    open: bool = True

    def send(self, message: EmailMessage | bytes, sender: str = "", to: list[str] | None = None):
        """As smtplib's sendmail: the recipients refused; SMTPRecipientsRefused if all were."""
        raw = wire(message)
        refused = {}
        for recipient in to or [PROGRAM]:
            if refusal := recipient_refusal(self.program.config, recipient):
                code, _, text = refusal.partition(" ")
                refused[recipient] = (int(code), text.encode())
        accepted = [recipient for recipient in to or [PROGRAM] if recipient not in refused]
        if not accepted:
            raise smtplib.SMTPRecipientsRefused(refused)
        program = self.program
        head = pipeline.parsed_once(raw)
        with transaction(program.db):
            row_id = pipeline.receive(
                program, raw, sender or "bounce@example.net", accepted, "smtp", head=head
            )
            state, outcome, now = pipeline.settle(program, row_id, head)
        if now:
            pipeline.log_outcome(program, row_id, state, outcome)
        self.deliver()
        return refused

    def deliver(self) -> None:
        bulk.queue_pending(self.program)  # as the delivery loop does before each pass
        outbox.deliver(self.program.db, self.program.config, self.program.now())

    def stop(self) -> None:
        """Deliver what is due and let go of the store; a second stop does nothing."""
        if self.open:
            self.deliver()
            self.program.close()
            self.open = False


def start_in_process(home: Path, *options: str, **extra: str) -> InProcess:
    """The program over `home` with the daemon's settings (MAILFLOW_NOW and `extra`), and,
    unless `--no-scheduler`, the rules run once and delivered, as `serve` does at start.
    The country, language and city tables are built first, as `serve` builds them before
    any mail comes (once a process): the first form's handling budget is not spent on them."""
    serve.warm_up()
    home.parent.mkdir(parents=True, exist_ok=True)
    config = configuration.load(environment(home, **extra), cwd=home.parent)
    running = InProcess(home=home, program=Program(config))
    if "--no-scheduler" not in options:
        serve.run_rules(running.program)
    running.deliver()
    return running


def program_at(home: Path, now: str, **extra: str) -> InProcess:
    """In process at `now`, with COORDINATOR configured."""
    return start_in_process(home, MAILFLOW_NOW=now, MAILFLOW_COORDINATORS=COORDINATOR, **extra)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture(scope="session")
def matched_template(tmp_path_factory) -> Path:
    """Eight people in four partnerships, made once a run by the real CLI; never changed:
    tests get a copy (`matched`), modules extend a copy (`prepared`)."""
    folder = tmp_path_factory.mktemp("matched")
    home = folder / "var"
    assert run_cli(home, "import", str(roster(folder))).returncode == 0
    assert run_cli(home, "match").returncode == 0
    return home


@pytest.fixture
def matched(home: Path, matched_template: Path) -> Path:
    """Eight people in four partnerships (Ann with Chen Jing, Bo with Dee Brown, ...),
    introduced on Monday 2 March 2026 at 09:00; the term ends on 2 July at 09:00."""
    shutil.copytree(matched_template, home)
    return home


@pytest.fixture(scope="module")
def prepared(matched_template: Path, tmp_path_factory) -> Path:
    """The matched home, and Ivo and Jo (Kenya) left waiting by round 2's matching on 3
    March; a coordinator for Kenya and Sweden added by the CLI. Made once a module."""
    folder = tmp_path_factory.mktemp("prepared")
    home = folder / "var"
    shutil.copytree(matched_template, home)
    later = "2026-03-03T09:00:00Z"
    path = roster(folder, WAITING)
    command(home, "import", str(path), MAILFLOW_NOW=later)
    command(home, "match", MAILFLOW_NOW=later)
    command(home, "coordinator", "add", KENYA, "--countries", "KE,Sweden")
    assert status(home, "ivo@lib.example.ke") == "waiting"
    return home


@pytest.fixture
def coordinated(prepared: Path, tmp_path: Path):
    """A copy of the prepared home, in process on 4 March 2026 with COORDINATOR configured
    and one-click unsubscribe offered."""
    home = tmp_path / "var"
    shutil.copytree(prepared, home)
    running = start_in_process(
        home,
        MAILFLOW_NOW="2026-03-04T09:00:00Z",
        MAILFLOW_COORDINATORS=COORDINATOR,
        MAILFLOW_PUBLIC_URL="https://mentoring.example.org",
    )
    yield running
    running.stop()


@pytest.fixture
def program(home: Path):
    running = start_in_process(home)
    yield running
    running.stop()


@pytest.fixture
def daemon(home: Path):
    running = start_daemon(home)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[bytes, str]]:
    """(private PEM, public p=) for the coordinator's domain and for an attacker's."""
    folder = tmp_path_factory.mktemp("keys")
    return {DOMAIN: make_key(folder), EVIL: make_key(folder)}


@pytest.fixture
def dns(keys):
    records = {
        f"{SELECTOR}._domainkey.{domain}": f"v=DKIM1; k=rsa; p={public}"
        for domain, (_, public) in keys.items()
    }
    with DnsStub(records) as stub:
        yield stub


@dataclass
class Person:
    """One correspondent of the program, as a test writes it; `program` is either backend."""

    program: InProcess | Daemon
    address: str
    name: str = ""

    def send(self, message: EmailMessage, to: str | None = None) -> EmailMessage:
        self.program.send(message, sender=self.address, to=[to or str(message["To"])])
        return message

    def say(
        self,
        body: str,
        subject: str = "",
        expect: str | list[str] | None = None,
        to: str = PROGRAM,
        **options,
    ) -> EmailMessage | list[EmailMessage] | None:
        """Send a message; return the one answer (its template checked), or all of them."""
        message = self.send(compose(self.address, body, subject, to=to, name=self.name, **options))
        return self.expect(message, expect)

    def expect(self, message: EmailMessage, expect: str | list[str] | None):
        answers = self.program.mail_for(message["Message-ID"])
        names = [answer["X-Mailflow-Template"] for answer in answers]
        if expect is None:
            assert names == [], f"expected no answer, got {names}"
            return None
        wanted = [expect] if isinstance(expect, str) else expect
        assert names == wanted, f"expected {wanted}, got {names}"
        for answer in answers:
            assert answer["To"].addresses[0].addr_spec == self.address
            assert answer["In-Reply-To"] == message["Message-ID"]
        return answers[0] if isinstance(expect, str) else answers

    def say_and_confirm(
        self, body: str, expect: str, confirm: str = "change-confirm", **options
    ) -> EmailMessage:
        """Say what needs proof of the address, then reply YES to the confirmation mailed to
        it, as the owner of the address does; the answer to that YES."""
        asked = self.say(body, expect=confirm, **options)
        return self.reply(asked, "YES", expect=expect)

    def reply(self, to_answer: EmailMessage, body: str, expect=None, quote: bool = True, **options):
        """Reply as a mail client does: to its Reply-To, threaded, the original quoted below."""
        target = str(to_answer["Reply-To"] or to_answer["From"])
        target = email.utils.parseaddr(target)[1]
        text = body
        if quote:
            original = to_answer.get_content()
            author = email.utils.parseaddr(str(to_answer["From"]))[1]
            text += f"\n\nOn Mon, 2 Mar 2026 at 10:00, {author} wrote:\n" + "\n".join(
                "> " + line for line in original.splitlines()
            )
        message = compose(
            self.address,
            text,
            "Re: " + str(to_answer["Subject"]),
            to=target,
            name=self.name,
            in_reply_to=to_answer["Message-ID"],
            **options,
        )
        self.send(message, to=target)
        return self.expect(message, expect)


def body(message: EmailMessage) -> str:
    return message.get_content()


ANN_FORM = {
    "Name": "Ann Okafor",
    "Country": "USA",
    "Role": "Reference librarian",
    "Library type": "Academic",
    "Career stage": "Early career",
    "Interests": "open access; research data, information literacy",
    "Languages": "English, Spanish",
    "Time zone": "New York",
    "Contact methods": "email, Zoom",
    "Contact frequency": "fortnightly",
    "About me": "I run the research help desk at a university library.",
}


def form_text(answers: dict[str, str] | None = None, **changes: str) -> str:
    """A filled form as a person types it; keyword changes use field keys (time_zone=...)."""
    values = dict(ANN_FORM if answers is None else answers)
    for key, value in changes.items():
        label = key.replace("_", " ").capitalize()
        values[label] = value
    return "\n".join(f"{label}: {value}" for label, value in values.items())


@pytest.fixture
def ann(program: InProcess) -> Person:
    return Person(program, "ann@uni.example.edu", "Ann Okafor")


@pytest.fixture
def bob(program: InProcess) -> Person:
    return Person(program, "bob@library.example.org", "Bob Smith")


# -- the handling process, seen from outside -----------------------------------------------


def handler_pid(home) -> int:
    """The handling process's pid, from the lock file it holds."""
    path = home / "mailflow.db.handling-lock"
    return until(
        lambda: int(text) if (text := path.read_text().strip() if path.exists() else "") else None,
        "the handling process to start",
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A process that exited but was not yet reaped by its parent is a zombie: gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # reaped meanwhile: no such file, or no such process
        return False


def journal(home) -> str:
    return (home.parent / "daemon.log").read_text()
