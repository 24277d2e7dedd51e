use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::feeds::{existing_feed_in, existing_group_in};
use super::{cache, on_pool, on_tx, ConstraintExt, Store};
use crate::domain::{Description, FeedName, KeyName, Permissions};
use crate::error::{Error, Result};

/// Where a key applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Every feed, and the management APIs when the key has `manage`.
    System,
    Feed(FeedName),
    Group(FeedName),
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: Option<KeyName>,
    pub scope: KeyScope,
    pub permissions: Permissions,
    pub expires_at: Option<DateTime<Utc>>,
    pub description: Option<Description>,
    /// ProGet's body-logging setting (None, Request, Response or Both), kept for
    /// clients that set it; this service never logs bodies.
    pub logging: String,
}

/// A key as the database holds it: everything but the key text.
#[derive(Debug, Clone, FromRow)]
pub struct StoredKey {
    pub id: i64,
    pub name: String,
    pub key_prefix: String,
    pub kind: String,
    pub feed_id: Option<i64>,
    pub feed_group_id: Option<i64>,
    /// The name of the feed or feed group the key is scoped to.
    pub scope_name: Option<String>,
    pub permissions: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub description: Option<String>,
    pub logging: String,
}

impl StoredKey {
    /// Keys are usable until revoked and, if they have one, until their expiry.
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| expiry > now)
    }

    pub fn permissions(&self) -> Result<Permissions> {
        self.permissions.parse().map_err(|e: String| {
            Error::Internal(anyhow::anyhow!(
                "api key {} has bad permissions: {e}",
                self.id
            ))
        })
    }

    /// "system", "feed nuget-approved" or "group nuget".
    pub fn scope_text(&self) -> String {
        match (&self.scope_name, self.feed_group_id) {
            (Some(name), Some(_)) => format!("group {name}"),
            (Some(name), None) => format!("feed {name}"),
            (None, _) => "system".to_owned(),
        }
    }
}

/// The columns of a [`StoredKey`] and the joins that name its scope; a macro so
/// that the fixed statements below are `concat!`ed at compile time.
macro_rules! select_key {
    () => {
        "SELECT k.id, k.name, k.key_prefix, k.kind, k.feed_id, k.feed_group_id, \
         COALESCE(f.name, g.name) AS scope_name, k.permissions, k.expires_at, k.revoked_at, \
         k.created_at, k.description, k.logging \
         FROM api_keys k \
         LEFT JOIN feeds f ON f.id = k.feed_id \
         LEFT JOIN feed_groups g ON g.id = k.feed_group_id"
    };
}

impl Store {
    /// Stores a new key under its hash, with the non-secret `label` that
    /// listings show. The key text itself never reaches this layer.
    pub async fn create_key(&self, key_hash: &str, label: &str, new: &NewKey) -> Result<StoredKey> {
        let mut tx = self.begin_write().await?;
        let (kind, feed_id, group_id) = match &new.scope {
            KeyScope::System => ("system", None, None),
            KeyScope::Feed(feed) => (
                "feed",
                Some(existing_feed_in(&mut tx, feed).await?.id),
                None,
            ),
            KeyScope::Group(group) => {
                ("feed", None, Some(existing_group_in(&mut tx, group).await?))
            }
        };
        let scope_vanished = || match &new.scope {
            KeyScope::Group(group) => {
                Error::invalid(format!("Feed group \"{group}\" does not exist."))
            }
            KeyScope::Feed(feed) => Error::invalid(format!("Feed \"{feed}\" does not exist.")),
            KeyScope::System => Error::invalid("The key's scope no longer exists."),
        };
        let name = new
            .name
            .as_ref()
            .map_or_else(|| format!("key-{label}"), |name| name.as_str().to_owned());
        let (id,): (i64,) = on_tx!(&mut tx, conn => sqlx::query_as(
            "INSERT INTO api_keys (name, key_hash, key_prefix, kind, feed_id, feed_group_id, permissions, \
             expires_at, created_at, description, logging) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&name)
        .bind(key_hash)
        .bind(label)
        .bind(kind)
        .bind(feed_id)
        .bind(group_id)
        .bind(new.permissions.to_string())
        .bind(new.expires_at)
        .bind(Utc::now())
        .bind(new.description.as_ref().map(Description::as_str))
        .bind(&new.logging)
        .fetch_one(conn)
        .await)
        .on_unique(|| Error::invalid("That key text is already in use; choose another."))
        .on_foreign_key(scope_vanished)?;
        let stored = on_tx!(&mut tx, conn => sqlx::query_as(concat!(select_key!(), " WHERE k.id = $1"))
            .bind(id)
            .fetch_one(conn)
            .await)?;
        self.commit_catalog(tx).await?;
        Ok(stored)
    }

    /// The key with this hash. Keys that exist are kept in memory (see
    /// `cache`); unknown hashes are not, so that guessing cannot fill memory.
    pub async fn key_by_hash(&self, key_hash: &str) -> Result<Option<StoredKey>> {
        let key_hash = key_hash.to_owned();
        let ticket = match self.cache.get(cache::keys, &key_hash) {
            Ok(key) => return Ok(Some(key)),
            Err(ticket) => ticket,
        };
        let found: Option<StoredKey> = on_pool!(self, pool => sqlx::query_as(concat!(select_key!(), " WHERE k.key_hash = $1"))
            .bind(&key_hash)
            .fetch_optional(pool)
            .await)?;
        if let Some(key) = &found {
            self.cache.keep(cache::keys, ticket, key_hash, key.clone());
        }
        Ok(found)
    }

    pub async fn key_by_id(&self, id: i64) -> Result<Option<StoredKey>> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(concat!(select_key!(), " WHERE k.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Keys by id after `after_id` (a page's last id), at most `limit`; revoked
    /// ones only when asked.
    pub async fn list_keys(
        &self,
        include_revoked: bool,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredKey>> {
        let sql = concat!(
            select_key!(),
            " WHERE ($1 OR k.revoked_at IS NULL) AND k.id > $2 ORDER BY k.id LIMIT $3"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(include_revoked)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Revokes a key; false when no usable key has that id. The row stays, so that
    /// listings and the history can still name the key.
    pub async fn revoke_key(&self, id: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = on_tx!(&mut tx, conn => sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(Utc::now())
        .bind(id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        self.commit_catalog(tx).await?;
        Ok(done == 1)
    }
}
