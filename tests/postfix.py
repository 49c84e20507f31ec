"""A throwaway Postfix (Debian's postfix 3.7) for the tests, and `mailflow serve` listening
for LMTP as Postfix reaches it.

The Postfix is built from the snippets the operator's guide ships in contrib/postfix/,
changing only the domain, ports and paths, so the guide's lines are the tested ones. Around
them go the lines a private instance needs (its own configuration directory, queue and log
under a temporary folder; docs of the traps: ../shared/notes/postfix-in-tests.md): smtpd on
a free 127.0.0.1 port, and everything not for the program relayed to a test sink. Postfix
runs only as root (its master and the chroot); as another user the tests skip.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import smtplib
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailflow import config as configuration
from tests.conftest import MAILFLOW, NOW, ROOT, WAIT, Daemon, environment, free_port, until

CONTRIB = ROOT / "contrib" / "postfix"
GUIDE_ADDRESS = "program@mentors.example.org"
GUIDE_DOMAIN = "mentors.example.org"
DEBIAN_MASTER = Path("/usr/share/postfix/master.cf.dist")
PIPE_USER = "nobody"  # the guide's `mailflow` user: an unprivileged one that owns the home


def executable() -> str | None:
    """The postfix command, also when /usr/sbin is not on a user's PATH."""
    found = shutil.which("postfix")
    if found:
        return found
    return "/usr/sbin/postfix" if os.access("/usr/sbin/postfix", os.X_OK) else None


def guide_transports() -> dict[str, str]:
    """The transports contrib/postfix/transport offers (the one in force and the two
    commented out), by kind: "lmtp" (TCP), "unix" (LMTP over a socket) and "pipe"."""
    found = {}
    for line in (CONTRIB / "transport").read_text().splitlines():
        match = re.fullmatch(rf"#?{re.escape(GUIDE_ADDRESS)}\s+(\S+)", line.strip())
        if match:
            transport = match.group(1)
            kind = "pipe" if not transport.startswith("lmtp:") else "lmtp"
            found["unix" if transport.startswith("lmtp:unix:") else kind] = transport
    assert set(found) == {"lmtp", "unix", "pipe"}, f"contrib/postfix/transport offers {found}"
    return found


def _settings(text: str) -> str:
    """A snippet's `name = value` lines, without its comments."""
    return "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))


class Postfix:
    """`postfix -c DIR/etc start` with routes {program address: transport}; the guide's
    snippets with its address and paths replaced. `pipe_folder` is the pipe's `directory=`
    (its mailflow.toml), `now` is exported to the commands it runs (MAILFLOW_NOW)."""

    def __init__(self, routes: dict[str, str], sink_port: int, pipe_folder: Path, now: str = NOW):
        binary = executable()
        assert binary, "postfix is not installed"
        self.binary = binary
        # Not under pytest's tmp_path (root's alone, 0700): Postfix's own users and the
        # pipe's unprivileged user must reach their files.
        self.folder = Path(tempfile.mkdtemp(prefix="postfix-"))
        self.folder.chmod(0o755)
        self.etc, self.queue, self.data = (self.folder / n for n in ("etc", "spool", "data"))
        for path in (self.etc, self.queue, self.data):
            path.mkdir()
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        self.port = free_port()
        self.maillog = self.folder / "maillog"
        domains = sorted({address.rsplit("@", 1)[1] for address in routes})
        guide = (CONTRIB / "main.cf").read_text() + (CONTRIB / "pipe.cf").read_text()
        guide = guide.replace(GUIDE_DOMAIN, ", ".join(domains))
        guide = guide.replace("/etc/postfix/", f"{self.etc}/")
        (self.etc / "main.cf").write_text(
            _settings(guide) + "\n" + self._private(sink_port, now) + "\n"
        )
        # Debian's master.cf, smtpd on our port and not chrooted, then the guide's pipe.
        master = DEBIAN_MASTER.read_text()
        master, found = re.subn(
            r"(?m)^smtp\s+inet\s.*$", f"{self.port} inet n - n - - smtpd", master
        )
        assert found == 1, "Debian's master.cf has no smtp inet line"
        pipe = (CONTRIB / "master.cf").read_text()
        pipe = pipe.replace("user=mailflow", f"user={PIPE_USER}")
        pipe = pipe.replace("/etc/mailflow", str(pipe_folder))  # directory= and -C FILE
        pipe = pipe.replace("/opt/mailflow/.venv/bin/mailflow", str(self._pipe_command()))
        (self.etc / "master.cf").write_text(master + _settings(pipe) + "\n")
        recipients = (CONTRIB / "mailflow_recipients").read_text()
        line = next(x for x in recipients.splitlines() if x.startswith(GUIDE_ADDRESS))
        (self.etc / "mailflow_recipients").write_text(
            "".join(line.replace(GUIDE_ADDRESS, address) + "\n" for address in routes)
        )
        (self.etc / "transport").write_text(
            "".join(f"{address}    {transport}\n" for address, transport in routes.items())
        )
        for table in ("mailflow_recipients", "transport"):
            self._run("postmap", "-c", str(self.etc), f"hash:{self.etc}/{table}")

    def _pipe_command(self) -> Path:
        """The venv's `mailflow`, as the guide's pipe runs it; where its Python lives in a
        folder the pipe's user may not enter (one built in root's home), the same venv started by
        the system's Python of the same version, which that user can run."""
        if all(_open_to_others(path) for path in (MAILFLOW, Path(sys.executable))):
            return MAILFLOW
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        system = Path(f"/usr/bin/python{version}")
        if not _open_to_others(system):
            pytest.skip(f"the pipe's user can't run this venv's Python, and {system} is missing")
        wrapper = self.folder / "mailflow"
        wrapper.write_text(
            f"#!{system}\nimport site, sys\nsite.addsitedir({sysconfig.get_path('purelib')!r})\n"
            "from mailflow.cli import main\nsys.exit(main())\n"
        )
        wrapper.chmod(0o755)
        return wrapper

    def _private(self, sink_port: int, now: str) -> str:
        """What a private instance needs beside the guide's lines (none of them the guide's)."""
        return f"""compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
maillog_file = {self.maillog}
maillog_file_prefixes = {self.folder}
shlib_directory = /usr/lib/postfix
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
myhostname = mx.postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
default_transport = smtp:[127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
export_environment = TZ LANG MAILFLOW_NOW={now}"""

    def _run(self, *command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=WAIT)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}{self.log()}"
        return done.stdout

    def start(self) -> Postfix:
        self._run(self.binary, "-c", str(self.etc), "start")
        until(lambda: _listening(self.port), "postfix's smtpd to listen")
        return self

    def stop(self) -> None:
        subprocess.run(
            [self.binary, "-c", str(self.etc), "stop"], capture_output=True, timeout=WAIT
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> dict:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT) as client:
            return client.sendmail(sender, recipients, raw)

    def flush(self) -> None:
        """`postqueue -f`: try every deferred message now."""
        self._run("postqueue", "-c", str(self.etc), "-f")

    def mailq(self) -> str:
        """What `mailq` shows: the messages Postfix keeps, each with why."""
        return self._run("postqueue", "-c", str(self.etc), "-p")

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def logged(self, pattern: str, timeout: float = WAIT) -> re.Match:
        """Wait until the log has a line matching `pattern`; the match."""
        try:
            return until(lambda: re.search(pattern, self.log()), f"{pattern!r} in the log", timeout)
        except AssertionError:
            raise AssertionError(f"no {pattern!r} in postfix's log:\n{self.log()}") from None

    def socket_folder(self, owner: str = "root") -> Path:
        """The guide's folder for mailflow's LMTP socket: in Postfix's queue directory,
        where its chrooted lmtp(8) reaches `lmtp:unix:mailflow/lmtp`; mailflow's, group
        postfix and setgid (2750), so the socket's group is postfix and no one else's."""
        folder = self.queue / "mailflow"
        subprocess.run(
            ["install", "-d", "-o", owner, "-g", "postfix", "-m", "2750", str(folder)], check=True
        )
        return folder


