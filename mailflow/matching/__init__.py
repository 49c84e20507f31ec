"""Matching a round: every applicant paired with the best peer abroad, with proof of how good.

The code lives in `round.py` for now; this file gives the names everyone imports.
"""

from mailflow.matching.round import (
    Applicant,
    Matching,
    Pair,
    Weights,
    allowed,
    best_partner,
    broken_rules,
    describe,
    load_weights,
    match,
    pair_scores,
)

__all__ = [
    "Applicant",
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
