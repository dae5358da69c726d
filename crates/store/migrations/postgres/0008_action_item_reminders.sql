-- The PostgreSQL twin of migrations/sqlite/0008_action_item_reminders.sql.
-- Action items, tracked after the review: when each was marked done (a runbook's last
-- review is the latest of these among the items pointing at it), and the UTC day
-- ('YYYY-MM-DD') of its last overdue reminder, so the leader reminds at most once a day
-- per item whatever restarts or takes over. Items done before this migration count as done
-- when they were last updated.

ALTER TABLE action_items ADD COLUMN done_at BIGINT;
ALTER TABLE action_items ADD COLUMN reminded_on TEXT;
UPDATE action_items SET done_at = updated_at WHERE done = 1;
-- `neo-ir runbooks`: the items pointing at a runbook
CREATE INDEX action_items_runbook ON action_items(runbook);
