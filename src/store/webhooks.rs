//! Webhooks, their outbox and delivery attempts. The outbox rows themselves are
//! written by a trigger on `promotions` (migrations `0005_webhooks.sql`), inside
//! the statement that writes the history, so no promotion path can forget them.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::feeds::existing_feed_in;
use super::{on_pool, on_tx, PromotionRecord, Store, WriteTx, RECORD_COLUMNS};
use crate::domain::{FeedName, WebhookSecret, WebhookUrl};
use crate::error::Result;

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
    pub promotion_id: i64,
    pub delivery_id: String,
    /// This attempt's number, from 1; it is also the claim's token.
    pub attempts: i32,
}

/// What became of an attempt's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Try again at this time (milliseconds since 1970).
    RetryAt(i64),
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

impl Store {
    /// Creates a webhook. The filter's feeds must exist (checked in the same
    /// transaction, and on PostgreSQL held until it commits).
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
        if let WriteTx::Postgres(conn) = &mut tx {
            for (_, key) in &filter {
                sqlx::query("SELECT id FROM feeds WHERE name_key = $1 FOR SHARE")
                    .bind(key)
                    .execute(&mut **conn)
                    .await?;
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

    /// Every webhook, oldest first.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, url, active, created_at FROM webhooks ORDER BY id",
        )
        .fetch_all(pool)
        .await)?;
        let filters: Vec<(i64, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT webhook_id, feed FROM webhook_feeds ORDER BY webhook_id, feed_key",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|row| Webhook {
                id: row.id,
                url: row.url,
                feeds: filters
                    .iter()
                    .filter(|(id, _)| *id == row.id)
                    .map(|(_, feed)| feed.clone())
                    .collect(),
                active: row.active,
                created_at: row.created_at,
            })
            .collect())
    }

    /// Deletes a webhook with its pending events and its attempts. False when
    /// there is no such webhook. (A promotion committing at the same moment
    /// either wrote its event first, deleted here, or sees no webhook: see the
    /// trigger.)
    pub async fn delete_webhook(&self, id: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let deleted = on_tx!(&mut tx, conn => sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(deleted > 0)
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

    /// When the webhook's next pending event is due (or its running attempt's
    /// claim lapses), in milliseconds since 1970.
    pub async fn next_due(&self, webhook_id: i64) -> Result<Option<i64>> {
        let (due,): (Option<i64>,) = on_pool!(self, pool => sqlx::query_as(
            "SELECT MIN(next_attempt_at) FROM webhook_events \
             WHERE webhook_id = $1 AND state = 'pending'",
        )
        .bind(webhook_id)
        .fetch_one(pool)
        .await)?;
        Ok(due)
    }

    /// Claims up to `limit` of the webhook's events that are due at `now` for one
    /// attempt each: each claim moves the event's due time to `lease_until`, so
    /// no other process attempts it meanwhile, and retries it after that should
    /// this process die mid-attempt. On PostgreSQL `SKIP LOCKED` lets several
    /// processes claim side by side; on SQLite the write lock orders them.
    pub async fn claim_events(
        &self,
        webhook_id: i64,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEvent>> {
        let mut tx = self.begin_write().await?;
        let lock = match &tx {
            WriteTx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            WriteTx::Sqlite(..) => "",
        };
        let sql = format!(
            "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_events \
             WHERE webhook_id = $2 AND state = 'pending' AND next_attempt_at <= $3 \
             ORDER BY next_attempt_at, id LIMIT $4{lock}) \
             RETURNING id, promotion_id, delivery_id, attempts"
        );
        let claimed = on_tx!(&mut tx, conn => sqlx::query_as(&sql)
            .bind(lease_until)
            .bind(webhook_id)
            .bind(now)
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
        let list = (1..=ids.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {RECORD_COLUMNS} FROM promotions WHERE id IN ({list})");
        on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in ids {
                query = query.bind(id);
            }
            Ok(query.fetch_all(pool).await?)
        })
    }

    /// Records an attempt and what follows from it. The event is only updated
    /// while this attempt's claim still holds (its attempt count is unchanged);
    /// the attempt is recorded either way, unless the webhook is gone.
    pub async fn record_attempt(&self, attempt: &AttemptRecord<'_>) -> Result<()> {
        let (state, next) = match attempt.after {
            AfterAttempt::Delivered => ("delivered", 0),
            AfterAttempt::RetryAt(at) => ("pending", at),
            AfterAttempt::GiveUp => ("failed", 0),
        };
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, conn => sqlx::query(
            "UPDATE webhook_events SET state = $1, next_attempt_at = $2 \
             WHERE id = $3 AND attempts = $4 AND state = 'pending'",
        )
        .bind(state)
        .bind(next)
        .bind(attempt.event.id)
        .bind(attempt.event.attempts)
        .execute(conn)
        .await
        .map(drop))?;
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO webhook_attempts \
             (event_id, webhook_id, attempt, attempted_at, status_code, error, duration_ms) \
             SELECT id, webhook_id, $2, $3, $4, $5, $6 FROM webhook_events WHERE id = $1",
        )
        .bind(attempt.event.id)
        .bind(attempt.event.attempts)
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
}
