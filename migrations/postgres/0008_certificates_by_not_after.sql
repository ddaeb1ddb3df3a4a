-- Certificates by expiry alone (postgres dialect; keep in step with the sqlite dialect's 0007):
-- the metrics count the certificates expiring within 7 and 30 days, every project's, as a range
-- on this index, reading only the certificates in the window (the per-user index of 0006 leads
-- with the project and cannot answer a range over all projects).
-- Building it blocks writes to certificates for as long as the build takes. On a large table,
-- build it beforehand without blocking, then upgrade; IF NOT EXISTS makes this migration a no-op:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS certificates_by_not_after ON certificates (not_after);
CREATE INDEX IF NOT EXISTS certificates_by_not_after ON certificates (not_after);
