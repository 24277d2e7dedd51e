//! What every request reads and what rarely changes, kept in this process: the
//! feeds (one snapshot of all of them) and the API keys that were used (by hash),
//! with the feeds of their groups. With them in memory a promotion costs the
//! database one round trip.
//!
//! Nothing kept is used unless this process has lately made sure that it hears
//! every change. The server runs [`Store::watch_catalog`]:
//! - On PostgreSQL it listens, on a connection of its own, on the channel that
//!   triggers on the feed, group and key tables notify at each commit (a change
//!   made by any replica, the CLI or by hand), and every [`HEARTBEAT`] it
//!   notifies itself on a channel of its own. Notifications arrive in commit
//!   order, so its own coming back proves that every change committed before it
//!   was sent has been heard. (Behind a pooler in transaction mode, where LISTEN
//!   hears nothing, the heartbeat never comes back and nothing is kept.)
//! - On SQLite, which cannot notify, those triggers count up a change counter
//!   that it reads every [`SQLITE_POLL`] on a connection of its own.
//!
//! Each proof is a lease: what is kept may be used until [`BOUND`] after the
//! moment the proof started, so a watcher that stalls or loses its connection
//! silently stops the cache within the bound, without having to notice. This
//! process's own changes are forgotten at once, and every entry is read again
//! after [`MAX_AGE`] whatever happens.
//!
//! A read that started before a change must not keep what it read after the
//! change was heard: each read takes a ticket (the generation it started under)
//! and keeps its result only if no change was heard since.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPool};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::Connection;

use super::{Db, Feed, Store, StoredKey};
use crate::domain::random_hex;
use crate::error::{describe, Error};

/// The channel on which the triggers of migration 0007 announce changes.
const CHANNEL: &str = "promoter_catalog";

/// The longest a change made by another process can go unheard: a revoked key
/// stops working on every replica within this.
pub const BOUND: Duration = Duration::from_millis(100);

/// How often a serving process on PostgreSQL proves that it is still hearing
/// changes; well inside `BOUND`, so that the lease never lapses while it does.
const HEARTBEAT: Duration = Duration::from_millis(40);

/// How often a serving process on SQLite reads the change counter.
const SQLITE_POLL: Duration = Duration::from_millis(40);

/// Entries older than this are read again even if no change was heard.
const MAX_AGE: Duration = Duration::from_secs(5);

/// After the watcher loses its connection, how long it waits before trying
/// again (nothing is kept meanwhile).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Keys kept at most. Only keys that exist are kept, so this bounds memory only
/// against a deployment with very many keys; past it the keys are dropped and
/// read again.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub(super) struct Cache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(super) struct Inner {
    /// Counts the changes heard (and losses of hearing).
    generation: u64,
    /// Until when every change is known to be heard (see the module's
    /// comment); nothing is used or kept after it.
    heard_until: Option<Instant>,
    feeds: HashMap<(), Entry<Arc<[Feed]>>>,
    keys: HashMap<String, Entry<StoredKey>>,
    groups: HashMap<i64, Entry<Arc<[i64]>>>,
}

pub(super) struct Entry<T> {
    read_at: Instant,
    value: T,
}

/// The generation a read started under; `None` when nothing may be kept.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(Option<u64>);

/// Picks one of the kept maps.
pub(super) type Map<K, V> = fn(&mut Inner) -> &mut HashMap<K, Entry<V>>;

pub(super) fn feeds(inner: &mut Inner) -> &mut HashMap<(), Entry<Arc<[Feed]>>> {
    &mut inner.feeds
}

pub(super) fn keys(inner: &mut Inner) -> &mut HashMap<String, Entry<StoredKey>> {
    &mut inner.keys
}

