//! Re-keying what was stored before a key rule changed. Lookups, promotions and
//! conflicts compare the keys stored beside each version (`version_key`, from
//! `ecosystems::version_key`); when an ecosystem's rule changes, the rows
//! stored under the old rule get the new keys, once, in one transaction, by
//! the first server to start after the change.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::QueryBuilder;

use super::{on_tx, push_list, Store, WriteTx};
use crate::domain::FeedType;
use crate::ecosystems;
use crate::error::{Error, Result};

/// Each revision of the key rules, with the feed types whose keys it changed.
const REVISIONS: &[(&str, &[FeedType])] = &[(
    // Issue 21: one key per version where the ecosystem says two spellings
    // are one version (PEP 440's normal form; NuGet's normalized version).
    "version-keys-per-ecosystem",
    &[
        FeedType::Pypi,
        FeedType::Nuget,
        FeedType::Chocolatey,
        FeedType::Powershell,
    ],
)];

/// Rows updated per statement.
const CHUNK: usize = 500;

/// A stored version and its key: id, feed (or 0 for history rows), name and
/// group keys, feed type, version, version key.
type Row = (i64, i64, String, String, String, String, String);

impl Store {
    /// Applies the key revisions this database has not had yet.
    pub(super) async fn apply_key_revisions(&self) -> Result<()> {
        for (revision, feed_types) in REVISIONS {
            self.apply_key_revision(revision, feed_types).await?;
        }
        Ok(())
    }

    async fn apply_key_revision(&self, revision: &str, feed_types: &[FeedType]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The mark first: of servers starting together, one re-keys (the
        // others wait for its commit here, then find the mark).
        let claimed = on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO key_revisions (revision, applied_at) VALUES ($1, $2) \
             ON CONFLICT (revision) DO NOTHING",
        )
        .bind(revision)
        .bind(Utc::now())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        if claimed == 0 {
            return Ok(());
        }
        // However large the tables, this runs once: not under the requests'
        // statement timeout.
        if let WriteTx::Postgres(pg) = &mut tx {
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut **pg)
                .await?;
        }
        let types: Vec<&str> = feed_types.iter().map(|t| t.as_str()).collect();
        let versions: Vec<Row> = on_tx!(&mut tx, conn => {
            let mut sql = QueryBuilder::new(
                "SELECT v.id, v.feed_id, v.name_key, v.group_key, f.feed_type, v.version, \
                 v.version_key FROM package_versions v JOIN feeds f ON f.id = v.feed_id \
                 WHERE f.feed_type IN (",
            );
            push_list(&mut sql, types.iter().copied());
            sql.push(") ORDER BY v.id");
            sql.build_query_as().fetch_all(conn).await
        })?;
        // A version whose new key another version of its package in its feed
        // already has (`1.0` and `1.0.0` both stored) keeps its old key: the
        // one already holding the key is what lookups find, the other stays
        // listed and downloadable by listing, and `latest` passes it over.
        let mut taken: HashSet<(i64, String, String, String)> = versions
            .iter()
            .map(|(_, feed, name, group, _, _, key)| {
                (*feed, name.clone(), group.clone(), key.clone())
            })
            .collect();
        let mut changed = Vec::new();
        for (id, feed, name, group, feed_type, version, key) in &versions {
            let new = new_key(feed_type, version)?;
            if &new == key {
                continue;
            }
            if !taken.insert((*feed, name.clone(), group.clone(), new.clone())) {
                tracing::warn!(version_id = id, version = %version, key = %new, "a version keeps its old key: another version of its package in its feed has the new one");
                continue;
            }
            taken.remove(&(*feed, name.clone(), group.clone(), key.clone()));
            changed.push((*id, new));
        }
        update_keys(&mut tx, "package_versions", &changed).await?;

        let history: Vec<Row> = on_tx!(&mut tx, conn => {
            let mut sql = QueryBuilder::new(
                "SELECT id, CAST(0 AS BIGINT), name_key, group_key, package_type, version, \
                 version_key FROM promotions WHERE package_type IN (",
            );
            push_list(&mut sql, types.iter().copied());
            sql.push(") ORDER BY id");
            sql.build_query_as().fetch_all(conn).await
        })?;
        let mut rekeyed = Vec::new();
        for (id, _, _, _, feed_type, version, key) in &history {
            let new = new_key(feed_type, version)?;
            if &new != key {
                rekeyed.push((*id, new));
            }
        }
        update_keys(&mut tx, "promotions", &rekeyed).await?;
        tx.commit().await?;
        tracing::info!(
            revision,
            versions = changed.len(),
            history_rows = rekeyed.len(),
            "stored keys brought up to the current rules"
        );
        Ok(())
    }
}

fn new_key(feed_type: &str, version: &str) -> Result<String> {
    let feed_type: FeedType = feed_type
        .parse()
        .map_err(|rule| Error::Internal(anyhow::anyhow!("a stored feed type {rule}")))?;
    Ok(ecosystems::version_key(feed_type, version))
}

/// Sets `version_key` of the rows of `table` named by id, a chunk per
/// statement (both backends accept a `VALUES` table in a `WITH`).
async fn update_keys(tx: &mut WriteTx<'_>, table: &str, keys: &[(i64, String)]) -> Result<()> {
    for chunk in keys.chunks(CHUNK) {
        on_tx!(&mut *tx, conn => {
            let mut sql = QueryBuilder::new("WITH t (id, k) AS (");
            sql.push_values(chunk, |mut row, (id, key)| {
                row.push_bind(*id).push_bind(key.as_str());
            });
            sql.push(format_args!(
                ") UPDATE {table} SET version_key = (SELECT k FROM t WHERE t.id = {table}.id) \
                 WHERE id IN (SELECT id FROM t)"
            ));
            sql.build().execute(conn).await.map(drop)
        })?;
    }
    Ok(())
}
