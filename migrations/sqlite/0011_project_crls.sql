-- The signed CRL of each project CA generation (sqlite dialect; keep in step with the postgres
-- dialect's 0011). `last_number` is the CRL number counter, shared by every replica: a CRL is
-- numbered by raising it (`UPDATE … RETURNING`), so numbers only grow, whichever replica signs.
-- `crl_number`/`crl_der` are the newest CRL signed (0/NULL: none yet); a CRL is stored only
-- over an older number. `refresh_at` (half its validity) is when it is re-signed;
-- `claimed_until` lets one replica claim that re-signing. See src/storage/crl.rs.
CREATE TABLE project_crls (
    project_id    TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    last_number   INTEGER NOT NULL,
    crl_number    INTEGER NOT NULL DEFAULT 0,
    crl_der       BLOB,
    this_update   INTEGER NOT NULL DEFAULT 0,
    next_update   INTEGER NOT NULL DEFAULT 0,
    refresh_at    INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, generation)
);
CREATE INDEX project_crls_by_refresh ON project_crls (refresh_at);
-- The revoked certificates of a project (few among many): the CRL lists them, and each CRL
-- read takes the latest revocation time from here.
CREATE INDEX IF NOT EXISTS certificates_revoked_at ON certificates (project_id, revoked_at) WHERE revoked_at IS NOT NULL;
