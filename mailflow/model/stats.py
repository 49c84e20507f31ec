"""The figures behind a coordinator's STATS: who takes part, where, and how the rounds go.

It computes them and draws their chart; the words a coordinator reads around them are
`templates/results/stats.txt`'s, rendered by the STATS command, never this module's.

Every count is an SQL aggregate, so STATS costs a few index scans at 100,000 participants;
Python only ever loops over grouped rows (statuses, countries). It reads and never writes:
in particular it never calls `rounds.open_round`, which may create a round. Erased rows
are never counted, and a country coordinator's figures count only their countries.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import sqlite_utils
from PIL import Image, ImageDraw, ImageFont

from mailflow import config
from mailflow.model import partnerships
from mailflow.model.participants import ERASED_DOMAIN, Status
from mailflow.read import wishes
from mailflow.read.countries import country_name

STATUSES = tuple(Status)  # in the order of the CHECK on participants.status
CHECKIN_ANSWERS = (1, 2, 3, 4)  # what a check-in reply may say; templates word them
OTHER_CONTINENT = "Other"  # Antarctica, and codes GeoNames does not know
TOP_COUNTRIES = 15


@dataclass(frozen=True)
class CurrentRound:
    """The round accepting applications."""

    name: str
    applications: int
    closes_at: datetime | None


@dataclass(frozen=True)
class MatchedRound:
    """The round matched most recently (still running or ended)."""

    name: str
    active_partnerships: int
    term_start: datetime | None
    term_end: datetime | None
    mean_score: float | None  # over every partnership the round made


@dataclass(frozen=True)
class CheckIns:
    sent: int
    answered: int
    answers: tuple[tuple[int, int], ...]  # (answer 1-4, how many), all four

    @property
    def rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None


@dataclass(frozen=True)
class Survey:
    answers: int
    mean_rating: float | None  # 1-5, of those who gave a rating
    again_share: float | None  # of those who said yes or no to signing up again


@dataclass(frozen=True)
class Figures:
    at: datetime
    countries: frozenset[str] | None  # None: the whole program
    total: int
    by_status: tuple[tuple[str, int], ...]  # every status, in STATUSES order
    by_country: tuple[tuple[str, int], ...]  # English name, most first
    by_continent: tuple[tuple[str, int], ...]  # most first
    current_round: CurrentRound | None
    matched_round: MatchedRound | None
    checkins: CheckIns
    survey: Survey


def figures(
    db: sqlite_utils.Database, now: datetime, countries: frozenset[str] | None = None
) -> Figures:
    """The program's figures at `now`, limited to participants of `countries` when given."""
    scope, params = _scope(countries)
    statuses = dict.fromkeys(STATUSES, 0)
    by_code: dict[str, int] = {}
    # One scan gives the totals, statuses and countries alike.
    for status, code, count in db.execute(
        f"SELECT p.status, p.country, count(*) FROM participants p WHERE {scope}"
        " GROUP BY p.status, p.country",
        params,
    ).fetchall():
        statuses[status] = statuses.get(status, 0) + count
        by_code[code] = by_code.get(code, 0) + count
    by_continent: dict[str, int] = {}
    for code, count in by_code.items():
        continent = _continent(code)
        by_continent[continent] = by_continent.get(continent, 0) + count
    return Figures(
        at=now,
        countries=None if countries is None else frozenset(c.upper() for c in countries),
        total=sum(by_code.values()),
        by_status=tuple(statuses.items()),
        by_country=_most_first((country_name(code), n) for code, n in by_code.items()),
        by_continent=_most_first(by_continent.items()),
        current_round=_current_round(db, scope, params),
        matched_round=_matched_round(db, scope, params),
        checkins=_checkins(db, scope, params),
        survey=_survey(db, scope, params),
    )


def _scope(countries: frozenset[str] | None) -> tuple[str, list[str]]:
    """A condition on participants `p`: not erased, and in `countries` if given."""
    condition, params = "p.email NOT LIKE ?", [f"%@{ERASED_DOMAIN}"]
    if countries is not None:
        codes = sorted(code.upper() for code in countries)
        condition += f" AND p.country IN ({', '.join('?' * len(codes))})"
        params += codes
    return condition, params


@cache
def _regions() -> wishes.Regions:
    # load_regions puts a rules directory's own regions on top of the continents; only the
    # continents are wanted here, so the shipped directory (always readable) will do.
    return wishes.load_regions(config.SOURCE_ROOT / "rules")


def _continent(code: str) -> str:
    continents = _regions().of(code) & frozenset(wishes.CONTINENTS.values())
    return min(continents, default=OTHER_CONTINENT)


def _most_first(counts) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts, key=lambda item: (-item[1], item[0])))


def _time(text: str | None) -> datetime | None:
    return config.parse_time(text) if text else None


