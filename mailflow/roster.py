"""The roster as CSV: bulk import of applicants and export of participants and partnerships.

Import validates every row with the same rules as the emailed form and reports each bad
row with its number and what to fix; good rows are saved even when others are not.
Columns follow CONTRACT.md; a header row may name them in any order.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from mailflow import form, participants
from mailflow.countries import country_name
from mailflow.program import Program
from mailflow.rounds import accepting
from mailflow.store import transaction

COLUMNS = ("email", *participants.PROFILE_COLUMNS)
EXPORT_COLUMNS = (*COLUMNS, "status", "partner_email")
PARTNERSHIP_COLUMNS = ("round", "email_a", "email_b", "email_c", "start", "end", "status", "score")
ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,}$")


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (row, email, what)
    round: str = ""

    def lines(self) -> list[str]:
        head = (
            f"{self.added} added, {self.updated} updated, {len(self.problems)} rows with"
            f" problems (round: {self.round})"
        )
        return [head] + [
            f"row {row} ({email or 'no email'}): {what}" for row, email, what in self.problems
        ]


def _rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    columns = list(COLUMNS)
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        names = [cell.strip().lower().replace(" ", "_") for cell in cells]
        if number == 1 and "email" in names and set(names) <= set(EXPORT_COLUMNS):
            columns = names
            continue
        yield number, dict(zip(columns, (cell.strip() for cell in cells), strict=False))


def import_csv(
    program: Program,
    text: str,
    now: datetime,
    *,
    countries: frozenset[str] | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Add or update applicants of the round accepting applications, in one transaction.

    `countries`: only people of these countries may be imported (a country coordinator's
    IMPORT); `dry_run`: validate and count, change nothing (the preview)."""
    db = program.db
    report = ImportReport()
    with transaction(db):
        current, _ = accepting(db, now)
        report.round = current.name
        for number, row in _rows(text):
            email = row.get("email", "").lower()
            if not ADDRESS.match(email):
                report.problems.append((number, email, "the email address is missing or invalid"))
                continue
            answers = {key: row.get(key, "") for key in COLUMNS[1:]}
            profile, problems = form.validate(answers, program.choices)
            if problems:
                what = "; ".join(f"{p.label}: {p.message}" for p in problems)
                report.problems.append((number, email, what))
                continue
            assert profile is not None
            if countries is not None and profile.country not in countries:
                report.problems.append((number, email, "not in one of your countries"))
                continue
            if dry_run:
                updated = participants.find(db, email) is not None
            else:
                participant_id, updated = participants.upsert(db, email, profile, now)
                participants.enrol(db, participant_id, current.id, now)
            if updated:
                report.updated += 1
            else:
                report.added += 1
    return report


def _partners(db) -> dict[int, list[str]]:
    """Each participant's partners in their active partnership."""
    partners: dict[int, list[str]] = {}
    rows = db.execute(
        "SELECT member_a, member_b, member_c FROM partnerships WHERE state = 'active'"
    ).fetchall()
    emails = dict(db.execute("SELECT id, email FROM participants").fetchall())
    for members in rows:
        present = [m for m in members if m is not None]
        for member in present:
            partners[member] = [emails[o] for o in present if o != member]
    return partners


def export_participants(db, countries: frozenset[str] | None = None) -> Iterable[list[str]]:
    """Everyone but erased rows; with `countries`, only the people of those countries."""
    yield list(EXPORT_COLUMNS)
    partners = _partners(db)
    cursor = db.execute(
        f"SELECT id, {', '.join(COLUMNS)}, status FROM participants"
        " WHERE email NOT LIKE ? ORDER BY id",
        [f"%@{participants.ERASED_DOMAIN}"],
    )
    for participant_id, *values in cursor:
        record = dict(zip((*COLUMNS, "status"), values, strict=True))
        if countries is not None and record["country"] not in countries:
            continue
        record["country"] = country_name(record["country"])
        record["partner_email"] = "; ".join(partners.get(participant_id, []))
        yield [str(record[column] or "") for column in EXPORT_COLUMNS]


def export_partnerships(db, countries: frozenset[str] | None = None) -> Iterable[list[str]]:
    """Every partnership; with `countries`, those with a member from one of them."""
    yield list(PARTNERSHIP_COLUMNS)
    cursor = db.execute(
        "SELECT rounds.name, a.email, b.email, c.email, p.term_start, p.term_end, p.state,"
        " p.score, a.country, b.country, c.country FROM partnerships p"
        " JOIN rounds ON rounds.id = p.round_id"
        " JOIN participants a ON a.id = p.member_a JOIN participants b ON b.id = p.member_b"
        " LEFT JOIN participants c ON c.id = p.member_c ORDER BY p.id"
    )
    for *row, country_a, country_b, country_c in cursor:
        if countries is not None and not {country_a, country_b, country_c} & countries:
            continue
        yield ["" if value is None else str(value) for value in row]


def to_csv(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
