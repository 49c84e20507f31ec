"""The pure matcher: applicants, weights and constraints in; pairs, reasons and a bound out.

The hard constraints are checked here by our own reading of the rules (`may_pair`,
`may_group`), never by asking the module under test, and quality is measured against
networkx's exact blossom matching on the very scores the matcher optimises. Rounds are
either hand-made, a seeded realistic generator (a dozen countries, English mostly, skewed
interests) or small adversarial rounds from hypothesis (few countries, few languages,
former and hand-made pairs). Big exact comparisons belong in bench/, not here.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import combinations
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.matching import (
    Applicant,
    Finding,
    Matching,
    Pair,
    Weights,
    allowed,
    load_weights,
    match,
    pair_scores,
)
from mailflow.send.render import Renderer

_WORDS = Renderer(Path(__file__).resolve().parent.parent / "templates").sentence


def reason(finding: Finding, size: int = 2) -> str:
    """A finding about a pair as its members read it (templates/_matching.txt)."""
    return _WORDS("_matching", "reason", finding, size)


def waiting(finding: Finding) -> str:
    """Why someone waits, as they read it."""
    return _WORDS("_matching", "why_waiting", finding)


ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
NOBODY: frozenset[frozenset[int]] = frozenset()

# --- what must always hold, in our own words -------------------------------------------


def may_pair(a: Applicant, b: Applicant, former: frozenset[frozenset[int]] = NOBODY) -> bool:
    return (
        a.country != b.country
        and frozenset({a.id, b.id}) not in former
        and bool(a.languages & b.languages)
    )


def may_group(members: Sequence[Applicant], former: frozenset[frozenset[int]] = NOBODY) -> bool:
    """Two or three people who may work together: every two of them may pair, and all of
    them share one language (a trio of English-French, English-Spanish and French-Spanish
    speakers has no language in common)."""
    return all(may_pair(a, b, former) for a, b in combinations(members, 2)) and bool(
        frozenset.intersection(*(m.languages for m in members))
    )


def problems(
    result: Matching,
    people: Sequence[Applicant],
    former: frozenset[frozenset[int]] = NOBODY,
    fixed: Iterable[tuple[int, ...]] = (),
    trio_allowed: bool = True,
) -> list[str]:
    """Every way `result` breaks a rule that holds whatever the input, in words; [] if none."""
    found = []
    by_id = {p.id: p for p in people}
    placed = Counter(m for pair in result.pairs for m in pair.members)
    placed.update(pid for pid, _ in result.unmatched)
    placed.update(pid for pid, _ in result.deferred)
    if twice := sorted(pid for pid, count in placed.items() if count > 1):
        found.append(f"placed more than once: {twice}")
    if missing := sorted(by_id.keys() - placed.keys()):
        found.append(f"neither matched, unmatched nor deferred: {missing}")
    if strangers := sorted(placed.keys() - by_id.keys()):
        found.append(f"ids that did not apply: {strangers}")
    for pair in result.pairs:
        if len(pair.members) not in (2, 3):
            found.append(f"a group of {len(pair.members)}: {pair}")
        elif not may_group([by_id[m] for m in pair.members if m in by_id], former):
            found.append(f"breaks a hard constraint: {pair.members}")
        if not is_int(pair.score):
            found.append(f"score is not an integer: {pair}")
        size = len(pair.members)
        if not all(isinstance(r, Finding) and reason(r, size).strip() for r in pair.reasons):
            found.append(f"a reason without words: {pair}")
    trios = [pair for pair in result.pairs if len(pair.members) == 3 and not pair.by_hand]
    if len(trios) > 1:
        found.append(f"more than one group of three: {trios}")
    if trios and not trio_allowed:
        found.append(f"a group of three although they are not allowed: {trios}")
    for pid, why in (*result.unmatched, *result.deferred):
        if not (isinstance(why, Finding) and waiting(why).strip()):
            found.append(f"{pid} is left out without a reason: {why!r}")
    kept = {frozenset(pair.members) for pair in result.pairs if pair.by_hand}
    wanted = {frozenset(members) for members in fixed}
    if kept != wanted:
        found.append(
            f"pairs by hand {sorted(map(sorted, kept))}, given {sorted(map(sorted, wanted))}"
        )
    if not (is_int(result.total) and is_int(result.upper_bound)):
        found.append(f"total {result.total!r} or bound {result.upper_bound!r} is not an integer")
    if result.total > result.upper_bound:
        found.append(f"total {result.total} above its upper bound {result.upper_bound}")
    if not result.certified_ratio <= 1:
        found.append(f"certified ratio {result.certified_ratio} above 1")
    if trio_allowed and not trios and (missed := missed_trio(result, by_id, former)):
        found.append(f"{missed[0]} is left out though {missed[1]} could take them in as a trio")
    return found


def missed_trio(result: Matching, by_id: dict[int, Applicant], former) -> tuple | None:
    """A person left unmatched who could have joined a pair as its third member."""
    for pid, _ in result.unmatched:
        for pair in result.pairs:
            members = [by_id[m] for m in (*pair.members, pid)]
            if not pair.by_hand and len(pair.members) == 2 and may_group(members, former):
                return pid, pair.members
    return None


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def exact_optimum(scores: dict[tuple[int, int], int]) -> int:
    graph = nx.Graph()
    graph.add_weighted_edges_from((a, b, score) for (a, b), score in scores.items())
    return sum(graph[a][b]["weight"] for a, b in nx.max_weight_matching(graph))


def most_pairs(people: Iterable[Applicant], former: frozenset[frozenset[int]] = NOBODY) -> int:
    """The size of a maximum-cardinality matching of the allowed graph."""
    people = list(people)
    graph = nx.Graph()
    graph.add_nodes_from(p.id for p in people)
    graph.add_edges_from((a.id, b.id) for a, b in combinations(people, 2) if may_pair(a, b, former))
    return len(nx.max_weight_matching(graph, maxcardinality=True))


def coverage_problem(
    result: Matching, people: Sequence[Applicant], former: frozenset[frozenset[int]] = NOBODY
) -> str | None:
    """Among the people the matcher was free to pair (not by hand, not deferred), it must
    match as many as a maximum-cardinality matching does, plus the third of one trio."""
    set_aside = {m for pair in result.pairs if pair.by_hand for m in pair.members}
    set_aside |= {pid for pid, _ in result.deferred}
    free = [p for p in people if p.id not in set_aside]
    best = 2 * most_pairs(free, former)
    matched = sum(len(pair.members) for pair in result.pairs if not pair.by_hand)
    trio = any(len(pair.members) == 3 for pair in result.pairs if not pair.by_hand)
    if matched != best + trio:
        return f"matched {matched} people, a maximum matching pairs {best}"
    by_hand = sum(pair.by_hand for pair in result.pairs)
    if (result.possible, result.possible_exact) != (best // 2 + by_hand, True):
        return f"states {result.possible} pairs possible, a maximum matching has {best // 2}"
    return None


# --- people ------------------------------------------------------------------------------


def person(pid: int, country: str = "GB", **changes) -> Applicant:
    """An ordinary applicant; tests change only what they are about."""
    details = dict(
        id=pid,
        country=country,
        languages=frozenset({"English"}),
        interests=frozenset({"cataloguing"}),
        library_type="public",
        career_stage="early career",
        contact_methods=frozenset({"email"}),
        contact_frequency="monthly",
        utc_offset=0,
        regions=frozenset({REGIONS.get(country, "Europe")}),
    )
    details.update(changes)
    return Applicant(**details)


REGIONS = {
    "GB": "Europe",
    "FR": "Europe",
    "ES": "Europe",
    "DE": "Europe",
    "NG": "Africa",
    "KE": "Africa",
    "ZA": "Africa",
    "BR": "Americas",
    "MX": "Americas",
    "US": "Americas",
    "CA": "Americas",
    "IN": "Asia",
    "JP": "Asia",
    "PH": "Asia",
    "AU": "Oceania",
}

# country: (UTC offsets in minutes, languages, relative share of applicants)
COUNTRIES = {
    "US": ((-300, -360, -480), ("English", "Spanish"), 14),
    "GB": ((0,), ("English",), 10),
    "IN": ((330,), ("English", "Hindi"), 9),
    "NG": ((60,), ("English", "Yoruba"), 8),
    "BR": ((-180,), ("Portuguese",), 7),
    "KE": ((180,), ("English", "Swahili"), 6),
    "AU": ((600, 480), ("English",), 6),
    "CA": ((-300, -480), ("English", "French"), 6),
    "MX": ((-360,), ("Spanish",), 6),
    "ES": ((60,), ("Spanish", "Catalan"), 5),
    "FR": ((60,), ("French",), 5),
    "ZA": ((120,), ("English", "Afrikaans"), 4),
    "PH": ((480,), ("English", "Filipino"), 4),
    "JP": ((540,), ("Japanese",), 3),
}
# Skewed like real forms: a few interests everybody names, a long tail few do.
INTERESTS = [
    "open access",
    "information literacy",
    "digital preservation",
    "metadata",
    "outreach",
    "cataloguing",
    "research data",
    "children's services",
    "reference",
    "collection development",
    "copyright",
    "makerspaces",
    "library instruction",
    "archives",
    "scholarly communication",
    "digital humanities",
    "user experience",
    "leadership",
    "systematic reviews",
    "indigenous knowledge",
    "rare books",
    "oral history",
    "music libraries",
    "maps",
    "law librarianship",
    "conservation",
    "open source software",
    "prison libraries",
    "linked data",
    "bibliometrics",
]
LIBRARY_TYPES = {
    "academic": 30,
    "public": 25,
    "school": 10,
    "special": 8,
    "national": 3,
    "government": 4,
    "health": 6,
    "law": 3,
    "corporate": 3,
    "museum or archive": 5,
    "other": 3,
}
CAREER_STAGES = {"student": 15, "early career": 40, "mid career": 30, "senior": 15}
CONTACT_METHODS = ["email", "video call", "phone", "chat"]
FREQUENCIES = {"weekly": 15, "fortnightly": 30, "monthly": 45, "as needed": 10}


def pick(rng: random.Random, shares: dict[str, int]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def realistic_round(n: int, seed: int) -> tuple[list[Applicant], frozenset[frozenset[int]]]:
    """`n` applicants of a plausible round and a few former partnerships among them."""
    rng = random.Random(seed)
    interest_shares = {name: 1 / (rank + 1) for rank, name in enumerate(INTERESTS)}
    country_shares = {code: share for code, (_, _, share) in COUNTRIES.items()}
    people = []
    for pid in range(1, n + 1):
        country = pick(rng, country_shares)
        offsets, spoken, _ = COUNTRIES[country]
        languages = {spoken[0]} | {lang for lang in spoken[1:] if rng.random() < 0.3}
        if rng.random() < 0.75:
            languages.add("English")
        if rng.random() < 0.1:
            languages.add(rng.choice(["Spanish", "French", "Portuguese", "German"]))
        interests = set()
        while len(interests) < rng.randint(1, 4):
            interests.add(pick(rng, interest_shares))
        methods = {"email"} if rng.random() < 0.8 else set()
        methods |= {m for m in CONTACT_METHODS[1:] if rng.random() < 0.35}
        wishes = set()
        if rng.random() < 0.25:
            wishes.add(
                rng.choice(
                    [
                        f"library_type:{pick(rng, LIBRARY_TYPES)}",
                        f"career_stage:{pick(rng, CAREER_STAGES)}",
                        f"country:{pick(rng, country_shares)}",
                        f"region:{rng.choice(sorted(set(REGIONS.values())))}",
                        "language:Spanish",
                        f"interest:{pick(rng, interest_shares)}",
                    ]
                )
            )
        people.append(
            Applicant(
                id=pid,
                country=country,
                languages=frozenset(languages),
                interests=frozenset(interests),
                library_type=pick(rng, LIBRARY_TYPES),
                career_stage=pick(rng, CAREER_STAGES),
                contact_methods=frozenset(methods or {"email"}),
                contact_frequency=pick(rng, FREQUENCIES),
                utc_offset=rng.choice(offsets),
                wishes=frozenset(wishes),
                regions=frozenset({REGIONS[country]}),
            )
        )
    former = set()
    while len(former) < n // 8:
        a, b = rng.sample(range(1, n + 1), 2)
        former.add(frozenset({a, b}))
    return people, frozenset(former)


@dataclasses.dataclass(frozen=True)
class Solved:
    people: list[Applicant]
    former: frozenset[frozenset[int]]
    scores: dict[tuple[int, int], int]
    optimum: int
    result: Matching


@cache
def solved(n: int, seed: int, **options) -> Solved:
    """A realistic round, matched, with networkx's exact optimum beside it (computed once)."""
    people, former = realistic_round(n, seed)
    scores = pair_scores(people, Weights(), former=former)
    result = match(people, Weights(), former=former, **options)
    return Solved(people, former, scores, exact_optimum(scores), result)


