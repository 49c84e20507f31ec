"""Seeded rounds of applicants shaped like the International Librarians Network's, for the
matching benchmark.

The shape is what makes a matching benchmark honest: a few large countries and a long
tail, English dominant with many people speaking two languages, interests with a skewed
popularity so that a few are rare, time zones from real places. Everything is a pure
function of (n, seed, scenario): the same arguments give the same people in any process,
so every solver is compared on the same round. Never reads or writes the store.

Besides the program's usual make-up, the shapes of round that broke coverage at scale
(issue 21): a dozen countries of equal size, one country with 55%, two language islands,
70% returners whose former partners are ruled out, and 150 countries of a few people each.
`shaped_round` gives one with its former partnerships.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from bench.possible import can_pair
from mailflow.app.roster import COLUMNS
from mailflow.matching import Applicant, Matching, Weights, match
from mailflow.read.countries import country_name

# The moment offsets are taken at: the benchmark's MAILFLOW_NOW (southern summer time).
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# The shapes of issue 21, each of which a solver must cover completely at 100,000.
SHAPES = ("dozen", "majority", "islands", "returners", "tiny")
SCENARIOS = ("normal", "dominant", "isolated", *SHAPES)
DOMINANT = "AU"  # the country that takes 55% of a "dominant" round
DOMINANT_SHARE = 0.55
ISOLATED_SHARE = 0.03


@dataclass(frozen=True)
class Country:
    code: str
    weight: float  # relative share of applicants
    zones: tuple[tuple[str, float], ...]  # IANA zone, share of the country's applicants
    languages: tuple[tuple[str, float], ...]  # language, chance that an applicant speaks it
    regions: frozenset[str]


def _c(code, weight, zones, languages, *regions) -> Country:
    if isinstance(zones, str):
        zones = ((zones, 1.0),)
    return Country(code, weight, tuple(zones), tuple(languages), frozenset(regions))


AFRICA, ASIA, EUROPE, OCEANIA = "Africa", "Asia", "Europe", "Oceania"
NORTH, SOUTH, LATIN = "North America", "South America", "Latin America"
EN = ("English", 1.0)

# Weights follow the program's make-up: Australia, the USA, the UK, India, Canada, Nigeria
# and the Philippines large, then a long tail.
COUNTRIES: tuple[Country, ...] = (
    _c(
        "AU",
        10,
        (
            ("Australia/Sydney", 0.5),
            ("Australia/Melbourne", 0.22),
            ("Australia/Brisbane", 0.13),
            ("Australia/Perth", 0.09),
            ("Australia/Adelaide", 0.06),
        ),
        (EN,),
        OCEANIA,
    ),
    _c(
        "US",
        10,
        (
            ("America/New_York", 0.45),
            ("America/Chicago", 0.28),
            ("America/Denver", 0.08),
            ("America/Los_Angeles", 0.19),
        ),
        (EN, ("Spanish", 0.12)),
        NORTH,
    ),
    _c("GB", 7, "Europe/London", (EN, ("Welsh", 0.03)), EUROPE),
    _c("IN", 6, "Asia/Kolkata", (("English", 0.85), ("Hindi", 0.6), ("Tamil", 0.1)), ASIA),
    _c(
        "CA",
        5,
        (
            ("America/Toronto", 0.55),
            ("America/Vancouver", 0.2),
            ("America/Edmonton", 0.12),
            ("America/Halifax", 0.08),
            ("America/Winnipeg", 0.05),
        ),
        (("English", 0.9), ("French", 0.3)),
        NORTH,
    ),
    _c(
        "NG",
        5,
        "Africa/Lagos",
        (("English", 0.95), ("Yoruba", 0.25), ("Hausa", 0.15), ("Igbo", 0.15)),
        AFRICA,
    ),
    _c("PH", 4, "Asia/Manila", (("English", 0.9), ("Filipino", 0.8)), ASIA),
    _c(
        "ZA",
        3,
        "Africa/Johannesburg",
        (("English", 0.95), ("Afrikaans", 0.3), ("Zulu", 0.15)),
        AFRICA,
    ),
    _c("KE", 3, "Africa/Nairobi", (("English", 0.97), ("Swahili", 0.8)), AFRICA),
    _c("NZ", 2.5, "Pacific/Auckland", (EN,), OCEANIA),
    _c("GH", 2, "Africa/Accra", (EN, ("Akan", 0.3)), AFRICA),
    _c("PK", 2, "Asia/Karachi", (("English", 0.8), ("Urdu", 0.8)), ASIA),
    _c("MX", 4, "America/Mexico_City", (("Spanish", 1.0), ("English", 0.25)), NORTH, LATIN),
    _c(
        "BR",
        4,
        (("America/Sao_Paulo", 0.85), ("America/Manaus", 0.15)),
        (("Portuguese", 1.0), ("English", 0.3), ("Spanish", 0.15)),
        SOUTH,
        LATIN,
    ),
    _c("IE", 1.5, "Europe/Dublin", (EN, ("Irish", 0.1)), EUROPE),
    _c("UG", 1.5, "Africa/Kampala", (("English", 0.97), ("Swahili", 0.3)), AFRICA),
    _c("BD", 1.5, "Asia/Dhaka", (("English", 0.6), ("Bengali", 0.95)), ASIA),
    _c(
        "MY",
        1.5,
        "Asia/Kuala_Lumpur",
        (("English", 0.75), ("Malay", 0.8), ("Chinese", 0.25)),
        ASIA,
    ),
    _c(
        "ID",
        1.5,
        (("Asia/Jakarta", 0.7), ("Asia/Makassar", 0.3)),
        (("Indonesian", 0.95), ("English", 0.45)),
        ASIA,
    ),
    _c("CN", 2.5, "Asia/Shanghai", (("Chinese", 1.0), ("English", 0.4)), ASIA),
    _c("DE", 2, "Europe/Berlin", (("German", 1.0), ("English", 0.7)), EUROPE),
    _c("FR", 2.5, "Europe/Paris", (("French", 1.0), ("English", 0.4)), EUROPE),
    _c(
        "ES",
        2.5,
        "Europe/Madrid",
        (("Spanish", 1.0), ("English", 0.4), ("Catalan", 0.15)),
        EUROPE,
    ),
    _c(
        "AR",
        2,
        "America/Argentina/Buenos_Aires",
        (("Spanish", 1.0), ("English", 0.3)),
        SOUTH,
        LATIN,
    ),
    _c("TZ", 1, "Africa/Dar_es_Salaam", (("English", 0.8), ("Swahili", 0.95)), AFRICA),
    _c("ZW", 1, "Africa/Harare", (EN, ("Shona", 0.4)), AFRICA),
    _c("LK", 1, "Asia/Colombo", (("English", 0.7), ("Sinhala", 0.6), ("Tamil", 0.25)), ASIA),
    _c("JP", 2, "Asia/Tokyo", (("Japanese", 1.0), ("English", 0.45)), ASIA),
    _c("IT", 1.5, "Europe/Rome", (("Italian", 1.0), ("English", 0.4)), EUROPE),
    _c("NL", 1, "Europe/Amsterdam", (("Dutch", 1.0), ("English", 0.9)), EUROPE),
    _c("CO", 2, "America/Bogota", (("Spanish", 1.0), ("English", 0.25)), SOUTH, LATIN),
    _c(
        "EG",
        1.2,
        "Africa/Cairo",
        (("Arabic", 1.0), ("English", 0.55), ("French", 0.1)),
        AFRICA,
    ),
    _c("SG", 1, "Asia/Singapore", (EN, ("Chinese", 0.4), ("Malay", 0.15)), ASIA),
    _c("CL", 1.5, "America/Santiago", (("Spanish", 1.0), ("English", 0.3)), SOUTH, LATIN),
    _c("SE", 0.7, "Europe/Stockholm", (("Swedish", 1.0), ("English", 0.9)), EUROPE),
    _c(
        "MA",
        1,
        "Africa/Casablanca",
        (("Arabic", 0.9), ("French", 0.8), ("English", 0.25)),
        AFRICA,
    ),
    _c("ET", 0.7, "Africa/Addis_Ababa", (("Amharic", 0.9), ("English", 0.8)), AFRICA),
    _c("KR", 0.6, "Asia/Seoul", (("Korean", 1.0), ("English", 0.5)), ASIA),
    _c("PL", 0.6, "Europe/Warsaw", (("Polish", 1.0), ("English", 0.55)), EUROPE),
    _c("TR", 0.6, "Europe/Istanbul", (("Turkish", 1.0), ("English", 0.45)), EUROPE, ASIA),
    _c("PE", 1.5, "America/Lima", (("Spanish", 1.0), ("English", 0.25)), SOUTH, LATIN),
    _c(
        "RU",
        1,
        (
            ("Europe/Moscow", 0.7),
            ("Asia/Yekaterinburg", 0.1),
            ("Asia/Novosibirsk", 0.1),
            ("Asia/Vladivostok", 0.1),
        ),
        (("Russian", 1.0), ("English", 0.3)),
        EUROPE,
        ASIA,
    ),
    _c("SA", 0.8, "Asia/Riyadh", (("Arabic", 1.0), ("English", 0.6)), ASIA),
    _c("AE", 0.6, "Asia/Dubai", (("Arabic", 0.8), ("English", 0.95)), ASIA),
    _c("CM", 0.6, "Africa/Douala", (("French", 0.8), ("English", 0.45)), AFRICA),
    _c("TH", 0.5, "Asia/Bangkok", (("Thai", 1.0), ("English", 0.4)), ASIA),
    _c(
        "VN",
        0.5,
        "Asia/Ho_Chi_Minh",
        (("Vietnamese", 1.0), ("English", 0.4), ("French", 0.05)),
        ASIA,
    ),
    _c("FI", 0.5, "Europe/Helsinki", (("Finnish", 1.0), ("English", 0.8)), EUROPE),
    _c("PT", 0.5, "Europe/Lisbon", (("Portuguese", 1.0), ("English", 0.55)), EUROPE),
    _c("NP", 0.5, "Asia/Kathmandu", (("Nepali", 1.0), ("English", 0.75)), ASIA),
    _c("GR", 0.4, "Europe/Athens", (("Greek", 1.0), ("English", 0.6)), EUROPE),
    _c(
        "SN",
        0.4,
        "Africa/Dakar",
        (("French", 0.95), ("Wolof", 0.5), ("English", 0.2)),
        AFRICA,
    ),
    _c("JM", 0.4, "America/Jamaica", (EN,), NORTH),
    _c("FJ", 0.3, "Pacific/Fiji", (EN, ("Fijian", 0.4)), OCEANIA),
)
BY_CODE = {country.code: country for country in COUNTRIES}
REGIONS = frozenset(region for country in COUNTRIES for region in country.regions)

# A language learnt abroad, which a quarter of applicants add to those of their country.
FOREIGN: tuple[tuple[str, float], ...] = (
    ("Spanish", 0.3),
    ("French", 0.3),
    ("German", 0.15),
    ("Italian", 0.06),
    ("Portuguese", 0.06),
    ("Chinese", 0.04),
    ("Arabic", 0.04),
    ("Russian", 0.03),
    ("Swahili", 0.02),
)
FOREIGN_CHANCE = 0.25

# Most popular first; popularity falls off as 1 / rank^ZIPF, so the tail is rare.
INTERESTS: tuple[str, ...] = (
    "information literacy",
    "digital libraries",
    "open access",
    "cataloguing",
    "metadata",
    "reference services",
    "outreach",
    "collection development",
    "research data management",
    "library management",
    "digital preservation",
    "scholarly communication",
    "user experience",
    "leadership",
    "teaching and learning",
    "marketing",
    "community engagement",
    "children's services",
    "archives",
    "copyright",
    "library technology",
    "institutional repositories",
    "special collections",
    "reading promotion",
    "professional development",
    "data literacy",
    "research support",
    "library spaces",
    "makerspaces",
    "advocacy",
    "evidence-based practice",
    "e-resources",
    "systematic reviews",
    "health information",
    "indigenous knowledge",
    "diversity and inclusion",
    "digitisation",
    "bibliometrics",
    "open educational resources",
    "knowledge management",
    "artificial intelligence",
    "school libraries",
    "public programming",
    "accessibility",
    "library instruction",
    "records management",
    "rare books",
    "conservation",
    "government information",
    "legal research",
    "linked data",
    "web archiving",
    "oral history",
    "genealogy",
    "music librarianship",
    "map librarianship",
    "sustainability",
    "library history",
    "zine collections",
    "palaeography",
)
ZIPF = 1.1
INTEREST_COUNTS = ((2, 0.15), (3, 0.3), (4, 0.3), (5, 0.15), (6, 0.1))

LIBRARY_TYPES = (
    ("academic", 0.46),
    ("public", 0.17),
    ("school", 0.07),
    ("special", 0.06),
    ("health", 0.06),
    ("museum or archive", 0.05),
    ("government", 0.04),
    ("national", 0.03),
    ("law", 0.02),
    ("corporate", 0.02),
    ("other", 0.02),
)
CAREER_STAGES = (
    ("student", 0.12),
    ("early career", 0.36),
    ("mid career", 0.33),
    ("senior", 0.19),
)
CONTACT_METHODS = (("email", 0.95), ("video call", 0.55), ("chat", 0.25), ("phone", 0.1))
CONTACT_FREQUENCIES = (
    ("weekly", 0.12),
    ("fortnightly", 0.3),
    ("monthly", 0.43),
    ("as needed", 0.15),
)
# Who people wish for: mostly someone further along.
WISHED_STAGES = (("senior", 0.5), ("mid career", 0.35), ("early career", 0.12), ("student", 0.03))
WISH_CHANCE = 0.2
WISH_KINDS = (
    ("library_type", 0.3),
    ("career_stage", 0.25),
    ("region", 0.2),
    ("language", 0.1),
    ("interest", 0.08),
    ("country", 0.07),
)
ROLES = (
    "Librarian",
    "Reference librarian",
    "Liaison librarian",
    "Cataloguer",
    "Library assistant",
    "Systems librarian",
    "Archivist",
    "Library manager",
    "Research support librarian",
    "Teacher librarian",
    "LIS student",
)


# --- The shapes' make-up ---------------------------------------------------------------

# "dozen": twelve countries of equal size on four continents; all write English.
DOZEN = ("AU", "NZ", "US", "CA", "GB", "IE", "IN", "PH", "SG", "NG", "KE", "ZA")
# "majority": one country sends 55%, the rest come from the others; all write English.
MAJORITY = "US"
MAJORITY_SHARE = 0.55
# "islands": two groups with no language in common, each of several countries:
# (language, share of the round, countries with their weights). France is 40% of its
# island, close to the half beyond which some of it could not be paired.
ISLANDS: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
    ("Spanish", 0.55, (("MX", 4), ("CO", 2), ("AR", 2), ("PE", 1.5), ("CL", 1.5))),
    (
        "French",
        0.45,
        (("FR", 4), ("MA", 1.5), ("SN", 1), ("CM", 1), ("CI", 1), ("BE", 0.8), ("CD", 0.6)),
    ),
)
# "returners": this share took part in earlier rounds, in this many of the last five.
RETURNER_SHARE = 0.7
EARLIER_ROUNDS = (("1", 0.4), ("2", 0.3), ("3", 0.2), ("4", 0.07), ("5", 0.03))
PARTNER_GONE = 0.2  # chance that an earlier partner did not come back this round
ALIKE_WINDOW = 8  # how far down the line of look-alikes an earlier partner was found
# "tiny": half the round from these 144 countries, a few people each at 1,000, and half
# from six medium ones.
TINY_CODES = """
AD AF AG AL AM AO AT AW AZ BA BB BE BF BG BH BI BJ BN BO BS BT BW BY BZ CD CF CG CH
CI CR CU CV CW CY CZ DJ DK DM DO DZ EC EE ER FM GA GD GE GM GN GQ GT GU GW GY HK HN
HR HT HU IL IQ IR IS JO KG KH KI KM KN KP KW KZ LA LB LC LR LS LT LU LV LY MD ME MG
MH MK ML MM MN MO MR MT MU MV MW MZ NA NC NE NI NO OM PA PF PG PR PS PY QA RE RO RS
RW SB SC SD SI SK SL SO SR SS ST SV SY SZ TD TG TJ TL TM TN TO TT TW UA UY UZ VC VE
VU WS YE ZM
"""
TINY = tuple(TINY_CODES.split())
TINY_SHARE = 0.5
MEDIUM = ("US", "GB", "IN", "NG", "FR", "ES")
# The language most people of a small country write besides English, if not English.
SMALL_LANGUAGES = {
    "Spanish": "BO CR CU DO EC GQ GT HN NI PA PR PY SV UY VE",
    "French": "BE BF BI BJ CD CF CG CI DJ GA GN HT KM LU MG ML NC NE PF RE RW SC TD TG",
    "Arabic": "BH DZ IQ JO KW LB LY MR OM PS QA SD SY TN YE",
    "Russian": "AM AZ BY GE KG KZ MD TJ TM UA UZ",
    "Portuguese": "AO CV GW MZ ST TL",
    "German": "AT CH",
    "Dutch": "AW CW SR",
    "Chinese": "HK MO TW",
}
ZONE_REGIONS = {
    "Africa": AFRICA,
    "Asia": ASIA,
    "Europe": EUROPE,
    "Pacific": OCEANIA,
    "Australia": OCEANIA,
    "America": LATIN,
    "Indian": AFRICA,
    "Atlantic": AFRICA,
}


@cache
def _first_zones() -> dict[str, str]:
    """Each country's first zone in tzdata's zone.tab (its most populous, as a rule)."""
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    zones: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, zone = line.split("\t")[:3]
            zones.setdefault(code, zone)
    return zones


@cache
def country_of(code: str) -> Country:
    """The country of this code: one of COUNTRIES, or a small one made from tzdata and
    SMALL_LANGUAGES (English and, for most, the language of its region)."""
    if code in BY_CODE:
        return BY_CODE[code]
    zone = _first_zones()[code]
    main = next((lang for lang, codes in SMALL_LANGUAGES.items() if code in codes.split()), None)
    languages = ((main, 0.9), ("English", 0.6)) if main else (EN,)
    region = {"MV": ASIA, "IS": EUROPE}.get(code) or ZONE_REGIONS[zone.split("/")[0]]
    return Country(code, 1.0, ((zone, 1.0),), languages, frozenset([region]))


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    return rng.choices([value for value, _ in table], [weight for _, weight in table])[0]


@cache
def _offset(zone: str) -> int:
    delta = AT.astimezone(ZoneInfo(zone)).utcoffset()
    assert delta is not None
    return int(delta.total_seconds() // 60)


@cache
def _spoken_in() -> dict[str, frozenset[str]]:
    """Language -> the countries whose applicants may speak it (foreign languages: all)."""
    spoken: dict[str, set[str]] = {}
    for country in COUNTRIES:
        for language, _ in country.languages:
            spoken.setdefault(language, set()).add(country.code)
    for language, _ in FOREIGN:
        spoken.setdefault(language, set()).update(BY_CODE)
    return {language: frozenset(codes) for language, codes in spoken.items()}


def local_languages(code: str, *, main: bool = False) -> tuple[str, ...]:
    """Languages of this country that no applicant of another country speaks (with `main`,
    only those that most of the country speaks: Japanese, not Welsh)."""
    spoken = _spoken_in()
    return tuple(
        language
        for language, chance in BY_CODE[code].languages
        if spoken[language] == {code} and (chance >= 0.8 or not main)
    )


def _bridge(country: Country) -> str:
    """The country's most spoken language that people abroad speak too."""
    spoken = _spoken_in()
    shared = [(chance, lang) for lang, chance in country.languages if len(spoken[lang]) > 1]
    return max(shared)[1] if shared else "English"


