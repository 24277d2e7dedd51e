//! Regression tests for the defects an outside review reproduced (issue 6), each
//! on the backends it concerns.

use std::time::Duration;

use promoter::domain::{FeedType, Identifier, PackageId};
use promoter::store::{NewFile, NewPackage};
use serde_json::json;

use crate::helpers::{babel_promotion, start_instance, Backend, Reply, TestApp};

both_backends!(
    management_writes_racing_deletes_never_fail_with_500,
    a_feed_created_disabled_is_disabled_from_its_first_moment,
    updating_a_feed_deleted_meanwhile_is_404,
    misspelt_query_parameters_are_refused,
    package_urls_select_packages,
    json_sent_as_a_form_gets_a_hint,
    listings_past_their_cap_ask_to_be_narrowed,
    a_statement_that_waits_too_long_gives_503_and_changes_nothing,
    old_key_labels_are_replaced_by_hash_labels,
    a_move_that_could_outlive_its_request_is_not_started,
    the_key_listing_pages_with_a_link_header,
);

impl TestApp {
    /// Sends the contract's example promotion from another task, so that the
    /// test can act while it waits on a lock.
    fn promote_in_background(&self, key: &str) -> tokio::task::JoinHandle<Reply> {
        let request = self
            .client
            .post(self.url("/api/promotions/promote"))
            .header("X-ApiKey", key)
            .header("Content-Type", "application/json")
            .body(babel_promotion().to_string());
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    }

    /// Waits until `count` sessions on this test's database wait for a lock
    /// (sessions of other tests, on other databases, do not count).
    pub async fn until_waiting_for_locks(&self, count: i64) {
        for _ in 0..400 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0",
            )
            .fetch_one(self.pg_pool())
            .await
            .unwrap();
            if waiting >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{count} statements never waited for a lock");
    }
}

/// A PostgreSQL transaction of the test's own.
pub async fn side_transaction(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    app.pg_pool().begin().await.unwrap()
}

/// Holds a row lock on @babel/runtime 7.21.0 from another connection, as an
/// operator's `SELECT … FOR UPDATE` in psql would, while a promotion of it
/// starts; `meanwhile` runs during the wait; then the lock is released. Returns
/// what the promotion answered.
async fn promote_while_the_version_is_locked<F, Fut>(
    app: &TestApp,
    key: &str,
    meanwhile: F,
) -> Reply
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut locker = side_transaction(app).await;
    sqlx::query("SELECT id FROM package_versions WHERE name_key = 'runtime' FOR UPDATE")
        .fetch_all(&mut *locker)
        .await
        .unwrap();
    let promotion = app.promote_in_background(key);
    app.until_waiting_for_locks(1).await;
    // What happens meanwhile must not wait for the promotion, which is waiting
    // for us: a deadlock here would hang the test, so bound it.
    tokio::time::timeout(Duration::from_secs(10), meanwhile())
        .await
        .expect("a feed change waited for the blocked promotion");
    locker.rollback().await.unwrap();
    promotion.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_disabled_while_a_promotion_waits_stops_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let before = app.snapshot().await;

    // Control: the same wait with nothing changed meanwhile promotes, so the
    // refusals below come from the feed changes and not from the lock.
    let control = promote_while_the_version_is_locked(&app, &key, || async {}).await;
    assert_eq!(control.status, 200, "{}", control.body);
    app.execute("UPDATE package_versions SET feed_id = (SELECT id FROM feeds WHERE name = 'unapproved-npm')")
        .await;
    app.execute("DELETE FROM promotions").await;
    assert_eq!(app.snapshot().await, before);

    let reply = promote_while_the_version_is_locked(&app, &key, || async {
        let disabled = app
            .json_post(
                "/api/management/feeds/update/approved-npm",
                &key,
                &json!({"active": false}),
            )
            .await;
        assert_eq!(disabled.status, 200, "{}", disabled.body);
    })
    .await;
    reply.assert_error(
        400,
        "Field \"toFeed\" names feed \"approved-npm\", which is disabled.",
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "the package moved into a disabled feed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_target_set_while_a_promotion_waits_stops_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    app.feed("other-npm", FeedType::Npm).await;
    let before = app.snapshot().await;

    let reply = promote_while_the_version_is_locked(&app, &key, || async {
        let retargeted = app
            .json_post(
                "/api/management/feeds/update/unapproved-npm",
                &key,
                &json!({"promoteToFeed": "other-npm"}),
            )
            .await;
        assert_eq!(retargeted.status, 200, "{}", retargeted.body);
    })
    .await;
    reply.assert_error(
        400,
        "Feed \"unapproved-npm\" only promotes to feed \"other-npm\", so toFeed \"approved-npm\" is not allowed.",
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_deleted_while_a_promotion_waits_stops_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let reply = promote_while_the_version_is_locked(&app, &key, || async {
        let deleted = app
            .post(
                "/api/management/feeds/delete/approved-npm",
                &[("X-ApiKey", &key)],
                None,
                "",
            )
            .await;
        assert_eq!(deleted.status, 200, "{}", deleted.body);
    })
    .await;
    reply.assert_error(
        400,
        "Field \"toFeed\" names feed \"approved-npm\", which does not exist.",
    );
    assert!(app.history().await.is_empty());
    assert_eq!(app.records().await.len(), 2);
}

/// A role that may not write the history (SQLSTATE 42501) is a broken setup, not
/// an outage: 500 with an error id, never 503, and the move is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_insert_on_the_history_gets_500_and_nothing_moves() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let role = format!("limited_{}", uuid::Uuid::new_v4().simple());
    let database = url::Url::parse(&app.database.url).unwrap();
    let database = database.path().trim_start_matches('/');
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {database} TO {role}"),
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE INSERT ON promotions FROM {role}"),
    ] {
        app.execute(&statement).await;
    }
    let limited = start_instance(&app.url_as_role(&role)).await;
    let before = app.snapshot().await;
    let reply = app.promote_via(&limited, &key).await;
    reply.assert_error(500, "quote error id");
    assert!(reply.headers.get("retry-after").is_none());
    assert_eq!(app.snapshot().await, before);
}

