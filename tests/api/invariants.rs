//! The promises a promotion keeps, checked against the database after any load,
//! crash or outage, and the load that puts them to the test.
//!
//! - Every package version is in exactly one feed, with all of its files: none
//!   lost, none duplicated.
//! - Its feed is the target of its newest promotion, or its first feed when it was
//!   never promoted.
//! - One history row per 200 seen (plus at most one per request whose answer
//!   never arrived), and no history row without its move: each version's history
//!   is an unbroken chain from its first feed to where it is now.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promoter::domain::FeedType;
use rand::Rng;
use serde_json::json;

use crate::helpers::{Reply, TestApp};

/// The feeds the load moves versions between.
pub const FEEDS: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];

/// How long each phase of a load runs: a short default that still exercises the
/// paths, or `PROMOTER_CHAOS_SECONDS` for a longer soak.
pub fn load_phase() -> Duration {
    let seconds = std::env::var("PROMOTER_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.5);
    Duration::from_secs_f64(seconds)
}

/// Where each version (`type|group|name|version`) started, with its file count.
pub struct Initial(BTreeMap<String, (String, i64)>);

/// What the load saw.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    /// Ids of the promotions answered 200.
    pub ok: Vec<i64>,
    /// 400s: the version had already moved on, as racing workers expect.
    pub refused: usize,
    /// 503s with Retry-After: the database was away.
    pub unavailable: usize,
    /// Requests sent whose answer never came (the server died mid-request).
    pub unknown: usize,
    /// Requests that found no server to connect to: they changed nothing.
    pub not_sent: usize,
    /// Anything else, such as a 500: each one breaks a promise.
    pub unexpected: Vec<String>,
}

impl Outcomes {
    pub fn merge(&mut self, other: Outcomes) {
        self.ok.extend(other.ok);
        self.refused += other.refused;
        self.unavailable += other.unavailable;
        self.unknown += other.unknown;
        self.not_sent += other.not_sent;
        self.unexpected.extend(other.unexpected);
    }
}

const IDENTITY: &str =
    "f.feed_type || '|' || v.group_key || '|' || v.name_key || '|' || v.version_key";

impl TestApp {
    /// Three NuGet feeds, `versions` package versions of two files each in the
    /// first, and a system key.
    pub async fn chaos_setup(&self, versions: usize) -> (String, Initial) {
        let first = self.feed(FEEDS[0], FeedType::Nuget).await;
        for feed in &FEEDS[1..] {
            self.feed(feed, FeedType::Nuget).await;
        }
        for i in 0..versions {
            for file in ["lib.nupkg", "lib.snupkg"] {
                self.package(&first, None, &format!("Chaos.Pkg{i}"), "1.0.0", file)
                    .await;
            }
        }
        let key = self.system_key().await;
        (key, Initial(self.locations().await))
    }

    /// Every version's feed and file count, by identity. A version in two feeds
    /// appears as a key with a suffix, so that it cannot hide.
    async fn locations(&self) -> BTreeMap<String, (String, i64)> {
        let sql = format!(
            "SELECT {IDENTITY}, f.name, (SELECT COUNT(*) FROM package_files pf WHERE pf.version_id = v.id) \
             FROM package_versions v JOIN feeds f ON f.id = v.feed_id"
        );
        let rows: Vec<(String, String, i64)> = crate::helpers::on_store!(self, pool =>
            sqlx::query_as(&sql).fetch_all(pool).await);
        let mut out = BTreeMap::new();
        for (identity, feed, files) in rows {
            let mut key = identity.clone();
            let mut copy = 1;
            while out.contains_key(&key) {
                copy += 1;
                key = format!("{identity} (copy {copy})");
            }
            out.insert(key, (feed, files));
        }
        out
    }

    /// Checks every promise against the database, given what the load saw.
    pub async fn check_invariants(&self, initial: &Initial, seen: &Outcomes) {
        assert!(
            seen.unexpected.is_empty(),
            "answers that break a promise: {:?}",
            seen.unexpected
        );
        let now = self.locations().await;
        // Exactly one feed each, every file kept: the same versions with the same
        // file counts as at the start, and no copies.
        let keys = |m: &BTreeMap<String, (String, i64)>| {
            m.iter()
                .map(|(k, (_, files))| (k.clone(), *files))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&now),
            keys(&initial.0),
            "a version was lost or duplicated"
        );

