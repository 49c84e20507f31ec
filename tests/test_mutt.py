"""A round trip driven by a real mail client (issue 19, point 6): mutt, Debian's package,
sends APPLY to a real `mailflow serve` over SMTP, reads the form from the Maildir the
daemon delivers to, replies to it with the form filled in, and gets `application-received`
in the same thread.

The APPLY goes out in mutt's batch mode (a body on stdin). The reply is mutt's own: its
`<reply>` needs the index, which is curses, so mutt runs on a pseudo-terminal with keys
pushed by `-e` (openQA's mutt test also types into a terminal), and its `$editor` is a
script that writes the filled form above the quote, as a person types it. mutt makes the
rest: the address from Reply-To, "Re:", the attribution and the quote, In-Reply-To and
References.
"""

from __future__ import annotations

import email
import email.policy
import os
import pty
import select
import shutil
import signal
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import WAIT, Daemon, form_text, outbox_row, start_daemon, until

ANN = "ann@uni.example.edu"
PROGRAM = "program@example.org"


def mutt_or_skip() -> str:
    found = shutil.which("mutt")
    if found:
        return found
    if os.geteuid() == 0:  # CI runs as root and installs it: never skip there silently
        pytest.fail("mutt is not installed (make test installs it as root)")
    pytest.skip("mutt is not installed (make test installs it as root)")


def muttrc(folder: Path, inbox: Path, port: int) -> Path:
    """Ann's settings: her address, the daemon as her SMTP server, the Maildir as her
    inbox, and no question asked on the way from <reply> to a sent message."""
    path = folder / "muttrc"
    path.write_text(
        f"""\
set from = "Ann Okafor <{ANN}>"
set use_from = yes
set hostname = client.test
set smtp_url = "smtp://127.0.0.1:{port}/"
set ssl_starttls = no
set ssl_force_tls = no
set folder = "{inbox}"
set spoolfile = "{inbox}"
set mbox_type = Maildir
set tmpdir = "{folder}"
set record = ""
set copy = no
set reply_to = yes
set include = yes
set fast_reply = yes
set edit_headers = no
set quit = yes
set move = no
set mark_old = no
set wait_key = no
set editor = "{folder / "fill"}"
set charset = utf-8
set send_charset = "us-ascii:utf-8"
"""
    )
    return path


def editor(folder: Path, text: str) -> None:
    """What a person does in the editor: the form filled in, above mutt's quote."""
    (folder / "form.txt").write_text(text + "\n\n")
    script = folder / "fill"
    script.write_text(
        "#!/bin/sh\n"
        "# $1 is mutt's draft: the attribution and the quoted form.\n"
        'cp "$1" "$1.quote" && cat "$(dirname "$0")/form.txt" "$1.quote" > "$1"\n'
    )
    script.chmod(0o755)


def environment(folder: Path) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    return {**keep, "HOME": str(folder), "TERM": "xterm", "MAIL": str(folder / "inbox")}


def in_terminal(argv: list[str], env: dict[str, str], timeout: float = WAIT) -> str:
    """Run `argv` on a pseudo-terminal until it exits; what it drew (for a failure)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and controlling tty
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                drawn += chunk
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"mutt did not finish; it drew:\n{drawn[-3000:]!r}")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, f"mutt failed; it drew:\n{drawn[-3000:]!r}"
    return drawn.decode(errors="replace")


def inbox_mail(inbox: Path) -> list[EmailMessage]:
    """Everything in the Maildir, new or read by mutt, in the daemon's delivery order."""
    files = [path for sub in ("new", "cur") for path in (inbox / sub).glob("*")]
    files.sort(key=outbox_row)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def arrived(inbox: Path, template: str) -> EmailMessage:
    return until(
        lambda: next((m for m in inbox_mail(inbox) if m["X-Mailflow-Template"] == template), None),
        f"{template} in the Maildir",
    )


def subject(message: EmailMessage) -> str:
    words = str(message["Subject"])
    while words[:3].lower() == "re:":
        words = words[3:].lstrip()
    return words


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """(the form, mutt's reply as the daemon stored it, the answer) of one application."""
    mutt = mutt_or_skip()
    folder = tmp_path_factory.mktemp("mutt")
    inbox = folder / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    daemon: Daemon = start_daemon(folder / "var", MAILFLOW_OUTBOX=str(inbox))
    try:
        rc = muttrc(folder, inbox, daemon.port)
        env = environment(folder)
        sent = subprocess.run(
            [mutt, "-n", "-F", str(rc), "-s", "APPLY", "--", PROGRAM],
            input=b"APPLY\n",
            env=env,
            capture_output=True,
            timeout=WAIT,
        )
        assert sent.returncode == 0, sent.stderr
        form = arrived(inbox, "application-form")
        editor(folder, form_text())
        in_terminal(
            [mutt, "-n", "-F", str(rc), "-f", str(inbox), "-e", "push <reply><send-message><quit>"],
            env,
        )
        received = arrived(inbox, "application-received")
        daemon.idle()
        [_, reply] = daemon.query("SELECT raw FROM messages ORDER BY id")  # APPLY, the reply
        stored = email.message_from_bytes(reply["raw"], policy=email.policy.default)
        yield form, stored, received, daemon
    finally:
        daemon.stop()


def test_mutt_applies_and_its_reply_with_the_form_is_saved(round_trip):
    form, reply, received, daemon = round_trip
    assert form["To"].addresses[0].addr_spec == ANN
    # mutt wrote the reply itself: to the form's Reply-To, quoting it, threaded.
    assert reply["To"].addresses[0].addr_spec == str(form["Reply-To"])
    assert "> Name:" in reply.get_content().splitlines()
    assert reply["In-Reply-To"] == form["Message-ID"]
    assert form["Message-ID"] in str(reply["References"]).split()
    assert received["To"].addresses[0].addr_spec == ANN
    assert "Thank you for applying" in received.get_content()
    [saved] = daemon.query("SELECT email, name, country, time_zone, status FROM participants")
    assert tuple(saved) == (ANN, "Ann Okafor", "US", "America/New_York", "applied")


def test_the_answer_to_mutts_reply_is_in_the_forms_thread(round_trip):
    form, reply, received, _ = round_trip
    assert received["In-Reply-To"] == reply["Message-ID"]
    chain = str(received["References"]).split()
    assert chain[-1] == reply["Message-ID"]
    assert form["Message-ID"] in chain
    assert subject(reply) == subject(form)


def test_the_answer_to_mutts_reply_keeps_the_forms_subject(round_trip):
    form, _, received, _ = round_trip
    assert subject(received) == subject(form)
