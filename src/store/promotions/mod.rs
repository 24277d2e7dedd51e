//! Moving package versions between feeds: one promotion, a batch or a revert,
//! each as one transaction with a bounded number of statements however many
//! versions it moves. This module holds the vocabulary of a move; `plan.rs`
//! carries out any plan, `one.rs` the one-statement fast path of the common
//! case.

mod group;
mod one;
mod plan;

pub(super) use group::GroupCommit;

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::Feed;
use crate::domain::{MoveItem, OnConflict, PackageId};
use crate::error::Error;

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
    pub batch_id: Option<String>,
    pub revert_of: Option<i64>,
    pub overwrote: bool,
    /// The upstream URL the version's bytes came from, when a connector
    /// fetched them (written by the history's trigger, migration 0013; read
    /// back by the history, not by RETURNING, which on SQLite runs first).
    pub fetched_from: Option<String>,
}

/// The columns of a [`PromotionRecord`], for SELECT and RETURNING.
pub const RECORD_COLUMNS: &str = "id, from_feed, to_feed, package_type, group_name, name, \
     version, comments, user_name, promoted_at, batch_id, revert_of, overwrote, fetched_from";

/// Who asked for a move and why; written into the history rows.
pub struct MoveAudit<'a> {
    pub comments: Option<&'a str>,
    pub user: &'a str,
    pub api_key_id: i64,
}

/// A set of moves from one feed to another, done all or nothing.
pub struct MovePlan<'a> {
    pub from: &'a Feed,
    pub to: &'a Feed,
    pub items: &'a [MoveItem],
    pub on_conflict: OnConflict,
    /// False for a revert: an undo is not held to the source's fixed target.
    pub check_fixed_target: bool,
    pub audit: MoveAudit<'a>,
    /// Shared by every history row of a batch or a batch revert.
    pub batch_id: Option<&'a str>,
    /// Roll back at the end instead of committing.
    pub dry_run: bool,
    /// When the caller stops waiting (the HTTP request timeout). A transaction
    /// is only committed with time in hand, so no caller is told "timed out"
    /// about a change that then commits.
    pub answer_due: Instant,
}

/// Where a version went when it last left a feed, from the history.
#[derive(Debug, Clone)]
pub struct Departure {
    pub id: i64,
    pub to_feed: String,
    pub promoted_at: DateTime<Utc>,
}

/// What happened to one item.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Moved; `record` is its history row (its id is 0 in a dry run).
    Promoted(PromotionRecord),
    /// Moved after deleting the target's copy.
    Overwritten(PromotionRecord),
    /// Already in the target, left where it was (`onConflict=skip`).
    Skipped,
    /// Not in the source feed; the history may say where it went.
    NotInSource(Option<Departure>),
    /// Already in the target (`onConflict=fail`).
    AlreadyInTarget,
    /// For a revert: a later promotion (this id) moved the version since.
    NotNewest(i64),
    /// `latest`: the source holds no (stable) version of the package.
    NoVersion,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Outcome::NotInSource(_)
                | Outcome::AlreadyInTarget
                | Outcome::NotNewest(_)
                | Outcome::NoVersion
        )
    }
}

/// One item's result: the version it resolved to, and what happened.
#[derive(Debug, Clone)]
pub struct ItemResult {
    pub package: PackageId,
    pub outcome: Outcome,
}

/// Why a plan changed nothing as a whole.
#[derive(Debug)]
pub enum MoveError {
    /// A feed no longer allows the move (deleted, disabled, or the source's
    /// fixed target changed since the caller looked); the caller re-reads the
    /// feeds to say which.
    FeedsChanged,
    /// A version appeared in the target while the plan ran.
    TargetChanged,
    Failed(Error),
}

impl From<Error> for MoveError {
    fn from(error: Error) -> Self {
        let identity_clash = matches!(&error, Error::Database(db) if db.as_database_error().is_some_and(|db| {
            db.is_unique_violation()
                && db
                    .constraint()
                    .is_none_or(|name| name == "package_versions_identity")
        }));
        if identity_clash {
            MoveError::TargetChanged
        } else {
            MoveError::Failed(error)
        }
    }
}

impl From<sqlx::Error> for MoveError {
    fn from(error: sqlx::Error) -> Self {
        MoveError::from(Error::from(error))
    }
}

fn too_late() -> Error {
    Error::Unavailable {
        reason: "this request waited too long to start the change",
        cause: None,
    }
}

/// A row of the source or target feed that an item names.
#[derive(Debug, Clone, FromRow)]
struct Located {
    item: i64,
    id: i64,
    feed_id: i64,
    group_name: String,
    name: String,
    version: String,
}
