//! What the native endpoints read (contract sections 12 and 13): one package's
//! files in one feed with their digests and metadata, how each version came
//! into the feed, npm's dist-tags, and the backfill of blobs stored before
//! digests and metadata were kept. Every read here is one indexed statement
//! per document, whatever the number of versions.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};

use super::{on_pool, on_tx, Digests, Feed, Store};
use crate::error::Result;

/// One package in one feed, as a metadata document asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageKey {
    pub feed_id: i64,
    pub group_key: String,
    pub name_key: String,
}

/// Everything a metadata document shows of one package in one feed.
#[derive(Debug, Clone, Default)]
pub struct PackageRows {
    pub files: Vec<NativeFile>,
    /// How each version (by version key) came into the feed, when by a
    /// promotion.
    pub arrivals: HashMap<String, Arrival>,
    /// npm's dist-tags, whether or not their versions are still there (the
    /// document shows only those that are).
    pub tags: Vec<DistTag>,
}

impl PackageRows {
    /// A hash of everything in the rows: equal rows, equal documents.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.files.hash(&mut hasher);
        self.tags.hash(&mut hasher);
        let mut arrivals: Vec<_> = self.arrivals.iter().collect();
        arrivals.sort_by(|a, b| a.0.cmp(b.0));
        arrivals.hash(&mut hasher);
        hasher.finish()
    }
}

/// One file of a package in a feed, as a metadata document shows it.
#[derive(Debug, Clone, FromRow, Hash)]
pub struct NativeFile {
    pub feed_id: i64,
    pub file_id: i64,
    pub group_name: String,
    pub name: String,
    pub group_key: String,
    pub name_key: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arrival {
    pub id: i64,
    pub date: DateTime<Utc>,
    pub from_feed: String,
    pub user: String,
}

#[derive(FromRow)]
struct PromotionRow {
    id: i64,
    group_key: String,
    name_key: String,
    version_key: String,
    from_feed_id: i64,
    to_feed_id: i64,
    from_feed: String,
    user_name: String,
    promoted_at: DateTime<Utc>,
}

/// One dist-tag as stored.
#[derive(Debug, Clone, FromRow, Hash)]
pub struct DistTag {
    pub feed_id: i64,
    pub group_key: String,
    pub name_key: String,
    pub tag: String,
    pub version: String,
    pub version_key: String,
}

/// `(feed = $ AND name = $ AND group = $) OR …` for each key: each term
/// an index lookup (the feed's unique version index, the history's package
/// index, the tags' primary key).
fn push_keys<'a, DB>(
    sql: &mut QueryBuilder<'a, DB>,
    keys: &'a [PackageKey],
    [feed, name, group]: [&str; 3],
) where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sql.push(" (");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push(format_args!("({feed} = "))
            .push_bind(key.feed_id)
            .push(format_args!(" AND {name} = "))
            .push_bind(key.name_key.as_str())
            .push(format_args!(" AND {group} = "))
            .push_bind(key.group_key.as_str())
            .push(")");
    }
    sql.push(")");
}

/// The history's rows for each key: promotions into or out of its feed.
fn push_promotion_keys<'a, DB>(sql: &mut QueryBuilder<'a, DB>, keys: &'a [PackageKey])
where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sql.push(" (");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(name_key = ")
            .push_bind(key.name_key.as_str())
            .push(" AND group_key = ")
            .push_bind(key.group_key.as_str())
            .push(" AND (to_feed_id = ")
            .push_bind(key.feed_id)
            .push(" OR from_feed_id = ")
            .push_bind(key.feed_id)
            .push("))");
    }
    sql.push(")");
}

impl Store {
    /// One package in one feed, for a metadata document. Documents asked for
    /// at the same moment are read together, three statements for a whole
    /// round (see `rounds`), each round starting after its requests arrived.
    pub async fn package_rows(&self, key: PackageKey) -> Result<Arc<PackageRows>> {
        let store = self.clone();
        self.package_rounds
            .read(key, move |keys| {
                let store = store.clone();
                async move { store.read_packages(&keys).await }
            })
            .await
    }