REALISTIC = [
    pytest.param(200, 1, id="200"),
    pytest.param(251, 2, id="251-odd"),
    pytest.param(300, 3, id="300"),
]

# --- realistic rounds --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), REALISTIC)
def test_a_realistic_round_keeps_every_hard_constraint(n, seed):
    round_ = solved(n, seed)
    assert problems(round_.result, round_.people, round_.former) == []


@pytest.mark.parametrize(("n", "seed"), REALISTIC)
def test_a_realistic_round_is_within_one_percent_of_the_exact_optimum(n, seed):
    round_ = solved(n, seed)
    assert round_.result.total >= 0.99 * round_.optimum
    # A group of three counts at the score of one of its pairs, so the total is that of a
    # real matching and can never beat the optimum.
    assert round_.result.total <= round_.optimum


@pytest.mark.parametrize(("n", "seed"), REALISTIC)
def test_a_realistic_round_matches_everyone_a_maximum_matching_can(n, seed):
    round_ = solved(n, seed)
    assert coverage_problem(round_.result, round_.people, round_.former) is None


def test_a_strong_pair_gives_way_when_that_lets_two_more_people_be_matched():
    """Found by hypothesis: the best-scoring pairs (7, 8) and (9, 10) leave six people
    alone, while (7, 9), (8, 1) and (10, 2) pair six. The only augmenting path runs
    through an odd cycle (1-8-7-9-10), so finding it needs Edmonds' blossoms."""
    shared = frozenset({"metadata", "outreach", "palaeography", "maps"})
    english_and_spanish = frozenset({"English", "Spanish"})
    people = [person(pid, "GB", interests=frozenset()) for pid in range(1, 7)]
    people += [
        person(7, "GB", languages=frozenset({"Spanish"}), interests=frozenset(), utc_offset=315),
        person(8, "NG", languages=english_and_spanish, interests=frozenset(), utc_offset=255),
        person(9, "BR", languages=frozenset({"Spanish"}), interests=shared),
        person(10, "NG", languages=english_and_spanish, interests=shared),
    ]
    scores = pair_scores(people, Weights())
    assert scores[(9, 10)] + scores[(7, 8)] > scores[(7, 9)] + max(scores[(1, 8)], scores[(2, 8)])

    result = match(people, Weights(), allow_trio=False)

    assert coverage_problem(result, people) is None
    assert {pair.members for pair in result.pairs} >= {(7, 9)}
    assert len(result.pairs) == 3 and result.total <= result.upper_bound


