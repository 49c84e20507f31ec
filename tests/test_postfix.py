"""mailflow behind a real Postfix, configured from the guide's snippets (contrib/postfix/):
mail for the program goes in over LMTP (TCP and the unix socket) or through the pipe into
`mailflow ingest`, and mailflow's answers go out through the same Postfix, which relays them
to a test sink. Postfix's own log must show each hand-off, as an operator reads it.

One Postfix for the module, with a route for each way in: program@lmtp.test and
program@later.test over LMTP on TCP, program@socket.test over the unix socket, and
program@pipe.test through the pipe, run as an unprivileged user (as the guide's `mailflow`).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import smtplib
import sqlite3
import stat
import tempfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose, free_port, until, wire
from tests.postfix import (
    CONTRIB,
    PIPE_USER,
    Postfix,
    executable,
    guide_transports,
    launch_lmtp,
    start_lmtp,
)
from tests.relay_sink import Received, RelaySink

ANN = "ann@uni.example.edu"
BOB = "bob@library.example.org"
LMTP = "program@lmtp.test"
SOCKET = "program@socket.test"
PIPE = "program@pipe.test"
LATER = "program@later.test"  # nothing listens there until the test starts mailflow


def postfix_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("a private Postfix runs only as root (its master, its chroot)")
    if not executable():  # CI runs as root and installs it: never skip there silently
        pytest.fail("postfix is not installed (make test installs it as root)")


@pytest.fixture(scope="module")
def sink():
    with RelaySink() as relay:
        yield relay


@pytest.fixture(scope="module")
def pipe_folder():
    """The pipe's `directory=` (the guide's /etc/mailflow) with its mailflow.toml, root's and
    readable by the pipe user's group, and the home (/var/lib/mailflow), the pipe user's."""
    folder = Path(tempfile.mkdtemp(prefix="mailflow-pipe-"))
    folder.chmod(0o755)
    user = pwd.getpwnam(PIPE_USER)
    home = folder / "home"
    home.mkdir(mode=0o700)
    os.chown(home, user.pw_uid, user.pw_gid)
    (folder / "etc").mkdir(mode=0o750)
    os.chown(folder / "etc", 0, user.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix(sink: RelaySink, pipe_folder: Path):
    postfix_or_skip()
    transports = guide_transports()
    ports = {LMTP: free_port(), LATER: free_port()}
    routes = {
        address: transports["lmtp"].replace(":8024", f":{port}") for address, port in ports.items()
    }
    routes[SOCKET] = transports["unix"]
    routes[PIPE] = transports["pipe"]
    server = Postfix(routes, sink.port, pipe_folder / "etc")
    server.lmtp_ports = ports
    settings = pipe_folder / "etc" / "mailflow.toml"
    settings.write_text(
        f'address = "{PIPE}"\nhome = "{pipe_folder / "home"}"\n'
        f'smtp_relay = "127.0.0.1:{server.port}"\n'
    )
    settings.chmod(0o640)
    os.chown(settings, 0, pwd.getpwnam(PIPE_USER).pw_gid)
    server.start()
    yield server
    server.remove()


def relay(postfix: Postfix) -> dict[str, str]:
    return {"MAILFLOW_SMTP_RELAY": f"127.0.0.1:{postfix.port}"}


@pytest.fixture(scope="module")
def mailflows(postfix: Postfix, tmp_path_factory):
    """`mailflow serve` for program@lmtp.test on its port and for program@socket.test on the
    guide's socket, both relaying through the Postfix; started at once, as they are slow to."""
    listen = {
        LMTP: f"lmtp:127.0.0.1:{postfix.lmtp_ports[LMTP]}",
        SOCKET: f"lmtp:unix:{postfix.socket_folder() / 'lmtp'}",
    }
    running = {
        address: launch_lmtp(
            tmp_path_factory.mktemp(address.split("@")[1]) / "var",
            where,
            MAILFLOW_ADDRESS=address,
            **relay(postfix),
        )
        for address, where in listen.items()
    }
    try:
        yield {address: daemon.ready() for address, daemon in running.items()}
    finally:
        for daemon in running.values():
            daemon.stop()


