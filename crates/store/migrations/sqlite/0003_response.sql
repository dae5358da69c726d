-- The response engine: phases, people, deadlines, silences, the audit log and the leader's
-- lease. Every deadline is an absolute time (ms since the Unix epoch, UTC) on the incident.

-- Bumped by every write of an incident: a write computed from an older version is refused.
ALTER TABLE incidents ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- The worst severity a detector reported (people may set `severity` lower).
ALTER TABLE incidents ADD COLUMN detected_severity TEXT;
UPDATE incidents SET detected_severity = severity;
-- Since when the condition is seen clear (NULL while it fires).
ALTER TABLE incidents ADD COLUMN cleared_at INTEGER;
-- Who holds which role: JSON object {"IC": "alice", ...}.
ALTER TABLE incidents ADD COLUMN roles TEXT NOT NULL DEFAULT '{}';
ALTER TABLE incidents ADD COLUMN escalation_policy TEXT;
ALTER TABLE incidents ADD COLUMN escalation_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN escalation_due_at INTEGER;
ALTER TABLE incidents ADD COLUMN last_update_at INTEGER;
ALTER TABLE incidents ADD COLUMN update_due_at INTEGER;

-- Open means not resolved: `resolved_at` is set for resolved and reviewed incidents alike.
DROP INDEX incidents_one_open_per_key;
CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents(key) WHERE resolved_at IS NULL;

-- Maintenance windows and silences: matching incidents are recorded but page nobody.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    node       TEXT,                        -- NULL: every node
    kind       TEXT,                        -- NULL: every kind
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX silences_ends_at ON silences(ends_at);

-- Every mutation made by a person: who, what, when, from where.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    who         TEXT    NOT NULL,
    origin      TEXT    NOT NULL,           -- "api 10.0.0.7:51234", "cli"
    action      TEXT    NOT NULL,           -- acknowledge, transition, silence.create, ...
    incident_id INTEGER,
    detail      TEXT    NOT NULL            -- JSON
);

-- The leader's lease: one instance at a time runs detection and deadlines. `epoch` grows at
-- every change of holder; every write of the leader checks it in its own transaction.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
