-- History sweeps (securechat scan). leaks.origin says how a leak was found:
-- 'live' (an event, or the catch-up after downtime) or 'history' (a sweep,
-- which records and deletes nothing until 'scan --enforce'). sweeps holds
-- one row per sweep, keyed by what was asked; sweep_cursors how far each
-- conversation has been read, so that an interrupted sweep continues.
ALTER TABLE leaks ADD COLUMN origin TEXT NOT NULL DEFAULT 'live' CHECK (origin IN ('live', 'history'));
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE, -- what was asked: since, until, channels, types
    since_ts    TEXT    NOT NULL,        -- Slack ts bounds of the window
    until_ts    TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,                 -- NULL while not finished
    messages    INTEGER NOT NULL DEFAULT 0,
    findings    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sweep_cursors (
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    channel  TEXT    NOT NULL,
    latest   TEXT    NOT NULL DEFAULT '', -- read down to (exclusive); '' = from until_ts
    done     INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, channel)
);
