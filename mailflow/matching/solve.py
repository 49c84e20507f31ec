"""From a graph to a matching, with proof of how good.

The symmetric assignment relaxation (scipy) gives twice an upper bound on any matching;
its cycles are split into pairs, augmenting paths (Edmonds' search, blossoms included)
then pair everyone a maximum matching can, and swapping partners raises the score while
it gains.

It never reads the store or the clock, and never scores a pair: it sees only the weights
of the graph (or of the dense table on small rounds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from mailflow.matching.candidates import _Graph
from mailflow.matching.model import Progress

_PATH_SEARCH_AT_LEAST = 200_000  # edges an augmenting-path search may look at


def _relaxation(
    graph: _Graph, nodes: np.ndarray, dense: np.ndarray | None, shift: int = 0
) -> tuple[np.ndarray, int]:
    """The symmetric assignment over `nodes`: each node's chosen partner (itself when
    alone), and the assignment's value, twice an upper bound on any matching among them.

    With a `shift`, every pair of the graph is worth that much more (the dense table is
    never shifted): a matching of p pairs then scores at most half the value less p times
    the shift, and the assignment chosen leans towards pairing everyone."""
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
    weight = weight.astype(np.int64) + shift
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
        self.shift, self.value = 0, 0  # of the first relaxation: see `solve`

    def weight(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[a, b]
        return self.graph.lookup(a, b)

    def pair(self, a: int, b: int) -> None:
        self.mate[a], self.mate[b] = b, a

    def solve(self, nodes: np.ndarray, covering: np.ndarray) -> None:
        """Match `nodes`, pairing at least as many as `covering` (pairs of the graph) does.

        On a candidate graph the first relaxation counts each pair its heaviest weight
        more: everyone matched comes first, and the bound it gives is over the matchings
        that pair as many, the ones this competes with (see `bound`)."""
        if self.progress:
            self.progress("matching", 0, 3)
        if self.dense is None:
            self.shift = int(self.graph.weight.max(initial=0))
        chosen, self.value = _relaxation(self.graph, nodes, self.dense, self.shift)
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
        self.cover(covering)
        if self.progress:
            self.progress("matching", 2, 3)
        self.swap()
        self.augment(nodes)
        if self.progress:
            self.progress("matching", 3, 3)

    def bound(self, nodes: np.ndarray) -> int:
        """No matching of `nodes` in the graph that pairs as many as this one scores more."""
        pairs = int(np.count_nonzero(self.mate[nodes] >= 0)) // 2
        return (self.value - 2 * self.shift * pairs) // 2

    def augment(self, nodes: np.ndarray, *, bounded: bool = True) -> None:
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
            paths = _AugmentingPaths(self.graph, self.mate, bounded=bounded)
            self.mate[:] = paths.run(alone.tolist())

    def cover(self, pairs: np.ndarray) -> None:
        """Pair at least as many people as `pairs` (a matching) does, changing the fewest.

        Together the two matchings form alternating paths and cycles; each path that
        begins and ends with someone alone here holds one more of `pairs` than of ours,
        and taking its pairs instead is one more pair. The shortest such paths are taken
        first, since each costs the scores of the pairs it breaks."""
        theirs = np.full(self.graph.n, -1, dtype=np.int64)
        theirs[pairs[:, 0]], theirs[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
        mate = self.mate
        paths = []
        for start in np.flatnonzero((mate < 0) & (theirs >= 0)).tolist():
            path = [start, int(theirs[start])]
            while (held := int(mate[path[-1]])) >= 0 and theirs[held] >= 0:
                path += [held, int(theirs[held])]
            if held < 0 and path[-1] != start:
                paths.append(path)
        for path in sorted(paths, key=len):
            if mate[path[0]] >= 0 or mate[path[-1]] >= 0:  # the same path from its other end
                continue
            for a, b in zip(path[0::2], path[1::2], strict=True):
                self.pair(a, b)

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
    Unbounded, the searches find a matching with the most pairs the graph allows.
    """

    def __init__(self, graph: _Graph, mate: np.ndarray, *, bounded: bool = True) -> None:
        edges = len(graph.cols)
        unbounded = edges * graph.n + 1
        # For all searches together, and for one search.
        self.budget = max(_PATH_SEARCH_AT_LEAST, edges) if bounded else unbounded
        self.each = max(_PATH_SEARCH_AT_LEAST, edges // 8) if bounded else unbounded
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
