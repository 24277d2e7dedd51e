-- Promoter schema, SQLite. migrations/postgres/ holds the same tables for PostgreSQL.
-- Timestamps are RFC 3339 text, written by the application in UTC. Every `*_key` column holds
-- the normalised form computed by one Rust function (src/domain); lookups compare
-- those, never lower() in SQL.

CREATE TABLE feeds (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL UNIQUE,
    feed_type          TEXT NOT NULL,
    description        TEXT,
    active             BOOLEAN NOT NULL DEFAULT TRUE,
    -- ProGet's "Promote To Feed": when set, promotions out of this feed may only go there.
    promote_to_feed_id INTEGER REFERENCES feeds (id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL
);

CREATE TABLE feed_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE feed_group_members (
    group_id INTEGER NOT NULL REFERENCES feed_groups (id) ON DELETE CASCADE,
    feed_id  INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, feed_id)
);
CREATE INDEX feed_group_members_feed ON feed_group_members (feed_id);

-- Only a SHA-256 hash of a key is stored; key_prefix is its first characters, shown
-- in listings so that people can tell keys apart.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('system', 'feed')),
    feed_id       INTEGER REFERENCES feeds (id) ON DELETE CASCADE,
    feed_group_id INTEGER REFERENCES feed_groups (id) ON DELETE CASCADE,
    permissions   TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    created_at    TEXT NOT NULL,
    CHECK (
        (kind = 'system' AND feed_id IS NULL AND feed_group_id IS NULL)
        OR (kind = 'feed' AND (feed_id IS NULL) <> (feed_group_id IS NULL))
    )
);

-- A package version lives in exactly one feed; its files hang off it. Promotion
-- moves the version row, so all of its files move in one row update and a version
-- can never be half promoted. The unique key makes a second copy of a version in
-- one feed impossible, even under concurrent promotions.
CREATE TABLE package_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_id     INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    version_key TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT package_versions_identity UNIQUE (feed_id, name_key, group_key, version_key)
);

CREATE TABLE package_files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id   INTEGER NOT NULL REFERENCES package_versions (id) ON DELETE CASCADE,
    qualifier    TEXT NOT NULL,
    size         INTEGER,
    sha256       TEXT,
    published_at TEXT NOT NULL,
    UNIQUE (version_id, qualifier)
);

-- One row per file with its feed, for people inspecting the database.
CREATE VIEW package_records AS
SELECT f.name AS feed, v.group_name, v.name, v.version, pf.qualifier, pf.size, pf.sha256,
       pf.published_at, pf.id AS file_id, v.id AS version_id
FROM package_files pf
JOIN package_versions v ON v.id = pf.version_id
JOIN feeds f ON f.id = v.feed_id;

-- The audit trail. Feed and key ids are kept without foreign keys and names are
-- copied in: history outlives the feeds and keys it mentions.
CREATE TABLE promotions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    from_feed_id  INTEGER NOT NULL,
    to_feed_id    INTEGER NOT NULL,
    from_feed     TEXT NOT NULL,
    to_feed       TEXT NOT NULL,
    from_feed_key TEXT NOT NULL,
    to_feed_key   TEXT NOT NULL,
    package_type  TEXT NOT NULL,
    group_name    TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    version_key   TEXT NOT NULL,
    comments      TEXT,
    user_name     TEXT NOT NULL,
    api_key_id    INTEGER,
    promoted_at   TEXT NOT NULL
);
