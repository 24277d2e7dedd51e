//! Group commit: single promotions that arrive while one is being written are
//! written together, by one statement and one commit, instead of one of each
//! per promotion; the per-statement and per-commit costs are what limited a
//! server's promotions (BENCHMARKS.md, issue 26).
//!
//! A round only carries the fast path's case (one version named exactly, see
//! `one.rs`), and it moves an item only where the one-statement promotion
//! would have moved it alone. Every item it does not move (missing, already
//! in the target, a feed that no longer allows it, a row another writer holds,
//! a deadline too close, the same version named twice in the round, a round
//! that lost a race as a whole) goes down the general path on its own once the
//! round has committed, which finds out its answer exactly as if the requests
//! had run one after the other, the round's first. So each request gets the
//! answer it would have got alone, and one item's refusal never touches
//! another's move. Only a database that cannot be used fails every item of a
//! round, with the 503 each would have got alone.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::one::{bind_one, is_race, move_one_on_sqlite, Single};
use super::{MovePlan, PromotionRecord, RECORD_COLUMNS};
use crate::config::{ACQUIRE_TIMEOUT, COMMIT_MARGIN};
use crate::domain::MoveItem;
use crate::error::{Error, Result};
use crate::store::rounds::Rounds;
use crate::store::{Store, WriteTx};

/// What a round did with one item.
#[derive(Clone)]
pub(in crate::store) enum Written {
    /// Moved, with this history row.
    Moved(Box<PromotionRecord>),
    /// Not moved: the general path finds out, on its own, what to answer.
    Alone,
    /// The database could not be used, as it would have failed the item alone.
    Unavailable(&'static str),
    /// The round failed in a way that may have followed its commit: what the
    /// item alone would have heard, an internal error.
    Failed(String),
}

/// Single promotions waiting for, or in, a round, and what the rounds did.
pub(in crate::store) struct GroupCommit {
    rounds: Arc<Rounds<Single, Written>>,
    /// PostgreSQL's connection for rounds (see `Store::group_commit`).
    connection: Option<sqlx::PgPool>,
    /// Rounds that moved at least one version, and the versions they moved.
    written: AtomicU64,
    moved: AtomicU64,
}

impl GroupCommit {
    /// Group commit with rounds of at most `max` promotions.
    pub(in crate::store) fn new(max: usize, connection: Option<sqlx::PgPool>) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            rounds: Arc::new(Rounds::with_max(max)),
            connection,
            written: AtomicU64::new(0),
            moved: AtomicU64::new(0),
        })
    }

    /// Closes the rounds' connections, if any.
    pub(in crate::store) async fn close(&self) {
        if let Some(connection) = &self.connection {
            connection.close().await;
        }
    }

    /// Rounds that moved something, and the versions they moved, since start.
    pub(in crate::store) fn counts(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.moved.load(Ordering::Relaxed),
        )
    }

    fn count(&self, moved: usize) {
        self.written.fetch_add(1, Ordering::Relaxed);
        self.moved.fetch_add(moved as u64, Ordering::Relaxed);
        metrics::counter!(crate::metrics::GROUP_COMMIT_ROUNDS).increment(1);
        metrics::counter!(crate::metrics::GROUP_COMMIT_PROMOTIONS).increment(moved as u64);
    }
}

impl Single {
    /// The version it names, in whichever feed: two items of one round never
    /// name the same one, so that each moves as it would have alone.
    fn identity(&self) -> (&str, &str, &str) {
        (&self.name_key, &self.group_key, &self.version_key)
    }
}

