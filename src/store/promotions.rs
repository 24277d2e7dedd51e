//! Moving package versions between feeds: one promotion, a batch or a revert,
//! each as one transaction with a bounded number of statements however many
//! versions it moves.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{on_tx, Db, Feed, Store, WriteTx};
use crate::config::{ACQUIRE_TIMEOUT, COMMIT_MARGIN};
use crate::domain::{compare_versions, is_prerelease, Identifier, PackageId};
use crate::error::{Error, Result};

/// One row of the promotion history.
#[derive(Debug, Clone, FromRow)]
pub struct PromotionRecord {
    pub id: i64,
    pub from_feed: String,
    pub to_feed: String,
    pub package_type: String,
    pub group_name: String,
    pub name: String,
    pub version: String,
    pub comments: Option<String>,
    pub user_name: String,
    pub promoted_at: DateTime<Utc>,
    pub batch_id: Option<String>,
    pub revert_of: Option<i64>,
    pub overwrote: bool,
}

/// The columns of a [`PromotionRecord`], for SELECT and RETURNING.
pub const RECORD_COLUMNS: &str = "id, from_feed, to_feed, package_type, group_name, name, \
     version, comments, user_name, promoted_at, batch_id, revert_of, overwrote";

/// Which version of a package an item means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// The version in the package's identity.
    Exact,
    /// The highest version in the source feed (`latest`).
    Latest,
    /// The highest version that is not a pre-release (`latest-stable`).
    LatestStable,
}

/// What to do with a version that is already in the target feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Fail,
    Skip,
    Overwrite,
}

/// One package version to move. For `latest` the package's version is a
/// placeholder until the transaction resolves it.
#[derive(Debug, Clone)]
pub struct MoveItem {
    pub package: PackageId,
    pub version: VersionSpec,
    /// For a revert: the promotion being undone, which must still be the newest
    /// promotion of this version.
    pub revert_of: Option<i64>,
}

/// Who asked for a move and why; written into the history rows.
pub struct MoveAudit<'a> {
    pub comments: Option<&'a str>,
    pub user: &'a str,
    pub api_key_id: i64,
}

/// A set of moves from one feed to another, done all or nothing.
pub struct MovePlan<'a> {
    pub from: &'a Feed,
    pub to: &'a Feed,
    pub items: &'a [MoveItem],
    pub on_conflict: OnConflict,
    /// False for a revert: an undo is not held to the source's fixed target.
    pub check_fixed_target: bool,
    pub audit: MoveAudit<'a>,
    /// Shared by every history row of a batch or a batch revert.
    pub batch_id: Option<&'a str>,
    /// Roll back at the end instead of committing.
    pub dry_run: bool,
    /// When the caller stops waiting (the HTTP request timeout). A transaction
    /// is only committed with time in hand, so no caller is told "timed out"
    /// about a change that then commits.
    pub answer_due: Instant,
}

/// Where a version went when it last left a feed, from the history.
#[derive(Debug, Clone)]
pub struct Departure {
    pub id: i64,
    pub to_feed: String,
    pub promoted_at: DateTime<Utc>,
}

/// What happened to one item.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Moved; `record` is its history row (its id is 0 in a dry run).
    Promoted(PromotionRecord),
    /// Moved after deleting the target's copy.
    Overwritten(PromotionRecord),
    /// Already in the target, left where it was (`onConflict=skip`).
    Skipped,
    /// Not in the source feed; the history may say where it went.
    NotInSource(Option<Departure>),
    /// Already in the target (`onConflict=fail`).
    AlreadyInTarget,
    /// For a revert: a later promotion (this id) moved the version since.
    NotNewest(i64),
    /// `latest`: the source holds no (stable) version of the package.
    NoVersion,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Outcome::NotInSource(_)
                | Outcome::AlreadyInTarget
                | Outcome::NotNewest(_)
                | Outcome::NoVersion
        )
    }
}

/// One item's result: the version it resolved to, and what happened.
#[derive(Debug, Clone)]
pub struct ItemResult {
    pub package: PackageId,
    pub outcome: Outcome,
}

