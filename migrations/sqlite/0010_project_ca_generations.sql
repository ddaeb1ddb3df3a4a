-- Project CA rotation (issue 11 item 5), sqlite dialect; keep in step with the postgres
-- dialect's 0010. Every CA a project has had is a generation: 1 is the project's first CA, each
-- rotation adds generation + 1. `project_cas` keeps one row per project, now naming the issuing
-- generation: the first CA's creators still race on its primary key, and a rotation moves it
-- from the generation it read to the next one only if it still names the one read (so racing
-- rotations on any replicas end with exactly one new CA; see src/storage/ca_generations.rs).

CREATE TABLE project_ca_generations (
    project_id TEXT NOT NULL REFERENCES projects (id),
    generation INTEGER NOT NULL,
    cert_der   BLOB NOT NULL,
    -- AES-256-GCM under the master key; NULL once the project is deleted.
    sealed_key BLOB,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, generation)
);

-- The existing CAs are their projects' generation 1.
INSERT INTO project_ca_generations (project_id, generation, cert_der, sealed_key, created_at)
SELECT project_id, 1, cert_der, sealed_key, created_at FROM project_cas;

ALTER TABLE project_cas ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE project_cas DROP COLUMN cert_der;
ALTER TABLE project_cas DROP COLUMN sealed_key;

-- Which generation signed each certificate; the ones issued so far were signed by the first CA.
ALTER TABLE certificates ADD COLUMN ca_generation INTEGER NOT NULL DEFAULT 1;
-- The trust bundle asks, per older generation, whether a certificate it signed is unexpired.
CREATE INDEX IF NOT EXISTS certificates_by_ca_generation ON certificates (project_id, ca_generation, not_after);
