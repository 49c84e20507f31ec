-- A message's handling has a time budget (MAILFLOW_HANDLING_BUDGET). What the budget's
-- alarm can't interrupt, the watchdog ends by killing the handling process; a message
-- whose handling died that way is handled after the rest of the mail, and one that died
-- twice is quarantined instead of being tried again. `attempts` counts the handlings of
-- a message that began and never finished (a row leaves 'received' when one finishes);
-- `timeouts` how many of those the watchdog ended, for the quarantine's reason.
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN timeouts INTEGER NOT NULL DEFAULT 0;