def _open_to_others(path: Path) -> bool:
    """Any user may run `path`: every folder on the way to it may be entered, and the file
    (links resolved) may be executed."""
    resolved = path.resolve()
    if not resolved.exists():
        return False
    return all(p.stat().st_mode & stat.S_IXOTH for p in [resolved, *resolved.parents])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class LmtpDaemon(Daemon):
    """`mailflow serve` listening for LMTP: on 127.0.0.1:`port`, or on `unix_socket`."""

    unix_socket: Path | None = None

    def lmtp(self) -> smtplib.LMTP:
        if self.unix_socket is not None:
            return smtplib.LMTP(str(self.unix_socket), timeout=WAIT)
        return smtplib.LMTP("127.0.0.1", self.port, timeout=WAIT)

    def smtp(self) -> smtplib.LMTP:  # so that Person.say talks LMTP to it
        return self.lmtp()

    def ready(self) -> LmtpDaemon:
        """Wait until it answers LMTP; itself."""

        def answering() -> bool:
            if self.process.poll() is not None:
                journal = (self.home.parent / "daemon.log").read_text()
                raise AssertionError("mailflow serve exited:\n" + journal)
            return self.answers()

        until(answering, "the daemon to answer LMTP", timeout=30)
        return self

    def answers(self) -> bool:
        """It answers LMTP (a connection alone may precede the server's greeting)."""
        try:
            with self.lmtp() as client:
                return client.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False


def start_lmtp(home: Path, listen: str, *options: str, **extra: str) -> LmtpDaemon:
    """`mailflow serve OPTIONS` with MAILFLOW_LISTEN=`listen` (lmtp:127.0.0.1:PORT or
    lmtp:unix:PATH), once it answers LMTP."""
    return launch_lmtp(home, listen, *options, **extra).ready()


def launch_lmtp(home: Path, listen: str, *options: str, **extra: str) -> LmtpDaemon:
    """As start_lmtp, without waiting: start several, then wait for each (`ready()`)."""
    _, _, port, path = configuration.listen_parts(listen)
    home.parent.mkdir(parents=True, exist_ok=True)
    log = (home.parent / "daemon.log").open("ab")
    process = subprocess.Popen(
        [str(MAILFLOW), "serve", *options],
        env=environment(home, MAILFLOW_LISTEN=listen, **extra),
        stdout=log,
        stderr=log,
        cwd=home.parent,
    )
    return LmtpDaemon(home=home, port=port or 0, process=process, unix_socket=path)
