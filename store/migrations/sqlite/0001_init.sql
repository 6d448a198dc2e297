-- Regular expressions the admins keep. A pattern is stored once.
CREATE TABLE regexes (
    id          INTEGER PRIMARY KEY,
    pattern     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL, -- unix milliseconds
    updated_at  INTEGER NOT NULL
);

-- One row a process-wide counter: bumped by triggers whenever the regex table
-- changes, so a running daemon notices edits made by the CLI (or by hand).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('rules_generation', 1);

CREATE TRIGGER regexes_ai AFTER INSERT ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
CREATE TRIGGER regexes_au AFTER UPDATE ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
CREATE TRIGGER regexes_ad AFTER DELETE ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;

-- One row per leaking message that is to be deleted: the durable work queue of
-- the deleter. UNIQUE(channel, ts) makes a redelivered event a no-op.
CREATE TABLE deletions (
    id              INTEGER PRIMARY KEY,
    channel         TEXT    NOT NULL,
    ts              TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'deleted', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (channel, ts)
);
CREATE INDEX deletions_due ON deletions (status, next_attempt_at);

-- One row per finding. Only a masked excerpt and byte offsets are kept, never
-- the matched text. regex_id is kept after the regex is removed (no foreign
-- key), with the description it had, so the history stays readable.
-- UNIQUE(channel, ts, regex_id, start_offset, end_offset) makes redelivery a no-op.
CREATE TABLE leaks (
    id           INTEGER PRIMARY KEY,
    channel      TEXT    NOT NULL,
    user_id      TEXT    NOT NULL DEFAULT '',
    ts           TEXT    NOT NULL,
    regex_id     INTEGER NOT NULL,
    rule         TEXT    NOT NULL DEFAULT '',
    excerpt      TEXT    NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset   INTEGER NOT NULL,
    detected_at  INTEGER NOT NULL,
    deletion_id  INTEGER REFERENCES deletions (id) ON DELETE RESTRICT,
    UNIQUE (channel, ts, regex_id, start_offset, end_offset)
);
CREATE INDEX leaks_detected ON leaks (detected_at);
CREATE INDEX leaks_deletion ON leaks (deletion_id);
