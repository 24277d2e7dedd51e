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
mod history;
mod keys;
mod packages;
mod promotions;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use feeds::{Feed, FeedChange};
pub use history::{HistoryQuery, HistoryRow};
pub use keys::{KeyScope, NewKey, StoredKey};
pub use packages::{ImportSummary, NewFile, NewPackage, PackageFile};
pub use promotions::{MoveAudit, MoveError, PromotionRecord};

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool, SqliteWriter),
}

/// Queues this process's SQLite write transactions in arrival order. SQLite allows
/// one writer at a time; without a queue, waiting writers poll the database lock
/// with growing sleeps, which turns busy moments into multi-second stalls. Other
/// processes on the same file still wait on the busy timeout.
#[derive(Clone, Debug, Default)]
pub struct SqliteWriter(std::sync::Arc<tokio::sync::Mutex<()>>);

impl SqliteWriter {
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.lock().await
    }
}

/// Runs one expression against whichever pool the store holds; the expression is
/// compiled once per backend, so it must be portable SQL.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Postgres($pool) => $body,
            $crate::store::Store::Sqlite($pool, _) => $body,
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
            Store::Sqlite(pool, SqliteWriter::default())
        } else {
            anyhow::bail!("the database URL must start with postgres:// or sqlite://");
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Store::Sqlite(pool, _) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        }
        .context("could not apply the database migrations")
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(..) => "sqlite",
        }
    }

    /// Answers when the database does; `/health` uses it.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// A parameter of a statement built at run time.
enum Bind {
    Text(String),
    Int(i64),
}

/// Numbers a statement's parameters with `$n` placeholders, which both backends
/// accept, for statements whose filters are chosen at run time.
#[derive(Default)]
struct Conditions {
    binds: Vec<Bind>,
}

impl Conditions {
    fn placeholder(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    fn list(&mut self, values: impl IntoIterator<Item = Bind>) -> String {
        let placeholders: Vec<String> = values.into_iter().map(|b| self.placeholder(b)).collect();
        placeholders.join(", ")
    }

    /// Adds `column = $n` to `into` when there is a value to compare.
    fn equals(&mut self, column: &str, value: Option<&String>, into: &mut Vec<String>) {
        if let Some(value) = value {
            let p = self.placeholder(Bind::Text(value.clone()));
            into.push(format!("{column} = {p}"));
        }
    }
}

/// Binds the collected parameters, in order, to a query on either backend.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                $crate::store::Bind::Text(text) => query.bind(text),
                $crate::store::Bind::Int(int) => query.bind(int),
            };
        }
        query
    }};
}
use bind_all;

/// True when a statement failed on a unique constraint, which several operations
/// turn into "already exists".
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
