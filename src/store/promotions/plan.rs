//! The general executor: any plan (a promotion, a batch, a revert) in one
//! transaction of a bounded number of set-based statements.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::{
    too_late, Departure, ItemResult, Located, MoveError, MovePlan, Outcome, PromotionRecord,
    RECORD_COLUMNS,
};
use crate::config::{ACQUIRE_TIMEOUT, COMMIT_MARGIN};
use crate::domain::{Identifier, OnConflict, PackageId, VersionSpec};
use crate::ecosystems;
use crate::error::{Error, Result};
use crate::store::{on_tx, push_list, Feed, Store, WriteTx};

impl Store {
    /// Carries out a plan in one transaction: every item moves, or nothing
    /// changes. Returns each item's result; when any item failed (or in a dry
    /// run) the transaction was rolled back, and the results say why.
    ///
    /// Locks are taken in one order by every writer: the version rows in the
    /// source and the target together, by id (so two overlapping batches, in
    /// either direction, queue rather than deadlock), then the two feed rows
    /// `FOR SHARE`. The feeds are
    /// checked only once the versions are held, so a feed disabled or
    /// re-targeted while the plan waited stops it. SQLite's write lock, taken at
    /// `BEGIN IMMEDIATE`, orders everything there.
    pub async fn execute_plan(&self, plan: &MovePlan<'_>) -> Result<Vec<ItemResult>, MoveError> {
        if let Some(results) = self.promote_one_at_once(plan).await? {
            return Ok(results);
        }
        // A deadlock with some other writer rolled everything back, so running
        // the plan once more is safe (it checks its deadline again first).
        match self.execute_plan_once(plan).await {
            Err(MoveError::Failed(error)) if error.is_transient_conflict() => {
                self.execute_plan_once(plan).await
            }
            other => other,
        }
    }

    async fn execute_plan_once(&self, plan: &MovePlan<'_>) -> Result<Vec<ItemResult>, MoveError> {
        if Instant::now() + ACQUIRE_TIMEOUT + COMMIT_MARGIN > plan.answer_due {
            return Err(MoveError::Failed(too_late()));
        }
        let mut tx = self.begin_write().await?;
        let lock = match &tx {
            WriteTx::Postgres(_) => " FOR UPDATE OF pv",
            WriteTx::Sqlite(..) => "",
        };

        let mut results = resolve_versions(&mut tx, plan).await?;
        let wanted: Vec<(usize, PackageId)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.outcome.failed())
            .map(|(i, r)| (i, r.package.clone()))
            .collect();
        // `latest` may resolve to a version the plan also names outright.
        let mut identities = std::collections::HashSet::new();
        for (_, p) in &wanted {
            if !identities.insert((p.name_key(), p.group_key(), p.version_key())) {
                return Err(MoveError::Failed(Error::invalid(format!(
                    "The request names {p} twice (once as latest); each version may appear once."
                ))));
            }
        }
        let (in_source, in_target) = locate(&mut tx, plan, &wanted, lock).await?;
        if !feeds_allow(&mut tx, plan).await? {
            return Err(MoveError::FeedsChanged);
        }
        let newest = match plan.items.iter().any(|i| i.revert_of.is_some()) {
            true => newest_promotions(&mut tx, plan, &wanted).await?,
            false => HashMap::new(),
        };

        for (i, _) in &wanted {
            let item = &plan.items[*i];
            // A later promotion explains best why a revert cannot be done,
            // even when it also took the version out of the feed.
            results[*i].outcome = if let Some(newer) = item
                .revert_of
                .and_then(|id| newest.get(i).copied().filter(|newest| *newest != id))
            {
                Outcome::NotNewest(newer)
            } else if !in_source.contains_key(i) {
                Outcome::NotInSource(None)
            } else if in_target.contains_key(i) {
                match plan.on_conflict {
                    OnConflict::Fail => Outcome::AlreadyInTarget,
                    OnConflict::Skip => Outcome::Skipped,
                    OnConflict::Overwrite => Outcome::Overwritten(placeholder()),
                }
            } else {
                Outcome::Promoted(placeholder())
            };
        }

        if results.iter().any(|r| r.outcome.failed()) {
            add_departures(&mut tx, plan.from, &mut results).await?;
            // Dropping the transaction rolls it back.
            return Ok(results);
        }

