use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{Database, Encode, FromRow, QueryBuilder, Sqlite, Type};

use super::{on_pool, on_tx, once_more_on_conflict, Db, Feed, Store, WriteTx};
use crate::domain::{FilterKeys, PackageId};
use crate::error::Result;

/// One file of a package version, as the CLI loads it.
#[derive(Debug, Clone, Default)]
pub struct NewFile {
    pub qualifier: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewPackage {
    pub id: PackageId,
    pub file: NewFile,
}

/// One file of a package version in a feed, as the packages API lists it.
#[derive(Debug, Clone, FromRow)]
pub struct PackageFile {
    pub group_name: String,
    pub name: String,
    pub version: String,
    pub group_key: String,
    pub name_key: String,
    pub qualifier: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub published_at: DateTime<Utc>,
    /// The stored content's hash; `None` for a record without content (`promoter
    /// packages add`).
    pub blob_sha256: Option<String>,
    /// The name the file is downloaded under (uploads only).
    pub file_name: Option<String>,
    /// Where a connector fetched it from; `None` for a file uploaded here.
    pub cached_from: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub files_added: u64,
    /// Files that were already in the feed and were left as they were.
    pub files_present: u64,
}

/// Rows per transaction when importing: large enough that round trips do not
/// dominate, small enough that one failed batch loses little work.
const POSTGRES_BATCH: usize = 10_000;
/// Batches in flight at once on PostgreSQL: the server does the work, and this
/// keeps a few of its cores busy without taking the whole pool.
const POSTGRES_PARALLEL_BATCHES: usize = 4;
/// SQLite caps bound parameters at 32,766 per statement; six per row.
const SQLITE_BATCH: usize = 2_000;

impl Store {
    /// Adds one file to a feed, creating its package version if needed. Returns
    /// false when the feed already had that file.
    pub async fn add_package(&self, feed: &Feed, package: &NewPackage) -> Result<bool> {
        let summary = self
            .import_packages(feed, std::slice::from_ref(package))
            .await?;
        Ok(summary.files_added == 1)
    }

    /// Loads package files into a feed in batches, one transaction per batch.
    /// Files already present are skipped and counted.
    pub async fn import_packages(
        &self,
        feed: &Feed,
        packages: &[NewPackage],
    ) -> Result<ImportSummary> {
        let now = Utc::now();
        let mut summary = ImportSummary::default();
        let mut count = |chunk_len: usize, added: u64| {
            summary.files_added += added;
            summary.files_present += chunk_len as u64 - added;
        };
        match &self.db {
            Db::Postgres(pool) => {
                // Batches run side by side on several connections. Each version's
                // files stay in one batch, so no two batches touch the same row
                // and none waits for another's locks.
                let mut sorted: Vec<&NewPackage> = packages.iter().collect();
                sorted.sort_by_cached_key(|p| {
                    (p.id.group_key(), p.id.name_key(), p.id.version_key())
                });
                let batches = version_aligned_batches(&sorted, POSTGRES_BATCH);
                let mut results = futures_util::stream::iter(batches)
                    .map(|batch| async move {
                        let added = import_batch_postgres(pool, feed.id, batch, now).await?;
                        Ok::<_, crate::error::Error>((batch.len(), added))
                    })
                    .buffer_unordered(POSTGRES_PARALLEL_BATCHES);
                while let Some(result) = results.next().await {
                    let (len, added) = result?;
                    count(len, added);
                }
            }
            Db::Sqlite(..) => {
                // SQLite has one writer at a time: batches go one after another.
                for chunk in packages.chunks(SQLITE_BATCH) {
                    let mut tx = self.begin_write().await?;
                    let WriteTx::Sqlite(conn, _) = &mut tx else {
                        unreachable!("a SQLite store begins SQLite transactions")
                    };
                    let added = import_batch_sqlite(conn, feed.id, chunk, now).await?;
                    tx.commit().await?;
                    count(chunk.len(), added);
                }
            }
        }
        Ok(summary)
    }

