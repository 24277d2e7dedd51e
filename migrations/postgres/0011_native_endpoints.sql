-- The native endpoints (contract sections 12 and 13).

-- A public feed may be viewed by anyone, without a key.
ALTER TABLE feeds ADD COLUMN public BOOLEAN NOT NULL DEFAULT FALSE;

-- The digests clients check besides SHA-256 (npm's `shasum` is SHA-1, its
-- `integrity` SHA-512), computed as the bytes arrive; NULL for a blob stored
-- before they were kept, until it is first served (src/content/backfill.rs).
ALTER TABLE blobs
    ADD COLUMN sha1 TEXT,
    ADD COLUMN sha512 TEXT;

-- The ecosystem's own description of the file, read from it once when it
-- arrives (an npm tarball's package.json), so that metadata documents never
-- open archives.
ALTER TABLE package_files ADD COLUMN metadata TEXT;

-- npm's dist-tags other than the computed `latest`: set by `npm publish --tag`
-- and `npm dist-tag add`. A tag whose version left the feed is not shown.
CREATE TABLE npm_dist_tags (
    feed_id     BIGINT NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    group_key   TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    tag         TEXT NOT NULL,
    version     TEXT NOT NULL,
    version_key TEXT NOT NULL,
    PRIMARY KEY (feed_id, group_key, name_key, tag)
);
