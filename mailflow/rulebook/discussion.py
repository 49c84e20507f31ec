"""How a round's discussion runs: `rules/discussion.toml`.

The default delivery (every post, a daily or a weekly digest, or none), when digests go
out, how much one person may post, and which posts wait for a coordinator. Read with the
errors that name the file, the section and the key, like every rules file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailflow.rulebook import read_table, wrong

FILE = "discussion.toml"
MODES = ("every", "daily", "weekly", "quiet")
HOLDS = ("none", "first", "all")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SECTIONS = {
    "delivery": ("default", "digest_hour", "weekly_day"),
    "posting": ("per_day", "max_characters", "max_kilobytes"),
    "moderation": ("hold",),
}


@dataclass(frozen=True)
class DiscussionRules:
    default: str = "weekly"
    digest_hour: int = 6
    weekly_day: int = 0  # Monday, as datetime.weekday() counts
    per_day: int = 3
    max_characters: int = 8000
    max_kilobytes: int = 1024
    hold: str = "none"

    @property
    def max_bytes(self) -> int:
        return self.max_kilobytes * 1024


def load_discussion(rules: Path) -> DiscussionRules:
    """The rules of the discussions; the defaults for what the file leaves out (or for a
    rules folder without the file). RulesError naming the key when a value is wrong."""
    path = Path(rules) / FILE
    data = read_table(path, _SECTIONS, missing_ok=True)
    delivery = data.get("delivery", {})
    posting = data.get("posting", {})
    moderation = data.get("moderation", {})
    base = DiscussionRules()
    return DiscussionRules(
        default=_one_of(path, "delivery", "default", delivery, MODES, base.default),
        digest_hour=_number(path, "delivery", "digest_hour", delivery, 0, 23, base.digest_hour),
        weekly_day=DAYS.index(
            _one_of(path, "delivery", "weekly_day", delivery, DAYS, DAYS[base.weekly_day])
        ),
        per_day=_number(path, "posting", "per_day", posting, 1, 100, base.per_day),
        max_characters=_number(
            path, "posting", "max_characters", posting, 100, 100_000, base.max_characters
        ),
        max_kilobytes=_number(
            path, "posting", "max_kilobytes", posting, 16, 51_200, base.max_kilobytes
        ),
        hold=_one_of(path, "moderation", "hold", moderation, HOLDS, base.hold),
    )


def _one_of(path: Path, section: str, key: str, table: dict, allowed, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or value.lower() not in allowed:
        names = ", ".join(f'"{name}"' for name in allowed)
        raise wrong(path, section, key, f"must be one of {names}, not {value!r}")
    return value.lower()


def _number(path: Path, section: str, key: str, table: dict, low: int, high: int, default):
    value = table.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise wrong(
            path, section, key, f"must be a whole number from {low} to {high}, not {value!r}"
        )
    return value
