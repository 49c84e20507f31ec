"""The regions partner wishes may name, from the continents and `rules/regions.toml`.

Every country belongs to its continent; the file adds regions of its own ("Latin America",
"Scandinavia"), each with its countries and the other names people write for it. A
missing file means the continents alone. It never reads a wish: `read.wishes` does that,
with the `Regions` made here. Each country's continent is GeoNames' (CC BY 4.0), in
`continents.tsv` beside this module, made by `python -m tools.places`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from mailflow.errors import RulesError
from mailflow.rulebook import check_keys, read_table, wrong

FILE = "regions.toml"
CONTINENTS = {
    "AF": "Africa",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "SA": "South America",
    "OC": "Oceania",
}
# Other names of the continents people write.
CONTINENT_NAMES = {
    "Africa": ("african", "sub saharan africa", "subsaharan africa"),
    "Asia": ("asian",),
    "Europe": ("european", "eu"),
    "North America": ("north american",),
    "South America": ("south american",),
    "Oceania": ("australasia", "oceania region"),
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Regions:
    """Country code -> the regions it belongs to; region name -> its other names."""

    of_country: Mapping[str, frozenset[str]]
    names: Mapping[str, tuple[str, ...]]

    def of(self, code: str) -> frozenset[str]:
        return self.of_country.get(code.upper(), frozenset())


@cache
def _continents() -> dict[str, str]:
    """Country code -> GeoNames' continent code."""
    text = resources.files(__package__).joinpath("continents.tsv").read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if not line.startswith("#"))
    return {code: continent for code, continent in rows}


def load_regions(rules: Path) -> Regions:
    """The continents, plus the regions of rules/regions.toml (if there is one); RulesError
    naming the file, the region and the key when one is written wrongly."""
    of_country: dict[str, set[str]] = {}
    for code, continent_code in _continents().items():
        continent = CONTINENTS.get(continent_code)
        if continent:
            of_country.setdefault(code, set()).add(continent)
    names = dict(CONTINENT_NAMES)
    path = Path(rules) / FILE
    table = read_table(path, {"regions": None}, missing_ok=True).get("regions", {})
    if not isinstance(table, dict):
        raise RulesError(f"{path}: regions must be sections, like [regions.Scandinavia]")
    for region, entry in table.items():
        # As the file spells the section: [regions.Caribbean], [regions."Latin America"].
        section = f"regions.{region}" if _BARE_KEY.fullmatch(region) else f'regions."{region}"'
        if not isinstance(entry, dict):
            raise wrong(path, "regions", region, "must be a section with countries and names")
        check_keys(path, section, entry, ("countries", "names"))
        codes, other = entry.get("countries"), entry.get("names", [])
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise wrong(path, section, "countries", 'must be a list of codes, like ["SE", "NO"]')
        if not isinstance(other, list) or not all(isinstance(n, str) for n in other):
            raise wrong(path, section, "names", 'must be a list of names, like ["nordic"]')
        for code in codes:
            of_country.setdefault(code.upper(), set()).add(region)
        names[region] = tuple(other)
    return Regions({c: frozenset(r) for c, r in of_country.items()}, names)
