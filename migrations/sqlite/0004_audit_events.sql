-- The audit trail (sqlite dialect; keep in step with the other dialect's 0004). Events outlive
-- the projects and keys they name, so no foreign keys. Times are Unix microseconds (UTC).
CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY,
    occurred_at_us   INTEGER NOT NULL,
    action           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    -- The acting API key (both NULL: the service itself); for a failed authentication, the
    -- public key presented (only if it had the shape of one) and its id if it exists.
    actor_key_id     TEXT,
    actor_public_key TEXT,
    remote_address   TEXT,
    org_id           TEXT,
    project_id       TEXT,
    -- A database username or an API key id.
    target           TEXT,
    serial           INTEGER
);
CREATE INDEX audit_events_project ON audit_events (project_id, occurred_at_us, id);
CREATE INDEX audit_events_org ON audit_events (org_id, occurred_at_us, id);
