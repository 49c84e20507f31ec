-- Life events and the end of the term: pausing, leaving, erasure, rematches, reminders,
-- alerts to coordinators, the survey and invitations to the next round.

-- PAUSE [until DATE]: the status to return to, and when (NULL: until RESUME).
ALTER TABLE participants ADD COLUMN paused_until TEXT;
ALTER TABLE participants ADD COLUMN resume_status TEXT;

-- DELETE MY DATA leaves only this: a SHA-256 of the lower-cased address, so that the
-- program never writes to it again.
CREATE TABLE erased (
    address_hash TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
);

-- Alerts sent about a partnership, once each: reason 'no-word' (answers of 3) or
-- 'silent' (no answer from anyone for a while); `since` tells one silence from the next.
CREATE TABLE alerts (
    partnership_id INTEGER NOT NULL REFERENCES partnerships (id),
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (partnership_id, reason, since)
);

-- The end-of-term survey, answered by reply.
CREATE TABLE survey_answers (
    partnership_id INTEGER NOT NULL REFERENCES partnerships (id),
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    rating INTEGER CHECK (rating BETWEEN 1 AND 5),
    again INTEGER CHECK (again IN (0, 1)),
    comment TEXT NOT NULL DEFAULT '',
    answered_at TEXT NOT NULL,
    PRIMARY KEY (partnership_id, participant_id)
);

-- The invitation to a round, sent once to each person who finished an earlier term.
CREATE TABLE invitations (
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    participant_id INTEGER NOT NULL REFERENCES participants (id),
    sent_at TEXT NOT NULL,
    PRIMARY KEY (round_id, participant_id)
);

-- When a partnership ended or was dissolved, and why ('term', 'left', 'erased', ...).
ALTER TABLE partnerships ADD COLUMN ended_at TEXT;
ALTER TABLE partnerships ADD COLUMN ended_why TEXT;
-- When the term's end was handled for a participant (completed, or left early).
ALTER TABLE participants ADD COLUMN completed_at TEXT;

CREATE INDEX tokens_address ON tokens (address, purpose);
CREATE INDEX participants_status ON participants (status);
CREATE INDEX partnerships_state_end ON partnerships (state, term_end);
CREATE INDEX checkin_answers_partnership ON checkin_answers (partnership_id, answered_at);
