//! Webhooks (contract section 8): management, signed deliveries through a real
//! receiver on loopback, retries, outages, kill -9, several processes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    babel_promotion, start_instance_allowing_private, with, Backend, Reply, ServerProcess, TestApp,
    TestDatabase, FORBIDDEN,
};
use crate::receiver::{Answer, Receiver};
use promoter::domain::{FeedName, FeedType, WebhookSecret, WebhookUrl};
use promoter::store::KeyScope;

const SECRET: &str = "a shared secret of some length";

both_backends!(
    a_promotion_is_delivered_signed_with_the_history_row,
    the_feed_filter_matches_the_target_feed,
    dry_runs_and_refusals_queue_nothing,
    batches_and_reverts_announce_each_promotion,
    retries_after_500s_keep_the_delivery_id,
    a_receiver_that_was_down_gets_the_event_when_it_is_back,
    a_slow_receiver_holds_up_neither_promotions_nor_other_receivers,
    redirects_are_not_followed,
    management_needs_a_manage_key_and_never_shows_the_secret_again,
    bad_webhooks_are_refused_and_change_nothing,
    deleting_a_webhook_drops_its_pending_events,
    a_webhook_with_a_long_history_is_deleted_and_no_other_touched,
    a_paused_webhook_queues_its_events_until_resumed,
);

