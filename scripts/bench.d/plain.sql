-- The peer of the issue-26 benchmark: a minimal promotion on plain tables (no
-- trigger, no foreign key, no secondary index), the cheapest way a database can
-- move a version and record it, one transaction each. Seeded with :versions rows.
DROP TABLE IF EXISTS plain_versions, plain_promotions;
CREATE TABLE plain_versions (id bigint PRIMARY KEY, feed_id bigint NOT NULL,
    name text NOT NULL, version text NOT NULL);
INSERT INTO plain_versions SELECT i, 1, 'pkg' || i, '1.0.0' FROM generate_series(1, :versions) i;
CREATE TABLE plain_promotions (id bigserial PRIMARY KEY, version_id bigint NOT NULL,
    from_feed_id bigint NOT NULL, to_feed_id bigint NOT NULL,
    promoted_at timestamptz NOT NULL DEFAULT now());
VACUUM ANALYZE plain_versions;
