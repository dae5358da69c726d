-- Incidents are the projection of their timeline; the timeline is the truth.
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL,           -- the cause, e.g. node_down:rpc-1
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,           -- P1..P4
    status      TEXT    NOT NULL,           -- detected | resolved
    nodes       TEXT    NOT NULL,           -- JSON array of node names
    summary     TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,           -- JSON
    opened_at   INTEGER NOT NULL,           -- ms since the Unix epoch, UTC
    resolved_at INTEGER,
    updated_at  INTEGER NOT NULL
);

-- One open incident per cause, enforced by the database itself.
CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents(key) WHERE status <> 'resolved';
CREATE INDEX incidents_opened_at ON incidents(opened_at);

CREATE TABLE timeline_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    at          INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    data        TEXT    NOT NULL            -- JSON
);
CREATE INDEX timeline_events_incident ON timeline_events(incident_id, id);

-- The latest view of each node, and since when its height is unchanged (resumed on restart).
CREATE TABLE node_status (
    name         TEXT PRIMARY KEY,
    view         TEXT    NOT NULL,          -- JSON NodeView
    height       INTEGER,
    height_since INTEGER,
    updated_at   INTEGER NOT NULL
);
