//! The guarantees under failure: a server killed with SIGKILL mid-load, two
//! server processes racing on one database, PostgreSQL stopped and started
//! under load, and SIGTERM draining what is in flight. After each, the
//! invariants in `invariants.rs` must hold. `PROMOTER_CHAOS_SECONDS` lengthens
//! every load phase for a soak run.

use std::process::Command;
use std::time::Duration;

use sqlx::Connection;

use crate::helpers::{Reply, ServerProcess, TestApp};
use crate::invariants::{load_phase, run_load, Outcomes};

both_backends!(
    a_server_killed_mid_load_loses_and_duplicates_nothing,
    two_server_processes_racing_on_one_database_keep_every_promise,
    sigterm_finishes_requests_in_flight_and_exits_0,
);

const VERSIONS: usize = 24;
const WORKERS: usize = 8;

async fn a_server_killed_mid_load_loses_and_duplicates_nothing(app: TestApp) {
    let (key, initial) = app.chaos_setup(VERSIONS).await;
    let mut server = ServerProcess::start(&app.database.url).await;
    let servers = [server.address.clone()];
    let phase = load_phase();
    let load = {
        let (servers, key) = (servers.clone(), key.clone());
        tokio::spawn(async move { run_load(&servers, &key, VERSIONS, WORKERS, phase * 3).await })
    };
    // Two SIGKILLs in the middle of the load, each followed by a restart.
    for _ in 0..2 {
        tokio::time::sleep(phase).await;
        server.kill_9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.restart().await;
    }
    let seen = load.await.unwrap();
    assert!(
        seen.unknown > 0,
        "no request was cut off: the kill proved nothing"
    );
    // The restarted server still promotes.
    let after = run_load(&servers, &key, VERSIONS, 2, Duration::from_millis(500)).await;
    assert!(
        !after.ok.is_empty(),
        "no promotion after the restart: {after:?}"
    );
    let mut all = seen;
    all.merge(after);
    app.check_invariants(&initial, &all).await;
}

async fn two_server_processes_racing_on_one_database_keep_every_promise(app: TestApp) {
    let (key, initial) = app.chaos_setup(VERSIONS).await;
    let first = ServerProcess::start(&app.database.url).await;
    let second = ServerProcess::start(&app.database.url).await;
    let servers = [first.address.clone(), second.address.clone()];
    let seen = run_load(&servers, &key, VERSIONS, WORKERS, load_phase() * 2).await;
    assert!(!seen.ok.is_empty() && seen.refused > 0, "{seen:?}");
    assert_eq!(
        seen.unknown + seen.unavailable + seen.not_sent,
        0,
        "{seen:?}"
    );
    app.check_invariants(&initial, &seen).await;
}

async fn sigterm_finishes_requests_in_flight_and_exits_0(app: TestApp) {
    let key = app.npm_setup().await;
    let mut server = ServerProcess::start(&app.database.url).await;
    let address = server.address.clone();

    // Hold the promotion up: a row lock on PostgreSQL, the write lock on SQLite.
    let blocker = match app.store.db() {
        promoter::store::Db::Postgres(pool) => {
            let mut conn = pool.acquire().await.unwrap().detach();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT id FROM package_versions FOR UPDATE")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            Blocker::Postgres(conn)
        }
        promoter::store::Db::Sqlite(pool, _) => {
            let mut conn = pool.acquire().await.unwrap().detach();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            Blocker::Sqlite(conn)
        }
    };
    let promotion = {
        let request = app
            .client
            .post(format!("{address}/api/promotions/promote"))
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/json")
            .body(crate::helpers::babel_promotion().to_string());
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    };
    // The promotion must be in flight before the signal: on PostgreSQL, wait
    // until it waits for the lock; SQLite shows no such thing, so allow time.
    match blocker {
        Blocker::Postgres(_) => app.until_waiting_for_locks(1).await,
        Blocker::Sqlite(_) => tokio::time::sleep(Duration::from_millis(1500)).await,
    }
    server.terminate();
    // It stops taking new connections while it drains.
    let port = address.rsplit(':').next().unwrap().to_owned();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the server still accepts connections after SIGTERM"
    );
    assert!(
        server.exited().is_none(),
        "the server exited with a request in flight"
    );
    blocker.release().await;
    let reply = promotion.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let status = server.wait_for_exit().await;
    assert!(status.success(), "exited with {status:?}");
    assert_eq!(app.history().await.len(), 1);
}

