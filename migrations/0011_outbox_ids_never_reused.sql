-- Outbox row ids are never reused. An erasure deletes rows, and the data-deleted farewell
-- is deleted once sent; without AUTOINCREMENT SQLite hands a deleted highest id to the next
-- message, whose Maildir file name (STAMP.MROW) may then be taken already by the old
-- copy (so the new one was never written) or be scrubbed with it.
-- SQLite cannot add AUTOINCREMENT in place: the table is rebuilt.
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    template TEXT NOT NULL,
    recipient TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    message_id TEXT NOT NULL,
    inbound_id INTEGER REFERENCES messages (id),
    raw BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'unconfirmed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    sent_at TEXT,
    handed_at TEXT
);
INSERT INTO outbox_new (id, idempotency_key, created_at, template, recipient,
    envelope_from, message_id, inbound_id, raw, state, attempts, next_attempt_at,
    last_error, sent_at, handed_at)
SELECT id, idempotency_key, created_at, template, recipient, envelope_from, message_id,
    inbound_id, raw, state, attempts, next_attempt_at, last_error, sent_at, handed_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_recipient_recent ON outbox (recipient, created_at);
-- The highest id ever used may belong to a row deleted before this migration; the Maildir
-- copies name the ids, so the sequence starts past every file that could still be there.
DELETE FROM sqlite_sequence WHERE name IN ('outbox', 'outbox_new');
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', CASE WHEN max(id) IS NULL THEN 0 ELSE max(id) + 1000 END FROM outbox;
