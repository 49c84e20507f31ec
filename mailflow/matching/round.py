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
"""

from __future__ import annotations

import math
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from mailflow.countries import country_name

Progress = Callable[[str, int, int], None]
NOT_ALLOWED = -1
_PROFILE_TABLE_UP_TO = 4000  # distinct profiles; the table is this squared, in int32
_DENSE_UP_TO = 25_000_000  # people x distinct interests or wishes kept as plain float32 arrays
_PATH_SEARCH_AT_LEAST = 200_000  # edges an augmenting-path search may look at
_ALONE_PER_PERSON = 8  # when widening, edges from each person to those left alone
_WIDENED_PAIRS = 200_000_000  # pairs scored when widening: about 8 s


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


@dataclass(frozen=True)
class Weights:
    """The points of rules/matching.toml; `Weights()` holds the defaults."""

    pair: int = 100
    shared_interest: int = 20
    rare_interest: int = 30
    interests_up_to: int = 150
    same_library_type: int = 15
    same_career_stage: int = 10
    shared_contact_method: int = 10
    same_contact_frequency: int = 8
    near_contact_frequency: int = 4
    waking_hour_together: int = 2
    wish_met: int = 30
    waking_hours: tuple[int, int] = (8, 21)
    frequency_order: tuple[str, ...] = ("weekly", "fortnightly", "monthly")
    country_cap: float | None = None
    group_of_three: bool = True
    dense_up_to: int = 2500
    candidates: int = 16
    block_size: int = 400


@dataclass(frozen=True)
class Pair:
    members: tuple[int, ...]  # two, or three for the one group of three
    score: int
    reasons: tuple[str, ...]
    by_hand: bool = False


@dataclass(frozen=True)
class Matching:
    pairs: tuple[Pair, ...]
    unmatched: tuple[tuple[int, str], ...]  # (id, why) of those who could not be paired
    deferred: tuple[tuple[int, str], ...]  # (id, why) of those kept for the next round
    total: int  # a group of three counts at the score of the pair it grew from
    upper_bound: int  # no matching on the candidate graph has a higher total
    candidate_graph: str  # "complete", or "sparse top-16" on large rounds

    @property
    def certified_ratio(self) -> float:
        return 1.0 if self.upper_bound <= 0 else self.total / self.upper_bound


# --- Weights --------------------------------------------------------------------------

_SECTIONS = {
    "score": (
        "pair",
        "shared_interest",
        "rare_interest",
        "interests_up_to",
        "same_library_type",
        "same_career_stage",
        "shared_contact_method",
        "same_contact_frequency",
        "near_contact_frequency",
        "waking_hour_together",
        "wish_met",
    ),
    "time": ("waking_hours",),
    "contact": ("frequency_order",),
    "round": ("country_cap", "group_of_three"),
    "scale": ("dense_up_to", "candidates", "block_size"),
}


def load_weights(rules_dir: Path) -> Weights:
    """Read rules_dir/matching.toml; a missing file gives the defaults.

    Raises ValueError naming the setting when one is unknown or of the wrong kind.
    """
    path = Path(rules_dir) / "matching.toml"
    if not path.exists():
        return Weights()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path.name}: {error}") from None
    values: dict[str, object] = {}
    for section, table in data.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            known = ", ".join(f"[{s}]" for s in _SECTIONS)
            raise ValueError(f"{path.name}: [{section}] is not a section we know ({known})")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise ValueError(
                    f"{path.name}: {key} is not a setting of [{section}]; "
                    f"the settings are {', '.join(_SECTIONS[section])}"
                )
            values[key] = _checked(path.name, key, value)
    return Weights(**values)


def _checked(source: str, key: str, value: object) -> object:
    def wrong(what: str) -> ValueError:
        return ValueError(f"{source}: {key} must be {what}, not {value!r}")

    if key == "waking_hours":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(v) is int and 0 <= v <= 24 for v in value)
            or value[0] >= value[1]
        ):
            raise wrong("two hours of the day, earlier first, like [8, 21]")
        return (value[0], value[1])
    if key == "frequency_order":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong('a list of frequencies, like ["weekly", "monthly"]')
        return tuple(v.strip().lower() for v in value)
    if key == "country_cap":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise wrong("a share between 0 (off) and 1, like 0.2")
        return float(value) or None
    if key == "group_of_three":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if type(value) is not int or value < 0:
        raise wrong("a whole number, 0 or more")
    if key in ("dense_up_to", "candidates", "block_size") and value < 2:
        raise wrong("a whole number, 2 or more")
    return value


# --- The population as arrays ---------------------------------------------------------


def describe(applicant: Applicant) -> frozenset[str]:
    """The wish keys a person fulfils: what someone may ask of a partner."""
    keys = {
        f"library_type:{applicant.library_type}",
        f"career_stage:{applicant.career_stage}",
        f"country:{applicant.country}",
        *(f"region:{region}" for region in applicant.regions),
        *(f"language:{language}" for language in applicant.languages),
        *(f"interest:{interest}" for interest in applicant.interests),
    }
    return frozenset(key.casefold() for key in keys)


def _codes(values: Sequence[object]) -> tuple[np.ndarray, list]:
    vocabulary: dict[object, int] = {}
    codes = np.fromiter((vocabulary.setdefault(v, len(vocabulary)) for v in values), np.int32)
    return codes, list(vocabulary)


def _incidence(sets: Sequence[Iterable[str]], vocabulary: dict[str, int]) -> csr_matrix:
    """Rows are people, columns the vocabulary's items, 1 where the person has the item."""
    indptr, indices = [0], []
    for items in sets:
        columns = sorted({vocabulary[i] for i in items if i in vocabulary})
        indices.extend(columns)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return csr_matrix((data, indices, indptr), shape=(len(sets), len(vocabulary)))