enum Blocker {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Blocker {
    async fn release(self) {
        match self {
            Blocker::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Blocker::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// A PostgreSQL cluster of this test's own, which it may stop and start.
struct OwnCluster {
    url: String,
    data: String,
    bindir: String,
}

impl OwnCluster {
    async fn start() -> OwnCluster {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/throwaway-postgres.sh");
        let output = Command::new("bash")
            .arg(script)
            .arg(std::process::id().to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let data: String = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        // postmaster.opts starts with the server binary's path; pg_ctl is beside it.
        let opts = std::fs::read_to_string(format!("{data}/postmaster.opts")).unwrap();
        let binary = opts.split_whitespace().next().unwrap().trim_matches('"');
        let bindir = std::path::Path::new(binary)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        OwnCluster { url, data, bindir }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.arg(format!("{}/pg_ctl", self.bindir));
            c
        } else {
            Command::new(format!("{}/pg_ctl", self.bindir))
        };
        let status = command
            .args(["-D", &self.data, "-w", "-t", "60"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?} failed");
    }

    /// Stops the server at once (in-flight transactions are rolled back).
    fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Starts it again with the options it had (postmaster.opts keeps them).
    fn start_again(&self, options: &str) {
        let log = format!("{}/../restart.log", self.data);
        self.pg_ctl(&["-l", &log, "-o", options, "start"]);
    }

    /// The server's command-line options, less the binary and its data directory.
    fn options(&self) -> String {
        let opts = std::fs::read_to_string(format!("{}/postmaster.opts", self.data)).unwrap();
        let data_arg = format!("\"-D\" \"{}\"", self.data);
        opts.split_once(char::is_whitespace)
            .map(|(_, rest)| rest.replace(&data_arg, ""))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL stopped under load: requests get 503 with Retry-After (never a 500
/// or a hang), and once it is back the same server process promotes again
/// without a restart; the invariants hold across the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_load_gives_503_then_recovers() {
    let cluster = OwnCluster::start().await;
    let options = cluster.options();
    let database = format!("promoter_outage_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&cluster.url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let mut url = url::Url::parse(&cluster.url).unwrap();
    url.set_path(&database);
    let app = TestApp::on_database(url.as_str()).await;
    let (key, initial) = app.chaos_setup(VERSIONS).await;
    let server = ServerProcess::start(url.as_str()).await;
    let servers = [server.address.clone()];
    let phase = load_phase();

    let mut seen = run_load(&servers, &key, VERSIONS, WORKERS, phase).await;
    let outage = {
        let (servers, key) = (servers.clone(), key.clone());
        tokio::spawn(async move { run_load(&servers, &key, VERSIONS, WORKERS, phase * 2).await })
    };
    tokio::time::sleep(phase / 4).await;
    cluster.stop();
    let during = outage.await.unwrap();
    assert!(
        during.unavailable > 0,
        "no 503 while the database was down: {during:?}"
    );
    let health = Reply::read(
        app.client
            .get(format!("{}/health", server.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(health.status, 503, "{}", health.body);
    seen.merge(during);

    cluster.start_again(&options);
    // The pool reconnects by itself: within a few seconds promotions succeed.
    let mut recovered = Outcomes::default();
    for _ in 0..20 {
        let after = run_load(&servers, &key, VERSIONS, 2, Duration::from_millis(500)).await;
        let ok = !after.ok.is_empty();
        recovered.merge(after);
        if ok {
            break;
        }
    }
    assert!(
        !recovered.ok.is_empty(),
        "no promotion after PostgreSQL came back: {recovered:?}"
    );
    seen.merge(recovered);
    seen.merge(run_load(&servers, &key, VERSIONS, WORKERS, phase).await);
    // Checked through connections opened now: the server's pool keeps the
    // connections the outage broke until each is used once (and answered 503).
    let checker = TestApp::without_server(url.as_str()).await;
    checker.check_invariants(&initial, &seen).await;
}
