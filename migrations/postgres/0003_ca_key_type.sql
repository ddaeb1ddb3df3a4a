-- The key type of each project's CA (issue 6): a setting of the project until its CA exists,
-- fixed once it does. Portable SQL, identical in migrations/sqlite/0003_ca_key_type.sql.
-- (Numbered 0003: 0002 is taken by a PostgreSQL-only migration on another branch.)

ALTER TABLE projects ADD COLUMN ca_key_type TEXT NOT NULL DEFAULT 'RSA_4096';
-- 1 once the project's CA is created (set in the CA's insert transaction): the setting may no
-- longer change. A column of the same row, so a concurrent change and CA creation serialize on
-- the row in both SQLite and PostgreSQL.
ALTER TABLE projects ADD COLUMN ca_key_type_locked INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET ca_key_type_locked = 1 WHERE id IN (SELECT project_id FROM project_cas);