        let overwritten: Vec<i64> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Overwritten(_)))
            .map(|(i, _)| in_target[&i].id)
            .collect();
        if !overwritten.is_empty() {
            on_tx!(&mut tx, conn => {
                let mut sql = QueryBuilder::new("DELETE FROM package_versions WHERE id IN (");
                push_list(&mut sql, overwritten.iter().copied());
                sql.push(")").build().execute(conn).await.map(drop)
            })?;
        }

        let moving: Vec<(usize, &Located)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Promoted(_) | Outcome::Overwritten(_)))
            .map(|(i, _)| (i, &in_source[&i]))
            .collect();
        if !moving.is_empty() {
            on_tx!(&mut tx, conn => {
                let mut sql = QueryBuilder::new("UPDATE package_versions SET feed_id = ");
                sql.push_bind(plan.to.id).push(" WHERE id IN (");
                push_list(&mut sql, moving.iter().map(|(_, row)| row.id));
                sql.push(")").build().execute(conn).await.map(drop)
            })?;
            let records = write_history(&mut tx, plan, &results, &moving).await?;
            for ((i, _), record) in moving.iter().zip(records) {
                match &mut results[*i].outcome {
                    Outcome::Promoted(r) | Outcome::Overwritten(r) => *r = record,
                    _ => unreachable!("only moving items are written"),
                }
            }
        }

        if plan.dry_run {
            return Ok(results);
        }
        // Committing with no time in hand could answer 408 for a change that
        // then commits; rolling back keeps the answer true.
        if Instant::now() + COMMIT_MARGIN > plan.answer_due {
            return Err(MoveError::Failed(too_late()));
        }
        tx.commit().await?;
        self.promotion_committed();
        Ok(results)
    }
}

/// A history row to be filled in by `write_history`.
fn placeholder() -> PromotionRecord {
    PromotionRecord {
        id: 0,
        from_feed: String::new(),
        to_feed: String::new(),
        package_type: String::new(),
        group_name: String::new(),
        name: String::new(),
        version: String::new(),
        comments: None,
        user_name: String::new(),
        promoted_at: Utc::now(),
        batch_id: None,
        revert_of: None,
        overwrote: false,
        fetched_from: None,
    }
}

/// `WITH t (item, columns…) AS (VALUES (…), …)` over `rows` (each: its item's
/// index, then one text per column); both backends accept it.
fn values_table<'a, DB>(columns: &[&str], rows: &'a [(usize, Vec<String>)]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(format!("WITH t (item, {}) AS (", columns.join(", ")));
    sql.push_values(rows, |mut row, (item, values)| {
        row.push_bind(*item as i64);
        for value in values {
            row.push_bind(value.as_str());
        }
    });
    sql.push(") ");
    sql
}

/// Turns `latest` and `latest-stable` into the highest matching version in the
/// source feed, inside the transaction. Every result starts as `Promoted` (to
/// be decided) or `NoVersion`.
async fn resolve_versions(
    tx: &mut WriteTx<'_>,
    plan: &MovePlan<'_>,
) -> Result<Vec<ItemResult>, MoveError> {
    let mut results: Vec<ItemResult> = plan
        .items
        .iter()
        .map(|item| ItemResult {
            package: item.package.clone(),
            outcome: Outcome::Promoted(placeholder()),
        })
        .collect();
    let latest: Vec<(usize, Vec<String>)> = plan
        .items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.version != VersionSpec::Exact)
        .map(|(i, item)| (i, vec![item.package.name_key(), item.package.group_key()]))
        .collect();
    if latest.is_empty() {
        return Ok(results);
    }
    let found: Vec<(i64, String, String)> = on_tx!(tx, conn => {
        let mut sql = values_table(&["n", "g"], &latest);
        sql.push("SELECT t.item, pv.version, pv.version_key FROM t CROSS JOIN package_versions pv WHERE pv.feed_id = ")
            .push_bind(plan.from.id)
            .push(" AND pv.name_key = t.n AND pv.group_key = t.g");
        sql.build_query_as().fetch_all(conn).await
    })?;
    // Each item's candidates, then the highest in the source's ecosystem order.
    let feed_type = plan.from.feed_type;
    let mut candidates: HashMap<usize, Vec<String>> = HashMap::new();
    for (item, version, key) in found {
        // Only a version its own key names: one that kept an older key (two
        // spellings of it stored before the current rules) is not what
        // `latest` can move.
        if ecosystems::version_key(feed_type, &version) == key {
            candidates.entry(item as usize).or_default().push(version);
        }
    }
    for (i, _) in latest {
        let stable_only = plan.items[i].version == VersionSpec::LatestStable;
        let versions = candidates.get(&i).into_iter().flatten().map(String::as_str);
        let best = ecosystems::latest(feed_type, versions, stable_only);
        match best.and_then(|v| Identifier::parse(v).ok()) {
            Some(version) => results[i].package = plan.items[i].package.with_version(&version),
            None => results[i].outcome = Outcome::NoVersion,
        }
    }
    Ok(results)
}

