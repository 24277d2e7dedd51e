//! Everything that knows SQL. Handlers and the promotion logic call the operations
//! here and never see a pool.
//!
//! One `Store` enum over the two pools, rather than generic code over
//! `sqlx::Database` or `sqlx::Any`: most statements are portable (both backends
//! accept `$1` placeholders, `ON CONFLICT` and `RETURNING`), so [`on_pool!`] runs one
//! statement text on whichever pool is open, and the two backends cannot drift. The
//! few places where the dialects differ (the promotion move and the bulk import)
//! `match` on the backend explicitly.

mod cache;
mod content;
mod feeds;
mod history;
mod keys;
mod native;
mod packages;
mod promotions;
mod rekey;
mod rounds;
mod sessions;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Connection;

use cache::Cache;
pub use content::{ContentFile, Digests, Mark, Origin, Recorded};
pub use feeds::{Feed, FeedChange, FeedSettings};
pub use history::{HistoryQuery, HistoryRow, RevertSource};
pub use keys::{KeyScope, NewKey, StoredKey};
pub use native::{Arrival, DistTag, NativeFile, PackageKey, PackageRows};
pub use packages::{ImportSummary, NewFile, NewPackage, PackageFile};
pub use promotions::{
    Departure, ItemResult, MoveAudit, MoveError, MovePlan, Outcome, PromotionRecord, RECORD_COLUMNS,
};
pub use webhooks::{
    AfterAttempt, AttemptRecord, ClaimedEvent, DeliveryAttempt, DeliveryTarget, Webhook,
};

use crate::config::{Limits, ACQUIRE_TIMEOUT};
use crate::error::{Error, Result};

/// PostgreSQL connections per process unless set: four per core, at least 8.
/// Measured on two cores (BENCHMARKS.md), 8 connections served more promotions
/// than 16 or 32, with a lower p99: past the point where the database's cores
/// are busy, more connections only add contention.
pub fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    (cores * 4).max(8)
}

/// A pooled PostgreSQL connection idle for this long is pinged before use:
/// long enough that a busy server (whose connections come back within
/// seconds) pings none, short enough that a database restarted during a quiet
/// spell costs no request a 503.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(10);

/// A ping that takes longer than this finds a connection not worth keeping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A lazily connected PostgreSQL pool of at most `size` connections, each
/// set up with the statement timeout and `extra` settings.
fn postgres_pool(
    options: PgConnectOptions,
    size: u32,
    statement_timeout: Duration,
    extra: &str,
) -> PgPool {
    // Set per connection rather than as startup options, which connection
    // poolers such as PgBouncer refuse. An idle transaction left open by a
    // vanished client must not hold its locks for long.
    let settings = format!(
        "SET statement_timeout = '{}s'; SET idle_in_transaction_session_timeout = '60s'{extra}",
        statement_timeout.as_secs()
    );
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // Pinging each connection before handing it out doubled the round
        // trips of a promotion; only a connection that sat idle for a while
        // (long enough for the database to have restarted meanwhile) is
        // pinged, and replaced if it is broken. Under load, a connection
        // broken mid-use fails its statement (503) and is dropped.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_WHEN_IDLE_FOR {
                    return Ok(true);
                }
                // An error makes the pool drop the connection at once and
                // hand out (or open) another.
                tokio::time::timeout(PING_TIMEOUT, sqlx::Connection::ping(conn))
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&settings)).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// The database, and what this process keeps of it in memory.
#[derive(Clone)]
pub struct Store {
    db: Db,
    cache: Arc<Cache>,
    /// The longest a statement may run, lock waits included, on either backend
    /// (`--statement-timeout-seconds`). Start-up checks that it is well under
    /// the request timeout, so a request is never answered 408 while its
    /// transaction goes on to commit: the statement fails first, rolls back,
    /// and the caller hears 503.
    statement_timeout: Duration,
    /// Metadata documents asked for together, read together (`rounds`).
    package_rounds: Arc<rounds::Rounds<PackageKey, PackageRows>>,
    /// Single promotions written together (group commit, `--group-commit`);
    /// `None` writes each on its own.
    group_commit: Option<Arc<promotions::GroupCommit>>,
}

/// The database's pools.
#[derive(Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool, SqliteWriter),
}

/// The backend only: pools know their connect options, and those may hold a
/// password.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend())
    }
}

