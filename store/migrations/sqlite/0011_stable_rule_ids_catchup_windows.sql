-- securechat:foreign-keys-off (the regexes table is rebuilt; see applyMigration)
--
-- 1. Rule ids are never reused. Since migration 0006 regexes.id had no
-- AUTOINCREMENT, so after 'regex rm' of the newest rule the next rule took
-- its id and inherited its findings. The table is rebuilt with
-- AUTOINCREMENT, every row and id kept, and its sequence starts past every
-- id a rule, a finding or an allowlisted value has ever named.
-- defined_after_leak is the newest leak id when the rule got its current
-- definition: findings recorded before it are not this rule's (they were
-- found by a removed rule that had the same id, or by an older pattern),
-- and never justify a deletion. For the existing rules it is the newest
-- leak detected before the rule was created.
CREATE TABLE regexes_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    pattern            TEXT    NOT NULL,
    description        TEXT    NOT NULL DEFAULT '',
    enabled            INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at         INTEGER NOT NULL, -- unix milliseconds
    updated_at         INTEGER NOT NULL,
    source             TEXT    NOT NULL DEFAULT '', -- builtin:NAME, gitleaks:ID, file:NAME
    validator          TEXT    NOT NULL DEFAULT '',
    secret_group       INTEGER NOT NULL DEFAULT 0,  -- -1: the first group that matched
    entropy            REAL    NOT NULL DEFAULT 0,
    keywords           TEXT    NOT NULL DEFAULT '',
    allow_patterns     TEXT    NOT NULL DEFAULT '',
    stopwords          TEXT    NOT NULL DEFAULT '',
    action             TEXT    NOT NULL DEFAULT 'delete' CHECK (action IN ('delete', 'monitor')),
    disabled_reason    TEXT    NOT NULL DEFAULT '',
    allowlists         TEXT    NOT NULL DEFAULT '',
    tripped_reason     TEXT    NOT NULL DEFAULT '',
    trial_until        INTEGER NOT NULL DEFAULT 0,
    defined_after_leak INTEGER NOT NULL DEFAULT 0
);
INSERT INTO regexes_new (id, pattern, description, enabled, created_at, updated_at, source, validator, secret_group,
                         entropy, keywords, allow_patterns, stopwords, action, disabled_reason, allowlists,
                         tripped_reason, trial_until, defined_after_leak)
    SELECT r.id, r.pattern, r.description, r.enabled, r.created_at, r.updated_at, r.source, r.validator, r.secret_group,
           r.entropy, r.keywords, r.allow_patterns, r.stopwords, r.action, r.disabled_reason, r.allowlists,
           r.tripped_reason, r.trial_until,
           (SELECT COALESCE(MAX(l.id), 0) FROM leaks l WHERE l.detected_at < r.created_at)
    FROM regexes r;
DROP TABLE regexes;
ALTER TABLE regexes_new RENAME TO regexes;
DELETE FROM sqlite_sequence WHERE name IN ('regexes', 'regexes_new');
INSERT INTO sqlite_sequence (name, seq) VALUES ('regexes', MAX(
    (SELECT COALESCE(MAX(id), 0) FROM regexes),
    (SELECT COALESCE(MAX(regex_id), 0) FROM leaks),
    (SELECT COALESCE(MAX(regex_id), 0) FROM allowed_values)));
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

-- 2. Whether Slack lets securechat delete a leak's message: 0 for another
-- member's direct or group direct message (Slack answers
-- cant_delete_message whoever holds the token). Decided when the leak is
-- recorded; 'scan --enforce' never queues such a message. For the leaks
-- recorded before, the decision is rebuilt from what is known: a DM (D…)
-- or a conversation whose cached name is a group DM's (mpdm-…), unless its
-- message was queued for deletion then.
ALTER TABLE leaks ADD COLUMN deletable INTEGER NOT NULL DEFAULT 1 CHECK (deletable IN (0, 1));
UPDATE leaks SET deletable = 0
 WHERE deletion_id IS NULL
   AND (channel LIKE 'D%' OR EXISTS (SELECT 1 FROM names n WHERE n.kind = 'conversation' AND n.id = leaks.channel AND n.name LIKE 'mpdm-%'));

-- 3. Catch-up windows, durable as windows. A window is what a catch-up has
-- to read after a loss of the connection; per conversation, its lower
-- bound (oldest) stays fixed until every page down to it has been read, and
-- latest is how far down the pages have been read so far ('' = none yet).
-- A window is removed only when every conversation in it is done, so a
-- stop, a kill or a failed page resumes where it was.
CREATE TABLE catchup_windows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    since      INTEGER NOT NULL, -- unix ms: when the connection was lost
    exact      INTEGER NOT NULL CHECK (exact IN (0, 1)), -- the watermarks were exact (a clean stop)
    floor_ts   TEXT    NOT NULL, -- the look-back's bound: nothing older is read
    why        TEXT    NOT NULL, -- start, reconnect
    alerted    INTEGER NOT NULL DEFAULT 0, -- the outage alert was queued
    created_at INTEGER NOT NULL
);
CREATE TABLE catchup_progress (
    window_id INTEGER NOT NULL REFERENCES catchup_windows (id) ON DELETE CASCADE,
    channel   TEXT    NOT NULL,
    oldest    TEXT    NOT NULL,            -- read after this ts; fixed while the window is open
    latest    TEXT    NOT NULL DEFAULT '', -- read down to (exclusive); '' = from the top
    done      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (window_id, channel)
);
