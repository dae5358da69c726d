-- Post-incident reviews (playbook phase 5): one review per incident (its Markdown, edited
-- by people, and whether it is complete: completing it moves the incident to `reviewed`),
-- and the review's action items, tracked until done. Times are ms since the Unix epoch,
-- UTC; due dates are calendar days ('YYYY-MM-DD', UTC), so they compare as text.

CREATE TABLE reviews (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
    markdown    TEXT    NOT NULL,
    complete    INTEGER NOT NULL,          -- 1: the review is done (incident reviewed)
    updated_by  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE action_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    action      TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    due         TEXT,                      -- 'YYYY-MM-DD'; NULL: no due date
    priority    TEXT    NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    done        INTEGER NOT NULL,          -- 1 done
    runbook     TEXT,                      -- the runbook (script name) the item updates
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX action_items_incident ON action_items(incident_id, id);
-- the overdue list: open items by due date
CREATE INDEX action_items_open ON action_items(done, due);