pub(super) fn groups(inner: &mut Inner) -> &mut HashMap<i64, Entry<Arc<[i64]>>> {
    &mut inner.groups
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, but a poisoned cache is still
        // just a cache: forget it rather than stop serving.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut inner = poisoned.into_inner();
            inner.forget();
            inner
        })
    }

    /// Drops everything kept: something changed.
    pub fn forget(&self) {
        self.lock().forget();
    }

    /// The watcher lost its connection, or starts anew: nothing is known to
    /// be heard, and what was kept is dropped.
    pub fn unheard(&self) {
        let mut inner = self.lock();
        inner.forget();
        inner.heard_until = None;
    }

    /// Every change committed before `since` has been heard.
    pub fn heard(&self, since: Instant) {
        let mut inner = self.lock();
        let until = since + BOUND;
        if inner.heard_until.is_none_or(|current| current < until) {
            inner.heard_until = Some(until);
        }
    }

    /// The kept value, if fresh; otherwise the ticket to keep a new read with.
    pub fn get<K: Hash + Eq, V: Clone>(&self, map: Map<K, V>, key: &K) -> Result<V, Ticket> {
        let mut inner = self.lock();
        let (found, result) = if !inner.hearing() {
            (Err(Ticket(None)), "unheard")
        } else {
            let ticket = Ticket(Some(inner.generation));
            match map(&mut inner).get(key) {
                Some(entry) if entry.read_at.elapsed() < MAX_AGE => {
                    (Ok(entry.value.clone()), "hit")
                }
                _ => (Err(ticket), "miss"),
            }
        };
        metrics::counter!(crate::metrics::CACHE_LOOKUPS, "result" => result).increment(1);
        found
    }

    /// Keeps what a read found, unless a change was heard since it started.
    pub fn keep<K: Hash + Eq, V>(&self, map: Map<K, V>, ticket: Ticket, key: K, value: V) {
        let mut inner = self.lock();
        if ticket.0 != Some(inner.generation) || !inner.hearing() {
            return;
        }
        if inner.keys.len() >= MAX_KEYS {
            inner.keys.clear();
        }
        let read_at = Instant::now();
        map(&mut inner).insert(key, Entry { read_at, value });
    }
}

impl Inner {
    fn hearing(&self) -> bool {
        self.heard_until.is_some_and(|until| Instant::now() < until)
    }

    fn forget(&mut self) {
        self.generation += 1;
        self.feeds.clear();
        self.keys.clear();
        self.groups.clear();
    }
}

