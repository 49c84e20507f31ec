-- Whether a message proved its sender (a reply to a live token of theirs, or a trusted
-- DKIM signature): the answer limits count proven and unproven mail apart, so that mail
-- forged in someone's name can't use up the limit their own mail is answered under.
ALTER TABLE messages ADD COLUMN proven INTEGER NOT NULL DEFAULT 0;