def _languages(rng: random.Random, country: Country) -> frozenset[str]:
    spoken = [lang for lang, chance in country.languages if rng.random() < chance]
    if rng.random() < FOREIGN_CHANCE:
        spoken.append(_pick(rng, FOREIGN))
    # Applicants to an international program can write to someone abroad.
    if not any(len(_spoken_in()[lang]) > 1 for lang in spoken):
        spoken.append(_bridge(country))
    return frozenset(spoken)


def _interests(rng: random.Random) -> frozenset[str]:
    count = int(_pick(rng, [(str(k), w) for k, w in INTEREST_COUNTS]))
    weights = [1 / (rank + 1) ** ZIPF for rank in range(len(INTERESTS))]
    chosen: list[str] = []
    while len(chosen) < count:
        interest = rng.choices(INTERESTS, weights)[0]
        if interest not in chosen:
            chosen.append(interest)
    return frozenset(chosen)


def _contact_methods(rng: random.Random) -> frozenset[str]:
    methods = [method for method, chance in CONTACT_METHODS if rng.random() < chance]
    return frozenset(methods or ["email"])


def _wishes(
    rng: random.Random, country: Country, languages: frozenset[str], interests: frozenset[str]
) -> frozenset[str]:
    if rng.random() >= WISH_CHANCE:
        return frozenset()
    count = 1 if rng.random() < 0.7 else 2
    wishes: set[str] = set()
    while len(wishes) < count:
        kind = _pick(rng, WISH_KINDS)
        if kind == "library_type":
            wishes.add(f"library_type:{_pick(rng, LIBRARY_TYPES)}")
        elif kind == "career_stage":
            wishes.add(f"career_stage:{_pick(rng, WISHED_STAGES)}")
        elif kind == "region":
            wishes.add(f"region:{rng.choice(sorted(REGIONS - country.regions))}")
        elif kind == "language":
            others = sorted(languages - {"English"})
            if others:
                wishes.add(f"language:{rng.choice(others)}")
        elif kind == "interest":
            wishes.add(f"interest:{rng.choice(sorted(interests))}")
        else:
            abroad = [(c.code, c.weight) for c in COUNTRIES if c.code != country.code]
            wishes.add(f"country:{_pick(rng, abroad)}")
    return frozenset(wishes)


