-- A message's handling has a time budget (MAILFLOW_HANDLING_BUDGET). What the budget's
-- alarm can't interrupt, the watchdog ends by killing the handling process; a message
-- whose handling died that way is handled after the rest of the mail, and one that died
-- twice is quarantined instead of being tried again. `attempts` counts the handlings of
-- a message begun (committed before one begins, or for a spool file after it died), so
-- while the row is 'received' each of them died; `timeouts`: how many the watchdog ended.
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN timeouts INTEGER NOT NULL DEFAULT 0;