/// Queues this process's SQLite write transactions in arrival order. SQLite allows
/// one writer at a time; without a queue, waiting writers poll the database lock
/// with growing sleeps, which turns busy moments into multi-second stalls. Other
/// processes on the same file still wait on the busy timeout. Every write goes
/// through [`Store::begin_write`], which takes this queue first.
#[derive(Clone, Debug, Default)]
pub struct SqliteWriter {
    queue: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Rung after each committed promotion, which may have queued webhook
    /// events: this process's dispatcher then looks at once. (PostgreSQL's
    /// trigger notifies every process instead; other processes on a SQLite
    /// file find the events when they next poll.)
    outbox: std::sync::Arc<tokio::sync::Notify>,
}

/// A write transaction on either backend. On SQLite it holds this process's
/// writer queue and, from `BEGIN IMMEDIATE` on, the database's write lock, so its
/// reads and writes see no other writer in between.
pub enum WriteTx<'a> {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(
        sqlx::Transaction<'static, sqlx::Sqlite>,
        tokio::sync::MutexGuard<'a, ()>,
    ),
}

impl WriteTx<'_> {
    pub async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Postgres(tx) => tx.commit().await?,
            WriteTx::Sqlite(tx, _queued) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back now (dropping a transaction only queues the rollback).
    pub async fn rollback(self) -> Result<()> {
        match self {
            WriteTx::Postgres(tx) => tx.rollback().await?,
            WriteTx::Sqlite(tx, _queued) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Runs one expression against whichever pool the store holds; the expression is
/// compiled once per backend, so it must be portable SQL.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.db() {
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::Sqlite($pool, _) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs one expression on a write transaction's connection (`&mut *$conn`), on
/// either backend; like [`on_pool!`], the SQL must be portable.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::WriteTx::Postgres(tx) => {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
            $crate::store::WriteTx::Sqlite(tx, _) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Store {
    /// Opens the database named by `url` (`postgres://…` or `sqlite://…`) and brings
    /// its schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        Self::open_with(
            url,
            default_pool_size(),
            Limits::default().statement_timeout,
        )
        .await
    }

    /// Like `open`, holding at most `pool_size` PostgreSQL connections and
    /// giving up on a statement after `statement_timeout`.
    pub async fn open_with(
        url: &str,
        pool_size: u32,
        statement_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .context("the PostgreSQL database URL is not valid")?;
            // One connection first, straight to the server: a pool retries a
            // refused connection until its acquire timeout and then reports only
            // that it timed out, hiding the cause. It applies the migrations,
            // free of the statement timeout (an index build may take longer).
            // Named in every error (never with the password), so that an
            // operator sees which server was tried.
            let server = match options.get_socket() {
                Some(socket) => format!("the socket in {}", socket.display()),
                None => format!("{}:{}", options.get_host(), options.get_port()),
            };
            let target = format!(
                "PostgreSQL at {server} (database {})",
                options.get_database().unwrap_or(options.get_username())
            );
            let mut first = PgConnection::connect_with(&options)
                .await
                .with_context(|| format!("could not connect to {target}"))?;
            sqlx::migrate!("./migrations/postgres")
                .run(&mut first)
                .await
                .context("could not apply the database migrations")?;
            first
                .close()
                .await
                .with_context(|| format!("could not connect to {target}"))?;
            let pool = postgres_pool(options, pool_size, statement_timeout, "");
            Db::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let parsed = SqliteConnectOptions::from_str(url)
                .context("the SQLite database URL is not valid")?;
            // A command run from another directory would otherwise quietly
            // start an empty database there.
            let file = parsed.get_filename().to_owned();
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let is_new = !in_memory && !file.exists();
            let shown = std::path::absolute(&file).unwrap_or(file.clone());
            if let Some(folder) = shown
                .parent()
                .filter(|folder| !in_memory && !folder.is_dir())
            {
                anyhow::bail!(
                    "could not open the SQLite database at {}: its folder {} does not exist",
                    shown.display(),
                    folder.display()
                );
            }
            let options = parsed
                .create_if_missing(true)
                // WAL lets readers run beside the one writer; writers from other
                // processes wait on the busy timeout instead of failing at once.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(statement_timeout);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A file's connections do not break; pinging one is a wasted
                // trip to its thread.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| {
                    format!("could not open the SQLite database at {}", shown.display())
                })?;
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .context("could not apply the database migrations")?;
            if is_new {
                tracing::warn!(
                    "created a new, empty SQLite database at {}: nothing was there (set --database-url or PROMOTER_DATABASE_URL to use another)",
                    shown.display()
                );
            }
            Db::Sqlite(pool, SqliteWriter::default())
        } else {
            anyhow::bail!("the database URL must start with postgres:// or sqlite://");
        };
        let store = Store {
            db,
            cache: Arc::new(Cache::default()),
            statement_timeout,
            package_rounds: Arc::default(),
            group_commit: None,
        };
        store
            .apply_key_revisions()
            .await
            .context("could not bring the stored keys up to the current rules")?;
        Ok(store)
    }

    /// Writes single promotions in rounds of at most `max` (group commit,
    /// see `promotions::group`), or each on its own with `None`.
    pub fn group_commit(mut self, max: Option<usize>) -> Self {
        self.group_commit =
            max.map(|max| promotions::GroupCommit::new(max, self.rounds_connection()));
        self
    }

    /// PostgreSQL's connections for rounds of promotions: two, so that the
    /// pool's check of a connection given back never delays the next round
    /// (one round runs at a time). On them the round's statement keeps one
    /// generic plan: planned afresh for each round's values, as PostgreSQL
    /// chose to, it cost more to plan than to run. And a round waits at most
    /// 200 ms for a lock it cannot skip (a copy of a version another writer
    /// is putting in a target): past it, each item goes on alone and waits
    /// there, holding up nobody else's promotion.
    fn rounds_connection(&self) -> Option<PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(postgres_pool(
                (*pool.connect_options()).clone(),
                2,
                self.statement_timeout,
                "; SET plan_cache_mode = force_generic_plan; SET lock_timeout = '200ms'",
            )),
            Db::Sqlite(..) => None,
        }
    }

    /// With group commit, how many rounds moved something and how many
    /// versions they moved, since this store was opened.
    pub fn group_commit_counts(&self) -> Option<(u64, u64)> {
        self.group_commit.as_ref().map(|group| group.counts())
    }

    /// The pools, for code that must tell the backends apart.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn backend(&self) -> &'static str {
        match &self.db {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(..) => "sqlite",
        }
    }

    /// Begins a write transaction (see [`WriteTx`]). On SQLite, waiting in this
    /// process's queue counts against the statement timeout, so a request never
    /// waits there past the point where it would be answered 408.
    pub async fn begin_write(&self) -> Result<WriteTx<'_>> {
        match &self.db {
            Db::Postgres(pool) => Ok(WriteTx::Postgres(pool.begin().await?)),
            Db::Sqlite(pool, writer) => {
                let queued = tokio::time::timeout(self.statement_timeout, writer.queue.lock())
                    .await
                    .map_err(|_| Error::Unavailable {
                        reason: "it is busy with other writes",
                        cause: None,
                    })?;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx::Sqlite(tx, queued))
            }
        }
    }

    /// Commits a change to the feeds, groups or keys, and forgets what this
    /// process kept of them, so that its next request sees the change (other
    /// processes hear of it through the database: see `cache`).
    pub(crate) async fn commit_catalog(&self, tx: WriteTx<'_>) -> Result<()> {
        let committed = tx.commit().await;
        self.cache.forget();
        committed
    }

    /// Tells this process's webhook dispatcher that a promotion committed.
    pub fn promotion_committed(&self) {
        if let Db::Sqlite(_, writer) = &self.db {
            writer.outbox.notify_one();
        }
    }

    /// What rings when this process commits a promotion (SQLite only).
    pub fn promotions_committed(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        match &self.db {
            Db::Postgres(_) => None,
            Db::Sqlite(_, writer) => Some(writer.outbox.clone()),
        }
    }

    /// Sets the gauges read at each scrape of `/metrics`: the pool's
    /// connections, and the webhook events waiting (left unset when the
    /// database does not answer; the scrape still succeeds).
    pub async fn record_gauges(&self) {
        let (size, idle, max) = on_pool!(self, pool => (
            pool.size(),
            pool.num_idle(),
            pool.options().get_max_connections(),
        ));
        // Two readings, not one snapshot: never below zero.
        let in_use = (f64::from(size) - idle as f64).max(0.0);
        metrics::gauge!(crate::metrics::POOL_CONNECTIONS, "state" => "in_use").set(in_use);
        metrics::gauge!(crate::metrics::POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
        metrics::gauge!(crate::metrics::POOL_MAX).set(f64::from(max));
        let pending: Result<i64, _> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_events WHERE state = 'pending'"
        )
        .fetch_one(pool)
        .await);
        if let Ok(pending) = pending {
            metrics::gauge!(crate::metrics::OUTBOX_PENDING).set(pending as f64);
        }
    }

    /// Answers when the database does; `/health` uses it.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    /// Why the database cannot be reached, found by opening a connection of our
    /// own (a pool only says that it timed out). `None` when that connection works.
    pub async fn diagnose_connection(&self) -> Option<sqlx::Error> {
        match &self.db {
            Db::Postgres(pool) => {
                let options = pool.connect_options();
                match PgConnection::connect_with(&options).await {
                    Ok(connection) => {
                        let _ = connection.close().await;
                        None
                    }
                    Err(error) => Some(error),
                }
            }
            Db::Sqlite(..) => self.ping().await.err(),
        }
    }

    pub async fn close(&self) {
        if let Some(group) = &self.group_commit {
            group.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }
}

