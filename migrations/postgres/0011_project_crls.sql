-- The signed CRL of each project CA generation (postgres dialect; keep in step with the sqlite
-- dialect's 0011). `last_number` is the CRL number counter, shared by every replica: a CRL is
-- numbered by raising it (`UPDATE … RETURNING`), so numbers only grow, whichever replica signs.
-- `crl_number`/`crl_der` are the newest CRL signed (0/NULL: none yet); a CRL is stored only
-- over an older number. `refresh_at` (half its validity) is when it is re-signed;
-- `claimed_until` lets one replica claim that re-signing. See src/storage/crl.rs.
CREATE TABLE project_crls (
    project_id    TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    last_number   BIGINT NOT NULL,
    crl_number    BIGINT NOT NULL DEFAULT 0,
    crl_der       BYTEA,
    this_update   BIGINT NOT NULL DEFAULT 0,
    next_update   BIGINT NOT NULL DEFAULT 0,
    refresh_at    BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, generation)
);
CREATE INDEX project_crls_by_refresh ON project_crls (refresh_at);
-- The revoked certificates of a project (few among many): the CRL lists them, and each CRL
-- read takes the latest revocation time from here.
CREATE INDEX IF NOT EXISTS certificates_revoked_at ON certificates (project_id, revoked_at) WHERE revoked_at IS NOT NULL;
