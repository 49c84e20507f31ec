"""LMTP (RFC 2033), the way Postfix hands mail to Mailman 3: `MAILFLOW_LISTEN=lmtp:HOST:PORT`
or `lmtp:unix:/path`, over a real connection to a real `mailflow serve`.

After DATA an LMTP server answers once for each recipient RCPT accepted, in order;
smtplib's LMTP reads only the first of those answers, so these tests read the rest with
getreply() and then check that the connection is still in step (a NOOP answers 250).
"""

from __future__ import annotations

import json
import smtplib
import socket
import stat
from pathlib import Path

import pytest

from mailflow import config as configuration
from mailflow.errors import SettingError
from tests.conftest import PROGRAM, Person, compose, free_port, run_cli, wire
from tests.postfix import start_lmtp

ANN = "ann@uni.example.edu"


@pytest.fixture(scope="module")
def lmtp(tmp_path_factory):
    """One daemon for the module (each test finds its own messages by Message-ID)."""
    home = tmp_path_factory.mktemp("lmtp") / "var"
    running = start_lmtp(home, f"lmtp:127.0.0.1:{free_port()}", MAILFLOW_MAX_SIZE="20000")
    yield running
    running.stop()


def test_each_accepted_recipient_gets_its_own_answer_and_the_message_is_stored_once(lmtp):
    message = compose(ANN, "HELP")
    with lmtp.lmtp() as client:
        client.ehlo_or_helo_if_needed()  # LHLO
        assert client.mail(ANN)[0] == 250
        recipients = [PROGRAM, "someone@example.org", "program+abc123@example.org"]
        answers = {to: client.rcpt(to) for to in [*recipients, "x@elsewhere.example"]}
        first = client.data(wire(message))
        second = client.getreply()
        assert client.noop()[0] == 250  # no answer left unread: the two were all

    assert answers[PROGRAM][0] == 250
    assert answers["someone@example.org"] == (550, b"5.1.1 No such mailbox here")
    assert answers["program+abc123@example.org"][0] == 250
    assert answers["x@elsewhere.example"][0] == 550
    assert b"Relaying denied" in answers["x@elsewhere.example"][1]
    assert first[0] == second[0] == 250
    assert first[1].startswith(b"2.0.0 OK: queued as ") and first == second  # one spool file

    lmtp.handled(message["Message-ID"])
    (row,) = lmtp.query("SELECT * FROM messages WHERE message_id = ?", message["Message-ID"])
    assert row["via"] == "lmtp"
    assert json.loads(row["envelope_to"]) == [PROGRAM, "program+abc123@example.org"]
    assert row["spool"] == first[1].decode().rsplit(" ", 1)[1]
    (answer,) = lmtp.mail_for(message["Message-ID"])  # answered once, not once a recipient
    assert answer["X-Mailflow-Template"] == "help"


def test_a_conversation_over_lmtp_is_the_one_over_smtp(lmtp):
    Person(lmtp, ANN, "Ann Okafor").say("HELP", expect="help")


def test_an_oversized_message_is_refused_for_each_recipient_and_not_stored(lmtp):
    big = compose(ANN, "HELP\n" + ("y" * 70 + "\n") * 400)  # 28 kB, over the 20 kB limit
    with lmtp.lmtp() as client:
        client.ehlo_or_helo_if_needed()
        # Declared with SIZE, it is refused at MAIL, before a byte of it is sent...
        assert client.mail(ANN, ["SIZE=30000"])[0] == 552
        client.rset()
        # ...and undeclared, once for each recipient after DATA.
        assert client.mail(ANN)[0] == 250
        assert client.rcpt(PROGRAM)[0] == 250
        assert client.rcpt("program+abc@example.org")[0] == 250
        answers = [client.data(wire(big)), client.getreply()]
        # The connection is in step: the next message on it is taken.
        small = compose(ANN, "HELP")
        assert client.sendmail(ANN, [PROGRAM], wire(small)) == {}
    assert [code for code, _ in answers] == [552, 552]
    lmtp.handled(small["Message-ID"])
    assert lmtp.query("SELECT id FROM messages WHERE message_id = ?", big["Message-ID"]) == []


