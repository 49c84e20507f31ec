"""Participants found by words: the rows behind a coordinator's FIND.

Every word must appear somewhere in a participant's address, name, role, library type,
interests or career stage; `%` and `_` in a word are matched as themselves. Erased rows
are never found. It reads and never writes.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from mailflow.model import participants

# The columns a word is looked for in, read as one line of text.
SEARCHED = (
    "(email || ' ' || name || ' ' || role || ' ' || library_type || ' ' || interests"
    " || ' ' || career_stage)"
)


def participants_with(
    db: sqlite_utils.Database, words: Iterable[str], countries: Iterable[str] | None = None
) -> list[dict]:
    """The participants whose text holds every one of `words`, in `countries` if any are
    given (None or empty: every country)."""
    where = ["email NOT LIKE ?"]
    values: list = [f"%@{participants.ERASED_DOMAIN}"]
    codes = sorted(countries or ())
    if codes:
        where.append(f"country IN ({', '.join('?' for _ in codes)})")
        values += codes
    for word in words:
        where.append(f"{SEARCHED} LIKE ? ESCAPE '\\'")
        values.append(containing(word))
    return participants.select(db, " AND ".join(where), values)


def containing(word: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') for text that holds `word`, its `%` and `_` too."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
