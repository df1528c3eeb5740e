-- laxmon schema v3 (SQLite): this database's installation id.
-- Never edit an applied migration, add a new one.

-- 128 random bits as 32 hex digits, made once, by the migration runner in
-- the same locked transaction that first migrates the database, and never
-- changed: the first part of every notification's Message-ID and
-- Idempotency-Key, so a fresh database or a second installation never
-- repeats an id a mail system or gateway has seen. Exactly one row.
CREATE TABLE installation (
    single      INTEGER PRIMARY KEY CHECK (single = 1),
    id          TEXT NOT NULL CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    created_at  TEXT NOT NULL
);
