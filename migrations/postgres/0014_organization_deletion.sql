-- Deleted organizations (postgres dialect; keep in step with the sqlite dialect's 0014): an
-- organization is marked deleted (Unix seconds) rather than removed, as projects are, so that
-- its deleted projects, certificate records and audit events keep their organization.
ALTER TABLE organizations ADD COLUMN deleted_at BIGINT;
