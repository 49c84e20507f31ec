-- A coordinator's BROADCAST, kept once the command is carried out: its copies are queued
-- after that transaction has committed, in batches that hold the write lock briefly
-- (mailflow/app/broadcasts.py), before each delivery pass, so that mail coming in never
-- waits for a broadcast to everyone. `after`: the last participant id queued so far.
CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY,
    source_row INTEGER NOT NULL,       -- the coordinator's message: each copy's key names it
    subject TEXT NOT NULL,
    text TEXT NOT NULL,
    sender TEXT NOT NULL,              -- the coordinator, named in the text
    countries TEXT,                    -- JSON list of a country coordinator's; NULL: everyone
    after INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX broadcasts_pending ON broadcasts (done_at);