async fn management_writes_racing_deletes_never_fail_with_500(app: TestApp) {
    let key = app.system_key().await;
    app.feed("race-target", FeedType::Npm).await;
    for round in 0..12 {
        let created = app
            .json_post(
                "/api/management/feeds/create",
                &key,
                &json!({"name": "race-feed", "feedType": "npm"}),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let bodies = [
            (
                "/api/api-keys/create",
                json!({"type": "Feed", "feed": "race-feed"}),
            ),
            (
                "/api/management/feeds/update/race-feed",
                json!({"description": format!("round {round}"), "promoteToFeed": "race-target"}),
            ),
            (
                "/api/management/feeds/create",
                json!({"name": format!("race-source-{round}"), "feedType": "npm", "promoteToFeed": "race-feed"}),
            ),
            ("/api/management/feeds/delete/race-feed", json!({})),
        ];
        let requests = bodies
            .iter()
            .map(|(path, body)| app.json_post(path, &key, body));
        for reply in futures::future::join_all(requests).await {
            if reply.status != 200 {
                assert!(
                    [400, 404].contains(&reply.status),
                    "round {round}: {} {}",
                    reply.status,
                    reply.body
                );
                reply.assert_error(reply.status, "does not exist");
            }
        }
        // Whatever won, the feed is gone at the end of the round.
        let gone = app
            .json_post("/api/management/feeds/delete/race-feed", &key, &json!({}))
            .await;
        assert!(
            [200, 404].contains(&gone.status),
            "{}: {}",
            gone.status,
            gone.body
        );
    }
}

async fn a_feed_created_disabled_is_disabled_from_its_first_moment(app: TestApp) {
    let key = app.system_key().await;
    let created = app
        .json_post(
            "/api/management/feeds/create",
            &key,
            &json!({"name": "quiet-npm", "feedType": "npm", "active": false}),
        )
        .await;
    assert_eq!(created.json()["active"], false, "{}", created.body);
    let stored = app
        .store
        .existing_feed(&promoter::domain::FeedName::parse("quiet-npm").unwrap())
        .await
        .unwrap();
    assert!(!stored.active);
}

/// Writes that refer to a feed deleted while they wait on its row lock: the
/// foreign key or the vanished row gives a 400 or 404, never a 500. The delete
/// is held in a transaction of the test's own until all three writes wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_referring_to_a_feed_deleted_meanwhile_get_400_or_404() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.system_key().await;
    app.feed("race-feed", FeedType::Npm).await;
    let mut deleter = side_transaction(&app).await;
    sqlx::query("SELECT id FROM feeds WHERE name = 'race-feed' FOR UPDATE")
        .fetch_all(&mut *deleter)
        .await
        .unwrap();
    let writes = [
        (
            "/api/api-keys/create",
            json!({"type": "Feed", "feed": "race-feed"}),
        ),
        (
            "/api/management/feeds/update/race-feed",
            json!({"description": "changed"}),
        ),
        (
            "/api/management/feeds/create",
            json!({"name": "race-source", "feedType": "npm", "promoteToFeed": "race-feed"}),
        ),
    ]
    .map(|(path, body)| {
        let request = app
            .client
            .post(app.url(path))
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    });
    app.until_waiting_for_locks(3).await;
    sqlx::query("DELETE FROM feeds WHERE name = 'race-feed'")
        .execute(&mut *deleter)
        .await
        .unwrap();
    deleter.commit().await.unwrap();
    let [key_reply, update_reply, create_reply] = writes;
    key_reply
        .await
        .unwrap()
        .assert_error(400, "Feed \"race-feed\" does not exist.");
    update_reply
        .await
        .unwrap()
        .assert_error(404, "Feed \"race-feed\" does not exist.");
    create_reply
        .await
        .unwrap()
        .assert_error(400, "Feed \"race-feed\" does not exist.");
    assert!(app
        .texts("SELECT name FROM feeds WHERE name LIKE 'race-%'")
        .await
        .is_empty());
}