async fn register(app: &TestApp, key: &str, body: Value) -> Value {
    let reply = app.json_post("/api/webhooks/create", key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn delete(app: &TestApp, key: &str, id: i64) -> Reply {
    Reply::read(
        app.client
            .post(app.url(&format!("/api/webhooks/delete?id={id}")))
            .header("X-ApiKey", key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A webhook for `receiver` signed with SECRET, made through the store (for
/// tests whose servers are processes of their own).
async fn register_directly(app: &TestApp, receiver: &Receiver) {
    let url = WebhookUrl::parse(&receiver.url()).unwrap();
    let secret = WebhookSecret::chosen(SECRET).unwrap();
    app.store.create_webhook(&url, &[], &secret).await.unwrap();
}

/// Outbox rows per state, for checks that need no waiting.
async fn outbox(app: &TestApp) -> Vec<String> {
    app.texts(
        "SELECT webhook_id || ' ' || promotion_id || ' ' || state FROM webhook_events ORDER BY id",
    )
    .await
}

/// Waits until the webhook's newest attempt reaches `state` (at most 60 s).
async fn attempts_until(
    app: &TestApp,
    key: &str,
    id: i64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..600 {
        let reply = app
            .get(&format!("/api/webhooks/deliveries?id={id}"), key)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let attempts = reply.json().as_array().unwrap().clone();
        if done(&attempts) {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the attempts of webhook {id} never got there");
}

async fn a_promotion_is_delivered_signed_with_the_history_row(app: TestApp) {
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    let webhook = register(&app, &key, json!({"url": receiver.url(), "secret": SECRET})).await;
    assert_eq!(webhook["feeds"], json!([]));
    assert_eq!(webhook["secret"], SECRET);

    let promoted = app.promote(&key, &babel_promotion()).await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let promotion = promoted.json();

    let received = receiver.wait_for(1).await;
    let delivery = &received[0];
    assert_eq!(delivery.path, "/hook");
    assert!(delivery.signed_with(SECRET), "bad signature");
    assert!(!delivery.signed_with("another secret entirely"));
    assert_eq!(delivery.header("content-type"), "application/json");
    assert_eq!(delivery.header("x-promoter-event"), "Promoted");
    let body = delivery.json();
    assert_eq!(body["delivery"], delivery.header("x-promoter-delivery"));
    assert!(uuid::Uuid::parse_str(delivery.header("x-promoter-delivery")).is_ok());
    assert_eq!(body["event"], "Promoted");
    assert_eq!(body["package"], "@babel/runtime");
    assert_eq!(body["version"], "7.21.0");
    assert_eq!(body["feed"], "approved-npm");
    assert_eq!(body["user"], "ci-key");
    // The promotion as the promote endpoint answered it.
    for field in [
        "id",
        "fromFeed",
        "toFeed",
        "group",
        "name",
        "version",
        "packageType",
        "date",
        "user",
        "comments",
        "outcome",
    ] {
        assert_eq!(body["promotion"][field], promotion[field], "{field}");
    }

    let attempts = attempts_until(&app, &key, webhook["id"].as_i64().unwrap(), |a| {
        a.first().is_some_and(|a| a["state"] == "delivered")
    })
    .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["statusCode"], 200);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["promotion"], promotion["id"]);
    assert_eq!(attempts[0]["delivery"], body["delivery"]);
}

/// With polling slowed to once an hour, a delivery can only come from the wake-up
/// a commit gives (PostgreSQL: NOTIFY from the trigger, heard through LISTEN;
/// SQLite: the committing process rings its own dispatcher).
async fn a_commit_wakes_the_dispatcher_without_polling(backend: Backend) {
    let settings = promoter::webhooks::Settings {
        allow_private: true,
        poll: Duration::from_secs(3600),
    };
    let app = TestApp::spawn_with(backend, settings).await;
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    register(&app, &key, json!({"url": receiver.url(), "secret": SECRET})).await;
    // Let the dispatcher finish its first look and settle into its hour-long wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    assert!(receiver.wait_for(1).await[0].signed_with(SECRET));
}

async fn the_feed_filter_matches_the_target_feed(app: TestApp) {
    let key = app.npm_setup().await;
    app.feed("elsewhere-npm", FeedType::Npm).await;
    let receiver = Receiver::start().await;
    // Feed names match case-insensitively, as everywhere.
    let wanted = register(
        &app,
        &key,
        json!({"url": receiver.url(), "feeds": ["Approved-NPM"], "secret": SECRET}),
    )
    .await;
    assert_eq!(wanted["feeds"], json!(["approved-npm"]));
    let other = register(
        &app,
        &key,
        json!({"url": receiver.url(), "feeds": "elsewhere-npm,unapproved-npm"}),
    )
    .await;
    assert_eq!(other["feeds"], json!(["elsewhere-npm", "unapproved-npm"]));

    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    // The outbox is written with the promotion: only the matching webhook has an event.
    let events = outbox(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].starts_with(&format!("{} ", wanted["id"])),
        "{events:?}"
    );
    let received = receiver.wait_for(1).await;
    assert!(received[0].signed_with(SECRET));
    assert_eq!(received[0].json()["feed"], "approved-npm");
}

async fn dry_runs_and_refusals_queue_nothing(app: TestApp) {
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    register(&app, &key, json!({"url": receiver.url()})).await;

    let dry = app
        .json_post(
            "/api/promotions/promote?dryRun=true",
            &key,
            &babel_promotion(),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let refused = app
        .promote(&key, &with(&babel_promotion(), "version", json!("9.9.9")))
        .await;
    assert_eq!(refused.status, 400);
    let batch = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "packages": [
        {"group": "@babel", "name": "runtime", "version": "7.21.0"},
        {"name": "missing", "version": "1.0.0"}]});
    assert_eq!(
        app.json_post("/api/promotions/batch", &key, &batch)
            .await
            .status,
        400
    );
    assert_eq!(outbox(&app).await, Vec::<String>::new());

    // The control: a real promotion is announced, and it is the only request.
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
}

async fn batches_and_reverts_announce_each_promotion(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.npm_source().await;
    app.package(&source, None, "left-pad", "1.3.0", "").await;
    let receiver = Receiver::start().await;
    register(&app, &key, json!({"url": receiver.url(), "secret": SECRET})).await;

    let batch = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "packages": [
        {"group": "@babel", "name": "runtime", "version": "7.21.0"},
        {"name": "left-pad", "version": "1.3.0"}]});
    let reply = app.json_post("/api/promotions/batch", &key, &batch).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let batch_id = reply.json()["batch"].as_str().unwrap().to_owned();
    let received = receiver.wait_for(2).await;
    let mut packages: Vec<String> = received
        .iter()
        .map(|r| r.json()["package"].as_str().unwrap().to_owned())
        .collect();
    packages.sort();
    assert_eq!(packages, ["@babel/runtime", "left-pad"]);
    for delivery in &received {
        assert!(delivery.signed_with(SECRET));
        assert_eq!(delivery.json()["promotion"]["batch"], batch_id);
    }

    let revert = app
        .json_post("/api/promotions/revert", &key, &json!({"batch": batch_id}))
        .await;
    assert_eq!(revert.status, 200, "{}", revert.body);
    let received = receiver.wait_for(4).await;
    let reverts: Vec<Value> = received[2..].iter().map(|r| r.json()).collect();
    for event in &reverts {
        assert_eq!(event["feed"], "unapproved-npm");
        assert!(event["promotion"]["revertOf"].is_i64(), "{event}");
    }
    let ids: std::collections::HashSet<String> = received
        .iter()
        .map(|r| r.header("x-promoter-delivery").to_owned())
        .collect();
    assert_eq!(ids.len(), 4, "each promotion has its own delivery id");
}

async fn retries_after_500s_keep_the_delivery_id(app: TestApp) {
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[Answer::Status(500), Answer::Status(503)]);
    let webhook = register(&app, &key, json!({"url": receiver.url(), "secret": SECRET})).await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);

    let received = receiver.wait_for(3).await;
    assert_eq!(received.len(), 3);
    let first = received[0].header("x-promoter-delivery");
    for attempt in &received {
        assert_eq!(attempt.header("x-promoter-delivery"), first);
        assert_eq!(
            attempt.body, received[0].body,
            "every attempt sends the same bytes"
        );
        assert!(attempt.signed_with(SECRET));
    }
    let attempts = attempts_until(&app, &key, webhook["id"].as_i64().unwrap(), |a| {
        a.len() == 3 && a[0]["state"] == "delivered"
    })
    .await;
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["statusCode"]).collect();
    assert_eq!(codes, [&json!(200), &json!(503), &json!(500)]);
    let numbers: Vec<&Value> = attempts.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [&json!(3), &json!(2), &json!(1)]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "a delivered event is not sent again"
    );
}

