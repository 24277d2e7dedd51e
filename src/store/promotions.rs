use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{is_unique_violation, Feed, Store};
use crate::domain::PackageId;

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
}

/// Why a move changed nothing.
#[derive(Debug)]
pub enum MoveError {
    NotInSource,
    AlreadyInTarget,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for MoveError {
    /// A version already in the target shows up as a violation of the identity key
    /// (PostgreSQL names the constraint; SQLite does not, but the move's only
    /// unique key there is the same one).
    fn from(error: sqlx::Error) -> Self {
        let identity_clash = is_unique_violation(&error)
            && error
                .as_database_error()
                .and_then(|db| db.constraint())
                .is_none_or(|name| name == "package_versions_identity");
        if identity_clash {
            MoveError::AlreadyInTarget
        } else {
            MoveError::Database(error)
        }
    }
}

/// Who asked for a move and why; written into the history row.
pub struct MoveAudit<'a> {
    pub comments: Option<&'a str>,
    pub user: &'a str,
    pub api_key_id: i64,
}

const INSERT_HISTORY_COLUMNS: &str =
    "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, \
     from_feed_key, to_feed_key, package_type, group_name, name, version, group_key, name_key, \
     version_key, comments, user_name, api_key_id, promoted_at)";

const RETURNING_RECORD: &str = "RETURNING id, from_feed, to_feed, package_type, group_name, name, \
     version, comments, user_name, promoted_at";

impl Store {
    /// Moves a package version, with all of its files, from one feed to another and
    /// writes the history row: both or neither.
    ///
    /// The version row carries its files, so moving it is one row update. The
    /// unique key on (feed, identity) turns "already in the target" into a
    /// constraint violation even when two promotions race; the row lock taken by
    /// the update makes a concurrent promotion of the same version find nothing left
    /// in the source once the first commits.
    pub async fn move_package(
        &self,
        from: &Feed,
        to: &Feed,
        package: &PackageId,
        audit: &MoveAudit<'_>,
    ) -> Result<PromotionRecord, MoveError> {
        match self {
            // One statement, so one round trip and its own transaction: the update
            // and the history insert commit together or not at all.
            Store::Postgres(pool) => {
                let sql = format!(
                    "WITH moved AS ( \
                       UPDATE package_versions SET feed_id = $2 \
                       WHERE feed_id = $1 AND name_key = $3 AND group_key = $4 AND version_key = $5 \
                       RETURNING group_name, name, version, group_key, name_key, version_key) \
                     {INSERT_HISTORY_COLUMNS} \
                     SELECT $1, $2, $6, $7, $8, $9, $10, group_name, name, version, group_key, \
                            name_key, version_key, $11, $12, $13, $14 FROM moved \
                     {RETURNING_RECORD}"
                );
                sqlx::query_as(&sql)
                    .bind(from.id)
                    .bind(to.id)
                    .bind(package.name_key())
                    .bind(package.group_key())
                    .bind(package.version_key())
                    .bind(&from.name)
                    .bind(&to.name)
                    .bind(&from.name_key)
                    .bind(&to.name_key)
                    .bind(from.feed_type.as_str())
                    .bind(audit.comments)
                    .bind(audit.user)
                    .bind(audit.api_key_id)
                    .bind(Utc::now())
                    .fetch_optional(pool)
                    .await?
                    .ok_or(MoveError::NotInSource)
            }
            // SQLite has no data-modifying CTEs: two statements in a transaction
            // that takes the write lock at BEGIN, so writers queue instead of
            // deadlocking on a lock upgrade.
            Store::Sqlite(pool, writer) => {
                let _queued = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let moved: Option<(String, String, String)> = sqlx::query_as(
                    "UPDATE package_versions SET feed_id = $2 \
                     WHERE feed_id = $1 AND name_key = $3 AND group_key = $4 AND version_key = $5 \
                     RETURNING group_name, name, version",
                )
                .bind(from.id)
                .bind(to.id)
                .bind(package.name_key())
                .bind(package.group_key())
                .bind(package.version_key())
                .fetch_optional(&mut *tx)
                .await?;
                let (group_name, name, version) = moved.ok_or(MoveError::NotInSource)?;
                let sql = format!(
                    "{INSERT_HISTORY_COLUMNS} \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                     {RETURNING_RECORD}"
                );
                let record = sqlx::query_as(&sql)
                    .bind(from.id)
                    .bind(to.id)
                    .bind(&from.name)
                    .bind(&to.name)
                    .bind(&from.name_key)
                    .bind(&to.name_key)
                    .bind(from.feed_type.as_str())
                    .bind(group_name)
                    .bind(name)
                    .bind(version)
                    .bind(package.group_key())
                    .bind(package.name_key())
                    .bind(package.version_key())
                    .bind(audit.comments)
                    .bind(audit.user)
                    .bind(audit.api_key_id)
                    .bind(Utc::now())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(record)
            }
        }
    }
}
