-- Several daemons on one database (replicas).
--
-- 1. Claims are fenced. A claim writes a new token on the row; an attempt's
-- outcome is recorded only with the token of the claim that made it, so a
-- daemon that was paused past its lease (and whose deletion another daemon
-- claimed since) cannot overwrite the newer attempt's outcome.
ALTER TABLE deletions ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';

-- 2. Each running daemon is one row, renewed while it runs: its own last
-- Socket Mode connection and whether it stopped cleanly (this was one
-- shared pair of keys in daemon_state, which two daemons overwrote).
CREATE TABLE instances (
    id             TEXT    PRIMARY KEY,
    host           TEXT    NOT NULL DEFAULT '',
    pid            INTEGER NOT NULL DEFAULT 0,
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    connections    INTEGER NOT NULL DEFAULT 0, -- Socket Mode connections up at the last heartbeat
    last_connected INTEGER NOT NULL DEFAULT 0, -- unix ms; 0: never connected
    clean          INTEGER NOT NULL DEFAULT 0 CHECK (clean IN (0, 1)),
    stopped_at     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO instances (id, started_at, heartbeat_at, last_connected, clean, stopped_at)
    SELECT 'before-replicas', 0, 0, CAST(c.value AS INTEGER),
           COALESCE((SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'clean'), 0), CAST(c.value AS INTEGER)
    FROM daemon_state c WHERE c.key = 'last_connected';

-- 3. Leases: the singleton jobs (catch-up, trial endings, pruning, name
-- refresh) run on the daemon holding the 'leader' lease. The holder renews
-- it; another daemon takes it over once it has expired. term counts the
-- holders, so a stale leader can tell it was replaced.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    term       INTEGER NOT NULL DEFAULT 1,
    expires_at INTEGER NOT NULL -- unix ms, by the database's clock
);