async fn a_receiver_that_was_down_gets_the_event_when_it_is_back(app: TestApp) {
    let key = app.npm_setup().await;
    let mut receiver = Receiver::start().await;
    let webhook = register(&app, &key, json!({"url": receiver.url(), "secret": SECRET})).await;
    receiver.stop();
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);

    let attempts = attempts_until(&app, &key, webhook["id"].as_i64().unwrap(), |a| {
        a.len() >= 2
    })
    .await;
    let error = attempts[0]["error"].as_str().unwrap();
    // The cause, said once.
    assert!(
        error.starts_with("could not connect: Connection refused"),
        "{error}"
    );
    assert!(
        !error.contains("/hook"),
        "the URL's path stays out of errors: {error}"
    );
    assert_eq!(attempts[0]["state"], "pending");

    receiver.restart().await;
    let received = receiver.wait_for(1).await;
    assert!(received[0].signed_with(SECRET));
    attempts_until(&app, &key, webhook["id"].as_i64().unwrap(), |a| {
        a[0]["state"] == "delivered"
    })
    .await;
}

async fn a_slow_receiver_holds_up_neither_promotions_nor_other_receivers(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.npm_source().await;
    let slow = Receiver::start().await;
    slow.answer_always(Answer::Slow(Duration::from_secs(30), 200));
    let fast = Receiver::start().await;
    register(&app, &key, json!({"url": slow.url()})).await;
    register(&app, &key, json!({"url": fast.url()})).await;

    for n in 0..12 {
        let version = format!("1.0.{n}");
        app.package(&source, None, "pkg", &version, "").await;
        let body = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "pkg", "version": version});
        assert_eq!(app.promote(&key, &body).await.status, 200);
    }
    // Every event reaches the fast receiver while the slow one, which has
    // answered none, holds no more than its own share of attempts.
    fast.wait_for(12).await;
    assert!(slow.received().len() <= promoter::webhooks::dispatcher::PER_WEBHOOK);
    assert_eq!(app.history().await.len(), 12);
}

async fn redirects_are_not_followed(app: TestApp) {
    let key = app.npm_setup().await;
    let elsewhere = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[Answer::Redirect(elsewhere.url())]);
    let webhook = register(&app, &key, json!({"url": receiver.url()})).await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);

    let attempts = attempts_until(&app, &key, webhook["id"].as_i64().unwrap(), |a| {
        a.len() == 2 && a[0]["state"] == "delivered"
    })
    .await;
    assert_eq!(
        attempts[1]["statusCode"], 302,
        "a redirect is a failed attempt"
    );
    assert_eq!(elsewhere.received().len(), 0);
}

