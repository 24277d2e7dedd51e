use std::sync::Arc;

use chrono::Utc;
use sqlx::FromRow;

use super::{cache, on_pool, on_tx, once_more_on_conflict, ConstraintExt, Store, WriteTx};
use crate::domain::{Connectors, Description, FeedName, FeedType};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Feed {
    pub id: i64,
    pub name: String,
    /// The case-folded name that lookups and the history compare.
    pub name_key: String,
    #[sqlx(try_from = "String")]
    pub feed_type: FeedType,
    pub description: Option<String>,
    pub active: bool,
    /// Whether anyone may view the feed without a key (contract section 12).
    pub public: bool,
    /// The only feed this one may promote to, when the feed has a fixed target.
    pub promote_to: Option<String>,
    /// The upstreams the feed offers packages from (contract section 16).
    #[sqlx(try_from = "String")]
    pub connectors: Connectors,
}

/// Changes to a feed; `None` leaves a setting as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct FeedChange {
    pub description: Option<Option<Description>>,
    pub active: Option<bool>,
    pub public: Option<bool>,
    pub promote_to: Option<Option<FeedName>>,
    pub connectors: Option<Connectors>,
}

/// A new feed's settings beyond its name and type; by default enabled, not
/// public, promoting anywhere.
#[derive(Debug, Clone)]
pub struct FeedSettings<'a> {
    pub promote_to: Option<&'a FeedName>,
    pub description: Option<&'a Description>,
    pub active: bool,
    pub public: bool,
    pub connectors: Connectors,
}

impl Default for FeedSettings<'_> {
    fn default() -> Self {
        FeedSettings {
            promote_to: None,
            description: None,
            active: true,
            public: false,
            connectors: Connectors::default(),
        }
    }
}

const SELECT_FEED: &str = "SELECT f.id, f.name, f.name_key, f.feed_type, f.description, f.active, \
     f.public, t.name AS promote_to, f.connectors \
     FROM feeds f LEFT JOIN feeds t ON t.id = f.promote_to_feed_id";

impl Store {
    /// Creates a feed, enabled or not, in one statement. A fixed target named in
    /// `promote_to` must exist and be of the same type; one deleted while this
    /// runs is reported as not existing.
    pub async fn create_feed(
        &self,
        name: &FeedName,
        feed_type: FeedType,
        settings: FeedSettings<'_>,
    ) -> Result<Feed> {
        let FeedSettings {
            promote_to,
            description,
            active,
            public,
            connectors,
        } = settings;
        let mut tx = self.begin_write().await?;
        let target = match promote_to {
            Some(target) => Some(existing_feed_in(&mut tx, target).await?),
            None => None,
        };
        if let Some(target) = &target {
            if target.feed_type != feed_type {
                return Err(Error::invalid(format!(
                    "Feed \"{}\" is {} feed and cannot be the promotion target of {} feed.",
                    target.name,
                    crate::domain::with_article(target.feed_type.as_str()),
                    crate::domain::with_article(feed_type.as_str())
                )));
            }
        }
        let (id,): (i64,) = on_tx!(&mut tx, conn => sqlx::query_as(
            "INSERT INTO feeds (name, name_key, feed_type, description, active, public, promote_to_feed_id, created_at, connectors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(name.as_str())
        .bind(name.key())
        .bind(feed_type.as_str())
        .bind(description.map(Description::as_str))
        .bind(active)
        .bind(public)
        .bind(target.as_ref().map(|t| t.id))
        .bind(Utc::now())
        .bind(connectors.to_json())
        .fetch_one(conn)
        .await)
        .on_unique(|| Error::invalid(format!("A feed named \"{name}\" already exists.")))
        .on_foreign_key(|| vanished(promote_to))?;
        let feed = feed_by_id_in(&mut tx, id).await?;
        self.commit_catalog(tx).await?;
        Ok(feed)
    }

    pub async fn feed(&self, name: &FeedName) -> Result<Option<Feed>> {
        Ok(self.feed_pair(name, name).await?.0)
    }

    /// The feed with this id, if it still exists (the history keeps ids).
    pub async fn feed_by_id(&self, id: i64) -> Result<Option<Feed>> {
        if let Some(feed) = self.all_feeds().await?.iter().find(|f| f.id == id) {
            return Ok(Some(feed.clone()));
        }
        // Missing from what was kept: look in the database (see `feed_pair`).
        let sql = format!("{SELECT_FEED} WHERE f.id = $1");
        let fresh: Option<Feed> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        if fresh.is_some() {
            self.forget_cached();
        }
        Ok(fresh)
    }

    /// The feed, or an error saying that it does not exist.
    pub async fn existing_feed(&self, name: &FeedName) -> Result<Feed> {
        self.feed(name).await?.ok_or_else(|| vanished(Some(name)))
    }

    /// Both feeds of a promotion; either may be missing. A feed missing from
    /// what this process kept is looked for in the database before it is called
    /// missing, so that a feed another process just created is found at once.
    pub async fn feed_pair(
        &self,
        a: &FeedName,
        b: &FeedName,
    ) -> Result<(Option<Feed>, Option<Feed>)> {
        let feeds = self.all_feeds().await?;
        let find = |key: String| feeds.iter().find(|f| f.name_key == key).cloned();
        match (find(a.key()), find(b.key())) {
            (Some(a), Some(b)) => Ok((Some(a), Some(b))),
            _ => self.fresh_feed_pair(a, b).await,
        }
    }

    /// Both feeds as the database has them now, not as this process kept them:
    /// for a refusal, which must not rest on what may be out of date. When they
    /// differ from what was kept, the kept feeds are forgotten.
    pub async fn fresh_feed_pair(
        &self,
        a: &FeedName,
        b: &FeedName,
    ) -> Result<(Option<Feed>, Option<Feed>)> {
        let sql = format!("{SELECT_FEED} WHERE f.name_key IN ($1, $2)");
        let (a_key, b_key) = (a.key(), b.key());
        let fresh: Vec<Feed> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(&a_key)
            .bind(&b_key)
            .fetch_all(pool)
            .await)?;
        let kept = self.all_feeds().await?;
        let in_fresh = |key: &str| fresh.iter().find(|f| f.name_key == key).cloned();
        let in_kept = |key: &str| kept.iter().find(|f| f.name_key == key).cloned();
        let pair = (in_fresh(&a_key), in_fresh(&b_key));
        if pair != (in_kept(&a_key), in_kept(&b_key)) {
            self.forget_cached();
        }
        Ok(pair)
    }

