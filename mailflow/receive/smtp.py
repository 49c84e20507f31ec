"""The SMTP and LMTP receiver (aiosmtpd): 550 for anyone but the program, 250 only once
stored. `MAILFLOW_LISTEN=host:port` is SMTP; `lmtp:host:port` and `lmtp:unix:/path` are
LMTP (RFC 2033), the way Postfix hands mail to Mailman 3 and Dovecot: the same handler,
spool, limits and refusals, and after DATA one answer per accepted recipient.

Like Mailman 3's runners/lmtp.py it decides per recipient and does nothing else: a
message is written to the spool (`mailflow.spool`, fsynced) and the handling process is
told. The write is done on the event loop, as a bare aiosmtpd server's would be: it
takes a fraction of a millisecond, and handing it to a thread cost more CPU than the
write itself (measured: 1.2 against 0.75 ms of the daemon's CPU a message).

What one client can take is bounded: connections at once (overall and per peer, `Gate`),
recipients a message, and messages a minute per envelope sender, per peer and per From
header (`Throttle`), so a forger varying MAIL FROM gains nothing. Delivery reports to our
own return paths are the exception: they come in bursts after a broadcast, all through
the one mail server in front, and are bounded per return path instead (`ReturnPaths`).
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
import os
import socket
import sqlite3
import ssl
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.controller import BaseThreadedController, Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from mailflow.config import Config
from mailflow.errors import SettingError
from mailflow.receive.spool import Spool
from mailflow.send import verp

log = logging.getLogger(__name__)


def recipient_refusal(config: Config, recipient: str) -> str | None:
    """Why a recipient is refused at RCPT, or None if it is the program or a +TOKEN form."""
    local, _, domain = recipient.strip("<> ").lower().rpartition("@")
    if domain != config.domain:
        return "550 5.7.1 Relaying denied: this server only accepts mail for " + config.address
    if local == config.local_part or local.startswith(config.local_part + "+"):
        return None
    return "550 5.1.1 No such mailbox here"


class Throttle:
    """At most `limit` messages a minute under one key: a flood is answered 451, so the
    sending server slows down and retries, and everyone else is served meanwhile. In
    memory on purpose: it guards this process's event loop, and forgetting it at a
    restart costs nothing."""

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


# A sending server (a provider's outbound relay) carries many people's mail, so one peer
# may send this many times what one sender may.
PEER_SHARE = 10
# One message of ours gets a handful of reports at most (a delay, then a failure, from each
# forwarding hop), and each recipient has their own return path.
REPORTS_PER_RETURN_PATH = 10
MOST_RECIPIENTS = 100  # a message to the program never needs more (RFC 5321 4.5.3.1.8)
TOO_MUCH = "451 4.7.1 Too much mail from this sender just now; please try again later"
HEAD = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def from_key(raw: bytes) -> str | None:
    """The From header's addresses, as one key: what a forger writes there is counted
    whatever envelope or peer they use."""
    ends = [raw.find(blank, 0, 65536) for blank in (b"\r\n\r\n", b"\n\n")]
    head = raw[: min((at for at in ends if at >= 0), default=65536)]
    values = HEAD.parsebytes(head).get_all("From") or []
    addresses = sorted({a.lower() for _, a in email.utils.getaddresses(map(str, values)) if a})
    return " ".join(addresses) or None


def null_sender(address: str | None) -> bool:
    """MAIL FROM:<>, which aiosmtpd passes on as '<>' (RFC 5321 4.5.5: reports and
    other automatic mail)."""
    return not (address or "").strip("<> ")


class ReturnPaths:
    """Which recipients are return paths we gave out (`send/verp.py`): the code looked up in
    the store, so a forged one is not. One lookup by primary key a recipient, through a
    read-only connection of the event loop's own: the daemon never writes to the store and,
    in WAL mode, a reader does not wait for the writers. When the store can't be read, no
    recipient is one, and the mail is counted as any other."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: sqlite3.Connection | None = None

    def known(self, recipient: str) -> bool:
        code = verp.code_of(self.config, recipient)
        if code is None:
            return False
        try:
            if self.db is None:
                uri = Path(self.config.db).resolve().as_uri() + "?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=0.2)
            # fetchall ends the statement, so no read is left open to hold back checkpoints.
            rows = self.db.execute("SELECT 1 FROM bounce_codes WHERE code = ?", [code]).fetchall()
        except sqlite3.Error as error:
            log.warning("return paths can't be read just now (%s): counted as other mail", error)
            self.close()
            return False
        return bool(rows)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