def _bits(sets: Sequence[frozenset[str]]) -> np.ndarray:
    """Each set as a row of 64-bit words, so "any in common" is one AND per word."""
    vocabulary: dict[str, int] = {}
    for items in sets:
        for item in sorted(items):
            vocabulary.setdefault(item, len(vocabulary))
    words = max(1, math.ceil(len(vocabulary) / 64))
    bits = np.zeros((len(sets), words), dtype=np.uint64)
    for row, items in enumerate(sets):
        for item in items:
            bit = vocabulary[item]
            bits[row, bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
    return bits


def _any_common(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left (r, w) and right (c, w) bit rows -> (r, c) booleans: any bit in common."""
    common = np.zeros((left.shape[0], right.shape[0]), dtype=bool)
    for word in range(left.shape[1]):
        common |= (left[:, word, None] & right[None, :, word]) != 0
    return common


class _Population:
    """The applicants as arrays, and the pair score as whole-block array arithmetic.

    One scoring function serves the complete graph (one block of everyone) and the
    candidate search of large rounds (many small blocks), so both optimise the same score.
    """

    def __init__(
        self, people: Sequence[Applicant], weights: Weights, former: frozenset[frozenset[int]]
    ) -> None:
        self.people = people
        self.weights = weights
        self.n = n = len(people)
        self.index = {person.id: i for i, person in enumerate(people)}
        self.country, _ = _codes([p.country for p in people])
        self.library_type, _ = _codes([p.library_type.casefold() for p in people])
        self.career_stage, _ = _codes([p.career_stage.casefold() for p in people])
        self.languages = _bits([frozenset(x.casefold() for x in p.languages) for p in people])
        self.methods = _bits([frozenset(x.casefold() for x in p.contact_methods) for p in people])
        self.offset = np.array([p.utc_offset for p in people], dtype=np.int32)

        order = {f: i for i, f in enumerate(weights.frequency_order)}
        frequency = [order.get(p.contact_frequency.casefold(), -1) for p in people]
        self.frequency = np.array(frequency, dtype=np.int32)

        # Few people differ in everything but interests and time zone: the points for the
        # rest are looked up in a table of the distinct profiles, one step per block.
        profiles = np.column_stack(
            [self.library_type, self.career_stage, self.frequency, self.methods.view(np.int64)]
        )
        _, first, self.profile = np.unique(profiles, axis=0, return_index=True, return_inverse=True)
        self.profile = self.profile.reshape(-1)
        self.profile_points = (
            self._profile_points(first, first) if len(first) <= _PROFILE_TABLE_UP_TO else None
        )
        offsets, self.offset_code = np.unique(self.offset, return_inverse=True)
        self.offset_code = self.offset_code.reshape(-1)
        self.offset_points = _waking_hours_together(
            offsets[:, None], offsets[None, :], weights.waking_hours
        ) * np.int32(weights.waking_hour_together)

        # Interests: the rarer in this round, the more they count (an IDF weight).
        counts: dict[str, int] = {}
        for person in people:
            for interest in person.interests:
                counts[interest] = counts.get(interest, 0) + 1
        self.interest_names = sorted(counts)
        vocabulary = {name: i for i, name in enumerate(self.interest_names)}
        self.interests = _incidence([p.interests for p in people], vocabulary)
        scale = math.log(max(n, 2))
        self.interest_points = np.array(
            [
                weights.shared_interest
                + round(weights.rare_interest * max(0.0, 1 - math.log(counts[i]) / scale))
                for i in self.interest_names
            ],
            dtype=np.float32,
        )

        small = n * len(self.interest_names) <= _DENSE_UP_TO
        self.dense_interests = self.interests.toarray() if small else None

        # Wishes: only keys somebody wished for matter.
        self.wish_sets = [frozenset(w.casefold() for w in p.wishes) for p in people]
        wished = sorted(set().union(*self.wish_sets)) if people else []
        keys = {key: i for i, key in enumerate(wished)}
        self.described = [describe(p) for p in people]
        self.wishes = _incidence(self.wish_sets, keys)
        self.descriptions = _incidence(self.described, keys)
        self.wish_count_raw = np.diff(self.wishes.indptr)
        self.wish_count = np.maximum(self.wish_count_raw, 1).astype(np.int32)
        # Few distinct wishes (the usual case): plain arrays, sliced far faster than sparse.
        small = n * len(keys) <= _DENSE_UP_TO
        self.dense_wishes = self.wishes.toarray() if small else None
        self.dense_descriptions_by_key = self.descriptions.T.toarray() if small else None

        pairs = [
            [self.index[m] for m in members if m in self.index]
            for members in former
            if len(members) == 2
        ]
        pairs = [p for p in pairs if len(p) == 2]
        a = np.array([p[0] for p in pairs] + [p[1] for p in pairs], dtype=np.int64)
        b = np.array([p[1] for p in pairs] + [p[0] for p in pairs], dtype=np.int64)
        self.former = csr_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(n, n))

    def allowed_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The hard constraints for every (row, col): abroad, a language, not before."""
        ok = self.country[rows, None] != self.country[None, cols]
        ok &= _any_common(self.languages[rows], self.languages[cols])
        ok &= rows[:, None] != cols[None, :]
        before = self.former[rows]
        if before.nnz:
            position = np.full(self.n, -1, dtype=np.int64)
            position[cols] = np.arange(len(cols))
            where = np.repeat(np.arange(len(rows)), np.diff(before.indptr))
            at = position[before.indices]
            ok[where[at >= 0], at[at >= 0]] = False
        return ok

    def score_block(self, rows: np.ndarray, cols: np.ndarray, *, hard: bool = True) -> np.ndarray:
        """Integer scores of every (row, col); NOT_ALLOWED where the constraints say no."""
        w = self.weights
        # Tables are gathered a row at a time, then across: far fewer cache misses.
        total = np.take(self.offset_points[self.offset_code[rows]], self.offset_code[cols], axis=1)
        total += np.int32(w.pair)
        if self.profile_points is None:
            total += self._profile_points(rows, cols)
        else:
            total += np.take(self.profile_points[self.profile[rows]], self.profile[cols], axis=1)

        if self.dense_interests is not None:
            shared = (self.dense_interests[rows] * self.interest_points) @ (
                self.dense_interests[cols].T
            )
        else:
            left, right = self.interests[rows], self.interests[cols]
            present = np.union1d(left.indices, right.indices)
            shared = (left[:, present].toarray() * self.interest_points[present]) @ (
                right[:, present].toarray().T
            )
        total += np.minimum(np.rint(shared).astype(np.int32), np.int32(w.interests_up_to))

        if self.wishes.nnz:
            self._add_wishes_met(total, rows, cols)
            self._add_wishes_met(total.T, cols, rows)

        if hard:
            np.putmask(total, ~self.allowed_block(rows, cols), NOT_ALLOWED)
        return total

    def _profile_points(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Points for library type, career stage and contact wishes."""
        w = self.weights
        same = self.library_type[rows, None] == self.library_type[None, cols]
        total = same * np.int32(w.same_library_type)
        same = self.career_stage[rows, None] == self.career_stage[None, cols]
        total += same * np.int32(w.same_career_stage)
        common = _any_common(self.methods[rows], self.methods[cols])
        total += common * np.int32(w.shared_contact_method)
        fr, fc = self.frequency[rows, None], self.frequency[None, cols]
        steps = np.where((fr < 0) | (fc < 0), 1, np.abs(fr - fc))
        total += np.where(
            steps == 0, w.same_contact_frequency, np.where(steps == 1, w.near_contact_frequency, 0)
        ).astype(np.int32)
        return total

    def _add_wishes_met(self, total: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        """Add to total[r, c] the points for how much of row r's wishes col c fulfils."""
        wishers = rows[self.wish_count_raw[rows] > 0]
        if not len(wishers):
            return
        if self.dense_wishes is not None:
            wished = self.dense_wishes[wishers]
            keys = np.flatnonzero(wished.any(axis=0))
            met = wished[:, keys] @ self.dense_descriptions_by_key[np.ix_(keys, cols)]
        else:
            wished = self.wishes[wishers]
            keys = np.unique(wished.indices)
            met = wished[:, keys].toarray() @ self.descriptions[cols][:, keys].toarray().T
        met = np.rint(met).astype(np.int32) * np.int32(self.weights.wish_met)
        total[self.wish_count_raw[rows] > 0] += met // self.wish_count[wishers, None]

    def score(self, a: int, b: int, *, hard: bool = True) -> int:
        return int(self.score_block(np.array([a]), np.array([b]), hard=hard)[0, 0])

    def reasons(self, members: Sequence[int]) -> tuple[str, ...]:
        """What the members have in common, in the words coordinators and partners read."""
        w, people = self.weights, [self.people[m] for m in members]
        said = []
        both = "both" if len(people) == 2 else "all three"
        shared = set.intersection(*(set(p.interests) for p in people))
        if shared:
            rank = {name: i for i, name in enumerate(self.interest_names)}
            points = {name: self.interest_points[rank[name]] for name in shared}
            names = sorted(shared, key=lambda name: (-points[name], name))
            said.append(f"{both} interested in " + ", ".join(names))
        if len({p.library_type.casefold() for p in people}) == 1:
            said.append(f"{both} in {people[0].library_type} libraries")
        if len({p.career_stage.casefold() for p in people}) == 1:
            said.append(f"{both} {people[0].career_stage}")
        methods = set.intersection(*({m.casefold() for m in p.contact_methods} for p in people))
        if methods:
            said.append(f"{both} happy with " + " or ".join(sorted(methods)))
        if len({p.contact_frequency.casefold() for p in people}) == 1:
            said.append(f"{both} want to be in touch {people[0].contact_frequency}")
        offsets = np.array([p.utc_offset for p in people])
        hours = min(
            int(_waking_hours_together(offsets[i], offsets[j], w.waking_hours))
            for i in range(len(people))
            for j in range(i + 1, len(people))
        )
        if hours:
            said.append(f"{hours} waking hour{'s' if hours != 1 else ''} in common")
        for m in members:
            for other in members:
                if other != m:
                    met = sorted(self.wish_sets[m] & self.described[other])
                    said += [f"a wish met: {_wish_words(key)}" for key in met]
        return tuple(dict.fromkeys(said))


def _wish_words(key: str) -> str:
    kind, _, value = key.partition(":")
    if kind == "country":
        return country_name(value)
    if kind == "library_type":
        return f"{value} library"
    if kind == "language":
        return f"speaks {value.title()}"
    return value.title() if kind == "region" else value


def _waking_hours_together(a: np.ndarray, b: np.ndarray, waking: tuple[int, int]) -> np.ndarray:
    """Whole hours of the day when both are within waking hours, from their UTC offsets.

    Two windows of the same length on a 24-hour circle, shifted by the difference.
    """
    length = (waking[1] - waking[0]) * 60
    shift = np.abs(np.asarray(a) - np.asarray(b)) % 1440
    shift = np.minimum(shift, 1440 - shift)
    minutes = np.maximum(0, length - shift) + np.maximum(0, length - (1440 - shift))
    return (np.minimum(minutes, length) // 60).astype(np.int32)


# --- The graph the matching works on --------------------------------------------------


class _Graph:
    """Symmetric weighted edges between people (indexes), as CSR, with weight lookup."""

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray) -> None:
        order = np.lexsort((cols, rows))
        self.n = n
        self.rows, self.cols, self.weight = rows[order], cols[order], weight[order]
        self.keys = self.rows.astype(np.int64) * n + self.cols
        self.indptr = np.searchsorted(self.rows, np.arange(n + 1))

    @classmethod
    def dense(cls, scores: np.ndarray) -> _Graph:
        rows, cols = np.nonzero(scores >= 0)
        return cls(len(scores), rows, cols, scores[rows, cols])

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weights of the edges (a, b); NOT_ALLOWED where there is no such edge."""
        keys = np.asarray(a, dtype=np.int64) * self.n + np.asarray(b)
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        if not len(self.keys):
            return np.full(keys.shape, NOT_ALLOWED, dtype=np.int32)
        return np.where(self.keys[at] == keys, self.weight[at], NOT_ALLOWED)

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.indptr[i], self.indptr[i + 1]
        return self.cols[start:end], self.weight[start:end]

    def subgraph_edges(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inside = keep[self.rows] & keep[self.cols]
        return self.rows[inside], self.cols[inside], self.weight[inside]


def _candidates(population: _Population, progress: Progress | None) -> _Graph:
    """A sparse candidate graph for large rounds: the best few partners of each person
    among those who share an interest, a language or a wish, nearest in time zone.

    Blocking by what people share, then comparing neighbours in time zone exactly, is the
    sorted-neighbourhood method of record linkage: cheap, and it finds the strong pairs a
    random sample misses.
    """
    w = population.weights
    size, keep = w.block_size, w.candidates
    by_offset = np.argsort(population.offset, kind="stable")
    rank = np.empty_like(by_offset)
    rank[by_offset] = np.arange(len(by_offset))
    blocks: list[tuple[np.ndarray, np.ndarray]] = []

    def nearest(seekers: np.ndarray, holders: np.ndarray) -> None:
        """Blocks of seekers, each with the holders nearest them in time zone."""
        seekers = seekers[np.argsort(rank[seekers], kind="stable")]
        holders = holders[np.argsort(rank[holders], kind="stable")]
        for start in range(0, len(seekers), size):
            chunk = seekers[start : start + size]
            middle = np.searchsorted(rank[holders], rank[chunk[len(chunk) // 2]])
            low = max(0, min(middle - size // 2, len(holders) - size))
            blocks.append((chunk, holders[low : low + size]))

    def members(matrix: csr_matrix) -> list[np.ndarray]:
        columns = matrix.tocsc()
        return [
            columns.indices[columns.indptr[k] : columns.indptr[k + 1]]
            for k in range(matrix.shape[1])
        ]

    groups = members(population.interests)
    language_bits = population.languages
    for word in range(language_bits.shape[1]):
        for bit in range(64):
            mask = (language_bits[:, word] >> np.uint64(bit)) & np.uint64(1)
            speakers = np.flatnonzero(mask)
            if len(speakers):
                groups.append(speakers)
    for group in groups:
        if len(group) <= size:
            blocks.append((group, group))
            continue
        # Within a large group, each country's members look at the members from every
        # other country nearest them in time zone: sorted by time zone alone, a window
        # in a big country's hours would hold nobody it may be paired with.
        countries = population.country[group]
        for country in np.unique(countries):
            others = group[countries != country]
            if len(others):
                nearest(group[countries == country], others)

    for seekers, holders in zip(
        members(population.wishes), members(population.descriptions), strict=True
    ):
        if len(seekers) and len(holders):
            nearest(seekers, holders)

    found = []
    for done, (rows, cols) in enumerate(blocks):
        found.append(_best_of_scores(rows, cols, population.score_block(rows, cols), keep))
        if progress and done % 50 == 0:
            progress("finding candidates", done, len(blocks))
    if progress:
        progress("finding candidates", len(blocks), len(blocks))
    if not found:
        return _Graph(population.n, *(np.zeros(0, np.int64),) * 3)
    rows, cols, weight = (np.concatenate(part) for part in zip(*found, strict=True))
    if not len(weight):
        return _Graph(population.n, rows, cols, weight)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    del found
    # Each person keeps their best `keep` (ties by index), and every kept edge both ways:
    # edges in both directions, sorted by person, best first, as one int64 key each.
    n = population.n
    ranks, distinct = _weight_ranks(weight)
    levels = len(distinct)
    worse = (levels - 1 - ranks).astype(np.int64)
    keys = np.concatenate([(rows * levels + worse) * n + cols, (cols * levels + worse) * n + rows])
    del rows, cols, worse
    keys.sort()
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    rows, rest = np.divmod(keys, levels * n)
    worse, cols = np.divmod(rest, n)
    del keys, rest
    starts = np.searchsorted(rows, rows)
    best = (np.arange(len(rows)) - starts) < keep
    weight = distinct[levels - 1 - worse[best]]
    return _both_ways(n, rows[best], cols[best], weight)


def _weight_ranks(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each weight's rank among the distinct weights, and those weights in order."""
    if len(weight) and int(weight.max()) < 1 << 22:
        present = np.bincount(weight) > 0
        return (np.cumsum(present) - 1)[weight], np.flatnonzero(present)
    distinct, rank = np.unique(weight, return_inverse=True)
    return rank.reshape(-1), distinct


def _best_of_scores(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `keep` highest scores (not NOT_ALLOWED) of each row, as edges."""
    take = min(keep, len(cols))
    best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    picked = np.take_along_axis(scores, best, axis=1)
    good = picked >= 0
    return np.repeat(rows, take).reshape(len(rows), take)[good], cols[best][good], picked[good]


def _both_ways(n: int, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray) -> _Graph:
    rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    weight = np.concatenate([weight, weight])
    keys = rows * n + cols
    _, unique = np.unique(keys, return_index=True)
    return _Graph(n, rows[unique], cols[unique], weight[unique].astype(np.int32))


def _greedy(graph: _Graph, nodes: np.ndarray) -> np.ndarray:
    """A quick matching of `nodes`, best edge first: each one's partner, or -1."""
    mate = np.full(graph.n, -1, dtype=np.int64)
    taken = bytearray(graph.n)
    for i in np.setdiff1d(np.arange(graph.n), nodes).tolist():
        taken[i] = 1
    once = np.flatnonzero(graph.rows < graph.cols)  # each edge is stored both ways
    order = once[np.argsort(-graph.weight[once], kind="stable")]
    for a, b in zip(graph.rows[order].tolist(), graph.cols[order].tolist(), strict=True):
        if not taken[a] and not taken[b]:
            taken[a] = taken[b] = 1
            mate[a], mate[b] = b, a
    return mate


def _widen(
    population: _Population,
    graph: _Graph,
    nodes: np.ndarray,
    mate: np.ndarray,
    progress: Progress | None,
) -> _Graph:
    """Candidates against everyone for those a matching (`mate`) leaves alone.

    Blocks find each person's best partners nearby, but a round's shape can need pairs
    no block holds: when one country brings half the applicants, everyone abroad must
    pair with one of them, wherever they live. Scoring those left alone against the
    whole round gives the relaxation those edges: each one's best partners, their best
    among those who could be freed for them (alone too, or paired with someone who could
    take another of those alone), and everyone's best few among those alone, so that one
    more pair is in reach.
    """
    alone = nodes[mate[nodes] < 0]
    if not len(alone):
        return graph
    # Those with the fewest candidates first, and no more than the time allows.
    degree = np.diff(graph.indptr)[alone]
    alone = alone[np.argsort(degree, kind="stable")][: max(1, _WIDENED_PAIRS // len(nodes))]
    step = max(1, 8_000_000 // len(nodes))  # rows per block, about 32 MB of scores
    chunks = [alone[start : start + step] for start in range(0, len(alone), step)]

    # Someone can be freed for one of those alone when they are alone too, or when their
    # partner may pair with another of those alone: then one more pair is two swaps away.
    could_take = np.zeros(graph.n, dtype=bool)
    for chunk in chunks:
        could_take[nodes] |= population.allowed_block(chunk, nodes).any(axis=0)
    partner = mate[nodes]
    freeable = (partner < 0) | could_take[np.maximum(partner, 0)]

    keep = population.weights.candidates
    found = [(graph.rows, graph.cols, graph.weight)]
    best_scores, best_alone = [], []  # for everyone, the best of those alone in each chunk
    for done, chunk in enumerate(chunks):
        scores = population.score_block(chunk, nodes)
        found.append(_best_of_scores(chunk, nodes, scores, keep))
        best = np.argmax(scores, axis=0)
        best_scores.append(scores[best, np.arange(len(nodes))])
        best_alone.append(chunk[best])
        scores[:, ~freeable] = NOT_ALLOWED
        found.append(_best_of_scores(chunk, nodes, scores, keep))
        if progress:
            progress("widening candidates", done, len(chunks))
    # Everyone's best few among those alone (one per chunk at most).
    at, chunk_at, score = _best_of_scores(
        np.arange(len(nodes)),
        np.arange(len(chunks)),
        np.stack(best_scores, axis=1),
        _ALONE_PER_PERSON,
    )
    found.append((nodes[at], np.stack(best_alone, axis=1)[at, chunk_at], score))
    rows, cols, weight = (
        np.concatenate(part).astype(np.int64) for part in zip(*found, strict=True)
    )
    return _both_ways(graph.n, rows, cols, weight)


# --- From the relaxation to a matching ------------------------------------------------


def _relaxation(
    graph: _Graph, nodes: np.ndarray, dense: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """The symmetric assignment over `nodes`: each node's chosen partner (itself when
    alone), and the assignment's value, twice an upper bound on any matching among them."""
    m = len(nodes)
    if m == 0:
        return nodes, 0
    if dense is not None:
        sub = dense[np.ix_(nodes, nodes)].astype(np.float64)
        forbidden = sub < 0
        sub[forbidden] = -(float(sub.max(initial=0)) + 1) * (m + 1)
        np.fill_diagonal(sub, 0)
        rows, cols = linear_sum_assignment(sub, maximize=True)
        chosen = nodes[cols[np.argsort(rows)]]
        value = sub[rows, cols]
        return chosen, int(value.sum())
    keep = np.zeros(graph.n, dtype=bool)
    keep[nodes] = True
    rows, cols, weight = graph.subgraph_edges(keep)
    local = np.full(graph.n, -1, dtype=np.int64)
    local[nodes] = np.arange(m)
    top = int(weight.max(initial=0)) + 1
    # min_weight_full_bipartite_matching minimises and drops zeros, so costs are
    # top - weight (at least 1) and staying alone costs top.
    cost = csr_matrix(
        (
            np.concatenate([top - weight, np.full(m, top)]).astype(np.float64),
            (
                np.concatenate([local[rows], np.arange(m)]),
                np.concatenate([local[cols], np.arange(m)]),
            ),
        ),
        shape=(m, m),
    )
    row_ind, col_ind = min_weight_full_bipartite_matching(cost)
    chosen = np.empty(m, dtype=np.int64)
    chosen[row_ind] = col_ind
    value = int(np.sum(top - cost[row_ind, col_ind].A1))
    return nodes[chosen], value


def _split_cycles(nodes: np.ndarray, chosen: np.ndarray, weight: Callable) -> list[tuple[int, int]]:
    """Pairs from the assignment's cycles: 2-cycles as they are, even cycles the better
    alternating half, odd cycles leaving out the member whose absence costs least."""
    successor = dict(zip(nodes.tolist(), chosen.tolist(), strict=True))
    seen: set[int] = set()
    pairs = []
    for start in nodes.tolist():
        if start in seen:
            continue
        cycle = [start]
        seen.add(start)
        while (after := successor[cycle[-1]]) != start:
            cycle.append(after)
            seen.add(after)
        k = len(cycle)
        if k == 1:
            continue
        if k == 2:
            pairs.append((cycle[0], cycle[1]))
            continue
        ring = np.array(cycle)
        edges = weight(ring, np.roll(ring, -1)).astype(np.int64)  # edge t joins t and t+1
        if k % 2 == 0:
            half = 0 if edges[0::2].sum() >= edges[1::2].sum() else 1
            pairs += [(cycle[t], cycle[(t + 1) % k]) for t in range(half, k, 2)]
            continue
        # Leaving out member j keeps edges j+1, j+3, ..., j+k-2 (indexes mod k).
        doubled = np.concatenate([edges, edges])
        stride = np.zeros(2 * k + 2, dtype=np.int64)
        for parity in (0, 1):
            stride[parity + 2 :: 2][: len(doubled[parity::2])] = np.cumsum(doubled[parity::2])
        j = np.arange(k)
        kept = stride[j + k - 2 + 2] - stride[j + 1]  # sum of doubled[j+1 : j+k-1 : 2]
        out = int(np.argmax(kept))
        pairs += [(cycle[(out + 1 + t) % k], cycle[(out + 2 + t) % k]) for t in range(0, k - 1, 2)]
    return pairs


class _Matcher:
    """The working state: who is paired with whom, improved step by step."""

    def __init__(self, graph: _Graph, dense: np.ndarray | None, progress: Progress | None):
        self.graph, self.dense, self.progress = graph, dense, progress
        self.mate = np.full(graph.n, -1, dtype=np.int64)

    def weight(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[a, b]
        return self.graph.lookup(a, b)

    def pair(self, a: int, b: int) -> None:
        self.mate[a], self.mate[b] = b, a

    def solve(self, nodes: np.ndarray) -> int:
        """Match `nodes`; the first relaxation's value, twice the bound."""
        if self.progress:
            self.progress("matching", 0, 3)
        chosen, value = _relaxation(self.graph, nodes, self.dense)
        for a, b in _split_cycles(nodes, chosen, self.weight):
            self.pair(a, b)
        for _ in range(3):  # the leftovers of odd cycles, matched among themselves
            alone = nodes[self.mate[nodes] < 0]
            if len(alone) < 2:
                break
            chosen, _ = _relaxation(self.graph, alone, self.dense)
            found = _split_cycles(alone, chosen, self.weight)
            if not found:
                break
            for a, b in found:
                self.pair(a, b)
        if self.progress:
            self.progress("matching", 1, 3)
        self.augment(nodes)
        if self.progress:
            self.progress("matching", 2, 3)
        self.swap()
        self.augment(nodes)
        if self.progress:
            self.progress("matching", 3, 3)
        return value

    def augment(self, nodes: np.ndarray) -> None:
        """Pair up more people, even at some cost in score (everyone matched comes first).

        The cheap moves first, choosing the one that keeps most score: u alone takes x,
        whose partner y takes v, also alone; or u and x, both alone. Then, for those still
        alone, a search for any longer augmenting path (Edmonds' blossoms included)."""
        for u in nodes[self.mate[nodes] < 0].tolist():
            if self.mate[u] >= 0:
                continue
            best, move = None, None
            xs, w_ux = self.graph.neighbours(u)
            for x, gain in zip(xs.tolist(), w_ux.tolist(), strict=True):
                y = int(self.mate[x])
                if y < 0:
                    candidate = (x, -1, -1)
                else:
                    vs, w_yv = self.graph.neighbours(y)
                    free = np.flatnonzero((self.mate[vs] < 0) & (vs != u))
                    if not len(free):
                        continue
                    k = free[np.argmax(w_yv[free])]
                    gain += int(w_yv[k]) - int(self.weight(np.array([x]), np.array([y]))[0])
                    candidate = (x, y, int(vs[k]))
                if best is None or gain > best:
                    best, move = gain, candidate
            if move is not None:
                x, y, v = move
                self.pair(u, x)
                if y >= 0:
                    self.pair(y, v)
        alone = nodes[(self.mate[nodes] < 0) & (np.diff(self.graph.indptr)[nodes] > 0)]
        if len(alone):
            self.mate[:] = _AugmentingPaths(self.graph, self.mate).run(alone.tolist())

    def swap(self, rounds: int = 20) -> None:
        """Exchange partners between two pairs, or with someone alone, while it gains."""
        for _ in range(rounds):
            a, c = self.graph.rows, self.graph.cols
            b, d = self.mate[a], self.mate[c]
            useful = (b >= 0) & (b != c) & ((a < c) | (self.mate[c] < 0))
            a, c, b, d = a[useful], c[useful], b[useful], d[useful]
            w_ac = self.graph.weight[useful].astype(np.int64)
            paired_now = np.flatnonzero(self.mate >= 0)
            with_mate = np.zeros(self.graph.n, dtype=np.int64)  # each one's pair's score
            with_mate[paired_now] = self.weight(paired_now, self.mate[paired_now])
            w_ab = with_mate[a]
            alone = d < 0
            # With c alone: a leaves b for c, b is left alone (same number of pairs).
            gain = np.where(alone, w_ac - w_ab, 0)
            paired = ~alone
            if paired.any():
                w_cd = with_mate[c[paired]]
                w_bd = self.weight(b[paired], d[paired]).astype(np.int64)
                swapped = np.where(w_bd >= 0, w_ac[paired] + w_bd - w_ab[paired] - w_cd, 0)
                swapped[(d[paired] == a[paired]) | (b[paired] == d[paired])] = 0
                gain[paired] = swapped
            better = np.flatnonzero(gain > 0)
            if not len(better):
                return
            better = better[np.argsort(-gain[better], kind="stable")]
            touched = np.zeros(self.graph.n, dtype=bool)
            for t in better.tolist():
                group = [int(a[t]), int(b[t]), int(c[t])] + ([int(d[t])] if d[t] >= 0 else [])
                if touched[group].any():
                    continue
                touched[group] = True
                if d[t] < 0:
                    self.mate[b[t]] = -1
                    self.pair(int(a[t]), int(c[t]))
                else:
                    self.pair(int(a[t]), int(c[t]))
                    self.pair(int(b[t]), int(d[t]))


class _AugmentingPaths:
    """Edmonds' search for augmenting paths: from someone alone, breadth first along
    alternating paths to someone else alone, shrinking odd cycles (blossoms), then flip
    the path: one more pair, whatever it costs in score.

    A search that finds nothing proves that no later one can pass through the people it
    reached (they form a Hungarian tree), so they are set aside and the searches together
    stay near linear. On very large rounds each search, and all of them together, look at
    a bounded number of edges; a search cut short sets aside what it reached as well.
    """

    def __init__(self, graph: _Graph, mate: np.ndarray) -> None:
        edges = len(graph.cols)
        self.budget = max(_PATH_SEARCH_AT_LEAST, edges)  # for all searches together
        self.each = max(_PATH_SEARCH_AT_LEAST, edges // 8)  # for one search
        self.indptr = graph.indptr.tolist()
        self.cols = graph.cols.tolist()
        self.mate = mate.tolist()
        self.base = list(range(graph.n))
        self.dead = bytearray(graph.n)

    def run(self, alone: list[int]) -> np.ndarray:
        for root in alone:
            if self.mate[root] < 0 and self.budget > 0:
                self.search(root)
        return np.array(self.mate, dtype=np.int64)

    def search(self, root: int) -> bool:
        mate, base, dead, indptr, cols = self.mate, self.base, self.dead, self.indptr, self.cols
        parent: dict[int, int] = {}
        members: dict[int, list[int]] = {root: [root]}
        outer, queue, tree = {root}, deque([root]), [root]

        def common_base(a: int, b: int) -> int:
            seen = set()
            while True:
                a = base[a]
                seen.add(a)
                if mate[a] < 0:
                    break
                a = parent[mate[a]]
            while (b := base[b]) not in seen:
                b = parent[mate[b]]
            return b

        def mark(v: int, top: int, child: int, blossom: set[int]) -> None:
            while base[v] != top:
                partner = mate[v]
                blossom.update((base[v], base[partner]))
                parent[v] = child
                child, v = partner, parent[partner]

        looked, found = 0, False
        while queue and not found:
            v = queue.popleft()
            start, end = indptr[v], indptr[v + 1]
            looked += end - start
            if looked > self.each:
                break
            for to in cols[start:end]:
                if dead[to] or base[v] == base[to] or mate[v] == to:
                    continue
                partner = mate[to]
                if to == root or (partner >= 0 and partner in parent):
                    top = common_base(v, to)
                    blossom: set[int] = set()
                    mark(v, top, to, blossom)
                    mark(to, top, v, blossom)
                    gathered = members.setdefault(top, [top])
                    for old in blossom - {top}:
                        for i in members.pop(old, [old]):
                            base[i] = top
                            gathered.append(i)
                            if i not in outer:
                                outer.add(i)
                                queue.append(i)
                elif to not in parent:
                    parent[to] = v
                    if partner < 0:
                        while to >= 0:
                            back = parent[to]
                            onward = mate[back]
                            mate[to], mate[back] = back, to
                            to = onward
                        found = True
                        break
                    outer.add(partner)
                    queue.append(partner)
                    tree += [to, partner]
        self.budget -= looked
        for i in tree:
            base[i] = i
            if not found:
                dead[i] = 1
        return found


# --- The round ------------------------------------------------------------------------


def _defer_by_country(people: Sequence[Applicant], cap: float) -> set[int]:
    """Indexes beyond the cap for their country, the latest (highest id) first: the real
    program kept one country to a fifth of a round and moved the rest to the next."""
    counts: dict[str, int] = {}
    for person in people:
        counts[person.country] = counts.get(person.country, 0) + 1
    kept = dict(counts)
    while True:  # shrink until every country fits within the share of what remains
        total = sum(kept.values())
        limit = max(1, math.floor(cap * total))
        fitted = {c: min(kept[c], limit) for c in kept}
        if fitted == kept:
            break
        kept = fitted
    deferred, seen = set(), dict.fromkeys(counts, 0)
    for i, person in enumerate(people):
        seen[person.country] += 1
        if seen[person.country] > kept[person.country]:
            deferred.add(i)
    return deferred


def _why_alone(population: _Population, i: int, alone_count: int) -> str:
    others = population.allowed_block(np.array([i]), np.arange(population.n))[0]
    if not others.any():
        person = population.people[i]
        abroad = population.country != population.country[i]
        speaks = _any_common(population.languages[[i]], population.languages)[0]
        if (abroad & speaks).any():
            return "everyone abroad who shares a language with them has been their partner"
        languages = ", ".join(sorted(person.languages)) or "no language given"
        return f"no one in another country in this round speaks {languages}"
    if alone_count == 1:
        return "the odd one out of an odd number: first in line for a partner"
    return "no partner who suits them was left free: first in line for a partner"


def match(
    applicants: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
    fixed: Iterable[Sequence[int]] = (),
    country_cap: float | None = None,
    allow_trio: bool | None = None,
    progress: Progress | None = None,
    dense_up_to: int | None = None,
) -> Matching:
    """Pair everyone who can be paired, as well as can be proven, under the hard rules.

    `fixed` pairs (made by hand) are kept as given; `country_cap` defers applicants beyond
    that share of the round from one country; the odd one out joins a group of three when
    `allow_trio` (default: the weights' group_of_three) and a fitting pair exists.
    """
    # In id order, so that the same round gives the same pairs however it was listed.
    people = sorted(applicants, key=lambda person: person.id)
    if len({p.id for p in people}) != len(people):
        raise ValueError("an applicant appears twice")
    population = _Population(people, weights, former)
    country_cap = weights.country_cap if country_cap is None else country_cap
    allow_trio = weights.group_of_three if allow_trio is None else allow_trio
    dense_up_to = weights.dense_up_to if dense_up_to is None else dense_up_to

    pairs: list[Pair] = []
    busy = np.zeros(population.n, dtype=bool)
    fixed_total = 0
    for members in fixed:
        try:
            indexes = [population.index[m] for m in members]
        except KeyError as missing:
            raise ValueError(
                f"a pair made by hand names {missing.args[0]}, not an applicant"
            ) from None
        if len(set(indexes)) != len(indexes) or busy[indexes].any() or len(indexes) < 2:
            raise ValueError(f"a pair made by hand overlaps another or itself: {tuple(members)}")
        busy[indexes] = True
        score = _group_score(population, indexes, hard=False)
        fixed_total += score
        pairs.append(_pair(population, indexes, score, by_hand=True))

    deferred_idx = set()
    if country_cap:
        free = [i for i in range(population.n) if not busy[i]]
        beyond = _defer_by_country([people[i] for i in free], country_cap)
        deferred_idx = {free[k] for k in beyond}
        busy[list(deferred_idx)] = True
    deferred = tuple(
        (
            people[i].id,
            f"more than {country_cap:.0%} of this round's applicants are from "
            f"{country_name(people[i].country)}: first in line for the next round",
        )
        for i in sorted(deferred_idx)
    )

    nodes = np.flatnonzero(~busy)
    if len(nodes) <= dense_up_to:
        if progress:
            progress("scoring pairs", 0, 1)
        dense = np.full((population.n, population.n), NOT_ALLOWED, dtype=np.int32)
        dense[np.ix_(nodes, nodes)] = population.score_block(nodes, nodes)
        if progress:
            progress("scoring pairs", 1, 1)
        graph, described = _Graph.dense(dense), "complete"
    else:
        dense = None
        graph = _candidates(population, progress)
        if busy.any():
            graph = _Graph(population.n, *graph.subgraph_edges(~busy))
        graph = _widen(population, graph, nodes, _greedy(graph, nodes), progress)
        described = f"sparse top-{weights.candidates}"
    matcher = _Matcher(graph, dense, progress)
    relaxed = matcher.solve(nodes)

    firsts = nodes[(matcher.mate[nodes] > nodes)]
    seconds = matcher.mate[firsts]
    scores = matcher.weight(firsts, seconds).astype(np.int64)
    total = fixed_total + int(scores.sum())
    matched = [[a, b] for a, b in zip(firsts.tolist(), seconds.tolist(), strict=True)]
    alone = [i for i in nodes.tolist() if matcher.mate[i] < 0]
    grown = _group_of_three(population, alone, matched) if allow_trio and alone else None
    if grown is not None:
        alone.remove(grown[0])
    for g, group in enumerate(matched):
        score = _group_score(population, group) if grown and g == grown[1] else int(scores[g])
        pairs.append(_pair(population, group, score))
    unmatched = tuple((people[i].id, _why_alone(population, i, len(alone))) for i in alone)
    pairs.sort(key=lambda pair: min(pair.members))
    return Matching(
        pairs=tuple(pairs),
        unmatched=unmatched,
        deferred=deferred,
        total=total,
        upper_bound=relaxed // 2 + fixed_total,
        candidate_graph=described,
    )


def _group_of_three(
    population: _Population, alone: list[int], matched: list[list[int]]
) -> tuple[int, int] | None:
    """Add one person left alone to the pair that suits them best, if all three share a
    language and live in three countries. Returns (person, index of the group)."""
    if not matched:
        return None
    x, y = np.array(matched).T
    everyone = np.arange(population.n)
    best, choice = -1, None
    for u in alone:
        fits = population.allowed_block(np.array([u]), everyone)[0]
        together = np.zeros(len(x), dtype=bool)
        languages = population.languages
        for word in range(languages.shape[1]):
            together |= (languages[u, word] & languages[x, word] & languages[y, word]) != 0
        candidates = np.flatnonzero(fits[x] & fits[y] & together)
        if not len(candidates):
            continue
        one = np.array([u])
        gain = (
            population.score_block(one, x[candidates])[0]
            + population.score_block(one, y[candidates])[0]
        )
        k = int(np.argmax(gain))
        if gain[k] > best:
            best, choice = int(gain[k]), (u, int(candidates[k]))
    if choice is None:
        return None
    u, g = choice
    matched[g].append(u)
    return choice


def _group_score(population: _Population, members: Sequence[int], *, hard: bool = True) -> int:
    """A pair's score; for three, the mean of its three pairs, what each member gets."""
    scores = [
        population.score(a, b, hard=hard) for i, a in enumerate(members) for b in members[i + 1 :]
    ]
    return round(sum(scores) / len(scores))


def _pair(
    population: _Population, members: Sequence[int], score: int, *, by_hand: bool = False
) -> Pair:
    ids = tuple(sorted(population.people[m].id for m in members))
    order = sorted(members, key=lambda m: population.people[m].id)
    return Pair(ids, score, population.reasons(order), by_hand)


def pair_scores(
    applicants: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
) -> dict[tuple[int, int], int]:
    """Every allowed pair (smaller id first) with the score `match` gives it."""
    population = _Population(list(applicants), weights, former)
    everyone = np.arange(population.n)
    scores = population.score_block(everyone, everyone)
    ids = [p.id for p in population.people]
    rows, cols = np.nonzero(np.triu(scores >= 0, k=1))
    return {
        (min(ids[a], ids[b]), max(ids[a], ids[b])): int(scores[a, b])
        for a, b in zip(rows.tolist(), cols.tolist(), strict=True)
    }


def best_partner(
    seeker: Applicant,
    candidates: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
) -> Pair | None:
    """The seeker's pair with the best allowed partner among `candidates`, scored and
    explained as `match` would (a rematch in mid-term); None when none is allowed. Ties go
    to the smallest id, the one who has waited longest."""
    people = [seeker, *sorted(candidates, key=lambda person: person.id)]
    if len(people) < 2:
        return None
    population = _Population(people, weights, former)
    scores = population.score_block(np.array([0]), np.arange(1, population.n))[0]
    best = int(np.argmax(scores))
    if scores[best] < 0:
        return None
    return _pair(population, [0, best + 1], int(scores[best]))


def allowed(a: Applicant, b: Applicant, former: frozenset[frozenset[int]] = frozenset()) -> bool:
    """The hard constraints: different countries, a language in common, never partners."""
    return a.id != b.id and not broken_rules(a, b, former)


def broken_rules(
    a: Applicant, b: Applicant, former: frozenset[frozenset[int]] = frozenset()
) -> list[str]:
    """The hard constraints a pair breaks, as a coordinator reads them (a pair by hand)."""
    broken = []
    if a.country == b.country:
        broken.append("both are in the same country")
    if not {x.casefold() for x in a.languages} & {x.casefold() for x in b.languages}:
        broken.append("they share no language")
    if frozenset((a.id, b.id)) in former:
        broken.append("they were partners before")
    return broken