    /// The files of a feed, optionally only those of one package (or version)
    /// and one qualifier, at most `limit`: `keys` are normalised for the feed's
    /// type.
    pub async fn package_files(
        &self,
        feed: &Feed,
        keys: Option<&FilterKeys>,
        qualifier: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PackageFile>> {
        Ok(on_pool!(self, pool => {
            let mut sql = files_query(feed, keys, qualifier);
            sql.push(" LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?)
    }

    /// Like `package_files`, without a limit, handing each file to `visit` as it
    /// arrives: for answers much smaller than what they read, such as the latest
    /// version of every package in a large feed.
    pub async fn for_each_package_file(
        &self,
        feed: &Feed,
        keys: Option<&FilterKeys>,
        qualifier: Option<&str>,
        mut visit: impl FnMut(PackageFile) -> Result<()>,
    ) -> Result<()> {
        on_pool!(self, pool => {
            let mut sql = files_query(feed, keys, qualifier);
            let mut files = sql.build_query_as().fetch(pool);
            while let Some(file) = files.try_next().await? {
                visit(file)?;
            }
        });
        Ok(())
    }

    /// Deletes a package version from a feed, or only its file with `qualifier`
    /// (and then the version too if that was its last file). Returns how many
    /// files went; 0 means there was no such package.
    pub async fn delete_package(
        &self,
        feed: &Feed,
        package: &PackageId,
        qualifier: Option<&str>,
    ) -> Result<u64> {
        once_more_on_conflict(|| self.delete_package_once(feed, package, qualifier)).await
    }

    async fn delete_package_once(
        &self,
        feed: &Feed,
        package: &PackageId,
        qualifier: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // The version row is locked first (PostgreSQL), as a promotion locks it,
        // so that a promotion cannot move it to another feed between the two
        // deletes and leave it there without the files deleted here.
        let find = "SELECT id FROM package_versions \
                    WHERE feed_id = $1 AND name_key = $2 AND group_key = $3 AND version_key = $4";
        let find = match &tx {
            WriteTx::Postgres(_) => format!("{find} FOR UPDATE"),
            WriteTx::Sqlite(..) => find.to_owned(),
        };
        let version: Option<(i64,)> = on_tx!(&mut tx, conn => sqlx::query_as(&find)
            .bind(feed.id)
            .bind(package.name_key())
            .bind(package.group_key())
            .bind(package.version_key())
            .fetch_optional(conn)
            .await)?;
        let Some((version_id,)) = version else {
            return Ok(0);
        };
        let deleted = on_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM package_files WHERE version_id = $1 AND ($2 IS NULL OR qualifier = $2)",
        )
        .bind(version_id)
        .bind(qualifier)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        on_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM package_versions WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM package_files pf WHERE pf.version_id = $1)",
        )
        .bind(version_id)
        .execute(conn)
        .await
        .map(drop))?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// How many files a feed holds; the CLI reports it after an import.
    pub async fn count_files(&self, feed: &Feed) -> Result<i64> {
        let (count,): (i64,) = on_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM package_files pf JOIN package_versions v ON v.id = pf.version_id WHERE v.feed_id = $1",
        )
        .bind(feed.id)
        .fetch_one(pool)
        .await)?;
        Ok(count)
    }
}

/// The statement selecting a feed's files, ordered by identity and qualifier.
fn files_query<'a, DB>(
    feed: &Feed,
    keys: Option<&'a FilterKeys>,
    qualifier: Option<&'a str>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(FILE_COLUMNS);
    sql.push(" WHERE v.feed_id = ").push_bind(feed.id);
    let keys = keys.map_or([None, None, None], |keys| {
        [&keys.name_key, &keys.group_key, &keys.version_key].map(Option::as_deref)
    });
    let equal = ["v.name_key", "v.group_key", "v.version_key"]
        .into_iter()
        .zip(keys)
        .chain([("pf.qualifier", qualifier)]);
    for (column, value) in equal {
        if let Some(value) = value {
            sql.push(" AND ").push(column).push(" = ").push_bind(value);
        }
    }
    sql.push(" ORDER BY v.name_key, v.group_key, v.version_key, pf.qualifier");
    sql
}

/// What a [`PackageFile`] is read from.
const FILE_COLUMNS: &str =
    "SELECT v.group_name, v.name, v.version, v.group_key, v.name_key, pf.qualifier, pf.size, \
     pf.sha256, pf.published_at, pf.blob_sha256, pf.file_name, pf.cached_from \
     FROM package_versions v JOIN package_files pf ON pf.version_id = v.id";

/// One file by its feed (`$1`), its version's keys (name `$2`, group `$3`,
/// version `$4`) and its qualifier (`$5`).
pub(super) fn files_query_by_identity() -> String {
    format!(
        "{FILE_COLUMNS} WHERE v.feed_id = $1 AND v.name_key = $2 AND v.group_key = $3 \
         AND v.version_key = $4 AND pf.qualifier = $5"
    )
}

/// One file by its version's id (`$1`) and qualifier (`$2`).
pub(super) fn files_query_by_version() -> String {
    format!("{FILE_COLUMNS} WHERE v.id = $1 AND pf.qualifier = $2")
}

/// Cuts `sorted` (ordered by identity) into batches of about `size` rows, never
/// between two files of one version.
fn version_aligned_batches<'a>(
    sorted: &'a [&'a NewPackage],
    size: usize,
) -> Vec<&'a [&'a NewPackage]> {
    let mut batches = Vec::new();
    let mut rest = sorted;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while end < rest.len() && same_version(&rest[end].id, &rest[end - 1].id) {
            end += 1;
        }
        let (batch, tail) = rest.split_at(end);
        batches.push(batch);
        rest = tail;
    }
    batches
}

fn same_version(a: &PackageId, b: &PackageId) -> bool {
    (a.group_key(), a.name_key(), a.version_key()) == (b.group_key(), b.name_key(), b.version_key())
}

