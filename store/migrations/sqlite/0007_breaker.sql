-- The runaway-rule breaker. scan_counts holds how many messages each daemon
-- scanned per 10-second bucket, so that every daemon on the database sees
-- the same share of messages a rule flags. regexes.tripped_reason says why
-- the breaker switched a rule to monitor ('' when it did not).
CREATE TABLE scan_counts (
    bucket  INTEGER NOT NULL, -- unix milliseconds, a multiple of 10,000
    daemon  TEXT    NOT NULL, -- one id per running daemon
    scanned INTEGER NOT NULL,
    PRIMARY KEY (bucket, daemon)
);
ALTER TABLE regexes ADD COLUMN tripped_reason TEXT NOT NULL DEFAULT '';