impl Store {
    /// The one-statement promotion of `item`, written in the next round with
    /// whatever other single promotions wait for it: its history row, or
    /// `None` when it did not move and the general path must say why.
    pub(super) async fn promote_in_round(
        &self,
        group: &Arc<GroupCommit>,
        plan: &MovePlan<'_>,
        item: &MoveItem,
    ) -> Result<Option<PromotionRecord>> {
        let (store, counted) = (self.clone(), group.clone());
        let written = group
            .rounds
            .read(Single::new(plan, item), move |items| {
                let (store, counted) = (store.clone(), counted.clone());
                async move { Ok(store.write_round(&counted, items).await) }
            })
            .await?;
        match written.as_ref() {
            Written::Moved(record) => Ok(Some(record.as_ref().clone())),
            Written::Alone => Ok(None),
            Written::Unavailable(reason) => Err(Error::Unavailable {
                reason,
                cause: None,
            }),
            Written::Failed(text) => Err(Error::Internal(anyhow::anyhow!("{text}"))),
        }
    }

    /// Writes one round: what became of each item, in the items' order.
    /// Never fails as a whole: an item the round did not move goes on alone.
    async fn write_round(&self, group: &GroupCommit, items: Vec<Single>) -> Vec<Written> {
        let worst_case = ACQUIRE_TIMEOUT + self.statement_timeout + COMMIT_MARGIN;
        let now = Instant::now();
        let mut names = HashSet::new();
        let taken: Vec<&Single> = items
            .iter()
            // The first request for a version moves it; a second one in the
            // same round is answered after it, as if it had come next.
            .filter(|item| now + worst_case <= item.answer_due && names.insert(item.identity()))
            .collect();
        if taken.is_empty() {
            return vec![Written::Alone; items.len()];
        }
        // One time for the round, taken as it starts: a history row's time is
        // never earlier than a move committed before it was written.
        let promoted_at = Utc::now();
        let written = match (&group.connection, &taken[..]) {
            // A round of one is the one-statement promotion itself, so that a
            // lone promotion costs what it did; on the rounds' connections,
            // whose lock timeout bounds what it may hold up.
            (Some(connection), [item]) => bind_one(
                sqlx::query_as(&super::one::PROMOTE_ONE_POSTGRES),
                item,
                promoted_at,
            )
            .fetch_optional(connection)
            .await
            .map(|record| {
                record
                    .map(|record| Moved::of(record, item))
                    .into_iter()
                    .collect()
            })
            .map_err(Error::from),
            (Some(connection), _) => {
                bind_round(sqlx::query_as(&PROMOTE_ROUND_POSTGRES), &taken, promoted_at)
                    .fetch_all(connection)
                    .await
                    .map_err(Error::from)
            }
            // Only PostgreSQL's rounds have connections of their own.
            (None, _) => self.write_round_on_sqlite(&taken, promoted_at).await,
        };
        let mut moved: HashMap<(String, String, String), PromotionRecord> = match written {
            Ok(rows) => rows
                .into_iter()
                .map(|row: Moved| ((row.name_key, row.group_key, row.version_key), row.record))
                .collect(),
            Err(error) => return failed_round(error, &items, &taken),
        };
        if !moved.is_empty() {
            group.count(moved.len());
        }
        let taken: HashSet<u64> = taken.iter().map(|item| item.request).collect();
        items
            .iter()
            .map(|item| {
                let key = (
                    item.name_key.clone(),
                    item.group_key.clone(),
                    item.version_key.clone(),
                );
                // A version's row belongs to the one item of the round that
                // named it, never to a later request for the same version.
                match taken.contains(&item.request).then(|| moved.remove(&key)) {
                    Some(Some(record)) => Written::Moved(Box::new(record)),
                    _ => Written::Alone,
                }
            })
            .collect()
    }

