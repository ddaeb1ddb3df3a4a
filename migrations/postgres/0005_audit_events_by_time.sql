-- Audit events by time alone (postgres dialect; keep in step with the other dialect's 0005): the
-- retention purge deletes the oldest events first, in batches, without scanning the table.
-- Building it blocks writes to audit_events (and so certificate issuance, whose event is written
-- in the same transaction) for as long as the build takes. On a large table, build it beforehand
-- without blocking, then upgrade; IF NOT EXISTS makes this migration a no-op:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_occurred ON audit_events (occurred_at_us, id);
-- (Not CONCURRENTLY here: it waits for every open transaction, among them the other replicas'
-- waits on the migration lock, and would deadlock replicas starting together.)
CREATE INDEX IF NOT EXISTS audit_events_occurred ON audit_events (occurred_at_us, id);
