-- Connectors (contract section 16): upstream registries a feed offers
-- packages from, cached into the feed on first download.

-- The feed's connectors as JSON: [{"url", "username"?, "password"?, "token"?}].
-- The credentials are kept as given because they must be sent; they are never
-- shown (src/domain/connector.rs).
ALTER TABLE feeds ADD COLUMN connectors TEXT NOT NULL DEFAULT '[]';

-- Where a file's bytes came from, when a connector fetched them; NULL for a
-- file uploaded here. The packages API shows such a version as cached.
ALTER TABLE package_files ADD COLUMN cached_from TEXT;

-- The audit row of every file a connector cached, written in the transaction
-- that records the file. Like the promotion history it copies names in and
-- outlives the feed.
CREATE TABLE connector_fetches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_id      INTEGER NOT NULL,
    feed         TEXT NOT NULL,
    package_type TEXT NOT NULL,
    group_name   TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    url          TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    user_name    TEXT NOT NULL,
    fetched_at   TEXT NOT NULL
);

-- The upstream URL the promoted version's bytes came from, when a connector
-- fetched them. Filled in by the trigger below, in the transaction that writes
-- the history row, from the version's own files (which a promotion never
-- changes): every path that writes history (one promotion, a batch, a revert)
-- records it without knowing about connectors.
ALTER TABLE promotions ADD COLUMN fetched_from TEXT;

CREATE TRIGGER promotions_fetched_from AFTER INSERT ON promotions
FOR EACH ROW WHEN NEW.fetched_from IS NULL
BEGIN
    UPDATE promotions SET fetched_from = (
        SELECT MIN(pf.cached_from)
        FROM package_versions pv JOIN package_files pf ON pf.version_id = pv.id
        WHERE pv.feed_id IN (NEW.from_feed_id, NEW.to_feed_id)
          AND pv.name_key = NEW.name_key AND pv.group_key = NEW.group_key
          AND pv.version_key = NEW.version_key)
    WHERE id = NEW.id;
END;