    /// SQLite's round: the one-version move and history row of `one.rs` for
    /// each item, in one transaction under the write lock, committed once.
    async fn write_round_on_sqlite(
        &self,
        items: &[&Single],
        promoted_at: DateTime<Utc>,
    ) -> Result<Vec<Moved>> {
        let mut tx = self.begin_write().await?;
        let WriteTx::Sqlite(conn, _) = &mut tx else {
            unreachable!("a SQLite store begins SQLite transactions")
        };
        let mut moved = Vec::with_capacity(items.len());
        let mut failed = None;
        for item in items {
            match move_one_on_sqlite(conn, item, promoted_at).await {
                Ok(Some(record)) => moved.push(Moved::of(record, item)),
                Ok(None) => {}
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        let due = items.iter().map(|item| item.answer_due).min();
        let too_late = due.is_some_and(|due| Instant::now() + COMMIT_MARGIN > due);
        if failed.is_some() || too_late {
            // Rolled back before the writer queue is let go, so the general
            // path that follows does not meet this transaction's lock.
            tx.rollback().await?;
            return match failed {
                Some(error) => Err(error.into()),
                None => Ok(Vec::new()),
            };
        }
        tx.commit().await?;
        Ok(moved)
    }
}

/// What a round that failed as a whole answers. Nothing was written when the
/// database refused the statement: where it lost a race (a deadlock, a copy
/// that appeared in a target, a lock it would not wait for) or failed for
/// another reason of its own, each item goes on alone and finds out whether
/// the cause was its own. Where the database could not be used, each item
/// hears the 503 it would have heard alone; any other failure may have come
/// after the commit, so each hears what it would have alone: an internal
/// error, never a refusal of its own move.
fn failed_round(error: Error, items: &[Single], taken: &[&Single]) -> Vec<Written> {
    let lost_race = error.is_transient_conflict()
        || matches!(&error, Error::Database(db) if is_race(db) || is_lock_timeout(db));
    let answer = match error {
        _ if lost_race => Written::Alone,
        Error::Unavailable { reason, .. } => Written::Unavailable(reason),
        Error::Database(db) => {
            // Not a race another writer won: worth an operator's eye, as
            // every round failing would only show as slower promotions.
            tracing::warn!(error = %crate::error::describe(&db), items = taken.len(),
                "a round of promotions failed; each goes on alone");
            Written::Alone
        }
        other => Written::Failed(crate::error::describe(&other)),
    };
    let taken: HashSet<u64> = taken.iter().map(|item| item.request).collect();
    items
        .iter()
        .map(|item| match taken.contains(&item.request) {
            true => answer.clone(),
            false => Written::Alone,
        })
        .collect()
}

/// PostgreSQL's lock_not_available: the rounds' `lock_timeout` ran out.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "55P03")
}

/// A history row the round wrote, with the identity it is matched back by.
#[derive(FromRow)]
struct Moved {
    #[sqlx(flatten)]
    record: PromotionRecord,
    name_key: String,
    group_key: String,
    version_key: String,
}

impl Moved {
    fn of(record: PromotionRecord, item: &Single) -> Moved {
        Moved {
            record,
            name_key: item.name_key.clone(),
            group_key: item.group_key.clone(),
            version_key: item.version_key.clone(),
        }
    }
}

/// Binds a round's items, column by column, to [`PROMOTE_ROUND_POSTGRES`]:
/// one array per column keeps the statement's text (and its prepared plan)
/// the same whatever the round's size.
fn bind_round<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, Moved, sqlx::postgres::PgArguments>,
    items: &[&Single],
    promoted_at: DateTime<Utc>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Moved, sqlx::postgres::PgArguments> {
    fn column<T>(items: &[&Single], f: impl Fn(&Single) -> T) -> Vec<T> {
        items.iter().map(|item| f(item)).collect()
    }
    query
        .bind(column(items, |i| i.from_id))
        .bind(column(items, |i| i.to_id))
        .bind(column(items, |i| i.name_key.clone()))
        .bind(column(items, |i| i.group_key.clone()))
        .bind(column(items, |i| i.version_key.clone()))
        .bind(column(items, |i| i.from_feed.clone()))
        .bind(column(items, |i| i.to_feed.clone()))
        .bind(column(items, |i| i.from_key.clone()))
        .bind(column(items, |i| i.to_key.clone()))
        .bind(column(items, |i| i.package_type.to_owned()))
        .bind(column(items, |i| i.comments.clone()))
        .bind(column(items, |i| i.user.clone()))
        .bind(column(items, |i| i.api_key_id))
        .bind(column(items, |_| promoted_at))
        .bind(column(items, |i| i.batch_id.clone()))
}

/// A round on PostgreSQL, one statement run as its own transaction: the
/// one-version statement of `one.rs` over a set. `found` looks each item up
/// in the identity index (`OFFSET 0` keeps the lookup per item: the planner,
/// which cannot see how many items an array holds, otherwise scanned the whole
/// table). A round does not wait for the rows it names (`SKIP LOCKED`): a
/// version or feed row another writer holds leaves its items unmoved, and they
/// go on alone, waiting there as they would have without group commit. Any
/// other lock (a copy another writer is putting in a target, which the unique
/// index waits for) it waits for at most the rounds' `lock_timeout`, then
/// fails as a whole and every item goes on alone: one held row never stalls
/// the other items for long. `v`
/// holds the rows found, read as they are once locked; an item moves only if
/// every row found for it is held, its version is in its source and not in its
/// target, and both its feeds allow the move, read under their `FOR SHARE`
/// lock.
static PROMOTE_ROUND_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH r AS ( \
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::text[], $12::text[], $13::bigint[], $14::timestamptz[], $15::text[]) \
           AS r(from_id, to_id, name_key, group_key, version_key, from_feed, to_feed, \
             from_key, to_key, package_type, comments, user_name, api_key_id, promoted_at, \
             batch_id)), \
         found AS ( \
           SELECT x.id, r.name_key, r.group_key, r.version_key FROM r CROSS JOIN LATERAL ( \
             SELECT id FROM package_versions \
             WHERE feed_id IN (r.from_id, r.to_id) AND name_key = r.name_key \
               AND group_key = r.group_key AND version_key = r.version_key \
             OFFSET 0) x), \
         v AS MATERIALIZED ( \
           SELECT id, feed_id, name_key, group_key, version_key FROM package_versions \
           WHERE id = ANY (ARRAY(SELECT id FROM found)) \
           FOR UPDATE SKIP LOCKED), \
         f AS MATERIALIZED ( \
           SELECT s.id AS from_id, t.id AS to_id FROM feeds s, feeds t \
           WHERE (s.id, t.id) IN (SELECT from_id, to_id FROM r) \
             AND s.active AND t.active \
             AND (s.promote_to_feed_id IS NULL OR s.promote_to_feed_id = t.id) \
           FOR SHARE OF s, t SKIP LOCKED), \
         go AS ( \
           SELECT r.*, src.id AS version_id FROM r \
           JOIN v src ON src.feed_id = r.from_id AND src.name_key = r.name_key \
             AND src.group_key = r.group_key AND src.version_key = r.version_key \
           WHERE EXISTS (SELECT 1 FROM f WHERE f.from_id = r.from_id AND f.to_id = r.to_id) \
             AND NOT EXISTS (SELECT 1 FROM v tgt WHERE tgt.feed_id = r.to_id \
               AND tgt.name_key = r.name_key AND tgt.group_key = r.group_key \
               AND tgt.version_key = r.version_key) \
             AND NOT EXISTS (SELECT 1 FROM found x WHERE x.name_key = r.name_key \
               AND x.group_key = r.group_key AND x.version_key = r.version_key \
               AND x.id NOT IN (SELECT id FROM v))), \
         moved AS ( \
           UPDATE package_versions pv SET feed_id = go.to_id FROM go \
           WHERE pv.id = go.version_id \
           RETURNING pv.group_name, pv.name, pv.version, go.*) \
         INSERT INTO promotions ({}) \
         SELECT from_id, to_id, from_feed, to_feed, from_key, to_key, package_type, \
           group_name, name, version, group_key, name_key, version_key, comments, user_name, \
           api_key_id, promoted_at, batch_id, NULL, FALSE FROM moved \
         RETURNING {RECORD_COLUMNS}, name_key, group_key, version_key",
        super::one::HISTORY_COLUMNS
    )
});