def test_smtp_greetings_are_refused_on_an_lmtp_listener(lmtp):
    with smtplib.SMTP("127.0.0.1", lmtp.port) as client:
        assert client.ehlo()[0] == 500
        assert client.helo()[0] == 500


def test_the_unix_socket_is_owner_and_group_only_replaces_a_stale_one_and_goes_at_stop(
    home: Path, tmp_path: Path
):
    path = tmp_path / "run" / "lmtp"
    path.parent.mkdir()
    # A socket file left by a daemon that was killed: nobody listens on it.
    with socket.socket(socket.AF_UNIX) as crashed:
        crashed.bind(str(path))
    assert stat.S_ISSOCK(path.lstat().st_mode)

    running = start_lmtp(home, f"lmtp:unix:{path}")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        Person(running, ANN).say("HELP", expect="help")
        (row,) = running.idle()
        assert row["via"] == "lmtp"
        # A second daemon on the same socket stops at start, with a reason, and leaves it.
        (tmp_path / "other").mkdir()
        other = run_cli(tmp_path / "other" / "var", "serve", MAILFLOW_LISTEN=f"lmtp:unix:{path}")
        assert other.returncode == 2
        assert f"another daemon is listening on {path}" in other.stderr.decode()
        assert running.answers()
    finally:
        running.stop()
    assert running.process.returncode == 0
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_never_removed(tmp_path: Path):
    path = tmp_path / "lmtp"
    path.write_text("not a socket")
    done = run_cli(tmp_path / "var", "serve", MAILFLOW_LISTEN=f"lmtp:unix:{path}")
    assert done.returncode == 2
    assert done.stderr.decode().strip().endswith(f"{path} exists and is not a socket")
    assert path.read_text() == "not a socket"


@pytest.mark.parametrize(
    ("listen", "parts"),
    [
        ("127.0.0.1:8025", ("smtp", "127.0.0.1", 8025, None)),
        ("lmtp:127.0.0.1:8024", ("lmtp", "127.0.0.1", 8024, None)),
        ("lmtp:[::1]:8024", ("lmtp", "::1", 8024, None)),
        ("lmtp:unix:/run/mailflow/lmtp", ("lmtp", None, None, Path("/run/mailflow/lmtp"))),
    ],
)
def test_the_three_forms_of_listen(listen: str, parts: tuple) -> None:
    config = configuration.load({"MAILFLOW_LISTEN": listen}, Path.cwd())
    assert (config.listen_protocol, config.listen_host, config.listen_port) == parts[:3]
    assert config.listen_socket == parts[3]


@pytest.mark.parametrize(
    "listen",
    [
        "8025",
        "localhost:smtp",
        "lmtp:8024",
        "unix:/run/mailflow/lmtp",
        "lmtp:unix:run/mailflow/lmtp",  # relative: where would that be for systemd?
        "lmtp:unix:/" + "x" * 120,  # longer than a unix socket's address can be
        "lmtp:127.0.0.1:70000",
    ],
)
def test_any_other_listen_is_a_one_line_setting_error(listen: str) -> None:
    with pytest.raises(SettingError) as refused:
        configuration.load({"MAILFLOW_LISTEN": listen}, Path.cwd())
    assert str(refused.value).startswith("MAILFLOW_LISTEN must be host:port, lmtp:host:port")
    assert repr(listen) in str(refused.value) and "\n" not in str(refused.value)


def test_serve_with_a_wrong_listen_stops_at_start_in_one_line(tmp_path: Path) -> None:
    wrong = f"lmtp:{tmp_path / 'socket'}"  # lmtp:unix:/path was meant
    done = run_cli(tmp_path / "var", "serve", MAILFLOW_LISTEN=wrong)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1 and "MAILFLOW_LISTEN" in done.stderr.decode()
    assert not (tmp_path / "socket").exists()
