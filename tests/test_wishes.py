"""Partner wishes in people's own words, read into keys the matching can score."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.matching import Applicant, Weights, describe, pair_scores
from mailflow.read import form, wishes

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def reader():
    regions = wishes.load_regions(RULES)
    return wishes.WishReader(form.load_choices(RULES), regions, ["metadata", "open access"])


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("An academic library, please", {"library_type:academic"}),
        ("someone at a university", {"library_type:academic"}),
        ("early-career, in Africa", {"career_stage:early career", "region:Africa"}),
        ("Latin America or the Middle East", {"region:Latin America", "region:Middle East"}),
        ("a Spanish speaker interested in metadata", {"language:Spanish", "interest:metadata"}),
        ("someone like us in the UK", {"country:GB"}),
        ("Côte d'Ivoire", {"country:CI"}),
        ("New Zealand public library", {"country:NZ", "library_type:public"}),
        ("it would be lovely", set()),
        ("no preference", set()),
        ("", set()),
    ],
)
def test_wishes_in_own_words_become_keys(reader, text, keys):
    assert reader.read(text) == keys


def test_regions_come_from_continents_and_the_rules():
    regions = wishes.load_regions(RULES)
    assert regions.of("NG") == {"Africa"}
    assert regions.of("MX") == {"North America", "Latin America"}
    assert "Scandinavia" in regions.of("se")


def test_a_badly_written_region_is_named(tmp_path):
    (tmp_path / "regions.toml").write_text('[regions.Nordic]\ncountries = "SE"\n')
    with pytest.raises(ValueError, match="Nordic"):
        wishes.load_regions(tmp_path)


def test_a_wish_read_from_text_is_scored_for_a_partner_who_fits(reader):
    regions = wishes.load_regions(RULES)

    def person(pid, country, kind, wish=""):
        return Applicant(
            pid, country, frozenset({"English"}), frozenset({"reading"}), kind, "senior",
            frozenset({"email"}), "monthly", 0, reader.read(wish), regions.of(country),
        )  # fmt: skip

    seeker = person(1, "GB", "school", "an academic library in Africa")
    fits, half, neither = (
        person(2, "KE", "academic"),
        person(3, "KE", "public"),
        person(4, "US", "public"),
    )
    assert "region:africa" in describe(fits)
    scores = pair_scores([seeker, fits, half, neither], Weights())
    assert scores[(1, 2)] > scores[(1, 3)] > scores[(1, 4)]