def test_without_trios_the_odd_one_out_of_a_realistic_round_is_left_with_a_reason():
    round_ = solved(251, 2, allow_trio=False)
    assert problems(round_.result, round_.people, round_.former, trio_allowed=False) == []
    assert coverage_problem(round_.result, round_.people, round_.former) is None
    assert round_.result.unmatched


@pytest.mark.parametrize(("n", "seed"), REALISTIC)
def test_the_upper_bound_is_a_true_bound_and_certifies_the_ratio(n, seed):
    round_ = solved(n, seed)
    result = round_.result
    assert result.upper_bound >= round_.optimum
    assert result.certified_ratio == pytest.approx(result.total / result.upper_bound)
    assert result.certified_ratio <= 1


@pytest.mark.parametrize(("n", "seed"), REALISTIC)
def test_each_pair_carries_the_score_that_pair_scores_gives_it(n, seed):
    round_ = solved(n, seed)
    for pair in round_.result.pairs:
        if len(pair.members) == 2:
            assert pair.score == round_.scores[tuple(sorted(pair.members))], pair
    pairs_of_two = sum(p.score for p in round_.result.pairs if len(p.members) == 2)
    trio = [p.members for p in round_.result.pairs if len(p.members) == 3]
    counted = {
        round_.scores[tuple(sorted(two))] for members in trio for two in combinations(members, 2)
    }
    assert round_.result.total - pairs_of_two in (counted or {0})