/// Deleting a source feed while a promotion out of it waits for its version:
/// both take their locks in the same order, so neither deadlocks (which
/// PostgreSQL would end with a 500 for one of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_source_while_a_promotion_waits_does_not_deadlock() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let mut locker = side_transaction(&app).await;
    sqlx::query("SELECT id FROM package_versions FOR UPDATE")
        .fetch_all(&mut *locker)
        .await
        .unwrap();
    let promotion = app.promote_in_background(&key);
    app.until_waiting_for_locks(1).await;
    let deletion = {
        let request = app
            .client
            .delete(app.url("/api/management/feeds/delete/unapproved-npm"))
            .header("X-ApiKey", &key);
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    };
    app.until_waiting_for_locks(2).await;
    locker.rollback().await.unwrap();
    let promoted = promotion.await.unwrap();
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let deleted = deletion.await.unwrap();
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(app.records().await.len(), 2, "the promoted files were lost");
}

/// A package deletion waiting on a version that a promotion then moves away
/// deletes nothing: it must not strip the files of a version now in another
/// feed, which its key may not even see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_waiting_on_a_version_moved_meanwhile_deletes_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let mut mover = side_transaction(&app).await;
    sqlx::query("SELECT id FROM package_versions FOR UPDATE")
        .fetch_all(&mut *mover)
        .await
        .unwrap();
    let deletion = {
        let request = app
            .client
            .post(app.url(
                "/api/packages/unapproved-npm/delete?name=runtime&group=%40babel&version=7.21.0",
            ))
            .header("X-ApiKey", &key);
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    };
    app.until_waiting_for_locks(1).await;
    // What a promotion's move does, committed while the deletion waits.
    sqlx::query(
        "UPDATE package_versions SET feed_id = (SELECT id FROM feeds WHERE name = 'approved-npm')",
    )
    .execute(&mut *mover)
    .await
    .unwrap();
    mover.commit().await.unwrap();
    deletion
        .await
        .unwrap()
        .assert_error(404, "was not found in feed \"unapproved-npm\".");
    assert_eq!(
        app.records().await,
        [
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.sig",
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.tgz"
        ]
    );
}

