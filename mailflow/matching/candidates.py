"""The graph the matching works on, and the candidate graph of large rounds.

`_Graph` holds scored edges between people, every allowed pair on small rounds. On large
ones `_candidates` scores blocks of people who share an interest, a language or a wish,
nearest in time zone, and keeps each person's best few; `_joined` then adds the pairs
that reach the most pairs possible (`coverage`), so that no one is left out for want of
an edge: when one country brings half the applicants, everyone abroad must pair with one
of them wherever they live, and no block need hold those pairs.

It never reads the store or the clock, and never decides who is paired: that is `solve`.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from mailflow.matching.model import NOT_ALLOWED, Progress
from mailflow.matching.population import _Population

_HELD_EDGES = 16_000_000  # candidate edges held before only each one's best are kept


class _Graph:
    """Symmetric weighted edges between people (indexes), as CSR, with weight lookup."""

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray) -> None:
        self.n = n
        keys = rows.astype(np.int64) * n + cols
        if len(keys) and (keys[1:] < keys[:-1]).any():  # by person, then partner
            order = np.argsort(keys, kind="stable")
            keys, rows, cols, weight = keys[order], rows[order], cols[order], weight[order]
        self.rows, self.cols, self.weight, self.keys = rows, cols, weight, keys
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
        ranks = rank[holders]
        for start in range(0, len(seekers), size):
            chunk = seekers[start : start + size]
            middle = np.searchsorted(ranks, rank[chunk[len(chunk) // 2]])
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
        # in a big country's hours would hold nobody it may be paired with. Sorted once
        # here, every country's part of it comes sorted (a round of many small countries
        # otherwise sorts its biggest language group once for each of them).
        group = group[np.argsort(rank[group], kind="stable")]
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

    n = population.n
    found: list[tuple[np.ndarray, ...]] = []
    held = 0
    for done, (rows, cols) in enumerate(blocks):
        found.append(_best_of_scores(rows, cols, population.score_block(rows, cols), keep))
        held += len(found[-1][0])
        if held > _HELD_EDGES:  # only the best few so far: a round of many small countries
            found = [_best_few(n, found, keep)]  # has ten thousand blocks, 1.4 GB of edges
            held = len(found[0][0])
        if progress and done % 50 == 0:
            progress("finding candidates", done, len(blocks))
    if progress:
        progress("finding candidates", len(blocks), len(blocks))
    return _both_ways(n, *_best_few(n, found, keep))


def _best_few(
    n: int, found: list[tuple[np.ndarray, ...]], keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the edges found, each person's best `keep` (ties by index) whichever end of an
    edge they are, as edges from that person; an edge may come twice, once from each end."""
    if not found:
        return (np.zeros(0, np.int64),) * 3
    rows, cols, weight = (np.concatenate(part) for part in zip(*found, strict=True))
    found.clear()
    if not len(weight):
        return rows.astype(np.int64), cols.astype(np.int64), weight
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    # Edges in both directions, sorted by person, best first, as one int64 key each.
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
    return rows[best], cols[best], distinct[levels - 1 - worse[best]]


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


def _joined(graph: _Graph, pairs: np.ndarray, weight: np.ndarray) -> _Graph:
    """The graph with the edges of `pairs` added, both ways."""
    return _both_ways(
        graph.n,
        np.concatenate([graph.rows, pairs[:, 0]]),
        np.concatenate([graph.cols, pairs[:, 1]]),
        np.concatenate([graph.weight, weight]),
    )
