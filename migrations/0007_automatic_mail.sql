-- Mail that must not be answered, or not again: answer limits against loops and floods
-- (how many answers a sender had lately, whether the same words keep coming back),
-- out-of-office replies to check-ins kept as such, and bounces scored per address.

-- The new text of each message (above the quote), hashed when it is handled.
ALTER TABLE messages ADD COLUMN reply_digest TEXT;
CREATE INDEX messages_sender_recent ON messages (sender, received_at);
CREATE INDEX outbox_recipient_recent ON outbox (recipient, created_at);

-- Out-of-office replies to a check-in: not an answer (the check-in stays open and its
-- reminder still goes), but worth knowing when a partnership seems silent.
CREATE TABLE away_notices (
    id INTEGER PRIMARY KEY,
    partnership_id INTEGER NOT NULL REFERENCES partnerships (id),
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    number INTEGER NOT NULL,       -- which check-in of the partnership
    message_row INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX away_notices_partnership ON away_notices (partnership_id);

-- Bounces. Outgoing mail has a per-recipient return path (VERP) local+bounce-CODE@domain;
-- CODE is keyed with the installation's secret, so only a real bounce can name the address.
CREATE TABLE bounce_codes (
    code TEXT PRIMARY KEY,
    address TEXT NOT NULL COLLATE NOCASE
);
CREATE INDEX bounce_codes_address ON bounce_codes (address);

-- Each address's bounce score, fading with time (rules/schedule.toml [bounce]).
CREATE TABLE bounce_scores (
    address TEXT PRIMARY KEY COLLATE NOCASE,
    score REAL NOT NULL,
    bounces INTEGER NOT NULL,
    last_kind TEXT NOT NULL,       -- 'permanent' or 'temporary'
    last_detail TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
