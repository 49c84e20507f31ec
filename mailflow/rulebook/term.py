"""How long a round's term lasts unless the round says otherwise: `rules/program.toml`.

Only the number of months; `model.rounds` does the calendar arithmetic with it and never
reads the file itself.
"""

from __future__ import annotations

from pathlib import Path

from mailflow.rulebook import read_table, wrong

FILE = "program.toml"


def term_months(rules: Path) -> int:
    """The default term length; RulesError naming the file, section and key when wrong."""
    path = Path(rules) / FILE
    months = read_table(path, {"round": ("term_months",)}).get("round", {}).get("term_months")
    if months is None:
        raise wrong(path, "round", "term_months", "is missing: write the months of a term")
    if type(months) is not int or not 1 <= months <= 24:
        raise wrong(
            path, "round", "term_months", f"must be a whole number from 1 to 24, not {months!r}"
        )
    return months