class Handler:
    """`stored()` is called after each message written to the spool. Mail is counted per
    envelope sender, per peer (what a forger can't vary freely) and, after DATA, per From
    header; past any of them, 451.

    Null-sender mail is decided at RCPT, where its recipient is known. A delivery report to
    one of our return paths is counted per return path only: after a broadcast, the mail
    server in front passes on thousands within a minute, all from <> and one peer, and a
    451 would only delay the news that an address is dead. Any other mail from <> is
    counted against its peer, once a message, as mail with a sender is at MAIL: <> is no
    way around the limits."""

    def __init__(self, config: Config, spool: Spool, stored: Callable[[], None]) -> None:
        self.config = config
        self.spool = spool
        self.stored = stored
        self.throttle = Throttle(config.sender_rate)
        self.peers = Throttle(config.sender_rate * PEER_SHARE)
        self.authors = Throttle(config.sender_rate)
        self.reports = Throttle(REPORTS_PER_RETURN_PATH)
        self.return_paths = ReturnPaths(config)

    def _admit(self, peer: str, sender: str) -> str | None:
        """None if the peer and the sender may send one more message now, else the 451."""
        now = time.monotonic()
        if not self.peers.allow(peer, now):
            log.warning("451 to peer %s: more than %d messages a minute", peer, self.peers.limit)
            return TOO_MUCH
        if not self.throttle.allow(sender, now):
            log.warning("451 to %s: more than %d messages a minute", sender, self.throttle.limit)
            return TOO_MUCH
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # How many of the recipients are reports to our return paths: set for each
        # transaction here, where every one begins.
        envelope.reports = 0
        if not null_sender(address):
            refusal = self._admit(_peer(session), address.lower())
            if refusal:
                return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MOST_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        refusal = recipient_refusal(self.config, address)
        if refusal:
            log.info("refused RCPT %s from %s", address, session.peer)
            return refusal
        if null_sender(envelope.mail_from):
            refusal = self._null_recipient(session, envelope, address)
            if refusal:
                return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _null_recipient(self, session, envelope, address: str) -> str | None:
        if self.return_paths.known(address):
            path = address.strip("<> ").lower()
            if not self.reports.allow(path, time.monotonic()):
                log.warning(
                    "451 to reports for %s: more than %d a minute", path, self.reports.limit
                )
                return TOO_MUCH
            envelope.reports += 1
            return None
        if len(envelope.rcpt_tos) > envelope.reports:
            return None  # this message is counted already, at an earlier recipient
        peer = _peer(session)
        return self._admit(peer, f"<> from {peer}")

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        # Reports alone are not counted by their From either: a storm's reports come from a
        # few MAILER-DAEMONs.
        reports_only = null_sender(envelope.mail_from) and envelope.reports == len(
            envelope.rcpt_tos
        )
        author = None if reports_only else from_key(raw)
        if author is not None and not self.authors.allow(author, time.monotonic()):
            log.warning(
                "451 after DATA: more than %d messages a minute from one From", self.authors.limit
            )
            return TOO_MUCH
        try:
            name = self.spool.write(
                raw,
                envelope.mail_from,
                list(envelope.rcpt_tos),
                self.config.clock(),
                via="lmtp" if isinstance(server, LMTP) else "smtp",
            )
        except Exception:
            log.exception("could not store a message from %s", envelope.mail_from)
            return "451 4.3.0 Could not store the message; please try again later"
        self.stored()  # stored: the 250 is safe, and the handling process is told
        return f"250 2.0.0 OK: queued as {name}"


def tls_context(config: Config) -> ssl.SSLContext | None:
    """STARTTLS (RFC 3207) with MAILFLOW_TLS_CERT and MAILFLOW_TLS_KEY; a wrong file stops
    the start with the reason, not the first client's handshake."""
    if not config.tls_cert or not config.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise SettingError(
            f"MAILFLOW_TLS_CERT/MAILFLOW_TLS_KEY ({config.tls_cert}, {config.tls_key}) can't be"
            f" used: {error}"
        ) from error
    return context


# RFC 5321 4.5.3.1.6 allows 1,000 octets a line, and aiosmtpd refuses more with a 500. Real
# mail breaks it: Amazon SES and GMX delivery reports carry one long line, and refusing a
# bounce loses it (its sender never bounces a bounce). Postfix folds such lines; we take
# them whole, up to the size limit, and parsing copes.
LONGEST_LINE = 1_000_000


def _peer(session) -> str:
    return str(session.peer[0]) if session.peer else "?"


class Gate:
    """Connections open at once, overall and per peer: each may buffer a message of up to
    MAILFLOW_MAX_SIZE, so their number bounds the daemon's memory. Past either, 421."""

    MOST = 50
    # Behind the operator's guide's Postfix every connection comes from one peer, and
    # Postfix opens up to default_destination_concurrency_limit (20) at once: a cap below
    # it would answer its own mail 421 and can make Postfix suspend the destination.
    MOST_PER_PEER = 20

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def enter(self, peer: str) -> str | None:
        """None when admitted (then `leave` at the end), else the refusal."""
        if sum(self.open.values()) >= self.MOST:
            return "421 4.7.0 Too many connections just now; please try again later"
        if self.open.get(peer, 0) >= self.MOST_PER_PEER:
            return "421 4.7.0 Too many connections from your address; please try again later"
        self.open[peer] = self.open.get(peer, 0) + 1
        return None

    def leave(self, peer: str) -> None:
        left = self.open.pop(peer, 1) - 1
        if left > 0:
            self.open[peer] = left


