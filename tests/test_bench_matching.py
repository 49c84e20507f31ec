"""The matching benchmark's own pieces: the shapes of round it builds, its independent
figure of the pairs possible, and its command-line case, at a size that runs in seconds.
No timings are asserted here; they belong to `bench/matching.py`."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

from bench import matching, population
from bench.population import SHAPES, shaped_round, to_csv
from bench.possible import can_pair, most_pairs
from mailflow.matching import allowed


def exact_most_pairs(people, former) -> int:
    graph = nx.Graph()
    graph.add_nodes_from(person.id for person in people)
    graph.add_edges_from(
        (a.id, b.id)
        for i, a in enumerate(people)
        for b in people[i + 1 :]
        if can_pair(a, b, former)
    )
    return len(nx.max_weight_matching(graph, maxcardinality=True))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_pairs_possible_are_networkx_maximum_cardinality(shape):
    for n, seed in ((41, 1), (160, 2), (400, 3)):
        people, former = shaped_round(n, seed, shape)
        found = most_pairs(people, former)
        exact = exact_most_pairs(people, former)
        assert found.pairs <= exact <= found.bound
        if n >= 160:  # former partnerships are dense in a round of 41, rare above
            assert found.exact and found.pairs == exact, (shape, n, found, exact)


@pytest.mark.parametrize("scenario", ["normal", "dominant", "isolated"])
def test_the_pairs_possible_in_the_older_scenarios(scenario):
    people = population.population(300, 5, scenario=scenario)
    found = most_pairs(people)
    assert found.exact and found.pairs == exact_most_pairs(people, frozenset())


def test_the_matching_behind_the_figure_keeps_the_rules():
    people, former = shaped_round(600, 4, "returners")
    found = most_pairs(people, former)
    by_id = {person.id: person for person in people}
    members = [i for pair in found.matching for i in pair]
    assert len(members) == len(set(members)) == 2 * found.pairs
    assert all(allowed(by_id[a], by_id[b], former) for a, b in found.matching)


def test_the_rules_restated_agree_with_mailflows():
    people, former = shaped_round(120, 6, "returners")
    for a in people[:40]:
        for b in people:
            assert can_pair(a, b, former) == allowed(a, b, former)


def test_a_round_is_the_same_for_the_same_arguments():
    for shape in SHAPES:
        one, two = shaped_round(300, 9, shape), shaped_round(300, 9, shape)
        assert to_csv(one[0]) == to_csv(two[0]) and one[1] == two[1]
        assert to_csv(one[0]) != to_csv(shaped_round(300, 10, shape)[0])


def test_each_shape_has_its_make_up():
    n = 6000
    dozen = Counter(p.country for p in population.population(n, 1, scenario="dozen"))
    assert len(dozen) == 12 and set(dozen.values()) == {n // 12}
    for shape in ("dozen", "majority"):
        assert all("English" in p.languages for p in population.population(n, 1, scenario=shape))

    majority = Counter(p.country for p in population.population(n, 1, scenario="majority"))
    assert majority[population.MAJORITY] == round(n * 0.55) and len(majority) > 20

    islands = population.population(n, 1, scenario="islands")
    spoken = [
        {lang for p in islands if population.ISLAND_OF[p.country] == island for lang in p.languages}
        for island in ("Spanish", "French")
    ]
    assert not spoken[0] & spoken[1]
    for island in ("Spanish", "French"):
        assert len({p.country for p in islands if island in p.languages}) >= 5

    people, former = shaped_round(n, 1, "returners")
    ids = {p.id for p in people}
    with_former = {i for pair in former for i in pair if i in ids}
    assert abs(len(with_former) / n - population.RETURNER_SHARE) < 0.02
    assert sum(pair <= ids for pair in former) > n / 3

    tiny = Counter(p.country for p in population.population(n, 1, scenario="tiny"))
    assert len(tiny) == 150 and max(tiny.values()) < n * 0.1
    assert sorted(tiny.values())[len(tiny) // 2] < 40


def test_every_country_and_zone_of_the_shapes_imports():
    """The command-line cases import the rounds as CSV: every name must be read back."""
    from mailflow.read.countries import country_name, normalise_country

    for code in {*population.TINY, *population.ISLAND_OF, *population.DOZEN}:
        assert normalise_country(country_name(code)) == code
        assert population.country_of(code).zones


def test_the_command_line_case_writes_former_partners_and_reads_the_preview():
    case = matching.Case("returners-300", "returners", 300, ("cli",))
    row = matching.Row(case.name, "cli", case.n)
    matching._cli_row(case, row)
    assert row.problems == []
    assert any("former partnerships written" in note for note in row.notes)
    possible = most_pairs(*shaped_round(300, matching.SEED, "returners"))
    assert row.pairs == row.possible == possible.pairs
    assert row.certified and row.candidate_graph == "complete"


def test_a_shape_case_fills_the_columns_and_the_targets():
    # Named as the target's case, at a fifth of its size.
    case = matching.Case("islands-1000", "islands", 240, ("mailflow",))
    [row] = matching.run_case(case, "mailflow")
    assert row.pairs is not None and row.possible == row.possible_bound
    assert row.max_cardinality == row.possible
    matching._cross_check([row])
    assert row.problems == []
    lines = matching.targets([row])
    [line] = [line for line in lines if line.startswith("  - islands 1,000")]
    assert "not measured: exact" in line
    assert "| islands-1000 |" in matching.table([row])


def test_only_names_cases_exactly():
    everything = matching.cases(matching.NORMAL_SIZES, False, matching.EXACT_UP_TO)
    jobs = matching._only(["dozen-100000:cli", "tiny-5000"], everything)
    assert [(case.name, solver) for case, solver in jobs] == [
        ("dozen-100000", "cli"),
        ("tiny-5000", "mailflow"),
    ]
    assert matching._only(["dozen-7"], everything) is None
    quick = matching.cases(matching.NORMAL_SIZES, True, matching.EXACT_UP_TO)
    assert max(case.n for case in quick) <= matching.QUICK_UP_TO
    assert not any("networkx" in case.solvers for case in quick if case.n > matching.EXACT_UP_TO)


def test_the_preview_says_what_its_bound_is_over():
    """Both wordings of templates/results/match.txt's quality line (a large round's says
    "not every possible pair was scored", which must not read as complete)."""
    sparse = (
        " of the best possible total among the pairs considered (sparse top-16 candidates"
        " each: a large round, so not every possible pair was scored)"
    )
    assert matching._graph_in(sparse) == "sparse top-16"
    complete = " of the best possible total (proven: every possible pair was scored)"
    assert matching._graph_in(complete) == "complete"
