-- Package content (contract section 10): one blob per SHA-256, whatever feeds
-- hold it. A file with content names its blob; the foreign key keeps a blob's
-- row while any file refers to it. SQLite's one writer orders uploads and the
-- collector (see src/store/content.rs).
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    touched_at TEXT NOT NULL
);

ALTER TABLE package_files ADD COLUMN blob_sha256 TEXT REFERENCES blobs (sha256);
-- The name the file is downloaded under.
ALTER TABLE package_files ADD COLUMN file_name TEXT;

CREATE INDEX package_files_blob ON package_files (blob_sha256) WHERE blob_sha256 IS NOT NULL;
