"""Time zones as people write them ("Sydney", "UTC+10", "EST", "europe/berlin"), turned into
an IANA name or a fixed offset written "UTC+10:00", and the offset of either at a moment.

It must never guess between equally likely answers: "IST" is India, Ireland or Israel, so
without a country it gives None and the person is asked. City tables are built once, lazily,
from `cities.tsv` beside this module: GeoNames' cities of 15,000 people or more (CC BY 4.0),
folded and cut to the fields used here by `python -m tools.places` (tools/places.py) at
development time, so that no 179 MB package is installed for them.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import NamedTuple

from mailflow.read.countries import fold_name, normalise_country

_FIXED = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")
# "UTC+10", "GMT -3", "+5:30", "UTC+0530", "UTC+5.5", "-03:00"; the sign is required,
# so a bare number is never taken for an offset.
_OFFSET = re.compile(
    r"^(?:utc|gmt|z)?\s*(?P<sign>[+-])\s*(?P<hours>\d{1,2})"
    r"(?:(?::|h|\.)?(?P<minutes>\d{2})|\.(?P<fraction>25|5|75))?\s*(?:h|hrs?|hours?)?$"
)
_DASHES = str.maketrans({"−": "-", "–": "-", "—": "-", "‐": "-", "＋": "+", "：": ":"})
_MAX_LENGTH = 100

# Abbreviations and names of zones, folded, to a representative IANA zone; the key None is
# the answer without a country, and is missing where the abbreviation is ambiguous.
# Country keys say what the same words mean there ("EST" in Australia is Sydney's time).
ABBREVIATIONS: dict[str, dict[str | None, str]] = {
    "utc": {None: "UTC+00:00"},
    "gmt": {None: "UTC+00:00", "GB": "Europe/London", "IE": "Europe/Dublin"},
    "z": {None: "UTC+00:00"},
    "zulu": {None: "UTC+00:00"},
    "coordinated universal time": {None: "UTC+00:00"},
    "universal time": {None: "UTC+00:00"},
    "greenwich mean time": {None: "UTC+00:00", "GB": "Europe/London", "IE": "Europe/Dublin"},
    "bst": {"GB": "Europe/London", "BD": "Asia/Dhaka"},
    "british summer time": {None: "Europe/London"},
    "uk time": {None: "Europe/London"},
    "ist": {"IN": "Asia/Kolkata", "IE": "Europe/Dublin", "IL": "Asia/Jerusalem"},
    "india standard time": {None: "Asia/Kolkata"},
    "indian standard time": {None: "Asia/Kolkata"},
    "irish standard time": {None: "Europe/Dublin"},
    "israel standard time": {None: "Asia/Jerusalem"},
    "wet": {None: "Europe/Lisbon"},
    "west": {None: "Europe/Lisbon"},
    "cet": {None: "Europe/Paris"},
    "cest": {None: "Europe/Paris"},
    "central european time": {None: "Europe/Paris"},
    "central european summer time": {None: "Europe/Paris"},
    "eet": {None: "Europe/Athens"},
    "eest": {None: "Europe/Athens"},
    "eastern european time": {None: "Europe/Athens"},
    "msk": {None: "Europe/Moscow"},
    "moscow time": {None: "Europe/Moscow"},
    "eat": {None: "Africa/Nairobi"},
    "east africa time": {None: "Africa/Nairobi"},
    "wat": {None: "Africa/Lagos"},
    "west africa time": {None: "Africa/Lagos"},
    "cat": {None: "Africa/Maputo"},
    "central africa time": {None: "Africa/Maputo"},
    "sast": {None: "Africa/Johannesburg"},
    "south africa standard time": {None: "Africa/Johannesburg"},
    "pkt": {None: "Asia/Karachi"},
    "npt": {None: "Asia/Kathmandu"},
    "ict": {None: "Asia/Bangkok"},
    "wib": {None: "Asia/Jakarta"},
    "wita": {None: "Asia/Makassar"},
    "wit": {None: "Asia/Jayapura"},
    "myt": {None: "Asia/Kuala_Lumpur"},
    "sgt": {None: "Asia/Singapore"},
    "hkt": {None: "Asia/Hong_Kong"},
    "pht": {None: "Asia/Manila"},
    "pst": {None: "America/Los_Angeles", "PH": "Asia/Manila"},
    "jst": {None: "Asia/Tokyo"},
    "kst": {None: "Asia/Seoul"},
    "cst": {
        "US": "America/Chicago",
        "CA": "America/Winnipeg",
        "MX": "America/Mexico_City",
        "CN": "Asia/Shanghai",
        "TW": "Asia/Taipei",
        "CU": "America/Havana",
    },
    "china standard time": {None: "Asia/Shanghai"},
    "awst": {None: "Australia/Perth"},
    "acst": {None: "Australia/Adelaide"},
    "acdt": {None: "Australia/Adelaide"},
    "aest": {None: "Australia/Sydney"},
    "aedt": {None: "Australia/Sydney"},
    "australian eastern standard time": {None: "Australia/Sydney"},
    "australian eastern time": {None: "Australia/Sydney"},
    "nzst": {None: "Pacific/Auckland"},
    "nzdt": {None: "Pacific/Auckland"},
    "new zealand time": {None: "Pacific/Auckland"},
    "est": {None: "America/New_York", "AU": "Australia/Sydney", "CA": "America/Toronto"},
    "edt": {None: "America/New_York", "CA": "America/Toronto"},
    "et": {None: "America/New_York", "CA": "America/Toronto"},
    "eastern": {None: "America/New_York", "CA": "America/Toronto", "AU": "Australia/Sydney"},
    "eastern time": {None: "America/New_York", "CA": "America/Toronto"},
    "eastern standard time": {None: "America/New_York", "CA": "America/Toronto"},
    "cdt": {None: "America/Chicago", "CA": "America/Winnipeg"},
    "ct": {None: "America/Chicago", "CA": "America/Winnipeg"},
    "central time": {None: "America/Chicago", "CA": "America/Winnipeg"},
    "central standard time": {None: "America/Chicago", "CA": "America/Winnipeg"},
    "mst": {None: "America/Denver", "CA": "America/Edmonton"},
    "mdt": {None: "America/Denver", "CA": "America/Edmonton"},
    "mt": {None: "America/Denver", "CA": "America/Edmonton"},
    "mountain time": {None: "America/Denver", "CA": "America/Edmonton"},
    "pdt": {None: "America/Los_Angeles", "CA": "America/Vancouver"},
    "pt": {None: "America/Los_Angeles", "CA": "America/Vancouver"},
    "pacific time": {None: "America/Los_Angeles", "CA": "America/Vancouver"},
    "pacific standard time": {None: "America/Los_Angeles", "CA": "America/Vancouver"},
    "akst": {None: "America/Anchorage"},
    "hst": {None: "Pacific/Honolulu"},
    "ast": {"CA": "America/Halifax", "PR": "America/Puerto_Rico", "SA": "Asia/Riyadh"},
    "atlantic time": {None: "America/Halifax"},
    "nst": {None: "America/St_Johns"},
    "brt": {None: "America/Sao_Paulo"},
    "brasilia time": {None: "America/Sao_Paulo"},
    "art": {None: "America/Argentina/Buenos_Aires"},
    "la": {None: "America/Los_Angeles"},
    "nyc": {None: "America/New_York"},
}

# Words people add around a zone: "Sydney time", "time zone: Nairobi".
_FILLER = re.compile(r"^(?:time ?zone|tz)\s+|\s+(?:time|local time|time ?zone)$")
_QUALIFIED = re.compile(r"^(?P<main>[^,(]+?)\s*(?:,\s*(?P<after>.+)|\((?P<inside>[^)]*)\)\s*)$")
_ETC_GMT = re.compile(r"^etc/gmt(?P<sign>[+-])(?P<hours>\d{1,2})$")


class _City(NamedTuple):
    population: int
    country: str
    zone: str


def normalise_time_zone(text: str, country: str | None = None) -> str | None:
    """IANA zone name or "UTC±HH:MM" for what someone wrote as their time zone, or None.

    `country` (alpha-2) settles what is ambiguous without it: which Perth, which "IST".
    """
    if not isinstance(text, str) or len(text) > _MAX_LENGTH:
        return None
    country = (country or "").upper() or None
    text = " ".join(text.translate(_DASHES).split()).strip(" .;\"'")
    if not text:
        return None
    for candidate, where in _readings(text, country):
        zone = _one_zone(candidate, where)
        if zone is not None:
            return zone
    return None


def _readings(text: str, country: str | None) -> Iterator[tuple[str, str | None]]:
    """The text as a whole, then its parts: "Sydney, Australia", "GMT+1 (CET)"."""
    yield text, country
    bare = _FILLER.sub("", text.lower()).strip()
    if bare and bare != text.lower():
        yield bare, country
    qualified = _QUALIFIED.match(text)
    if qualified is None:
        return
    main = qualified["main"]
    other = (qualified["after"] or qualified["inside"] or "").strip()
    named = normalise_country(other) if other else None
    if named is not None:
        yield main, named
        return
    # "UTC+10 (Sydney)": the place knows about summer time, the offset does not.
    readings = [(main, country), (other, country)] if other else [(main, country)]
    if _offset(main) is not None:
        readings.reverse()
    yield from readings


def _one_zone(text: str, country: str | None) -> str | None:
    return (
        _offset(text)
        or _abbreviation(text, country)
        or _iana(text)
        or _city(text, country)
        or _country_zone(text)
    )


def _fixed(minutes: int) -> str | None:
    if not -12 * 60 <= minutes <= 14 * 60 or minutes % 15:
        return None
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _offset(text: str) -> str | None:
    found = _OFFSET.match(text.lower())
    if found is None:
        return None
    hours = int(found["hours"])
    if found["fraction"]:
        minutes = {"25": 15, "5": 30, "75": 45}[found["fraction"]]
    else:
        minutes = int(found["minutes"] or 0)
    if minutes >= 60:
        return None
    total = hours * 60 + minutes
    return _fixed(-total if found["sign"] == "-" else total)


def _abbreviation(text: str, country: str | None) -> str | None:
    meanings = ABBREVIATIONS.get(fold_name(text))
    if meanings is None:
        return None
    if country in meanings:
        return meanings[country]
    return meanings.get(None)


@cache
def _zone_names() -> dict[str, str]:
    """Lower-case IANA name -> its proper spelling."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _iana(text: str) -> str | None:
    key = text.strip().lower().replace(" ", "_")
    etc = _ETC_GMT.match(key)
    if etc is not None:  # Etc/GMT+5 is five hours *behind* UTC: POSIX signs are reversed
        hours = int(etc["hours"])
        return _fixed(hours * 60 if etc["sign"] == "-" else -hours * 60)
    if key in {"utc", "etc/utc", "etc/gmt", "gmt", "universal", "zulu", "etc/universal"}:
        return "UTC+00:00"
    if "/" not in key:  # "EST", "CET" and other bare legacy names are abbreviations above
        return None
    return _zone_names().get(key)


