"""The conventions an operator expects of a command: `--version`, and a `--help` that says
what each command does, the environment, the files and the exit statuses."""

from __future__ import annotations

import importlib.metadata

from mailflow import config as configuration
from tests.conftest import run_cli


def test_version_comes_from_the_package(home):
    result = run_cli(home, "--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"mailflow {importlib.metadata.version('mailflow')}"
    assert not home.exists(), "--version opened the store"


def test_help_names_every_command_the_environment_the_files_and_the_exit_statuses(home):
    result = run_cli(home, "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    flat = " ".join(text.split())
    for command in ("serve", "ingest", "status", "backup", "poll-imap", "scheduler"):
        assert f"\n    {command} " in text, command
    for key in configuration.DEFAULTS:
        assert f"MAILFLOW_{key.upper()}" in text
    for path in ("mailflow.toml", "HOME/mailflow.db", "HOME/spool/", "HOME/outbox/"):
        assert path in text
    assert "exit status: 0 done" in flat
    assert "75 ingest only: the message was not stored, try again later" in flat
    status_help = " ".join(run_cli(home, "status", "--help").stdout.decode().split())
    assert "exit status: 0 OK, 1 warning, 2 critical" in status_help