async fn management_needs_a_manage_key_and_never_shows_the_secret_again(app: TestApp) {
    let key = app.npm_setup().await;
    let promoter_only = app.key("ci", KeyScope::System, "view,promote").await;
    let feed_key = app
        .key(
            "feed",
            KeyScope::Feed(FeedName::parse("approved-npm").unwrap()),
            "view,add,promote,delete",
        )
        .await;
    let body = json!({"url": "http://127.0.0.1:9/hook"});
    for other in [&promoter_only, &feed_key] {
        app.json_post("/api/webhooks/create", other, &body)
            .await
            .assert_error(403, FORBIDDEN);
        app.get("/api/webhooks/list", other)
            .await
            .assert_error(403, FORBIDDEN);
        app.get("/api/webhooks/deliveries?id=1", other)
            .await
            .assert_error(403, FORBIDDEN);
        delete(&app, other, 1).await.assert_error(403, FORBIDDEN);
    }
    assert_eq!(outbox(&app).await, Vec::<String>::new());
    assert!(app.texts("SELECT url FROM webhooks").await.is_empty());

    let created = register(&app, &key, body.clone()).await;
    let generated = created["secret"].as_str().unwrap();
    assert_eq!(generated.len(), 64);
    let listed = app.get("/api/webhooks/list", &key).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains(generated), "the list shows a secret");
    assert_eq!(listed.json()[0]["id"], created["id"]);
    assert_eq!(listed.json()[0]["url"], "http://127.0.0.1:9/hook");
    assert!(listed.json()[0].get("secret").is_none());

    let id = created["id"].as_i64().unwrap();
    let deleted = delete(&app, &key, id).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(app.get("/api/webhooks/list", &key).await.json(), json!([]));
    delete(&app, &key, id)
        .await
        .assert_error(404, &format!("Webhook {id} does not exist."));
    app.get(&format!("/api/webhooks/deliveries?id={id}"), &key)
        .await
        .assert_error(404, &format!("Webhook {id} does not exist."));
}

async fn bad_webhooks_are_refused_and_change_nothing(app: TestApp) {
    let key = app.npm_setup().await;
    let strict = start_instance_allowing_private(&app.database.url, false).await;
    let cases = [
        (json!({}), "Field \"url\" is required."),
        (json!({"url": 7}), "Field \"url\" must be a string, not a number."),
        (json!({"url": "ftp://example.com/x"}), "Field \"url\" must use http or https, not ftp."),
        (json!({"url": "https://u:p@example.com/"}), "Field \"url\" must not contain a user name or password; receivers authenticate deliveries by their signature."),
        (json!({"url": "http://127.0.0.1:9/", "secret": "short"}), "Field \"secret\" must be 16 to 200 characters long, not 5."),
        (json!({"url": "http://127.0.0.1:9/", "feeds": ["no-such-feed"]}), "Feed \"no-such-feed\" does not exist."),
        (json!({"url": "http://127.0.0.1:9/", "feeds": [3]}), "Field \"feeds\" must be a list of strings."),
        (json!({"url": "http://127.0.0.1:9/", "feeds": ["bad name!"]}), "Field \"feeds\" has \"bad name!\", which"),
        // A misspelt filter must not quietly become "every feed".
        (json!({"url": "http://127.0.0.1:9/", "feed": "approved-npm"}), "Field \"feed\" is not known here; the accepted ones are url, feeds, secret, API_Key and key."),
    ];
    for (body, expected) in cases {
        let reply = app
            .json_post_to(&app.address, "/api/webhooks/create", &key, &body)
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.body.starts_with(expected), "{body}: {}", reply.body);
    }
    // A server that has not allowed private targets refuses them by address and by name.
    for (url, expected) in [
        ("http://127.0.0.1:9/hook", "Field \"url\" names 127.0.0.1, a loopback address; webhooks may only call public addresses unless the server runs with --webhook-allow-private."),
        ("http://169.254.169.254/latest", "Field \"url\" names 169.254.169.254, a link-local address;"),
        ("http://[fd00::1]/", "Field \"url\" names fd00::1, a private (unique local) address;"),
        ("http://localhost:9/", "Field \"url\" names host localhost, which resolves to "),
        // The URL standard reads these as 127.0.0.1 too.
        ("http://2130706433/", "Field \"url\" names 127.0.0.1, a loopback address;"),
        ("http://0x7f.1/", "Field \"url\" names 127.0.0.1, a loopback address;"),
        ("http://[::ffff:10.0.0.1]/", "Field \"url\" names ::ffff:10.0.0.1, a private address;"),
    ] {
        let reply = app
            .json_post_to(&strict, "/api/webhooks/create", &key, &json!({"url": url}))
            .await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
        assert!(reply.body.starts_with(expected), "{url}: {}", reply.body);
    }
    assert!(app.texts("SELECT url FROM webhooks").await.is_empty());
    assert!(app.texts("SELECT feed FROM webhook_feeds").await.is_empty());

    for (query, expected) in [
        ("", "Parameter \"id\" is required."),
        (
            "?id=x",
            "Parameter \"id\" must be a whole number from 1 to 9223372036854775807.",
        ),
        (
            "?id=1&limit=0",
            "Parameter \"limit\" must be a whole number from 1 to 1000.",
        ),
        ("?id=1&since=2", "Parameter \"since\" is not known here;"),
    ] {
        let reply = app
            .get(&format!("/api/webhooks/deliveries{query}"), &key)
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.body.starts_with(expected), "{query}: {}", reply.body);
    }
}

