-- The SMTP daemon writes each message to a spool file before its 250; the handling process
-- moves it into `messages` and handles it in one transaction, then removes the file. The
-- file's name is kept, so a file whose removal was lost to a crash is recognised as
-- already stored and not stored again.
ALTER TABLE messages ADD COLUMN spool TEXT;
CREATE UNIQUE INDEX messages_spool ON messages (spool) WHERE spool IS NOT NULL;
