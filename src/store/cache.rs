//! What every request reads and what rarely changes, kept in this process: the
//! feeds (one snapshot of all of them) and the API keys that were used (by hash),
//! with the feeds of their groups. With them in memory a promotion costs the
//! database one round trip.
//!
//! Nothing is kept unless this process hears of every change. The server runs
//! [`Store::watch_catalog`]: on PostgreSQL it listens on the channel that triggers
//! on the feed, group and key tables notify at each commit (so a change made by
//! any replica, the CLI or by hand is heard within milliseconds); on SQLite, which
//! cannot notify, it reads the change counter those tables' triggers count up,
//! every [`SQLITE_POLL`]. Until the watcher is in place, and from the moment it
//! loses its connection, nothing is kept and every read goes to the database.
//! This process's own changes are forgotten at once, and every entry is read
//! again after [`MAX_AGE`] whatever happens, as a safety net.
//!
//! A read that started before a change must not keep what it read after the
//! change was heard: each read takes a ticket (the generation it started under)
//! and keeps its result only if no change was heard since.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Db, Feed, Store, StoredKey};

/// Entries older than this are read again even if no change was heard.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// How often a serving process on SQLite reads the change counter: the bound on
/// how long a change made by another process goes unnoticed.
pub const SQLITE_POLL: Duration = Duration::from_millis(50);

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
    /// Whether every change is being heard; nothing is kept otherwise.
    watched: bool,
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

    /// Whether every change is being heard from now on; either way what was
    /// kept is dropped (changes may have gone unheard until now).
    pub fn set_watched(&self, watched: bool) {
        let mut inner = self.lock();
        inner.forget();
        inner.watched = watched;
    }

    /// The kept value, if fresh; otherwise the ticket to keep a new read with.
    pub fn get<K: Hash + Eq, V: Clone>(&self, map: Map<K, V>, key: &K) -> Result<V, Ticket> {
        let mut inner = self.lock();
        let ticket = Ticket(inner.watched.then_some(inner.generation));
        match map(&mut inner).get(key) {
            Some(entry) if entry.read_at.elapsed() < MAX_AGE => Ok(entry.value.clone()),
            _ => Err(ticket),
        }
    }

    /// Keeps what a read found, unless a change was heard since it started.
    pub fn keep<K: Hash + Eq, V>(&self, map: Map<K, V>, ticket: Ticket, key: K, value: V) {
        let mut inner = self.lock();
        if ticket.0 != Some(inner.generation) || !inner.watched {
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
        match self.db() {
            Db::Postgres(pool) => {
                let cache = self.cache.clone();
                super::listen(pool.clone(), "promoter_catalog", move |heard| {
                    cache.set_watched(heard != super::Heard::Lost);
                })
                .await
            }
            Db::Sqlite(pool, _) => {
                let mut seen = None;
                loop {
                    let version: Result<i64, _> =
                        sqlx::query_scalar("SELECT version FROM catalog_version")
                            .fetch_one(pool)
                            .await;
                    match version {
                        Ok(version) if seen == Some(version) => {}
                        Ok(version) => {
                            // The first reading starts the watch; later ones
                            // mean a change.
                            self.cache.set_watched(true);
                            seen = Some(version);
                        }
                        Err(_) => {
                            self.cache.set_watched(false);
                            seen = None;
                        }
                    }
                    tokio::time::sleep(SQLITE_POLL).await;
                }
            }
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

        cache.set_watched(true);
        let ticket = cache.get(keys, &"h".to_owned()).unwrap_err();
        cache.keep(keys, ticket, "h".to_owned(), key(1));
        assert_eq!(cache.get(keys, &"h".to_owned()).unwrap().id, 1);

        cache.set_watched(false);
        assert!(cache.get(keys, &"h".to_owned()).is_err());
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_kept() {
        let cache = Cache::default();
        cache.set_watched(true);
        let ticket = cache.get(groups, &7).unwrap_err();
        // The change is heard while the read is on its way.
        cache.forget();
        cache.keep(groups, ticket, 7, Arc::from(vec![1, 2]));
        assert!(cache.get(groups, &7).is_err());
    }
}