def _current_round(db: sqlite_utils.Database, scope: str, params: list) -> CurrentRound | None:
    # The same order as rounds.accepting, without its side effect of creating a round.
    row = db.execute(
        "SELECT id, name, closes_at FROM rounds WHERE state = 'open' ORDER BY opens_at, id LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    round_id, name, closes_at = row
    (applications,) = db.execute(
        "SELECT count(*) FROM applications a JOIN participants p ON p.id = a.participant_id"
        f" WHERE a.round_id = ? AND {scope}",
        [round_id, *params],
    ).fetchone()
    return CurrentRound(name, applications, _time(closes_at))


def _matched_round(db: sqlite_utils.Database, scope: str, params: list) -> MatchedRound | None:
    row = db.execute(
        "SELECT id, name, term_start, term_end FROM rounds WHERE matched_at IS NOT NULL"
        " ORDER BY matched_at DESC, id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    round_id, name, term_start, term_end = row
    # A partnership is a coordinator's when any member is in their countries. The mean
    # takes ended and dissolved ones too: a score rates the matching, which someone
    # leaving later does not change.
    active, mean = db.execute(
        "SELECT coalesce(sum(s.state = 'active'), 0), avg(s.score) FROM partnerships s"
        " WHERE s.round_id = ? AND EXISTS (SELECT 1 FROM participants p"
        f" WHERE p.id IN ({partnerships.members_of('s')}) AND {scope})",
        [round_id, *params],
    ).fetchone()
    return MatchedRound(name, active, _time(term_start), _time(term_end), mean)


def _checkins(db: sqlite_utils.Database, scope: str, params: list) -> CheckIns:
    # `scheduled` keeps only the latest check-in number sent to each member, and numbers
    # start at 1, so their sum is the check-ins sent. After downtime the scheduler skips
    # stale ones rather than sending a burst, which makes this an upper bound.
    (sent,) = db.execute(
        "SELECT coalesce(sum(s.number), 0) FROM scheduled s"
        " JOIN participants p ON p.id = s.participant_id"
        f" WHERE s.kind = 'checkin' AND {scope}",
        params,
    ).fetchone()
    answers = dict.fromkeys(CHECKIN_ANSWERS, 0)
    for answer, count in db.execute(
        "SELECT c.answer, count(*) FROM checkin_answers c"
        f" JOIN participants p ON p.id = c.participant_id WHERE {scope} GROUP BY c.answer",
        params,
    ).fetchall():
        answers[answer] = count
    return CheckIns(sent, sum(answers.values()), tuple(answers.items()))


def _survey(db: sqlite_utils.Database, scope: str, params: list) -> Survey:
    # avg() skips NULLs: a reply with a rating but no yes/no counts only for the rating.
    count, rating, again = db.execute(
        "SELECT count(*), avg(v.rating), avg(v.again) FROM survey_answers v"
        f" JOIN participants p ON p.id = v.participant_id WHERE {scope}",
        params,
    ).fetchone()
    return Survey(count, rating, again)


# --- Chart ------------------------------------------------------------------------------

CHART_WIDTH = 560
MARGIN = 14
LABEL_WIDTH = 110  # "North America", "unreachable"
BAR_HEIGHT = 14
ROW = 22
TITLE = 26
WHITE, INK, GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)
STATUS_COLOUR, CONTINENT_COLOUR = (47, 109, 176), (222, 127, 38)


def chart_png(figures: Figures, titles: tuple[str, str], empty: str) -> bytes:
    """Two horizontal bar charts, participants by status and by continent, as a small PNG;
    `titles` head the two and `empty` stands in a chart with no bars (the words are the
    caller's, from the templates)."""
    panels = [
        (titles[0], figures.by_status, STATUS_COLOUR),
        (titles[1], figures.by_continent, CONTINENT_COLOUR),
    ]
    height = MARGIN + sum(TITLE + max(len(rows), 1) * ROW + MARGIN for _, rows, _ in panels)
    image = Image.new("RGB", (CHART_WIDTH, height), WHITE)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(13)
    top = MARGIN
    for title, rows, colour in panels:
        draw.text((MARGIN, top), title, fill=INK, font=font)
        top += TITLE
        _bars(draw, font, rows, colour, top, empty)
        top += max(len(rows), 1) * ROW + MARGIN
    # Few colours in, few out: a 16-colour palette keeps the PNG a few kilobytes while the
    # text keeps its anti-aliasing.
    small = image.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _bars(draw: ImageDraw.ImageDraw, font, rows, colour, top: int, empty: str) -> None:
    left = MARGIN + LABEL_WIDTH
    # Room on the right of the longest bar for its count.
    longest = CHART_WIDTH - left - MARGIN - 56
    most = max((count for _, count in rows), default=0)
    if not rows:
        draw.text((left, top), empty, fill=INK, font=font)
    for index, (label, count) in enumerate(rows):
        y = top + index * ROW
        draw.text((MARGIN, y), label, fill=INK, font=font)
        draw.line((left, y - 2, left, y + BAR_HEIGHT + 2), fill=GRID)
        length = round(longest * count / most) if most else 0
        if length:
            draw.rectangle((left, y, left + length, y + BAR_HEIGHT - 1), fill=colour)
        draw.text((left + length + 6, y), f"{count:,}", fill=INK, font=font)
