-- The rules engine: for each member of a partnership and each kind of scheduled mail
-- (check-in, topic), the number of the latest one sent, so that a tick knows in one
-- lookup what is new and never sends the same one twice.

CREATE TABLE scheduled (
    partnership_id INTEGER NOT NULL REFERENCES partnerships (id),
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    kind TEXT NOT NULL,              -- 'checkin', 'topic'
    number INTEGER NOT NULL,         -- 1 for the first of its kind in this partnership
    due_at TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (partnership_id, participant_id, kind)
);

-- Answers to check-ins: 1 regular contact, 2 some contact, 3 no word from my partner,
-- 4 I want to leave.
CREATE TABLE checkin_answers (
    id INTEGER PRIMARY KEY,
    partnership_id INTEGER NOT NULL REFERENCES partnerships (id),
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    number INTEGER NOT NULL,         -- which check-in of the partnership
    answer INTEGER NOT NULL CHECK (answer BETWEEN 1 AND 4),
    answered_at TEXT NOT NULL,
    UNIQUE (partnership_id, participant_id, number)
);
