//! Sign-in sessions of the history page (`migrations/*/0006_web_sessions.sql`).

use chrono::{DateTime, Utc};

use super::{on_pool, on_tx, Store, StoredKey};
use crate::error::Result;

impl Store {
    /// Starts a session for the key, and ends any that have expired.
    pub async fn create_session(
        &self,
        token_hash: &str,
        api_key_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, conn => sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(conn)
            .await
            .map(drop))?;
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO web_sessions (token_hash, api_key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(api_key_id)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(drop))?;
        tx.commit().await?;
        Ok(())
    }

    /// The key a live session belongs to; `None` for an unknown or expired one.
    /// (Whether the key itself still works is the caller's question.)
    pub async fn session_key(&self, token_hash: &str) -> Result<Option<StoredKey>> {
        let session: Option<(i64, DateTime<Utc>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT api_key_id, expires_at FROM web_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)?;
        match session {
            Some((key_id, expires_at)) if expires_at > Utc::now() => self.key_by_id(key_id).await,
            _ => Ok(None),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, conn => sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(conn)
            .await
            .map(drop))?;
        tx.commit().await?;
        Ok(())
    }
}
