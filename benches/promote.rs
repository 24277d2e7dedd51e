//! Benchmark: promotions per second, and their latency, over real HTTP against the
//! real application, on SQLite and on PostgreSQL. It reports numbers and asserts
//! nothing about them; CI does not run it.
//!
//!   cargo bench --bench promote            PROMOTIONS=20000 CONCURRENCY=32 cargo bench --bench promote
//!
//! Then it moves every version back through the batch endpoint, BATCH (1,000)
//! at a time, and reports each batch's time.
//!
//! PostgreSQL comes from BENCH_DATABASE_URL (a server on which it may create a
//! database) or from a durable throwaway cluster (scripts/throwaway-postgres.sh).

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use promoter::domain::{FeedName, FeedType, Identifier, PackageId, Permissions};
use promoter::startup::Application;
use promoter::store::{KeyScope, NewFile, NewKey, NewPackage, Store};
use sqlx::Connection;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn postgres_url() -> String {
    let server = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/throwaway-postgres.sh");
        let output = Command::new("bash")
            .arg(script)
            .arg(std::process::id().to_string())
            .env("PROMOTER_PG_DURABLE", "1")
            .output()
            .expect("could not run scripts/throwaway-postgres.sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    });
    let database = format!("promoter_bench_{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
    });
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&database);
    url.to_string()
}

async fn run(backend: &str, database_url: &str, promotions: usize, concurrency: usize) {
    let store = Store::open(database_url).await.unwrap();
    let from = FeedName::parse("bench-unapproved").unwrap();
    let to = FeedName::parse("bench-approved").unwrap();
    let source = store
        .create_feed(&from, FeedType::Nuget, Default::default())
        .await
        .unwrap();
    store
        .create_feed(&to, FeedType::Nuget, Default::default())
        .await
        .unwrap();
    let packages: Vec<NewPackage> = (0..promotions)
        .map(|i| NewPackage {
            id: PackageId::new(
                FeedType::Nuget,
                None,
                &Identifier::parse(&format!("Bench.Package{}", i / 10)).unwrap(),
                &Identifier::parse(&format!("1.0.{}", i % 10)).unwrap(),
            )
            .unwrap(),
            file: NewFile::default(),
        })
        .collect();
    store.import_packages(&source, &packages).await.unwrap();
    let new_key = NewKey {
        name: Some(promoter::domain::KeyName::parse("bench").unwrap()),
        scope: KeyScope::System,
        permissions: Permissions::ALL,
        expires_at: None,
        description: None,
        logging: "None".into(),
    };
    let (key, _) = promoter::auth::create_key(&store, &new_key, None)
        .await
        .unwrap();

    let app = Application::build("127.0.0.1:0", database_url)
        .await
        .unwrap();
    let url = format!("http://{}/api/promotions/promote", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    let client = reqwest::Client::new();

    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(packages.iter())
        .map(|package| {
            let request = client
                .post(&url)
                .header("X-ApiKey", key.expose())
                .header("Content-Type", "application/json")
                .body(
                    serde_json::json!({
                        "fromFeed": "bench-unapproved", "toFeed": "bench-approved",
                        "name": package.id.name(), "version": package.id.version()
                    })
                    .to_string(),
                );
            async move {
                let sent = Instant::now();
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                sent.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let base = url.trim_end_matches("/api/promotions/promote").to_owned();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{backend}: {promotions} promotions, {concurrency} at a time, in {:.2} s: {:.0} promotions/s; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        promotions as f64 / elapsed.as_secs_f64(),
        percentile(0.5).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );
    run_batches(
        backend,
        &base,
        key.expose(),
        promotions,
        setting("BATCH", 1000),
    )
    .await;
}

/// Moves every version back, `BATCH` at a time through the batch endpoint, one
/// batch after another, and reports each batch's time.
async fn run_batches(backend: &str, base: &str, key: &str, promotions: usize, batch: usize) {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    let names: Vec<(String, String)> = (0..promotions)
        .map(|i| {
            (
                format!("Bench.Package{}", i / 10),
                format!("1.0.{}", i % 10),
            )
        })
        .collect();
    for chunk in names.chunks(batch) {
        let packages: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(name, version)| serde_json::json!({"name": name, "version": version}))
            .collect();
        let body = serde_json::json!({
            "fromFeed": "bench-approved", "toFeed": "bench-unapproved", "packages": packages
        });
        let sent = Instant::now();
        let response = client
            .post(format!("{base}/api/promotions/batch"))
            .header("X-ApiKey", key)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        times.push(sent.elapsed());
    }
    times.sort();
    println!(
        "{backend}: {} batches of {batch} versions, one after another: median {:.0} ms, max {:.0} ms per batch",
        times.len(),
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times.last().unwrap().as_secs_f64() * 1000.0,
    );
}

fn main() {
    let promotions = setting("PROMOTIONS", 5000);
    let concurrency = setting("CONCURRENCY", 16);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let postgres = postgres_url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (backend, url) in [("sqlite", sqlite.as_str()), ("postgres", postgres.as_str())] {
        runtime.block_on(run(backend, url, promotions, concurrency));
    }
}
