//! The records of package content: blobs (one row per SHA-256) and the files
//! that refer to them.
//!
//! An upload and the collector meet at the blob's row:
//! - The upload first marks the row as being published (`touched_at`, in a
//!   statement of its own), then puts the bytes in place outside any
//!   transaction (a large file may take minutes to reach an object store), then
//!   in one short transaction takes the row, checks that the bytes are there,
//!   writes its file record and clears the mark.
//! - The collector takes only a row that no file refers to and that no upload
//!   has marked within the grace period, asks again once it holds the row,
//!   removes the bytes and deletes the row.
//!
//! So a committed record always has its bytes, and bytes that lost their upload
//! (a crash, a refusal) are collected once the grace period is over. On SQLite
//! the one writer orders the two the same way.

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::Future;

use super::packages::{files_query_by_identity, files_query_by_version, PackageFile};
use super::{on_pool, on_tx, Feed, Store, WriteTx};
use crate::domain::PackageId;
use crate::error::{Error, Result};

/// A file to record, with its content.
pub struct ContentFile<'a> {
    pub package: &'a PackageId,
    pub qualifier: &'a str,
    pub file_name: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub digests: &'a Digests,
    /// The ecosystem's own description of the file (`ecosystems::Found`).
    pub metadata: Option<&'a str>,
    /// Where a connector fetched it from; `None` for an upload.
    pub origin: Option<Origin<'a>>,
}

/// Where a file a connector cached came from, and for whom it was fetched:
/// kept with the file and in its audit row (`connector_fetches`).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub url: &'a str,
    pub user: &'a str,
}

/// A blob's SHA-1, SHA-512 and MD5, in hex, computed with its SHA-256 as the
/// bytes arrive: npm checks `shasum` (SHA-1) and `integrity` (SHA-512), NuGet
/// a SHA-512, Maven any of them, so every upload path keeps them (contract
/// sections 13 and 15).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub sha1: String,
    pub sha512: String,
    pub md5: String,
}

/// When an upload marked a blob as being published (`Store::note_blob`).
#[derive(Debug, Clone, Copy)]
pub struct Mark(DateTime<Utc>);

/// What recording an upload did.
pub enum Recorded {
    /// A new file.
    Added(PackageFile),
    /// The same bytes were already there under that version and qualifier: a
    /// retried upload, answered as if it had just happened.
    Unchanged(PackageFile),
}

