-- Maven's repositories answer `.md5` beside `.sha1`, `.sha256` and `.sha512`
-- for every file (contract section 15): the MD5 is computed as the bytes
-- arrive, with the other digests; NULL for a blob stored before, until it is
-- first served (src/content/backfill.rs).
ALTER TABLE blobs ADD COLUMN md5 TEXT;
