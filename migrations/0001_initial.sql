-- The spine: every inbound message as received, participants and their applications,
-- rounds, single-use conversation tokens and the durable outbox.
-- Times are ISO 8601 text in UTC.

CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    opens_at TEXT NOT NULL,
    closes_at TEXT,                -- NULL: accepting applications until matched
    term_start TEXT,
    term_end TEXT,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'matched', 'ended')),
    created_at TEXT NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    via TEXT NOT NULL,             -- smtp, ingest, imap
    envelope_from TEXT,
    envelope_to TEXT NOT NULL,     -- JSON list of recipients
    message_id TEXT,
    sender TEXT,
    dedupe_key TEXT NOT NULL,      -- Message-ID + From, or a hash of the content
    size INTEGER NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'received'
        CHECK (state IN ('received', 'handled', 'ignored', 'duplicate', 'quarantined')),
    outcome TEXT,                  -- what was decided: 'command:apply', 'ignored:auto-submitted', ...
    duplicate_of INTEGER REFERENCES messages (id),
    handled_at TEXT
);
CREATE INDEX messages_dedupe ON messages (dedupe_key);
CREATE INDEX messages_pending ON messages (state) WHERE state = 'received';

CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    country TEXT NOT NULL,         -- ISO 3166-1 alpha-2
    role TEXT NOT NULL,
    library_type TEXT NOT NULL,
    career_stage TEXT NOT NULL,
    interests TEXT NOT NULL,       -- lists are stored joined with "; "
    languages TEXT NOT NULL,
    time_zone TEXT NOT NULL,       -- IANA name or UTC+HH:MM
    contact_methods TEXT NOT NULL,
    contact_frequency TEXT NOT NULL,
    about_me TEXT NOT NULL,
    partner_wishes TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'applied' CHECK (status IN (
        'applied', 'waiting', 'matched', 'paused', 'left', 'completed', 'unreachable')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE applications (
    id INTEGER PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    applied_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (participant_id, round_id)
);

CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,         -- which conversation a reply continues
    address TEXT NOT NULL COLLATE NOCASE,
    payload TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    outgoing_message_id TEXT       -- so a reply's In-Reply-To finds the conversation too
);
CREATE INDEX tokens_outgoing ON tokens (outgoing_message_id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    template TEXT NOT NULL,
    recipient TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    message_id TEXT NOT NULL,
    inbound_id INTEGER REFERENCES messages (id),
    raw BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    sent_at TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
