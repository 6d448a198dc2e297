-- securechat:foreign-keys-off (the deletions table is rebuilt; see applyMigration)
--
-- Safe enforcement: a deletion can be held (monitor mode: kept, not carried
-- out) or cancelled (by an admin, or because no enforcing rule justifies it
-- any more), with when, why and by whom. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt (SQLite's documented
-- twelve-step procedure), keeping every row and id.
CREATE TABLE deletions_new (
    id              INTEGER PRIMARY KEY,
    channel         TEXT    NOT NULL,
    ts              TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'held', 'cancelled', 'deleted', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    held_at         INTEGER,                    -- when it was last held
    hold_reason     TEXT    NOT NULL DEFAULT '', -- e.g. monitor mode
    cancelled_at    INTEGER,
    cancelled_by    TEXT    NOT NULL DEFAULT '', -- the OS user, or securechat for a rule change
    cancel_reason   TEXT    NOT NULL DEFAULT '',
    UNIQUE (channel, ts)
);
INSERT INTO deletions_new (id, channel, ts, status, attempts, last_error, next_attempt_at, created_at, updated_at)
    SELECT id, channel, ts, status, attempts, last_error, next_attempt_at, created_at, updated_at FROM deletions;
DROP TABLE deletions;
ALTER TABLE deletions_new RENAME TO deletions;
CREATE INDEX deletions_due ON deletions (status, next_attempt_at);

-- A stored rule the current limits refuse (e.g. a program too large) is
-- disabled with the reason, shown by 'regex list', never dropped silently.
ALTER TABLE regexes ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';

-- The database's kind and the demo's marker live in meta.
INSERT OR IGNORE INTO meta (key, value) VALUES ('demo', 0);

-- Excerpts stored by earlier releases showed more of a secret than the
-- current masking policy allows; the first writable open re-masks them
-- (RemaskExcerpts) and clears this.
INSERT OR IGNORE INTO meta (key, value) VALUES ('remask_pending', 1);
