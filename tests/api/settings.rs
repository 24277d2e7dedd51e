//! The server's timeouts and body limits are settings (`--request-timeout-seconds`,
//! `--statement-timeout-seconds`, `--body-limit-kib`, `--batch-body-limit-kib`),
//! and a bad setting stops start-up with one line before anything is opened.

use std::process::Command;
use std::time::{Duration, Instant};

use promoter::config::Limits;
use promoter::startup::Application;
use serde_json::json;

use crate::helpers::{babel_promotion, serve, Backend, TestApp};

each_backend!(body_limits_are_settings, timeouts_are_settings);

/// A server on `app`'s database with these limits.
async fn with_limits(app: &TestApp, limits: Limits) -> String {
    serve(
        Application::build_with("127.0.0.1:0", &app.database.url, 8, limits)
            .await
            .unwrap(),
    )
}

async fn body_limits_are_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.npm_setup().await;
    let server = with_limits(
        &app,
        Limits {
            body_limit: 1024,
            batch_body_limit: 4096,
            ..Limits::default()
        },
    )
    .await;
    let before = app.snapshot().await;
    let mut padded = babel_promotion();
    padded["pad"] = json!("x".repeat(2000));
    let reply = app
        .json_post_to(&server, "/api/promotions/promote", &key, &padded)
        .await;
    reply.assert_error(413, "The request body is larger than the limit of 1 KiB.");
    assert_eq!(app.snapshot().await, before);

    // A batch has a limit of its own: 2 KiB passes it, 5 KiB does not.
    let mut batch = json!({
        "fromFeed": "unapproved-npm",
        "toFeed": "approved-npm",
        "packages": [{"group": "@babel", "name": "runtime", "version": "7.21.0"}],
    });
    batch["pad"] = json!("x".repeat(2000));
    let reply = app
        .json_post_to(&server, "/api/promotions/batch", &key, &batch)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    batch["pad"] = json!("x".repeat(5000));
    let reply = app
        .json_post_to(&server, "/api/promotions/batch", &key, &batch)
        .await;
    reply.assert_error(413, "The request body is larger than the limit of 4 KiB.");
}

/// A statement timeout of 1 s answers a promotion stuck behind a lock with 503
/// long before the default 20 s; a request timeout of 12 s answers a body that
/// never ends with 408 long before the default 60 s.
async fn timeouts_are_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.npm_setup().await;
    let server = with_limits(
        &app,
        Limits {
            request_timeout: Duration::from_secs(12),
            statement_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
    )
    .await;
    let before = app.snapshot().await;
    let started = Instant::now();
    let reply = match app.store.db() {
        promoter::store::Db::Postgres(pool) => {
            let mut locker = pool.begin().await.unwrap();
            sqlx::query("SELECT id FROM package_versions FOR UPDATE")
                .fetch_all(&mut *locker)
                .await
                .unwrap();
            let reply = app.promote_via(&server, &key).await;
            locker.rollback().await.unwrap();
            reply
        }
        promoter::store::Db::Sqlite(pool, _) => {
            let locker = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let reply = app.promote_via(&server, &key).await;
            locker.rollback().await.unwrap();
            reply
        }
    };
    reply.assert_error(503, "try again in a few seconds.");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(app.snapshot().await, before);

    // A body that starts and never ends.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1);
    sender.send(Ok("{\"fromFeed\":".to_owned())).await.unwrap();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let started = Instant::now();
    let reply = app
        .client
        .post(format!("{server}/api/promotions/promote"))
        .header("X-ApiKey", &key)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 408);
    assert_eq!(
        reply.text().await.unwrap(),
        "The request took too long and was abandoned.\n"
    );
    assert!(started.elapsed() < Duration::from_secs(40));
    drop(sender);
    let count: i64 = on_store!(app, pool => sqlx::query_scalar("SELECT COUNT(*) FROM promotions").fetch_one(pool).await);
    assert_eq!(count, 0);
}

/// Settings that disagree, or are out of range, stop `serve` with one line,
/// before the database is opened.
#[test]
fn bad_settings_stop_start_up_with_one_line() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("promoter.db");
    let serve = |env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_promoter"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(
                "PROMOTER_DATABASE_URL",
                format!("sqlite://{}?mode=rwc", database.display()),
            )
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = serve(&[
        ("PROMOTER_REQUEST_TIMEOUT_SECONDS", "20"),
        ("PROMOTER_STATEMENT_TIMEOUT_SECONDS", "15"),
    ]);
    assert_eq!(
        stderr,
        "error: --request-timeout-seconds (20) must be at least twice --statement-timeout-seconds (15) plus 10, so that no request is answered 408 while its change goes on to commit\n"
    );
    for (name, value, flag) in [
        ("PROMOTER_BODY_LIMIT_KIB", "0", "--body-limit-kib"),
        (
            "PROMOTER_REQUEST_TIMEOUT_SECONDS",
            "soon",
            "--request-timeout-seconds",
        ),
        ("PROMOTER_DB_POOL_SIZE", "0", "--db-pool-size"),
        ("PROMOTER_LOG_FORMAT", "xml", "--log-format"),
        ("PROMOTER_LOG_LEVEL", "info,=[", "--log-level"),
    ] {
        let stderr = serve(&[(name, value)]);
        assert!(
            stderr.starts_with(&format!("error: invalid value '{value}' for '{flag}")),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert!(
        !database.exists(),
        "a refused start-up created the database"
    );
}
