"""Wording people read lives in templates/, never in mailflow/ (STYLE.md, "Files and names").

Read from the source with `ast`, like tests/test_layers.py: a string constant of four or more
words is a sentence, unless it is a docstring, SQL, or an argument of a logging call, `print`
or an exception (those are for the operator). What remains must be named in ALLOWED with
the reason it is not wording for a person, or moved to a template.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mailflow.conversation import commands, router  # noqa: F401  router: every command registered
from mailflow.send.render import Renderer

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mailflow"
TEMPLATES = ROOT / "templates"

# Calls whose arguments are for the operator or the database, not for a participant.
OPERATOR_CALLS = frozenset(
    {"debug", "info", "warning", "error", "exception", "critical", "log", "print"}
    | {"execute", "executemany", "executescript", "query", "add_argument", "add_parser"}
    | {"ArgumentParser", "add_subparsers", "strftime", "strptime", "compile", "search"}
    | {"match", "fullmatch", "sub", "split"}
)
# SQL, whole or a fragment of a query built in parts: its keywords are written in capitals.
SQL = re.compile(
    r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|ALTER|PRAGMA)\b"
    r"|\b(?:SELECT|FROM|WHERE|AND|IS NOT NULL|VALUES)\b|\|\|"
)

# (module, the sentence's start) -> why it is not wording for a person to read, or why it
# stays; a start of "" allows every sentence of the module.
READS = "words people write, which the program reads: never sent"
JOURNAL = "an outcome or reason for the journal and the operator, never mailed"
ALLOWED: dict[tuple[str, str], str] = {
    # Read, not written.
    ("mailflow/read/trim.py", ""): READS + " (what mail clients put above a quote)",
    ("mailflow/read/countries.py", ""): READS + " (country names and their variants)",
    ("mailflow/read/timezones.py", ""): READS + " (time zone names)",
    ("mailflow/read/survey.py", ""): READS + " (survey answers)",
    ("mailflow/read/checkin.py", ""): READS + " (check-in answers)",
    # The blank form's hints (and its labels' variants) are shown, but also read back: a hint
    # left in a reply is not an answer (form._is_hint), so the reader must know them.
    ("mailflow/read/form.py", ""): "the blank form's hints, read back as well as shown",
    # For the operator and the journal.
    ("mailflow/read/classify.py", ""): "a rule's description, for the journal and the docs",
    ("mailflow/read/parse.py", "comment found without atom"): "the email package's defect",
    ("mailflow/app/bounces.py", ""): JOURNAL,
    ("mailflow/app/membership.py", ""): JOURNAL,
    ("mailflow/conversation/participant/leaving.py", ""): JOURNAL,
    ("mailflow/pipeline.py", ""): JOURNAL,
    ("mailflow/receive/handling.py", ""): JOURNAL,
    ("mailflow/budget.py", ""): JOURNAL,
    ("mailflow/logs.py", ""): "the log's line format",
    ("mailflow/config.py", ""): "a setting's meaning, for the operator (docs/settings.md)",
    ("mailflow/send/relay.py", ""): "the relay's refusal, for the operator",
    ("mailflow/model/rounds.py", ""): "a column list, and a rules file's error for the operator",
    ("mailflow/conversation/coordinator/proof.py", "refused: not a coordinator"): JOURNAL
    + " (the audit's outcome column, which `mailflow audit` prints)",
    ("mailflow/receive/smtp.py", ""): "an SMTP reply (RFC 5321) to the sending server",
    ("mailflow/cli.py", "environment:"): "the command line's --help, for the operator",
    ("mailflow/status.py", ""): "the health check's report and thresholds, for the operator",
}


def _skipped(tree: ast.AST) -> set[int]:
    """The ids of constants that are docstrings or sit inside an operator's call or raise."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        operator = None
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", "")
            if name in OPERATOR_CALLS:
                operator = node
        if isinstance(node, ast.Raise) and node.exc is not None:
            operator = node.exc
        if isinstance(node, ast.keyword) and node.arg == "usage":
            operator = node.value  # a command's syntax, shown as written: not a sentence
        if operator is not None:
            skipped.update(id(inner) for inner in ast.walk(operator))
    return skipped


def sentences() -> list[tuple[str, int, str]]:
    """(module, line, text) of every string constant in mailflow/ that reads as a sentence."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _skipped(tree)
        module = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in skipped or SQL.search(node.value):
                continue
            words = [word for word in node.value.split() if re.search(r"[A-Za-z]", word)]
            if len(words) >= 4:
                found.append((module, node.lineno, node.value))
    return found


def _allowed(module: str, text: str) -> bool:
    return any(module == where and text.startswith(start) for where, start in ALLOWED)


def _used(entry: tuple[str, str], found: list[tuple[str, int, str]]) -> bool:
    where, start = entry
    return any(module == where and text.startswith(start) for module, _, text in found)


def test_no_sentence_is_assembled_in_code() -> None:
    wording = [
        f"{module}:{line}: {text[:70]!r}"
        for module, line, text in sentences()
        if not _allowed(module, text)
    ]
    assert not wording, "wording in code; move it to templates/:\n" + "\n".join(wording)


def test_every_allowance_is_still_needed() -> None:
    found = sentences()
    assert [entry for entry in ALLOWED if not _used(entry, found)] == []


def test_every_command_has_a_summary_and_every_summary_a_command() -> None:
    summaries = Renderer(TEMPLATES).env.get_template("_summaries.txt").module.summaries
    registered = {(entry.audience, entry.name) for entry in commands.REGISTRY}
    worded = {(audience, name) for audience, names in summaries.items() for name in names}
    assert registered == worded


def test_every_kind_of_form_problem_has_a_sentence() -> None:
    source = (PACKAGE / "read" / "form.py").read_text(encoding="utf-8")
    kinds = set(re.findall(r'_Wrong\(\s*"([a-z-]+)"', source))
    worded = set(
        re.findall(r'problem\.kind == "([a-z-]+)"', (TEMPLATES / "_problems.txt").read_text())
    )
    assert kinds
    assert kinds == worded