/// Listens on `channel` for as long as it runs, on a connection of its own,
/// reconnecting (after a pause, so that a server dropping connections is not
/// hammered) whenever the connection is lost. Calls `heard` for every
/// notification and after every (re)connection, since notifications sent
/// while not listening were missed.
pub async fn listen(pool: PgPool, channel: &str, mut heard: impl FnMut()) {
    let own = single_connection(&pool);
    loop {
        if let Ok(mut listener) = sqlx::postgres::PgListener::connect_with(&own).await {
            listener.eager_reconnect(false);
            if listener.listen(channel).await.is_ok() {
                heard();
                // `try_recv` answers None when the connection is lost.
                while let Ok(Some(_)) = listener.try_recv().await {
                    heard();
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A pool of one connection to the same database, for a listener: a listener
/// holds its connection for good, which must not cost the requests' pool one.
fn single_connection(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(pool.connect_options().as_ref().clone())
}

/// Runs a write transaction once more when PostgreSQL rolled it back in a
/// deadlock. Writes take their locks in a promotion's order (versions, then
/// feeds), but rows that appear while a long delete runs can still cross it.
pub(crate) async fn once_more_on_conflict<T, Fut>(mut write: impl FnMut() -> Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    match write().await {
        Err(error) if error.is_transient_conflict() => write().await,
        other => other,
    }
}

/// Turns the constraint violations a statement can meet in a race (a name taken,
/// a referenced row deleted meanwhile) into the caller's error, in one place.
pub(crate) trait ConstraintExt<T> {
    /// A unique violation becomes `error()`.
    fn on_unique(self, error: impl FnOnce() -> Error) -> Result<T>;
    /// A foreign-key violation becomes `error()`.
    fn on_foreign_key(self, error: impl FnOnce() -> Error) -> Result<T>;
}

impl<T, E: Into<Error>> ConstraintExt<T> for Result<T, E> {
    fn on_unique(self, error: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.into() {
            Error::Database(db) if violates(&db, |d| d.is_unique_violation()) => error(),
            other => other,
        })
    }

    fn on_foreign_key(self, error: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.into() {
            Error::Database(db) if violates(&db, |d| d.is_foreign_key_violation()) => error(),
            other => other,
        })
    }
}

fn violates(error: &sqlx::Error, kind: impl Fn(&dyn sqlx::error::DatabaseError) -> bool) -> bool {
    error.as_database_error().is_some_and(kind)
}

/// `a, b, …`: the values as parameters of a list (`IN (…)`), written into a
/// `sqlx::QueryBuilder`.
fn push_list<'a, DB, T>(sql: &mut sqlx::QueryBuilder<'a, DB>, values: impl IntoIterator<Item = T>)
where
    DB: sqlx::Database,
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut list = sql.separated(", ");
    for value in values {
        list.push_bind(value);
    }
}

/// The `WHERE … AND …` of a statement whose filters are chosen at run time,
/// written into a `sqlx::QueryBuilder` (which numbers the placeholders as each
/// backend wants them: `$n` on PostgreSQL, `?` on SQLite).
#[derive(Default)]
struct Filter {
    started: bool,
}

impl Filter {
    /// Starts the next condition: ` WHERE ` the first time, ` AND ` after.
    fn and<'s, 'a, DB: sqlx::Database>(
        &mut self,
        sql: &'s mut sqlx::QueryBuilder<'a, DB>,
    ) -> &'s mut sqlx::QueryBuilder<'a, DB> {
        sql.push(if self.started { " AND " } else { " WHERE " });
        self.started = true;
        sql
    }
}
