"""The IMAP poller (imapclient): a hosted mailbox read like the SMTP daemon's socket.

Each new message is stored and handled through the same pipeline as SMTP, on the same
worker thread, then moved to MAILFLOW_IMAP_DONE (or only marked \\Seen when that is
empty). Every UID is recorded with its folder's UIDVALIDITY before the message is moved,
so a crash in between moves it at the next pass instead of handling it again; a recreated
folder (new UIDVALIDITY) is read again from the start, and the pipeline's Message-ID check
keeps what was handled from acting twice. What it cannot handle (too large, unreadable)
stays where it is, flagged, with one log line. It never deletes a message it has not
stored, and it never answers anything itself.

It logs in with the URL's password, or, when MAILFLOW_IMAP_OAUTH_COMMAND is set, with an
OAuth 2 access token over XOAUTH2 (Microsoft 365 and Google Workspace): the command runs
at each connection, and a failing command or a refused token is a refused login, tried
again with backoff.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailflow import oauth, pipeline
from mailflow.app import bulk
from mailflow.config import Config
from mailflow.errors import SettingError
from mailflow.program import Program
from mailflow.receive import envelope
from mailflow.receive.worker import Worker
from mailflow.send import outbox
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

TIMEOUT = 60.0  # seconds for one IMAP answer before the connection counts as lost
BACKOFF_FIRST, BACKOFF_MOST = 1.0, 300.0
IDLE_MOST = 25 * 60.0  # seconds one IDLE lasts at most
FETCH_BATCH = 50  # messages whose sizes are asked at once
DONE_STATES = frozenset({"handled", "ignored", "duplicate"})
SEEN, FLAGGED = b"\\Seen", b"\\Flagged"


class Unreachable(ConnectionError):
    """The mailbox can't be reached or logged in to (the reason, without the password)."""


@dataclass(frozen=True)
class Mailbox:
    secure: bool
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str

    @property
    def account(self) -> str:
        """The key of this folder's reading state: the same mailbox under any password."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"

    def __str__(self) -> str:
        scheme = "imaps" if self.secure else "imap"
        return f"{scheme}://{urllib.parse.quote(self.user)}@{self.host}:{self.port}/{self.folder}"


def mailbox(url: str, token: bool = False) -> Mailbox:
    """MAILFLOW_IMAP_URL read; SettingError with what is wrong (never echoing the password).
    `token`: the login is an access token (MAILFLOW_IMAP_OAUTH_COMMAND), so the URL has
    a user and no password."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("imap", "imaps"):
        raise SettingError("MAILFLOW_IMAP_URL must start with imap:// or imaps://")
    try:
        port = parts.port
    except ValueError:
        raise SettingError("MAILFLOW_IMAP_URL has a port that is not a number") from None
    if token and parts.password is not None:
        raise SettingError(
            "MAILFLOW_IMAP_URL has a password, but MAILFLOW_IMAP_OAUTH_COMMAND is set:"
            " give imap://user@host[:port]/FOLDER (the token is the login)"
        )
    if not parts.hostname or not parts.username or (parts.password is None and not token):
        raise SettingError("MAILFLOW_IMAP_URL must be imap://user:password@host[:port]/FOLDER")
    return Mailbox(
        secure=parts.scheme == "imaps",
        host=parts.hostname,
        port=port or (993 if parts.scheme == "imaps" else 143),
        user=urllib.parse.unquote(parts.username),
        password=urllib.parse.unquote(parts.password or ""),
        folder=urllib.parse.unquote(parts.path.lstrip("/")) or "INBOX",
    )


@dataclass
class Report:
    """One pass: a line per message as `mailflow ingest` prints them, and the counts."""

    lines: list[str] = field(default_factory=list)
    handled: int = 0
    left: int = 0


# --- on the worker thread: the store -------------------------------------------------


def _mark(program: Program, account: str) -> tuple[int, int] | None:
    row = program.db.execute(
        "SELECT uidvalidity, last_uid FROM imap_mailboxes WHERE account = ?", [account]
    ).fetchone()
    return (row[0], row[1]) if row else None


def _set_mark(program: Program, account: str, uidvalidity: int, last_uid: int) -> None:
    with transaction(program.db):
        program.db.execute(
            "INSERT INTO imap_mailboxes (account, uidvalidity, last_uid, checked_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET"
            " uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid,"
            " checked_at = excluded.checked_at",
            [account, uidvalidity, last_uid, iso(program.now())],
        )


def _known(
    program: Program, account: str, uidvalidity: int, uid: int
) -> tuple[str, int | None] | None:
    """What became of a UID seen before (its message's state now, or why it was left), and
    the message it was stored as."""
    row = program.db.execute(
        "SELECT i.outcome, m.state, m.id FROM imap_messages i LEFT JOIN messages m"
        " ON m.id = i.message_row WHERE i.account = ? AND i.uidvalidity = ? AND i.uid = ?",
        [account, uidvalidity, uid],
    ).fetchone()
    if row is None:
        return None
    return row[1] or row[0], row[2]