    pub async fn list_feeds(&self) -> Result<Vec<Feed>> {
        Ok(self.all_feeds().await?.to_vec())
    }

    /// Every feed, by name: kept in memory (see `cache`), since every request
    /// looks feeds up and deployments have tens of them, not millions.
    async fn all_feeds(&self) -> Result<Arc<[Feed]>> {
        let ticket = match self.cache.get(cache::feeds, &()) {
            Ok(feeds) => return Ok(feeds),
            Err(ticket) => ticket,
        };
        let sql = format!("{SELECT_FEED} ORDER BY f.name_key");
        let feeds: Vec<Feed> = on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        let feeds: Arc<[Feed]> = feeds.into();
        self.cache.keep(cache::feeds, ticket, (), feeds.clone());
        Ok(feeds)
    }

    /// Enables or disables a feed; a disabled feed takes part in no promotion.
    pub async fn set_feed_active(&self, name: &FeedName, active: bool) -> Result<Feed> {
        let feed = self.existing_feed(name).await?;
        self.update_feed(
            &feed,
            &FeedChange {
                active: Some(active),
                ..FeedChange::default()
            },
        )
        .await
    }

    /// Applies the given changes to a feed and returns it as it now is. A feed
    /// deleted meanwhile is `NotFound`; a new fixed target deleted meanwhile is
    /// `Invalid`, as if it had never existed.
    pub async fn update_feed(&self, feed: &Feed, change: &FeedChange) -> Result<Feed> {
        let mut tx = self.begin_write().await?;
        let target_name = change.promote_to.as_ref().and_then(Option::as_ref);
        let promote_to_id = match &change.promote_to {
            Some(Some(target)) => {
                let target = existing_feed_in(&mut tx, target).await?;
                if target.feed_type != feed.feed_type || target.id == feed.id {
                    return Err(Error::invalid(format!(
                        "Feed \"{}\" cannot be the promotion target of feed \"{}\": the target must be another {} feed.",
                        target.name, feed.name, feed.feed_type
                    )));
                }
                Some(Some(target.id))
            }
            Some(None) => Some(None),
            None => None,
        };
        let description = change
            .description
            .as_ref()
            .map(|d| d.as_ref().map(Description::as_str));
        // The flags tell a cleared value (NULL) from an untouched one.
        let updated: Option<(i64,)> = on_tx!(&mut tx, conn => sqlx::query_as(
            "UPDATE feeds SET \
               description = CASE WHEN $1 THEN $2 ELSE description END, \
               active = COALESCE($3, active), \
               promote_to_feed_id = CASE WHEN $4 THEN $5 ELSE promote_to_feed_id END, \
               public = COALESCE($7, public), \
               connectors = COALESCE($8, connectors) \
             WHERE id = $6 RETURNING id",
        )
        .bind(description.is_some())
        .bind(description.flatten())
        .bind(change.active)
        .bind(promote_to_id.is_some())
        .bind(promote_to_id.flatten())
        .bind(feed.id)
        .bind(change.public)
        .bind(change.connectors.as_ref().map(Connectors::to_json))
        .fetch_optional(conn)
        .await)
        .on_foreign_key(|| vanished(target_name))?;
        if updated.is_none() {
            return Err(Error::NotFound(format!(
                "Feed \"{}\" does not exist.",
                feed.name
            )));
        }
        let feed = feed_by_id_in(&mut tx, feed.id).await?;
        self.commit_catalog(tx).await?;
        Ok(feed)
    }

