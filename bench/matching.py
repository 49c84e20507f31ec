"""The matching benchmark: `python -m bench.matching [--quick] [--sizes N ...] [--only CASE]`.

Each (case, solver) runs in a fresh `python -m bench.matching --case ... --solver ...`
process, so that peak memory (ru_maxrss) belongs to that case alone, and reports one JSON
line per row; the parent prints the table. Solvers: "mailflow" (`mailflow.matching.match`),
"greedy" (best pair first over `pair_scores`), "networkx" (the exact optimum on the same
graph, only where it finishes in reasonable time) and "cli" (an imported round through
`mailflow match --dry-run`). Measures, never fixes: whatever looks wrong in a result is
listed under the table.

Besides the usual make-up, the shapes of issue 21 (bench.population.SHAPES) at 1,000 (against
networkx's exact optimum), 5,000 and 100,000 (in process and through the command line).
Coverage is pairs made over the pairs possible, a figure the bench finds on its own
(bench.possible), never the solver's.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy
from scipy.optimize import linear_sum_assignment

from bench import ROOT, exit_problem, markdown_table, run_child
from bench.population import SHAPES, email_of, population, returning_rounds, shaped_round, to_csv
from bench.possible import most_pairs
from mailflow.matching import allowed, load_weights, match, pair_scores

SEED = 2026
NOW = "2026-03-02T09:00:00Z"
PROGRAM = "program@example.org"
NORMAL_SIZES = (200, 500, 1000, 5000, 20000, 100000)
QUICK_UP_TO = 5000
DENSE_UP_TO = 5000  # pair_scores is dense: greedy and exact only up to here
EXACT_UP_TO = 500  # networkx takes minutes at 1,000
MAX_CARDINALITY_UP_TO = 1000  # networkx finds the most pairs possible in a second or two
SHAPE_SIZES = (1000, 5000, 100000)
SHAPE_EXACT_AT = 1000  # the shapes' exact optimum: minutes each, so not in --quick
CHILD_TIMEOUT = 1200
BUSY = 0.25  # CPUs used by other processes above which a timing is marked unreliable


@dataclass(frozen=True)
class Target:
    """What one row must show; None is not checked. `slack` stretches `seconds` ("about a
    minute" allows 25% over)."""

    case: str
    solver: str
    what: str
    seconds: float | None = None
    megabytes: float | None = None
    slack: float = 1.0
    coverage: float | None = None  # pairs made / pairs possible, at least
    quality: float | None = None  # total / the solver's bound, at least, over the round
    vs_exact: float | None = None  # total / networkx's exact optimum, at least


TARGETS = (
    Target("normal-200", "mailflow", "an ILN-sized round (200) under 1 s", seconds=1.0),
    Target("normal-1000", "mailflow", "1,000 applicants in under 1 s", seconds=1.0),
    Target("e2e-20000", "cli", "20,000 end to end (match --dry-run) under 30 s", seconds=30.0),
    Target(
        "normal-100000",
        "mailflow",
        "100,000 in about a minute under 4 GB",
        seconds=60.0,
        megabytes=4096.0,
        slack=1.25,
    ),
    *(
        target
        for shape in SHAPES
        for target in (
            Target(
                f"{shape}-100000",
                "cli",
                f"{shape} 100,000 by match --dry-run: 60 s, 2 GB, every pair, 99.5% of bound",
                seconds=60.0,
                megabytes=2048.0,
                coverage=1.0,
                quality=0.995,
            ),
            Target(
                f"{shape}-100000",
                "mailflow",
                f"{shape} 100,000 in process: every pair, 99.5% of bound",
                coverage=1.0,
                quality=0.995,
            ),
            Target(
                f"{shape}-5000",
                "mailflow",
                f"{shape} 5,000: 5 s, every pair, 99.5% of bound",
                seconds=5.0,
                coverage=1.0,
                quality=0.995,
            ),
            Target(
                f"{shape}-1000",
                "mailflow",
                f"{shape} 1,000: every pair, 99.9% of exact",
                coverage=1.0,
                vs_exact=0.999,
            ),
        )
    ),
)


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str  # a population scenario, "returning" or "e2e"
    n: int
    solvers: tuple[str, ...]
    seed: int = SEED


@dataclass
class Row:
    case: str
    solver: str
    n: int
    seconds: float | None = None
    peak_mb: float | None = None
    base_mb: float | None = None  # resident before the solver started: interpreter + round
    total: int | None = None
    certified: float | None = None
    matched: int | None = None  # people in a pair or the group of three
    pairs: int | None = None  # pairs made (the group of three counts once)
    possible: int | None = None  # a matching of this many pairs exists (bench.possible)
    possible_bound: int | None = None  # and none has more; equal to `possible` when exact
    stated: int | None = None  # the solver's own figure (Matching.possible), if it gives one
    stated_exact: bool | None = None
    p10: float | None = None
    round: int | None = None
    bound: float | None = None  # our own assignment bound, for checking mailflow's
    upper_bound: int | None = None
    candidate_graph: str = ""
    max_cardinality: int | None = None
    others: float = 0.0  # CPUs that other processes used while this row was measured
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def cases(sizes: Sequence[int], quick: bool, exact_up_to: int, seed: int = SEED) -> list[Case]:
    def solvers(n: int) -> tuple[str, ...]:
        chosen = ["mailflow"]
        if n <= DENSE_UP_TO:
            chosen.append("greedy")
        if n <= exact_up_to:
            chosen.append("networkx")
        return tuple(chosen)

    def shape_solvers(n: int) -> tuple[str, ...]:
        if n == SHAPE_EXACT_AT and (not quick or n <= exact_up_to):
            return ("mailflow", "networkx")
        return ("mailflow", "cli") if n > QUICK_UP_TO else ("mailflow",)

    found = [Case(f"normal-{n}", "normal", n, solvers(n), seed) for n in sizes]
    found += [
        Case("dominant-1000", "dominant", 1000, solvers(1000), seed),
        Case("dominant-20000", "dominant", 20000, solvers(20000), seed),
        Case("isolated-1000", "isolated", 1000, solvers(1000), seed),
        Case("returning-1000", "returning", 1000, ("mailflow", "greedy"), seed),
        Case("e2e-20000", "e2e", 20000, ("cli",), seed),
    ]
    found += [
        Case(f"{shape}-{n}", shape, n, shape_solvers(n), seed)
        for shape in SHAPES
        for n in SHAPE_SIZES
    ]
    return [case for case in found if not quick or case.n <= QUICK_UP_TO]


# --- Measuring, inside the child -----------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(numpy.percentile(values, q)) if values else None


def _greedy(scores: dict[tuple[int, int], int]) -> list[tuple[int, int, int]]:
    """Best pair first, taking a pair when both are still free."""
    taken: set[int] = set()
    chosen = []
    for (a, b), score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        if a in taken or b in taken:
            continue
        taken.update((a, b))
        chosen.append((a, b, score))
    return chosen


def _assignment_bound(people, scores: dict[tuple[int, int], int]) -> float:
    """Half the best assignment with self-assignment at 0: no matching beats it."""
    index = {person.id: i for i, person in enumerate(people)}
    weights = numpy.zeros((len(people), len(people)))
    for (a, b), score in scores.items():
        weights[index[a], index[b]] = weights[index[b], index[a]] = max(score, 0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    return float(weights[rows, cols].sum()) / 2


def _max_cardinality(people, scores: Iterable[tuple[int, int]]) -> int:
    """The most pairs any matching of the allowed pairs has (unit weights are fast)."""
    import networkx  # here only: it would add to every other case's memory

    graph = networkx.Graph()
    graph.add_nodes_from(person.id for person in people)
    graph.add_edges_from(scores)
    return len(networkx.max_weight_matching(graph, maxcardinality=True, weight="unweighted"))


def _possible(row: Row, people, former) -> None:
    """The bench's own figure of the most pairs possible (bench.possible), for coverage."""
    found = most_pairs(people, former)
    row.possible, row.possible_bound = found.pairs, found.bound
    if not found.exact:
        row.notes.append(f"possible: a matching of {found.pairs} found, none above {found.bound}")


def _stated(row: Row, result) -> None:
    """The solver's own figure of the pairs possible, once Matching has one."""
    row.stated = getattr(result, "possible", None)
    exact = getattr(result, "possible_exact", None)
    row.stated_exact = None if exact is None else bool(exact)


def _check(result, people, former, scores: dict | None) -> list[str]:
    """What is wrong with a Matching, as short sentences (empty when it is sound)."""
    problems = []
    by_id = {person.id: person for person in people}
    placed = [m for pair in result.pairs for m in pair.members]
    placed += [pid for pid, _ in result.unmatched] + [pid for pid, _ in result.deferred]
    if len(placed) != len(set(placed)):
        problems.append(f"{len(placed) - len(set(placed))} people placed twice")
    missing = set(by_id) - set(placed)
    if missing:
        problems.append(f"{len(missing)} people neither paired, unmatched nor deferred")
    if set(placed) - set(by_id):
        problems.append(f"{len(set(placed) - set(by_id))} unknown ids in the result")
    trios = [pair for pair in result.pairs if len(pair.members) == 3]
    if len(trios) > 1:
        problems.append(f"{len(trios)} trios (at most one expected)")
    if any(len(pair.members) not in (2, 3) for pair in result.pairs):
        problems.append("a pair with fewer than two or more than three members")
    bad = 0
    for pair in result.pairs:
        members = [by_id[m] for m in pair.members if m in by_id]
        if any(not allowed(a, b, former) for i, a in enumerate(members) for b in members[i + 1 :]):
            bad += 1
    if bad:
        problems.append(f"{bad} pairs break a hard constraint (allowed() is False)")
    # A group of three counts in the total at the score of the pair it grew from, which
    # is one of its three pairs' scores; its Pair.score is their mean.
    pairs_only = sum(pair.score for pair in result.pairs if len(pair.members) == 2)
    if not trios and pairs_only != result.total:
        problems.append(f"total {result.total} != sum of pair scores {pairs_only}")
    if trios and scores is not None:
        grown_from = {
            scores.get((a, b))
            for trio in trios
            for i, a in enumerate(sorted(trio.members))
            for b in sorted(trio.members)[i + 1 :]
        }
        if result.total - pairs_only not in grown_from:
            problems.append(
                f"total {result.total}: the trio counts {result.total - pairs_only}, none of"
                f" its pairs' scores {sorted(s for s in grown_from if s is not None)}"
            )
    if result.total > result.upper_bound:
        problems.append(f"total {result.total} above its upper bound {result.upper_bound}")
    if scores is not None:
        wrong = [
            pair
            for pair in result.pairs
            if len(pair.members) == 2 and scores.get(tuple(sorted(pair.members))) != pair.score
        ]
        if wrong:
            pair = wrong[0]
            problems.append(
                f"{len(wrong)} pair scores differ from pair_scores, e.g. {pair.members}:"
                f" {pair.score} vs {scores.get(tuple(sorted(pair.members)))}"
            )
    return problems


class _Stages:
    """A progress callback that keeps when each (stage, step) was first reported."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        self.totals: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.seen.setdefault((stage, done), time.perf_counter())
        self.totals[stage] = total
        # On stderr as it happens, so that a case that times out still says how far it got.
        print(f"progress: {stage} {done}/{total}", file=sys.stderr, flush=True)

    def summary(self, started: float, ended: float) -> str:
        """Seconds between consecutive reports: "finding candidates 2.1, matching 0.3/1.2"."""
        parts, last = [], started
        for stage, total in self.totals.items():
            steps = sorted(d for s, d in self.seen if s == stage)
            begin = self.seen[(stage, steps[0])]
            marks = [self.seen[(stage, d)] for d in steps if d in (0, total) or total <= 3]
            spans = [b - a for a, b in itertools.pairwise(marks)]
            if begin - last > 0.05:
                parts.append(f"before {begin - last:.2f}")
            parts.append(f"{stage} " + "/".join(f"{span:.2f}" for span in spans))
            last = marks[-1]
        if ended - last > 0.05:
            parts.append(f"after {ended - last:.2f}")
        return "stages (s): " + ", ".join(parts) if parts else "no progress reported"


def _mailflow_row(case: Case, people, former, weights, row: Row) -> object:
    cap = weights.country_cap  # as `mailflow match` passes it
    stages = _Stages()
    row.base_mb = _rss_mb()
    started = time.perf_counter()
    result = match(people, weights, former=former, country_cap=cap, progress=stages)
    row.seconds = time.perf_counter() - started
    row.peak_mb = _peak_mb()
    row.notes.append(stages.summary(started, started + row.seconds))
    row.total = result.total
    row.upper_bound = result.upper_bound
    row.certified = result.certified_ratio
    row.candidate_graph = result.candidate_graph
    row.matched = sum(len(pair.members) for pair in result.pairs)
    row.pairs = len(result.pairs)
    row.p10 = _percentile([pair.score for pair in result.pairs], 10)
    _stated(row, result)
    _possible(row, people, former)
    small = case.n <= MAX_CARDINALITY_UP_TO
    scores = pair_scores(people, weights, former=former) if small else None
    if scores is not None:
        row.max_cardinality = _max_cardinality(people, scores)
    row.problems += _check(result, people, former, scores)
    if result.unmatched:
        row.notes.append(f"unmatched {len(result.unmatched)}")
    if result.deferred:
        row.notes.append(f"deferred {len(result.deferred)} (cap {cap})")
    trios = sum(len(pair.members) == 3 for pair in result.pairs)
    if trios:
        row.notes.append(f"{trios} trio")
    reasons = sorted({why.kind for _, why in (*result.unmatched, *result.deferred)})
    if reasons:
        row.notes.append("why: " + " / ".join(reasons[:3]) + (" …" if len(reasons) > 3 else ""))
    return result


def _greedy_row(people, former, weights, row: Row) -> None:
    row.base_mb = _rss_mb()
    started = time.perf_counter()
    scores = pair_scores(people, weights, former=former)
    scored = time.perf_counter()
    chosen = _greedy(scores)
    row.seconds = time.perf_counter() - started
    row.peak_mb = _peak_mb()
    row.total = sum(score for _, _, score in chosen)
    row.matched = 2 * len(chosen)
    row.pairs = len(chosen)
    _possible(row, people, former)
    row.p10 = _percentile([score for _, _, score in chosen], 10)
    row.bound = _assignment_bound(people, scores)
    row.certified = row.total / row.bound if row.bound else None
    row.candidate_graph = "complete"
    row.notes.append(f"pair_scores {scored - started:.2f} s, {len(scores):,} allowed pairs")


def _networkx_row(people, former, weights, row: Row) -> None:
    import networkx  # here only: it would add to every other case's memory

    row.base_mb = _rss_mb()
    started = time.perf_counter()
    scores = pair_scores(people, weights, former=former)
    scored = time.perf_counter()
    graph = networkx.Graph()
    graph.add_nodes_from(person.id for person in people)
    graph.add_weighted_edges_from((a, b, score) for (a, b), score in scores.items())
    chosen = networkx.max_weight_matching(graph, maxcardinality=False)
    row.seconds = time.perf_counter() - started
    row.peak_mb = _peak_mb()
    picked = [scores[(min(a, b), max(a, b))] for a, b in chosen]
    row.total = sum(picked)
    row.matched = 2 * len(chosen)
    row.pairs = len(chosen)
    row.p10 = _percentile(picked, 10)
    row.bound = _assignment_bound(people, scores)
    row.certified = row.total / row.bound if row.bound else None
    row.candidate_graph = "complete"
    # The most pairs any matching of the allowed pairs has, to check bench.possible by.
    row.max_cardinality = _max_cardinality(people, scores)
    _possible(row, people, former)
    row.notes.append(f"pair_scores {scored - started:.2f} s")


EARLIER_TERM = ("2024-03-01T00:00:00Z", "2025-03-01T00:00:00Z")


def _add_former(home: Path, former: frozenset[frozenset[int]]) -> tuple[int, int]:
    """Write the round's former partnerships into the store as ended partnerships of an
    earlier round, where `mailflow match` reads them (`import` takes applicants only);
    (written, left out because one of the two is not in the round)."""
    import sqlite3

    with sqlite3.connect(home / "mailflow.db") as db:
        ids = dict(db.execute("SELECT email, id FROM participants"))
        known = [pair for pair in former if all(email_of(i) in ids for i in pair)]
        cursor = db.execute(
            "INSERT INTO rounds (name, opens_at, term_start, term_end, state, matched_at,"
            " created_at) VALUES ('Earlier rounds', ?1, ?1, ?2, 'ended', ?1, ?1)",
            EARLIER_TERM,
        )
        db.executemany(
            "INSERT INTO partnerships (round_id, member_a, member_b, term_start, term_end,"
            " state, made_by, created_at, ended_at, ended_why)"
            " VALUES (?, ?, ?, ?4, ?5, 'ended', 'matching', ?4, ?5, 'term')",
            [
                (cursor.lastrowid, *sorted(ids[email_of(i)] for i in pair), *EARLIER_TERM)
                for pair in known
            ],
        )
    db.close()
    return len(known), len(former) - len(known)


# What the --dry-run preview says (templates/results/match.txt), read loosely: the solver's
# rewrite may reword it; a line not found is a problem in the table, not a crash.
PREVIEW = {
    "pairs": r"^pairs: (\d+)(?:\D+?(\d+) possible)?",
    "matched": r"^people matched: (\d+) of (\d+)",
    "quality": r"^quality: ([\d.]+)%(.*)$",
    "total": r"^total score: (\d+) \(bound (\d+)\)",
    "left": r"^left out: (\d+)",
}


def _graph_in(quality_line: str) -> str:
    """What the preview's quality figure is a bound over, in Matching.candidate_graph's words."""
    found = re.search(r"\(([^()]*?) candidates each", quality_line)
    if found:
        return found[1]
    if "(proven: every possible pair was scored)" in quality_line:
        return "complete"
    return quality_line.strip(" ()")


def _cli_row(case: Case, row: Row) -> None:
    mailflow = Path(sys.executable).parent / "mailflow"
    if case.scenario in SHAPES:
        people, former = shaped_round(case.n, case.seed, case.scenario)
    else:
        people, former = population(case.n, case.seed), frozenset()
    with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as tmp:
        home = Path(tmp) / "home"
        roster = Path(tmp) / "round.csv"
        roster.write_text(to_csv(people), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
        env.update(MAILFLOW_HOME=str(home), MAILFLOW_ADDRESS=PROGRAM, MAILFLOW_NOW=NOW)
        # The mailflow of this checkout, as the in-process rows measure, not an installed one.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

        def run(*args: str) -> tuple[int, str, str, float, float]:
            """Exit status, output, errors, seconds and peak MB of one mailflow command."""
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            with out.open("w") as stdout, err.open("w") as stderr:
                started = time.perf_counter()
                process = subprocess.Popen(
                    [str(mailflow), *args], stdout=stdout, stderr=stderr, env=env, cwd=tmp
                )
                # wait4 rather than wait: the usage of this one process, not of all children.
                _, status, usage = os.wait4(process.pid, 0)
                seconds = time.perf_counter() - started
            code = os.waitstatus_to_exitcode(status)
            return code, out.read_text(), err.read_text(), seconds, usage.ru_maxrss / 1024

        code, out, err, seconds, _ = run("import", str(roster))
        head = (out.splitlines() or [""])[0]
        row.notes.append(f"import {seconds:.1f} s: {head}")
        if code not in (0, 1) or not head:
            last = (err.strip().splitlines() or ["no output"])[-1]
            row.problems.append(f"import failed ({code}): {last}")
            return
        if former:
            written, absent = _add_former(home, former)
            row.notes.append(
                f"{written} former partnerships written to the store ({absent} with someone"
                " not in this round left out)"
            )
        code, out, err, seconds, peak = run("match", "--dry-run")
        row.seconds = seconds
        row.peak_mb = peak
        if code != 0:
            row.problems.append(f"match --dry-run failed ({code}): {err.strip()[-300:]}")
            return
        found = {key: re.search(pattern, out, re.MULTILINE) for key, pattern in PREVIEW.items()}
        for key in ("pairs", "matched", "quality"):
            if not found[key]:
                row.problems.append(f"no '{key}' line in the --dry-run preview")
        if found["pairs"]:
            row.pairs = int(found["pairs"][1])
            row.stated = int(found["pairs"][2]) if found["pairs"][2] else None
        if found["matched"]:
            row.matched = int(found["matched"][1])
            row.notes.append(f"preview: {found['matched'][0]}")
        if found["quality"]:
            row.certified = float(found["quality"][1]) / 100
            row.candidate_graph = _graph_in(found["quality"][2])
        if found["total"]:
            row.total, row.upper_bound = int(found["total"][1]), int(found["total"][2])
            row.certified = row.total / row.upper_bound if row.upper_bound else 1.0
        if found["left"]:
            row.notes.append(f"left out {found['left'][1]}")
        _possible(row, people, former)


def run_case(case: Case, solver: str) -> list[Row]:
    """The rows of one (case, solver), measured in this process."""
    if solver == "cli":
        row = Row(case.name, solver, case.n)
        _cli_row(case, row)
        return [row]
    weights = load_weights(ROOT / "rules")
    if case.scenario == "returning":
        return _returning(case, solver, weights)
    if case.scenario in SHAPES:
        people, former = shaped_round(case.n, case.seed, case.scenario)
    else:
        people, former = population(case.n, case.seed, scenario=case.scenario), frozenset()
    row = Row(case.name, solver, case.n)
    if former:
        ids = {person.id for person in people}
        again = sum(1 for pair in former if pair <= ids)
        row.notes.append(f"{again} former pairs both present")
    if solver == "mailflow":
        _mailflow_row(case, people, former, weights, row)
    elif solver == "greedy":
        _greedy_row(people, former, weights, row)
    elif solver == "networkx":
        _networkx_row(people, former, weights, row)
    else:
        raise ValueError(f"unknown solver {solver!r}")
    return [row]


def _returning(case: Case, solver: str, weights) -> list[Row]:
    """Six rounds where 70% return; each round is matched by mailflow, which decides who the
    next round's former partners are; "greedy" rows run greedy on the same rounds."""
    rows = []
    rounds = returning_rounds(case.n, case.seed)
    result = None
    number = 0
    while True:
        try:
            people, former = rounds.send(result) if number else next(rounds)
        except StopIteration:
            break
        number += 1
        row = Row(case.name, solver, len(people), round=number)
        ids = {person.id for person in people}
        again = sum(1 for pair in former if pair <= ids)
        row.notes.append(f"{again} former pairs both present")
        if solver == "mailflow":
            result = _mailflow_row(case, people, former, weights, row)
        else:
            _greedy_row(people, former, weights, row)
            result = match(people, weights, former=former, country_cap=weights.country_cap)
        if number > 1:
            row.notes.append("peak MB includes earlier rounds")
        rows.append(row)
    return rows


# --- The table, in the parent --------------------------------------------------------------


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child(case: Case, solver: str, args: argparse.Namespace) -> list[Row]:
    """The child's rows, each noting how much CPU other processes took meanwhile: on a
    shared two-core machine that is what makes one timing three times another."""
    busy, ours, started = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    rows = _measure_child(case, solver, args)
    wall = time.perf_counter() - started
    others = (_busy_cpu_seconds() - busy) - (_children_cpu_seconds() - ours)
    for row in rows:
        row.others = max(0.0, others / wall)
        if row.others > BUSY:
            row.notes.append(f"MACHINE BUSY: other processes used {row.others:.1f} CPUs")
    return rows


def _measure_child(case: Case, solver: str, args: argparse.Namespace) -> list[Row]:
    command = [sys.executable, "-m", "bench.matching", "--case", case.name, "--solver", solver]
    command += ["--exact-up-to", str(args.exact_up_to), "--seed", str(args.seed)]
    command += ["--sizes", *map(str, args.sizes), "--timeout", str(args.timeout)]
    started = time.perf_counter()
    code, out, err = run_child(command, args.timeout)
    if code is None:
        reached = [line for line in err.splitlines() if line.startswith("progress: ")]
        last = f"; last {reached[-1]}" if reached else ""
        why = f"timed out after {args.timeout:.0f} s{last}"
        return [Row(case.name, solver, case.n, problems=[why])]
    print(f"    {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    rows = [Row(**json.loads(line)) for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not rows:
        return [Row(case.name, solver, case.n, problems=[exit_problem(code, err)])]
    return rows


def _cross_check(rows: list[Row]) -> None:
    """Check bench.possible against networkx and the solver's own figure against both, and
    mailflow against greedy; note disagreements."""
    most = {(row.case, row.round): row.max_cardinality for row in rows if row.max_cardinality}
    greedy = {(row.case, row.round): row for row in rows if row.solver == "greedy"}
    for row in rows:
        exact = most.get((row.case, row.round))
        if exact is not None and row.possible is not None:
            if row.possible <= exact <= (row.possible_bound or exact) and exact != row.possible:
                row.notes.append(f"possible: networkx's {exact} taken")
                row.possible = row.possible_bound = exact
            elif exact != row.possible:
                row.problems.append(
                    f"bench.possible says {row.possible} pairs possible, networkx {exact}"
                )
        if row.pairs is not None and row.pairs > (row.possible_bound or row.pairs):
            row.problems.append(
                f"{row.pairs} pairs, above the {row.possible_bound} the hard rules allow"
            )
        stated, possible = row.stated, row.possible
        if stated is not None and possible == row.possible_bound != stated:
            row.problems.append(
                f"the solver says {row.stated} pairs possible, the bench finds {row.possible}"
            )
        ours = greedy.get((row.case, row.round))
        if row.solver == "mailflow" and ours is not None and ours.bound is not None:
            if row.candidate_graph == "complete" and abs(ours.bound - row.upper_bound) > 1:
                row.problems.append(
                    f"upper_bound {row.upper_bound} but the assignment relaxation of"
                    f" pair_scores gives {ours.bound:.1f}"
                )
            if row.total is not None and row.total > ours.bound + 0.5:
                row.problems.append(
                    f"total {row.total} above the assignment bound {ours.bound:.1f} of"
                    " pair_scores: scores differ from what pair_scores says"
                )
            if row.total is not None and ours.total is not None and row.total < ours.total:
                row.problems.append(f"total {row.total} below greedy's {ours.total}")


def _ratio_to_exact(row: Row, rows: list[Row]) -> float | None:
    best = next(
        (r for r in rows if r.case == row.case and r.solver == "networkx" and r.total), None
    )
    if best is None or row.total is None:
        return None
    return row.total / best.total


def _over_round(graph: str) -> bool:
    """Whether a bound is over every pair of the round, not a candidate graph's only: the
    solver says "complete", or names the round in its description of the graph."""
    return graph == "complete" or "round" in graph


def _possible_cell(row: Row) -> str:
    if row.possible is None:
        return ""
    if row.possible_bound is not None and row.possible_bound != row.possible:
        return f"{row.possible:,}-{row.possible_bound:,}"
    return f"{row.possible:,}"


def _coverage_cell(row: Row) -> str:
    if row.pairs is None or not row.possible:
        return ""
    short = row.possible - row.pairs
    return f"{row.pairs / row.possible:.2%}" + (f" (-{short:,})" if short > 0 else "")


def _cells(row: Row, rows: list[Row]) -> list[str]:
    def number(value: float | None, form: str) -> str:
        return "" if value is None else format(value, form)

    case = row.case + (f" r{row.round}" if row.round else "")
    stated = number(row.stated, ",") + (" (bound)" if row.stated_exact is False else "")
    notes = "; ".join(row.notes + [f"PROBLEM: {p}" for p in row.problems])
    return [
        case,
        row.solver,
        f"{row.n:,}",
        number(row.seconds, ".3f"),
        number(row.peak_mb, ".0f"),
        number(row.base_mb, ".0f"),
        number(row.pairs, ","),
        _possible_cell(row),
        stated,
        _coverage_cell(row),
        number(row.certified, ".4f"),
        row.candidate_graph,
        number(_ratio_to_exact(row, rows), ".4f"),
        number(row.p10, ".1f"),
        notes,
    ]


HEAD = (
    "case",
    "solver",
    "n",
    "seconds",
    "peak MB",
    "base MB",
    "pairs",
    "possible",
    "stated",
    "coverage",
    "certified",
    "bound over",
    "vs exact",
    "p10 score",
    "notes",
)
RIGHT = {2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13}


def table(rows: list[Row]) -> str:
    return markdown_table(HEAD, [_cells(row, rows) for row in rows], RIGHT)


def _verdict(target: Target, row: Row, rows: list[Row]) -> tuple[list[str], list[str], list[str]]:
    """(figures shown, criteria missed, criteria not measured) of one target."""
    shown: list[str] = []
    missed: list[str] = []
    unmeasured: list[str] = []
    if target.seconds is not None:
        if row.seconds is None:
            unmeasured.append("time")
        else:
            shown.append(f"{row.seconds:.2f} s")
            if row.seconds > target.seconds * target.slack:
                missed.append("time")
    if target.megabytes is not None:
        if row.peak_mb is None:
            unmeasured.append("memory")
        else:
            shown.append(f"{row.peak_mb:.0f} MB")
            if row.peak_mb > target.megabytes:
                missed.append("memory")
    if target.coverage is not None:
        if row.pairs is None or not row.possible:
            unmeasured.append("coverage")
        else:
            shown.append(f"{row.pairs:,} of {_possible_cell(row)} pairs")
            if row.pairs < target.coverage * row.possible:
                missed.append("coverage")
    if target.quality is not None:
        if row.certified is None:
            unmeasured.append("quality")
        else:
            shown.append(f"{row.certified:.2%} of a bound over {row.candidate_graph or '?'}")
            if row.certified < target.quality:
                missed.append("quality")
            elif not _over_round(row.candidate_graph):
                missed.append("bound not over the round")
    if target.vs_exact is not None:
        ratio = _ratio_to_exact(row, rows)
        if ratio is None:
            unmeasured.append("exact")
        else:
            shown.append(f"{ratio:.2%} of exact")
            if ratio < target.vs_exact:
                missed.append("quality vs exact")
    return shown, missed, unmeasured


def targets(rows: list[Row]) -> list[str]:
    lines = ["Targets:"]
    for target in TARGETS:
        row = next((r for r in rows if r.case == target.case and r.solver == target.solver), None)
        if row is None:
            continue
        shown, missed, unmeasured = _verdict(target, row, rows)
        verdict = f"MISSED ({', '.join(missed)})" if missed else "met"
        if unmeasured:
            verdict += f"; not measured: {', '.join(unmeasured)}"
        lines.append(f"  - {target.what}: {', '.join(shown) or 'nothing measured'}: {verdict}")
    skipped = len(TARGETS) - len(lines) + 1
    if skipped:
        lines.append(f"  ({skipped} targets of cases not run)")
    return lines


FOOTNOTES = (
    "seconds: the solver call alone (greedy and networkx include pair_scores; cli is the"
    " `mailflow match --dry-run` process). peak MB: ru_maxrss of a fresh process per case,"
    " so it includes the interpreter and the generated round; base MB: resident just"
    " before the solver started (interpreter, libraries and the round).",
    "pairs: pairs made, the group of three counting once. possible: the most pairs the hard"
    " rules allow in the whole round, found by bench.possible without mailflow (a maximum"
    " flow over classes of people alike in country and languages bounds it; a matching of"
    " real people, former partners avoided, reaches it); 'a-b' when the matching found and"
    " the bound differ; checked against networkx's maximum-cardinality matching up to"
    f" n = {MAX_CARDINALITY_UP_TO:,}. stated: the solver's own figure (Matching.possible),"
    " blank while it gives none. coverage: pairs / possible.",
    "certified: total / upper bound; bound over: the graph that bound holds over (mailflow's"
    " candidate_graph: 'complete' is every pair of the round). greedy and networkx use the"
    " assignment relaxation of the dense pair_scores. A quality target is met only by a"
    " bound over the round: 'complete', or a description that names the round.",
    "vs exact: total / networkx's exact optimum on the same round.",
)


def _version() -> str:
    """Which mailflow/matching/ was measured: it is still changing as this runs."""
    paths = sorted((ROOT / "mailflow" / "matching").glob("*.py"))
    digest = hashlib.sha1(b"".join(path.read_bytes() for path in paths)).hexdigest()[:12]
    latest = max(path.stat().st_mtime for path in paths)
    changed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(latest))
    return f"mailflow/matching/ {digest} (modified {changed} UTC)"


def _only(names: list[str], everything: list[Case]) -> list[tuple[Case, str]] | None:
    """The (case, solver) jobs `--only` names; None, after saying so, for an unknown name."""
    by_name = {case.name: case for case in everything}
    jobs = []
    for name in names:
        case_name, _, solver = name.partition(":")
        case = by_name.get(case_name)
        if case is None or (solver and solver not in case.solvers):
            known = ", ".join(sorted(by_name))
            print(f"--only {name}: no such case or solver; cases: {known}", file=sys.stderr)
            return None
        jobs += [(case, s) for s in case.solvers if not solver or s == solver]
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"only up to {QUICK_UP_TO:,}")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(NORMAL_SIZES))
    parser.add_argument("--exact-up-to", type=int, default=EXACT_UP_TO)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--timeout", type=float, default=CHILD_TIMEOUT, help="seconds allowed to each case"
    )
    parser.add_argument("--cases", nargs="+", help="only cases whose name contains one of these")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="CASE[:SOLVER]",
        help="only these cases, named exactly and whatever their size (dozen-100000,"
        " dozen-100000:cli); --quick and --cases do not apply",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--solver", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = cases(args.sizes, args.quick, args.exact_up_to, args.seed)
    if args.case:
        everything = cases(args.sizes, False, args.exact_up_to, args.seed)
        case = next(c for c in everything if c.name == args.case)
        for row in run_case(case, args.solver):
            print(json.dumps(row.__dict__))
        return 0
    if args.cases:
        chosen = [c for c in chosen if any(part in c.name for part in args.cases)]
    jobs = [(case, solver) for case in chosen for solver in case.solvers]
    if args.only:
        jobs = _only(args.only, cases(args.sizes, False, args.exact_up_to, args.seed))
        if jobs is None:
            return 2
    version = _version()
    rows: list[Row] = []
    started = time.perf_counter()
    for number, (case, solver) in enumerate(jobs, start=1):
        print(
            f"[{number}/{len(jobs)} {time.perf_counter() - started:6.0f} s] {case.name} {solver}",
            file=sys.stderr,
            flush=True,
        )
        rows += _child(case, solver, args)
    _cross_check(rows)
    print(f"Measured: {version}, seed {args.seed}, {os.cpu_count()} CPUs.")
    if _version() != version:
        print(f"WARNING: it changed during the run, now {_version()}: rows are mixed.")
    print()
    print(table(rows))
    print()
    print("\n".join(targets(rows)))
    print()
    cap = load_weights(ROOT / "rules").country_cap
    notes = [
        *FOOTNOTES,
        f"mailflow gets the country cap of rules/matching.toml ({cap or 'off'}), as `mailflow"
        " match` does; greedy and networkx never defer anyone.",
    ]
    print("\n".join(f"* {note}" for note in notes))
    problems = [row for row in rows if row.problems]
    if problems:
        print()
        print(f"{len(problems)} rows with problems (see notes).")
    busy = [row for row in rows if row.others > BUSY]
    if busy:
        print()
        print(
            f"{len(busy)} rows were measured while other processes used more than {BUSY} CPUs"
            " (MACHINE BUSY in notes): their seconds are not to be trusted."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
