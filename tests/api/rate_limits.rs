//! Rate limits (src/http/limits.rs): per client address, per key, and failed
//! authentications per address; over a limit, 429 with Retry-After and one
//! sentence, and nothing done.

use std::num::NonZeroU32;

use promoter::http::limits::RateLimits;
use promoter::startup::Application;

use crate::helpers::{babel_promotion, serve, Backend, Reply, TestApp};

/// A server on `app`'s database with these limits.
async fn limited(app: &TestApp, limits: RateLimits) -> String {
    let server = Application::build("127.0.0.1:0", &app.database.url)
        .await
        .unwrap()
        .rate_limits(limits);
    serve(server)
}

/// Ten GETs at once against a limit of two a second: the first two pass and
/// the rest are refused, with `what` and Retry-After 1 (a slow machine may let
/// one more through).
async fn ten_at_once(app: &TestApp, address: &str, path: &str, key: &str, what: &str) {
    let answers = futures::future::join_all((0..10).map(|_| get(app, address, path, key))).await;
    let passed = answers
        .iter()
        .filter(|(reply, _)| reply.status == 200)
        .count();
    assert!((2..=4).contains(&passed), "{passed} of 10 passed");
    let (refused, retry_after) = answers
        .iter()
        .find(|(reply, _)| reply.status != 200)
        .unwrap();
    assert_too_many(refused, what);
    assert_eq!(*retry_after, Some(1));
}

fn assert_too_many(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(
        reply
            .body
            .starts_with(&format!("Too many requests {what}; retry after ")),
        "{}",
        reply.body
    );
    assert_eq!(reply.content_type, "text/plain; charset=utf-8");
}

async fn get(app: &TestApp, address: &str, path: &str, key: &str) -> (Reply, Option<u64>) {
    let response = app.get_from(address, path, key).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    (Reply::read(response).await, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_block_the_address_for_a_while() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.npm_setup().await;
    let server = limited(
        &app,
        RateLimits {
            auth_failures_per_address: NonZeroU32::new(3),
            ..RateLimits::default()
        },
    )
    .await;
    for _ in 0..3 {
        let (reply, _) = get(&app, &server, "/api/packages/unapproved-npm", "guess").await;
        assert_eq!(reply.status, 403);
    }
    let (reply, retry_after) = get(&app, &server, "/api/packages/unapproved-npm", "guess").await;
    assert_too_many(&reply, "failed authentications from this address");
    assert!(
        retry_after.is_some_and(|secs| (1..=20).contains(&secs)),
        "{retry_after:?}"
    );
    // Blocked: further guesses are refused at once, and change nothing; but a
    // known key from the same address (a colleague behind the same proxy)
    // keeps working.
    let before = app.snapshot().await;
    let reply = app
        .json_post_to(
            &server,
            "/api/promotions/promote",
            "guess",
            &babel_promotion(),
        )
        .await;
    assert_too_many(&reply, "failed authentications from this address");
    assert_eq!(app.snapshot().await, before);
    let (reply, _) = get(&app, &server, "/api/packages/unapproved-npm", &key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = app
        .json_post_to(&server, "/api/promotions/promote", &key, &babel_promotion())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The server without the limit is unaffected.
    let (reply, _) = get(&app, &app.address, "/api/packages/unapproved-npm", &key).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_and_an_address_get_their_share_per_second() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.npm_setup().await;
    let per_key = limited(
        &app,
        RateLimits {
            per_key: NonZeroU32::new(2),
            ..RateLimits::default()
        },
    )
    .await;
    ten_at_once(
        &app,
        &per_key,
        "/api/packages/unapproved-npm",
        &key,
        "with this API key",
    )
    .await;
    // Another key has its own share.
    let other = app.system_key_expiring("other", None).await.0;
    assert_eq!(
        get(&app, &per_key, "/api/packages/unapproved-npm", &other)
            .await
            .0
            .status,
        200
    );

    let per_address = limited(
        &app,
        RateLimits {
            per_address: NonZeroU32::new(2),
            ..RateLimits::default()
        },
    )
    .await;
    ten_at_once(&app, &per_address, "/health", "", "from this address").await;
}
