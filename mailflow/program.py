"""The running program: configuration, the store, templates and form rules, opened once.

One Program per thread (it holds a SQLite connection). Opening it applies pending
migrations, so every command works on a new MAILFLOW_HOME.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime

import sqlite_utils

from mailflow import store
from mailflow.config import Config
from mailflow.model import coordinators
from mailflow.model.rounds import open_round
from mailflow.read import form
from mailflow.send import signatures
from mailflow.send.render import Renderer


class Program:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: sqlite_utils.Database = store.connect(config.db)
        self.renderer = Renderer(config.templates)
        self.renderer.check()
        self.choices = form.load_choices(config.rules)
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

    def now(self) -> datetime:
        return self.config.clock()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.conn.close()
