"""Every handler is registered in every process that handles mail, with nothing imported
by hand: each token purpose the code issues has its reply conversation, and each command
HELP lists has its function. And the case that once went wrong: a reply to the survey
piped into `mailflow ingest` (the Postfix pipe) in a fresh process."""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import ROOT, command, environment, run_cli, wire
from tests.mailbox import inbox
from tests.people import ANN

PACKAGE = ROOT / "mailflow"

# Run in a fresh interpreter: what `mailflow ingest` and the handling process import
# (the pipeline), and nothing else.
REGISTERED = """
import json
import mailflow.pipeline
from mailflow.conversation import commands, turn
from mailflow.model import tokens

print(json.dumps({
    "conversations": sorted(turn.CONVERSATIONS),
    "purposes": list(tokens.PURPOSES),
    "always_acted": sorted(turn.ALWAYS_ACTED),
    "commands": {
        audience: [
            [entry.name, entry.usage, callable(entry.run)] for entry in commands.listing(audience)
        ]
        for audience in ("participant", "coordinator")
    },
}))
"""


def registered() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", REGISTERED], capture_output=True, cwd=ROOT, check=True
    )
    return json.loads(result.stdout)


def issued_purposes() -> set[str]:
    """Every token purpose named where a token is issued or handled in mailflow/:
    `token_purpose=`, `purpose=`, a "token_purpose" key, `@continues(...)`. Each must be a
    constant of `model.tokens` (a bare string would be a purpose no test can see)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            values: list[ast.expr] = []
            # `purpose`, `token_purpose`, and ListMail's `reply_purpose`, `unsubscribe_purpose`.
            if isinstance(node, ast.keyword) and (node.arg or "").endswith("purpose"):
                values.append(node.value)
            elif isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "token_purpose"
                ]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "continues"
            ):
                values.append(node.args[0])
            for value in _branches(values):
                if isinstance(value, ast.Name) and value.id in ("purpose", "token_purpose"):
                    continue  # passed through (sending.send, tokens.issue)
                if isinstance(value, ast.Attribute) and value.attr.endswith("_purpose"):
                    continue  # a field passed through (sending.ListMail's, into send)
                assert isinstance(value, ast.Attribute) and ast.unparse(value.value) == "tokens", (
                    f"{path.name}:{value.lineno}: a token purpose not named by model.tokens: "
                    f"{ast.unparse(value)}"
                )
                found.add(value.attr)
    return found


def _branches(values: list[ast.expr]) -> list[ast.expr]:
    """Each value that may be a purpose: both branches of `X if condition else Y`, however
    nested, but a None."""
    found: list[ast.expr] = []
    for value in values:
        if isinstance(value, ast.IfExp):
            found += _branches([value.body, value.orelse])
        elif not (isinstance(value, ast.Constant) and value.value is None):
            found.append(value)
    return found


def test_every_token_purpose_and_every_command_has_its_handler_in_a_fresh_process():
    seen = registered()
    from mailflow.model import tokens

    names = issued_purposes()
    # The scan sees the issuers: the form, the check-in, the survey, the coordinator's CONFIRM.
    assert {"FORM", "CHECKIN", "SURVEY", "CONFIRM_COMMANDS", "UNSUBSCRIBE"} <= names
    issued = {getattr(tokens, name) for name in names}
    assert issued <= set(seen["purposes"])
    assert set(seen["purposes"]) <= set(seen["conversations"])
    assert {"survey", "checkin", "stop-confirm", "delete-my-data"} <= set(seen["conversations"])
    # Leaving and erasure are acted on whatever the limits.
    assert {"STOP", "unsubscribe", "delete-my-data", "stop-confirm"} <= set(seen["always_acted"])
    for audience, expected in (
        ("participant", {"HELP", "APPLY", "STATUS", "PAUSE", "RESUME", "UPDATE", "AGAIN", "STOP"}),
        ("coordinator", {"HELP", "STATS", "FIND", "MATCH", "REMATCH", "ROUND", "BROADCAST"}),
    ):
        listed = seen["commands"][audience]
        assert expected <= {name for name, _, _ in listed}, audience
        assert all(runs for _, _, runs in listed)
        assert len({name for name, _, _ in listed}) == len(listed)  # none registered twice


def test_help_lists_exactly_the_registered_commands(tmp_path):
    """HELP, rendered in a fresh process, names every registered command by its usage."""
    home = tmp_path / "var"
    message = EmailMessage()
    message["From"] = ANN
    message["To"] = "program@example.org"
    message["Message-ID"] = "<help-1@uni.example.edu>"
    message.set_content("HELP\n")
    result = run_cli(home, "ingest", stdin=wire(message))
    assert result.returncode == 0, result.stderr.decode()
    assert "command:help:help -> help" in result.stdout.decode()
    with sqlite3.connect(home / "mailflow.db") as db:
        [(template,)] = db.execute("SELECT template FROM outbox").fetchall()
    assert template == "help"
    [answer] = inbox(home, ANN, "help")
    text = answer.get_content()
    for _, usage, _ in registered()["commands"]["participant"]:
        assert usage in text, usage


def test_a_survey_reply_piped_into_ingest_is_stored_and_thanked(matched):
    """In a fresh `mailflow ingest` process, which never imports the scheduler."""
    end = "2026-07-02T09:00:00Z"
    command(matched, "tick", "--now", end)
    [survey] = inbox(matched, ANN, "survey")
    reply_to = survey["Reply-To"].addresses[0].addr_spec
    reply = EmailMessage()
    reply["From"] = f"Ann Okafor <{ANN}>"
    reply["To"] = reply_to
    reply["Subject"] = "Re: " + survey["Subject"]
    reply["Message-ID"] = "<survey-reply-1@uni.example.edu>"
    reply["In-Reply-To"] = survey["Message-ID"]
    reply.set_content("5, yes\nIt was lovely to talk to Chen.\n")
    result = run_cli(
        matched,
        "ingest",
        "--sender",
        ANN,
        "--recipient",
        reply_to,
        stdin=wire(reply),
        MAILFLOW_NOW="2026-07-03T09:00:00Z",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "reply:survey:survey-answered -> survey-thanks" in result.stdout.decode()
    with sqlite3.connect(matched / "mailflow.db") as db:
        rows = db.execute(
            "SELECT q.email, s.rating, s.again, s.comment FROM survey_answers s"
            " JOIN participants q ON q.id = s.participant_id"
        ).fetchall()
        used = db.execute(
            "SELECT used_at FROM tokens WHERE purpose = 'survey' AND address = ? AND token = ?",
            [ANN, reply_to.split("+", 1)[1].split("@", 1)[0]],
        ).fetchone()
    assert rows == [(ANN, 5, 1, "It was lovely to talk to Chen.")]
    assert used is not None and used[0] is not None
    [thanks] = inbox(matched, ANN, "survey-thanks")
    assert "Rating: 5" in thanks.get_content()
    assert inbox(matched, ANN, "not-understood") == []


def test_the_fresh_process_check_can_fail():
    """The subprocess really is fresh: a registry read without the pipeline is empty."""
    bare = (
        "import json\nfrom mailflow.conversation import turn\n"
        "print(json.dumps(sorted(turn.CONVERSATIONS)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", bare],
        capture_output=True,
        cwd=ROOT,
        check=True,
        env=environment(Path("unused")),
    )
    assert json.loads(result.stdout) == []
