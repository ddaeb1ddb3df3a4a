-- dbcert schema, SQLite dialect. Times are Unix seconds (UTC). Keep in step with
-- migrations/postgres/0001_initial.sql: the same tables, columns and constraints.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    deleted_at      INTEGER,
    customer_ca_pem TEXT
);
-- A name is unique among an organization's live projects.
CREATE UNIQUE INDEX projects_live_name ON projects (org_id, name) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id),
    public_key  TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    -- HA1 = H(publicKey:realm:privateKey): verifies Digest and Basic; the key itself is not kept.
    ha1_md5     TEXT NOT NULL,
    ha1_sha256  TEXT NOT NULL,
    org_roles   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE api_key_project_roles (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id),
    role       TEXT NOT NULL,
    PRIMARY KEY (api_key_id, project_id, role)
);

CREATE TABLE database_users (
    project_id    TEXT NOT NULL REFERENCES projects (id),
    database_name TEXT NOT NULL,
    username      TEXT NOT NULL,
    x509_type     TEXT NOT NULL,
    roles         TEXT NOT NULL,
    PRIMARY KEY (project_id, database_name, username)
);

CREATE TABLE project_cas (
    -- One CA per project: concurrent creators race on this key and the loser re-reads.
    project_id TEXT PRIMARY KEY REFERENCES projects (id),
    cert_der   BLOB NOT NULL,
    -- AES-256-GCM under the master key; NULL once the project is deleted.
    sealed_key BLOB,
    created_at INTEGER NOT NULL
);

-- Every issued certificate, never its private key. Serials are unique per CA (= per project).
CREATE TABLE certificates (
    project_id         TEXT NOT NULL REFERENCES projects (id),
    serial             INTEGER NOT NULL,
    username           TEXT NOT NULL,
    subject            TEXT NOT NULL,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    sha256_fingerprint TEXT NOT NULL,
    PRIMARY KEY (project_id, serial)
);
CREATE INDEX certificates_user ON certificates (project_id, username, not_before);

-- HTTP Digest nonce counts already seen, so a replayed (nonce, nc) is refused on any replica.
CREATE TABLE digest_nonce_uses (
    nonce      TEXT NOT NULL,
    nc         TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (nonce, nc)
);
CREATE INDEX digest_nonce_uses_expiry ON digest_nonce_uses (expires_at);
