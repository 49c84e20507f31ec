"""A real mailflow daemon per test: `mailflow serve` in a subprocess on a free 127.0.0.1 port,
a fresh MAILFLOW_HOME, mail sent over real SMTP and answers read from the real Maildir.

Conversation tests read like the exchange they check (Salmon's RouterConversation):
`reply = ann.say("APPLY", expect="application-form")`. "Nothing was sent" is checked
without sleeping: the store says when a message is handled, and its answers are queued in
the same transaction, so after that point the outbox rows for it are final.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import re
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

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
MAILFLOW = Path(sys.executable).parent / "mailflow"
PROGRAM = "program@example.org"
NOW = "2026-03-02T09:00:00Z"
WAIT = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def wire(message: EmailMessage | bytes) -> bytes:
    """The bytes a real client puts on the wire: CRLF line ends (smtplib sends bytes as is)."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return re.sub(rb"\r?\n", b"\r\n", raw)


def outbox_row(path: Path) -> int:
    """The outbox row a Maildir file was written from (its name is STAMP.MROW.mailflow)."""
    return int(path.name.split(".M")[1].split(".")[0])


def until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Daemon:
    home: Path
    port: int
    process: subprocess.Popen

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

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT)

    def send(self, message: EmailMessage | bytes, sender: str = "", to: list[str] | None = None):
        raw = wire(message)
        with self.smtp() as client:
            return client.sendmail(sender or "bounce@example.net", to or [PROGRAM], raw)

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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def matched(home: Path, tmp_path: Path) -> Path:
    """Eight people in four partnerships (Ann with Chen Jing, Bo with Dee Brown, ...),
    introduced on Monday 2 March 2026 at 09:00; the term ends on 2 July at 09:00."""
    from tests.test_match_round import roster

    assert run_cli(home, "import", str(roster(tmp_path))).returncode == 0
    assert run_cli(home, "match").returncode == 0
    return home


@pytest.fixture
def daemon(home: Path):
    running = start_daemon(home)
    yield running
    running.stop()


def compose(
    sender: str,
    body: str,
    subject: str = "",
    to: str = PROGRAM,
    name: str = "",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = email.utils.formataddr((name, sender)) if name else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="client.test")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    return message


@dataclass
class Person:
    """One correspondent of the program, as a test writes it."""

    daemon: Daemon
    address: str
    name: str = ""

    def send(self, message: EmailMessage, to: str | None = None) -> EmailMessage:
        self.daemon.send(message, sender=self.address, to=[to or str(message["To"])])
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
        answers = self.daemon.mail_for(message["Message-ID"])
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
def ann(daemon: Daemon) -> Person:
    return Person(daemon, "ann@uni.example.edu", "Ann Okafor")


@pytest.fixture
def bob(daemon: Daemon) -> Person:
    return Person(daemon, "bob@library.example.org", "Bob Smith")
