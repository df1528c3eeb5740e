-- laxmon schema v3 (PostgreSQL): this database's installation id.
-- Never edit an applied migration, add a new one.

-- 128 random bits as 32 hex digits, made once, by the migration runner in
-- the same locked transaction that first migrates the database, and never
-- changed: the first part of every notification's Message-ID and
-- Idempotency-Key, so a fresh database or a second installation never
-- repeats an id a mail system or gateway has seen. Exactly one row.
CREATE TABLE installation (
    single      boolean PRIMARY KEY DEFAULT true CHECK (single),
    id          text NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
