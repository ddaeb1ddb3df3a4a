-- Certificates by expiry alone (sqlite dialect; keep in step with the postgres dialect's 0007):
-- the metrics count the certificates expiring within 7 and 30 days, every project's, as a range
-- on this index, reading only the certificates in the window (the per-user index of 0006 leads
-- with the project and cannot answer a range over all projects).
CREATE INDEX IF NOT EXISTS certificates_by_not_after ON certificates (not_after);
