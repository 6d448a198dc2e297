-- Slack-native actions (issue 20).
--
-- 1. Reports: what the author of a removed message said about it from the
-- notice's buttons: "Not a secret" (with an optional reason; it goes to
-- the admins, and never allows or restores anything by itself) or "I've
-- rotated it". One per leak and person.
CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    leak_id    INTEGER NOT NULL REFERENCES leaks (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('not_secret', 'rotated')),
    reason     TEXT    NOT NULL DEFAULT '',
    -- open: waits for an admin (not_secret); noted: needs nobody (rotated);
    -- kept: an admin kept the message deleted; allowed: an admin allowed the value.
    status     TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'noted', 'kept', 'allowed')),
    created_at INTEGER NOT NULL,
    closed_by  TEXT    NOT NULL DEFAULT '',
    closed_at  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (leak_id, user_id)
);
CREATE INDEX reports_status ON reports (status);

-- 2. The audit log: every change an admin made, from the CLI (os:USER) or
-- Slack (slack:U…), and when. once_key, when set, makes an entry (and what
-- was done with it) happen once: the same click twice, or two admins at
-- once, change one thing once.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT '',
    once_key TEXT    UNIQUE
);
CREATE INDEX audit_target ON audit (target);
