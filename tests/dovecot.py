"""A throwaway Dovecot (Debian's dovecot-imapd 2.3) for the IMAP tests: its own config,
state and mail under a temporary folder, listening only on 127.0.0.1 on a free port, with
users whose passwords are made at run time.

As root (CI), login and mail processes must not run as root: they run as the package's
`dovenull` and `dovecot` users and the mail belongs to `nobody`. As another user, every
process runs as that user (Dovecot's rootless mode). Test mail goes in with a plain IMAP
APPEND (imaplib), so the poller under test meets it exactly as a provider's mailbox holds
it; the helpers here never touch the Maildir files behind Dovecot's back.

Given an `Introspection` endpoint, it also takes OAuth 2 access tokens (XOAUTH2 and
OAUTHBEARER) through Dovecot's oauth2 password database, which asks that endpoint
(RFC 7662 token introspection, started by the test on 127.0.0.1) whether a token is
active and whose it is, as it would ask Microsoft's or Google's.
"""

from __future__ import annotations

import contextlib
import grp
import http.server
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote

from tests.certs import Certificate
from tests.conftest import WAIT, free_port


def executable() -> str | None:
    """The dovecot binary, also when /usr/sbin is not on a user's PATH."""
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


@dataclass(frozen=True)
class Account:
    """One mailbox user of a running Dovecot, and a client for it (imaplib)."""

    server: Dovecot
    name: str
    password: str

    def url(self, folder: str = "INBOX", password: str | None = None) -> str:
        """MAILFLOW_IMAP_URL for this account; user and password percent-encoded."""
        scheme = "imaps" if self.server.tls else "imap"
        secret = self.password if password is None else password
        userinfo = f"{quote(self.name, safe='')}:{quote(secret, safe='')}"
        return f"{scheme}://{userinfo}@127.0.0.1:{self.server.port}/{quote(folder)}"

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        if self.server.tls:
            context = ssl.create_default_context(cafile=str(self.server.tls.cert))
            imap = imaplib.IMAP4_SSL("127.0.0.1", self.server.port, ssl_context=context)
        else:
            imap = imaplib.IMAP4("127.0.0.1", self.server.port, timeout=WAIT)
        try:
            _ok(imap.login(self.name, self.password))
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def append(self, folder: str, raw: bytes, flags: str = "") -> int:
        """Put one message in the folder (created when missing); its UID."""
        with self.client() as imap:
            if folder not in self._folders(imap):
                _ok(imap.create(_quoted(folder)))
            typ, data = imap.append(_quoted(folder), flags or None, None, raw)
            _ok((typ, data))
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found, f"no APPENDUID in {data!r}"
            return int(found.group(1))

    def list(self, folder: str) -> list[bytes]:
        """The raw messages in the folder, in UID order, read without setting \\Seen."""
        with self.client() as imap:
            if not self._select(imap, folder):
                return []
            messages = []
            for uid in self._uids(imap):
                typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
                _ok((typ, data))
                messages.append(next(part[1] for part in data if isinstance(part, tuple)))
            return messages

    def message_ids(self, folder: str) -> list[str]:
        """The Message-ID header of every message in the folder, in UID order."""
        found = (re.search(rb"(?im)^Message-ID:\s*(\S+)", raw) for raw in self.list(folder))
        return [match.group(1).decode() if match else "" for match in found]

    def uids(self, folder: str) -> list[int]:
        with self.client() as imap:
            return self._uids(imap) if self._select(imap, folder) else []

    def flags(self, folder: str) -> dict[int, set[str]]:
        """Each UID's flags, e.g. {3: {"\\Seen", "\\Flagged"}}."""
        with self.client() as imap:
            if not self._select(imap, folder) or not self._uids(imap):
                return {}
            typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
            _ok((typ, data))
            result = {}
            for line in data:
                found = re.search(
                    rb"UID (\d+).*FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\).*UID (\d+)", line
                )
                assert found, f"unexpected FETCH answer {line!r}"
                uid = found.group(1) or found.group(4)
                names = found.group(2) if found.group(1) else found.group(3)
                result[int(uid)] = set(names.decode().split())
            return result

    def uidvalidity(self, folder: str) -> int:
        with self.client() as imap:
            typ, data = imap.status(_quoted(folder), "(UIDVALIDITY)")
            _ok((typ, data))
            return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))

    def folders(self) -> list[str]:
        with self.client() as imap:
            return self._folders(imap)

    def create(self, folder: str) -> None:
        with self.client() as imap:
            _ok(imap.create(_quoted(folder)))

    def delete(self, folder: str) -> None:
        with self.client() as imap:
            _ok(imap.delete(_quoted(folder)))

    @staticmethod
    def _folders(imap: imaplib.IMAP4) -> list[str]:
        typ, data = imap.list()
        _ok((typ, data))
        names = []
        for line in data:
            found = re.match(rb'\([^)]*\) (?:"[^"]*"|NIL) (.+)$', line)
            assert found, f"unexpected LIST answer {line!r}"
            names.append(found.group(1).decode().strip('"'))
        return names

    @staticmethod
    def _select(imap: imaplib.IMAP4, folder: str) -> bool:
        typ, _ = imap.select(_quoted(folder), readonly=True)
        return typ == "OK"

    @staticmethod
    def _uids(imap: imaplib.IMAP4) -> list[int]:
        typ, data = imap.uid("SEARCH", "ALL")
        _ok((typ, data))
        return [int(uid) for uid in data[0].split()]


