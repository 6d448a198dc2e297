-- Several daemons on one database (replicas); see the SQLite migration of
-- the same number for what each part is for.
ALTER TABLE deletions ADD COLUMN claim_token TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_token TEXT COLLATE "C" NOT NULL DEFAULT '';

CREATE TABLE instances (
    id             TEXT COLLATE "C" PRIMARY KEY,
    host           TEXT COLLATE "C" NOT NULL DEFAULT '',
    pid            INTEGER NOT NULL DEFAULT 0,
    started_at     BIGINT  NOT NULL,
    heartbeat_at   BIGINT  NOT NULL,
    connections    INTEGER NOT NULL DEFAULT 0,
    last_connected BIGINT  NOT NULL DEFAULT 0,
    clean          INTEGER NOT NULL DEFAULT 0 CHECK (clean IN (0, 1)),
    stopped_at     BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO instances (id, started_at, heartbeat_at, last_connected, clean, stopped_at)
    SELECT 'before-replicas', 0, 0, CAST(c.value AS BIGINT),
           COALESCE((SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'clean'), 0), CAST(c.value AS BIGINT)
    FROM daemon_state c WHERE c.key = 'last_connected';

CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT COLLATE "C" NOT NULL,
    term       BIGINT NOT NULL DEFAULT 1,
    expires_at BIGINT NOT NULL
);
