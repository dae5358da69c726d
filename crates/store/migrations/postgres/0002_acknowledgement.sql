-- The PostgreSQL twin of migrations/sqlite/0002_acknowledgement.sql.
ALTER TABLE incidents ADD COLUMN ack_due_at BIGINT;
ALTER TABLE incidents ADD COLUMN acked_at BIGINT;
ALTER TABLE incidents ADD COLUMN acked_by TEXT;
ALTER TABLE incidents ADD COLUMN ack_breached_at BIGINT;