/// Why a plan changed nothing as a whole.
#[derive(Debug)]
pub enum MoveError {
    /// A feed no longer allows the move (deleted, disabled, or the source's
    /// fixed target changed since the caller looked); the caller re-reads the
    /// feeds to say which.
    FeedsChanged,
    /// A version appeared in the target while the plan ran.
    TargetChanged,
    Failed(Error),
}

impl From<Error> for MoveError {
    fn from(error: Error) -> Self {
        let identity_clash = matches!(&error, Error::Database(db) if db.as_database_error().is_some_and(|db| {
            db.is_unique_violation()
                && db
                    .constraint()
                    .is_none_or(|name| name == "package_versions_identity")
        }));
        if identity_clash {
            MoveError::TargetChanged
        } else {
            MoveError::Failed(error)
        }
    }
}

impl From<sqlx::Error> for MoveError {
    fn from(error: sqlx::Error) -> Self {
        MoveError::from(Error::from(error))
    }
}

fn too_late() -> Error {
    Error::Unavailable {
        reason: "this request waited too long to start the change",
        cause: None,
    }
}

/// A row of the source or target feed that an item names.
#[derive(Debug, Clone, FromRow)]
struct Located {
    item: i64,
    id: i64,
    feed_id: i64,
    group_name: String,
    name: String,
    version: String,
}

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
            let sql = format!(
                "DELETE FROM package_versions WHERE id IN ({})",
                placeholders(1, overwritten.len())
            );
            let sql = tx.numbered(sql);
            on_tx!(&mut tx, conn => {
                let mut query = sqlx::query(&sql);
                for id in &overwritten {
                    query = query.bind(id);
                }
                query.execute(conn).await.map(drop)
            })?;
        }

        let moving: Vec<(usize, &Located)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Promoted(_) | Outcome::Overwritten(_)))
            .map(|(i, _)| (i, &in_source[&i]))
            .collect();
        if !moving.is_empty() {
            let sql = format!(
                "UPDATE package_versions SET feed_id = $1 WHERE id IN ({})",
                placeholders(2, moving.len())
            );
            let sql = tx.numbered(sql);
            on_tx!(&mut tx, conn => {
                let mut query = sqlx::query(&sql).bind(plan.to.id);
                for (_, row) in &moving {
                    query = query.bind(row.id);
                }
                query.execute(conn).await.map(drop)
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

impl Store {
    /// The common case, one version promoted by name, in one statement (one
    /// round trip on PostgreSQL, run as its own transaction): the version row
    /// is locked, then the two feeds `FOR SHARE` and checked (in the order of
    /// [`Store::execute_plan`], so the two never deadlock), and the version is
    /// moved and its history row written only if everything the move relies on
    /// holds. When it does not (the version is missing, already in the target,
    /// a feed changed, a race), nothing has changed and `None` sends the plan
    /// down the general path, which finds out what to answer.
    async fn promote_one_at_once(
        &self,
        plan: &MovePlan<'_>,
    ) -> Result<Option<Vec<ItemResult>>, MoveError> {
        let [item] = plan.items else {
            return Ok(None);
        };
        let worst_case = ACQUIRE_TIMEOUT + self.statement_timeout + COMMIT_MARGIN;
        if plan.dry_run
            || !plan.check_fixed_target
            || item.version != VersionSpec::Exact
            || item.revert_of.is_some()
            || Instant::now() + worst_case > plan.answer_due
        {
            return Ok(None);
        }
        let moved = match &self.db {
            Db::Postgres(pool) => bind_one(sqlx::query_as(&PROMOTE_ONE_POSTGRES), plan, item)
                .fetch_optional(pool)
                .await
                .map_err(Error::from),
            Db::Sqlite(..) => self.promote_one_on_sqlite(plan, item).await,
        };
        let record = match moved {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            // A version that appeared in the target meanwhile, or a deadlock:
            // nothing changed, and the general path sorts it out.
            Err(Error::Database(error)) if is_race(&error) => return Ok(None),
            Err(error) if error.is_transient_conflict() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        self.promotion_committed();
        Ok(Some(vec![ItemResult {
            package: item.package.clone(),
            outcome: Outcome::Promoted(record),
        }]))
    }

    /// SQLite cannot UPDATE inside WITH: the move (with the feed checks in its
    /// WHERE) and the history row are two statements under the write lock.
    async fn promote_one_on_sqlite(
        &self,
        plan: &MovePlan<'_>,
        item: &MoveItem,
    ) -> Result<Option<PromotionRecord>> {
        let mut tx = self.begin_write().await?;
        let WriteTx::Sqlite(conn, _) = &mut tx else {
            unreachable!("a SQLite store begins SQLite transactions")
        };
        let p = &item.package;
        let moved = sqlx::query(MOVE_ONE_SQLITE)
            .bind(plan.from.id)
            .bind(plan.to.id)
            .bind(p.name_key())
            .bind(p.group_key())
            .bind(p.version_key())
            .execute(&mut **conn)
            .await?;
        if moved.rows_affected() != 1 {
            // Rolled back before the writer queue is let go, so the general
            // path that follows does not meet this transaction's lock.
            tx.rollback().await?;
            return Ok(None);
        }
        let record = bind_one(sqlx::query_as(&HISTORY_ONE_SQLITE), plan, item)
            .fetch_one(&mut **conn)
            .await?;
        if Instant::now() + COMMIT_MARGIN > plan.answer_due {
            return Err(too_late());
        }
        tx.commit().await?;
        Ok(Some(record))
    }
}

/// Whether a statement lost a race that the general path resolves.
fn is_race(error: &sqlx::Error) -> bool {
    crate::error::is_transient_conflict(error)
        || error
            .as_database_error()
            .is_some_and(|db| db.is_unique_violation())
}

/// Binds the parameters of [`PROMOTE_ONE_POSTGRES`] and [`HISTORY_ONE_SQLITE`].
fn bind_one<'q, DB, O>(
    query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    plan: &'q MovePlan<'_>,
    item: &'q MoveItem,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let (from, to, p) = (plan.from, plan.to, &item.package);
    query
        .bind(from.id)
        .bind(to.id)
        .bind(p.name_key())
        .bind(p.group_key())
        .bind(p.version_key())
        .bind(from.name.as_str())
        .bind(to.name.as_str())
        .bind(from.name_key.as_str())
        .bind(to.name_key.as_str())
        .bind(from.feed_type.as_str())
        .bind(plan.audit.comments)
        .bind(plan.audit.user)
        .bind(plan.audit.api_key_id)
        .bind(Utc::now())
        .bind(plan.batch_id)
}

/// The history row of a one-statement promotion, from `$6` on (see `bind_one`).
const HISTORY_COLUMNS: &str = "from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
     to_feed_key, package_type, group_name, name, version, group_key, name_key, version_key, \
     comments, user_name, api_key_id, promoted_at, batch_id, revert_of, overwrote";

/// The one statement of [`Store::promote_one_at_once`] on PostgreSQL. `v`
/// locks the version rows that the item names in both feeds, by id (as
/// `locate` does); the move's one-time filter reads `v` first, so those locks
/// come before the feeds' `FOR SHARE`, in every writer's order. The version
/// moves only if it is in the source alone and both feeds allow the move; the
/// feed rows are locked, so a feed changed while this waited is re-read, not
/// trusted from the statement's snapshot. (Measured: this shape costs the
/// database about a sixth less than one whose feed check reads `v` through
/// subqueries of a materialised CTE of its own.)
static PROMOTE_ONE_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS MATERIALIZED ( \
           SELECT id, feed_id FROM package_versions \
           WHERE feed_id IN ($1, $2) AND name_key = $3 AND group_key = $4 AND version_key = $5 \
           ORDER BY id FOR UPDATE), \
         moved AS ( \
           UPDATE package_versions pv SET feed_id = $2 \
           FROM (SELECT s.id FROM feeds s, feeds t \
                 WHERE s.id = $1 AND t.id = $2 AND s.active AND t.active \
                 AND (s.promote_to_feed_id IS NULL OR s.promote_to_feed_id = t.id) \
                 FOR SHARE OF s, t) f \
           WHERE NOT EXISTS (SELECT 1 FROM v WHERE feed_id = $2) \
           AND pv.id = (SELECT id FROM v WHERE feed_id = $1) \
           RETURNING pv.group_name, pv.name, pv.version) \
         INSERT INTO promotions ({HISTORY_COLUMNS}) \
         SELECT $1, $2, $6, $7, $8, $9, $10, group_name, name, version, $4, $3, $5, \
           $11, $12, $13, $14, $15, NULL, FALSE FROM moved \
         RETURNING {RECORD_COLUMNS}"
    )
});