    /// Deletes a feed with its packages; its history stays. False when it did not exist.
    pub async fn delete_feed(&self, feed: &Feed) -> Result<bool> {
        once_more_on_conflict(|| self.delete_feed_once(feed)).await
    }

    async fn delete_feed_once(&self, feed: &Feed) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Take the locks in the order a promotion takes them (its version, then
        // its feeds), so that the two cannot deadlock: first the feed's versions,
        // which the cascade would otherwise lock only after the feed row.
        // (SQLite's write lock already orders everything.)
        // The feeds whose fixed target this is come next: the delete sets their
        // `promote_to_feed_id` to NULL, and a promotion out of one of them holds
        // it before it locks this feed.
        if let WriteTx::Postgres(conn) = &mut tx {
            for lock in [
                "SELECT id FROM package_versions WHERE feed_id = $1 ORDER BY id FOR UPDATE",
                "SELECT id FROM feeds WHERE promote_to_feed_id = $1 ORDER BY id FOR NO KEY UPDATE",
            ] {
                sqlx::query(lock)
                    .bind(feed.id)
                    .fetch_all(&mut **conn)
                    .await?;
            }
        }
        let deleted = on_tx!(&mut tx, conn => sqlx::query("DELETE FROM feeds WHERE id = $1")
            .bind(feed.id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        self.commit_catalog(tx).await?;
        Ok(deleted == 1)
    }

    /// Creates a feed group holding the named feeds; returns its id.
    pub async fn create_group(&self, name: &FeedName, members: &[FeedName]) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let mut feed_ids = Vec::with_capacity(members.len());
        for member in members {
            feed_ids.push(existing_feed_in(&mut tx, member).await?.id);
        }
        let (id,): (i64,) = on_tx!(&mut tx, conn => sqlx::query_as(
            "INSERT INTO feed_groups (name, name_key, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name.as_str())
        .bind(name.key())
        .bind(Utc::now())
        .fetch_one(conn)
        .await)
        .on_unique(|| Error::invalid(format!("A feed group named \"{name}\" already exists.")))?;
        for (feed_id, member) in feed_ids.iter().zip(members) {
            on_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO feed_group_members (group_id, feed_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(feed_id)
            .execute(conn)
            .await
            .map(drop))
            .on_foreign_key(|| vanished(Some(member)))?;
        }
        self.commit_catalog(tx).await?;
        Ok(id)
    }

    /// The feeds of a group (kept in memory, see `cache`).
    pub async fn group_feed_ids(&self, group_id: i64) -> Result<Arc<[i64]>> {
        let ticket = match self.cache.get(cache::groups, &group_id) {
            Ok(ids) => return Ok(ids),
            Err(ticket) => ticket,
        };
        let ids: Vec<i64> = on_pool!(self, pool => sqlx::query_scalar("SELECT feed_id FROM feed_group_members WHERE group_id = $1")
            .bind(group_id)
            .fetch_all(pool)
            .await)?;
        let ids: Arc<[i64]> = ids.into();
        self.cache
            .keep(cache::groups, ticket, group_id, ids.clone());
        Ok(ids)
    }
}

/// The feed with this name as the transaction sees it, or "does not exist".
pub(super) async fn existing_feed_in(tx: &mut WriteTx<'_>, name: &FeedName) -> Result<Feed> {
    let sql = format!("{SELECT_FEED} WHERE f.name_key = $1");
    let found: Option<Feed> =
        on_tx!(tx, conn => sqlx::query_as(&sql).bind(name.key()).fetch_optional(conn).await)?;
    found.ok_or_else(|| vanished(Some(name)))
}

/// The group's id as the transaction sees it, or "does not exist".
pub(super) async fn existing_group_in(tx: &mut WriteTx<'_>, name: &FeedName) -> Result<i64> {
    let found: Option<(i64,)> = on_tx!(tx, conn => sqlx::query_as("SELECT id FROM feed_groups WHERE name_key = $1")
        .bind(name.key())
        .fetch_optional(conn)
        .await)?;
    found
        .map(|(id,)| id)
        .ok_or_else(|| Error::invalid(format!("Feed group \"{name}\" does not exist.")))
}

async fn feed_by_id_in(tx: &mut WriteTx<'_>, id: i64) -> Result<Feed> {
    let sql = format!("{SELECT_FEED} WHERE f.id = $1");
    Ok(on_tx!(tx, conn => sqlx::query_as(&sql).bind(id).fetch_one(conn).await)?)
}

/// "Feed X does not exist": for a feed that was never there, and for one deleted
/// between our read and the write that refers to it (the foreign key says so),
/// which is what the caller would have heard a moment later.
fn vanished(name: Option<&FeedName>) -> Error {
    match name {
        Some(name) => Error::invalid(format!("Feed \"{name}\" does not exist.")),
        None => Error::invalid("A feed named in the request no longer exists."),
    }
}
