//! Webhooks, their outbox and delivery attempts. The outbox rows themselves are
//! written by a trigger on `promotions` (migrations `0005_webhooks.sql`), inside
//! the statement that writes the history, so no promotion path can forget them.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};

use super::feeds::existing_feed_in;
use super::{
    on_pool, on_tx, once_more_on_conflict, push_list, Db, PromotionRecord, Store, WriteTx,
    RECORD_COLUMNS,
};
use crate::domain::{FeedName, WebhookSecret, WebhookUrl};
use crate::error::Result;

/// Rows deleted per transaction when a webhook's history is cleared.
const DELETE_BATCH: u64 = 5000;

/// A webhook as listings show it: never its secret.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// The feed filter (target feeds); empty means every feed.
    pub feeds: Vec<String>,
    /// False while paused: events are queued but not sent.
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// A webhook as the dispatcher needs it, secret included.
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    pub id: i64,
    pub url: String,
    pub secret: WebhookSecret,
}

/// An event claimed for one attempt.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedEvent {
    pub id: i64,
    pub webhook_id: i64,
    pub promotion_id: i64,
    pub delivery_id: String,
    /// This attempt's number, from 1; it is also the claim's token.
    pub attempts: i32,
}

/// What became of an attempt's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Try again after this long.
    RetryIn(std::time::Duration),
    /// Retried long enough; the event is given up.
    GiveUp,
}

/// One attempt, as it is recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub event: &'a ClaimedEvent,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub after: AfterAttempt,
}

/// An attempt as `GET /api/webhooks/deliveries` lists it.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    pub promotion_id: i64,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The event's state now: pending, delivered or failed.
    pub state: String,
}

#[derive(FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    active: bool,
    created_at: DateTime<Utc>,
}

/// A webhook with one feed of its filter (none when it has no filter).
#[derive(FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    webhook: WebhookRow,
    feed: Option<String>,
}