/// Migration 0003 on a database written before it: a chosen key's first
/// characters, kept as its label and in its default name (and copied into the
/// history), are replaced by the start of its hash.
async fn old_key_labels_are_replaced_by_hash_labels(app: TestApp) {
    let key_hash = "ab".repeat(32);
    app.execute(&format!(
        "INSERT INTO api_keys (name, key_hash, key_prefix, kind, permissions, created_at, logging) \
         VALUES ('key-s3cr3t-8', '{key_hash}', 's3cr3t-8', 'system', 'view', '2026-01-01T00:00:00Z', 'None')"
    ))
    .await;
    app.execute(
        "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, to_feed_key, \
         package_type, group_name, name, version, group_key, name_key, version_key, user_name, api_key_id, promoted_at) \
         SELECT 1, 2, 'a', 'b', 'a', 'b', 'npm', '', 'x', '1', '', 'x', '1', name, id, '2026-01-01T00:00:00Z' \
         FROM api_keys WHERE key_prefix = 's3cr3t-8'",
    )
    .await;
    let migration = match app.store.db() {
        promoter::store::Db::Postgres(_) => {
            include_str!("../../migrations/postgres/0003_no_key_text_in_labels.sql")
        }
        promoter::store::Db::Sqlite(..) => {
            include_str!("../../migrations/sqlite/0003_no_key_text_in_labels.sql")
        }
    };
    for statement in migration.split(';').filter(|s| s.contains("UPDATE")) {
        app.execute(statement).await;
    }
    let dump = app
        .texts("SELECT name || ' ' || key_prefix FROM api_keys")
        .await;
    assert_eq!(dump, ["key-sha256:abababab sha256:abababab"]);
    assert_eq!(
        app.texts("SELECT user_name FROM promotions").await,
        ["key-sha256:abababab"]
    );
}

async fn updating_a_feed_deleted_meanwhile_is_404(app: TestApp) {
    let feed = app.feed("short-lived", FeedType::Npm).await;
    assert!(app.store.delete_feed(&feed).await.unwrap());
    let change = promoter::store::FeedChange {
        active: Some(false),
        ..Default::default()
    };
    let error = app.store.update_feed(&feed, &change).await.unwrap_err();
    assert!(
        matches!(error, promoter::error::Error::NotFound(_)),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "Feed \"short-lived\" does not exist.");
}

async fn misspelt_query_parameters_are_refused(app: TestApp) {
    let key = app.npm_setup().await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);

    // An audit query with a misspelt filter must not answer with everything.
    let reply = app
        .get("/api/promotions/list?feed=approved-npm", &key)
        .await;
    reply.assert_error(
        400,
        "Parameter \"feed\" is not known here; the accepted ones are fromFeed, toFeed, group, groupName, name, package, packageName, version, batch, limit, before and key.",
    );
    let fine = app
        .get("/api/promotions/list?ToFeed=approved-npm&KEY=x", &key)
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    for (path, accepted) in [
        (
            "/api/packages/approved-npm/versions?nmae=runtime",
            "the accepted ones are name, package, group, version, qualifier, purl and key",
        ),
        (
            "/api/packages/approved-npm/latest?version=1",
            "the accepted ones are name, package, group, qualifier, purl, stableOnly and key",
        ),
        (
            "/api/packages/approved-npm?name=x",
            "the only accepted one is key",
        ),
    ] {
        let reply = app.get(path, &key).await;
        reply.assert_error(400, &format!("{accepted}."));
    }
    let all = app
        .get("/api/packages/approved-npm/versions?name=runtime&group=%40babel&version=7.21.0&qualifier=file%3Druntime-7.21.0.tgz", &key)
        .await;
    assert_eq!(all.json().as_array().unwrap().len(), 1, "{}", all.body);
}

