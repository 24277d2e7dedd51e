-- Every process keeps the feeds and the API keys it reads on each request in
-- memory (src/store/cache.rs). Any change to them, made by any process or by
-- hand, is announced on the channel `promoter_catalog` when it commits, and every
-- listening process drops what it kept.

CREATE FUNCTION promoter_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('promoter_catalog', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER feeds_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON feeds
    FOR EACH STATEMENT EXECUTE FUNCTION promoter_catalog_changed();
CREATE TRIGGER feed_groups_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON feed_groups
    FOR EACH STATEMENT EXECUTE FUNCTION promoter_catalog_changed();
CREATE TRIGGER feed_group_members_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON feed_group_members
    FOR EACH STATEMENT EXECUTE FUNCTION promoter_catalog_changed();
CREATE TRIGGER api_keys_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION promoter_catalog_changed();
