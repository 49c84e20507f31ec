"""A real SMTP relay on 127.0.0.1 for tests of outgoing mail: aiosmtpd's Controller in a
thread of the test process, keeping every message it accepts (envelope, raw bytes, whether
the session was under TLS, who logged in).

It can play the relays a deployment meets: one that wants STARTTLS and a login (a user
and password made at run time), one that defers (451) or refuses (550) what it is given,
and one that has the whole message but has not answered yet (`hold`), so that a test can
kill the client at the one moment where a message may be sent twice. It never decides
anything for mailflow and never looks at mailflow's store.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import secrets
import ssl
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.certs import Certificate
from tests.conftest import free_port

HOLD_MOST = 60.0  # seconds a held message waits for its release, so no thread outlives a test


@dataclass(frozen=True)
class Received:
    """One message the sink accepted (or, when held, had whole before any answer)."""

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    tls: bool
    user: str | None  # the login of the session, None when it did not authenticate
    connection: int  # 1 for the sink's first connection, 2 for the next, ...

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def message_id(self) -> str | None:
        return self.message["Message-ID"]


@dataclass
class Hold:
    """The Nth DATA of the sink: `arrived` is set once its whole message is in, and the
    answer (250) waits until the test sets `release`."""

    number: int
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class RelaySink:
    """`with RelaySink(...) as sink:` a relay listening on `sink.address` until the block
    ends; `sink.settings()` is the environment that points mailflow at it."""

    def __init__(
        self,
        port: int | None = None,
        *,
        certificate: Certificate | None = None,
        require_starttls: bool = False,
        login: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.certificate = certificate
        self.user = f"relay-{secrets.token_hex(4)}" if login else None
        self.password = secrets.token_urlsafe(18) if login else None
        self.received: list[Received] = []
        self.recipients_tried: list[str] = []  # every RCPT TO, accepted or not
        self.data_seen = 0  # DATA commands whose message arrived whole, whatever the answer
        self._connections = 0
        self._data_answers: deque[str] = deque()
        self._drops = 0
        self._refused: dict[str, str] = {}
        self._holds: dict[int, Hold] = {}
        self._lock = threading.Lock()
        options: dict = {}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificate.cert, certificate.key)
            options.update(tls_context=context, require_starttls=require_starttls)
        if login:
            # AUTH is offered only after STARTTLS when the sink has a certificate, as a
            # real submission server does; without one it is offered in the clear.
            options.update(
                auth_required=True,
                auth_require_tls=certificate is not None,
                authenticator=self._authenticate,
            )
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="relay.test", **options
        )

    # -- the test's side -----------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, password: str | None = None) -> dict[str, str]:
        """MAILFLOW_SMTP_* (and SSL_CERT_FILE, to trust the sink's certificate) for
        run_cli or start_daemon; `password` replaces the right one."""
        env = {"MAILFLOW_SMTP_RELAY": self.address}
        if self.certificate is not None:
            env.update(MAILFLOW_SMTP_STARTTLS="1", SSL_CERT_FILE=str(self.certificate.cert))
        if self.user is not None:
            env.update(
                MAILFLOW_SMTP_USER=self.user, MAILFLOW_SMTP_PASSWORD=password or self.password
            )
        return env

    def answer_data(self, reply: str, count: int = 1) -> None:
        """Answer the next `count` messages with `reply` (e.g. 451 or 554) after their DATA."""
        with self._lock:
            self._data_answers.extend([reply] * count)

    def drop_after_data(self, count: int = 1) -> None:
        """Close the connection without a word after the next `count` messages are in whole
        (the relay has them; the client never learns it)."""
        with self._lock:
            self._drops += count

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        with self._lock:
            self._refused[address.lower()] = reply

    def accept_recipient(self, address: str) -> None:
        with self._lock:
            self._refused.pop(address.lower(), None)

    def hold(self, number: int) -> Hold:
        """Hold the answer to the sink's `number`th DATA (counted from 1 since it started)."""
        with self._lock:
            self._holds[number] = Hold(number)
            return self._holds[number]

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(item.message_id for item in self.received)

    def connections(self) -> int:
        """How many connections got as far as a recipient."""
        with self._lock:
            return self._connections

    def start(self) -> RelaySink:
        self.controller.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for hold in self._holds.values():
                hold.release.set()
        self.controller.stop()

    def __enter__(self) -> RelaySink:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # -- aiosmtpd's side (its event loop thread) ------------------------------------------

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        good = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

    def _connection(self, session) -> int:
        with self._lock:
            if not hasattr(session, "sink_connection"):
                self._connections += 1
                session.sink_connection = self._connections
            return session.sink_connection

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self._connection(session)
        with self._lock:
            self.recipients_tried.append(address)
            refusal = self._refused.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        item = Received(
            sender=envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos),
            content=envelope.original_content or envelope.content,
            tls=session.ssl is not None,
            user=session.auth_data.login.decode() if session.authenticated else None,
            connection=self._connection(session),
        )
        with self._lock:
            self.data_seen += 1
            hold = self._holds.get(self.data_seen)
            answer = self._data_answers.popleft() if self._data_answers else None
            drop = self._drops > 0 and answer is None
            if drop:
                self._drops -= 1
            if hold is not None or drop or answer is None:
                self.received.append(item)  # the relay has it whole: it may deliver it
        if hold is not None:
            hold.arrived.set()
            # Waited for in a thread, so the sink keeps serving other connections; when the
            # client dies meanwhile, aiosmtpd cancels this handler and no answer is written.
            await asyncio.get_running_loop().run_in_executor(None, hold.release.wait, HOLD_MOST)
        if drop:
            server.transport.abort()
            await asyncio.sleep(HOLD_MOST)  # cancelled by aiosmtpd as the connection goes
        return answer or "250 2.0.0 OK: queued"


def trusting(certificate: Certificate | Path) -> ssl.SSLContext:
    """A client context that trusts only this certificate, with hostname checks on."""
    cert = certificate.cert if isinstance(certificate, Certificate) else certificate
    return ssl.create_default_context(cafile=str(cert))
