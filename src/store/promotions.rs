use chrono::{DateTime, Utc};
use sqlx::FromRow;

use std::time::{Duration, Instant};

use super::{on_pool, Feed, Store, ACQUIRE_TIMEOUT, STATEMENT_TIMEOUT};
use crate::domain::PackageId;
use crate::error::{is_transient_conflict, Error};

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
    /// The version is not in the source feed, or a feed no longer allows the
    /// move (deleted, disabled, or the source's fixed target changed since the
    /// caller looked). The caller re-reads the feeds to say which.
    NotMoved,
    AlreadyInTarget,
    Failed(Error),
}

impl From<sqlx::Error> for MoveError {
    fn from(error: sqlx::Error) -> Self {
        MoveError::from(Error::from(error))
    }
}

impl From<Error> for MoveError {
    /// A version already in the target shows up as a violation of the identity key
    /// (PostgreSQL names the constraint; SQLite does not, but the move's only
    /// unique key there is the same one).
    fn from(error: Error) -> Self {
        let identity_clash = matches!(&error, Error::Database(db) if db.as_database_error().is_some_and(|db| {
            db.is_unique_violation()
                && db
                    .constraint()
                    .is_none_or(|name| name == "package_versions_identity")
        }));
        if identity_clash {
            MoveError::AlreadyInTarget
        } else {
            MoveError::Failed(error)
        }
    }
}

/// Who asked for a move and why; written into the history row.
pub struct MoveAudit<'a> {
    pub comments: Option<&'a str>,
    pub user: &'a str,
    pub api_key_id: i64,
}

/// Time kept in hand for the statements and the commit after the last wait.
const COMMIT_MARGIN: Duration = Duration::from_secs(5);

fn too_late() -> Error {
    Error::Unavailable {
        reason: "this request waited too long to start the change",
        cause: None,
    }
}

/// Where a version went when it last left a feed, from the history.
#[derive(Debug, Clone, FromRow)]
pub struct Departure {
    pub id: i64,
    pub to_feed: String,
    pub promoted_at: DateTime<Utc>,
}

const INSERT_HISTORY_COLUMNS: &str =
    "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, \
     from_feed_key, to_feed_key, package_type, group_name, name, version, group_key, name_key, \
     version_key, comments, user_name, api_key_id, promoted_at)";

const RETURNING_RECORD: &str = "RETURNING id, from_feed, to_feed, package_type, group_name, name, \
     version, comments, user_name, promoted_at";

/// What the move relies on about the feeds ($1 source, $2 target), checked by the
/// move statement itself rather than by an earlier read: both still exist and are
/// enabled, and the source's fixed target (if any) is still the target.
const FEEDS_ALLOW_MOVE: &str = "s.id = $1 AND t.id = $2 AND s.active AND t.active \
     AND (s.promote_to_feed_id IS NULL OR s.promote_to_feed_id = t.id)";

