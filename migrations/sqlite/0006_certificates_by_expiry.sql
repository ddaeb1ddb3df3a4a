-- A user's certificates by expiry (sqlite dialect; keep in step with the postgres dialect's 0006).
-- Every issue counts the user's unexpired certificates (the per-user limit) and the listing
-- shows only unexpired ones: with notAfter in the index, the count reads the index alone and
-- neither walks the user's expired certificates. It replaces the index by notBefore, whose
-- only use was the listing's order (a sort of at most the user's unexpired certificates).
CREATE INDEX IF NOT EXISTS certificates_user_expiry ON certificates (project_id, username, not_after);
DROP INDEX IF EXISTS certificates_user;
