-- Runbooks that run: every run of a playbook script (its plan, step results and report),
-- the checklist items people marked on an incident, and files attached to an incident
-- (a diagnostics bundle, a run's output). Times are ms since the Unix epoch, UTC.

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    script       TEXT    NOT NULL,
    args         TEXT    NOT NULL,          -- JSON array of the script's arguments
    node         TEXT,                      -- NULL: a network-wide script
    incident_id  INTEGER REFERENCES incidents(id),
    status       TEXT    NOT NULL CHECK (status IN ('dry_run', 'awaiting_approval',
                         'running', 'succeeded', 'failed', 'refused')),
    requested_by TEXT    NOT NULL,
    approved_by  TEXT,
    approved_at  INTEGER,                -- when approved_by was set
    plan         TEXT    NOT NULL,          -- JSON Plan
    results      TEXT    NOT NULL,          -- JSON array of StepResult
    report       TEXT    NOT NULL,          -- JSON
    summary      TEXT    NOT NULL,
    automatic    INTEGER NOT NULL,          -- 1: started by an auto-remediation policy
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER                    -- set once the status is final
);
CREATE INDEX runs_incident ON runs(incident_id);
-- the circuit breaker: a node's automatic runs in a window
CREATE INDEX runs_node_automatic ON runs(node, automatic, created_at);
-- approvals waiting, runs left running by a process that died
CREATE INDEX runs_status ON runs(status);

-- One mark per checklist item and incident: the latest person's word (done or undone).
CREATE TABLE checklist_marks (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    key         TEXT    NOT NULL,           -- the checklist item's stable key
    done        INTEGER NOT NULL,           -- 1 done, 0 undone
    marked_by   TEXT    NOT NULL,
    marked_at   INTEGER NOT NULL,
    PRIMARY KEY (incident_id, key)
);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  INTEGER NOT NULL REFERENCES incidents(id),
    run_id       INTEGER REFERENCES runs(id),
    name         TEXT    NOT NULL,          -- a file name, never a path
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,          -- bytes, so listing never reads the content
    sha256       TEXT    NOT NULL,          -- lowercase hex of the content
    content      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX attachments_incident ON attachments(incident_id, id);