def test_the_sparse_candidate_graph_keeps_the_rules_and_97_percent_of_the_optimum():
    round_ = solved(300, 3, dense_up_to=50)
    result = round_.result
    assert "sparse" in result.candidate_graph
    assert problems(result, round_.people, round_.former) == []
    assert result.total >= 0.97 * round_.optimum


def test_the_sparse_upper_bound_still_bounds_the_exact_optimum():
    round_ = solved(300, 3, dense_up_to=50)
    assert round_.result.upper_bound >= round_.optimum


def test_two_people_who_alone_share_a_rare_interest_end_up_together():
    people, former = realistic_round(200, seed=4)
    assert not any("palaeography" in p.interests for p in people)
    alike = dict(library_type="academic", career_stage="mid career")
    ann = person(1001, "GB", interests=frozenset({"palaeography", "open access"}), **alike)
    ade = person(
        1002, "NG", interests=frozenset({"palaeography", "outreach"}), utc_offset=60, **alike
    )
    result = match([*people, ann, ade], Weights(), former=former)
    together = [pair for pair in result.pairs if 1001 in pair.members]
    assert together and 1002 in together[0].members, together
    assert any("palaeography" in reason(r) for r in together[0].reasons)


def test_the_same_round_gives_the_same_matching():
    people, former = realistic_round(120, seed=5)
    assert match(people, Weights(), former=former) == match(people, Weights(), former=former)


