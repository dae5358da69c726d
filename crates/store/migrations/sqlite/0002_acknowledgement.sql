-- Acknowledgement and the response-time target (playbook: P1 15 min, P2 30 min, P3 2 h,
-- P4 24 h). ms since the Unix epoch, UTC.
ALTER TABLE incidents ADD COLUMN ack_due_at INTEGER;
ALTER TABLE incidents ADD COLUMN acked_at INTEGER;
ALTER TABLE incidents ADD COLUMN acked_by TEXT;
-- set once, in the transaction that writes the breach's timeline event
ALTER TABLE incidents ADD COLUMN ack_breached_at INTEGER;