async fn deleting_a_webhook_drops_its_pending_events(app: TestApp) {
    let key = app.npm_setup().await;
    let mut receiver = Receiver::start().await;
    let webhook = register(&app, &key, json!({"url": receiver.url()})).await;
    receiver.stop();
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    let id = webhook["id"].as_i64().unwrap();
    attempts_until(&app, &key, id, |a| !a.is_empty()).await;
    let deleted = delete(&app, &key, id).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(outbox(&app).await, Vec::<String>::new());
    assert!(app
        .texts("SELECT error FROM webhook_attempts")
        .await
        .is_empty());
    receiver.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 0);
    assert_eq!(app.history().await.len(), 1, "the history stays");
}

async fn a_webhook_with_a_long_history_is_deleted_and_no_other_touched(app: TestApp) {
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    let webhook = register(&app, &key, json!({"url": receiver.url()})).await;
    let kept = register(&app, &key, json!({"url": receiver.url()})).await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    receiver.wait_for(2).await;
    // Twelve thousand more events and attempts each: more than two of the
    // batches the deletion clears them in.
    for id in [&webhook["id"], &kept["id"]] {
        app.execute(&format!(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 12000) \
             INSERT INTO webhook_events (webhook_id, promotion_id, delivery_id, state) \
             SELECT {id}, (SELECT MAX(id) FROM promotions), 'old-{id}-' || x, 'delivered' FROM n"
        ))
        .await;
        app.execute(&format!(
            "INSERT INTO webhook_attempts (event_id, webhook_id, attempt, attempted_at, status_code, duration_ms) \
             SELECT id, webhook_id, 1, '2026-01-01T00:00:00Z', 200, 1 FROM webhook_events WHERE webhook_id = {id}"
        ))
        .await;
    }
    let id = webhook["id"].as_i64().unwrap();
    assert_eq!(delete(&app, &key, id).await.status, 200);
    let left = |table: &'static str| {
        let app = &app;
        async move {
            app.texts(&format!(
                "SELECT CAST(webhook_id AS TEXT) || ' ' || CAST(COUNT(*) AS TEXT) FROM {table} GROUP BY webhook_id"
            ))
            .await
        }
    };
    let kept = kept["id"].as_i64().unwrap();
    assert_eq!(left("webhook_events").await, [format!("{kept} 12001")]);
    assert_eq!(left("webhook_attempts").await, [format!("{kept} 12002")]);
}

async fn a_paused_webhook_queues_its_events_until_resumed(app: TestApp) {
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    let webhook = register(&app, &key, json!({"url": receiver.url()})).await;
    let id = webhook["id"].as_i64().unwrap();
    assert!(app.store.set_webhook_active(id, false).await.unwrap());
    assert_eq!(
        app.get("/api/webhooks/list", &key).await.json()[0]["active"],
        false
    );
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 0);
    assert_eq!(outbox(&app).await.len(), 1);
    assert!(app.store.set_webhook_active(id, true).await.unwrap());
    receiver.wait_for(1).await;
}

// ---- delivery-time checks, processes and crashes ----

each_backend!(
    a_commit_wakes_the_dispatcher_without_polling,
    kill_9_with_events_pending_then_delivery_after_restart,
    killed_mid_attempt_the_delivery_is_retried_when_its_claim_lapses,
    private_targets_are_refused_at_delivery_time_too,
);

/// A webhook stored while private targets were allowed (or whose name resolves
/// somewhere private only later) is refused when a server that does not allow
/// them delivers: by address, and by name through the resolver.
async fn private_targets_are_refused_at_delivery_time_too(backend: Backend) {
    let app = TestApp::spawn_allowing_private(backend, false).await;
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    let secret = WebhookSecret::generate();
    let by_name = WebhookUrl::parse(&format!("http://localhost:{}/hook", receiver.port)).unwrap();
    let by_address = WebhookUrl::parse(&receiver.url()).unwrap();
    let named = app
        .store
        .create_webhook(&by_name, &[], &secret)
        .await
        .unwrap();
    let literal = app
        .store
        .create_webhook(&by_address, &[], &secret)
        .await
        .unwrap();
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    for webhook in [named.id, literal.id] {
        let attempts = attempts_until(&app, &key, webhook, |a| !a.is_empty()).await;
        let error = attempts[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains("a loopback address"), "{error}");
        assert_eq!(attempts[0]["state"], "pending");
    }
    assert_eq!(receiver.received().len(), 0);
}

