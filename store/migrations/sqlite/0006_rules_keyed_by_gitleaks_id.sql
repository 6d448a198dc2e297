-- Rules imported from gitleaks are keyed by their gitleaks id (source
-- 'gitleaks:ID'), so two gitleaks rules that share a regex keep their own
-- ids; every other rule stays unique by pattern. SQLite cannot drop the
-- UNIQUE constraint of a column, so the table is rebuilt, every row and id
-- kept (rules_generation is bumped by the insert trigger below only after
-- the copy; the daemon reloads once).
CREATE TABLE regexes_new (
    id              INTEGER PRIMARY KEY,
    pattern         TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at      INTEGER NOT NULL, -- unix milliseconds
    updated_at      INTEGER NOT NULL,
    source          TEXT    NOT NULL DEFAULT '', -- builtin:NAME, gitleaks:ID, file:NAME
    validator       TEXT    NOT NULL DEFAULT '',
    secret_group    INTEGER NOT NULL DEFAULT 0,  -- -1: the first group that matched
    entropy         REAL    NOT NULL DEFAULT 0,
    keywords        TEXT    NOT NULL DEFAULT '',
    allow_patterns  TEXT    NOT NULL DEFAULT '',
    stopwords       TEXT    NOT NULL DEFAULT '',
    action          TEXT    NOT NULL DEFAULT 'delete' CHECK (action IN ('delete', 'monitor')),
    disabled_reason TEXT    NOT NULL DEFAULT '',
    allowlists      TEXT    NOT NULL DEFAULT ''
);
INSERT INTO regexes_new (id, pattern, description, enabled, created_at, updated_at, source, validator, secret_group,
                         entropy, keywords, allow_patterns, stopwords, action, disabled_reason, allowlists)
    SELECT id, pattern, description, enabled, created_at, updated_at, source, validator, secret_group,
           entropy, keywords, allow_patterns, stopwords, action, disabled_reason, allowlists FROM regexes;
DROP TABLE regexes;
ALTER TABLE regexes_new RENAME TO regexes;
CREATE UNIQUE INDEX regexes_pattern ON regexes (pattern) WHERE source NOT LIKE 'gitleaks:%';
CREATE INDEX regexes_source ON regexes (source);
CREATE TRIGGER regexes_ai AFTER INSERT ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
CREATE TRIGGER regexes_au AFTER UPDATE ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
CREATE TRIGGER regexes_ad AFTER DELETE ON regexes BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