@pytest.fixture
def over_lmtp(mailflows):
    return mailflows[LMTP]


@pytest.fixture
def over_socket(mailflows):
    return mailflows[SOCKET]


def say(postfix: Postfix, sender: str, to: str, body: str) -> EmailMessage:
    message = compose(sender, body, to=to)
    assert postfix.send(wire(message), sender, [to]) == {}
    return message


def answer_to(sink: RelaySink, message: EmailMessage, postfix: Postfix) -> Received:
    """The one answer to `message` that Postfix relayed to the sink."""

    def arrived() -> list[Received]:
        return [r for r in sink.received if r.message["In-Reply-To"] == message["Message-ID"]]

    try:
        (answer,) = until(arrived, f"the answer to {message['Message-ID']} at the sink")
    except AssertionError:
        raise AssertionError(f"no answer relayed; postfix's log:\n{postfix.log()}") from None
    return answer


def assert_relayed(postfix: Postfix, sink: RelaySink, answer: Received, to: str) -> None:
    """Postfix's log: the answer came in from mailflow (its Message-ID) and went to the sink."""
    queue_id = postfix.logged(
        rf"postfix/cleanup\[\d+\]: (\w+): message-id={re.escape(answer.message_id)}"
    ).group(1)
    postfix.logged(
        rf"{queue_id}: to=<{re.escape(to)}>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink.port},"
        r".* status=sent \(250 "
    )


def test_mail_reaches_mailflow_over_lmtp_and_the_answer_leaves_through_postfix(
    postfix: Postfix, sink: RelaySink, over_lmtp
):
    message = say(postfix, ANN, LMTP, "HELP")

    answer = answer_to(sink, message, postfix)
    assert answer.recipients == (ANN,)
    assert answer.message["X-Mailflow-Template"] == "help"
    assert answer.message["From"].addresses[0].addr_spec == LMTP
    assert "mx.postfix.test" in answer.message["Received"]  # Postfix's, on its way out
    (row,) = over_lmtp.query("SELECT * FROM messages WHERE message_id = ?", message["Message-ID"])
    assert row["via"] == "lmtp"
    # Postfix's log ties its queue id to mailflow's spool file, the way an operator traces it.
    port = postfix.lmtp_ports[LMTP]
    postfix.logged(
        rf"to=<{LMTP}>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, .*status=sent"
        rf" \(250 2\.0\.0 OK: queued as {row['spool']}\)"
    )
    assert_relayed(postfix, sink, answer, ANN)


def test_postfix_refuses_who_is_not_in_the_recipient_table_and_passes_token_addresses(
    postfix: Postfix, sink: RelaySink, over_lmtp
):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        say(postfix, BOB, "someone@lmtp.test", "HELP")
    ((code, text),) = refused.value.recipients.values()
    assert code == 550 and b"User unknown in relay recipient table" in text
    # recipient_delimiter = +: program+TOKEN@ is in both tables, so it reaches mailflow.
    message = say(postfix, BOB, "program+notatoken@lmtp.test", "hello")
    answer = answer_to(sink, message, postfix)
    assert answer.recipients == (BOB,)
    assert answer.message["X-Mailflow-Template"] == "token-expired"
    assert over_lmtp.query("SELECT id FROM messages WHERE sender = ?", "someone@lmtp.test") == []


def test_mail_reaches_mailflow_over_the_unix_socket(postfix: Postfix, sink: RelaySink, over_socket):
    path = over_socket.unix_socket
    found = path.stat()
    assert stat.S_IMODE(found.st_mode) == 0o660
    assert found.st_gid == pwd.getpwnam("postfix").pw_gid  # by the folder's setgid bit
    message = say(postfix, ANN, SOCKET, "HELP")

    answer = answer_to(sink, message, postfix)
    assert answer.recipients == (ANN,)
    assert answer.message["X-Mailflow-Template"] == "help"
    postfix.logged(rf"to=<{SOCKET}>, relay=\S+\[mailflow/lmtp\], .*status=sent \(250 2\.0\.0 OK")
    assert_relayed(postfix, sink, answer, ANN)


