//! What a successful promotion does to the database, as pgutil and curl send it,
//! under concurrency, and when the database fails half-way.

use std::time::Duration;

use chrono::Utc;
use promoter::domain::FeedType;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{babel_promotion, Backend, TestApp};

both_backends!(
    pgutils_exact_request_is_served,
    the_seed_pages_form_example_is_served,
    a_promotion_moves_every_file_and_writes_one_history_row,
    identity_rules_follow_the_feed_type,
    concurrent_identical_promotions_move_the_package_once,
    a_failed_history_write_leaves_the_package_in_place,
);

/// Sends raw bytes and returns the raw response (the server closes the connection).
async fn raw_exchange(app: &TestApp, request: String) -> String {
    let host = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

/// What pgutil's HttpClient writes for `pgutil packages promote`: chunked JSON,
/// `application/json; charset=utf-8`, fields in its order, nulls left out.
fn pgutil_request(app: &TestApp, key: &str, body: &str) -> String {
    let host = app.address.trim_start_matches("http://");
    format!(
        "POST /api/promotions/promote HTTP/1.1\r\n\
         Host: {host}\r\n\
         User-Agent: pgutil/2.1.0\r\n\
         X-ApiKey: {key}\r\n\
         Content-Type: application/json; charset=utf-8\r\n\
         Transfer-Encoding: chunked\r\n\
         Connection: close\r\n\
         \r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
}

async fn pgutils_exact_request_is_served(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.feed("nuget-unapproved", FeedType::Nuget).await;
    app.feed("nuget-approved", FeedType::Nuget).await;
    app.package(&source, None, "myNugetPackage", "1.2.3", "")
        .await;

    let body = r#"{"fromFeed":"unapproved-npm","group":"@babel","name":"runtime","version":"7.21.0","toFeed":"approved-npm","comments":"ok"}"#;
    let response = raw_exchange(&app, pgutil_request(&app, &key, body)).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let json: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["group"], "@babel");
    assert_eq!(json["comments"], "ok");

    // `pgutil packages promote --feed=nuget-unapproved --to-feed=nuget-approved
    //  --package=myNugetPackage --version=1.2.3`: no group, no comments.
    let body = r#"{"fromFeed":"nuget-unapproved","name":"myNugetPackage","version":"1.2.3","toFeed":"nuget-approved"}"#;
    let response = raw_exchange(&app, pgutil_request(&app, &key, body)).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let history = app.history().await;
    assert_eq!(history.len(), 2);
    assert_eq!(
        (
            history[1].group_name.as_str(),
            history[1].comments.as_deref()
        ),
        ("", None)
    );
    assert!(app
        .records()
        .await
        .contains(&"nuget-approved  myNugetPackage 1.2.3 ".to_owned()));

    // The same request again: the package has moved on, and pgutil prints this body.
    let response = raw_exchange(&app, pgutil_request(&app, &key, body)).await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    // It says where the version went, so the caller need not search the history.
    let second = &history[1];
    assert!(
        response.ends_with(&format!(
            "\r\n\r\nPackage myNugetPackage 1.2.3 was not found in feed \"nuget-unapproved\": \
             promotion {} moved it to feed \"nuget-approved\" at {}.\n",
            second.id,
            second
                .promoted_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{response}"
    );
}

async fn the_seed_pages_form_example_is_served(app: TestApp) {
    let key = app.npm_setup().await;
    // curl -X POST -H "X-ApiKey: $KEY" -d 'name=…&group=…&version=…&fromFeed=…&toFeed=…&comments=…'
    let body = "name=runtime&group=@babel&version=7.21.0&fromFeed=unapproved-npm&toFeed=approved-npm&comments=approved+by+QA";
    let reply = app
        .post(
            "/api/promotions/promote",
            &[
                ("X-ApiKey", &key),
                ("User-Agent", "curl/8.5.0"),
                ("Accept", "*/*"),
            ],
            Some("application/x-www-form-urlencoded"),
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["comments"], "approved by QA");
    assert_eq!(app.history().await.len(), 1);
}

async fn a_promotion_moves_every_file_and_writes_one_history_row(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app
        .store
        .existing_feed(&promoter::domain::FeedName::parse("unapproved-npm").unwrap())
        .await
        .unwrap();
    app.package(
        &source,
        Some("@babel"),
        "runtime",
        "7.21.0",
        "file=extra.tgz",
    )
    .await;
    app.package(&source, Some("@babel"), "runtime", "7.22.0", "")
        .await;
    app.package(&source, Some("@babel"), "core", "7.21.0", "")
        .await;
    let started = Utc::now() - chrono::Duration::seconds(1);

    let reply = app.promote(&key, &babel_promotion()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("application/json"));
    let body = reply.json();
    let history = app.history().await;
    assert_eq!(history.len(), 1);
    let row = &history[0];
    assert_eq!(body["id"], row.id);
    for (field, value) in [
        ("fromFeed", "unapproved-npm"),
        ("toFeed", "approved-npm"),
        ("group", "@babel"),
        ("name", "runtime"),
        ("version", "7.21.0"),
        ("packageType", "npm"),
        ("user", "ci-key"),
        ("comments", "ok"),
    ] {
        assert_eq!(body[field], value, "{field}");
    }
    let date = chrono::DateTime::parse_from_rfc3339(body["date"].as_str().unwrap()).unwrap();
    assert!(body["date"].as_str().unwrap().ends_with('Z'));
    assert!(date >= started && date <= Utc::now());

    assert_eq!(
        (
            row.from_feed.as_str(),
            row.to_feed.as_str(),
            row.package_type.as_str()
        ),
        ("unapproved-npm", "approved-npm", "npm")
    );
    assert_eq!(
        (
            row.group_name.as_str(),
            row.name.as_str(),
            row.version.as_str()
        ),
        ("@babel", "runtime", "7.21.0")
    );
    assert_eq!(
        (row.comments.as_deref(), row.user_name.as_str()),
        (Some("ok"), "ci-key")
    );
    assert!(row.promoted_at >= started && row.promoted_at <= Utc::now());

    // Every file of that version moved; nothing else did.
    assert_eq!(
        app.records().await,
        [
            "approved-npm @babel runtime 7.21.0 file=extra.tgz",
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.sig",
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.tgz",
            "unapproved-npm @babel core 7.21.0 ",
            "unapproved-npm @babel runtime 7.22.0 ",
        ]
    );
}

async fn identity_rules_follow_the_feed_type(app: TestApp) {
    let key = app.system_key().await;
    for (source, target, feed_type) in [
        ("npm-in", "npm-out", FeedType::Npm),
        ("nuget-in", "nuget-out", FeedType::Nuget),
        ("pypi-in", "pypi-out", FeedType::Pypi),
        ("docker-in", "docker-out", FeedType::Docker),
        ("maven-in", "maven-out", FeedType::Maven),
    ] {
        app.feed(target, feed_type).await;
        let feed = app.feed(source, feed_type).await;
        match feed_type {
            FeedType::Npm => {
                app.package(&feed, Some("@babel"), "runtime", "7.21.0", "")
                    .await
            }
            FeedType::Nuget => {
                app.package(&feed, None, "Newtonsoft.Json", "13.0.1-Beta", "")
                    .await
            }
            FeedType::Pypi => {
                app.package(&feed, None, "Django_REST.framework", "3.15", "")
                    .await
            }
            FeedType::Docker => {
                app.package(&feed, Some("bitnami"), "dotnet", "8.0", "")
                    .await
            }
            _ => {
                app.package(&feed, Some("org.apache"), "Commons", "1.0", "")
                    .await
            }
        }
    }
    let promote = |from: &str, to: &str, group: Option<&str>, name: &str, version: &str| {
        let mut body = json!({"fromFeed": from, "toFeed": to, "name": name, "version": version});
        if let Some(group) = group {
            body["group"] = json!(group);
        }
        body
    };
    for (body, expected_status) in [
        (
            promote("npm-in", "npm-out", Some("babel"), "runtime", "7.21.0"),
            200,
        ),
        (
            promote(
                "nuget-in",
                "nuget-out",
                None,
                "NEWTONSOFT.JSON",
                "13.0.1-beta",
            ),
            200,
        ),
        (
            promote("pypi-in", "pypi-out", None, "django-rest-framework", "3.15"),
            200,
        ),
        (
            promote("docker-in", "docker-out", None, "bitnami/dotnet", "8.0"),
            200,
        ),
        // Maven (and the other types) match exactly.
        (
            promote(
                "maven-in",
                "maven-out",
                Some("org.apache"),
                "commons",
                "1.0",
            ),
            400,
        ),
        (
            promote(
                "maven-in",
                "maven-out",
                Some("org.apache"),
                "Commons",
                "1.0",
            ),
            200,
        ),
    ] {
        let reply = app.promote(&key, &body).await;
        assert_eq!(reply.status, expected_status, "{body}: {}", reply.body);
    }
    // The history keeps the names as they were stored, not as they were asked for.
    let names: Vec<String> = app
        .history()
        .await
        .into_iter()
        .map(|h| format!("{} {} {}", h.group_name, h.name, h.version))
        .collect();
    assert_eq!(
        names,
        [
            "@babel runtime 7.21.0",
            " Newtonsoft.Json 13.0.1-Beta",
            " Django_REST.framework 3.15",
            " bitnami/dotnet 8.0",
            "org.apache Commons 1.0",
        ]
    );
}

async fn concurrent_identical_promotions_move_the_package_once(app: TestApp) {
    let key = app.npm_setup().await;
    // Two servers on one database, as two processes would be.
    let addresses = [app.address.clone(), app.another_instance().await];
    let body = babel_promotion().to_string();
    let requests = (0..32).map(|i| {
        let url = format!("{}/api/promotions/promote", addresses[i % 2]);
        let request = app
            .client
            .post(url)
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/json")
            .body(body.clone());
        async move { crate::helpers::Reply::read(request.send().await.unwrap()).await }
    });
    let replies = futures::future::join_all(requests).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(
            400,
            "Package @babel/runtime 7.21.0 was not found in feed \"unapproved-npm\": promotion ",
        );
    }
    assert_eq!(app.history().await.len(), 1);
    assert_eq!(
        app.records().await,
        [
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.sig",
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.tgz",
        ]
    );
}

async fn a_failed_history_write_leaves_the_package_in_place(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.records().await;
    // Break the history table so that the write after the move fails.
    app.execute("ALTER TABLE promotions RENAME TO promotions_gone")
        .await;
    let reply = app.promote(&key, &babel_promotion()).await;
    reply.assert_error(500, "An unexpected error occurred; quote error id ");
    for secret in ["promotions", "SQL", "relation", "table", &key] {
        assert!(
            !reply.body.contains(secret),
            "500 body leaks {secret:?}: {}",
            reply.body
        );
    }
    app.execute("ALTER TABLE promotions_gone RENAME TO promotions")
        .await;
    assert_eq!(app.records().await, before, "the move was not rolled back");
    assert!(app.history().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_gives_503_with_retry_after() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.npm_setup().await;
    let (address, cut) = app.instance_behind_relay().await;
    let promote = || {
        app.client
            .post(format!("{address}/api/promotions/promote"))
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/json")
            .body(babel_promotion().to_string())
            .timeout(Duration::from_secs(30))
            .send()
    };
    cut();
    let reply = crate::helpers::Reply::read(promote().await.unwrap()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    reply.assert_error(503, "try again in a few seconds.");
    assert!(
        reply.body.starts_with("The database is unavailable ("),
        "{}",
        reply.body
    );
    assert_eq!(reply.headers["retry-after"], "5");
    assert!(app.history().await.is_empty());
}