        let history: Vec<(i64, String, String, String)> = crate::helpers::on_store!(self, pool =>
            sqlx::query_as(
                "SELECT id, package_type || '|' || group_key || '|' || name_key || '|' || version_key, \
                 from_feed, to_feed FROM promotions ORDER BY id",
            )
            .fetch_all(pool)
            .await);
        let mut chains: HashMap<&str, Vec<(i64, &str, &str)>> = HashMap::new();
        for (id, identity, from, to) in &history {
            chains
                .entry(identity.as_str())
                .or_default()
                .push((*id, from.as_str(), to.as_str()));
        }
        for (identity, (first_feed, _)) in &initial.0 {
            let mut at = first_feed.as_str();
            for (id, from, to) in chains.remove(identity.as_str()).unwrap_or_default() {
                assert_eq!(
                    from, at,
                    "promotion {id} of {identity} left {from}, but the version was in {at}"
                );
                at = to;
            }
            assert_eq!(
                now[identity].0, at,
                "{identity} is not where its newest promotion put it"
            );
        }
        assert!(
            chains.is_empty(),
            "history rows for unknown versions: {chains:?}"
        );

        let ids: std::collections::HashSet<i64> = history.iter().map(|h| h.0).collect();
        for id in &seen.ok {
            assert!(
                ids.contains(id),
                "promotion {id} was answered 200 but is not in the history"
            );
        }
        let mut distinct = seen.ok.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            seen.ok.len(),
            "one promotion id answered twice"
        );
        let at_most = seen.ok.len() + seen.unknown + seen.unavailable;
        assert!(
            (seen.ok.len()..=at_most).contains(&history.len()),
            "{} history rows for {} answers of 200 and {} without an answer",
            history.len(),
            seen.ok.len(),
            seen.unknown + seen.unavailable
        );
    }
}