def _record(
    program: Program, account: str, uidvalidity: int, uid: int, row: int | None, outcome: str
) -> None:
    program.db.execute(
        "INSERT INTO imap_messages (account, uidvalidity, uid, message_row, outcome, seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, uidvalidity, uid) DO UPDATE SET"
        " outcome = excluded.outcome",
        [account, uidvalidity, uid, row, outcome, iso(program.now())],
    )


def _store(program: Program, raw: bytes, account: str, uidvalidity: int, uid: int) -> int:
    """The raw message and its UID in one commit: stored once, whatever happens next."""
    sender, recipients = envelope.read(program.config, raw)
    with transaction(program.db):
        row = pipeline.receive(program, raw, sender, recipients, "imap")
        _record(program, account, uidvalidity, uid, row, "received")
    return row


def _left(program: Program, account: str, uidvalidity: int, uid: int, reason: str) -> None:
    with transaction(program.db):
        _record(program, account, uidvalidity, uid, None, "left: " + reason)


def _settle(program: Program, row: int, account: str, uidvalidity: int, uid: int):
    """(state, outcome) of the handled message, kept with its UID too: it outlives the
    message when its sender has their data deleted."""
    state, outcome = program.db.execute(
        "SELECT state, coalesce(outcome, '') FROM messages WHERE id = ?", [row]
    ).fetchone()
    with transaction(program.db):
        _record(program, account, uidvalidity, uid, row, state)
    return state, outcome


def _deliver(program: Program) -> None:
    bulk.queue_pending(program)
    outbox.deliver(program.db, program.config, program.now())


# --- the connection -------------------------------------------------------------------


