//! Reading the promotion history: filters, visibility and keyset pagination.

use sqlx::FromRow;

use super::{bind_all, on_pool, Bind, Conditions, Db, PromotionRecord, Store, RECORD_COLUMNS};
use crate::domain::FilterKeys;
use crate::domain::RevertTarget;
use crate::error::Result;

/// What a history query asks for. Feed filters are case-folded feed names (the
/// history keeps names, so it can be searched for feeds that no longer exist).
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub from_feed_key: Option<String>,
    pub to_feed_key: Option<String>,
    /// Promotions out of or into this feed.
    pub feed_key: Option<String>,
    /// Only the promotions of this batch.
    pub batch_id: Option<String>,
    /// Alternatives, one per set of feed types that normalise the package filter
    /// alike; empty means no package filter.
    pub package: Vec<FilterKeys>,
    /// The feeds whose promotions (in or out) may be shown; `None` means all.
    pub visible_feed_ids: Option<Vec<i64>>,
    /// Only promotions older than this id: the continuation of an earlier page.
    pub before_id: Option<i64>,
    /// Only promotions newer than this id, oldest first: the page before an
    /// earlier one (the caller turns it round).
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// A history row with the normalised identity that groups rows per package version.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    #[sqlx(flatten)]
    pub record: PromotionRecord,
    pub group_key: String,
    pub name_key: String,
    pub version_key: String,
}

impl HistoryQuery {
    /// The statement and its parameters; `None` when nothing can match.
    fn statement(&self) -> Option<(String, Vec<Bind>)> {
        if self.visible_feed_ids.as_ref().is_some_and(Vec::is_empty) {
            return None;
        }
        let mut c = Conditions::default();
        let mut clauses = Vec::new();
        c.equals("from_feed_key", self.from_feed_key.as_ref(), &mut clauses);
        c.equals("to_feed_key", self.to_feed_key.as_ref(), &mut clauses);
        c.equals("batch_id", self.batch_id.as_ref(), &mut clauses);
        if let Some(feed) = &self.feed_key {
            let (from, to) = (
                c.placeholder(Bind::Text(feed.clone())),
                c.placeholder(Bind::Text(feed.clone())),
            );
            clauses.push(format!("(from_feed_key = {from} OR to_feed_key = {to})"));
        }
        if !self.package.is_empty() {
            let mut alternatives = Vec::new();
            for keys in &self.package {
                let types = c.list(
                    keys.feed_types
                        .iter()
                        .map(|t| Bind::Text(t.as_str().to_owned())),
                );
                let mut parts = vec![format!("package_type IN ({types})")];
                c.equals("name_key", keys.name_key.as_ref(), &mut parts);
                c.equals("group_key", keys.group_key.as_ref(), &mut parts);
                c.equals("version_key", keys.version_key.as_ref(), &mut parts);
                alternatives.push(format!("({})", parts.join(" AND ")));
            }
            clauses.push(format!("({})", alternatives.join(" OR ")));
        }
        if let Some(ids) = &self.visible_feed_ids {
            let from = c.list(ids.iter().map(|&id| Bind::Int(id)));
            let to = c.list(ids.iter().map(|&id| Bind::Int(id)));
            clauses.push(format!(
                "(from_feed_id IN ({from}) OR to_feed_id IN ({to}))"
            ));
        }
        if let Some(before) = self.before_id {
            let p = c.placeholder(Bind::Int(before));
            clauses.push(format!("id < {p}"));
        }
        if let Some(after) = self.after_id {
            let p = c.placeholder(Bind::Int(after));
            clauses.push(format!("id > {p}"));
        }
        let order = match self.after_id {
            Some(_) => "ASC",
            None => "DESC",
        };
        let limit = c.placeholder(Bind::Int(self.limit));
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, group_key, name_key, version_key \
             FROM promotions {filter} ORDER BY id {order} LIMIT {limit}"
        );
        Some((sql, c.binds))
    }
}

impl Store {
    /// Promotions matching the query, at most `limit`: newest first, or oldest
    /// first after `after_id`.
    pub async fn promotion_history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRow>> {
        let Some((sql, binds)) = query.statement() else {
            return Ok(Vec::new());
        };
        Ok(on_pool!(self, pool => bind_all!(sqlx::query_as(&sql), &binds).fetch_all(pool).await)?)
    }

    /// PostgreSQL's plan for a history query, one line per plan node, so that
    /// operators and tests can see which index serves a filter. `None` on SQLite
    /// or when the query cannot match anything.
    pub async fn explain_history(&self, query: &HistoryQuery) -> Result<Option<String>> {
        let (Db::Postgres(pool), Some((sql, binds))) = (&self.db, query.statement()) else {
            return Ok(None);
        };
        let explain = format!("EXPLAIN {sql}");
        let lines: Vec<String> = bind_all!(sqlx::query_scalar(&explain), &binds)
            .fetch_all(pool)
            .await?;
        Ok(Some(lines.join("\n")))
    }
}

/// A promotion as a revert needs it.
#[derive(Debug, Clone, FromRow)]
pub struct RevertSource {
    pub id: i64,
    pub from_feed_id: i64,
    pub to_feed_id: i64,
    pub from_feed: String,
    pub to_feed: String,
    pub group_name: String,
    pub name: String,
    pub version: String,
    pub overwrote: bool,
}

impl RevertSource {
    /// `group/name`, or the name alone.
    pub fn full_name(&self) -> String {
        if self.group_name.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.group_name, self.name)
        }
    }
}

impl Store {
    /// The promotion with this id, or every promotion of this batch, oldest first.
    pub async fn promotions_to_revert(&self, target: &RevertTarget) -> Result<Vec<RevertSource>> {
        let columns = "id, from_feed_id, to_feed_id, from_feed, to_feed, group_name, name, version, overwrote";
        Ok(match target {
            RevertTarget::Promotion(id) => {
                let sql = format!("SELECT {columns} FROM promotions WHERE id = $1");
                on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_all(pool).await)?
            }
            RevertTarget::Batch(batch) => {
                let sql =
                    format!("SELECT {columns} FROM promotions WHERE batch_id = $1 ORDER BY id");
                on_pool!(self, pool => sqlx::query_as(&sql).bind(batch.to_string()).fetch_all(pool).await)?
            }
        })
    }
}
