-- Messages. Every timeline event is written with routed = 0 in its own transaction: the
-- durable intent to tell people. The leader routes unrouted events into the outbox (one
-- row per message and channel) and marks them routed, in one transaction, and a dispatcher
-- sends the rows. Events from before this migration are history: not sent.
ALTER TABLE timeline_events ADD COLUMN routed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX timeline_events_unrouted ON timeline_events(id) WHERE routed = 0;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     INTEGER NOT NULL REFERENCES incidents(id),
    event_id        INTEGER NOT NULL REFERENCES timeline_events(id),
    channel         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,           -- alert, update, severity, page, resolved, review
    idempotency_key TEXT    NOT NULL UNIQUE,    -- incident, event and channel
    notification    TEXT    NOT NULL,           -- JSON: the incident and event it tells of
    status          TEXT    NOT NULL,           -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    fallback_of     INTEGER REFERENCES outbox(id),
    fallback_index  INTEGER NOT NULL DEFAULT 0  -- the route's next fallback channel
);
CREATE INDEX outbox_pending ON outbox(incident_id, channel, id) WHERE status = 'pending';
