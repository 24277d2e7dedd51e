-- What the API-keys API (ProGet's ApiKeyInfo) carries beyond the CLI's keys.
ALTER TABLE api_keys ADD COLUMN description TEXT;
-- ProGet's request/response logging setting; recorded, but bodies are never logged here.
ALTER TABLE api_keys ADD COLUMN logging TEXT NOT NULL DEFAULT 'None';

-- History queries return the newest promotions first, filtered by any combination
-- of feeds, group, name and version, and for scoped keys by the feeds they may
-- view. Every filter has an index ending in id, so each combination is answered by
-- walking an index (or combining several) instead of scanning the table; with no
-- filter at all the primary key serves.
CREATE INDEX promotions_by_from_feed ON promotions (from_feed_key, id);
CREATE INDEX promotions_by_to_feed ON promotions (to_feed_key, id);
CREATE INDEX promotions_by_package ON promotions (name_key, group_key, version_key, id);
CREATE INDEX promotions_by_group ON promotions (group_key, id);
CREATE INDEX promotions_by_version ON promotions (version_key, id);
CREATE INDEX promotions_by_from_feed_id ON promotions (from_feed_id, id);
CREATE INDEX promotions_by_to_feed_id ON promotions (to_feed_id, id);