/// Promotes random versions between the chaos feeds from `workers` tasks for
/// `duration`, spreading requests over `servers`. Workers guess where each
/// version is; racing each other, many guesses are stale and get a 400.
pub async fn run_load(
    servers: &[String],
    key: &str,
    versions: usize,
    workers: usize,
    duration: Duration,
) -> Outcomes {
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let belief = Arc::new(Mutex::new(vec![0usize; versions]));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, outcomes, belief) = (client.clone(), outcomes.clone(), belief.clone());
        let server = servers[worker % servers.len()].clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (i, from, to) = {
                    let mut rng = rand::thread_rng();
                    let i = rng.gen_range(0..versions);
                    let from = belief.lock().unwrap()[i];
                    let to = (from + rng.gen_range(1..FEEDS.len())) % FEEDS.len();
                    (i, from, to)
                };
                let body = json!({
                    "fromFeed": FEEDS[from], "toFeed": FEEDS[to],
                    "name": format!("Chaos.Pkg{i}"), "version": "1.0.0",
                });
                let sent = client
                    .post(format!("{server}/api/promotions/promote"))
                    .header("X-ApiKey", &key)
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                let reply = match sent {
                    // A body cut off mid-way is as unknown as no answer at all.
                    Ok(response) => Reply::read_checked(response).await,
                    // Not even connected: the request never reached a server.
                    Err(error) if error.is_connect() => {
                        outcomes.lock().unwrap().not_sent += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(_) => None,
                };
                let answered = reply.is_some();
                {
                    let mut seen = outcomes.lock().unwrap();
                    match reply {
                        Some(reply) if reply.status == 200 => {
                            seen.ok.push(reply.json()["id"].as_i64().unwrap());
                            belief.lock().unwrap()[i] = to;
                        }
                        Some(reply) if reply.status == 400 => {
                            seen.refused += 1;
                            belief.lock().unwrap()[i] =
                                rand::thread_rng().gen_range(0..FEEDS.len());
                        }
                        Some(reply)
                            if reply.status == 503 && reply.headers.contains_key("retry-after") =>
                        {
                            seen.unavailable += 1;
                        }
                        Some(reply) => seen
                            .unexpected
                            .push(format!("{}: {}", reply.status, reply.body)),
                        None => seen.unknown += 1,
                    }
                }
                if !answered {
                    // The server is down: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    outcomes
}

both_backends!(the_invariant_checker_catches_each_broken_promise);

/// The checker is only worth its passes if it fails on a broken database: each
/// corruption below must make it panic.
async fn the_invariant_checker_catches_each_broken_promise(app: TestApp) {
    let (key, initial) = app.chaos_setup(4).await;
    let reply = app
        .promote(
            &key,
            &json!({"fromFeed": FEEDS[0], "toFeed": FEEDS[1], "name": "Chaos.Pkg0", "version": "1.0.0"}),
        )
        .await;
    let id = reply.json()["id"].as_i64().unwrap();
    let seen = Outcomes {
        ok: vec![id],
        ..Outcomes::default()
    };
    let app = Arc::new(app);
    let initial = Arc::new(initial);
    let fails = |seen: Outcomes| {
        let (app, initial) = (app.clone(), initial.clone());
        async move {
            tokio::spawn(async move { app.check_invariants(&initial, &seen).await })
                .await
                .is_err()
        }
    };
    assert!(
        !fails(seen.clone()).await,
        "a sound database failed the check"
    );

    // A 200 whose history row is missing, and a 200 answered twice.
    let mut phantom = seen.clone();
    phantom.ok.push(id + 1000);
    assert!(fails(phantom).await);
    let mut twice = seen.clone();
    twice.ok.push(id);
    assert!(fails(twice).await);
    // A 500 seen by the load.
    let mut broken = seen.clone();
    broken.unexpected.push("500".into());
    assert!(fails(broken).await);

    let corruptions = [
        // A history row without its move.
        (
            "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
             to_feed_key, package_type, group_name, name, version, group_key, name_key, version_key, \
             user_name, promoted_at) SELECT from_feed_id, to_feed_id, to_feed, from_feed, to_feed_key, \
             from_feed_key, package_type, group_name, name, version, group_key, name_key, version_key, \
             user_name, promoted_at FROM promotions",
            "DELETE FROM promotions WHERE id <> (SELECT MIN(id) FROM promotions)",
        ),
        // A move without its history row.
        (
            "UPDATE package_versions SET feed_id = (SELECT id FROM feeds WHERE name = 'chaos-c') \
             WHERE name_key = 'chaos.pkg1'",
            "UPDATE package_versions SET feed_id = (SELECT id FROM feeds WHERE name = 'chaos-a') \
             WHERE name_key = 'chaos.pkg1'",
        ),
        // A file that left its version for another.
        (
            "UPDATE package_files SET qualifier = 'strayed', \
             version_id = (SELECT id FROM package_versions WHERE name_key = 'chaos.pkg3') \
             WHERE qualifier = 'lib.snupkg' \
             AND version_id = (SELECT id FROM package_versions WHERE name_key = 'chaos.pkg2')",
            "UPDATE package_files SET qualifier = 'lib.snupkg', \
             version_id = (SELECT id FROM package_versions WHERE name_key = 'chaos.pkg2') \
             WHERE qualifier = 'strayed'",
        ),
        // A duplicated version.
        (
            "INSERT INTO package_versions (feed_id, group_name, name, version, group_key, name_key, version_key, created_at) \
             SELECT (SELECT id FROM feeds WHERE name = 'chaos-c'), group_name, name, version, group_key, name_key, \
             version_key, created_at FROM package_versions WHERE name_key = 'chaos.pkg3'",
            "DELETE FROM package_versions WHERE feed_id = (SELECT id FROM feeds WHERE name = 'chaos-c')",
        ),
    ];
    for (corrupt, repair) in corruptions {
        app.execute(corrupt).await;
        assert!(fails(seen.clone()).await, "not caught: {corrupt}");
        app.execute(repair).await;
        assert!(!fails(seen.clone()).await, "repair failed: {repair}");
    }
}