impl Store {
    /// Moves a package version, with all of its files, from one feed to another and
    /// writes the history row: both or neither.
    ///
    /// The version row carries its files, so moving it is one row update. The
    /// unique key on (feed, identity) turns "already in the target" into a
    /// constraint violation even when two promotions race; the row lock taken on
    /// the version makes a concurrent promotion of it find nothing left in the
    /// source once the first commits. The feeds are re-checked after that lock is
    /// held, so a feed disabled (or re-targeted) while the move waited stops it.
    ///
    /// `answer_due` is when the caller stops waiting (the HTTP request timeout).
    /// A move that could still be running then is not started (503), so that no
    /// caller hears "timed out" about a promotion that then commits.
    pub async fn move_package(
        &self,
        from: &Feed,
        to: &Feed,
        package: &PackageId,
        audit: &MoveAudit<'_>,
        answer_due: Instant,
    ) -> Result<PromotionRecord, MoveError> {
        match self {
            // One statement, so one round trip and its own transaction. Order
            // matters: lock the version first (waiting for any other holder),
            // then lock the two feed rows FOR SHARE and check them. Taking the
            // feed locks only once the version is ours means a feed can be
            // disabled while a promotion waits (no deadlock), and the FOR SHARE
            // re-reads a feed changed after this statement began and blocks a
            // change until we commit.
            Store::Postgres(pool) => {
                let sql = format!(
                    "WITH version AS ( \
                       SELECT id FROM package_versions \
                       WHERE feed_id = $1 AND name_key = $3 AND group_key = $4 AND version_key = $5 \
                       FOR UPDATE), \
                     allowed AS ( \
                       SELECT s.id FROM feeds s, feeds t \
                       WHERE {FEEDS_ALLOW_MOVE} AND EXISTS (SELECT 1 FROM version) \
                       FOR SHARE OF s, t), \
                     moved AS ( \
                       UPDATE package_versions v SET feed_id = $2 \
                       FROM version, allowed WHERE v.id = version.id \
                       RETURNING v.group_name, v.name, v.version, v.group_key, v.name_key, v.version_key) \
                     {INSERT_HISTORY_COLUMNS} \
                     SELECT $1, $2, $6, $7, $8, $9, $10, group_name, name, version, group_key, \
                            name_key, version_key, $11, $12, $13, $14 FROM moved \
                     {RETURNING_RECORD}"
                );
                let attempt = || {
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
                };
                // An attempt may wait for a connection and then run for up to
                // the statement timeout; one started later than this could
                // commit after the caller was told 408.
                let in_time = || {
                    Instant::now() + ACQUIRE_TIMEOUT + STATEMENT_TIMEOUT + COMMIT_MARGIN
                        <= answer_due
                };
                if !in_time() {
                    return Err(MoveError::Failed(too_late()));
                }
                // A deadlock with some other transaction rolled the statement
                // back whole, so running it once more is safe, if still in time.
                let moved = match attempt().await {
                    Err(error) if is_transient_conflict(&error) && in_time() => attempt().await,
                    other => other,
                };
                moved?.ok_or(MoveError::NotMoved)
            }
            // SQLite has no data-modifying CTEs: two statements in a transaction
            // that holds the write lock from BEGIN, so nothing changes the feeds
            // between the check in the UPDATE and the commit.
            Store::Sqlite(..) => {
                let mut tx = self.begin_write().await?;
                // Holding the write lock, nothing below waits for another
                // writer; but the wait for the lock may have used up the time.
                if Instant::now() + COMMIT_MARGIN > answer_due {
                    return Err(MoveError::Failed(too_late()));
                }
                let crate::store::WriteTx::Sqlite(conn, _) = &mut tx else {
                    unreachable!("a SQLite store begins SQLite transactions")
                };
                let moved: Option<(String, String, String)> = sqlx::query_as(&format!(
                    "UPDATE package_versions SET feed_id = $2 \
                     WHERE feed_id = $1 AND name_key = $3 AND group_key = $4 AND version_key = $5 \
                     AND EXISTS (SELECT 1 FROM feeds s, feeds t WHERE {FEEDS_ALLOW_MOVE}) \
                     RETURNING group_name, name, version"
                ))
                .bind(from.id)
                .bind(to.id)
                .bind(package.name_key())
                .bind(package.group_key())
                .bind(package.version_key())
                .fetch_optional(&mut **conn)
                .await?;
                let (group_name, name, version) = moved.ok_or(MoveError::NotMoved)?;
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
                    .fetch_one(&mut **conn)
                    .await?;
                tx.commit().await?;
                Ok(record)
            }
        }
    }

    /// The newest promotion that took this version out of `feed`, if any: what a
    /// caller who just missed it wants to know.
    pub async fn last_departure(
        &self,
        feed: &Feed,
        package: &PackageId,
    ) -> crate::error::Result<Option<Departure>> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, to_feed, promoted_at FROM promotions \
             WHERE from_feed_id = $1 AND name_key = $2 AND group_key = $3 AND version_key = $4 \
             AND package_type = $5 ORDER BY id DESC LIMIT 1",
        )
        .bind(feed.id)
        .bind(package.name_key())
        .bind(package.group_key())
        .bind(package.version_key())
        .bind(feed.feed_type.as_str())
        .fetch_optional(pool)
        .await)?)
    }
}
