-- Running for real: a hosted mailbox read over IMAP, and a relay that may die mid-send.

-- Each IMAP folder read (account: user@host:port/folder) and how far it has been read.
-- A new UIDVALIDITY means the folder was recreated: reading starts over, and the
-- Message-ID check of the pipeline keeps what was handled from acting twice.
CREATE TABLE imap_mailboxes (
    account TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL DEFAULT 0,
    checked_at TEXT NOT NULL
);

-- Every UID seen: the message it was stored as (none when it was too large to fetch) and
-- what became of it, so a message left in the folder is not fetched or reported again.
CREATE TABLE imap_messages (
    account TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    message_row INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    outcome TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (account, uidvalidity, uid)
);

-- The outbox gains two states. 'sending': claimed by the process delivering it;
-- `handed_at` is committed just before the final "." of DATA, so after a crash a row
-- without it is queued again (the relay never saw the message's end) and a row with it is
-- 'unconfirmed' (the relay may have it: RFC 1047) and never sent a second time unasked.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
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
    last_error, sent_at)
SELECT id, idempotency_key, created_at, template, recipient, envelope_from, message_id,
    inbound_id, raw, state, attempts, next_attempt_at, last_error, sent_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