def test_mail_reaches_mailflow_through_the_pipe_run_as_an_unprivileged_user(
    postfix: Postfix, sink: RelaySink, pipe_folder: Path
):
    message = say(postfix, ANN, PIPE, "HELP")

    answer = answer_to(sink, message, postfix)
    assert answer.recipients == (ANN,)
    assert answer.message["X-Mailflow-Template"] == "help"
    assert answer.message["From"].addresses[0].addr_spec == PIPE
    postfix.logged(rf"to=<{PIPE}>, relay=mailflow, .*status=sent \(delivered via mailflow servi")
    assert_relayed(postfix, sink, answer, ANN)
    # What ingest made is the pipe user's, and its alone.
    home = pipe_folder / "home"
    user = pwd.getpwnam(PIPE_USER)
    database = home / "mailflow.db"
    assert (database.stat().st_uid, stat.S_IMODE(database.stat().st_mode)) == (user.pw_uid, 0o600)
    # Read without a lock or journal (ingest has exited and closed it): a root-owned
    # journal file here would lock the pipe user out of its own database.
    with sqlite3.connect(f"file:{database}?immutable=1", uri=True) as db:
        rows = db.execute(
            "SELECT via, envelope_from, envelope_to FROM messages WHERE message_id = ?",
            [message["Message-ID"]],
        ).fetchall()
    assert rows == [("ingest", ANN, f'["{PIPE}"]')]


def test_postfix_keeps_the_mail_while_mailflow_is_down_and_delivers_it_once_up(
    postfix: Postfix, sink: RelaySink, tmp_path: Path
):
    port = postfix.lmtp_ports[LATER]
    message = say(postfix, ANN, LATER, "HELP")
    postfix.logged(
        rf"to=<{LATER}>, relay=none, .*status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]"
        rf":{port}: Connection refused\)"
    )
    assert [r for r in sink.received if r.message["In-Reply-To"] == message["Message-ID"]] == []
    # What the guide's `mailq` shows: kept, with the reason, not bounced.
    assert f"(connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)" in postfix.mailq()

    running = start_lmtp(
        tmp_path / "var", f"lmtp:127.0.0.1:{port}", MAILFLOW_ADDRESS=LATER, **relay(postfix)
    )
    try:
        postfix.flush()
        answer = answer_to(sink, message, postfix)
        assert answer.message["X-Mailflow-Template"] == "help"
        postfix.logged(rf"to=<{LATER}>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, .*status=sent")
        assert len(running.query("SELECT id FROM messages")) == 1  # once, not per attempt
    finally:
        running.stop()


def guide_section(title: str) -> str:
    text = (ROOT / "docs" / "operating.md").read_text()
    start = text.index(title)
    return text[start : text.index("\n## ", start)]


def test_the_guide_gives_the_snippets_the_tests_use() -> None:
    """Every line of contrib/postfix/ (which the Postfix here is built from) is in the
    operator's guide, section 3, as the operator types it."""
    guide = " ".join(guide_section("## 3. Behind Postfix").split())
    lines = {
        path.name: [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
        for path in CONTRIB.iterdir()
    }
    for name in ("main.cf", "pipe.cf"):
        for line in lines[name]:
            assert f"postconf -e '{line}'" in guide, f"{name}: {line}"
    for name in ("mailflow_recipients", "transport"):
        for line in lines[name]:
            assert f"echo '{' '.join(line.split())}' >> /etc/postfix/{name}" in guide, line
    assert " ".join(" ".join(lines["master.cf"]).split()) in guide
    for transport in guide_transports().values():
        assert transport in guide