impl Store {
    /// Keeps this process's cache in step with the database for as long as it
    /// runs (see the module's comment). Only a serving process runs it; the
    /// CLI's commands read the database every time.
    pub async fn watch_catalog(self) {
        loop {
            let lost = match self.db() {
                Db::Postgres(pool) => self.hear_postgres(pool).await,
                Db::Sqlite(pool, _) => self.hear_sqlite(pool).await,
            };
            self.cache.unheard();
            tracing::warn!(
                error = %describe(&lost),
                "not hearing changes to feeds and keys; reading them from the database until this recovers"
            );
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    /// Listens and sends heartbeats until something fails; returns why.
    async fn hear_postgres(&self, pool: &PgPool) -> Error {
        // A connection of its own, not one of the requests' pool.
        let own = super::single_connection(pool);
        let mut listener = match PgListener::connect_with(&own).await {
            Ok(listener) => listener,
            Err(error) => return error.into(),
        };
        // A lost connection is reported, not silently replaced.
        listener.eager_reconnect(false);
        let beat = format!("promoter_beat_{}", &random_hex()[..16]);
        if let Err(error) = listener.listen_all([CHANNEL, beat.as_str()]).await {
            return error.into();
        }
        let mut next_beat = Instant::now();
        let mut pending: Option<Instant> = None;
        loop {
            if pending.is_none() && Instant::now() >= next_beat {
                let sent = Instant::now();
                let notify = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(&beat)
                    .execute(&mut listener);
                match tokio::time::timeout(BOUND, notify).await {
                    Ok(Ok(_)) => pending = Some(sent),
                    Ok(Err(error)) => return error.into(),
                    Err(_) => return Error::Internal(anyhow::anyhow!("a heartbeat timed out")),
                }
                next_beat = sent + HEARTBEAT;
            }
            let wait_until = match pending {
                Some(sent) => sent + BOUND,
                None => next_beat,
            };
            let received = tokio::time::timeout_at(wait_until.into(), listener.try_recv()).await;
            match received {
                Ok(Ok(Some(notification))) if notification.channel() == beat => {
                    if let Some(sent) = pending.take() {
                        self.cache.heard(sent);
                    }
                }
                Ok(Ok(Some(_))) => self.cache.forget(),
                Ok(Ok(None)) => {
                    return Error::Internal(anyhow::anyhow!("the listening connection was lost"))
                }
                Ok(Err(error)) => return error.into(),
                // Time for the next heartbeat, unless one is overdue.
                Err(_) if pending.is_none() => {}
                Err(_) => {
                    return Error::Internal(anyhow::anyhow!(
                        "a heartbeat did not come back within {} ms",
                        BOUND.as_millis()
                    ))
                }
            }
        }
    }

    /// Reads the change counter until something fails; returns why.
    async fn hear_sqlite(&self, pool: &SqlitePool) -> Error {
        // A connection of its own: the requests' pool may be busy for longer
        // than the bound.
        let mut connection = match SqliteConnection::connect_with(&pool.connect_options()).await {
            Ok(connection) => connection,
            Err(error) => return error.into(),
        };
        let mut seen = None;
        loop {
            let read_at = Instant::now();
            let read = sqlx::query_scalar::<_, i64>("SELECT version FROM catalog_version")
                .fetch_one(&mut connection);
            let version = match tokio::time::timeout(BOUND, read).await {
                Ok(Ok(version)) => version,
                Ok(Err(error)) => return error.into(),
                Err(_) => {
                    return Error::Internal(anyhow::anyhow!("reading the change counter timed out"))
                }
            };
            if seen.is_some_and(|seen| seen != version) {
                self.cache.forget();
            }
            seen = Some(version);
            self.cache.heard(read_at);
            tokio::time::sleep(SQLITE_POLL).await;
        }
    }

    /// Drops what this process keeps of the feeds and keys: after its own
    /// changes, and when a promotion finds a feed other than it was told.
    pub fn forget_cached(&self) {
        self.cache.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64) -> StoredKey {
        StoredKey {
            id,
            name: format!("k{id}"),
            key_prefix: String::new(),
            kind: "system".into(),
            feed_id: None,
            feed_group_id: None,
            scope_name: None,
            permissions: "view".into(),
            expires_at: None,
            revoked_at: None,
            created_at: chrono::Utc::now(),
            description: None,
            logging: "None".into(),
        }
    }

    #[test]
    fn nothing_is_kept_until_changes_are_heard() {
        let cache = Cache::default();
        let ticket = cache.get(keys, &"h".to_owned()).unwrap_err();
        cache.keep(keys, ticket, "h".to_owned(), key(1));
        assert!(cache.get(keys, &"h".to_owned()).is_err());

        cache.heard(Instant::now());
        let ticket = cache.get(keys, &"h".to_owned()).unwrap_err();
        cache.keep(keys, ticket, "h".to_owned(), key(1));
        assert_eq!(cache.get(keys, &"h".to_owned()).unwrap().id, 1);

        cache.unheard();
        assert!(cache.get(keys, &"h".to_owned()).is_err());
    }

    #[test]
    fn what_is_kept_is_not_used_once_the_lease_lapses() {
        let cache = Cache::default();
        cache.heard(Instant::now());
        let ticket = cache.get(keys, &"h".to_owned()).unwrap_err();
        cache.keep(keys, ticket, "h".to_owned(), key(1));
        // No proof of hearing since: the watcher stalled or lost its connection.
        std::thread::sleep(BOUND);
        assert!(cache.get(keys, &"h".to_owned()).is_err());
        // A new proof makes it usable again: nothing went unheard meanwhile.
        cache.heard(Instant::now());
        assert_eq!(cache.get(keys, &"h".to_owned()).unwrap().id, 1);
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_kept() {
        let cache = Cache::default();
        cache.heard(Instant::now());
        let ticket = cache.get(groups, &7).unwrap_err();
        // The change is heard while the read is on its way.
        cache.forget();
        cache.keep(groups, ticket, 7, Arc::from(vec![1, 2]));
        assert!(cache.get(groups, &7).is_err());
    }
}
