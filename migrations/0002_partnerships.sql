-- Matching: partnerships made by a round's matching (or by hand), with their term,
-- and the rounds' match date and the moment they were matched.

ALTER TABLE rounds ADD COLUMN match_at TEXT;     -- the planned match date, if announced
ALTER TABLE rounds ADD COLUMN matched_at TEXT;

CREATE TABLE partnerships (
    id INTEGER PRIMARY KEY,
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    member_a INTEGER NOT NULL REFERENCES participants (id),
    member_b INTEGER NOT NULL REFERENCES participants (id),
    member_c INTEGER REFERENCES participants (id),   -- the one group of three, if any
    term_start TEXT NOT NULL,
    term_end TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'ended', 'dissolved')),
    score INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '',                -- "; "-joined phrases shown to people
    made_by TEXT NOT NULL DEFAULT 'matching',        -- 'matching' or a coordinator's address
    created_at TEXT NOT NULL
);
CREATE INDEX partnerships_a ON partnerships (member_a);
CREATE INDEX partnerships_b ON partnerships (member_b);
CREATE INDEX partnerships_c ON partnerships (member_c);
CREATE INDEX partnerships_round ON partnerships (round_id, state);
CREATE INDEX applications_round ON applications (round_id);
