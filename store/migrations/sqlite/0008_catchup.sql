-- Catch-up after downtime. watermarks holds, per conversation, the newest
-- message ts the daemon has handled (live or caught up); daemon_state holds
-- when a daemon last had a connection, and whether it stopped cleanly; names
-- caches conversation and user names for the CLI and alerts.
CREATE TABLE watermarks (
    channel    TEXT    PRIMARY KEY,
    ts         TEXT    NOT NULL, -- Slack ts, "1700000000.000100"
    updated_at INTEGER NOT NULL
);
CREATE TABLE daemon_state (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE names (
    kind       TEXT    NOT NULL CHECK (kind IN ('conversation', 'user')),
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
