-- Atlas's database-user attributes (postgres dialect; keep in step with the sqlite dialect's
-- 0013): the description ('' = none), labels ([{"key","value"}]) and scopes ([{"name","type"}])
-- as compact JSON, and deleteAfterDate (Unix seconds, NULL = never). The partial index serves
-- the background task that deletes users whose time has come (src/background.rs).
ALTER TABLE database_users ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE database_users ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE database_users ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE database_users ADD COLUMN delete_after BIGINT;
CREATE INDEX database_users_delete_after ON database_users (delete_after)
    WHERE delete_after IS NOT NULL;
