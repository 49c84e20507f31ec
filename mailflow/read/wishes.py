"""Reading the form's optional "Partner wishes" into keys the matching can compare.

People write what they hope for in their own words: "an academic library", "someone early
career", "Africa or Latin America", "a Spanish speaker interested in metadata". The real
program honoured such requests; here each phrase we recognise becomes a key such as
"library_type:academic" or "region:Africa", which `matching.describe` gives every partner
who fits. Anything we do not recognise is kept as written (coordinators read it) and
simply not scored. It never refuses an application: a wish is a hope, not a field to get
right.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from mailflow.read import countries, languages
from mailflow.read.form import Choices

# The regions wishes may name are read with the other rules files; named here as well, for
# the modules that read wishes with them.
from mailflow.rulebook.regions import CONTINENT_NAMES as CONTINENT_NAMES
from mailflow.rulebook.regions import CONTINENTS as CONTINENTS
from mailflow.rulebook.regions import Regions as Regions
from mailflow.rulebook.regions import load_regions as load_regions

# Short words that are country or language codes, but ordinary words in a sentence
# ("someone like us", "in Asia", "it would be great"): only these short ones count.
SHORT_NAMES_KEPT = frozenset({"uk", "usa", "uae", "eu"})
LONGEST_PHRASE = 5  # words
# The form keeps 500 characters of wishes; more is not read (each word is looked up in up
# to LONGEST_PHRASE phrases, a second for a megabyte of short words).
MAX_TEXT = 1000


@cache
def _places_and_languages() -> dict[str, str]:
    """Folded country and language names -> wish key, without the short codes."""
    phrases: dict[str, str] = {}
    for name, code in countries.known_names().items():
        if len(name) > 3 or name in SHORT_NAMES_KEPT:
            phrases[name] = f"country:{code}"
    for name, language in languages.known_names().items():
        if len(name) > 3:
            phrases.setdefault(name, f"language:{language}")
            phrases.setdefault(f"{name} speaker", f"language:{language}")
            phrases.setdefault(f"{name} speaking", f"language:{language}")
    return phrases


class WishReader:
    """Turns wish text into keys; built once per round (it knows the round's interests)."""

    def __init__(self, choices: Choices, regions: Regions, interests: Iterable[str] = ()):
        phrases = dict(_places_and_languages())
        for region, other in regions.names.items():
            for name in (region, *other):
                phrases[countries.fold_name(name)] = f"region:{region}"
        for kind, table in (
            ("library_type", choices.library_types),
            ("career_stage", choices.career_stages),
        ):
            for value, synonyms in table.items():
                for name in (value, *synonyms):
                    phrases[countries.fold_name(name)] = f"{kind}:{value}"
        for interest in interests:
            folded = countries.fold_name(interest)
            if folded:
                phrases.setdefault(folded, f"interest:{interest}")
        self.phrases = phrases

    def read(self, text: str) -> frozenset[str]:
        """The keys of the phrases in `text`, longest phrase first, each word used once."""
        words = countries.fold_name((text or "")[:MAX_TEXT]).split()
        found, at = set(), 0
        while at < len(words):
            for length in range(min(LONGEST_PHRASE, len(words) - at), 0, -1):
                key = self.phrases.get(" ".join(words[at : at + length]))
                if key:
                    found.add(key)
                    at += length
                    break
            else:
                at += 1
        return frozenset(found)
