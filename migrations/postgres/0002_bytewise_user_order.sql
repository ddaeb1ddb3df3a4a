-- Database users are listed ordered by (username, database_name). SQLite compares TEXT
-- bytewise; a PostgreSQL database created with a linguistic default collation (en_US.UTF-8,
-- ICU) would order `Bob`, `_x`, `$external` differently, so both backends would page the same
-- users in different orders. Pin these columns to the bytewise "C" collation.
ALTER TABLE database_users
    ALTER COLUMN username TYPE TEXT COLLATE "C",
    ALTER COLUMN database_name TYPE TEXT COLLATE "C";
