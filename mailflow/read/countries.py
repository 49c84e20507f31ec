"""Countries as people write them, turned into ISO 3166-1 alpha-2 codes, and back into names.

pycountry gives the canonical codes and names; its own translations of them (in 160 or so
languages) give the spellings people use in other languages, and a small alias table what
both miss (short and old names, endonyms the catalogues lack). It must never guess: a name
it does not know gives None (no fuzzy matching), so that "Atlantis" is asked about rather
than silently turned into a real country.

Reading pycountry's catalogues takes seconds, so `country_names.tsv` beside this module
holds them already folded; `python -m tools.places` (tools/places.py) makes it again after
a pycountry upgrade, and tests/test_place_tables.py fails until it has been.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from importlib import resources

import pycountry

# What pycountry and its translations miss or get wrong for our purpose. Keys are folded
# when the index is built (see fold_name), so they are written as people write them.
ALIASES: dict[str, str] = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "alba": "GB",
    "wales": "GB",
    "cymru": "GB",
    "northern ireland": "GB",
    "us of a": "US",
    "united states": "US",
    "united states of america": "US",
    "america": "US",
    "holland": "NL",
    "cote divoire": "CI",
    "ivory coast": "CI",
    "south korea": "KR",
    "republic of korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "czech republic": "CZ",
    "turkey": "TR",
    "turkiye": "TR",
    "kosovo": "XK",
    "bharat": "IN",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of the congo": "CD",
    "vatican": "VA",
    "vatican city": "VA",
    "brunei": "BN",
    "palestine": "PS",
    "micronesia": "FM",
    "east timor": "TL",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
    "cape verde": "CV",
    "british virgin islands": "VG",
    "us virgin islands": "VI",
    "falkland islands": "FK",
    "dprk": "KP",
    "saudi": "SA",
    "bosnia": "BA",
    "trinidad": "TT",
    "antigua": "AG",
    "congo kinshasa": "CD",
    "congo brazzaville": "CG",
    # pycountry names Russia only "Russian Federation", and so do its translations.
    "Россия": "RU",
    "Rossiya": "RU",
    "Росія": "RU",
    "Русия": "RU",
    "Russie": "RU",
    "Rusia": "RU",
    "Rosja": "RU",
    "Rusko": "RU",
    "Ryssland": "RU",
    "Rússia": "RU",
    # Endonyms the catalogues lack.
    "Sakartvelo": "GE",
    "ایران": "IR",
    "سوريا": "SY",
    "الإمارات": "AE",
    "فلسطين": "PS",
    "Lëtzebuerg": "LU",
    "Makedonija": "MK",
    "Косово": "XK",
    "Madagasikara": "MG",
    "မြန်မာ": "MM",
    "Kalaallit Nunaat": "GL",
    "Città del Vaticano": "VA",
    "Vaticano": "VA",
    "Grande-Bretagne": "GB",
    "Großbritannien": "GB",
    "Gran Bretaña": "GB",
}

# Kosovo, which ISO has not assigned but everyone writes XK.
EXTRA_COUNTRIES: dict[str, str] = {"XK": "Kosovo"}

# Display names where pycountry's is formal or inverted ("Russian Federation",
# "Palestine, State of"); pycountry's common_name already covers Iran, Vietnam, Korea, ...
DISPLAY: dict[str, str] = {
    "RU": "Russia",
    "CD": "Democratic Republic of the Congo",
    "PS": "Palestine",
    "FM": "Micronesia",
    "VA": "Vatican City",
    "BN": "Brunei",
    "VG": "British Virgin Islands",
    "VI": "US Virgin Islands",
    "FK": "Falkland Islands",
}

# Apostrophes and dots are dropped, so "Cote dIvoire" = "Côte d'Ivoire" and "U.S." = "US".
_DROPPED = str.maketrans(
    {"'": None, "’": None, "‘": None, "ʼ": None, "`": None, "´": None, ".": None, "&": " and "}
)
_NON_WORD = re.compile(r"[^\w]+|_")
_MAX_LENGTH = 100  # no country name is longer; longer text is not an answer we can read
_PARTS = re.compile(r"[,;/()\[\]]")  # "Scotland, UK", "Kenya (Nairobi)"


def fold_name(text: str) -> str:
    """Lower-case, accent-free, punctuation-free form of a name, for comparing spellings.

    Marks are dropped in every script, consistently on both sides of a comparison.
    """
    folded = text.casefold()
    if not folded.isascii():  # the slow path only where there are accents to remove
        folded = "".join(
            ch
            for ch in unicodedata.normalize("NFKD", folded)
            if not unicodedata.category(ch).startswith("M")
        )
    stripped = folded.translate(_DROPPED)
    if not stripped.replace(" ", "").isalnum():  # the regular expression only when needed
        stripped = _NON_WORD.sub(" ", stripped)
    return " ".join(stripped.split())


@cache
def _index() -> dict[str, str]:
    """Folded name or code -> alpha-2, built once."""
    names: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attribute, None)
            if value:
                names.setdefault(fold_name(value), country.alpha_2)
    for code, name in {**DISPLAY, **EXTRA_COUNTRIES}.items():
        names.setdefault(fold_name(name), code)
    names.update((fold_name(alias), code) for alias, code in ALIASES.items())
    return names


@cache
def _translations() -> dict[str, str]:
    """Folded name in another language -> alpha-2, from country_names.tsv."""
    text = resources.files(__package__).joinpath("country_names.tsv").read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if not line.startswith("#"))
    return {name: code for code, name in rows}


def known_names() -> dict[str, str]:
    """Every folded country name and code we read -> alpha-2 (for finding names in text)."""
    return _index()


def normalise_country(text: str) -> str | None:
    """ISO 3166-1 alpha-2 code for what someone wrote as their country, or None.

    "Place, Country" forms are understood when every part we recognise names the same
    country ("Scotland, UK"); parts that disagree ("UK / Ireland") give None.
    """
    if not isinstance(text, str) or len(text) > _MAX_LENGTH:
        return None
    code = _one_country(text)
    if code is not None or not _PARTS.search(text):
        return code
    found = {_one_country(part) for part in _PARTS.split(text)} - {None}
    return found.pop() if len(found) == 1 else None


def _one_country(text: str) -> str | None:
    key = fold_name(text)
    if key.startswith("the "):
        key = key[4:]
    if not key:
        return None
    names = _index()
    if key in names:
        return names[key]
    # Short words are only ever codes, and the codes are all in our own index: a short name in
    # some language's catalogue ("end", "sad", "man") is an English word in an answer.
    if key.isascii() and len(key.replace(" ", "")) <= 3:
        return None
    return _translations().get(key)


def country_name(code: str) -> str:
    """English short name for display and export; an unknown code is returned as given."""
    code = (code or "").strip().upper()
    if code in DISPLAY:
        return DISPLAY[code]
    if code in EXTRA_COUNTRIES:
        return EXTRA_COUNTRIES[code]
    country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name
