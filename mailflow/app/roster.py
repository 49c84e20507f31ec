"""The roster as CSV: bulk import of applicants and export of participants and partnerships.

Import validates every row with the same rules as the emailed form and reports each bad
row with its number and what to fix; good rows are saved even when others are not.
Columns follow CONTRACT.md; a header row may name them in any order.

Export writes cells a spreadsheet would run as a formula (starting with =, +, -, @, a tab
or a carriage return) with a leading ' (OWASP's advice for CSV injection); import takes
that ' off again, so an exported file imports unchanged. A country coordinator's import
touches only participants of their countries, and tells nothing about anyone else: a row
for someone outside them reads as a bad address does, and a country coordinator's counts
do not tell an added person from an updated one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from mailflow.model import participants, partnerships
from mailflow.model.rounds import accepting
from mailflow.program import Program
from mailflow.read import form
from mailflow.read.countries import country_name
from mailflow.store import transaction

COLUMNS = ("email", *participants.PROFILE_COLUMNS)
EXPORT_COLUMNS = (*COLUMNS, "status", "partner_email")
PARTNERSHIP_COLUMNS = ("round", "email_a", "email_b", "email_c", "start", "end", "status", "score")
ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,}$")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RowProblem:
    """Why a row was not imported: a `kind` that `templates/results/import.txt` words, and
    the `data` its sentence needs (the form's problems, the reader's error, the limit)."""

    row: int
    email: str
    kind: str
    data: dict = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import did or would do; `templates/results/import.txt` words it."""

    added: int = 0
    updated: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    round: str = ""
    merged: bool = False  # a country coordinator's: added and updated counted as one


def _cell(text: str) -> str:
    """A cell as read: trimmed, and without the ' that export put before a formula."""
    text = text.strip()
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS:
        text = text[1:].strip()
    return text


def _rows(
    text: str, max_rows: int | None
) -> Iterator[tuple[int, dict[str, str] | None, RowProblem | None]]:
    """(row number, the row by column, None) for each row; (row number, None, what is
    wrong) for a row that cannot be read, after which nothing more is read."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    columns = list(COLUMNS)
    number, read = 0, 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # A cell over the csv module's field limit, or a broken quote: the rows after it
            # can't be told apart reliably, so reading stops here.
            yield number, None, RowProblem(number, "", "unreadable", {"error": str(error)})
            return
        if not any(cell.strip() for cell in cells):
            continue
        cells = [_cell(cell) for cell in cells]
        names = [cell.lower().replace(" ", "_") for cell in cells]
        if number == 1 and "email" in names and set(names) <= set(EXPORT_COLUMNS):
            columns = names
            continue
        read += 1
        if max_rows is not None and read > max_rows:
            yield number, None, RowProblem(number, "", "too-many", {"most": max_rows})
            return
        yield number, dict(zip(columns, cells, strict=False)), None


def import_csv(
    program: Program,
    text: str,
    now: datetime,
    *,
    countries: frozenset[str] | None = None,
    dry_run: bool = False,
    max_rows: int | None = None,
) -> ImportReport:
    """Add or update applicants of the round accepting applications, in one transaction.

    `countries`: only people of these countries may be imported, and only participants of
    these countries changed (a country coordinator's IMPORT); `dry_run`: validate and
    count, change nothing (the preview), and look up no address outside `countries`;
    `max_rows`: rows after that many are reported, not read."""
    db = program.db
    report = ImportReport(merged=countries is not None)
    # A country coordinator reads the same for a bad address and for someone not theirs.
    bad_address = "bad-address" if countries is None else "not-yours"
    with transaction(db):
        current, _ = accepting(db, now)
        report.round = current.name
        for number, row, unreadable in _rows(text, max_rows):
            if row is None:
                report.problems.append(unreadable)
                continue
            email = row.get("email", "").lower()
            if not ADDRESS.match(email):
                report.problems.append(RowProblem(number, email, bad_address))
                continue
            answers = {key: row.get(key, "") for key in COLUMNS[1:]}
            profile, problems = form.validate(answers, program.choices)
            if problems:
                report.problems.append(RowProblem(number, email, "form", {"problems": problems}))
                continue
            assert profile is not None
            if countries is not None:
                if profile.country not in countries:
                    report.problems.append(RowProblem(number, email, "not-your-country"))
                    continue
                existing = participants.find(db, email)
                if existing is not None and existing["country"] not in countries:
                    # Someone else's: refused at once, but the preview reads as for a newcomer.
                    if not dry_run:
                        report.problems.append(RowProblem(number, email, bad_address))
                        continue
                    existing = None
                if existing is not None and existing["country"] != profile.country:
                    report.problems.append(RowProblem(number, email, "country-change"))
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
    emails = dict(db.execute("SELECT id, email FROM participants").fetchall())
    for partnership in partnerships.running(db):
        for member in partnership.members:
            partners[member] = [emails[o] for o in partnership.members if o != member]
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
    for *row, country_a, country_b, country_c in partnerships.listing(db):
        if countries is not None and not {country_a, country_b, country_c} & countries:
            continue
        yield ["" if value is None else str(value) for value in row]


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def to_csv(rows: Iterable[list[str]]) -> str:
    """CSV for a spreadsheet: no cell can start a formula (see the module's docstring)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([_safe(c) for c in row] for row in rows)
    return buffer.getvalue()
