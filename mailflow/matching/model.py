"""The values of matching: who applies, what a pair is worth, what a round gives back.

`Applicant` goes in, `Weights` holds the points of rules/matching.toml, `Pair` and
`Matching` come out, with a `Finding` for each thing said about a pair or a person left
out (templates/_matching.txt words them); `Progress` and `NOT_ALLOWED` are shared by the
stages that follow. Every other module of the package builds on this one, and this one
imports none of them.

It never reads the store, the clock or a file: `Weights` and `load_weights` live with the
other rules files' readers in `rulebook.weights` (the program keeps them read, as
`program.rules.weights`) and are named here for the package's modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from mailflow.rulebook.weights import Weights as Weights
from mailflow.rulebook.weights import load_weights as load_weights

Progress = Callable[[str, int, int], None]
NOT_ALLOWED = -1


@dataclass(frozen=True)
class Applicant:
    id: int
    country: str  # ISO 3166-1 alpha-2
    languages: frozenset[str]
    interests: frozenset[str]  # lower-case phrases
    library_type: str
    career_stage: str
    contact_methods: frozenset[str]
    contact_frequency: str
    utc_offset: int  # minutes east of UTC
    wishes: frozenset[str] = frozenset()  # "kind:value" keys, see `describe`
    regions: frozenset[str] = frozenset()  # regions the country belongs to, e.g. "Africa"


class Finding(NamedTuple):
    """Something the matcher found, for people to read: why a pair was made (`interests`,
    `library-type`, `career-stage`, `contact-methods`, `contact-frequency`, `waking-hours`,
    `wish`), why someone waits (`all-former`, `no-language`, `odd-one-out`, `none-free`,
    `could-pair`, `country-cap`), or a hard rule a pair by hand breaks (`same-country`,
    `no-language`, `former`). `facts` are the names and numbers its sentence needs; the
    sentence itself is templates/_matching.txt's."""

    kind: str
    facts: tuple = ()


@dataclass(frozen=True)
class Pair:
    members: tuple[int, ...]  # two, or three for the one group of three
    score: int
    reasons: tuple[Finding, ...]
    by_hand: bool = False


@dataclass(frozen=True)
class Matching:
    pairs: tuple[Pair, ...]
    unmatched: tuple[tuple[int, Finding], ...]  # (id, why) of those who could not be paired
    deferred: tuple[tuple[int, Finding], ...]  # (id, why) of those kept for the next round
    total: int  # a group of three counts at the score of the pair it grew from
    upper_bound: int  # no matching on the candidate graph pairing as many has a higher total
    candidate_graph: str  # "complete", or "sparse top-16" on large rounds
    possible: int  # no matching of the round, under the hard rules, has more pairs
    possible_exact: bool  # the pairs reach `possible`, so it is the largest number there is

    @property
    def certified_ratio(self) -> float:
        return 1.0 if self.upper_bound <= 0 else self.total / self.upper_bound
