//! What the native endpoints read (contract sections 12 to 14): one package's
//! files in one feed with their digests and metadata, how each version came
//! into the feed, npm's dist-tags, and the backfill of blobs stored before
//! digests and metadata were kept. Every read here is one indexed statement
//! per document, whatever the number of versions.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{on_pool, on_tx, Db, Digests, Feed, Store};
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
#[derive(Debug, Clone, Hash)]
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
    pub md5: Option<String>,
    /// The ecosystem's own description (`ecosystems::Found::metadata`).
    pub metadata: Option<String>,
    pub published_at: DateTime<Utc>,
    /// Where a connector fetched it from; `None` for a file uploaded here.
    pub cached_from: Option<String>,
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

/// A promotion into or out of a key's feed, in the order they happened.
struct PromotionRow {
    id: i64,
    version_key: String,
    to_feed_id: i64,
    from_feed: String,
    user_name: String,
    promoted_at: DateTime<Utc>,
}

/// One dist-tag as stored.
#[derive(Debug, Clone, Hash)]
pub struct DistTag {
    pub tag: String,
    pub version: String,
    pub version_key: String,
}

/// The round's keys as a table `k (feed_id, name_key, group_key, i)`, `i`
/// each key's place in the round, bound as parameters whatever their number,
/// so that the statement's text is fixed and prepared once per connection:
/// PostgreSQL's arrays, SQLite's JSON.
fn keys_table(db: &Db) -> &'static str {
    match db {
        Db::Postgres(_) => {
            "(SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY) \
             AS k (feed_id, name_key, group_key, i)"
        }
        Db::Sqlite(..) => {
            "(SELECT json_extract(value, '$[0]') AS feed_id, json_extract(value, '$[1]') AS name_key, \
              json_extract(value, '$[2]') AS group_key, key + 1 AS i FROM json_each($1)) AS k"
        }
    }
}

/// One row of a round's statement: a file (part 0), a promotion into or out
/// of the key's feed (1) or a dist-tag (2) of the key at place `i`.
#[derive(FromRow)]
struct Part {
    part: i64,
    i: i64,
    id: Option<i64>,
    group_name: Option<String>,
    name: Option<String>,
    version: Option<String>,
    version_key: String,
    qualifier: Option<String>,
    file_name: Option<String>,
    size: Option<i64>,
    blob_sha256: Option<String>,
    sha1: Option<String>,
    sha512: Option<String>,
    md5: Option<String>,
    metadata: Option<String>,
    at: Option<DateTime<Utc>>,
    to_feed_id: Option<i64>,
    from_feed: Option<String>,
    user_name: Option<String>,
    tag: Option<String>,
    cached_from: Option<String>,
}

/// Everything a round reads, in one statement: each key's files, the
/// promotions into or out of its feed, and its dist-tags. Each part is an
/// index lookup (the feed's unique version index, the history's package
/// index, the tags' primary key).
fn round_statement(db: &Db) -> String {
    let k = keys_table(db);
    let none = |ty: &str| format!("CAST(NULL AS {ty})");
    let (int, text, time) = (none("BIGINT"), none("TEXT"), none("TIMESTAMPTZ"));
    let versions = each_key(
        db,
        "package_versions v",
        "v.feed_id = k.feed_id AND v.name_key = k.name_key AND v.group_key = k.group_key",
    );
    let promotions = each_key(
        db,
        "promotions p",
        "p.name_key = k.name_key AND p.group_key = k.group_key \
         AND (p.to_feed_id = k.feed_id OR p.from_feed_id = k.feed_id)",
    );
    let tags = each_key(
        db,
        "npm_dist_tags t",
        "t.feed_id = k.feed_id AND t.name_key = k.name_key AND t.group_key = k.group_key",
    );
    format!(
        "SELECT CAST(0 AS BIGINT) AS part, CAST(k.i AS BIGINT) AS i, pf.id AS id, \
                v.group_name, v.name, v.version, v.version_key, pf.qualifier, pf.file_name, \
                pf.size, pf.blob_sha256, b.sha1, b.sha512, b.md5, pf.metadata, pf.published_at AS at, \
                {int} AS to_feed_id, {text} AS from_feed, {text} AS user_name, {text} AS tag, \
                pf.cached_from AS cached_from \
         FROM {k} {versions} \
         JOIN package_files pf ON pf.version_id = v.id \
         LEFT JOIN blobs b ON b.sha256 = pf.blob_sha256 \
         UNION ALL \
         SELECT 1, k.i, p.id, {text}, {text}, {text}, p.version_key, {text}, {text}, {int}, \
                {text}, {text}, {text}, {text}, {text}, p.promoted_at, p.to_feed_id, p.from_feed, \
                p.user_name, {text}, {text} \
         FROM {k} {promotions} \
         UNION ALL \
         SELECT 2, k.i, {int}, {text}, {text}, t.version, t.version_key, {text}, {text}, {int}, \
                {text}, {text}, {text}, {text}, {text}, {time}, {int}, {text}, {text}, t.tag, {text} \
         FROM {k} {tags} \
         ORDER BY part, id, tag"
    )
}