async fn package_urls_select_packages(app: TestApp) {
    let key = app.npm_setup().await;
    let versions = "/api/packages/unapproved-npm/versions";
    let files = |reply: Reply| {
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["qualifier"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let both = app
        .get(
            &format!("{versions}?purl=pkg%3Anpm%2F%2540babel%2Fruntime%407.21.0"),
            &key,
        )
        .await;
    assert_eq!(
        files(both),
        ["file=runtime-7.21.0.sig", "file=runtime-7.21.0.tgz"]
    );
    let one = app
        .get(
            &format!("{versions}?purl=pkg:npm/@babel/runtime@7.21.0?file%3Druntime-7.21.0.tgz"),
            &key,
        )
        .await;
    assert_eq!(files(one), ["file=runtime-7.21.0.tgz"]);
    let latest = app
        .get(
            "/api/packages/unapproved-npm/latest?purl=pkg:npm/babel/runtime",
            &key,
        )
        .await;
    assert_eq!(
        latest.json().as_array().unwrap().len(),
        2,
        "{}",
        latest.body
    );

    app.get(&format!("{versions}?purl=pkg:nuget/runtime@7.21.0"), &key)
        .await
        .assert_error(400, "Parameter \"purl\" is a nuget package URL, but feed \"unapproved-npm\" holds npm packages.");
    app.get(&format!("{versions}?purl=runtime"), &key)
        .await
        .assert_error(400, "Parameter \"purl\" must be a package URL");
    app.get(
        &format!("{versions}?purl=pkg:npm/runtime&name=runtime"),
        &key,
    )
    .await
    .assert_error(400, "Parameter \"purl\" already names the package");

    // Deleting by purl removes exactly the file it names.
    let deleted = app
        .post(
            "/api/packages/unapproved-npm/delete?purl=pkg:npm/%40babel/runtime@7.21.0?file%3Druntime-7.21.0.sig",
            &[("X-ApiKey", &key)],
            None,
            "",
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        app.records().await,
        ["unapproved-npm @babel runtime 7.21.0 file=runtime-7.21.0.tgz"]
    );
}

async fn json_sent_as_a_form_gets_a_hint(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    // What `curl -d '{…}'` sends: JSON labelled as a form.
    app.post(
        "/api/promotions/promote",
        &[("X-ApiKey", &key)],
        Some("application/x-www-form-urlencoded"),
        babel_promotion().to_string(),
    )
    .await
    .assert_error(
        400,
        "The request body looks like JSON but was sent as a form; JSON needs the header Content-Type: application/json.",
    );
    assert_eq!(app.snapshot().await, before);
}

async fn listings_past_their_cap_ask_to_be_narrowed(app: TestApp) {
    let key = app.system_key().await;
    let feed = app.feed("big-nuget", FeedType::Nuget).await;
    let packages: Vec<NewPackage> = (0..10_001)
        .map(|i| NewPackage {
            id: PackageId::new(
                FeedType::Nuget,
                None,
                &Identifier::parse(&format!("Package{}", i % 2)).unwrap(),
                &Identifier::parse(&format!("1.0.{i}")).unwrap(),
            )
            .unwrap(),
            file: NewFile::default(),
        })
        .collect();
    app.store.import_packages(&feed, &packages).await.unwrap();
    app.get("/api/packages/big-nuget/versions", &key)
        .await
        .assert_error(
            400,
            "The query matches more than 10000 files in feed \"big-nuget\"; narrow it with name, group or version.",
        );
    // The latest versions are few, however many files were read to find them.
    let latest = app.get("/api/packages/big-nuget/latest", &key).await;
    let versions: Vec<String> = latest
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["version"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(versions, ["1.0.10000", "1.0.9999"], "{}", latest.body);
    let narrowed = app
        .get("/api/packages/big-nuget/versions?name=package1", &key)
        .await;
    assert_eq!(narrowed.json().as_array().unwrap().len(), 5_000);
}

/// A promotion stuck behind a lock for longer than the statement timeout (20 s)
/// is answered 503 before the request timeout (60 s) would answer 408, and its
/// transaction is rolled back: the answer matches what happened.
async fn a_statement_that_waits_too_long_gives_503_and_changes_nothing(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    let reply = match app.store.db() {
        promoter::store::Db::Postgres(pool) => {
            let mut locker = pool.begin().await.unwrap();
            sqlx::query("SELECT id FROM package_versions FOR UPDATE")
                .fetch_all(&mut *locker)
                .await
                .unwrap();
            let reply = app.promote(&key, &babel_promotion()).await;
            locker.rollback().await.unwrap();
            reply
        }
        promoter::store::Db::Sqlite(pool, _) => {
            // Another process's writer holds the file's write lock.
            let locker = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let reply = app.promote(&key, &babel_promotion()).await;
            locker.rollback().await.unwrap();
            reply
        }
    };
    reply.assert_error(503, "try again in a few seconds.");
    assert_eq!(reply.headers["retry-after"], "5");
    assert_eq!(app.snapshot().await, before);
    // And the promotion works once the lock is gone.
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
}

/// `?sslmode=require`, as managed PostgreSQL services demand: the connection is
/// encrypted (the throwaway cluster has a self-signed certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_can_require_tls() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let tls_url = format!("{}?sslmode=require", app.database.url);
    let store = promoter::store::Store::open(&tls_url).await.unwrap();
    let promoter::store::Db::Postgres(pool) = store.db() else {
        unreachable!()
    };
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(encrypted);
    let server = start_instance(&tls_url).await;
    let reply = app.promote_via(&server, &key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The CLI says the real cause of a failed connection, once, on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_their_cause_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let cli = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_promoter"))
            .args(["feeds", "list"])
            .env("PROMOTER_DATABASE_URL", url)
            .output()
            .unwrap()
    };
    let mut as_bob = url::Url::parse(&app.url_as_role("bob")).unwrap();
    as_bob.set_password(Some("sekret-pw")).unwrap();
    let output = cli(as_bob.as_str());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert_eq!(
        stderr.matches("role \"bob\" does not exist").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: could not connect to PostgreSQL at "),
        "{stderr}"
    );
    // The password never.
    assert!(!stderr.contains("sekret-pw"), "{stderr}");

    // A port nobody listens on: refused at once, and said so (not "timed out"),
    // naming the server and database it tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = cli(&format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: could not connect to PostgreSQL at 127.0.0.1:{port} (database postgres): "
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("timed out"), "{stderr}");
}

/// A move that could still be running when the caller's answer is due is not
/// started: 503, nothing moved (here the answer is due at once).
async fn a_move_that_could_outlive_its_request_is_not_started(app: TestApp) {
    app.npm_setup().await;
    let before = app.snapshot().await;
    let feed = |name: &str| {
        let store = &app.store;
        let name = promoter::domain::FeedName::parse(name).unwrap();
        async move { store.existing_feed(&name).await.unwrap() }
    };
    let (from, to) = (feed("unapproved-npm").await, feed("approved-npm").await);
    let package = PackageId::new(
        FeedType::Npm,
        Some(&Identifier::parse("@babel").unwrap()),
        &Identifier::parse("runtime").unwrap(),
        &Identifier::parse("7.21.0").unwrap(),
    )
    .unwrap();
    let items = [promoter::domain::MoveItem {
        package,
        version: promoter::domain::VersionSpec::Exact,
        revert_of: None,
    }];
    let plan = |answer_due| promoter::store::MovePlan {
        from: &from,
        to: &to,
        items: &items,
        on_conflict: promoter::domain::OnConflict::Fail,
        check_fixed_target: true,
        audit: promoter::store::MoveAudit {
            comments: None,
            user: "test",
            api_key_id: 1,
        },
        batch_id: None,
        dry_run: false,
        answer_due,
    };
    let refused = app
        .store
        .execute_plan(&plan(std::time::Instant::now()))
        .await;
    match refused {
        Err(promoter::store::MoveError::Failed(error)) => assert_eq!(
            error.to_string(),
            "the database is unavailable: this request waited too long to start the change"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.snapshot().await, before);
    // With time in hand, the same move goes ahead.
    let due = std::time::Instant::now() + Duration::from_secs(60);
    let moved = app.store.execute_plan(&plan(due)).await.unwrap();
    assert!(matches!(
        moved[0].outcome,
        promoter::store::Outcome::Promoted(_)
    ));
}

async fn the_key_listing_pages_with_a_link_header(app: TestApp) {
    let admin = app.system_key().await;
    for name in ["k1", "k2", "k3"] {
        app.key(name, promoter::store::KeyScope::System, "view")
            .await;
    }
    let mut names = Vec::new();
    let mut next = Some("/api/api-keys/list?limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let page = app.get(&path, &admin).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for key in page.json().as_array().unwrap() {
            names.push(key["displayName"].as_str().unwrap().to_owned());
        }
        next = page.headers.get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link[1..link.find('>').unwrap()].to_owned()
        });
        pages += 1;
    }
    assert_eq!(pages, 2);
    assert_eq!(names, ["ci-key", "k1", "k2", "k3"]);
    app.get("/api/api-keys/list?limit=0", &admin)
        .await
        .assert_error(
            400,
            "Parameter \"limit\" must be a whole number from 1 to 10000.",
        );
}