async fn kill_9_with_events_pending_then_delivery_after_restart(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let app = TestApp::without_server(&database.url).await;
    let key = app.npm_setup().await;
    let source = app.npm_source().await;
    let mut receiver = Receiver::start().await;
    register_directly(&app, &receiver).await;
    receiver.stop();

    let mut server = ServerProcess::start(&database.url).await;
    for n in 0..5 {
        let version = format!("2.0.{n}");
        app.package(&source, None, "crashy", &version, "").await;
        let body = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "crashy", "version": version});
        let reply = app
            .json_post_to(&server.address, "/api/promotions/promote", &key, &body)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    server.kill_9();
    receiver.restart().await;
    server.restart().await;

    let received = receiver.wait_for(5).await;
    let mut versions: Vec<String> = received
        .iter()
        .map(|r| {
            assert!(r.signed_with(SECRET));
            r.json()["version"].as_str().unwrap().to_owned()
        })
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions, ["2.0.0", "2.0.1", "2.0.2", "2.0.3", "2.0.4"]);
}

/// Two server processes on one PostgreSQL share the outbox: every event arrives,
/// and no delivery is ever being attempted by both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_deliver_every_event_and_never_one_twice_at_once() {
    let database = TestDatabase::fresh(Backend::Postgres).await;
    let app = TestApp::without_server(&database.url).await;
    let key = app.npm_setup().await;
    let source = app.npm_source().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Slow(Duration::from_millis(20), 200));
    register_directly(&app, &receiver).await;
    let first = ServerProcess::start(&database.url).await;
    let second = ServerProcess::start(&database.url).await;

    let mut packages = Vec::new();
    for n in 0..60 {
        let version = format!("3.0.{n}");
        app.package(&source, None, "shared", &version, "").await;
        packages.push(json!({"name": "shared", "version": version}));
    }
    // Half in one batch through one process, half one by one through the other.
    let batch =
        json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "packages": packages[..30]});
    let reply = app
        .json_post_to(&first.address, "/api/promotions/batch", &key, &batch)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for package in &packages[30..] {
        let body = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "shared", "version": package["version"]});
        let reply = app
            .json_post_to(&second.address, "/api/promotions/promote", &key, &body)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    // Every event delivered (and recorded so), then what the receiver saw.
    for _ in 0..900 {
        let delivered = app
            .texts("SELECT delivery_id FROM webhook_events WHERE state = 'delivered'")
            .await;
        if delivered.len() == 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.received();
    let mut deliveries: Vec<String> = received
        .iter()
        .map(|r| r.header("x-promoter-delivery").to_owned())
        .collect();
    deliveries.sort();
    deliveries.dedup();
    assert_eq!(deliveries.len(), 60, "every promotion arrives");
    assert_eq!(
        receiver.most_at_once(),
        1,
        "a delivery was attempted twice at once"
    );
    assert!(received.iter().all(|r| r.signed_with(SECRET)));
    let delivered = app
        .texts("SELECT state FROM webhook_events WHERE state = 'delivered'")
        .await;
    assert_eq!(delivered.len(), 60);
}

/// A server killed while a receiver is still answering: the claim it held lapses
/// (30 s) and the restarted server sends the same delivery again.
async fn killed_mid_attempt_the_delivery_is_retried_when_its_claim_lapses(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let app = TestApp::without_server(&database.url).await;
    let key = app.npm_setup().await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[Answer::Slow(Duration::from_secs(8), 200)]);
    register_directly(&app, &receiver).await;
    let mut server = ServerProcess::start(&database.url).await;
    let reply = app.promote_via(&server.address, &key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let first = receiver.wait_for(1).await;
    server.kill_9();
    server.restart().await;

    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[1].header("x-promoter-delivery"),
        first[0].header("x-promoter-delivery")
    );
    assert_eq!(received[1].body, first[0].body);
    assert!(received[1].signed_with(SECRET));
    for _ in 0..100 {
        if app.texts("SELECT state FROM webhook_events").await == ["delivered"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the retried delivery was not recorded as delivered");
}