/// `table`'s rows matching each key, looked up by index one key at a time.
/// On PostgreSQL a prepared statement's generic plan cannot know how many
/// keys a round has and would scan and hash the whole table; a lateral
/// subquery kept apart by `OFFSET 0` makes each key an index lookup.
/// SQLite looks up each row of the outer table by index anyway.
fn each_key(db: &Db, table: &str, condition: &str) -> String {
    match db {
        Db::Postgres(_) => {
            let (name, alias) = table.split_once(' ').expect("a table and its alias");
            format!(
                "CROSS JOIN LATERAL (SELECT * FROM {name} {alias} WHERE {condition} OFFSET 0) AS {alias}"
            )
        }
        Db::Sqlite(..) => format!("JOIN {table} ON {condition}"),
    }
}

impl Store {
    /// One package in one feed, for a metadata document. Documents asked for
    /// at the same moment are read together, one statement for a whole round
    /// (see `rounds`), each round starting after its requests arrived.
    pub async fn package_rows(&self, key: PackageKey) -> Result<Arc<PackageRows>> {
        let store = self.clone();
        self.package_rounds
            .read(key, move |keys| {
                let store = store.clone();
                async move { store.read_packages(&keys).await }
            })
            .await
    }

    /// The rows of each key, in the keys' order, from one statement.
    async fn read_packages(&self, keys: &[PackageKey]) -> Result<Vec<PackageRows>> {
        let sql = round_statement(self.db());
        let parts: Vec<Part> = match self.db() {
            Db::Postgres(pool) => {
                sqlx::query_as(&sql)
                    .bind(keys.iter().map(|k| k.feed_id).collect::<Vec<i64>>())
                    .bind(
                        keys.iter()
                            .map(|k| k.name_key.as_str())
                            .collect::<Vec<&str>>(),
                    )
                    .bind(
                        keys.iter()
                            .map(|k| k.group_key.as_str())
                            .collect::<Vec<&str>>(),
                    )
                    .fetch_all(pool)
                    .await
            }
            Db::Sqlite(pool, _) => {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|k| (k.feed_id, &k.name_key, &k.group_key))
                    .collect();
                let keys = serde_json::to_string(&keys).expect("keys are JSON");
                sqlx::query_as(&sql).bind(keys).fetch_all(pool).await
            }
        }?;
        let mut rounds: Vec<(PackageRows, Vec<PromotionRow>)> =
            keys.iter().map(|_| Default::default()).collect();
        for part in parts {
            let Some(index) = usize::try_from(part.i - 1).ok().filter(|i| *i < keys.len()) else {
                continue;
            };
            let key = &keys[index];
            let (rows, promotions) = &mut rounds[index];
            match part.part {
                0 => rows.files.push(NativeFile {
                    feed_id: key.feed_id,
                    file_id: part.id.unwrap_or_default(),
                    group_name: part.group_name.unwrap_or_default(),
                    name: part.name.unwrap_or_default(),
                    group_key: key.group_key.clone(),
                    name_key: key.name_key.clone(),
                    version: part.version.unwrap_or_default(),
                    version_key: part.version_key,
                    qualifier: part.qualifier.unwrap_or_default(),
                    file_name: part.file_name,
                    size: part.size,
                    blob_sha256: part.blob_sha256,
                    sha1: part.sha1,
                    sha512: part.sha512,
                    md5: part.md5,
                    metadata: part.metadata,
                    published_at: part.at.unwrap_or_default(),
                    cached_from: part.cached_from,
                }),
                1 => promotions.push(PromotionRow {
                    id: part.id.unwrap_or_default(),
                    version_key: part.version_key,
                    to_feed_id: part.to_feed_id.unwrap_or_default(),
                    from_feed: part.from_feed.unwrap_or_default(),
                    user_name: part.user_name.unwrap_or_default(),
                    promoted_at: part.at.unwrap_or_default(),
                }),
                _ => rows.tags.push(DistTag {
                    tag: part.tag.unwrap_or_default(),
                    version: part.version.unwrap_or_default(),
                    version_key: part.version_key,
                }),
            }
        }
        Ok(keys
            .iter()
            .zip(rounds)
            .map(|(key, (mut rows, promotions))| {
                rows.arrivals = arrivals(key.feed_id, promotions.iter(), &rows.files);
                rows
            })
            .collect())
    }

    /// Every package with a file in `feed` (PyPI's project list): one
    /// spelling of each package's name (the least, so the same every time),
    /// and its name key, in key order.
    pub async fn packages_with_files(&self, feed: &Feed) -> Result<Vec<(String, String)>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT MIN(v.name) AS name, v.name_key FROM package_versions v \
             WHERE v.feed_id = $1 AND EXISTS (SELECT 1 FROM package_files pf \
               WHERE pf.version_id = v.id AND pf.blob_sha256 IS NOT NULL) \
             GROUP BY v.name_key ORDER BY v.name_key",
        )
        .bind(feed.id)
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
            "UPDATE blobs SET sha1 = $2, sha512 = $3, md5 = $4 \
             WHERE sha256 = $1 AND (sha512 IS NULL OR md5 IS NULL)",
        )
        .bind(sha256)
        .bind(&digests.sha1)
        .bind(&digests.sha512)
        .bind(&digests.md5)
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
