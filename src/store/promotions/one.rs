//! The fast path of the common case, one version promoted by name: one
//! statement on PostgreSQL, one short transaction on SQLite; anything unusual
//! goes down the general path (`plan.rs`), which finds out what to answer.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{too_late, ItemResult, MoveError, MovePlan, Outcome, PromotionRecord, RECORD_COLUMNS};
use crate::config::{ACQUIRE_TIMEOUT, COMMIT_MARGIN};
use crate::domain::{MoveItem, VersionSpec};
use crate::error::{Error, Result};
use crate::store::{Db, Store, WriteTx};

impl Store {
    /// The common case, one version promoted by name, in one statement (one
    /// round trip on PostgreSQL, run as its own transaction): the version row
    /// is locked, then the two feeds `FOR SHARE` and checked (in the order of
    /// [`Store::execute_plan`], so the two never deadlock), and the version is
    /// moved and its history row written only if everything the move relies on
    /// holds. When it does not (the version is missing, already in the target,
    /// a feed changed, a race), nothing has changed and `None` sends the plan
    /// down the general path, which finds out what to answer.
    pub(super) async fn promote_one_at_once(
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
        let moved = match &self.group_commit {
            // Group commit: written with whatever else waits (`group.rs`).
            Some(group) => self.promote_in_round(group, plan, item).await,
            None => self.promote_one_alone(plan, item).await,
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

    /// The one-statement promotion of `item` on its own: its history row, or
    /// `None` when it did not move.
    pub(super) async fn promote_one_alone(
        &self,
        plan: &MovePlan<'_>,
        item: &MoveItem,
    ) -> Result<Option<PromotionRecord>> {
        let single = Single::new(plan, item);
        match &self.db {
            Db::Postgres(pool) => {
                bind_one(sqlx::query_as(&PROMOTE_ONE_POSTGRES), &single, Utc::now())
                    .fetch_optional(pool)
                    .await
                    .map_err(Error::from)
            }
            Db::Sqlite(..) => self.promote_one_on_sqlite(&single).await,
        }
    }

    /// On SQLite, in a transaction of its own under the write lock.
    async fn promote_one_on_sqlite(&self, single: &Single) -> Result<Option<PromotionRecord>> {
        let mut tx = self.begin_write().await?;
        let WriteTx::Sqlite(conn, _) = &mut tx else {
            unreachable!("a SQLite store begins SQLite transactions")
        };
        let Some(record) = move_one_on_sqlite(conn, single, Utc::now()).await? else {
            // Rolled back before the writer queue is let go, so the general
            // path that follows does not meet this transaction's lock.
            tx.rollback().await?;
            return Ok(None);
        };
        if Instant::now() + COMMIT_MARGIN > single.answer_due {
            return Err(too_late());
        }
        tx.commit().await?;
        Ok(Some(record))
    }
}

/// One promotion by name, owned: the parameters of the one-statement
/// promotion, which a round of group commit also carries (`group.rs`). Two
/// requests are never the same item, even for the same version (equality
/// and hashing go by `request`): each has its own answer.
#[derive(Clone)]
pub(super) struct Single {
    pub(super) request: u64,
    pub(super) from_id: i64,
    pub(super) to_id: i64,
    pub(super) from_feed: String,
    pub(super) to_feed: String,
    pub(super) from_key: String,
    pub(super) to_key: String,
    pub(super) package_type: &'static str,
    pub(super) name_key: String,
    pub(super) group_key: String,
    pub(super) version_key: String,
    pub(super) comments: Option<String>,
    pub(super) user: String,
    pub(super) api_key_id: i64,
    pub(super) batch_id: Option<String>,
    pub(super) answer_due: Instant,
}

impl PartialEq for Single {
    fn eq(&self, other: &Self) -> bool {
        self.request == other.request
    }
}

impl Eq for Single {}

impl Hash for Single {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.request.hash(state);
    }
}

impl Single {
    pub(super) fn new(plan: &MovePlan<'_>, item: &MoveItem) -> Single {
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let (from, to, p) = (plan.from, plan.to, &item.package);
        Single {
            request: REQUESTS.fetch_add(1, Ordering::Relaxed),
            from_id: from.id,
            to_id: to.id,
            from_feed: from.name.clone(),
            to_feed: to.name.clone(),
            from_key: from.name_key.clone(),
            to_key: to.name_key.clone(),
            package_type: from.feed_type.as_str(),
            name_key: p.name_key(),
            group_key: p.group_key(),
            version_key: p.version_key(),
            comments: plan.audit.comments.map(str::to_owned),
            user: plan.audit.user.to_owned(),
            api_key_id: plan.audit.api_key_id,
            batch_id: plan.batch_id.map(str::to_owned),
            answer_due: plan.answer_due,
        }
    }
}

/// SQLite cannot UPDATE inside WITH: the move (with the feed checks in its
/// WHERE) and the history row are two statements, run on `conn` inside the
/// caller's write transaction. The history row, if the version moved.
pub(super) async fn move_one_on_sqlite(
    conn: &mut sqlx::SqliteConnection,
    single: &Single,
    promoted_at: DateTime<Utc>,
) -> std::result::Result<Option<PromotionRecord>, sqlx::Error> {
    let moved = sqlx::query(MOVE_ONE_SQLITE)
        .bind(single.from_id)
        .bind(single.to_id)
        .bind(&single.name_key)
        .bind(&single.group_key)
        .bind(&single.version_key)
        .execute(&mut *conn)
        .await?;
    if moved.rows_affected() != 1 {
        return Ok(None);
    }
    bind_one(sqlx::query_as(&HISTORY_ONE_SQLITE), single, promoted_at)
        .fetch_one(&mut *conn)
        .await
        .map(Some)
}

/// Whether a statement lost a race that the general path resolves.
pub(super) fn is_race(error: &sqlx::Error) -> bool {
    crate::error::is_transient_conflict(error)
        || error
            .as_database_error()
            .is_some_and(|db| db.is_unique_violation())
}

/// Binds the parameters of [`PROMOTE_ONE_POSTGRES`] and [`HISTORY_ONE_SQLITE`].
pub(super) fn bind_one<'q, DB, O>(
    query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    single: &'q Single,
    promoted_at: DateTime<Utc>,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(single.from_id)
        .bind(single.to_id)
        .bind(single.name_key.as_str())
        .bind(single.group_key.as_str())
        .bind(single.version_key.as_str())
        .bind(single.from_feed.as_str())
        .bind(single.to_feed.as_str())
        .bind(single.from_key.as_str())
        .bind(single.to_key.as_str())
        .bind(single.package_type)
        .bind(single.comments.as_deref())
        .bind(single.user.as_str())
        .bind(single.api_key_id)
        .bind(promoted_at)
        .bind(single.batch_id.as_deref())
}

/// The history row of a one-statement promotion, from `$6` on (see `bind_one`).
pub(super) const HISTORY_COLUMNS: &str =
    "from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
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
pub(super) static PROMOTE_ONE_POSTGRES: LazyLock<String> = LazyLock::new(|| {
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
