"""The running program: configuration, the store, templates and the rules, opened once.

One Program per thread (it holds a SQLite connection). Opening it applies pending
migrations, so every command works on a new MAILFLOW_HOME. The rules files are read once
per process, by `Rules`, shared by the process's Programs: again only when a file changes,
never on every STOP or bounce.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import sqlite_utils

from mailflow import store
from mailflow.config import Config
from mailflow.model import coordinators
from mailflow.model.rounds import open_round
from mailflow.read import form
from mailflow.rulebook import Shelf, cadence, discussion, regions, term, topics, weights
from mailflow.rulebook.cadence import Cadence
from mailflow.rulebook.discussion import DiscussionRules
from mailflow.rulebook.regions import Regions
from mailflow.rulebook.topics import Topic
from mailflow.rulebook.weights import Weights
from mailflow.send import signatures
from mailflow.send.render import Renderer


class Rules(Shelf):
    """The files of a rules folder as values: each read at its first use, and again only
    after it changes, so that coordinators can still edit them while the program runs.
    A file written wrongly is a RulesError at each use until it is put right."""

    @property
    def cadence(self) -> Cadence:
        return self.get(cadence.FILE, cadence.load_cadence)

    @property
    def topics(self) -> tuple[Topic, ...]:
        return self.get(topics.FILE, topics.load_topics)

    @property
    def choices(self) -> form.Choices:
        return self.get("form.toml", form.load_choices)

    @property
    def weights(self) -> Weights:
        return self.get(weights.FILE, weights.load_weights)

    @property
    def regions(self) -> Regions:
        return self.get(regions.FILE, regions.load_regions)

    @property
    def term_months(self) -> int:
        return self.get(term.FILE, term.term_months)

    @property
    def discussion(self) -> DiscussionRules:
        return self.get(discussion.FILE, discussion.load_discussion)


_SHARED: dict[Path, Rules] = {}
_SHARED_LOCK = threading.Lock()


def rules_of(folder: Path) -> Rules:
    """The process's one Rules of `folder`: every Program (one per thread) shares it."""
    with _SHARED_LOCK:
        if folder not in _SHARED:
            _SHARED[folder] = Rules(folder)
        return _SHARED[folder]


class Program:
    def __init__(self, config: Config, *, helping: bool = False) -> None:
        """The program of `config`, its store brought up to date. `helping`: a process that
        makes mail for another one (`send.makers`), which has already brought the store
        up to date: nothing is written, and it waits for no lock."""
        self.config = config
        self.db: sqlite_utils.Database = store.connect(config.db)
        self.renderer = Renderer(config.templates)
        self.renderer.check()
        self.rules = rules_of(config.rules)
        # Read at the start, as it always was: a broken form.toml stops every command.
        _ = self.rules.choices
        if not helping:
            store.migrate(self.db, config.migrations, self.now())
            with store.transaction(self.db):
                open_round(self.db, self.now())
                coordinators.add_configured(self.db, config.coordinators, self.now())
        # MAILFLOW_DKIM_KEY: read once at start, so a wrong path stops the start, not a send.
        self.dkim_key: bytes | None = None
        if config.dkim_key:
            self.dkim_key = config.dkim_key.read_bytes()
            signatures.check_key(self.dkim_key, config.dkim_key)
        self.secret: str = self.db.execute(
            "SELECT value FROM settings WHERE key = 'message_id_secret'"
        ).fetchone()[0]

    @property
    def choices(self) -> form.Choices:
        return self.rules.choices

    def now(self) -> datetime:
        return self.config.clock()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.conn.close()
