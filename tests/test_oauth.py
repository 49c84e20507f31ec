"""OAuth 2 logins (XOAUTH2), as Microsoft 365 and Google Workspace want them: the access
token comes from the operator's own command (MAILFLOW_IMAP_OAUTH_COMMAND,
MAILFLOW_SMTP_OAUTH_COMMAND), here a tiny script that prints what a file holds, so a
test can hand it a good token, a wrong one, or none.

IMAP against a real Dovecot whose oauth2 password database asks a token-introspection
endpoint the test runs on 127.0.0.1; SMTP against the test relay taking AUTH XOAUTH2 over
implicit TLS. A refused token or a failing command is a retry with one log line, never a
lost mail and never a traceback, and the token appears in no output.
"""

from __future__ import annotations

import base64
import shlex
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from mailflow import config as configuration
from mailflow.errors import SettingError
from mailflow.oauth import TokenError, access_token
from mailflow.receive.imap import mailbox
from tests import dovecot as imap_server
from tests.certs import Certificate, make_certificate
from tests.conftest import compose, run_cli, until, wire
from tests.relay_sink import RelaySink
from tests.test_imap import (
    ANN,
    DONE,
    answers,
    answers_to,
    background_poller,
    count,
    delivered,
    dovecot_or_skip,
    passed,
    poll,
    stop,
)
from tests.test_relay import outbox


@pytest.fixture(scope="module")
def introspection():
    endpoint = imap_server.Introspection().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def dovecot(introspection):
    dovecot_or_skip()
    server = imap_server.Dovecot(introspection=introspection).start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def token_command(folder: Path, token: str) -> tuple[str, Path]:
    """A command that prints the token a file holds (as mutt_oauth2.py prints a fresh one),
    and that file, for the test to change."""
    folder.mkdir(parents=True, exist_ok=True)
    held = folder / "token"
    held.write_text(token + "\n")
    script = folder / "print-token"
    script.write_text(f"#!/bin/sh\nexec cat {shlex.quote(str(held))}\n")
    script.chmod(0o755)
    return shlex.quote(str(script)), held


def failing_command(folder: Path, body: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "no-token"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return shlex.quote(str(script))


def url_for(server: imap_server.Dovecot, user: str, folder: str = "INBOX") -> str:
    """MAILFLOW_IMAP_URL with a user and no password: the token is the login."""
    return f"imap://{quote(user, safe='')}@127.0.0.1:{server.port}/{quote(folder)}"


def secrets_in(output: bytes, token: str) -> list[str]:
    """Which forms of the token show in the output (itself, or inside the XOAUTH2 string)."""
    forms = {"token": token.encode(), "base64": base64.b64encode(token.encode())[:24]}
    return [name for name, form in forms.items() if form in output]


# --- the token command -----------------------------------------------------------------


def test_the_first_line_is_the_token_and_no_shell_reads_the_command(tmp_path):
    assert access_token("printf 'tok-123\\nexpires 3599\\n'", "X") == "tok-123"
    assert access_token("printf '  tok-456  \\r\\n'", "X") == "tok-456"
    # No shell: a $VAR is the command's argument as written, not the environment's.
    assert access_token("printf %s '$HOME'", "X") == "$HOME"


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("sh -c 'echo refresh token expired >&2; exit 3'", "exited with status 3: refresh token"),
        ("true", "printed no token"),
        ("printf '\\n'", "printed no token"),
        ("echo Bearer abc", "printed something that is not a token"),
        ("/nonexistent/print-token", "cannot run /nonexistent/print-token"),
        ("print-token 'unclosed", "is not a command line"),
        ("", "is empty"),
    ],
    ids=["fails", "silent", "blank", "not-a-token", "missing", "unclosed-quote", "empty"],
)
def test_a_command_that_gives_no_token_says_why(command, said):
    with pytest.raises(TokenError, match=r"^MAILFLOW_X_OAUTH_COMMAND") as raised:
        access_token(command, "MAILFLOW_X_OAUTH_COMMAND")
    assert said in str(raised.value)


def test_a_command_that_hangs_is_ended_with_its_children(tmp_path):
    began = time.monotonic()
    # The shell's child keeps stdout open: only ending the whole group lets this return.
    with pytest.raises(TokenError, match=r"printed no token within 0\.5 s"):
        access_token("sh -c 'sleep 30 & sleep 30'", "X", timeout=0.5)
    assert time.monotonic() - began < 10


