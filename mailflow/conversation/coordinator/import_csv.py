"""The coordinators' IMPORT command: applicants added or updated from an attached CSV file.

Its preview is a dry run of the same import, so the coordinator sees every bad row before
replying CONFIRM. A country coordinator imports only people of their countries.
"""

from __future__ import annotations

from mailflow.app import roster
from mailflow.conversation.commands import command
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
)

IMPORT_ROWS = 5_000  # of an emailed file; the operator's `mailflow import` reads them all
CSV_TYPES = ("text/csv", "text/comma-separated-values", "application/vnd.ms-excel", "text/plain")


def _csv_text(ask: Ask) -> tuple[str, str]:
    files = ask.attachments()
    for filename, content_type, data in files:
        if filename.lower().endswith(".csv") or content_type in CSV_TYPES:
            return filename, data.decode("utf-8-sig", errors="replace")
    raise Refusal("import", "no-csv")


def _import(ask: Ask, dry_run: bool) -> str:
    filename, text = _csv_text(ask)
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    report = roster.import_csv(
        ask.program, text, ask.now, countries=countries, dry_run=dry_run, max_rows=IMPORT_ROWS
    )
    return ask.say("import", "report", filename=filename, dry_run=dry_run, report=report)


@command(
    "IMPORT",
    audience=AUDIENCE,
    changes=True,
    preview=lambda ask: _import(ask, dry_run=True),
)
def import_(ask: Ask) -> str:
    return _import(ask, dry_run=False)
