"""One owner for each piece of state: a participant's status is written by one function,
partnerships are created, ended and read by one module, and the statuses in the code are
the statuses the schema allows."""

from __future__ import annotations

import re
from pathlib import Path

from mailflow.model.participants import Status

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {
    path.relative_to(ROOT).as_posix(): path.read_text()
    for path in (ROOT / "mailflow").rglob("*.py")
}


def where(pattern: str) -> set[str]:
    return {name for name, text in SOURCES.items() if re.search(pattern, text, re.IGNORECASE)}


def test_the_status_is_written_in_one_place():
    assert where(r"UPDATE participants SET[^\"]*\bstatus\s*=") == {"mailflow/model/participants.py"}
    assert where(r"\bdef set_status\b") == {"mailflow/model/participants.py"}


def test_partnerships_have_one_owner():
    assert where(r"INSERT INTO partnerships") == {"mailflow/model/partnerships.py"}
    assert where(r"UPDATE partnerships") == {"mailflow/model/partnerships.py"}
    assert where(r"member_[abc]\b") == {"mailflow/model/partnerships.py"}


def test_the_statuses_are_the_schema_s():
    schema = (ROOT / "migrations" / "0001_initial.sql").read_text()
    check = re.search(r"status TEXT NOT NULL[^,]*CHECK \(status IN \(([^)]*)\)\)", schema)
    assert check is not None
    allowed = re.findall(r"'([a-z]+)'", check.group(1))
    assert [status.value for status in Status] == allowed


def test_the_checks_can_fail():
    SOURCES["elsewhere.py"] = "db.execute('UPDATE participants SET status = ?')"
    try:
        assert where(r"UPDATE participants SET[^\"]*\bstatus\s*=") == {
            "mailflow/model/participants.py",
            "elsewhere.py",
        }
    finally:
        del SOURCES["elsewhere.py"]
