"""Countries, time zones and languages as people write them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.read import countries, timezones
from mailflow.read.countries import country_name, normalise_country
from mailflow.read.languages import normalise_language
from mailflow.read.timezones import normalise_time_zone, utc_offset_minutes

# --- countries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("us", "US"),
        ("USA", "US"),
        ("GBR", "GB"),
        ("de", "DE"),
        ("Germany", "DE"),
        ("United States of America", "US"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("UK", "GB"),
        ("U.K.", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("Scotland", "GB"),
        ("Wales", "GB"),
        ("Northern Ireland", "GB"),
        ("U.S.", "US"),
        ("U.S.A.", "US"),
        ("America", "US"),
        ("US of A", "US"),
        ("Holland", "NL"),
        ("The Netherlands", "NL"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Russia", "RU"),
        ("Iran", "IR"),
        ("Vietnam", "VN"),
        ("Viet Nam", "VN"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Ivory Coast", "CI"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("Cote dIvoire", "CI"),
        ("Côte d’Ivoire", "CI"),
        ("Deutschland", "DE"),
        ("España", "ES"),
        ("Brasil", "BR"),
        ("Italia", "IT"),
        ("Suomi", "FI"),
        ("Sverige", "SE"),
        ("Nederland", "NL"),
        ("Polska", "PL"),
        ("Россия", "RU"),
        ("日本", "JP"),
        ("中国", "CN"),
        ("México", "MX"),
        ("Mexico", "MX"),
        ("Österreich", "AT"),
        ("Schweiz", "CH"),
        ("Norge", "NO"),
        ("Danmark", "DK"),
        ("  kenya  ", "KE"),
        ("KENYA.", "KE"),
        ("Trinidad & Tobago", "TT"),
        ("Scotland, UK", "GB"),
        ("Nairobi, Kenya", "KE"),
        ("Kosovo", "XK"),
    ],
)
def test_country_spellings(text: str, code: str) -> None:
    assert normalise_country(text) == code


@pytest.mark.parametrize(
    "text",
    ["Atlantis", "Narnia", "asdf", "", "   ", "Europe", "EU", "the", "BAO", "UK / Ireland", "?"],
)
def test_country_nonsense_is_refused(text: str) -> None:
    assert normalise_country(text) is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("DE", "Germany"),
        ("US", "United States"),
        ("CI", "Côte d'Ivoire"),
        ("GB", "United Kingdom"),
        ("KR", "South Korea"),
        ("RU", "Russia"),
        ("XK", "Kosovo"),
        ("ke", "Kenya"),
        ("ZZ", "ZZ"),
    ],
)
def test_country_names(code: str, name: str) -> None:
    assert country_name(code) == name


@pytest.mark.parametrize("country", list(pycountry.countries), ids=lambda c: c.alpha_2)
def test_every_country_reads_back_from_its_name_and_codes(country) -> None:
    code = country.alpha_2
    assert normalise_country(country_name(code)) == code
    assert normalise_country(code.lower()) == code
    assert normalise_country(country.alpha_3) == code


@settings(deadline=None)  # the first call builds the lookup tables
@given(st.text(max_size=120))
def test_country_never_raises(text: str) -> None:
    code = normalise_country(text)
    assert code is None or (len(code) == 2 and code.isupper())


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Česko", "CZ"),  # pycountry's own translations
        ("مصر", "EG"),
        ("香港", "HK"),
        ("Nihon", "JP"),
        ("Qazaqstan", "KZ"),
        ("Республика Казахстан", "KZ"),
        ("Allemagne", "DE"),
        ("Rosja", "RU"),  # the aliases: pycountry calls Russia only "Russian Federation"
        ("Russie", "RU"),
        ("Sakartvelo", "GE"),
        ("ایران", "IR"),
        ("Lëtzebuerg", "LU"),
        ("Kalaallit Nunaat", "GL"),
        ("Congo-Kinshasa", "CD"),
    ],
)
def test_country_names_in_other_languages(text: str, code: str) -> None:
    assert normalise_country(text) == code


# Two countries share "Korea"; a catalogue's short word for a country is an English word in
# an answer ("man", "end", "sad"); a city is not a country.
@pytest.mark.parametrize("text", ["Korea", "Korée", "man", "end", "sad", "Berlin"])
def test_country_ambiguity_is_refused(text: str) -> None:
    assert normalise_country(text) is None


def test_country_tables_build_quickly() -> None:
    countries._index.cache_clear()
    countries._translations.cache_clear()
    started = time.perf_counter()
    assert normalise_country("Deutschland") == "DE"
    # Reading pycountry's 163 catalogues takes seconds; the derived table a few milliseconds.
    assert time.perf_counter() - started < 1


# --- time zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "country", "zone"),
    [
        ("europe/berlin", None, "Europe/Berlin"),
        ("America/New_York", None, "America/New_York"),
        ("america/new york", None, "America/New_York"),
        ("UTC", None, "UTC+00:00"),
        ("GMT", None, "UTC+00:00"),
        ("GMT", "GB", "Europe/London"),
        ("UTC+10", None, "UTC+10:00"),
        ("UTC +10", None, "UTC+10:00"),
        ("utc+10", None, "UTC+10:00"),
        ("GMT-3", None, "UTC-03:00"),
        ("UTC+5:30", None, "UTC+05:30"),
        ("UTC+0530", None, "UTC+05:30"),
        ("UTC+5.5", None, "UTC+05:30"),
        ("UTC−3", None, "UTC-03:00"),
        ("+10", None, "UTC+10:00"),
        ("-03:00", None, "UTC-03:00"),
        ("+05:45", None, "UTC+05:45"),
        ("UTC+14", None, "UTC+14:00"),
        ("UTC-12", None, "UTC-12:00"),
        ("UTC+0", None, "UTC+00:00"),
        ("Etc/GMT+5", None, "UTC-05:00"),
        ("CET", None, "Europe/Paris"),
        ("EST", None, "America/New_York"),
        ("EST", "AU", "Australia/Sydney"),
        ("PST", None, "America/Los_Angeles"),
        ("AEST", None, "Australia/Sydney"),
        ("IST", "IN", "Asia/Kolkata"),
        ("IST", "IE", "Europe/Dublin"),
        ("IST", "IL", "Asia/Jerusalem"),
        ("Sydney", None, "Australia/Sydney"),
        ("sydney", None, "Australia/Sydney"),
        ("New York", None, "America/New_York"),
        ("Sao Paulo", None, "America/Sao_Paulo"),
        ("São Paulo", None, "America/Sao_Paulo"),
        ("Nairobi", None, "Africa/Nairobi"),
        ("Perth", None, "Australia/Perth"),
        ("Perth", "AU", "Australia/Perth"),
        ("Perth", "GB", "Europe/London"),
        ("Lagos", None, "Africa/Lagos"),
        ("Auckland", None, "Pacific/Auckland"),
        ("Melbourne", None, "Australia/Melbourne"),
        ("Manchester", None, "Europe/London"),
        ("Pune", None, "Asia/Kolkata"),
        ("Bombay", None, "Asia/Kolkata"),
        ("Hanoi", None, "Asia/Ho_Chi_Minh"),
        ("Sydney, Australia", None, "Australia/Sydney"),
        ("Berlin (Germany)", None, "Europe/Berlin"),
        ("Perth, Scotland", None, "Europe/London"),
        ("Sydney time", None, "Australia/Sydney"),
        ("GMT+1 (CET)", None, "Europe/Paris"),
        ("UTC+10 (Sydney)", None, "Australia/Sydney"),
        ("UTC+3 (East Africa)", None, "UTC+03:00"),
        ("Kenya", None, "Africa/Nairobi"),
    ],
)
def test_time_zone_spellings(text: str, country: str | None, zone: str) -> None:
    assert normalise_time_zone(text, country) == zone
    assert normalise_time_zone(zone) == zone  # what we store reads back as itself


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "Mars",
        "asdf",
        "IST",
        "CST",
        "10",
        "UTC+15",
        "UTC-13",
        "UTC+5:20",
        "UTC-12:30",
        "USA",
        "Narnia",
    ],
)
def test_time_zone_nonsense_and_ambiguity_are_refused(text: str) -> None:
    assert normalise_time_zone(text) is None


@pytest.mark.parametrize(
    ("zone", "at", "minutes"),
    [
        ("Australia/Sydney", datetime(2026, 1, 15, tzinfo=UTC), 660),
        ("Australia/Sydney", datetime(2026, 7, 15, tzinfo=UTC), 600),
        ("Europe/London", datetime(2026, 7, 1), 60),  # naive means UTC
        ("Europe/London", datetime(2026, 1, 1), 0),
        ("UTC-03:30", datetime(2026, 1, 1), -210),
        ("UTC+05:45", datetime(2026, 1, 1), 345),
        ("UTC+00:00", datetime(2026, 1, 1), 0),
    ],
)
def test_utc_offsets(zone: str, at: datetime, minutes: int) -> None:
    assert utc_offset_minutes(zone, at) == minutes


def test_unknown_zone_offset_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        utc_offset_minutes("Mars/Olympus_Mons", datetime(2026, 1, 1))


@settings(deadline=None)  # the first call builds the lookup tables
@given(
    st.integers(-48, 56).map(lambda quarters: quarters * 15),
    st.sampled_from(["UTC{sign}{h}:{m:02d}", "GMT {sign}{h:02d}{m:02d}", "{sign}{h:02d}:{m:02d}"]),
)
def test_fixed_offsets_read_back_exactly(minutes: int, pattern: str) -> None:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    zone = normalise_time_zone(pattern.format(sign=sign, h=hours, m=rest))
    assert zone is not None
    assert utc_offset_minutes(zone, datetime(2026, 1, 1)) == minutes


@settings(deadline=None)  # the first call builds the lookup tables
@given(
    st.one_of(st.text(max_size=60), st.sampled_from(["Perth", "IST", "EST", "Sydney (AU)"])),
    st.sampled_from([None, "AU", "GB", "IN", "US"]),
)
def test_time_zone_never_raises_and_always_works(text: str, country: str | None) -> None:
    zone = normalise_time_zone(text, country)
    if zone is not None:
        utc_offset_minutes(zone, datetime(2026, 3, 1))
        assert normalise_time_zone(zone) == zone


def test_city_tables_build_quickly() -> None:
    timezones._geonames.cache_clear()
    started = time.perf_counter()
    timezones._geonames()
    # Under a second on a laptop; generous here so that a busy machine does not fail it.
    assert time.perf_counter() - started < 5


# --- languages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("English", "English"),
        ("english", "English"),
        ("en", "English"),
        ("eng", "English"),
        ("Spanish", "Spanish"),
        ("es", "Spanish"),
        ("spa", "Spanish"),
        ("Castilian", "Spanish"),
        ("Español", "Spanish"),
        ("espanol", "Spanish"),
        ("Français", "French"),
        ("francais", "French"),
        ("Deutsch", "German"),
        ("ger", "German"),
        ("Português", "Portuguese"),
        ("Italiano", "Italian"),
        ("Nederlands", "Dutch"),
        ("Русский", "Russian"),
        ("中文", "Chinese"),
        ("Mandarin", "Chinese"),
        ("Cantonese", "Chinese"),
        ("Mandarin Chinese", "Chinese"),
        ("zh", "Chinese"),
        ("日本語", "Japanese"),
        ("العربية", "Arabic"),
        ("Kiswahili", "Swahili"),
        ("Swahili", "Swahili"),
        ("sw", "Swahili"),
        ("Bahasa Indonesia", "Indonesian"),
        ("Tagalog", "Filipino"),
        ("Filipino", "Filipino"),
        ("हिन्दी", "Hindi"),
        ("Greek", "Greek"),
        ("Ελληνικά", "Greek"),
        ("el", "Greek"),
        ("Farsi", "Persian"),
        ("한국어", "Korean"),
        ("Türkçe", "Turkish"),
        ("Tiếng Việt", "Vietnamese"),
        ("isiZulu", "Zulu"),
        ("Yorùbá", "Yoruba"),
        ("Te Reo Māori", "Maori"),
        ("Bokmål", "Norwegian"),
        ("fluent English", "English"),
        ("French (basic)", "French"),
        ("ASL", "American Sign Language"),
    ],
)
def test_language_spellings(text: str, name: str) -> None:
    assert normalise_language(text) == name


@pytest.mark.parametrize("text", ["Elvish", "asdf", "", "the", "and", "for", "Dothraki"])
def test_language_nonsense_is_refused(text: str) -> None:
    assert normalise_language(text) is None


@pytest.mark.parametrize(
    "language",
    [lang for lang in pycountry.languages if hasattr(lang, "alpha_2")],
    ids=lambda lang: lang.alpha_2,
)
def test_major_language_names_are_plain_and_stable(language) -> None:
    name = normalise_language(language.alpha_2)
    assert name is not None
    assert ";" not in name and "(" not in name
    assert normalise_language(name) == name
    assert normalise_language(name.upper()) == name


@settings(deadline=None)  # the first call builds the lookup tables
@given(st.text(max_size=120))
def test_language_never_raises(text: str) -> None:
    name = normalise_language(text)
    assert name is None or normalise_language(name) == name
