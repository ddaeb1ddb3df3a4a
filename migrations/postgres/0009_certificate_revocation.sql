-- Certificate revocation (postgres dialect; keep in step with the sqlite dialect's 0009). Both NULL:
-- not revoked. revoked_at is Unix seconds like the other times; revocation_reason is the RFC 5280
-- CRLReason name as the API spells it (unspecified, keyCompromise, caCompromise,
-- affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn). See
-- src/domain/revocation.rs and src/storage/revocation.rs.
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT;
-- A user's certificates by expiry and revocation: the per-user count and the Atlas listing
-- (unexpired, not revoked) read this index alone, as they read 0006's index before, and the
-- status listing (every certificate of the user) finds the user's rows through it. It replaces
-- 0006's index, which it extends.
CREATE INDEX IF NOT EXISTS certificates_user_status
    ON certificates (project_id, username, not_after, revoked_at);
DROP INDEX IF EXISTS certificates_user_expiry;
-- A project's revoked certificates by expiry, and only those: a CRL lists the revoked
-- certificates not yet expired as a range here, however many certificates were never revoked.
-- (A certificate by serial is the primary key, (project_id, serial).)
CREATE INDEX IF NOT EXISTS certificates_revoked
    ON certificates (project_id, not_after) WHERE revoked_at IS NOT NULL;
