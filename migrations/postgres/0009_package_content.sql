-- Package content (contract section 10): one blob per SHA-256, whatever feeds
-- hold it. A file with content names its blob; the foreign key keeps a blob's
-- row while any file refers to it, and the collector deletes a row (and the
-- bytes) only while it holds that row, as an upload does while it publishes the
-- bytes and writes its record (see src/store/content.rs).
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    touched_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE package_files
    ADD COLUMN blob_sha256 TEXT REFERENCES blobs (sha256),
    -- The name the file is downloaded under.
    ADD COLUMN file_name TEXT;

CREATE INDEX package_files_blob ON package_files (blob_sha256) WHERE blob_sha256 IS NOT NULL;