def test_the_matching_does_not_depend_on_the_hash_seed():
    # Sets of strings iterate in an order that changes with PYTHONHASHSEED; a matcher that
    # walks them without sorting gives a different answer in every process.
    script = (
        "from mailflow.matching import Weights, match\n"
        "from tests.test_matching import realistic_round\n"
        "people, former = realistic_round(120, seed=5)\n"
        "print(repr(match(people, Weights(), former=former)))\n"
    )
    answers = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        assert run.returncode == 0, run.stderr.decode()
        answers.add(run.stdout)
    assert len(answers) == 1


def test_the_order_of_the_applicants_changes_nothing_but_ties():
    round_ = solved(251, 2)
    shuffled = list(round_.people)
    random.Random(6).shuffle(shuffled)
    for order in (shuffled, round_.people[::-1]):
        again = match(order, Weights(), former=round_.former)
        assert again.total == round_.result.total


def test_reporting_progress_changes_nothing():
    people, former = realistic_round(60, seed=8)
    calls = []
    watched = match(people, Weights(), former=former, progress=lambda *args: calls.append(args))
    assert watched == match(people, Weights(), former=former)


# --- hard constraints, by hand -----------------------------------------------------------


def test_allowed_needs_two_countries_a_common_language_and_no_former_partnership():
    ann, bo = person(1, "GB"), person(2, "SE")
    assert allowed(ann, bo)
    assert allowed(bo, ann)
    assert not allowed(ann, person(2, "GB"))
    assert not allowed(ann, person(2, "SE", languages=frozenset({"Swedish"})))
    assert not allowed(ann, bo, former=frozenset({frozenset({1, 2})}))
    assert allowed(ann, bo, former=frozenset({frozenset({1, 3})}))


def test_pair_scores_lists_exactly_the_allowed_pairs_smaller_id_first():
    people = [
        person(3, "GB"),
        person(1, "NG"),
        person(2, "GB"),
        person(4, "FR", languages=frozenset({"French"})),
        person(5, "KE"),
    ]
    former = frozenset({frozenset({1, 5})})
    scores = pair_scores(people, Weights(), former=former)
    assert set(scores) == {(1, 2), (1, 3), (2, 5), (3, 5)}
    assert all(is_int(score) for score in scores.values())


@pytest.mark.parametrize(
    ("second", "former"),
    [
        pytest.param(person(2, "GB"), NOBODY, id="same country"),
        pytest.param(person(2, "FR", languages=frozenset({"French"})), NOBODY, id="no language"),
        pytest.param(person(2, "NG"), frozenset({frozenset({1, 2})}), id="former partners"),
    ],
)
def test_two_people_who_may_not_pair_are_both_left_out_with_a_reason(second, former):
    result = match([person(1, "GB"), second], Weights(), former=former)
    assert result.pairs == ()
    assert sorted(pid for pid, _ in result.unmatched) == [1, 2]
    assert all(waiting(why).strip() for _, why in result.unmatched)


def test_an_applicant_no_one_can_talk_to_is_left_out_with_a_reason():
    people = [person(1, "GB"), person(2, "NG"), person(3, "JP", languages=frozenset({"Japanese"}))]
    result = match(people, Weights())
    assert [pair.members for pair in result.pairs] in ([(1, 2)], [(2, 1)])
    assert [pid for pid, _ in result.unmatched] == [3]
    assert waiting(result.unmatched[0][1]).strip()


# --- the odd one out ---------------------------------------------------------------------

THREE = [person(1, "GB"), person(2, "NG"), person(3, "IN", utc_offset=330)]


@pytest.mark.parametrize("allow_trio", [True, None], ids=["allowed", "from weights"])
def test_the_odd_one_out_joins_a_group_of_three(allow_trio):
    result = match(THREE, Weights(), allow_trio=allow_trio)
    assert [sorted(pair.members) for pair in result.pairs] == [[1, 2, 3]]
    assert result.unmatched == ()
    assert result.total in set(pair_scores(THREE, Weights()).values())


