"""A real SMTP relay on 127.0.0.1 for tests of outgoing mail: aiosmtpd's Controller in a
thread of the test process, keeping every message it accepts (envelope, raw bytes, whether
the session was under TLS, who logged in).

It can play the relays a deployment meets: one that wants STARTTLS and a login (a user
and password made at run time), one that speaks TLS from the first byte (port 465,
RFC 8314) and one that takes only an OAuth 2 access token (AUTH XOAUTH2, as Microsoft
365 and Google Workspace do), one that defers (451) or refuses (550) what it is given,
and one that has the whole message but has not answered yet (`hold`), so that a test can
kill the client at the one moment where a message may be sent twice. It never decides
anything for mailflow and never looks at mailflow's store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import secrets
import ssl
import threading
import warnings
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
    mechanism: str | None = None  # how the session logged in: PLAIN, LOGIN or XOAUTH2
    queued_as: str = ""  # the id in the sink's 250 answer, as Postfix's "queued as 4Xyz"

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
        implicit_tls: bool = False,
        oauth: bool = False,
    ) -> None:
        """`implicit_tls`: TLS from the first byte with the certificate, no STARTTLS.
        `oauth`: a login only with AUTH XOAUTH2 and the access token `sink.token`."""
        assert certificate or not implicit_tls, "implicit TLS needs a certificate"
        self.port = port or free_port()
        self.certificate = certificate
        self.implicit_tls = implicit_tls
        login = login or oauth
        self.user = f"relay-{secrets.token_hex(4)}" if login else None
        self.password = secrets.token_urlsafe(18) if login and not oauth else None
        self.token = secrets.token_urlsafe(32) if oauth else None
        self.tokens_refused = 0  # XOAUTH2 attempts with a wrong user or token
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
            if implicit_tls:
                options.update(ssl_context=context)
            else:
                options.update(tls_context=context, require_starttls=require_starttls)
        # XOAUTH2 is offered by an `oauth` sink alone, and then as its only mechanism.
        options.update(auth_exclude_mechanism=["LOGIN", "PLAIN"] if oauth else ["XOAUTH2"])
        if login:
            # AUTH is offered only after STARTTLS when the sink has a certificate, as a
            # real submission server does; without one it is offered in the clear. Under
            # implicit TLS the whole session is encrypted, which aiosmtpd does not see.
            options.update(
                auth_required=True,
                auth_require_tls=certificate is not None and not implicit_tls,
                authenticator=self._authenticate,
            )
        self.controller = _Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="relay.test", **options
        )

    # -- the test's side -----------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(
        self, password: str | None = None, token_command: str | None = None
    ) -> dict[str, str]:
        """MAILFLOW_SMTP_* (and SSL_CERT_FILE, to trust the sink's certificate) for
        run_cli or start_daemon; `password` replaces the right one. An `oauth` sink needs
        the `token_command` that prints its token (or a wrong one)."""
        env = {"MAILFLOW_SMTP_RELAY": self.address}
        if self.certificate is not None:
            env.update(SSL_CERT_FILE=str(self.certificate.cert))
            if not self.implicit_tls:
                env.update(MAILFLOW_SMTP_STARTTLS="1")
            elif self.port != 465:  # on 465 implicit TLS goes without saying
                env.update(MAILFLOW_SMTP_TLS="implicit")
        if self.token is not None:
            assert token_command, "an oauth sink needs the command that prints its token"
            env.update(MAILFLOW_SMTP_USER=self.user, MAILFLOW_SMTP_OAUTH_COMMAND=token_command)
        elif self.user is not None:
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
        if good:
            session.sink_mechanism = mechanism
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

    async def auth_XOAUTH2(self, server, args: list[str]) -> AuthResult:
        """Google's and Microsoft's XOAUTH2: "user=U^Aauth=Bearer T^A^A" in base64; a
        wrong token is answered with a 334 carrying a JSON error, then 535 after the
        client's empty line, as those providers do."""
        try:
            blob = args[1] if len(args) > 1 else ""
            text = base64.b64decode(blob, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            await server.push("501 5.5.2 Can't decode base64")
            return AuthResult(success=False, handled=True)
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        user, bearer = fields.get("user"), fields.get("auth", "")
        if user == self.user and bearer == f"Bearer {self.token}":
            server.session.sink_mechanism = "XOAUTH2"
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        with self._lock:
            self.tokens_refused += 1
        await server.challenge_auth('{"status":"401","schemes":"bearer","scope":"mail"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

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
        implicit = server.transport.get_extra_info("ssl_object") is not None
        item = Received(
            sender=envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos),
            content=envelope.original_content or envelope.content,
            tls=session.ssl is not None or implicit,
            user=session.auth_data.login.decode() if session.authenticated else None,
            connection=self._connection(session),
            mechanism=getattr(session, "sink_mechanism", None),
            queued_as=secrets.token_hex(5).upper(),
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
        return answer or f"250 2.0.0 OK: queued as {item.queued_as}"


class _Controller(Controller):
    def factory(self):
        # aiosmtpd warns of AUTH without STARTTLS; under implicit TLS it cannot see that
        # the whole session is encrypted, and a login in the clear is a test's choice.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


def trusting(certificate: Certificate | Path) -> ssl.SSLContext:
    """A client context that trusts only this certificate, with hostname checks on."""
    cert = certificate.cert if isinstance(certificate, Certificate) else certificate
    return ssl.create_default_context(cafile=str(cert))
