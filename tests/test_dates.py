"""read_date: the dates participants write after `PAUSE until`, as they write them, and the
text that must not become a date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailflow.read.dates import MONTHS, read_date

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # a Monday


def day(year: int, month: int, dom: int) -> datetime:
    return datetime(year, month, dom, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The contract's own examples and the forms people write.
        ("until 1 March", day(2027, 3, 1)),
        ("until 2027-03-01", day(2027, 3, 1)),
        ("1 March", day(2027, 3, 1)),
        ("March 1st", day(2027, 3, 1)),
        ("1st of March 2027", day(2027, 3, 1)),
        ("1 Mar", day(2027, 3, 1)),
        ("until the 5th of January", day(2027, 1, 5)),
        ("15.03.2027", day(2027, 3, 15)),
        ("2027/03/15", day(2027, 3, 15)),
        ("2027.3.15", day(2027, 3, 15)),
        ("March 5th, 2027", day(2027, 3, 5)),
        ("5th of January, 2027", day(2027, 1, 5)),
        ("5-Mar-2027", day(2027, 3, 5)),
        ("5 Sept.", day(2027, 9, 5)),
        ("Sept 5", day(2027, 9, 5)),
        ("january the 5th", day(2027, 1, 5)),
        ("the first of March", day(2027, 3, 1)),
        ("the twenty first of March", day(2027, 3, 21)),
        ("twenty-first March", day(2027, 3, 21)),
        ("up to 5th of Jan 2027", day(2027, 1, 5)),
        # Case, apostrophes, punctuation and courteous words around the date.
        ("UNTIL 1 MARCH", day(2027, 3, 1)),
        ("’til 1 March", day(2027, 3, 1)),
        ("till 1 March", day(2027, 3, 1)),
        ("Until: 1 March!", day(2027, 3, 1)),
        ("until 1 March.", day(2027, 3, 1)),
        ("until 1 March, please", day(2027, 3, 1)),
        ("1 March please", day(2027, 3, 1)),
        ("until 1 March, thanks!", day(2027, 3, 1)),
        ("1 March when I'm back from leave", day(2027, 3, 1)),
        ("1 March at the latest", day(2027, 3, 1)),
        ("  until\t1 March \n", day(2027, 3, 1)),
        # A weekday that agrees with the date.
        ("Monday 1 March 2027", day(2027, 3, 1)),
        ("Mon, 1 March 2027", day(2027, 3, 1)),
        ("Tuesday the 2nd of March 2027", day(2027, 3, 2)),
        # Numeric dates: day-first, month-first only where day-first is impossible.
        ("03/04/2027", day(2027, 4, 3)),
        ("03/15/2027", day(2027, 3, 15)),
        ("15/03/2027", day(2027, 3, 15)),
        ("1-3-2027", day(2027, 3, 1)),
        ("15.03.27", day(2027, 3, 15)),
        ("15/3", day(2027, 3, 15)),
        ("15.3.", day(2027, 3, 15)),
        # Without a year: the next such day, today included.
        ("1 December", day(2026, 12, 1)),
        ("23 November", day(2026, 11, 23)),
        ("22 November", day(2027, 11, 22)),
        ("29 Feb", day(2028, 2, 29)),
        # With a year: the day as written, even when it is past.
        ("2026-01-01", day(2026, 1, 1)),
        ("1 March 2020", day(2020, 3, 1)),
        ("29 February 2028", day(2028, 2, 29)),
    ],
)
def test_dates_people_write_are_read(text: str, expected: datetime) -> None:
    assert read_date(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "until",
        "until I am back",
        "until I'm back from maternity leave",
        "2 weeks",
        "in 2 weeks",
        "1-2 weeks",
        "1.5 weeks",
        "next week",
        "next Monday",
        "Monday",
        "tomorrow",
        "the end of term",
        "end of March",
        "until March",
        "March 2027",
        "2027",
        "the 5th",
        "until the 5th",
        "1 or 2 March",
        "1 March - 15 March",
        "1 March 10am",
        "1 March 27",
        "1-3",
        "1 mars",
        "1. März",
        "5 Mayo",
        "31 April",
        "29 February 2027",
        "32 March",
        "0 March",
        "13/13/2027",
        "2027-13-01",
        "2027-02-30",
        "Monday 2 March 2027",
        "42",
    ],
)
def test_text_that_is_not_one_date_gives_none(text: str) -> None:
    assert read_date(text, NOW) is None


def test_the_result_is_midnight_utc_and_aware() -> None:
    result = read_date("1 March", NOW)
    assert result is not None
    assert result.tzinfo is UTC
    assert (result.hour, result.minute, result.second, result.microsecond) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 01:00 on the 24th in Nairobi is still the 23rd in UTC: "23 November" is today.
        (datetime(2026, 11, 24, 1, 0, tzinfo=timezone(timedelta(hours=3))), day(2026, 11, 23)),
        # 23:00 on the 22nd in New York is already the 23rd in UTC.
        (datetime(2026, 11, 22, 23, 0, tzinfo=timezone(timedelta(hours=-5))), day(2026, 11, 23)),
        # 00:30 UTC on the 24th: the 23rd has passed.
        (datetime(2026, 11, 24, 0, 30, tzinfo=UTC), day(2027, 11, 23)),
        # A naive "now" is UTC, as every time without an offset is.
        (datetime(2026, 11, 23, 23, 59), day(2026, 11, 23)),
    ],
)
def test_without_a_year_today_is_the_day_of_now_in_utc(now: datetime, expected: datetime) -> None:
    assert read_date("23 November", now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2027, 1, 10, tzinfo=UTC), day(2028, 2, 29)),
        (datetime(2028, 2, 29, 12, 0, tzinfo=UTC), day(2028, 2, 29)),
        (datetime(2028, 3, 1, tzinfo=UTC), day(2032, 2, 29)),
        (datetime(2097, 1, 1, tzinfo=UTC), day(2104, 2, 29)),  # 2100 has no 29 February
    ],
)
def test_29_february_without_a_year_is_the_next_year_that_has_one(
    now: datetime, expected: datetime
) -> None:
    assert read_date("29 February", now) == expected


WRITTEN = [
    lambda d: d.isoformat(),
    lambda d: f"{d.day} {MONTHS[d.month - 1].title()} {d.year}",
    lambda d: f"until the {d.day}th of {MONTHS[d.month - 1][:3]} {d.year}, please",
    lambda d: f"{MONTHS[d.month - 1].title()} {d.day}, {d.year}",
    lambda d: f"{d.day:02}.{d.month:02}.{d.year}",
    lambda d: f"{d.year}/{d.month}/{d.day}",
]
NO_YEAR = [
    lambda d: f"{d.day} {MONTHS[d.month - 1]}",
    lambda d: f"until {MONTHS[d.month - 1][:3].upper()} {d.day}",
    lambda d: f"{d.day}.{d.month}.",
]


@given(
    st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    st.sampled_from(range(len(WRITTEN))),
)
def test_a_date_written_with_its_year_reads_back(written: date, form: int) -> None:
    expected = day(written.year, written.month, written.day)
    assert read_date(WRITTEN[form](written), NOW) == expected


@given(
    st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(range(len(NO_YEAR))),
)
def test_a_date_without_its_year_is_the_next_such_day(
    written: date, now: datetime, form: int
) -> None:
    result = read_date(NO_YEAR[form](written), now)
    assert result is not None
    assert (result.month, result.day) == (written.month, written.day)
    assert now.date() <= result.date()
    limit = 8 * 366 if (written.month, written.day) == (2, 29) else 366
    assert result.date() < now.date() + timedelta(days=limit)


@given(st.text(), st.datetimes(timezones=st.just(UTC)))
def test_any_text_gives_none_or_midnight_utc_and_never_raises(text: str, now: datetime) -> None:
    result = read_date(text, now)
    assert result is None or (result.tzinfo is UTC and result.time() == datetime.min.time())


@given(
    st.lists(
        st.sampled_from(["until", "I", "am", "back", "next", "week", "weeks", "soon", "2", "10"]),
        max_size=6,
    )
)
def test_words_and_bare_numbers_are_never_a_date(words: list[str]) -> None:
    assert read_date(" ".join(words), NOW) is None
