-- API key access lists (postgres dialect; keep in step with the sqlite dialect's 0015): the
-- networks a key may authenticate from, as canonical CIDR blocks ('192.0.2.7/32' for one
-- address). A key without rows is not restricted. Deleting the key deletes its entries.
CREATE TABLE api_key_access_list (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    cidr_block TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, cidr_block)
);
