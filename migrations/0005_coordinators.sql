-- Coordinators and what they did: roles, the audit of every command, and the secret that
-- keeps outgoing Message-IDs unguessable.

-- Who may send commands. `countries`: ISO 3166 codes separated by spaces; empty for a
-- program-wide coordinator. `source`: 'config' (MAILFLOW_COORDINATORS, added at start),
-- 'command' (COORDINATOR ADD) or 'cli' (`mailflow coordinator add`).
CREATE TABLE coordinators (
    email TEXT PRIMARY KEY,
    countries TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);

-- Every command a coordinator (or anyone posing as one) sent: who, how the sender was
-- proven ('own address' for read-only answers, 'confirmed by reply', 'dkim:DOMAIN',
-- 'awaiting confirmation', 'cancelled', 'refused: ...'), and what it did.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    command TEXT NOT NULL,
    proof TEXT NOT NULL,
    changed INTEGER NOT NULL DEFAULT 0 CHECK (changed IN (0, 1)),
    outcome TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);

-- Values the installation makes once. 'message_id_secret' keys outgoing Message-IDs: they
-- are stable for one idempotency key (a retry composes the same message), but a sender who
-- knows the key's shape can't compute them and so can't answer a conversation by
-- In-Reply-To without having received its mail.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO settings (key, value) VALUES ('message_id_secret', lower(hex(randomblob(32))));
