-- What happens on a hit: a rule's action, what was done with each leak, a
-- keyed fingerprint of the matched value (for allowlisting a value without
-- storing it), allowlisted values, and a durable outbox of notifications.
ALTER TABLE regexes ADD COLUMN action TEXT NOT NULL DEFAULT 'delete' CHECK (action IN ('delete', 'monitor'));

ALTER TABLE leaks ADD COLUMN action    TEXT NOT NULL DEFAULT 'delete'; -- delete | monitor, as decided at detection
ALTER TABLE leaks ADD COLUMN value_mac TEXT NOT NULL DEFAULT '';       -- hex HMAC-SHA256 of the matched value; '' without a key

-- Values that are not leaks (a test card, a documented sample key), by
-- their keyed fingerprint only.
CREATE TABLE allowed_values (
    id         INTEGER PRIMARY KEY,
    mac        TEXT    NOT NULL UNIQUE,
    regex_id   INTEGER NOT NULL,
    leak_id    INTEGER NOT NULL,
    excerpt    TEXT    NOT NULL,
    note       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE TRIGGER allowed_values_ai AFTER INSERT ON allowed_values BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;
CREATE TRIGGER allowed_values_ad AFTER DELETE ON allowed_values BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'rules_generation';
END;

-- Notifications to send (author notices, admin alerts, webhooks), retried
-- from here like deletions.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('author', 'alert', 'webhook')),
    payload         TEXT    NOT NULL, -- JSON; masked data only
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