def _countries(rng: random.Random, n: int, scenario: str) -> list[str]:
    table = [(country.code, country.weight) for country in COUNTRIES]
    if scenario == "dominant":
        big = round(n * DOMINANT_SHARE)
        rest = [(code, weight) for code, weight in table if code != DOMINANT]
        codes = [DOMINANT] * big + [_pick(rng, rest) for _ in range(n - big)]
        rng.shuffle(codes)
        return codes
    return [_pick(rng, table) for _ in range(n)]


def _applicant(rng: random.Random, pid: int, country: Country, languages) -> Applicant:
    """One applicant of this country speaking these languages; the rest drawn from rng."""
    interests = _interests(rng)
    return Applicant(
        id=pid,
        country=country.code,
        languages=languages,
        interests=interests,
        library_type=_pick(rng, LIBRARY_TYPES),
        career_stage=_pick(rng, CAREER_STAGES),
        contact_methods=_contact_methods(rng),
        contact_frequency=_pick(rng, CONTACT_FREQUENCIES),
        utc_offset=_offset(_pick(rng, country.zones)),
        wishes=_wishes(rng, country, languages, interests),
        regions=country.regions,
    )


def _shape_countries(rng: random.Random, n: int, scenario: str) -> list[str]:
    if scenario == "returners":
        return _countries(rng, n, "normal")
    if scenario == "dozen":
        codes = [DOZEN[i % len(DOZEN)] for i in range(n)]
    elif scenario == "majority":
        big = round(n * MAJORITY_SHARE)
        rest = [(c.code, c.weight) for c in COUNTRIES if c.code != MAJORITY]
        codes = [MAJORITY] * big + [_pick(rng, rest) for _ in range(n - big)]
    elif scenario == "islands":
        first = round(n * ISLANDS[0][1])
        codes = [_pick(rng, ISLANDS[0][2]) for _ in range(first)]
        codes += [_pick(rng, ISLANDS[1][2]) for _ in range(n - first)]
    else:  # tiny
        small = round(n * TINY_SHARE)
        codes = [rng.choice(TINY) for _ in range(small)]
        codes += [rng.choice(MEDIUM) for _ in range(n - small)]
    rng.shuffle(codes)
    return codes