class _Server(SMTP):
    line_length_limit = LONGEST_LINE

    def __init__(self, handler, *, gate: Gate, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.gate = gate
        self.admitted: str | None = None
        self.refused = False

    def connection_made(self, transport) -> None:
        if self.transport is None:  # not the TLS layer of a STARTTLS
            peername = transport.get_extra_info("peername")
            peer = str(peername[0]) if peername else "?"
            refusal = self.gate.enter(peer)
            if refusal is not None:
                log.warning("%s: refused a connection from %s", refusal[:3], peer)
                self.refused = True
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self.admitted = peer
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self.admitted is not None:
            self.gate.leave(self.admitted)
            self.admitted = None
        if not self.refused:
            super().connection_lost(error)

    def eof_received(self):
        if self.refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)


class _LMTPServer(_Server, LMTP):
    """LMTP (RFC 2033): LHLO for EHLO, and after DATA one reply for each recipient that
    RCPT accepted, in order (4.2), where SMTP gives one for the message. The message is
    stored once for all of them (one spool file), so each gets the same reply; so do
    aiosmtpd's own replies after DATA (552 for a message over MAILFLOW_MAX_SIZE), which a
    client such as Postfix's lmtp(8) would otherwise wait for until it times out."""

    def __init__(self, handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.replies_due = 0  # set once DATA's 354 is out: the next reply is everyone's

    async def push(self, status) -> None:
        if isinstance(status, str) and self.replies_due:
            status = "\r\n".join([status] * self.replies_due)
            self.replies_due = 0
        elif isinstance(status, str) and status.startswith("354") and self.envelope:
            self.replies_due = len(self.envelope.rcpt_tos)
        await super().push(status)


class _Listening:
    """What the TCP and the unix-socket controllers share: one Gate, and the server class
    the setting names."""

    def __init__(self, *args, server_class: type[_Server], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = server_class
        self.gate = Gate()  # used on the event loop's thread only

    def factory(self) -> SMTP:
        return self.server_class(self.handler, gate=self.gate, **self.SMTP_kwargs)


class _Controller(_Listening, Controller):
    pass


class _UnixController(_Listening, UnixSocketController):
    """LMTP on a unix socket bound before the loop starts (so a wrong folder is a setting's
    one-line error, not a timeout), and removed when the daemon stops."""

    def __init__(self, *args, bound: socket.socket, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bound = bound
        self.inode = os.stat(self.unix_socket).st_ino

    def _create_server(self):
        return self.loop.create_unix_server(self._factory_invoker, sock=self.bound)

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert)
        try:
            if os.stat(self.unix_socket).st_ino == self.inode:  # not a successor's socket
                os.unlink(self.unix_socket)
        except FileNotFoundError:
            pass


SOCKET_MODE = 0o660  # its owner and its group (Postfix's, through a setgid folder), no one else


def unix_socket(path: Path) -> socket.socket:
    """A listening unix socket at `path`, mode 0660 (rw-rw----). Never wider, even for a
    moment: the mode is set on the socket before bind, so the file is made with it (the
    umask can only narrow it), then on the file. A socket file left by a daemon that
    crashed is replaced; one another daemon still answers on is not."""
    name = "MAILFLOW_LISTEN"
    try:
        found = path.lstat()
    except FileNotFoundError:
        found = None
    except OSError as error:
        raise SettingError(f"{name}: can't look at {path}: {error}") from error
    if found is not None:
        if not stat.S_ISSOCK(found.st_mode):
            raise SettingError(f"{name}: {path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                path.unlink()  # nobody listens: left by a crash
            except OSError as error:
                raise SettingError(f"{name}: can't use {path}: {error}") from error
            else:
                raise SettingError(f"{name}: another daemon is listening on {path}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(listener.fileno(), SOCKET_MODE)  # Linux creates the file with this mode
        listener.bind(str(path))
        os.chmod(path, SOCKET_MODE)  # a umask of 077 would have left the group out
    except OSError as error:
        listener.close()
        raise SettingError(f"{name}: can't listen on {path}: {error}") from error
    return listener


def controller(config: Config, spool: Spool, stored: Callable[[], None]) -> BaseThreadedController:
    """The receiver MAILFLOW_LISTEN names, not yet started (a unix socket is bound already)."""
    options = dict(
        data_size_limit=config.max_size,
        server_hostname=config.domain,
        tls_context=tls_context(config),
    )
    handler = Handler(config, spool, stored)
    if config.listen_protocol == "smtp":
        return _Controller(
            handler,
            hostname=config.listen_host,
            port=config.listen_port,
            ident="mailflow ESMTP",
            server_class=_Server,
            **options,
        )
    options.update(ident="mailflow LMTP", server_class=_LMTPServer)
    if config.listen_socket is None:
        return _Controller(handler, hostname=config.listen_host, port=config.listen_port, **options)
    bound = unix_socket(config.listen_socket)
    return _UnixController(handler, unix_socket=config.listen_socket, bound=bound, **options)
