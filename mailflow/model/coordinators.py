"""Who coordinates the program, and over which countries.

A coordinator is program-wide (no countries) or a country coordinator, who sees and
changes only the participants of their countries. `MAILFLOW_COORDINATORS` are added at
every start as program-wide; others are added by `COORDINATOR ADD` or the CLI. Being
listed here says only who may ask: proof that a message really comes from them is
`conversation.coordinator.proof`'s business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.read.countries import country_name, normalise_country
from mailflow.store import iso


@dataclass(frozen=True)
class Coordinator:
    email: str
    countries: frozenset[str] = frozenset()  # ISO codes; empty: the whole program
    source: str = "config"

    @property
    def program_wide(self) -> bool:
        return not self.countries

    def covers(self, country: str | None) -> bool:
        return self.program_wide or (country or "") in self.countries

    def country_names(self) -> list[str]:
        """The countries' English names, sorted (none: the whole program); how the role
        reads in an answer is `templates/results/_scope.txt`'s."""
        return sorted(country_name(code) for code in self.countries)


def _coordinator(row: tuple) -> Coordinator:
    return Coordinator(row[0], frozenset(row[1].split()), row[2])


def find(db: sqlite_utils.Database, email: str) -> Coordinator | None:
    row = db.execute(
        "SELECT email, countries, source FROM coordinators WHERE email = ?", [email.lower()]
    ).fetchone()
    return _coordinator(row) if row else None


def listing(db: sqlite_utils.Database) -> list[Coordinator]:
    rows = db.execute("SELECT email, countries, source FROM coordinators ORDER BY email")
    return [_coordinator(row) for row in rows.fetchall()]


# No country name we read is longer (the longest in pycountry's translations has 77 characters
# and, but for a few in Tibetan script, 12 words):
# a run of words is never extended past these, so reading n words costs O(n), not O(n^2).
NAME_WORDS = 12
NAME_CHARACTERS = 100


def read_countries(
    words: Iterable[str], *, codes_in_capitals: bool = False
) -> tuple[frozenset[str], list[str]]:
    """(the ISO codes, the words that name no country). Names may have several words
    ('South Africa'), so the longest run of words that names a country is taken first.
    With `codes_in_capitals`, a short word is a country code only in capitals: in free
    text, 'bo' is a name and 'in' a preposition, not Bolivia and India."""
    words = [w.strip(",;") for w in words if w.strip(",;")]
    found: set[str] = set()
    unknown: list[str] = []
    start = 0
    while start < len(words):
        longest, size = start, 0
        while longest < min(len(words), start + NAME_WORDS):
            size += len(words[longest]) + 1
            if size > NAME_CHARACTERS + 1:
                break
            longest += 1
        for end in range(longest, start, -1):
            run = " ".join(words[start:end])
            if codes_in_capitals and len(run) <= 3 and not run.isupper():
                continue
            code = normalise_country(run)
            if code:
                found.add(code)
                start = end
                break
        else:
            unknown.append(words[start])
            start += 1
    return frozenset(found), unknown


def add(
    db: sqlite_utils.Database,
    email: str,
    countries: frozenset[str],
    *,
    source: str,
    by: str,
    now: datetime,
) -> bool:
    """Add the coordinator or change their countries; True when they were new."""
    email = email.lower()
    existed = find(db, email) is not None
    db.execute(
        "INSERT INTO coordinators (email, countries, source, added_by, added_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET countries = excluded.countries,"
        " source = excluded.source, added_by = excluded.added_by, added_at = excluded.added_at",
        [email, " ".join(sorted(countries)), source, by, iso(now)],
    )
    return not existed


def remove(db: sqlite_utils.Database, email: str) -> bool:
    return db.execute("DELETE FROM coordinators WHERE email = ?", [email.lower()]).rowcount > 0


def add_configured(db: sqlite_utils.Database, emails: Iterable[str], now: datetime) -> None:
    """MAILFLOW_COORDINATORS, at every start: program-wide, whatever a command made them.
    Whoever came only from an earlier value of it and is no longer in it is removed: the
    operator took them out."""
    emails = [email.lower() for email in emails]
    marks = ", ".join("?" for _ in emails)
    db.execute(
        f"DELETE FROM coordinators WHERE source = 'config' AND email NOT IN ({marks})", emails
    )
    for email in emails:
        current = find(db, email)
        if current is None or not current.program_wide or current.source != "config":
            add(db, email, frozenset(), source="config", by="configuration", now=now)
