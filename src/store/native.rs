//! What the native endpoints read (contract sections 12 and 13): one package's
//! files in one feed with their digests and metadata, how each version came
//! into the feed, npm's dist-tags, and the backfill of blobs stored before
//! digests and metadata were kept. Every read here is one indexed statement
//! per document, whatever the number of versions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{on_pool, on_tx, Digests, Feed, Store};
use crate::error::Result;

/// One file of a package in a feed, as a metadata document shows it.
#[derive(Debug, Clone, FromRow)]
pub struct NativeFile {
    pub file_id: i64,
    pub group_name: String,
    pub name: String,
    pub version: String,
    pub version_key: String,
    pub qualifier: String,
    pub file_name: Option<String>,
    pub size: Option<i64>,
    /// `None` for a record without content, which no client can install.
    pub blob_sha256: Option<String>,
    /// `None` for a blob stored before they were kept (see `backfill`).
    pub sha1: Option<String>,
    pub sha512: Option<String>,
    /// The ecosystem's own description (`ecosystems::Found::metadata`).
    pub metadata: Option<String>,
    pub published_at: DateTime<Utc>,
}

/// How a version came into a feed: the promotion that brought it
/// (`_promotion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub id: i64,
    pub date: DateTime<Utc>,
    pub from_feed: String,
    pub user: String,
}

#[derive(FromRow)]
struct PromotionRow {
    id: i64,
    version_key: String,
    to_feed_id: i64,
    from_feed: String,
    user_name: String,
    promoted_at: DateTime<Utc>,
}

/// One dist-tag as stored.
#[derive(Debug, Clone, FromRow)]
pub struct DistTag {
    pub tag: String,
    pub version: String,
    pub version_key: String,
}

impl Store {
    /// Every file of one package in `feed`, by its keys (the feed's unique
    /// index on versions serves it).
    pub async fn native_files(
        &self,
        feed: &Feed,
        group_key: &str,
        name_key: &str,
    ) -> Result<Vec<NativeFile>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT pf.id AS file_id, v.group_name, v.name, v.version, v.version_key, \
                    pf.qualifier, pf.file_name, pf.size, pf.blob_sha256, b.sha1, b.sha512, \
                    pf.metadata, pf.published_at \
             FROM package_versions v JOIN package_files pf ON pf.version_id = v.id \
             LEFT JOIN blobs b ON b.sha256 = pf.blob_sha256 \
             WHERE v.feed_id = $1 AND v.name_key = $2 AND v.group_key = $3",
        )
        .bind(feed.id)
        .bind(name_key)
        .bind(group_key)
        .fetch_all(pool)
        .await)?)
    }

    /// How each version of one package came into `feed`, by version key: the
    /// promotion that brought it, for versions whose last move touching this
    /// feed brought them in and whose files are no newer than that move (a
    /// version deleted and uploaded again arrived by upload). One statement
    /// on the history's package index.
    pub async fn arrivals(
        &self,
        feed: &Feed,
        group_key: &str,
        name_key: &str,
        files: &[NativeFile],
    ) -> Result<HashMap<String, Arrival>> {
        let rows: Vec<PromotionRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, version_key, to_feed_id, from_feed, user_name, promoted_at \
             FROM promotions WHERE name_key = $1 AND group_key = $2 \
               AND (to_feed_id = $3 OR from_feed_id = $3) ORDER BY id",
        )
        .bind(name_key)
        .bind(group_key)
        .bind(feed.id)
        .fetch_all(pool)
        .await)?;
        let mut last: HashMap<String, PromotionRow> = HashMap::new();
        for row in rows {
            last.insert(row.version_key.clone(), row);
        }
        let mut arrivals = HashMap::new();
        for (version_key, row) in last {
            let newest_file = files
                .iter()
                .filter(|f| f.version_key == version_key)
                .map(|f| f.published_at)
                .max();
            let brought_here = row.to_feed_id == feed.id;
            if brought_here && newest_file.is_some_and(|published| published <= row.promoted_at) {
                arrivals.insert(
                    version_key,
                    Arrival {
                        id: row.id,
                        date: row.promoted_at,
                        from_feed: row.from_feed,
                        user: row.user_name,
                    },
                );
            }
        }
        Ok(arrivals)
    }

    /// One package's dist-tags in `feed`, whether or not their versions are
    /// still there (the caller shows only those that are).
    pub async fn dist_tags(
        &self,
        feed: &Feed,
        group_key: &str,
        name_key: &str,
    ) -> Result<Vec<DistTag>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT tag, version, version_key FROM npm_dist_tags \
             WHERE feed_id = $1 AND group_key = $2 AND name_key = $3 ORDER BY tag",
        )
        .bind(feed.id)
        .bind(group_key)
        .bind(name_key)
        .fetch_all(pool)
        .await)?)
    }

    /// Points `tag` at a version, which must be in `feed` when the statement
    /// runs: checked and written together, so a promotion moving the version
    /// away at the same moment leaves either the tag on a version that then
    /// left (not shown) or a refusal, never a tag on nothing. Returns false
    /// when the version is not in the feed.
    pub async fn set_dist_tag(
        &self,
        feed: &Feed,
        keys: (&str, &str),
        tag: &str,
        version_key: &str,
    ) -> Result<bool> {
        let (group_key, name_key) = keys;
        let mut tx = self.begin_write().await?;
        let written = on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO npm_dist_tags (feed_id, group_key, name_key, tag, version, version_key) \
             SELECT v.feed_id, v.group_key, v.name_key, $4, v.version, v.version_key \
             FROM package_versions v \
             WHERE v.feed_id = $1 AND v.group_key = $2 AND v.name_key = $3 AND v.version_key = $5 \
             ON CONFLICT (feed_id, group_key, name_key, tag) \
             DO UPDATE SET version = excluded.version, version_key = excluded.version_key",
        )
        .bind(feed.id)
        .bind(group_key)
        .bind(name_key)
        .bind(tag)
        .bind(version_key)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(written > 0)
    }

    /// Removes a tag; returns whether there was one.
    pub async fn remove_dist_tag(
        &self,
        feed: &Feed,
        keys: (&str, &str),
        tag: &str,
    ) -> Result<bool> {
        let (group_key, name_key) = keys;
        let mut tx = self.begin_write().await?;
        let removed = on_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM npm_dist_tags WHERE feed_id = $1 AND group_key = $2 AND name_key = $3 AND tag = $4",
        )
        .bind(feed.id)
        .bind(group_key)
        .bind(name_key)
        .bind(tag)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Keeps what was computed for a blob stored before digests and metadata
    /// were kept: its digests, and the metadata of one file holding it. Only
    /// empty columns are filled, so two servers doing it at once agree.
    pub async fn backfill(
        &self,
        sha256: &str,
        digests: &Digests,
        file: Option<(i64, &str)>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, conn => sqlx::query(
            "UPDATE blobs SET sha1 = $2, sha512 = $3 WHERE sha256 = $1 AND sha512 IS NULL",
        )
        .bind(sha256)
        .bind(&digests.sha1)
        .bind(&digests.sha512)
        .execute(conn)
        .await
        .map(|_| ()))?;
        if let Some((file_id, metadata)) = file {
            on_tx!(&mut tx, conn => sqlx::query(
                "UPDATE package_files SET metadata = $2 WHERE id = $1 AND metadata IS NULL",
            )
            .bind(file_id)
            .bind(metadata)
            .execute(conn)
            .await
            .map(|_| ()))?;
        }
        tx.commit().await?;
        Ok(())
    }
}