impl Store {
    /// Creates a webhook. The filter's feeds must exist when it is created (a
    /// feed deleted later leaves a filter that matches nothing, as in the
    /// history, which also keeps names).
    pub async fn create_webhook(
        &self,
        url: &WebhookUrl,
        feeds: &[FeedName],
        secret: &WebhookSecret,
    ) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let mut filter: Vec<(String, String)> = Vec::new();
        for feed in feeds {
            let found = existing_feed_in(&mut tx, feed).await?;
            if !filter.iter().any(|(_, key)| *key == found.name_key) {
                filter.push((found.name, found.name_key));
            }
        }
        let row: WebhookRow = on_tx!(&mut tx, conn => sqlx::query_as(
            "INSERT INTO webhooks (url, secret, all_feeds, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, url, active, created_at",
        )
        .bind(url.as_str())
        .bind(secret.expose())
        .bind(filter.is_empty())
        .bind(Utc::now())
        .fetch_one(conn)
        .await)?;
        for (name, key) in &filter {
            on_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO webhook_feeds (webhook_id, feed, feed_key) VALUES ($1, $2, $3)",
            )
            .bind(row.id)
            .bind(name)
            .bind(key)
            .execute(conn)
            .await
            .map(drop))?;
        }
        tx.commit().await?;
        Ok(Webhook {
            id: row.id,
            url: row.url,
            feeds: filter.into_iter().map(|(name, _)| name).collect(),
            active: row.active,
            created_at: row.created_at,
        })
    }

    /// Every webhook, oldest first, read in one statement.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<ListedRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT w.id, w.url, w.active, w.created_at, f.feed FROM webhooks w \
             LEFT JOIN webhook_feeds f ON f.webhook_id = w.id ORDER BY w.id, f.feed_key",
        )
        .fetch_all(pool)
        .await)?;
        let mut webhooks: Vec<Webhook> = Vec::new();
        for ListedRow { webhook, feed } in rows {
            if webhooks.last().is_none_or(|last| last.id != webhook.id) {
                webhooks.push(Webhook {
                    id: webhook.id,
                    url: webhook.url,
                    feeds: Vec::new(),
                    active: webhook.active,
                    created_at: webhook.created_at,
                });
            }
            webhooks
                .last_mut()
                .expect("pushed above")
                .feeds
                .extend(feed);
        }
        Ok(webhooks)
    }

    /// Deletes a webhook with its events and its attempts. False when there is
    /// no such webhook. The attempts and events go first, in short transactions:
    /// a webhook with a long history would otherwise be deleted in one long
    /// statement, and promotions that match it wait for its row meanwhile. (A
    /// promotion committing at the same moment either wrote its event first,
    /// deleted here, or sees no webhook: see the trigger.)
    pub async fn delete_webhook(&self, id: i64) -> Result<bool> {
        for table in ["webhook_attempts", "webhook_events"] {
            let sql = format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT id FROM {table} WHERE webhook_id = $1 LIMIT {DELETE_BATCH})"
            );
            loop {
                let mut tx = self.begin_write().await?;
                let deleted = on_tx!(&mut tx, conn => sqlx::query(&sql)
                    .bind(id)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected()))?;
                tx.commit().await?;
                if deleted < DELETE_BATCH {
                    break;
                }
            }
        }
        once_more_on_conflict(|| async {
            let mut tx = self.begin_write().await?;
            let deleted = on_tx!(&mut tx, conn => sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected()))?;
            tx.commit().await?;
            Ok(deleted > 0)
        })
        .await
    }

    /// Pauses (false) or resumes a webhook. False when there is no such webhook.
    pub async fn set_webhook_active(&self, id: i64, active: bool) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = on_tx!(&mut tx, conn => sqlx::query("UPDATE webhooks SET active = $1 WHERE id = $2")
            .bind(active)
            .bind(id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// A webhook's attempts, newest first; `None` when there is no such webhook.
    pub async fn webhook_attempts(
        &self,
        id: i64,
        limit: i64,
    ) -> Result<Option<Vec<DeliveryAttempt>>> {
        let exists: Option<(i64,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id FROM webhooks WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        if exists.is_none() {
            return Ok(None);
        }
        let attempts = on_pool!(self, pool => sqlx::query_as(
            "SELECT e.delivery_id, e.promotion_id, a.attempt, a.attempted_at, a.status_code, \
             a.error, a.duration_ms, e.state \
             FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id \
             WHERE a.webhook_id = $1 ORDER BY a.id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(Some(attempts))
    }

    // ---- for the dispatcher ----
    //
    // Due times and leases are read and written with the database's clock, so
    // that processes on machines whose clocks differ still agree on them.

    pub async fn delivery_targets(&self) -> Result<Vec<DeliveryTarget>> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, url, secret FROM webhooks WHERE active ORDER BY id",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, url, secret)| DeliveryTarget {
                id,
                url,
                secret: WebhookSecret::stored(secret),
            })
            .collect())
    }

    /// How many milliseconds until the webhook's next pending event is due (or
    /// a running attempt's claim lapses); zero or less when one is due now.
    pub async fn next_due_in(&self, webhook_id: i64) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT MIN(next_attempt_at) - {} FROM webhook_events \
             WHERE webhook_id = $1 AND state = 'pending'",
            self.now_ms()
        );
        let (due,): (Option<i64>,) = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(webhook_id)
            .fetch_one(pool)
            .await)?;
        Ok(due)
    }

    /// Claims up to `limit` of the webhook's due events for one attempt each,
    /// only while the webhook is active (checked in the claim itself: a pause
    /// that commits while a dispatcher round is under way, after it listed the
    /// active webhooks, still stops the claim):
    /// each claim moves the event's due time `lease_ms` ahead, so that no other
    /// process attempts it meanwhile, and so that it is attempted again after
    /// that should this process die mid-attempt. On PostgreSQL `SKIP LOCKED`
    /// lets several processes claim side by side (the candidates are
    /// materialised once, so no more than `limit` are taken); on SQLite the
    /// write lock orders them.
    pub async fn claim_events(
        &self,
        webhook_id: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEvent>> {
        let now = self.now_ms();
        let sql = match &self.db {
            Db::Postgres(_) => format!(
                "WITH due AS MATERIALIZED (SELECT id FROM webhook_events \
                 WHERE webhook_id = $2 AND state = 'pending' AND next_attempt_at <= {now} \
                 AND EXISTS (SELECT 1 FROM webhooks WHERE id = $2 AND active) \
                 ORDER BY next_attempt_at LIMIT $3 FOR NO KEY UPDATE SKIP LOCKED) \
                 UPDATE webhook_events e SET attempts = e.attempts + 1, next_attempt_at = {now} + $1 \
                 FROM due WHERE e.id = due.id \
                 RETURNING e.id, e.webhook_id, e.promotion_id, e.delivery_id, e.attempts"
            ),
            Db::Sqlite(..) => format!(
                "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = {now} + $1 \
                 WHERE id IN (SELECT id FROM webhook_events \
                 WHERE webhook_id = $2 AND state = 'pending' AND next_attempt_at <= {now} \
                 AND EXISTS (SELECT 1 FROM webhooks WHERE id = $2 AND active) \
                 ORDER BY next_attempt_at LIMIT $3) \
                 RETURNING id, webhook_id, promotion_id, delivery_id, attempts"
            ),
        };
        let mut tx = self.begin_write().await?;
        let claimed = on_tx!(&mut tx, conn => sqlx::query_as(&sql)
            .bind(lease_ms)
            .bind(webhook_id)
            .bind(limit)
            .fetch_all(conn)
            .await)?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// The history rows that claimed events announce.
    pub async fn promotions_by_id(&self, ids: &[i64]) -> Result<Vec<PromotionRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(on_pool!(self, pool => {
            let mut sql = QueryBuilder::new(format!("SELECT {RECORD_COLUMNS} FROM promotions WHERE id IN ("));
            push_list(&mut sql, ids.iter().copied());
            sql.push(")");
            sql.build_query_as().fetch_all(pool).await
        })?)
    }

    /// Records an attempt and what follows from it. The event is only updated
    /// while this attempt's claim still holds (its attempt count is unchanged);
    /// the attempt is recorded either way, unless the webhook is gone. Locks are
    /// taken as a webhook's deletion takes them, the webhook before its event,
    /// so the two never wait for each other in a cycle.
    pub async fn record_attempt(&self, attempt: &AttemptRecord<'_>) -> Result<()> {
        let (state, delay) = match attempt.after {
            AfterAttempt::Delivered => ("delivered", 0),
            AfterAttempt::RetryIn(delay) => ("pending", delay.as_millis() as i64),
            AfterAttempt::GiveUp => ("failed", 0),
        };
        let event = attempt.event;
        let mut tx = self.begin_write().await?;
        let lock = match &tx {
            WriteTx::Postgres(_) => " FOR KEY SHARE",
            WriteTx::Sqlite(..) => "",
        };
        let sql = format!("SELECT id FROM webhooks WHERE id = $1{lock}");
        let webhook: Option<(i64,)> = on_tx!(&mut tx, conn => sqlx::query_as(&sql)
            .bind(event.webhook_id)
            .fetch_optional(conn)
            .await)?;
        if webhook.is_none() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE webhook_events SET state = $1, next_attempt_at = {} + $2 \
             WHERE id = $3 AND attempts = $4 AND state = 'pending'",
            self.now_ms()
        );
        on_tx!(&mut tx, conn => sqlx::query(&sql)
            .bind(state)
            .bind(delay)
            .bind(event.id)
            .bind(event.attempts)
            .execute(conn)
            .await
            .map(drop))?;
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO webhook_attempts \
             (event_id, webhook_id, attempt, attempted_at, status_code, error, duration_ms) \
             SELECT id, webhook_id, $2, $3, $4, $5, $6 FROM webhook_events WHERE id = $1",
        )
        .bind(event.id)
        .bind(event.attempts)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code.map(i32::from))
        .bind(attempt.error.as_deref())
        .bind(attempt.duration_ms)
        .execute(conn)
        .await
        .map(drop))?;
        tx.commit().await?;
        Ok(())
    }

    /// The database's clock, in milliseconds since 1970, as SQL. On PostgreSQL
    /// the statement's start, which (unlike `clock_timestamp()`) an index can
    /// compare with; each use here is a statement of its own. On SQLite through
    /// `julianday`, which every version has (`unixepoch('subsec')` needs 3.42).
    fn now_ms(&self) -> &'static str {
        match &self.db {
            Db::Postgres(_) => "(extract(epoch FROM statement_timestamp()) * 1000)::bigint",
            Db::Sqlite(..) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }
}