def test_without_trios_the_odd_one_out_is_left_with_a_reason():
    result = match(THREE, Weights(), allow_trio=False)
    assert [len(pair.members) for pair in result.pairs] == [2]
    assert len(result.unmatched) == 1
    assert waiting(result.unmatched[0][1]).strip()


@pytest.mark.parametrize(
    ("people", "former"),
    [
        pytest.param(
            [
                person(1, "GB", languages=frozenset({"English", "French"})),
                person(2, "US", languages=frozenset({"English", "Spanish"})),
                person(3, "CA", languages=frozenset({"French", "Spanish"})),
            ],
            NOBODY,
            id="every two share a language, all three none",
        ),
        pytest.param(THREE, frozenset({frozenset({2, 3})}), id="two of them were partners"),
        pytest.param([*THREE[:2], person(3, "GB")], NOBODY, id="two of them in one country"),
    ],
)
def test_no_group_of_three_when_it_would_break_a_rule(people, former):
    result = match(people, Weights(), former=former, allow_trio=True)
    assert problems(result, people, former) == []
    assert [len(pair.members) for pair in result.pairs] == [2]
    assert len(result.unmatched) == 1


# --- pairs by hand and the country cap ---------------------------------------------------


def test_pairs_made_by_hand_are_kept_and_the_rest_are_matched():
    people = [
        person(1, "GB", interests=frozenset({"maps"})),
        person(2, "NG", interests=frozenset({"maps"})),
        person(3, "FR", interests=frozenset({"outreach"})),
        person(4, "KE", interests=frozenset({"outreach"})),
    ]
    # By hand the coordinator splits the two obvious pairs.
    result = match(people, Weights(), fixed=[(1, 3)])
    assert problems(result, people, fixed=[(1, 3)]) == []
    by_hand = [pair for pair in result.pairs if pair.by_hand]
    assert [set(pair.members) for pair in by_hand] == [{1, 3}]
    assert [set(pair.members) for pair in result.pairs if not pair.by_hand] == [{2, 4}]


def test_nobody_is_deferred_without_a_country_cap():
    people = [person(i, "NG") for i in range(1, 13)] + [
        person(12 + i, country) for i, country in enumerate(["GB", "FR", "KE", "IN"], 1)
    ]
    result = match(people, Weights())
    assert result.deferred == ()


def test_people_beyond_the_country_cap_are_deferred_not_matched():
    others = ["GB", "FR", "KE", "IN", "BR", "US", "AU", "ZA"]
    people = [person(i, "NG") for i in range(1, 13)] + [
        person(12 + i, country) for i, country in enumerate(others, 1)
    ]
    result = match(people, Weights(), country_cap=0.25)
    assert problems(result, people) == []
    deferred = {pid for pid, _ in result.deferred}
    assert deferred <= set(range(1, 13)), "only Nigeria is over the cap"
    # A quarter of the applicants is 5; a quarter of those who go ahead is fewer. Either
    # reading of "share of the round" keeps some Nigerians and no more than 5.
    assert 1 <= 12 - len(deferred) <= 5
    assert all(waiting(why).strip() for _, why in result.deferred)
    matched = {m for pair in result.pairs for m in pair.members}
    assert not matched & deferred
    assert set(range(13, 21)) <= matched


# --- the score and its reasons -----------------------------------------------------------


def base_pair() -> tuple[Applicant, Applicant]:
    """Two people who may pair and have nothing else in common: waking hours apart too."""
    ann = person(1, "GB", career_stage="student")
    ade = person(
        2,
        "NG",
        languages=frozenset({"English", "Spanish"}),
        interests=frozenset({"outreach"}),
        library_type="academic",
        career_stage="senior",
        contact_methods=frozenset({"phone"}),
        contact_frequency="weekly",
        utc_offset=720,
    )
    return ann, ade


def scored(ann: Applicant, ade: Applicant, weights: Weights | None = None) -> tuple[int, Pair]:
    weights = weights or Weights()
    score = pair_scores([ann, ade], weights)[(1, 2)]
    [pair] = match([ann, ade], weights).pairs
    assert pair.score == score
    return score, pair