def _tab(name: str) -> list[list[str]]:
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # system zoneinfo without tzdata
        return []
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def _zone_countries() -> tuple[dict[str, frozenset[str]], dict[str, tuple[str, ...]]]:
    """(zone -> countries it serves, country -> its zones in tzdata's order)."""
    by_zone: dict[str, set[str]] = {}
    by_country: dict[str, list[str]] = {}
    for row in _tab("zone.tab"):
        if len(row) >= 3:
            by_zone.setdefault(row[2], set()).add(row[0])
            by_country.setdefault(row[0], []).append(row[2])
    return (
        {zone: frozenset(codes) for zone, codes in by_zone.items()},
        {code: tuple(zones) for code, zones in by_country.items()},
    )


@cache
def _zone_cities() -> dict[str, tuple[str, ...]]:
    """Folded city part of each canonical IANA zone ("sao paulo") -> zones."""
    zones = _zone_countries()[0] or {name: frozenset() for name in _zone_names().values()}
    cities: dict[str, list[str]] = {}
    for zone in sorted(zones):
        if "/" in zone and not zone.startswith("Etc/"):
            cities.setdefault(fold_name(zone.rsplit("/", 1)[1]), []).append(zone)
    return {name: tuple(found) for name, found in cities.items()}


@cache
def _geonames() -> tuple[dict[str, tuple[_City, ...]], dict[str, tuple[_City, ...]]]:
    """(folded city name -> cities, folded other name -> big cities), most populous first.

    Every city a person is likely to name; other names only of big cities (Bombay, München,
    Roma), since those of small towns include ordinary words.
    """
    text = resources.files(__package__).joinpath("cities.tsv").read_text("utf-8")
    names: dict[str, list[_City]] = {}
    others: dict[str, list[_City]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        own, population, country, zone, other = line.split("\t")
        city = _City(int(population), country, zone)
        names.setdefault(own, []).append(city)
        for name in other.split(",") if other else ():
            others.setdefault(name, []).append(city)

    def ranked(table: dict[str, list[_City]]) -> dict[str, tuple[_City, ...]]:
        return {key: tuple(sorted(found, reverse=True)) for key, found in table.items()}

    return ranked(names), ranked(others)


def _city(text: str, country: str | None) -> str | None:
    key = fold_name(text)
    if not key or not any(ch.isalpha() for ch in key):
        return None
    names, others = _geonames()
    cities = names.get(key, ())
    iana = _zone_cities().get(key, ())
    also = others.get(key, ())
    if country:
        zone_countries = _zone_countries()[0]
        for city in cities:
            if city.country == country:
                return _own_zone(city)
        for zone in iana:
            if country in zone_countries.get(zone, ()):
                return zone
        for city in also:
            if city.country == country:
                return _own_zone(city)
    if iana:
        return iana[0]
    # A small town's own name loses to a big city's other name ("Calcutta" is Kolkata).
    ranked = sorted((*cities, *also), reverse=True)
    return _own_zone(ranked[0]) if ranked else None


_MOMENTS = (datetime(2025, 1, 15, 12, tzinfo=UTC), datetime(2025, 7, 15, 12, tzinfo=UTC))


def _offsets(zone: str) -> tuple[int, ...]:
    """Winter and summer offsets: two zones with the same keep the same time."""
    return tuple(utc_offset_minutes(zone, moment) for moment in _MOMENTS)


def _own_zone(city: _City) -> str:
    """The city's zone, or its own country's zone keeping the same time.

    geonames files Hanoi under Asia/Bangkok, which tzdata merged it into; a person in
    Hanoi should see a Vietnamese zone.
    """
    zones = _zone_countries()[1].get(city.country, ())
    if not zones or city.zone in zones:
        return city.zone
    wanted = _offsets(city.zone)
    return next((zone for zone in zones if _offsets(zone) == wanted), city.zone)


def _country_zone(text: str) -> str | None:
    """A country written as a time zone ("Kenya") when all of it keeps one time."""
    if len(text) <= 3:  # "LA" is Los Angeles to most people, not Laos
        return None
    code = normalise_country(text)
    zones = _zone_countries()[1].get(code or "", ())
    if not zones:
        return None
    return zones[0] if len({_offsets(zone) for zone in zones}) == 1 else None


@lru_cache(maxsize=4096)
def utc_offset_minutes(zone: str, at: datetime) -> int:
    """Minutes east of UTC in `zone` (IANA or "UTC±HH:MM") at `at` (naive means UTC).

    Raises ValueError for a zone that is neither. Kept for the few hundred zones a round
    names at one moment: zoneinfo keeps only eight zones loaded, so the 100,000 people of
    a round read their zone files 74,000 times, 6.5 of the 9 s their records took.
    """
    fixed = _FIXED.match(zone)
    if fixed is not None:
        minutes = int(fixed[2]) * 60 + int(fixed[3])
        return -minutes if fixed[1] == "-" else minutes
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {zone!r}") from error
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)
