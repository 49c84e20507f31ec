-- When each recurring job last finished, for `mailflow status`: 'tick' (the rules ran to
-- the end), 'imap' (a pass over the mailbox). One row a role, overwritten each time, with
-- the process that wrote it. A row says only when the job last finished: a process
-- killed since leaves its row behind, so `status` judges a role by the row's age, and
-- the handling process by its lock (held while it lives, released by the kernel).
CREATE TABLE heartbeats (
    role TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    pid INTEGER NOT NULL
);