impl Store {
    /// Marks the blob as being published, before its bytes are put in place:
    /// the collector leaves it alone for the grace period, and finds the bytes
    /// afterwards if the upload never records them. The mark is the upload's
    /// own: `add_content` clears it only if no other upload marked the blob
    /// since.
    pub async fn note_blob(&self, sha256: &str, size: u64) -> Result<Mark> {
        // Whole microseconds, which both backends store exactly, so that the
        // mark compares equal when it is read back.
        let mark = Mark(Utc::now().trunc_subsecs(6));
        // A write like any other: on SQLite it waits its turn in the writer
        // queue rather than polling the file's lock beside it.
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO blobs (sha256, size, touched_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at",
        )
        .bind(sha256)
        .bind(size as i64)
        .bind(mark.0)
        .execute(conn)
        .await
        .map(|_| ()))?;
        tx.commit().await?;
        Ok(mark)
    }

    /// The file a version already has in `feed` under `qualifier`, if any: the
    /// early answer to a retried or conflicting upload, before its bytes are
    /// published (`add_content` asks again).
    pub async fn existing_file(
        &self,
        feed: &Feed,
        package: &PackageId,
        qualifier: &str,
    ) -> Result<Option<PackageFile>> {
        let sql = files_query_by_identity();
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(feed.id)
            .bind(package.name_key())
            .bind(package.group_key())
            .bind(package.version_key())
            .bind(qualifier)
            .fetch_optional(pool)
            .await)?)
    }

    /// Records an uploaded file in `feed`, once its bytes are published:
    /// `published` says, while the blob's row is held, whether they are still
    /// in place. Refused when the feed is gone or disabled, or when the version
    /// already has a file with that qualifier and other bytes.
    pub async fn add_content<F, Fut>(
        &self,
        feed: &Feed,
        file: &ContentFile<'_>,
        mark: Mark,
        published: F,
    ) -> Result<Recorded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<bool>>,
    {
        let mut tx = self.begin_write().await?;
        let share = match &tx {
            WriteTx::Postgres(_) => " FOR SHARE",
            WriteTx::Sqlite(..) => "",
        };
        // The feed is held as it is until commit, as a promotion holds it.
        let active: Option<bool> = on_tx!(&mut tx, conn => sqlx::query_scalar(
            &format!("SELECT active FROM feeds WHERE id = $1{share}"))
            .bind(feed.id)
            .fetch_optional(conn)
            .await)?;
        match active {
            None => {
                return Err(Error::NotFound(format!(
                    "Feed \"{}\" does not exist.",
                    feed.name
                )))
            }
            Some(false) => {
                return Err(Error::invalid(format!(
                    "Feed \"{}\" is disabled, so nothing can be uploaded to it.",
                    feed.name
                )))
            }
            Some(true) => {}
        }
        let now = Utc::now();
        // The blob's row, held until commit. This upload's mark is cleared, as
        // the record about to be written keeps the blob from now on; a later
        // upload's mark stays, for that upload is still publishing.
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO blobs (sha256, size, touched_at, sha1, sha512, md5) VALUES ($1, $2, $3, $5, $6, $7) \
             ON CONFLICT (sha256) DO UPDATE SET touched_at = \
             CASE WHEN blobs.touched_at = $4 THEN $3 ELSE blobs.touched_at END, \
             sha1 = excluded.sha1, sha512 = excluded.sha512, md5 = excluded.md5",
        )
        .bind(file.sha256)
        .bind(file.size as i64)
        .bind(unmarked())
        .bind(mark.0)
        .bind(&file.digests.sha1)
        .bind(&file.digests.sha512)
        .bind(&file.digests.md5)
        .execute(conn)
        .await
        .map(|_| ()))?;
        // The version row, created or found, and held (PostgreSQL) so that no
        // promotion moves it away before the file joins it.
        let package = file.package;
        let version_id: i64 = on_tx!(&mut tx, conn => sqlx::query_scalar(
            "INSERT INTO package_versions \
             (feed_id, group_name, name, version, group_key, name_key, version_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (feed_id, name_key, group_key, version_key) \
             DO UPDATE SET created_at = package_versions.created_at RETURNING id",
        )
        .bind(feed.id)
        .bind(package.group())
        .bind(package.name())
        .bind(package.version())
        .bind(package.group_key())
        .bind(package.name_key())
        .bind(package.version_key())
        .bind(now)
        .fetch_one(conn)
        .await)?;
        let inserted: Option<i64> = on_tx!(&mut tx, conn => sqlx::query_scalar(
            "INSERT INTO package_files \
             (version_id, qualifier, size, sha256, published_at, blob_sha256, file_name, metadata, cached_from) \
             VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8) \
             ON CONFLICT (version_id, qualifier) DO NOTHING RETURNING id",
        )
        .bind(version_id)
        .bind(file.qualifier)
        .bind(file.size as i64)
        .bind(file.sha256)
        .bind(now)
        .bind(file.file_name)
        .bind(file.metadata)
        .bind(file.origin.map(|origin| origin.url))
        .fetch_optional(conn)
        .await)?;
        let sql = files_query_by_version();
        let stored: PackageFile = on_tx!(&mut tx, conn => sqlx::query_as(&sql)
            .bind(version_id)
            .bind(file.qualifier)
            .fetch_one(conn)
            .await)?;
        if inserted.is_none() {
            // Nothing was written; the transaction ends without a commit.
            return Recorded::settle(feed, file, stored);
        }
        // With the row held, no collector can remove the bytes before commit.
        let in_place = published().await.map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "could not check a stored package file: {e}"
            ))
        })?;
        if !in_place {
            return Err(Error::Unavailable {
                reason: "the stored file was cleaned up while the upload waited",
                cause: None,
            });
        }
        if let Some(origin) = file.origin {
            on_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO connector_fetches (feed_id, feed, package_type, group_name, name, \
                 version, file_name, url, sha256, size, user_name, fetched_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(feed.id)
            .bind(feed.name.as_str())
            .bind(feed.feed_type.as_str())
            .bind(package.group())
            .bind(package.name())
            .bind(package.version())
            .bind(file.file_name)
            .bind(origin.url)
            .bind(file.sha256)
            .bind(file.size as i64)
            .bind(origin.user)
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ()))?;
        }
        tx.commit().await?;
        Ok(Recorded::Added(stored))
    }

    /// Blobs no file refers to and no upload marked after `marked_before`, at
    /// most `limit`: what the collector removes.
    pub async fn unreferenced_blobs(
        &self,
        marked_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT b.sha256 FROM blobs b WHERE b.touched_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM package_files pf WHERE pf.blob_sha256 = b.sha256) LIMIT $2",
        )
        .bind(marked_before)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
    }

    /// Removes a blob (`remove` deletes its bytes) if, once its row is held, no
    /// file refers to it. Returns whether it went.
    pub async fn collect_blob<F, Fut>(
        &self,
        sha256: &str,
        marked_before: DateTime<Utc>,
        remove: F,
    ) -> Result<bool>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut tx = self.begin_write().await?;
        let lock = match &tx {
            WriteTx::Postgres(_) => " FOR UPDATE",
            WriteTx::Sqlite(..) => "",
        };
        let held: Option<String> = on_tx!(&mut tx, conn => sqlx::query_scalar(
            &format!("SELECT sha256 FROM blobs WHERE sha256 = $1 AND touched_at < $2{lock}"))
            .bind(sha256)
            .bind(marked_before)
            .fetch_optional(conn)
            .await)?;
        if held.is_none() {
            return Ok(false);
        }
        // Asked again now that the row is held: an upload that wrote a record
        // for these bytes meanwhile has committed by now (and one that marked
        // the row meanwhile made it miss the condition above).
        let used: bool = on_tx!(&mut tx, conn => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM package_files WHERE blob_sha256 = $1)")
            .bind(sha256)
            .fetch_one(conn)
            .await)?;
        if used {
            return Ok(false);
        }
        remove().await.map_err(|e| {
            Error::Internal(anyhow::anyhow!("could not remove a package file: {e}"))
        })?;
        on_tx!(&mut tx, conn => sqlx::query("DELETE FROM blobs WHERE sha256 = $1")
            .bind(sha256)
            .execute(conn)
            .await
            .map(|_| ()))?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The mark of a blob no upload is publishing: older than any grace period.
fn unmarked() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

impl Recorded {
    /// The answer to an upload whose version already has a file under its
    /// qualifier: the same bytes are a retry, anything else a conflict.
    pub fn settle(feed: &Feed, file: &ContentFile<'_>, stored: PackageFile) -> Result<Recorded> {
        if stored.blob_sha256.as_deref() == Some(file.sha256) {
            return Ok(Recorded::Unchanged(stored));
        }
        let package = file.package;
        let what = if file.qualifier.is_empty() {
            String::new()
        } else {
            format!(" with qualifier \"{}\"", file.qualifier)
        };
        let how = if stored.blob_sha256.is_none() {
            "as a record without content"
        } else {
            "with different content"
        };
        Err(Error::AlreadyExists(format!(
            "Package {package}{what} already exists in feed \"{}\" {how}; delete it first to replace it.",
            feed.name
        )))
    }
}
