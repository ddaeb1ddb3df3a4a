-- Audit events by time alone (sqlite dialect; keep in step with the other dialect's 0005): the
-- retention purge deletes the oldest events first, in batches, without scanning the table.
CREATE INDEX IF NOT EXISTS audit_events_occurred ON audit_events (occurred_at_us, id);