def test_a_token_login_is_checked_at_start(tmp_path):
    def load(**env: str) -> configuration.Config:
        return configuration.load({"MAILFLOW_HOME": str(tmp_path), **env}, tmp_path)

    with pytest.raises(SettingError, match="MAILFLOW_SMTP_OAUTH_COMMAND needs MAILFLOW_SMTP_USER"):
        load(MAILFLOW_SMTP_OAUTH_COMMAND="print-token")
    with pytest.raises(SettingError, match="and no MAILFLOW_SMTP_PASSWORD"):
        load(
            MAILFLOW_SMTP_OAUTH_COMMAND="print-token",
            MAILFLOW_SMTP_USER="program@uni.example.edu",
            MAILFLOW_SMTP_PASSWORD="secret",
        )
    config = load(MAILFLOW_SMTP_OAUTH_COMMAND="print-token", MAILFLOW_SMTP_USER="p@x.example")
    assert config.smtp_oauth_command == "print-token"
    box = mailbox("imaps://program%40uni.example.edu@outlook.office365.com/INBOX", token=True)
    assert (box.user, box.password, box.port) == ("program@uni.example.edu", "", 993)
    with pytest.raises(SettingError, match="has a password, but MAILFLOW_IMAP_OAUTH_COMMAND"):
        mailbox("imaps://program:secret@outlook.office365.com/INBOX", token=True)
    with pytest.raises(SettingError, match="must be imap://user:password@host"):
        mailbox("imaps://program@outlook.office365.com/INBOX")


# --- IMAP: Dovecot's oauth2 password database -------------------------------------------


def test_the_poller_logs_in_with_a_token_and_handles_the_mail(
    dovecot, introspection, home, tmp_path
):
    account = dovecot.account("token-login@example.org")
    message = compose(ANN, "HELP", "question")
    account.append("INBOX", delivered(message))
    token = introspection.issue(account.name)
    command, _ = token_command(tmp_path / "token", token)
    asked = introspection.asked

    result = poll(home, url_for(dovecot, account.name), MAILFLOW_IMAP_OAUTH_COMMAND=command)

    lines = passed(result)
    assert lines[-1] == "poll-imap: 1 handled, 0 left in place"
    [answer] = answers_to(home, message)
    assert answer["X-Mailflow-Template"] == "help"
    assert account.uids("INBOX") == []
    assert account.message_ids(DONE) == [message["Message-ID"]]
    assert introspection.asked > asked  # Dovecot asked the endpoint about this token
    assert f"user=<{account.name}>, method=XOAUTH2" in dovecot.output()
    assert secrets_in(result.stdout + result.stderr, token) == []


@pytest.mark.parametrize("problem", ["revoked token", "failing command", "empty output"])
def test_a_login_without_a_good_token_fails_with_one_line_and_stores_nothing(
    dovecot, introspection, home, tmp_path, problem
):
    account = dovecot.account(f"no-token-{problem.replace(' ', '-')}@example.org")
    uid = account.append("INBOX", delivered(compose(ANN, "HELP")))
    token = introspection.issue(account.name)
    command, _ = token_command(tmp_path / "token", token)
    if problem == "revoked token":
        introspection.revoke(token)
    elif problem == "failing command":
        command = failing_command(tmp_path / "bad", "echo 'invalid_grant: AADSTS70008' >&2; exit 1")
    else:
        command = failing_command(tmp_path / "bad", "exit 0")

    result = poll(home, url_for(dovecot, account.name), MAILFLOW_IMAP_OAUTH_COMMAND=command)

    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.decode().strip().splitlines()
    assert line.startswith("mailflow poll-imap: ")
    expected = {
        "revoked token": "cannot log in to imap://",
        "failing command": "MAILFLOW_IMAP_OAUTH_COMMAND: ",
        "empty output": "printed no token",
    }[problem]
    assert expected in line
    if problem == "failing command":
        assert line.endswith("exited with status 1: invalid_grant: AADSTS70008")
    assert secrets_in(result.stderr, token) == []
    assert not (home / "mailflow.db").exists() or count(home, "messages") == 0
    assert answers(home) == []
    assert account.uids("INBOX") == [uid]


