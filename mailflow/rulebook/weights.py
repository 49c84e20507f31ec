"""The points and limits of matching, from `rules/matching.toml`.

`Weights` is what a pair is worth and how a round is made; `Weights()` holds the defaults,
and a missing file means them. Read here, below every layer that matches, so that the
program can keep it read (`program.rules.weights`); `matching` names it for its modules.
It never reads anything but the file, and never scores a pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailflow.errors import RulesError
from mailflow.rulebook import read_table
from mailflow.rulebook import wrong as rules_wrong

FILE = "matching.toml"


@dataclass(frozen=True)
class Weights:
    """The points of rules/matching.toml; `Weights()` holds the defaults."""

    pair: int = 100
    shared_interest: int = 20
    rare_interest: int = 30
    interests_up_to: int = 150
    same_library_type: int = 15
    same_career_stage: int = 10
    shared_contact_method: int = 10
    same_contact_frequency: int = 8
    near_contact_frequency: int = 4
    waking_hour_together: int = 2
    wish_met: int = 30
    waking_hours: tuple[int, int] = (8, 21)
    frequency_order: tuple[str, ...] = ("weekly", "fortnightly", "monthly")
    country_cap: float | None = None
    group_of_three: bool = True
    dense_up_to: int = 2500
    candidates: int = 16
    block_size: int = 400


_SECTIONS = {
    "score": (
        "pair",
        "shared_interest",
        "rare_interest",
        "interests_up_to",
        "same_library_type",
        "same_career_stage",
        "shared_contact_method",
        "same_contact_frequency",
        "near_contact_frequency",
        "waking_hour_together",
        "wish_met",
    ),
    "time": ("waking_hours",),
    "contact": ("frequency_order",),
    "round": ("country_cap", "group_of_three"),
    "scale": ("dense_up_to", "candidates", "block_size"),
}


def load_weights(rules: Path) -> Weights:
    """Read rules/matching.toml; a missing file gives the defaults. RulesError naming the
    file, the section and the key when one is unknown or of the wrong kind."""
    path = Path(rules) / FILE
    values: dict[str, object] = {}
    for section, table in read_table(path, _SECTIONS, missing_ok=True).items():
        for key, value in table.items():
            values[key] = _checked(path, section, key, value)
    return Weights(**values)


def _checked(path: Path, section: str, key: str, value: object) -> object:
    def wrong(what: str) -> RulesError:
        return rules_wrong(path, section, key, f"must be {what}, not {value!r}")

    if key == "waking_hours":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(v) is int and 0 <= v <= 24 for v in value)
            or value[0] >= value[1]
        ):
            raise wrong("two hours of the day, earlier first, like [8, 21]")
        return (value[0], value[1])
    if key == "frequency_order":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong('a list of frequencies, like ["weekly", "monthly"]')
        return tuple(v.strip().lower() for v in value)
    if key == "country_cap":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise wrong("a share between 0 (off) and 1, like 0.2")
        return float(value) or None
    if key == "group_of_three":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if type(value) is not int or value < 0:
        raise wrong("a whole number, 0 or more")
    if key in ("dense_up_to", "candidates", "block_size") and value < 2:
        raise wrong("a whole number, 2 or more")
    return value
