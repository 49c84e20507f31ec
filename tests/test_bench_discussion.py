"""The discussion benchmark still runs: its builders and both scenarios at a tiny size.
No timings are asserted here; they belong to `bench/discussion.py`."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

from bench import discussion

TINY = discussion.Sizes(people=60, posts=10)


def rows(home: Path, query: str) -> list[tuple]:
    with sqlite3.connect(home / "mailflow.db") as db:
        found = db.execute(query).fetchall()
    db.close()
    return found


def test_the_store_is_a_round_with_its_delivery_choices(tmp_path: Path):
    home = tmp_path / "var"
    made = discussion.build(home, TINY)
    assert made["participants"] == 60 and made["partnerships"] == 30
    modes = dict(rows(home, "SELECT mode, count(*) FROM discussion_choices GROUP BY mode"))
    assert modes == {"every": TINY.every, "daily": TINY.daily}
    assert discussion.add_posts(home, TINY.posts) == TINY.posts
    [(published, fanned)] = rows(
        home,
        "SELECT count(*), count(fanned_out_at) FROM discussion_posts WHERE state = 'published'",
    )
    assert published == fanned == TINY.posts


def test_both_scenarios_run_and_fill_the_table(tmp_path: Path):
    base = tmp_path / "base"
    discussion.build(base, TINY)
    homes = {}
    for name in ("post", "digest"):
        homes[name] = tmp_path / name / "var"
        homes[name].mkdir(parents=True)
        shutil.copyfile(base / "mailflow.db", homes[name] / "mailflow.db")
    discussion.add_posts(homes["digest"], TINY.posts)
    args = argparse.Namespace(clients=2, rate=10.0, baseline=0.5, timeout=120.0)
    posted = discussion.post_scenario(homes["post"], homes["post"].parent, args, TINY.every - 1)
    assert posted["problems"] == []
    assert posted["copies"] == posted["sent"] == TINY.every - 1
    assert posted["load_during"]["refused"] == 0
    digested = discussion.digest_scenario(homes["digest"], homes["digest"].parent, args, TINY.daily)
    assert digested["problems"] == []
    assert len(digested["sizes"]) == TINY.daily
    lines = discussion.post_lines(posted) + discussion.digest_lines(digested, TINY.daily)
    table = discussion.markdown_table(discussion.HEAD, [line.cells() for line in lines], {1})
    assert "copies in the Maildir" in table and "daily digests built and queued" in table
    assert "PROBLEM" not in table
