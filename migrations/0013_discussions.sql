-- A round's discussion by mail, each person's choice of how much of it arrives, the
-- coordinators' holds, and the opt-in peer network that outlasts a partnership.

-- One post to a round's discussion. Its text is what the author wrote above the quote;
-- the author's address never leaves the store (posts go out under name and country).
CREATE TABLE discussion_posts (
    id INTEGER PRIMARY KEY,
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    author_email TEXT NOT NULL COLLATE NOCASE,
    author_name TEXT NOT NULL,
    author_country TEXT NOT NULL DEFAULT '',   -- ISO 3166-1 alpha-2; '' for a coordinator
    facilitator INTEGER NOT NULL DEFAULT 0 CHECK (facilitator IN (0, 1)),
    subject TEXT NOT NULL,                     -- without the [Round N] prefix
    body TEXT NOT NULL,
    dropped TEXT NOT NULL DEFAULT '',          -- "; "-joined names of attachments left out
    message_id TEXT NOT NULL UNIQUE,           -- one Message-ID for every copy of the post
    parent_id INTEGER REFERENCES discussion_posts (id) ON DELETE SET NULL,
    thread TEXT NOT NULL DEFAULT '',           -- the References it goes out with, space-joined
    inbound_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    state TEXT NOT NULL CHECK (state IN ('unconfirmed', 'held', 'published', 'rejected')),
    created_at TEXT NOT NULL,
    published_at TEXT,
    decided_by TEXT,                           -- the coordinator who approved or rejected it
    reason TEXT NOT NULL DEFAULT '',           -- why it was held, or rejected
    fanned_to INTEGER NOT NULL DEFAULT 0,      -- copies queued up to this participant id ...
    fanned_out_at TEXT                         -- ... and when the last copy was queued
);
CREATE INDEX discussion_posts_round ON discussion_posts (round_id, state, published_at);
CREATE INDEX discussion_posts_author ON discussion_posts (author_email, created_at);
CREATE INDEX discussion_posts_pending ON discussion_posts (state) WHERE fanned_out_at IS NULL;

-- How much of the discussion a participant receives; no row: the rules' default.
CREATE TABLE discussion_choices (
    participant_id INTEGER PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    mode TEXT NOT NULL CHECK (mode IN ('every', 'daily', 'weekly', 'quiet')),
    changed_at TEXT NOT NULL
);

-- The posts a participant's last digest covered: published up to this time.
CREATE TABLE discussion_digests (
    participant_id INTEGER PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    through TEXT NOT NULL
);

-- People whose posts wait for a coordinator's approval (HOLD address).
CREATE TABLE discussion_holds (
    email TEXT PRIMARY KEY COLLATE NOCASE,
    held_by TEXT NOT NULL,
    held_at TEXT NOT NULL
);

-- Rounds whose discussion a coordinator turned off (DISCUSSION OFF).
CREATE TABLE discussion_off (
    round_id INTEGER PRIMARY KEY REFERENCES rounds (id),
    turned_off_by TEXT NOT NULL,
    turned_off_at TEXT NOT NULL
);

-- The peer network: people who chose to be found by their peers (NETWORK YES), with the
-- address they chose to share.
CREATE TABLE network (
    participant_id INTEGER PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    shared_address TEXT NOT NULL,
    listed_at TEXT NOT NULL
);