/// The rows that the items name in the source and in the target, by item,
/// locked (`lock`) in one statement in id order: every writer locks version
/// rows in that one order, so none waits for another in a cycle, whichever
/// direction each moves.
async fn locate(
    tx: &mut WriteTx<'_>,
    plan: &MovePlan<'_>,
    items: &[(usize, PackageId)],
    lock: &str,
) -> Result<(HashMap<usize, Located>, HashMap<usize, Located>), MoveError> {
    if items.is_empty() {
        return Ok((HashMap::new(), HashMap::new()));
    }
    let rows: Vec<(usize, Vec<String>)> = items
        .iter()
        .map(|(i, p)| (*i, vec![p.name_key(), p.group_key(), p.version_key()]))
        .collect();
    // `t CROSS JOIN pv` makes SQLite look each item up in the identity index
    // rather than scan the feed; PostgreSQL plans it as any join.
    let found: Vec<Located> = on_tx!(tx, conn => {
        let mut sql = values_table(&["n", "g", "v"], &rows);
        sql.push(
            "SELECT t.item, pv.id, pv.feed_id, pv.group_name, pv.name, pv.version \
             FROM t CROSS JOIN package_versions pv WHERE pv.feed_id IN (",
        )
        .push_bind(plan.from.id)
        .push(", ")
        .push_bind(plan.to.id)
        .push(
            ") AND pv.name_key = t.n AND pv.group_key = t.g AND pv.version_key = t.v \
             ORDER BY pv.id",
        )
        .push(lock);
        sql.build_query_as().fetch_all(conn).await
    })?;
    let (mut source, mut target) = (HashMap::new(), HashMap::new());
    for row in found {
        let side = if row.feed_id == plan.from.id {
            &mut source
        } else {
            &mut target
        };
        side.insert(row.item as usize, row);
    }
    Ok((source, target))
}

/// Whether the two feeds still allow the plan, checked (and on PostgreSQL
/// locked `FOR SHARE` until commit) after the versions are held.
async fn feeds_allow(tx: &mut WriteTx<'_>, plan: &MovePlan<'_>) -> Result<bool, MoveError> {
    let lock = match tx {
        WriteTx::Postgres(_) => " FOR SHARE OF s, t",
        WriteTx::Sqlite(..) => "",
    };
    let sql = format!(
        "SELECT s.id FROM feeds s, feeds t \
         WHERE s.id = $1 AND t.id = $2 AND s.active AND t.active \
         AND (NOT $3 OR s.promote_to_feed_id IS NULL OR s.promote_to_feed_id = t.id){lock}"
    );
    let found: Option<(i64,)> = on_tx!(tx, conn => sqlx::query_as(&sql)
        .bind(plan.from.id)
        .bind(plan.to.id)
        .bind(plan.check_fixed_target)
        .fetch_optional(conn)
        .await)?;
    Ok(found.is_some())
}

/// The newest promotion of each item's version into or out of the plan's two
/// feeds, for reverts. (Copies of the version in other feeds have their own
/// histories.)
async fn newest_promotions(
    tx: &mut WriteTx<'_>,
    plan: &MovePlan<'_>,
    items: &[(usize, PackageId)],
) -> Result<HashMap<usize, i64>, MoveError> {
    let Some((_, first)) = items.first() else {
        return Ok(HashMap::new());
    };
    let rows: Vec<(usize, Vec<String>)> = items
        .iter()
        .map(|(i, p)| (*i, vec![p.name_key(), p.group_key(), p.version_key()]))
        .collect();
    let found: Vec<(i64, i64)> = on_tx!(tx, conn => {
        let mut sql = values_table(&["n", "g", "v"], &rows);
        sql.push(
            "SELECT t.item, MAX(p.id) FROM t CROSS JOIN promotions p \
             WHERE p.name_key = t.n AND p.group_key = t.g AND p.version_key = t.v \
             AND p.package_type = ",
        )
        .push_bind(first.feed_type().as_str());
        for column in [" AND (p.from_feed_id IN (", ") OR p.to_feed_id IN ("] {
            sql.push(column);
            push_list(&mut sql, [plan.from.id, plan.to.id]);
        }
        sql.push(")) GROUP BY t.item");
        sql.build_query_as().fetch_all(conn).await
    })?;
    Ok(found.into_iter().map(|(i, id)| (i as usize, id)).collect())
}