/// The move of [`Store::promote_one_on_sqlite`]: only if both feeds allow it
/// and the target holds no copy.
const MOVE_ONE_SQLITE: &str = "UPDATE package_versions SET feed_id = ?2 \
     WHERE feed_id = ?1 AND name_key = ?3 AND group_key = ?4 AND version_key = ?5 \
     AND EXISTS (SELECT 1 FROM feeds s, feeds t WHERE s.id = ?1 AND t.id = ?2 \
       AND s.active AND t.active \
       AND (s.promote_to_feed_id IS NULL OR s.promote_to_feed_id = t.id)) \
     AND NOT EXISTS (SELECT 1 FROM package_versions x WHERE x.feed_id = ?2 \
       AND x.name_key = ?3 AND x.group_key = ?4 AND x.version_key = ?5)";

/// The history row of [`Store::promote_one_on_sqlite`], from the moved row.
static HISTORY_ONE_SQLITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO promotions ({HISTORY_COLUMNS}) \
         SELECT ?1, ?2, ?6, ?7, ?8, ?9, ?10, group_name, name, version, ?4, ?3, ?5, \
           ?11, ?12, ?13, ?14, ?15, NULL, FALSE \
         FROM package_versions WHERE feed_id = ?2 AND name_key = ?3 AND group_key = ?4 \
           AND version_key = ?5 \
         RETURNING {RECORD_COLUMNS}"
    )
});

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
    }
}