    /// The rows of each key, in the keys' order.
    async fn read_packages(&self, keys: &[PackageKey]) -> Result<Vec<PackageRows>> {
        let files: Vec<NativeFile> = on_pool!(self, pool => {
            let mut sql = QueryBuilder::new(
                "SELECT v.feed_id, pf.id AS file_id, v.group_name, v.name, v.group_key, v.name_key, \
                        v.version, v.version_key, pf.qualifier, pf.file_name, pf.size, pf.blob_sha256, \
                        b.sha1, b.sha512, pf.metadata, pf.published_at \
                 FROM package_versions v JOIN package_files pf ON pf.version_id = v.id \
                 LEFT JOIN blobs b ON b.sha256 = pf.blob_sha256 WHERE",
            );
            push_keys(&mut sql, keys, ["v.feed_id", "v.name_key", "v.group_key"]);
            sql.push(" ORDER BY pf.id");
            sql.build_query_as().fetch_all(pool).await
        })?;
        let promotions: Vec<PromotionRow> = on_pool!(self, pool => {
            let mut sql = QueryBuilder::new(
                "SELECT id, group_key, name_key, version_key, from_feed_id, to_feed_id, from_feed, \
                        user_name, promoted_at FROM promotions WHERE",
            );
            push_promotion_keys(&mut sql, keys);
            sql.push(" ORDER BY id");
            sql.build_query_as().fetch_all(pool).await
        })?;
        let tags: Vec<DistTag> = on_pool!(self, pool => {
            let mut sql = QueryBuilder::new(
                "SELECT feed_id, group_key, name_key, tag, version, version_key FROM npm_dist_tags WHERE",
            );
            push_keys(&mut sql, keys, ["feed_id", "name_key", "group_key"]);
            sql.push(" ORDER BY tag");
            sql.build_query_as().fetch_all(pool).await
        })?;
        Ok(keys
            .iter()
            .map(|key| {
                let is = |feed_id: i64, group_key: &str, name_key: &str| {
                    feed_id == key.feed_id && group_key == key.group_key && name_key == key.name_key
                };
                let files: Vec<NativeFile> = files
                    .iter()
                    .filter(|f| is(f.feed_id, &f.group_key, &f.name_key))
                    .cloned()
                    .collect();
                let mine = promotions.iter().filter(|p| {
                    p.group_key == key.group_key
                        && p.name_key == key.name_key
                        && (p.to_feed_id == key.feed_id || p.from_feed_id == key.feed_id)
                });
                PackageRows {
                    arrivals: arrivals(key.feed_id, mine, &files),
                    tags: tags
                        .iter()
                        .filter(|t| is(t.feed_id, &t.group_key, &t.name_key))
                        .cloned()
                        .collect(),
                    files,
                }
            })
            .collect())
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

/// How each version came into `feed_id`: by the promotion that last moved it
/// there, when that was the last move touching this feed and its files are
/// no newer than it (a version deleted and uploaded again arrived by upload).
/// `promotions` are in the order they happened.
fn arrivals<'a>(
    feed_id: i64,
    promotions: impl Iterator<Item = &'a PromotionRow>,
    files: &[NativeFile],
) -> HashMap<String, Arrival> {
    let mut last: HashMap<&str, &PromotionRow> = HashMap::new();
    for row in promotions {
        last.insert(row.version_key.as_str(), row);
    }
    let mut arrivals = HashMap::new();
    for (version_key, row) in last {
        let newest_file = files
            .iter()
            .filter(|f| f.version_key == version_key)
            .map(|f| f.published_at)
            .max();
        let brought_here = row.to_feed_id == feed_id;
        if brought_here && newest_file.is_some_and(|published| published <= row.promoted_at) {
            arrivals.insert(
                version_key.to_owned(),
                Arrival {
                    id: row.id,
                    date: row.promoted_at,
                    from_feed: row.from_feed.clone(),
                    user: row.user_name.clone(),
                },
            );
        }
    }
    arrivals
}