def test_the_running_poller_retries_a_refused_token_until_a_good_one_comes(
    dovecot, introspection, home, tmp_path
):
    account = dovecot.account("token-retry@example.org")
    message = compose(ANN, "HELP", "still there?")
    account.append("INBOX", delivered(message))
    wrong = introspection.issue(account.name)
    introspection.revoke(wrong)
    command, held = token_command(tmp_path / "token", wrong)
    log = home.parent / "poller.log"
    poller = background_poller(
        home, url_for(dovecot, account.name), MAILFLOW_IMAP_OAUTH_COMMAND=command
    )
    try:
        until(lambda: log.exists() and b"cannot log in" in log.read_bytes(), "the refusal")
        assert poller.poll() is None, "the poller stopped at a refused token"
        assert answers(home) == []
        good = introspection.issue(account.name)
        held.write_text(good + "\n")
        until(lambda: answers_to(home, message), "the answer after the good token")
    finally:
        stop(poller)
    text = log.read_bytes()
    assert b"Traceback" not in text
    assert b"WARNING" in text and b"reconnecting in" in text
    assert secrets_in(text, wrong) == [] and secrets_in(text, good) == []
    assert account.uids("INBOX") == []


# --- SMTP: the relay over implicit TLS with AUTH XOAUTH2 --------------------------------


def test_an_answer_reaches_the_relay_with_a_token_over_implicit_tls(home, tmp_path, certificate):
    question = compose(ANN, "HELP", "how does this work?")
    with RelaySink(certificate=certificate, implicit_tls=True, oauth=True) as sink:
        command, _ = token_command(tmp_path / "token", sink.token)
        run = run_cli(home, "ingest", stdin=wire(question), **sink.settings(token_command=command))
        assert run.returncode == 0, run.stderr.decode()
    [got] = sink.received
    assert (got.tls, got.user, got.mechanism) == (True, sink.user, "XOAUTH2")
    assert got.message["In-Reply-To"] == question["Message-ID"]
    assert b"status=sent (250 2.0.0 OK: queued as " + got.queued_as.encode() in run.stderr
    assert secrets_in(run.stderr + run.stdout, sink.token) == []


@pytest.mark.parametrize("problem", ["wrong token", "failing command"])
def test_no_good_token_for_the_relay_is_a_retry_not_a_lost_mail(
    home, tmp_path, certificate, problem
):
    question = compose(ANN, "HELP", "help")
    with RelaySink(certificate=certificate, implicit_tls=True, oauth=True) as sink:
        command, _ = token_command(tmp_path / "token", "not-" + sink.token)
        if problem == "failing command":
            command = failing_command(tmp_path / "bad", "echo 'token endpoint: 400' >&2; exit 2")
        settings = sink.settings(token_command=command)
        run = run_cli(home, "ingest", stdin=wire(question), **settings)
        assert run.returncode == 0, run.stderr.decode()
        assert sink.received == [] and sink.recipients_tried == []
        assert sink.tokens_refused == (1 if problem == "wrong token" else 0)
        [row] = outbox(home)
        assert (row["state"], row["attempts"]) == ("queued", 1)
        if problem == "wrong token":
            assert "refused the login of" in row["last_error"] and "535" in row["last_error"]
        else:
            assert row["last_error"].endswith("exited with status 2: token endpoint: 400")
        [line] = [x for x in run.stderr.decode().splitlines() if "relay unavailable" in x]
        assert "WARNING" in line
        assert b"Traceback" not in run.stderr
        assert secrets_in(run.stderr, "not-" + sink.token) == []

        settings = sink.settings(token_command=token_command(tmp_path / "good", sink.token)[0])
        flushed = run_cli(home, "outbox", "flush", **settings)
        assert flushed.returncode == 0, flushed.stderr.decode()
        assert b"sent 1, still queued 0" in flushed.stdout
    [got] = sink.received
    assert got.mechanism == "XOAUTH2" and got.message["In-Reply-To"] == question["Message-ID"]
    [row] = outbox(home)
    assert (row["state"], row["message_id"]) == ("sent", got.message_id)
    assert secrets_in(flushed.stderr, sink.token) == []
