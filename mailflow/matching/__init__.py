"""Matching a round: every applicant paired with the best peer abroad, with proof of how good.

A pure function of data. Applicants, weights and constraints go in; pairs (and at most one
group of three), each pair's score and reasons, the total and an upper bound on the best
possible total come out. It never reads the store or the clock; `load_weights` is its only
file access, and the caller does it.

Everyone is mentor and protégé at once, so this is maximum-weight matching on a general
graph. The exact algorithm (Edmonds' blossoms) takes minutes at 1,000 people, so we solve
the symmetric assignment relaxation with scipy instead: let every person "choose" a partner
under the constraint that each is chosen once (choosing oneself is allowed, worth 0). Any
matching is such an assignment twice over, so half the assignment optimum bounds every
matching, and the ratio of our total to it is a *certified* quality figure. The assignment
is a permutation; its 2-cycles are pairs, its longer cycles are split (even ones the better
way, odd ones leaving out the member that costs least), and what is left is matched again.
Coverage comes first: augmenting paths (Edmonds' search for cardinality alone, which is
fast) pair everyone a maximum matching of the graph can, and swapping partners between
pairs then raises the score while it gains.

Small rounds score every possible pair. Large ones score candidates only, from blocks of
people who share an interest, a language or a wish, taken nearest in time zone; the bound
then holds for matchings inside that candidate graph, and the result says so.

The stages are modules, each importing only those before it:
- `model`: Applicant, Weights, Pair, Matching, Finding, and `load_weights` (rules/matching.toml);
- `population`: the applicants as arrays and the pair score as array arithmetic;
- `candidates`: the graph to match on, sparse candidates on large rounds;
- `solve`: the relaxation, its cycles, augmenting paths and swaps;
- `round`: `match` and the smaller questions (`best_partner`, `broken_rules`, ...).
This file only gathers the names the rest of mailflow imports.
"""

from mailflow.matching.model import Applicant, Finding, Matching, Pair, Weights, load_weights
from mailflow.matching.population import describe
from mailflow.matching.round import allowed, best_partner, broken_rules, match, pair_scores

__all__ = [
    "Applicant",
    "Finding",
    "Matching",
    "Pair",
    "Weights",
    "allowed",
    "best_partner",
    "broken_rules",
    "describe",
    "load_weights",
    "match",
    "pair_scores",
]
