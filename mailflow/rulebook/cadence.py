"""When the program writes on its own: the cadence of `rules/schedule.toml`, and the dates
it gives for one partnership.

Pure date arithmetic; `schedule.scheduler` applies it to the store. Coordinators edit the numbers
without touching code, so the file is read with errors that name the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mailflow.rulebook import read_table, wrong

FILE = "schedule.toml"
DAYS, ANSWERS, POINTS = "days", "answers", "points"
# section -> key -> (the Cadence field, (lowest, highest, unit) or None for true/false)
_KEYS = {
    "checkin": {
        "first_after_days": ("checkin_first_after_days", (1, 365, DAYS)),
        "every_days": ("checkin_every_days", (1, 365, DAYS)),
    },
    "reminder": {"after_days": ("reminder_after_days", (1, 60, DAYS))},
    "topic": {"first_weekday_of_month": ("topics", None)},
    "alert": {
        "no_word_answers": ("alert_no_word_answers", (1, 12, ANSWERS)),
        "silent_days": ("alert_silent_days", (1, 365, DAYS)),
    },
    "rematch": {"min_days_left": ("rematch_min_days_left", (0, 365, DAYS))},
    "invitation": {"after_term_days": ("invitation_after_term_days", (0, 365, DAYS))},
    "late": {"skip_after_days": ("skip_after_days", (0, 365, DAYS))},
    "bounce": {
        "permanent_points": ("bounce_permanent_points", (0, 100, POINTS)),
        "temporary_points": ("bounce_temporary_points", (0, 100, POINTS)),
        "unreachable_at": ("bounce_unreachable_at", (1, 1000, POINTS)),
        "half_life_days": ("bounce_half_life_days", (1, 365, DAYS)),
    },
}


@dataclass(frozen=True)
class Cadence:
    checkin_first_after_days: int = 14
    checkin_every_days: int = 30
    reminder_after_days: int = 5
    topics: bool = True
    alert_no_word_answers: int = 2
    alert_silent_days: int = 21
    rematch_min_days_left: int = 30
    invitation_after_term_days: int = 14
    skip_after_days: int = 7
    bounce_permanent_points: int = 3
    bounce_temporary_points: int = 1
    bounce_unreachable_at: int = 5
    bounce_half_life_days: int = 14

    @property
    def late(self) -> timedelta:
        return timedelta(days=self.skip_after_days)

    def checkins(self, introduced: datetime, term_end: datetime) -> list[datetime]:
        """Every check-in of a partnership: its due times, in order, within the term."""
        due, times = introduced + timedelta(days=self.checkin_first_after_days), []
        while due < term_end:
            times.append(due)
            due += timedelta(days=self.checkin_every_days)
        return times

    def topic_days(self, introduced: datetime, term_end: datetime) -> list[datetime]:
        """The first weekday of each month after the introduction, within the term."""
        if not self.topics:
            return []
        days, year, month = [], introduced.year, introduced.month
        while True:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day = datetime(year, month, 1, tzinfo=introduced.tzinfo)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            if day >= term_end:
                return days
            days.append(day)


def latest_due(times: list[datetime], now: datetime, late: timedelta) -> int | None:
    """The number (1 for the first) of the latest of `times` due by `now`, unless it fell
    due longer than `late` ago; earlier ones missed while the program was down are never
    sent in a burst."""
    number = sum(1 for time in times if time <= now)
    if not number or now - times[number - 1] > late:
        return None
    return number


def load_cadence(rules: Path) -> Cadence:
    """The cadence; RulesError naming the file, section and key when something is wrong."""
    path = rules / FILE
    values = {}
    for section, table in read_table(path, _KEYS).items():
        for key, value in table.items():
            field, limits = _KEYS[section][key]
            if limits is None:
                if not isinstance(value, bool):
                    raise wrong(path, section, key, "must be true or false")
            elif type(value) is not int or not limits[0] <= value <= limits[1]:
                low, high, unit = limits
                raise wrong(
                    path,
                    section,
                    key,
                    f"must be a whole number of {unit} from {low} to {high}, not {value!r}",
                )
            values[field] = value
    return Cadence(**values)
