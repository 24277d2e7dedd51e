-- Every process keeps the feeds and the API keys it reads on each request in
-- memory (src/store/cache.rs). SQLite cannot tell other processes of a change, so
-- every change to those tables, made by any process or by hand, counts up
-- `catalog_version`, which each serving process reads several times a second.

CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

CREATE TRIGGER feeds_inserted AFTER INSERT ON feeds
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feeds_updated AFTER UPDATE ON feeds
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feeds_deleted AFTER DELETE ON feeds
BEGIN UPDATE catalog_version SET version = version + 1; END;

CREATE TRIGGER feed_groups_inserted AFTER INSERT ON feed_groups
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feed_groups_updated AFTER UPDATE ON feed_groups
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feed_groups_deleted AFTER DELETE ON feed_groups
BEGIN UPDATE catalog_version SET version = version + 1; END;

CREATE TRIGGER feed_group_members_inserted AFTER INSERT ON feed_group_members
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feed_group_members_updated AFTER UPDATE ON feed_group_members
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER feed_group_members_deleted AFTER DELETE ON feed_group_members
BEGIN UPDATE catalog_version SET version = version + 1; END;

CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys
BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
BEGIN UPDATE catalog_version SET version = version + 1; END;