/// PostgreSQL takes each column of the batch as one array parameter, and does the
/// batch in one statement: the version upsert returns the id of every version in
/// the batch, new or not, so the files join against the batch alone (never
/// against the whole feed, which would make a large import quadratic).
async fn import_batch_postgres(
    pool: &sqlx::PgPool,
    feed_id: i64,
    chunk: &[&NewPackage],
    now: DateTime<Utc>,
) -> Result<u64> {
    let column = |f: fn(&NewPackage) -> String| chunk.iter().map(|p| f(p)).collect::<Vec<String>>();
    let added = sqlx::query(
        "WITH input AS ( \
           SELECT * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                $7::text[], $8::text[], $9::bigint[], $10::text[]) \
             AS t (g, n, v, gk, nk, vk, q, s, h)), \
         versions AS ( \
           INSERT INTO package_versions (feed_id, group_name, name, version, group_key, name_key, version_key, created_at) \
           SELECT DISTINCT ON (gk, nk, vk) $1, g, n, v, gk, nk, vk, $11 FROM input \
           ON CONFLICT (feed_id, name_key, group_key, version_key) \
             DO UPDATE SET version = package_versions.version \
           RETURNING id, group_key, name_key, version_key) \
         INSERT INTO package_files (version_id, qualifier, size, sha256, published_at) \
         SELECT versions.id, input.q, input.s, input.h, $11 \
         FROM input JOIN versions \
           ON versions.group_key = input.gk AND versions.name_key = input.nk AND versions.version_key = input.vk \
         ON CONFLICT (version_id, qualifier) DO NOTHING",
    )
    .bind(feed_id)
    .bind(column(|p| p.id.group().to_owned()))
    .bind(column(|p| p.id.name().to_owned()))
    .bind(column(|p| p.id.version().to_owned()))
    .bind(column(|p| p.id.group_key()))
    .bind(column(|p| p.id.name_key()))
    .bind(column(|p| p.id.version_key()))
    .bind(column(|p| p.file.qualifier.clone()))
    .bind(chunk.iter().map(|p| p.file.size).collect::<Vec<_>>())
    .bind(chunk.iter().map(|p| p.file.sha256.clone()).collect::<Vec<_>>())
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(added)
}

/// SQLite has no array parameters: each batch is a multi-row VALUES list.
async fn import_batch_sqlite(
    conn: &mut sqlx::SqliteConnection,
    feed_id: i64,
    chunk: &[NewPackage],
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut versions = QueryBuilder::<Sqlite>::new(
        "INSERT INTO package_versions (feed_id, group_name, name, version, group_key, name_key, version_key, created_at) ",
    );
    versions.push_values(chunk, |mut row, p| {
        row.push_bind(feed_id)
            .push_bind(p.id.group())
            .push_bind(p.id.name())
            .push_bind(p.id.version())
            .push_bind(p.id.group_key())
            .push_bind(p.id.name_key())
            .push_bind(p.id.version_key())
            .push_bind(now);
    });
    versions.push(" ON CONFLICT (feed_id, name_key, group_key, version_key) DO NOTHING");
    versions.build().execute(&mut *conn).await?;

    let mut files = QueryBuilder::<Sqlite>::new("WITH t (gk, nk, vk, q, s, h) AS (");
    files.push_values(chunk, |mut row, p| {
        row.push_bind(p.id.group_key())
            .push_bind(p.id.name_key())
            .push_bind(p.id.version_key())
            .push_bind(&p.file.qualifier)
            .push_bind(p.file.size)
            .push_bind(&p.file.sha256);
    });
    files.push(
        ") INSERT INTO package_files (version_id, qualifier, size, sha256, published_at) \
         SELECT v.id, t.q, t.s, t.h, ",
    );
    files.push_bind(now);
    files.push(" FROM t JOIN package_versions v ON v.feed_id = ");
    files.push_bind(feed_id);
    // "WHERE TRUE" tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    files.push(
        " AND v.group_key = t.gk AND v.name_key = t.nk AND v.version_key = t.vk \
         WHERE TRUE ON CONFLICT (version_id, qualifier) DO NOTHING",
    );
    Ok(files.build().execute(&mut *conn).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FeedType, Identifier};

    fn file(name: &str, version: &str) -> NewPackage {
        NewPackage {
            id: PackageId::new(
                FeedType::Nuget,
                None,
                &Identifier::parse(name).unwrap(),
                &Identifier::parse(version).unwrap(),
            )
            .unwrap(),
            file: NewFile::default(),
        }
    }

    #[test]
    fn batches_never_split_a_version() {
        // Sorted by identity: a has three files, B/b one version in two spellings.
        let files = [
            file("a", "1"),
            file("a", "1"),
            file("a", "1"),
            file("B", "1"),
            file("b", "1"),
            file("c", "1"),
            file("d", "1"),
        ];
        let sorted: Vec<&NewPackage> = files.iter().collect();
        let sizes: Vec<usize> = version_aligned_batches(&sorted, 2)
            .iter()
            .map(|batch| batch.len())
            .collect();
        assert_eq!(sizes, [3, 2, 2]);
        assert_eq!(version_aligned_batches(&sorted, 100).len(), 1);
        assert!(version_aligned_batches(&[], 2).is_empty());
    }
}
