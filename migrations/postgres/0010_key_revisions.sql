-- The revisions of the rules that compute the stored keys (name_key,
-- group_key, version_key) from names and versions. Each revision is applied
-- once, by the first server to start after it ships: it re-keys the rows
-- stored under the rules before (see src/store/rekey.rs).
CREATE TABLE key_revisions (
    revision   TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL
);
