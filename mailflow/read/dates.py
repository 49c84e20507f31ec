"""Dates that participants write in mail, as after `PAUSE until`: "1 March", "March 1st",
"the 5th of January 2027", "2027-03-01", "15.03.2027", read as 00:00 UTC of that day.

A pure reader: a function of the text and "now" that never looks at the clock and never
raises. It refuses rather than guesses. The text must be a date and nothing else, give or
take a leading "until", a weekday and trailing words such as "please" or "when I am back";
so "until I am back", "2 weeks" and "next week" give None, never a day.

How ambiguous forms are read:
- All-numeric dates are day-first, the program being international: 03/04/2027 is 3 April.
  Month-first only where day-first is impossible (03/15/2027); a four-digit year written
  first is always year-month-day (2027/03/15). A two-digit year is 20yy.
- Without a year, the next such day on or after the day of "now" in UTC: "until 1 March"
  written on 1 March means today, not a year's pause. 29 February without a year is the
  next year that has one.
- With a year, the date is returned even when it is past: the caller says so.
- A weekday that disagrees with the date gives None ("Monday 2 March 2027" is a Tuesday).
- A month alone ("until March"), a day alone ("the 5th"), a range ("1-2 March"), a time
  ("1 March 10am") and words around the date that could change it ("1 or 2 March",
  "end of March") give None.

dateutil's parser is not used: its fuzzy mode reads "2 weeks" as the 2nd of this month, a
`default=` in a common year refuses "29 Feb", "the next such date" is no default it can
express, and it turns two-digit years into centuries by the machine's clock, not "now".
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

MAX_TEXT = 200  # a date, a weekday and a few courteous words are shorter
LEAP_CYCLE = 8  # 29 February comes back within this many years (2096, then 2104)

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
ORDINAL_WORDS = (
    *_UNITS,
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
    *(f"twenty-{unit}" for unit in _UNITS),
    "thirtieth",
    "thirty-first",
)
# Words that may follow a date without changing it: "1 March, please", "1 March when I am back".
AFTERWORDS = frozenset(
    {"please", "pls", "plz", "thanks", "thank", "thx", "cheers", "when", "as", "because"}
    | {"since", "at", "latest", "inclusive", "included"}
)

_LEAD = re.compile(r"(?:(?:up\s+)?(?:until|till|til|'til|untill|to)\b[\s:,]*)?")
_WEEKDAY = re.compile(r"(?:the\s+)?(?P<weekday>[a-z]{3,})\.?,?\s+")
_ORDINAL_DAYS = {word.replace("-", ""): day for day, word in enumerate(ORDINAL_WORDS, 1)}
_ORDINAL = "|".join(
    word.replace("-", "[\\s-]?") for word in sorted(ORDINAL_WORDS, key=len, reverse=True)
)
_DAY = rf"(?:(?P<day>\d{{1,2}})(?!\d)(?:st|nd|rd|th)?|(?P<day_word>{_ORDINAL}))"
_YEAR = r"(?P<year>\d{4})(?!\d)"
_YEAR_FIRST = re.compile(
    r"(?P<year>\d{4})(?P<sep>[-/.])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})(?!\d)"
)
_NUMERIC = re.compile(
    r"(?P<first>\d{1,2})(?P<sep>[./-])(?P<second>\d{1,2})(?!\d)"
    r"(?:(?P=sep)(?P<year>\d{4}|\d{2})(?!\d))?"
)
_DAY_MONTH = re.compile(
    rf"(?:the\s+)?{_DAY}(?:\s+of\s+|[\s./-]*)(?P<month_name>[a-z]{{3,}})\.?(?:,?[\s./-]*{_YEAR})?"
)
_MONTH_DAY = re.compile(rf"(?P<month_name>[a-z]{{3,}})\.?(?:\s+the)?[\s-]*{_DAY}(?:,?\s*{_YEAR})?")
# After a date: another number ("1 March 27", "1 March 10am") or a range ("1 March - 5").
_MORE_NUMBERS = re.compile(r"\d|[-–—/]\s*\d")
_WORD = re.compile(r"[^\W\d_]+")


def read_date(text: str, now: datetime) -> datetime | None:
    """00:00 UTC of the day `text` names ("until 1 March", "2027-03-01", "15.03.2027"),
    the next such day on or after now's when no year is given; None if none is readable."""
    today = now.astimezone(UTC).date() if now.tzinfo else now.date()
    words = " ".join(text[:MAX_TEXT].replace("’", "'").split()).lower()
    words = words[_LEAD.match(words).end() :]
    weekday = None
    named = _WEEKDAY.match(words)
    if named and (number := _named(named["weekday"], WEEKDAYS)):
        weekday, words = number, words[named.end() :]

    found = _read(words, today)
    if found is None:
        return None
    day, rest = found
    if not _ends_cleanly(rest) or (weekday and day.isoweekday() != weekday):
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _read(words: str, today: date) -> tuple[date, str] | None:
    """The date at the start of `words` and the words after it."""
    if match := _YEAR_FIRST.match(words):
        year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
        return _on(year, month, day, today, match, words)
    if match := _NUMERIC.match(words):
        first, second = int(match["first"]), int(match["second"])
        if match["year"] is None and match["sep"] == "-":
            return None  # "1-2" is a range far more often than 1 February
        # Day-first, unless only month-first makes a date.
        day, month = (second, first) if first <= 12 < second else (first, second)
        year = int(match["year"]) if match["year"] else None
        if year is not None and len(match["year"]) == 2:
            year += 2000
        return _on(year, month, day, today, match, words)
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        if match := pattern.match(words):
            month = _named(match["month_name"], MONTHS)
            if month is None:
                return None
            if match["day"]:
                day = int(match["day"])
            else:
                day = _ORDINAL_DAYS[re.sub(r"[\s-]", "", match["day_word"])]
            year = int(match["year"]) if match["year"] else None
            return _on(year, month, day, today, match, words)
    return None


def _on(
    year: int | None, month: int, day: int, today: date, match: re.Match[str], words: str
) -> tuple[date, str] | None:
    """The day itself, or the next one on or after today when the year is not given."""
    years = [year] if year is not None else range(today.year, today.year + LEAP_CYCLE + 1)
    for candidate_year in years:
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if year is not None or candidate >= today:
            return candidate, words[match.end() :]
    return None


def _named(word: str, names: tuple[str, ...]) -> int | None:
    """1-based position of the name `word` is, or abbreviates to three letters or more."""
    if len(word) >= 3:
        for number, name in enumerate(names, 1):
            if name.startswith(word):
                return number
    return None


def _ends_cleanly(rest: str) -> bool:
    rest = rest.strip()
    if not rest:
        return True
    if _MORE_NUMBERS.match(rest):
        return False
    word = _WORD.match(rest)
    return word is None or word.group() in AFTERWORDS