class Poller:
    """Reads one folder. `deliver`: send the outbox after each pass that handled mail (the
    poller alone); under `serve` the daemon's delivery loop does it, woken by the worker."""

    def __init__(
        self,
        config: Config,
        worker: Worker,
        *,
        stop: threading.Event | None = None,
        deliver: bool = True,
    ) -> None:
        if not config.imap_url:
            raise SettingError("MAILFLOW_IMAP_URL is not set")
        self.config = config
        self.box = mailbox(config.imap_url, token=bool(config.imap_oauth_command))
        self.worker = worker
        self.stop = stop or threading.Event()
        self.deliver = deliver

    def connect(self) -> IMAPClient:
        box = self.box
        token = self._token() if self.config.imap_oauth_command else None
        try:
            client = IMAPClient(
                box.host,
                box.port,
                ssl=box.secure,
                ssl_context=ssl.create_default_context() if box.secure else None,
                timeout=TIMEOUT,
            )
        except (OSError, IMAPClientError) as error:
            raise Unreachable(f"cannot connect to {box}: {error}") from error
        try:
            if token is not None:
                client.oauth2_login(box.user, token)
            else:
                client.login(box.user, box.password)
            client.select_folder(box.folder)
            done = self.config.imap_done
            if done and not client.folder_exists(done):
                client.create_folder(done)
                log.info("imap: created the folder %s for handled mail", done)
        except LoginError as error:
            _close(client)
            raise Unreachable(f"cannot log in to {box}: {_text(error)}") from error
        except (OSError, IMAPClientError) as error:
            _close(client)
            raise Unreachable(f"{box}: {_text(error)}") from error
        return client

    def _token(self) -> str:
        try:
            return oauth.access_token(self.config.imap_oauth_command, "MAILFLOW_IMAP_OAUTH_COMMAND")
        except oauth.TokenError as error:
            raise Unreachable(f"no access token for {self.box}: {error}") from None

    def once(self) -> Report:
        """One pass over a fresh connection (`poll-imap --once`)."""
        client = self.connect()
        try:
            return self.sweep(client)
        except IMAPClientError as error:  # a refused MOVE, say: one line, not a traceback
            raise Unreachable(f"{self.box}: {_text(error)}") from error
        finally:
            _close(client)

    def sweep(self, client: IMAPClient) -> Report:
        """Store, handle and move every message not seen before; the report of the pass."""
        box, report = self.box, Report()
        selected = client.select_folder(box.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        mark = self.worker.run(_mark, box.account)
        last_uid = 0
        if mark is not None and mark[0] == uidvalidity:
            last_uid = mark[1]
        elif mark is not None:
            log.warning(
                "imap: %s has a new UIDVALIDITY (%d, was %d): reading it again from the start;"
                " what was handled before is recognised by its Message-ID",
                box,
                uidvalidity,
                mark[0],
            )
        # "UID n:*" always matches the newest message, even below n (RFC 3501 6.4.8).
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        mark_to, clean = last_uid, True
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            sizes = client.fetch(batch, ["RFC822.SIZE"])
            done: list[int] = []
            for uid in batch:
                if uid not in sizes:
                    continue  # expunged meanwhile by another client
                finished = self._one(client, uid, uidvalidity, sizes[uid], report, done)
                clean = clean and finished
                if clean:
                    mark_to = uid
            self._put_away(client, done)
        if mark_to != last_uid or mark is None or mark[0] != uidvalidity:
            self.worker.run(_set_mark, box.account, uidvalidity, mark_to)
        if report.handled and self.deliver:
            self.worker.run(_deliver)
        self.worker.beat("imap")  # the pass finished: `mailflow status` reads when
        return report

    def _one(
        self, client: IMAPClient, uid: int, uidvalidity: int, item: dict, report: Report, done
    ) -> bool:
        """Handle one UID; False when it must be tried again at the next pass."""
        box, folder = self.box, self.box.folder
        known = self.worker.run(_known, box.account, uidvalidity, uid)
        if known is not None:
            state, row = known
            if state in DONE_STATES:
                done.append(uid)  # handled before the last pass could move it
                return True
            if state != "received" or row is None:
                return True  # left (flagged) before
            # Stored, but its handling failed: once more, below.
        else:
            size = int(item.get(b"RFC822.SIZE", 0))
            if size > self.config.max_size:
                reason = f"larger than MAILFLOW_MAX_SIZE ({size} > {self.config.max_size} bytes)"
                self._leave(client, uid, uidvalidity, reason, report)
                return True
            row = self._store(client, uid, uidvalidity, report)
            if row is None:
                return False
        self.worker.executor.submit(self.worker.process, row).result()
        state, outcome = self.worker.run(_settle, row, box.account, uidvalidity, uid)
        if state in DONE_STATES:
            report.lines.append(f"imap uid {uid}: message {row}: {outcome or state}")
            done.append(uid)
            report.handled += 1
            return True
        if state == "quarantined":
            client.add_flags([uid], [FLAGGED])
            log.warning("imap uid %d left in %s: quarantined: %s", uid, folder, outcome)
            report.lines.append(f"imap uid {uid}: left in {folder}: message {row}: {outcome}")
            report.left += 1
            return True
        # Still 'received' (handling failed): the next pass or the daemon's sweep tries again.
        report.lines.append(f"imap uid {uid}: left in {folder}: message {row} not handled yet")
        report.left += 1
        return False

    def _store(self, client: IMAPClient, uid: int, uidvalidity: int, report: Report) -> int | None:
        """Fetch and store one message (without setting \\Seen); None when it must wait."""
        folder = self.box.folder
        raw = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
        if raw is None:
            return None  # expunged meanwhile
        try:
            return self.worker.run(_store, raw, self.box.account, uidvalidity, uid)
        except Exception as error:  # the store failed: left for the next pass
            log.exception("imap uid %d in %s could not be stored; trying again later", uid, folder)
            report.lines.append(f"imap uid {uid}: left in {folder}: not stored: {error}")
            report.left += 1
            return None

    def _leave(self, client, uid: int, uidvalidity: int, reason: str, report: Report) -> None:
        client.add_flags([uid], [FLAGGED])
        self.worker.run(_left, self.box.account, uidvalidity, uid, reason)
        log.warning("imap uid %d left in %s: %s", uid, self.box.folder, reason)
        report.lines.append(f"imap uid {uid}: left in {self.box.folder}: {reason}")
        report.left += 1

    def _put_away(self, client: IMAPClient, uids: list[int]) -> None:
        target = self.config.imap_done
        if not uids:
            return
        if not target:
            client.add_flags(uids, [SEEN])
        elif client.has_capability("MOVE"):
            client.move(uids, target)
        else:
            client.copy(uids, target)
            client.delete_messages(uids)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()

    def run(self) -> None:
        """Until stopped: a pass, then IDLE (or a plain wait) until mail comes or the poll
        interval ends; a lost connection is reopened with backoff."""
        backoff = BACKOFF_FIRST
        while not self.stop.is_set():
            client = None
            try:
                client = self.connect()
                log.info("imap: reading %s", self.box)
                backoff = BACKOFF_FIRST
                while not self.stop.is_set():
                    for line in self.sweep(client).lines:
                        log.info(line)
                    self._wait(client)
            except (OSError, IMAPClientError) as error:  # Unreachable too
                if self.stop.is_set():
                    break
                log.warning(
                    "imap: connection lost (%s); reconnecting in %d s", _text(error), backoff
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MOST)
            finally:
                if client is not None:
                    _close(client)

    def _wait(self, client: IMAPClient) -> None:
        """Until new mail, the poll interval, or the stop; raises when the server went away."""
        interval = self.config.imap_poll
        if not client.has_capability("IDLE"):
            self.stop.wait(interval)
            return
        # RFC 2177: a server may drop an IDLE older than 30 minutes; renew it before.
        deadline = time.monotonic() + min(interval, IDLE_MOST)
        client.idle()
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                if any(_is_bye(r) for r in responses):
                    raise Unreachable("the server closed the connection")
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    break
                # imapclient returns nothing at once on EOF: DONE and NOOP below tell.
                if not responses and time.monotonic() - began < 0.5:
                    break
        finally:
            client.idle_done()
        client.noop()


def _is_bye(response) -> bool:
    return bool(response) and response[0] == b"BYE"


def _text(error: Exception) -> str:
    text = error.args[0] if error.args else type(error).__name__
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or type(error).__name__


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection is being dropped either way
        try:
            client.shutdown()
        except Exception:
            log.debug("imap: connection already closed")