ISLAND_OF = {code: language for language, _, table in ISLANDS for code, _ in table}


def _shape_languages(rng: random.Random, scenario: str, country: Country) -> frozenset[str]:
    if scenario == "islands":
        # The island's language, and the country's own that no one on the other island
        # writes (Arabic, Wolof): never English, nor a language learnt abroad.
        own = ISLAND_OF[country.code]
        spoken = [
            lang
            for lang, chance in country.languages
            if lang not in ("English", own) and rng.random() < chance
        ]
        return frozenset([own, *spoken])
    spoken = _languages(rng, country)
    return spoken | {"English"} if scenario in ("dozen", "majority") else spoken


def population(
    n: int, seed: int, *, scenario: str = "normal", start_id: int = 1
) -> list[Applicant]:
    """n applicants with ids start_id.. ; the same arguments always give the same people.

    "normal": the program's usual make-up; "dominant": DOMINANT sends 55% of applicants;
    "isolated": about 3% speak only a language that no one in another country speaks.
    The shapes: "dozen": DOZEN in equal parts, all writing English and some a second
    language; "majority": MAJORITY sends 55%, all write English; "islands": ISLANDS, two
    groups with no language in common; "returners": the usual make-up (their earlier
    partners come from `shaped_round`); "tiny": half from the 144 countries of TINY, half
    from the six of MEDIUM.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")
    rng = random.Random(f"{scenario}:{n}:{seed}:{start_id}")
    if scenario in SHAPES:
        countries = [country_of(code) for code in _shape_countries(rng, n, scenario)]
        return [
            _applicant(rng, start_id + i, country, _shape_languages(rng, scenario, country))
            for i, country in enumerate(countries)
        ]
    codes = _countries(rng, n, scenario)
    isolated: set[int] = set()
    if scenario == "isolated":
        lonely = [(c.code, c.weight) for c in COUNTRIES if local_languages(c.code, main=True)]
        isolated = set(rng.sample(range(n), round(n * ISOLATED_SHARE)))
        for index in sorted(isolated):
            codes[index] = _pick(rng, lonely)
    people = []
    for index, code in enumerate(codes):
        country = BY_CODE[code]
        if index in isolated:
            languages = frozenset([rng.choice(local_languages(code, main=True))])
        else:
            languages = _languages(rng, country)
        people.append(_applicant(rng, start_id + index, country, languages))
    return people


Round = tuple[list[Applicant], frozenset[frozenset[int]]]
INTEREST_RANK = {interest: rank for rank, interest in enumerate(INTERESTS)}


def _alike(person: Applicant) -> tuple:
    """Who sits near whom in the line an earlier round's partners are found in: by a
    language (English first), the rarest interest, then time zone, as strong pairs do."""
    language = "English" if "English" in person.languages else min(person.languages)
    rarest = max(INTEREST_RANK[i] for i in person.interests)
    return (language, rarest, person.utc_offset, person.id)


def _history(people: list[Applicant], seed: int) -> frozenset[frozenset[int]]:
    """Former partnerships for a "returners" round: RETURNER_SHARE of the people took part
    in one to five earlier rounds; in each, someone alike became their partner (as the
    matching would have chosen: a shared language and interest, a near time zone), or
    someone who has not come back (an id beyond the round's).

    Not `returning_rounds`: that matches five earlier rounds of the same size with mailflow,
    minutes each at 100,000, and its history would change whenever the solver does; this
    is the same for every solver measured."""
    rng = random.Random(f"history:{len(people)}:{seed}")
    back = sorted(rng.sample(range(len(people)), round(len(people) * RETURNER_SHARE)))
    earlier: list[list[Applicant]] = [[] for _ in range(len(EARLIER_ROUNDS))]
    for index in back:
        for number in rng.sample(range(len(earlier)), int(_pick(rng, EARLIER_ROUNDS))):
            earlier[number].append(people[index])
    gone = max((person.id for person in people), default=0) + 1
    former: set[frozenset[int]] = set()
    for taking_part in earlier:
        waiting: list[Applicant] = []
        for person in sorted(taking_part, key=_alike):
            if rng.random() < PARTNER_GONE:
                former.add(frozenset((person.id, gone)))
                gone += 1
                continue
            found = next(
                (i for i, other in enumerate(waiting) if can_pair(person, other, former)), None
            )
            if found is not None:
                former.add(frozenset((person.id, waiting.pop(found).id)))
                continue
            waiting.append(person)
            if len(waiting) > ALIKE_WINDOW:
                former.add(frozenset((waiting.pop(0).id, gone)))
                gone += 1
        for person in waiting:
            former.add(frozenset((person.id, gone)))
            gone += 1
    return frozenset(former)


def shaped_round(n: int, seed: int, scenario: str) -> Round:
    """(applicants, former partnerships) of a round of this scenario; only "returners" has
    former partnerships."""
    people = population(n, seed, scenario=scenario)
    return people, _history(people, seed) if scenario == "returners" else frozenset()


def pairs_of(matching: Matching) -> Iterable[frozenset[int]]:
    """Every two people a matching put together (a trio gives three pairs)."""
    for pair in matching.pairs:
        members = pair.members
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                yield frozenset((a, b))


def returning_rounds(
    n: int, seed: int, rounds: int = 6, returners: float = 0.7
) -> Generator[Round, Matching | None, None]:
    """(applicants, former) for each of `rounds` rounds of n people.

    From the second round on, `returners` of each round are people from earlier rounds
    (with the profile they had) and the rest are new; `former` holds every pair matched in
    an earlier round. Who was paired comes from `mailflow.matching.match` with the default
    weights, or from the Matching the caller sends back (`rounds.send(result)`), so a caller
    that matches each round anyway does not pay for it twice.
    """
    rng = random.Random(f"returning:{n}:{seed}:{returners}")
    everyone: dict[int, Applicant] = {}
    former: frozenset[frozenset[int]] = frozenset()
    next_id = 1
    for number in range(rounds):
        back = 0 if number == 0 else min(round(n * returners), len(everyone))
        people = [everyone[i] for i in sorted(rng.sample(sorted(everyone), back))]
        people += population(n - back, seed * 1000 + number, start_id=next_id)
        next_id += n - back
        everyone.update((person.id, person) for person in people)
        result = yield people, former
        if number == rounds - 1:
            return
        if result is None:
            result = match(people, Weights(), former=former)
        former = former | frozenset(pairs_of(result))


# --- The round as the operator's CSV (CONTRACT.md columns) -------------------------------


def _zone_of(person: Applicant) -> str:
    """An IANA zone of the person's country with their offset, as they would name it."""
    zones = [zone for zone, _ in country_of(person.country).zones]
    return next((z for z in zones if _offset(z) == person.utc_offset), zones[0])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _wish_text(key: str) -> str:
    kind, _, value = key.partition(":")
    if kind == "library_type":
        return f"{value} library"
    if kind == "country":
        return country_name(value)
    return value


def email_of(person_id: int) -> str:
    """The address an applicant of these rounds imports with."""
    return f"applicant{person_id}@lib{person_id % 97}.example.org"


def to_csv(people: Iterable[Applicant]) -> str:
    """The applicants as an import file: one row each, lists separated by "; "."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for person in people:
        rng = random.Random(person.id)
        writer.writerow(
            [
                email_of(person.id),
                f"Applicant {person.id}",
                country_name(person.country),
                rng.choice(ROLES),
                person.library_type,
                person.career_stage,
                "; ".join(sorted(person.interests)),
                "; ".join(sorted(person.languages)),
                _zone_of(person),
                "; ".join(sorted(person.contact_methods)),
                person.contact_frequency,
                f"I work in {_article(person.library_type)} {person.library_type} library in"
                f" {country_name(person.country)}.",
                ", ".join(_wish_text(key) for key in sorted(person.wishes)),
            ]
        )
    return buffer.getvalue()