class Introspection:
    """A token-introspection endpoint (RFC 7662) on 127.0.0.1, as an identity provider
    runs one: a POSTed `token=` it issued and did not revoke is {"active": true,
    "username": ...}; any other is {"active": false}. `asked` counts the questions."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.asked = 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                answer = endpoint._introspect((form.get("token") or [""])[0])
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:  # the test's output stays quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/introspect"

    def issue(self, user: str) -> str:
        """A new access token for `user`."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = user
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _introspect(self, token: str) -> dict:
        with self._lock:
            self.asked += 1
            user = self._tokens.get(token)
        return {"active": True, "username": user} if user else {"active": False}

    def start(self) -> Introspection:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dovecot:
    """`dovecot -F -c CONFIG` as a subprocess; stop() and start() keep the same port.
    With `introspection`, logins by access token (XOAUTH2, OAUTHBEARER) as well."""

    def __init__(self, tls: Certificate | None = None, introspection: Introspection | None = None):
        binary = executable()
        assert binary, "dovecot is not installed"
        self.binary = binary
        self.tls = tls
        self.introspection = introspection
        # Not under pytest's tmp_path: that is private to the test user (0700), and the
        # login and mail processes run as other users who must reach their files.
        self.folder = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        # One passwd-file per user: Dovecot reads a new file on its first lookup, where it
        # may miss a change to a file it read less than a second before.
        self.users = self.folder / "users"
        self.users.mkdir()
        self.users.chmod(0o755)
        self.log = self.folder / "dovecot.log"
        self.config = self.folder / "dovecot.conf"
        self.config.write_text(self._config())
        self.process: subprocess.Popen | None = None
        self._accounts: dict[str, Account] = {}

    def _config(self) -> str:
        if os.geteuid() == 0:
            login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
            chroot = ""
        else:  # rootless: one user for everything, and no chroot (only root may)
            login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
            internal_group = grp.getgrgid(os.getegid()).gr_name
            chroot = "\n  chroot ="
        if self.tls:
            listeners = f"""
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}"""
            ssl_settings = f"ssl = required\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}"
        else:
            listeners = f"""
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}"""
            ssl_settings = "ssl = no"
        mechanisms, oauth2, by_password = "plain login", "", ""
        if self.introspection:
            by_password = "\n  mechanisms = plain login"  # a token is never a password
            mechanisms += " xoauth2 oauthbearer"
            settings = self.folder / "oauth2.conf.ext"
            settings.write_text(
                f"introspection_mode = post\nintrospection_url = {self.introspection.url}\n"
                "force_introspection = yes\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\n"
            )
            settings.chmod(0o644)
            oauth2 = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {settings}
}}"""
        return f"""# A throwaway Dovecot for mailflow's tests; everything lives in this folder.
base_dir = {self.folder}/run
state_dir = {self.folder}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
mail_location = maildir:~/Maildir
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
{ssl_settings}
passdb {{
  driver = passwd-file
  args = {self.users}/%u{by_password}
}}{oauth2}
userdb {{
  driver = passwd-file
  args = {self.users}/%u
}}
service imap-login {{{chroot}{listeners}
}}
# No growing delay after failed logins (auth penalty): a test of a wrong password would
# otherwise slow every later login from 127.0.0.1 by seconds.
service anvil {{{chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def account(self, name: str) -> Account:
        """The user `name` (made on first use, with a random password)."""
        if name not in self._accounts:
            # Characters a URL must percent-encode, so the poller's decoding is exercised.
            password = secrets.token_urlsafe(12) + "@/#?"
            home = self.folder / "mail" / name
            home.mkdir(parents=True)
            owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
            os.chown(home.parent, owner.pw_uid, owner.pw_gid)
            os.chown(home, owner.pw_uid, owner.pw_gid)
            users = self.users / name
            users.write_text(f"{name}:{{PLAIN}}{password}:{owner.pw_uid}:{owner.pw_gid}::{home}\n")
            users.chmod(0o644)
            self._accounts[name] = Account(self, name, password)
        return self._accounts[name]

    def start(self) -> Dovecot:
        assert self.process is None or self.process.poll() is not None, "already running"
        output = (self.folder / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdout=output,
            stderr=output,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
        output.close()
        deadline = time.monotonic() + WAIT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dovecot did not start:\n{self.output()}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        """True once the listener greets (a TCP connect alone may precede the login process)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                if self.tls:
                    context = ssl.create_default_context(cafile=str(self.tls.cert))
                    with context.wrap_socket(connection, server_hostname="127.0.0.1") as secure:
                        return secure.recv(100).startswith(b"* OK")
                return connection.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the master and, with it, every login and mail process (clients see BYE/EOF)."""
        if self.process is None or self.process.poll() is not None:
            return
        # The master alone takes about ten seconds to end an IDLE session after SIGTERM:
        # sent to the group, each process ends its clients at once, as a restart does.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Children still closing would hold the listening socket that start() binds again.
        deadline = time.monotonic() + 5
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def logins(self, name: str) -> int:
        """How many times the user has logged in (Dovecot logs each login)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(rf"Login: user=<{re.escape(name)}>", text))

    def output(self) -> str:
        parts = [self.folder / "stdout.log", self.log]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _ok(answer: tuple[str, list]) -> None:
    typ, data = answer
    assert typ == "OK", f"IMAP said {typ} {data!r}"


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