/// `$first, $first+1, …`: `count` numbered placeholders.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WITH t (item, columns…) AS (VALUES ($k, …), …)` over `rows`, numbering
/// placeholders from `first`; both backends accept it. Returns the clause and
/// the text values in bind order (each row: its index, then `columns`).
fn values_table(
    columns: &[&str],
    first: usize,
    rows: &[(usize, Vec<String>)],
) -> (String, Vec<(i64, Vec<String>)>) {
    let width = columns.len() + 1;
    let tuples: Vec<String> = (0..rows.len())
        .map(|r| format!("({})", placeholders(first + r * width, width)))
        .collect();
    let clause = format!(
        "WITH t (item, {}) AS (VALUES {})",
        columns.join(", "),
        tuples.join(", ")
    );
    let binds = rows.iter().map(|(i, v)| (*i as i64, v.clone())).collect();
    (clause, binds)
}

/// Binds a `values_table`'s rows (after any binds already made).
macro_rules! bind_rows {
    ($query:expr, $rows:expr) => {{
        let mut query = $query;
        for (item, values) in $rows {
            query = query.bind(*item);
            for value in values {
                query = query.bind(value.clone());
            }
        }
        query
    }};
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
    let (with, rows) = values_table(&["n", "g"], 2, &latest);
    let sql = format!(
        "{with} SELECT t.item, pv.version FROM t CROSS JOIN package_versions pv \
         WHERE pv.feed_id = $1 AND pv.name_key = t.n AND pv.group_key = t.g"
    );
    let sql = tx.numbered(sql);
    let found: Vec<(i64, String)> = on_tx!(tx, conn => bind_rows!(
        sqlx::query_as(&sql).bind(plan.from.id), &rows
    )
    .fetch_all(conn)
    .await)?;
    let mut best: HashMap<usize, String> = HashMap::new();
    for (item, version) in found {
        let item = item as usize;
        if plan.items[item].version == VersionSpec::LatestStable && is_prerelease(&version) {
            continue;
        }
        let higher = best.get(&item).is_none_or(|current| {
            compare_versions(&version, current)
                .then_with(|| version.cmp(current))
                .is_gt()
        });
        if higher {
            best.insert(item, version);
        }
    }
    for (i, _) in latest {
        match best.get(&i).and_then(|v| Identifier::parse(v).ok()) {
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
    let (with, rows) = values_table(&["n", "g", "v"], 3, &rows);
    // `t CROSS JOIN pv` makes SQLite look each item up in the identity index
    // rather than scan the feed; PostgreSQL plans it as any join.
    let sql = format!(
        "{with} SELECT t.item, pv.id, pv.feed_id, pv.group_name, pv.name, pv.version \
         FROM t CROSS JOIN package_versions pv \
         WHERE pv.feed_id IN ($1, $2) AND pv.name_key = t.n AND pv.group_key = t.g \
         AND pv.version_key = t.v ORDER BY pv.id{lock}"
    );
    let sql = tx.numbered(sql);
    let found: Vec<Located> = on_tx!(tx, conn => bind_rows!(
        sqlx::query_as(&sql).bind(plan.from.id).bind(plan.to.id), &rows
    )
    .fetch_all(conn)
    .await)?;
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
    let sql = tx.numbered(sql);
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
    let (with, rows) = values_table(&["n", "g", "v"], 4, &rows);
    let sql = format!(
        "{with} SELECT t.item, MAX(p.id) FROM t CROSS JOIN promotions p \
         WHERE p.name_key = t.n AND p.group_key = t.g AND p.version_key = t.v \
         AND p.package_type = $1 \
         AND (p.from_feed_id IN ($2, $3) OR p.to_feed_id IN ($2, $3)) GROUP BY t.item"
    );
    let sql = tx.numbered(sql);
    let found: Vec<(i64, i64)> = on_tx!(tx, conn => bind_rows!(
        sqlx::query_as(&sql)
            .bind(first.feed_type().as_str())
            .bind(plan.from.id)
            .bind(plan.to.id),
        &rows
    )
    .fetch_all(conn)
    .await)?;
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
    let (with, rows) = values_table(&["n", "g", "v"], 3, &missing);
    let sql = format!(
        "{with} SELECT t.item, p.id, p.to_feed, p.promoted_at FROM t CROSS JOIN promotions p \
         WHERE p.name_key = t.n AND p.group_key = t.g AND p.version_key = t.v \
         AND p.from_feed_id = $1 AND p.package_type = $2 ORDER BY p.id DESC"
    );
    let sql = tx.numbered(sql);
    let found: Vec<(i64, i64, String, DateTime<Utc>)> = on_tx!(tx, conn => bind_rows!(
        sqlx::query_as(&sql).bind(from.id).bind(from.feed_type.as_str()), &rows
    )
    .fetch_all(conn)
    .await)?;
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
    const COLUMNS: usize = 20;
    let tuples: Vec<String> = (0..moving.len())
        .map(|r| format!("({})", placeholders(1 + r * COLUMNS, COLUMNS)))
        .collect();
    let sql = format!(
        "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
         to_feed_key, package_type, group_name, name, version, group_key, name_key, version_key, \
         comments, user_name, api_key_id, promoted_at, batch_id, revert_of, overwrote) \
         VALUES {} RETURNING {RECORD_COLUMNS}, name_key, group_key, version_key",
        tuples.join(", ")
    );
    let sql = tx.numbered(sql);
    let now = Utc::now();
    let (from, to, audit) = (plan.from, plan.to, &plan.audit);
    let rows: Vec<HistoryInsert> = on_tx!(tx, conn => {
        let mut query = sqlx::query_as(&sql);
        for (i, row) in moving {
            let package = &results[*i].package;
            query = query
                .bind(from.id)
                .bind(to.id)
                .bind(&from.name)
                .bind(&to.name)
                .bind(&from.name_key)
                .bind(&to.name_key)
                .bind(from.feed_type.as_str())
                .bind(&row.group_name)
                .bind(&row.name)
                .bind(&row.version)
                .bind(package.group_key())
                .bind(package.name_key())
                .bind(package.version_key())
                .bind(audit.comments)
                .bind(audit.user)
                .bind(audit.api_key_id)
                .bind(now)
                .bind(plan.batch_id)
                .bind(plan.items[*i].revert_of)
                .bind(matches!(results[*i].outcome, Outcome::Overwritten(_)));
        }
        query.fetch_all(conn).await
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