/// Fills in, for items not found in the source, where the history says they
/// went: what a caller who just missed a version wants to know.
async fn add_departures(
    tx: &mut WriteTx<'_>,
    from: &Feed,
    results: &mut [ItemResult],
) -> Result<(), MoveError> {
    let missing: Vec<(usize, Vec<String>)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.outcome, Outcome::NotInSource(_)))
        .map(|(i, r)| {
            let p = &r.package;
            (i, vec![p.name_key(), p.group_key(), p.version_key()])
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let found: Vec<(i64, i64, String, DateTime<Utc>)> = on_tx!(tx, conn => {
        let mut sql = values_table(&["n", "g", "v"], &missing);
        sql.push(
            "SELECT t.item, p.id, p.to_feed, p.promoted_at FROM t CROSS JOIN promotions p \
             WHERE p.name_key = t.n AND p.group_key = t.g AND p.version_key = t.v \
             AND p.from_feed_id = ",
        )
        .push_bind(from.id)
        .push(" AND p.package_type = ")
        .push_bind(from.feed_type.as_str())
        .push(" ORDER BY p.id DESC");
        sql.build_query_as().fetch_all(conn).await
    })?;
    for (item, id, to_feed, promoted_at) in found {
        if let Outcome::NotInSource(departure @ None) = &mut results[item as usize].outcome {
            *departure = Some(Departure {
                id,
                to_feed,
                promoted_at,
            });
        }
    }
    Ok(())
}

/// Writes one history row per moved item, in one statement, and returns them
/// in the order of `moving`.
async fn write_history(
    tx: &mut WriteTx<'_>,
    plan: &MovePlan<'_>,
    results: &[ItemResult],
    moving: &[(usize, &Located)],
) -> Result<Vec<PromotionRecord>, MoveError> {
    let now = Utc::now();
    let (from, to, audit) = (plan.from, plan.to, &plan.audit);
    let rows: Vec<HistoryInsert> = on_tx!(tx, conn => {
        let mut sql = QueryBuilder::new(
            "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
             to_feed_key, package_type, group_name, name, version, group_key, name_key, \
             version_key, comments, user_name, api_key_id, promoted_at, batch_id, revert_of, \
             overwrote) ",
        );
        sql.push_values(moving, |mut values, (i, row)| {
            let package = &results[*i].package;
            values
                .push_bind(from.id)
                .push_bind(to.id)
                .push_bind(from.name.as_str())
                .push_bind(to.name.as_str())
                .push_bind(from.name_key.as_str())
                .push_bind(to.name_key.as_str())
                .push_bind(from.feed_type.as_str())
                .push_bind(row.group_name.as_str())
                .push_bind(row.name.as_str())
                .push_bind(row.version.as_str())
                .push_bind(package.group_key())
                .push_bind(package.name_key())
                .push_bind(package.version_key())
                .push_bind(audit.comments)
                .push_bind(audit.user)
                .push_bind(audit.api_key_id)
                .push_bind(now)
                .push_bind(plan.batch_id)
                .push_bind(plan.items[*i].revert_of)
                .push_bind(matches!(results[*i].outcome, Outcome::Overwritten(_)));
        });
        sql.push(format_args!(
            " RETURNING {RECORD_COLUMNS}, name_key, group_key, version_key"
        ));
        sql.build_query_as().fetch_all(conn).await
    })?;
    // RETURNING's order is not promised: match rows by identity (unique in a plan).
    let mut by_identity: HashMap<(String, String, String), PromotionRecord> = rows
        .into_iter()
        .map(|row| ((row.name_key, row.group_key, row.version_key), row.record))
        .collect();
    Ok(moving
        .iter()
        .map(|(i, _)| {
            let p = &results[*i].package;
            by_identity
                .remove(&(p.name_key(), p.group_key(), p.version_key()))
                .expect("every moved version has its history row")
        })
        .collect())
}

#[derive(FromRow)]
struct HistoryInsert {
    #[sqlx(flatten)]
    record: PromotionRecord,
    name_key: String,
    group_key: String,
    version_key: String,
}
