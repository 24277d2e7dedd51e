//! Reading the promotion history: filters, visibility and keyset pagination.

use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::{on_pool, push_list, Db, Filter, PromotionRecord, Store, RECORD_COLUMNS};
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
    /// Writes the statement; false when nothing can match.
    fn write<'a, DB>(&'a self, sql: &mut QueryBuilder<'a, DB>) -> bool
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
        i64: Encode<'a, DB> + Type<DB>,
    {
        if self.visible_feed_ids.as_ref().is_some_and(Vec::is_empty) {
            return false;
        }
        sql.push(format_args!(
            "SELECT {RECORD_COLUMNS}, group_key, name_key, version_key FROM promotions"
        ));
        let mut filter = Filter::default();
        let equal = [
            ("from_feed_key", &self.from_feed_key),
            ("to_feed_key", &self.to_feed_key),
            ("batch_id", &self.batch_id),
        ];
        for (column, value) in equal {
            if let Some(value) = value {
                filter
                    .and(sql)
                    .push(column)
                    .push(" = ")
                    .push_bind(value.as_str());
            }
        }
        if let Some(feed) = &self.feed_key {
            filter
                .and(sql)
                .push("(from_feed_key = ")
                .push_bind(feed.as_str());
            sql.push(" OR to_feed_key = ")
                .push_bind(feed.as_str())
                .push(")");
        }
        if !self.package.is_empty() {
            filter.and(sql).push("(");
            for (n, keys) in self.package.iter().enumerate() {
                sql.push(if n == 0 { "(" } else { " OR (" });
                sql.push("package_type IN (");
                push_list(sql, keys.feed_types.iter().map(|t| t.as_str()));
                sql.push(")");
                let keys = [
                    ("name_key", &keys.name_key),
                    ("group_key", &keys.group_key),
                    ("version_key", &keys.version_key),
                ];
                for (column, value) in keys {
                    if let Some(value) = value {
                        sql.push(" AND ")
                            .push(column)
                            .push(" = ")
                            .push_bind(value.as_str());
                    }
                }
                sql.push(")");
            }
            sql.push(")");
        }
        if let Some(ids) = &self.visible_feed_ids {
            filter.and(sql).push("(from_feed_id IN (");
            push_list(sql, ids.iter().copied());
            sql.push(") OR to_feed_id IN (");
            push_list(sql, ids.iter().copied());
            sql.push("))");
        }
        if let Some(before) = self.before_id {
            filter.and(sql).push("id < ").push_bind(before);
        }
        if let Some(after) = self.after_id {
            filter.and(sql).push("id > ").push_bind(after);
        }
        let order = match self.after_id {
            Some(_) => "ASC",
            None => "DESC",
        };
        sql.push(format_args!(" ORDER BY id {order} LIMIT "))
            .push_bind(self.limit);
        true
    }
}

impl Store {
    /// Promotions matching the query, at most `limit`: newest first, or oldest
    /// first after `after_id`.
    pub async fn promotion_history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRow>> {
        Ok(on_pool!(self, pool => {
            let mut sql = QueryBuilder::new("");
            if !query.write(&mut sql) {
                return Ok(Vec::new());
            }
            sql.build_query_as().fetch_all(pool).await
        })?)
    }

    /// PostgreSQL's plan for a history query, one line per plan node, so that
    /// operators and tests can see which index serves a filter. `None` on SQLite
    /// or when the query cannot match anything.
    pub async fn explain_history(&self, query: &HistoryQuery) -> Result<Option<String>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut sql = QueryBuilder::new("EXPLAIN ");
        if !query.write(&mut sql) {
            return Ok(None);
        }
        let lines: Vec<String> = sql.build_query_scalar().fetch_all(pool).await?;
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
