//! Everything that knows SQL. Handlers and the promotion logic call the operations
//! here and never see a pool.
//!
//! One `Store` enum over the two pools, rather than generic code over
//! `sqlx::Database` or `sqlx::Any`: most statements are portable (both backends
//! accept `$1` placeholders, `ON CONFLICT` and `RETURNING`), so [`on_pool!`] runs one
//! statement text on whichever pool is open, and the two backends cannot drift. The
//! few places where the dialects differ (the promotion move and the bulk import)
//! `match` on the backend explicitly.

mod feeds;
mod keys;
mod packages;
mod promotions;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use feeds::Feed;
pub use keys::{KeyScope, NewKey, StoredKey};
pub use packages::{ImportSummary, NewFile, NewPackage};
pub use promotions::{MoveAudit, MoveError, PromotionRecord};

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs one expression against whichever pool the store holds; the expression is
/// compiled once per backend, so it must be portable SQL.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Postgres($pool) => $body,
            $crate::store::Store::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Opens the database named by `url` (`postgres://…` or `sqlite://…`) and brings
    /// its schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await
                .context("could not connect to PostgreSQL")?;
            Store::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("the SQLite database URL is not valid")?
                .create_if_missing(true)
                // WAL lets readers run beside the one writer; writers queue on the
                // busy timeout instead of failing at once.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .context("could not open the SQLite database")?;
            Store::Sqlite(pool)
        } else {
            anyhow::bail!("the database URL must start with postgres:// or sqlite://");
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        }
        .context("could not apply the database migrations")
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// True when a statement failed on a unique constraint, which several operations
/// turn into "already exists".
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
