-- The per-user certificate limit, held under concurrency and across replicas (postgres dialect;
-- keep in step with the sqlite dialect's 0007). One row per (project, certificate username):
-- `held` is never less than the user's certificates unexpired now or later. The transaction that
-- records certificates raises it by their number first (its row lock serialises the replicas'
-- writers of one user until commit), and only when the result would pass the limit counts the
-- user's unexpired certificates exactly and sets it to that count plus what it admits; see
-- src/storage/certificate_limit.rs.
CREATE TABLE user_certificate_counts (
    project_id TEXT NOT NULL,
    username   TEXT NOT NULL,
    held       BIGINT NOT NULL,
    PRIMARY KEY (project_id, username)
);
-- Existing certificates: each user's unexpired ones, counted now.
INSERT INTO user_certificate_counts (project_id, username, held)
SELECT project_id, username, COUNT(*) FROM certificates
WHERE not_after > CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)
GROUP BY project_id, username;
