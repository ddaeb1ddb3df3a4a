-- The per-user certificate limit, held under concurrency (sqlite dialect; keep in step with the
-- postgres dialect's 0007). One row per (project, certificate username): `held` is never less
-- than the user's certificates unexpired now or later. The transaction that records certificates
-- raises it by their number first (which also serialises concurrent writers of one user, on the
-- row's lock), and only when the result would pass the limit counts the user's unexpired
-- certificates exactly and sets it to that count plus what it admits; see
-- src/storage/certificate_limit.rs.
CREATE TABLE user_certificate_counts (
    project_id TEXT NOT NULL,
    username   TEXT NOT NULL,
    held       INTEGER NOT NULL,
    PRIMARY KEY (project_id, username)
) WITHOUT ROWID;
-- Existing certificates: each user's unexpired ones, counted now.
INSERT INTO user_certificate_counts (project_id, username, held)
SELECT project_id, username, COUNT(*) FROM certificates
WHERE not_after > CAST(strftime('%s', 'now') AS INTEGER)
GROUP BY project_id, username;
