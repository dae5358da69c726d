-- Drills (issue 7): one row per drill run, simulated or on a designated test node. While a
-- drill is `running` (and not past `expires_at`, so a drill whose process died stops
-- counting), the leading watcher marks the incidents it opens on the drill's nodes as drill
-- incidents (`drill:` key, `evidence.drill`). The score is the DrillScore as JSON. Times are
-- ms since the Unix epoch, UTC.

CREATE TABLE drills (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario     TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,          -- the incident kind a correct classification gives
    target       TEXT    NOT NULL,          -- 'simulated', or the test node's name
    nodes        TEXT    NOT NULL,          -- JSON array of node names; [] = every node
    commander    TEXT,                      -- the drill's incident commander
    auto_respond INTEGER NOT NULL,          -- 1: a bot responded (scores the pipeline)
    status       TEXT    NOT NULL CHECK (status IN ('running', 'scored', 'aborted')),
    started_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,          -- a running drill marks nothing after this
    seen_at      INTEGER,                   -- when a leading watcher first read it
    ended_at     INTEGER,
    score        TEXT,                      -- the DrillScore (JSON) once scored
    points       INTEGER,
    note         TEXT                       -- why it was aborted
);
CREATE INDEX drills_running ON drills(status, expires_at);

-- Reminders of scheduled drills sent, per drill day ('YYYY-MM-DD', UTC) and channel: each
-- is sent once; a channel that failed is tried again the next round.
CREATE TABLE drill_reminders (
    drill_day TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    sent_at   INTEGER NOT NULL,
    PRIMARY KEY (drill_day, channel)
);
