"""The values of matching: who applies, what a pair is worth, what a round gives back.

`Applicant` goes in, `Weights` holds the points of rules/matching.toml, `Pair` and
`Matching` come out; `Progress` and `NOT_ALLOWED` are shared by the stages that follow.
Every other module of the package builds on this one, and this one imports none of them.

It never reads the store or the clock. `load_weights` is the package's only file access,
and the caller does it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailflow.errors import RulesError

Progress = Callable[[str, int, int], None]
NOT_ALLOWED = -1


@dataclass(frozen=True)
class Applicant:
    id: int
    country: str  # ISO 3166-1 alpha-2
    languages: frozenset[str]
    interests: frozenset[str]  # lower-case phrases
    library_type: str
    career_stage: str
    contact_methods: frozenset[str]
    contact_frequency: str
    utc_offset: int  # minutes east of UTC
    wishes: frozenset[str] = frozenset()  # "kind:value" keys, see `describe`
    regions: frozenset[str] = frozenset()  # regions the country belongs to, e.g. "Africa"


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


@dataclass(frozen=True)
class Pair:
    members: tuple[int, ...]  # two, or three for the one group of three
    score: int
    reasons: tuple[str, ...]
    by_hand: bool = False


@dataclass(frozen=True)
class Matching:
    pairs: tuple[Pair, ...]
    unmatched: tuple[tuple[int, str], ...]  # (id, why) of those who could not be paired
    deferred: tuple[tuple[int, str], ...]  # (id, why) of those kept for the next round
    total: int  # a group of three counts at the score of the pair it grew from
    upper_bound: int  # no matching on the candidate graph has a higher total
    candidate_graph: str  # "complete", or "sparse top-16" on large rounds

    @property
    def certified_ratio(self) -> float:
        return 1.0 if self.upper_bound <= 0 else self.total / self.upper_bound


# --- Weights --------------------------------------------------------------------------

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


def load_weights(rules_dir: Path) -> Weights:
    """Read rules_dir/matching.toml; a missing file gives the defaults.

    Raises RulesError naming the setting when one is unknown or of the wrong kind.
    """
    path = Path(rules_dir) / "matching.toml"
    if not path.exists():
        return Weights()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{path.name}: {error}") from None
    values: dict[str, object] = {}
    for section, table in data.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            known = ", ".join(f"[{s}]" for s in _SECTIONS)
            raise RulesError(f"{path.name}: [{section}] is not a section we know ({known})")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise RulesError(
                    f"{path.name}: {key} is not a setting of [{section}]; "
                    f"the settings are {', '.join(_SECTIONS[section])}"
                )
            values[key] = _checked(path.name, key, value)
    return Weights(**values)


def _checked(source: str, key: str, value: object) -> object:
    def wrong(what: str) -> RulesError:
        return RulesError(f"{source}: {key} must be {what}, not {value!r}")

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
