"""The applicants of a round as arrays, and the pair score as array arithmetic.

`_Population` scores whole blocks of pairs at once: the hard rules (abroad, a language in
common, never partners before) and the points of `Weights`; one scoring function serves
the complete graph of small rounds and the candidate search of large ones, so both
optimise the same score. `describe` gives the wishes a person fulfils, and `reasons`
names what a pair has in common, as findings templates/_matching.txt words for
coordinators and partners.

It never reads the store, the clock or a file, and knows nothing of graphs or matchings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.sparse import csr_matrix

from mailflow.matching.model import NOT_ALLOWED, Applicant, Finding, Weights
from mailflow.read.countries import country_name

_PROFILE_TABLE_UP_TO = 4000  # distinct profiles; the table is this squared, in int32
_DENSE_UP_TO = 25_000_000  # people x distinct interests or wishes kept as plain float32 arrays


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
        self.offset_hours = _waking_hours_together(
            offsets[:, None], offsets[None, :], weights.waking_hours
        )
        self.offset_points = self.offset_hours * np.int32(weights.waking_hour_together)

        # Interests: the rarer in this round, the more they count (an IDF weight).
        counts: dict[str, int] = {}
        for person in people:
            for interest in person.interests:
                counts[interest] = counts.get(interest, 0) + 1
        self.interest_names = sorted(counts)
        self.interest_rank = {name: i for i, name in enumerate(self.interest_names)}
        self.interests = _incidence([p.interests for p in people], self.interest_rank)
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
        self._position = np.full(n, -1, dtype=np.int64)  # see allowed_block

    def allowed_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The hard constraints for every (row, col): abroad, a language, not before."""
        ok = self.country[rows, None] != self.country[None, cols]
        ok &= _any_common(self.languages[rows], self.languages[cols])
        ok &= rows[:, None] != cols[None, :]
        # Former partners straight from the CSR arrays, with one array of positions kept
        # between blocks: slicing the matrix, and a fresh array of everyone, for each of
        # ten thousand blocks took longer than scoring them.
        starts = self.former.indptr[rows]
        counts = self.former.indptr[rows + 1] - starts
        if counts.any():
            where = np.repeat(np.arange(len(rows)), counts)
            within = np.arange(len(where)) - np.repeat(np.cumsum(counts) - counts, counts)
            partners = self.former.indices[np.repeat(starts, counts) + within]
            self._position[cols] = np.arange(len(cols))
            at = self._position[partners]
            self._position[cols] = -1
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

    def score_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The scores of the pairs (a[k], b[k]), a block of a few at a time."""
        step = 256
        return np.concatenate(
            [
                self.score_block(a[k : k + step], b[k : k + step]).diagonal()
                for k in range(0, len(a), step)
            ]
            or [np.zeros(0, dtype=np.int32)]
        )

    def score(self, a: int, b: int, *, hard: bool = True) -> int:
        return int(self.score_block(np.array([a]), np.array([b]), hard=hard)[0, 0])

    def reasons(self, members: Sequence[int]) -> tuple[Finding, ...]:
        """What the members have in common, strongest interests first."""
        people = [self.people[m] for m in members]
        found = []
        shared = set.intersection(*(set(p.interests) for p in people))
        if shared:
            points = {name: self.interest_points[self.interest_rank[name]] for name in shared}
            names = sorted(shared, key=lambda name: (-points[name], name))
            found.append(Finding("interests", tuple(names)))
        if len({p.library_type.casefold() for p in people}) == 1:
            found.append(Finding("library-type", (people[0].library_type,)))
        if len({p.career_stage.casefold() for p in people}) == 1:
            found.append(Finding("career-stage", (people[0].career_stage,)))
        methods = set.intersection(*({m.casefold() for m in p.contact_methods} for p in people))
        if methods:
            found.append(Finding("contact-methods", tuple(sorted(methods))))
        if len({p.contact_frequency.casefold() for p in people}) == 1:
            found.append(Finding("contact-frequency", (people[0].contact_frequency,)))
        codes = [int(self.offset_code[m]) for m in members]
        hours = min(
            int(self.offset_hours[a, b]) for i, a in enumerate(codes) for b in codes[i + 1 :]
        )
        if hours:
            found.append(Finding("waking-hours", (hours,)))
        for m in members:
            for other in members:
                if other != m:
                    met = sorted(self.wish_sets[m] & self.described[other])
                    found += [Finding("wish", _wish(key)) for key in met]
        return tuple(dict.fromkeys(found))


def _wish(key: str) -> tuple[str, str]:
    """A wish key as its kind and the value a person reads (a country by its name)."""
    kind, _, value = key.partition(":")
    return kind, country_name(value) if kind == "country" else value


def _waking_hours_together(a: np.ndarray, b: np.ndarray, waking: tuple[int, int]) -> np.ndarray:
    """Whole hours of the day when both are within waking hours, from their UTC offsets.

    Two windows of the same length on a 24-hour circle, shifted by the difference.
    """
    length = (waking[1] - waking[0]) * 60
    shift = np.abs(np.asarray(a) - np.asarray(b)) % 1440
    shift = np.minimum(shift, 1440 - shift)
    minutes = np.maximum(0, length - shift) + np.maximum(0, length - (1440 - shift))
    return (np.minimum(minutes, length) // 60).astype(np.int32)