SHARED_GROUND = [
    pytest.param({}, {"interests": frozenset({"outreach", "cataloguing"})}, id="interest"),
    pytest.param({}, {"library_type": "public"}, id="library type"),
    pytest.param({}, {"career_stage": "student"}, id="career stage"),
    pytest.param({}, {"contact_methods": frozenset({"phone", "email"})}, id="contact method"),
    pytest.param({}, {"contact_frequency": "monthly"}, id="contact frequency"),
    pytest.param({}, {"utc_offset": 60}, id="waking hours"),
    pytest.param({"wishes": frozenset({"library_type:academic"})}, {}, id="wish library type"),
    pytest.param({"wishes": frozenset({"career_stage:senior"})}, {}, id="wish career stage"),
    pytest.param({"wishes": frozenset({"country:NG"})}, {}, id="wish country"),
    pytest.param({"wishes": frozenset({"region:Africa"})}, {}, id="wish region"),
    pytest.param({"wishes": frozenset({"language:Spanish"})}, {}, id="wish language"),
    pytest.param({"wishes": frozenset({"interest:outreach"})}, {}, id="wish interest"),
    pytest.param({}, {"wishes": frozenset({"library_type:public"})}, id="partner's wish"),
]


@pytest.mark.parametrize(("to_ann", "to_ade"), SHARED_GROUND)
def test_shared_ground_raises_the_score_and_is_named_in_the_reasons(to_ann, to_ade):
    ann, ade = base_pair()
    before, plain = scored(ann, ade)
    after, better = scored(dataclasses.replace(ann, **to_ann), dataclasses.replace(ade, **to_ade))
    assert after > before
    assert set(better.reasons) - set(plain.reasons), (plain.reasons, better.reasons)
    said = [reason(r) for r in better.reasons]
    assert all(0 < len(words) <= 120 and "\n" not in words for words in said), said


def test_the_shared_interest_is_named_in_a_reason():
    ann, ade = base_pair()
    _, pair = scored(ann, dataclasses.replace(ade, interests=frozenset({"cataloguing"})))
    assert any("cataloguing" in reason(r) for r in pair.reasons), pair.reasons


def test_a_wish_not_met_adds_nothing():
    ann, ade = base_pair()
    before, _ = scored(ann, ade)
    after, _ = scored(dataclasses.replace(ann, wishes=frozenset({"country:BR"})), ade)
    assert after <= before


def test_a_rare_shared_interest_weighs_more_than_a_common_one():
    people = [
        person(i, country, utc_offset=0)
        for i, country in enumerate(["GB", "NG", "FR", "KE", "IN", "US"], 1)
    ]
    people += [
        person(7, "BR", interests=frozenset({"palaeography"})),
        person(8, "ZA", interests=frozenset({"palaeography"})),
    ]
    scores = pair_scores(people, Weights())
    assert scores[(7, 8)] > scores[(1, 2)]


# --- weights from the rules dir ----------------------------------------------------------


def test_a_missing_matching_toml_gives_the_defaults(tmp_path):
    assert load_weights(tmp_path) == Weights()


def test_the_shipped_rules_load():
    assert isinstance(load_weights(RULES), Weights)


def test_every_score_in_the_shipped_matching_toml_is_read(tmp_path):
    shipped = tomllib.loads((RULES / "matching.toml").read_text(encoding="utf-8"))
    raised = {key: value + 1 for key, value in shipped["score"].items() if is_int(value)}
    assert "same_library_type" in raised
    (tmp_path / "matching.toml").write_text(
        "[score]\n" + "".join(f"{key} = {value}\n" for key, value in raised.items()),
        encoding="utf-8",
    )
    assert load_weights(tmp_path) == dataclasses.replace(Weights(), **raised)


def test_a_changed_weight_in_matching_toml_changes_the_score(tmp_path):
    ann, ade = base_pair()
    ade = dataclasses.replace(ade, library_type=ann.library_type)
    heavier = Weights().same_library_type + 40
    (tmp_path / "matching.toml").write_text(
        f"[score]\n# coordinators care about the kind of library\nsame_library_type = {heavier}\n",
        encoding="utf-8",
    )
    weights = load_weights(tmp_path)
    assert weights.same_library_type == heavier
    assert scored(ann, ade, weights)[0] > scored(ann, ade)[0]


@pytest.mark.parametrize(
    ("line", "key"),
    [
        pytest.param("same_libary_type = 10", "same_libary_type", id="unknown key"),
        pytest.param('same_library_type = "high"', "same_library_type", id="text"),
        pytest.param("same_library_type = 2.5", "same_library_type", id="fraction"),
        pytest.param("same_library_type = true", "same_library_type", id="boolean"),
    ],
)
def test_a_bad_line_in_matching_toml_names_its_key(tmp_path, line, key):
    (tmp_path / "matching.toml").write_text(f"[score]\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=key):
        load_weights(tmp_path)


# --- small adversarial rounds ------------------------------------------------------------

FEW_COUNTRIES = ["GB", "NG", "BR", "IN"]
FEW_LANGUAGES = ["English", "Spanish", "French"]
WISHES = [
    "library_type:academic",
    "career_stage:senior",
    "country:NG",
    "region:Africa",
    "language:Spanish",
    "interest:metadata",
]


@st.composite
def applicants(draw, pid: int) -> Applicant:
    country = draw(st.sampled_from(FEW_COUNTRIES))
    return Applicant(
        id=pid,
        country=country,
        languages=draw(st.frozensets(st.sampled_from(FEW_LANGUAGES), min_size=1, max_size=2)),
        interests=draw(
            st.frozensets(st.sampled_from(["metadata", "outreach", "palaeography", "maps"]))
        ),
        library_type=draw(st.sampled_from(["academic", "public", "school"])),
        career_stage=draw(st.sampled_from(list(CAREER_STAGES))),
        contact_methods=draw(st.frozensets(st.sampled_from(CONTACT_METHODS), min_size=1)),
        contact_frequency=draw(st.sampled_from(list(FREQUENCIES))),
        utc_offset=draw(st.integers(-48, 56)) * 15,
        wishes=draw(st.frozensets(st.sampled_from(WISHES), max_size=2)),
        regions=frozenset({REGIONS[country]}),
    )


@st.composite
def rounds(draw, by_hand: bool = True, capped: bool = True) -> dict:
    """A small round where the hard constraints bite: few countries and languages, former
    partners, and perhaps pairs made by hand and a country cap."""
    n = draw(st.integers(0, 11))
    ids = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n, unique=True))
    people = [draw(applicants(pid)) for pid in ids]
    former = frozenset()
    if n >= 2:
        chosen = draw(st.lists(st.sampled_from(list(combinations(ids, 2))), max_size=n))
        former = frozenset(frozenset(two) for two in chosen)
    fixed = []
    if by_hand:
        candidates = [(a.id, b.id) for a, b in combinations(people, 2) if may_pair(a, b, former)]
        taken = set()
        for a, b in draw(st.lists(st.sampled_from(candidates), max_size=2)) if candidates else []:
            if not {a, b} & taken:
                fixed.append((a, b))
                taken |= {a, b}
    cap = draw(st.sampled_from([None, 0.3, 0.5])) if capped else None
    return dict(
        people=people,
        former=former,
        fixed=fixed,
        country_cap=cap,
        allow_trio=draw(st.sampled_from([True, False, None])),
    )


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_hard_constraints_hold_in_any_round(round_):
    result = match(
        round_["people"],
        Weights(),
        former=round_["former"],
        fixed=round_["fixed"],
        country_cap=round_["country_cap"],
        allow_trio=round_["allow_trio"],
    )
    trio_allowed = round_["allow_trio"] is not False
    assert problems(result, round_["people"], round_["former"], round_["fixed"], trio_allowed) == []
    assert coverage_problem(result, round_["people"], round_["former"]) is None
    if round_["country_cap"] is None:
        assert result.deferred == ()


@settings(max_examples=60, deadline=None)
@given(rounds(by_hand=False, capped=False), st.randoms(use_true_random=False))
def test_any_round_is_a_real_matching_under_a_true_bound_whatever_the_order(round_, rng):
    people, former = round_["people"], round_["former"]
    scores = pair_scores(people, Weights(), former=former)
    result = match(people, Weights(), former=former, allow_trio=round_["allow_trio"])
    best = exact_optimum(scores)
    assert result.total <= best <= result.upper_bound
    for pair in result.pairs:
        if len(pair.members) == 2:
            assert pair.score == scores[tuple(sorted(pair.members))]
    shuffled = list(people)
    rng.shuffle(shuffled)
    assert match(shuffled, Weights(), former=former, allow_trio=round_["allow_trio"]).total == (
        result.total
    )


@settings(max_examples=60, deadline=None)
@given(rounds(by_hand=False, capped=False))
def test_pair_scores_and_allowed_agree_with_the_rules(round_):
    people, former = round_["people"], round_["former"]
    scores = pair_scores(people, Weights(), former=former)
    expected = {
        (min(a.id, b.id), max(a.id, b.id))
        for a, b in combinations(people, 2)
        if may_pair(a, b, former)
    }
    assert set(scores) == expected
    assert all(is_int(score) for score in scores.values())
    for a, b in combinations(people, 2):
        assert allowed(a, b, former) == allowed(b, a, former) == may_pair(a, b, former)
