//! The endpoints pgutil uses to run a whole setup: /health, feeds, API keys and
//! packages. Each success shape is checked field by field against what pgutil's
//! models require (camelCase, required fields present, enums as names, arrays).

use promoter::domain::{FeedName, FeedType};
use promoter::store::KeyScope;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, FORBIDDEN};

both_backends!(
    health_answers_in_progets_shape,
    the_feeds_api_manages_feeds,
    management_needs_a_system_key_with_manage,
    the_api_keys_api_creates_lists_and_deletes_keys,
    bad_api_key_requests_are_named,
    the_packages_api_lists_and_deletes_packages,
);

impl TestApp {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("X-ApiKey", key);
        if let Some(body) = body {
            // pgutil's PostAsJsonAsync: this content type, chunked.
            let stream =
                futures::stream::iter([Ok::<_, std::io::Error>(body.to_string().into_bytes())]);
            request = request
                .header("Content-Type", "application/json; charset=utf-8")
                .body(reqwest::Body::wrap_stream(stream));
        }
        Reply::read(request.send().await.unwrap()).await
    }

    async fn get_json(&self, path: &str, key: &str) -> Value {
        let reply = self.send(reqwest::Method::GET, path, key, None).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{}",
            reply.content_type
        );
        reply.json()
    }

    async fn post_json(&self, path: &str, key: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, key, Some(body))
            .await
    }
}

/// The object's keys, sorted: a shape check that catches extra and missing fields.
/// A key text chosen by the caller, as pgutil's `--key` sends one.
const CHOSEN_KEY: &str = "chosen-key-0001-0123456789abcdefghij";

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

async fn health_answers_in_progets_shape(app: TestApp) {
    let reply = Reply::read(app.client.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!(reply.status, 200);
    let health = reply.json();
    assert_eq!(
        health,
        json!({"applicationName": "Promoter", "databaseStatus": "OK", "licenseStatus": "OK",
               "versionNumber": env!("CARGO_PKG_VERSION"), "releaseNumber": env!("CARGO_PKG_VERSION"),
               "serviceStatus": "OK"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_stopped_database() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (address, cut) = app.instance_behind_relay().await;
    let health = || async {
        Reply::read(
            app.client
                .get(format!("{address}/health"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(health().await.status, 200);
    cut();
    let reply = health().await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["databaseStatus"], "Error");
    assert_eq!(body["serviceStatus"], "OK");
    // The real cause, in a fixed sentence that names no host, port or user.
    assert_eq!(
        body["databaseStatusDetails"],
        "The postgres database is unavailable: the server refused the connection."
    );
    for required in [
        "applicationName",
        "licenseStatus",
        "versionNumber",
        "releaseNumber",
    ] {
        assert!(body[required].is_string(), "{required} missing");
    }
}

async fn the_feeds_api_manages_feeds(app: TestApp) {
    let key = app.system_key().await;
    // `pgutil feeds create --name=nuget-approved --type=nuget`
    let created = app
        .post_json(
            "/api/management/feeds/create",
            &key,
            json!({"name": "nuget-approved", "feedType": "nuget"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(
        created.json(),
        json!({"name": "nuget-approved", "feedType": "nuget", "active": true, "public": false})
    );
    let created = app
        .post_json(
            "/api/management/feeds/create",
            &key,
            json!({"name": "nuget-unapproved", "feedType": "NuGet", "description": "incoming",
                   "promoteToFeed": "nuget-approved", "active": false}),
        )
        .await;
    assert_eq!(
        created.json(),
        json!({"name": "nuget-unapproved", "feedType": "nuget", "description": "incoming",
               "active": false, "public": false, "promoteToFeed": "nuget-approved"})
    );

    let list = app.get_json("/api/management/feeds/list", &key).await;
    let feeds = list.as_array().unwrap();
    assert_eq!(feeds.len(), 2);
    for feed in feeds {
        assert!(
            feed["name"].is_string() && feed["feedType"].is_string() && feed["active"].is_boolean()
        );
    }
    let got = app
        .get_json("/api/management/feeds/get/NUGET-UNAPPROVED", &key)
        .await;
    assert_eq!(
        keys(&got),
        [
            "active",
            "description",
            "feedType",
            "name",
            "promoteToFeed",
            "public"
        ]
    );

    // pgutil's UpdateFeedAsync posts the whole feed back; clearing with "".
    let updated = app
        .post_json(
            "/api/management/feeds/update/nuget-unapproved",
            &key,
            json!({"name": "nuget-unapproved", "feedType": "nuget", "active": true, "description": "", "promoteToFeed": ""}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        updated.json(),
        json!({"name": "nuget-unapproved", "feedType": "nuget", "active": true, "public": false})
    );

    for (body, expected) in [
        (
            json!({"name": "renamed"}),
            "Field \"name\" must be \"nuget-unapproved\" or left out",
        ),
        (
            json!({"feedType": "npm"}),
            "Field \"feedType\" must be nuget or left out",
        ),
        (
            json!({"active": "maybe"}),
            "Field \"active\" must be true or false.",
        ),
        (
            json!({"promoteToFeed": "nuget-unapproved"}),
            "cannot be the promotion target",
        ),
        (
            json!({"promoteToFeed": "nowhere"}),
            "Feed \"nowhere\" does not exist.",
        ),
    ] {
        let reply = app
            .post_json("/api/management/feeds/update/nuget-unapproved", &key, body)
            .await;
        reply.assert_error(400, expected);
    }
    for (body, expected) in [
        (json!({"feedType": "nuget"}), "Field \"name\" is required."),
        (json!({"name": "x"}), "Field \"feedType\" is required."),
        (
            json!({"name": "x", "feedType": "zip"}),
            "Field \"feedType\" must be one of universal, nuget",
        ),
        (
            json!({"name": "bad name", "feedType": "npm"}),
            "Field \"name\" must be 1 to 100 letters",
        ),
        (
            json!({"name": "NuGet-Approved", "feedType": "nuget"}),
            "A feed named \"NuGet-Approved\" already exists.",
        ),
    ] {
        let reply = app
            .post_json("/api/management/feeds/create", &key, body)
            .await;
        reply.assert_error(400, expected);
    }
    let missing = app
        .send(
            reqwest::Method::GET,
            "/api/management/feeds/get/nowhere",
            &key,
            None,
        )
        .await;
    missing.assert_error(404, "Feed \"nowhere\" does not exist.");

    // Deleting a feed removes its packages but keeps the history.
    let feed = app
        .store
        .existing_feed(&FeedName::parse("nuget-unapproved").unwrap())
        .await
        .unwrap();
    app.package(&feed, None, "Newtonsoft.Json", "13.0.1", "")
        .await;
    let promoted = app
        .promote(&key, &json!({"fromFeed": "nuget-unapproved", "toFeed": "nuget-approved", "name": "Newtonsoft.Json", "version": "13.0.1"}))
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            "/api/management/feeds/delete/nuget-approved",
            &key,
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(app.records().await.is_empty());
    assert_eq!(app.history().await.len(), 1);
    let again = app
        .send(
            reqwest::Method::DELETE,
            "/api/management/feeds/delete/nuget-approved",
            &key,
            None,
        )
        .await;
    again.assert_error(404, "Feed \"nuget-approved\" does not exist.");
    assert_eq!(
        app.get_json("/api/management/feeds/list", &key)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn management_needs_a_system_key_with_manage(app: TestApp) {
    app.npm_setup().await;
    let feed_key = app
        .key(
            "feed-admin",
            KeyScope::Feed(FeedName::parse("approved-npm").unwrap()),
            "view,add,promote,delete",
        )
        .await;
    let no_manage = app
        .key("no-manage", KeyScope::System, "view,add,promote,delete")
        .await;
    for key in [feed_key.as_str(), no_manage.as_str(), "", "unknown"] {
        for (method, path, body) in [
            (reqwest::Method::GET, "/api/management/feeds/list", None),
            (
                reqwest::Method::GET,
                "/api/management/feeds/get/approved-npm",
                None,
            ),
            (
                reqwest::Method::POST,
                "/api/management/feeds/create",
                Some(json!({"name": "x", "feedType": "npm"})),
            ),
            (
                reqwest::Method::POST,
                "/api/management/feeds/update/approved-npm",
                Some(json!({"active": false})),
            ),
            (
                reqwest::Method::DELETE,
                "/api/management/feeds/delete/approved-npm",
                None,
            ),
            (reqwest::Method::GET, "/api/api-keys/list", None),
            (
                reqwest::Method::POST,
                "/api/api-keys/create",
                Some(json!({"type": "System"})),
            ),
            (reqwest::Method::POST, "/api/api-keys/delete?id=1", None),
        ] {
            let reply = app.send(method.clone(), path, key, body).await;
            assert_eq!(
                (reply.status, reply.body.trim_end()),
                (403, FORBIDDEN),
                "{method} {path} with {key:?}"
            );
        }
    }
    assert_eq!(app.store.list_feeds().await.unwrap().len(), 2);
    assert!(app
        .store
        .list_feeds()
        .await
        .unwrap()
        .iter()
        .all(|f| f.active));
}

async fn the_api_keys_api_creates_lists_and_deletes_keys(app: TestApp) {
    let admin = app.npm_setup().await;
    app.group("npm", &["unapproved-npm", "approved-npm"]).await;

    // `pgutil apikeys create system` with no --apis sends every API.
    let created = app
        .post_json(
            "/api/api-keys/create",
            &admin,
            json!({"type": "System", "displayName": "ops", "systemApis": ["full-control", "feeds", "sbom", "sbom-upload"]}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let system = created.json();
    assert_eq!(
        keys(&system),
        [
            "displayName",
            "id",
            "key",
            "logging",
            "packagePermissions",
            "systemApis",
            "type"
        ]
    );
    assert_eq!(system["type"], "System");
    assert_eq!(system["logging"], "None");
    assert_eq!(system["systemApis"], json!(["full-control"]));
    assert!(system["id"].is_i64());
    let ops_key = system["key"].as_str().unwrap().to_owned();
    assert_eq!(ops_key.len(), 64);
    assert_eq!(
        app.get_json("/api/management/feeds/list", &ops_key)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // `pgutil apikeys create feed --group=npm --permissions=view,promote --name=bot
    //  --expiration=2030-01-01 --logging=Request`
    let created = app
        .post_json(
            "/api/api-keys/create",
            &admin,
            json!({"type": "Feed", "displayName": "bot", "description": "release bot",
                   "packagePermissions": ["view", "promote"], "feedGroup": "npm",
                   "expiration": "2030-01-01T00:00:00", "logging": "Request"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let bot = created.json();
    assert_eq!(bot["type"], "Feed");
    assert_eq!(bot["feedGroup"], "npm");
    assert_eq!(bot["packagePermissions"], json!(["view", "promote"]));
    assert_eq!(bot["expiration"], "2030-01-01T00:00:00Z");
    assert_eq!(bot["logging"], "Request");
    assert_eq!(bot["description"], "release bot");
    let bot_key = bot["key"].as_str().unwrap().to_owned();
    let promoted = app
        .promote(&bot_key, &crate::helpers::babel_promotion())
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.json()["user"], "bot");

    // A key text chosen by the caller (pgutil --key).
    let chosen = app
        .post_json(
            "/api/api-keys/create",
            &admin,
            json!({"type": "feed", "feed": "approved-npm", "key": CHOSEN_KEY}),
        )
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.body);
    assert_eq!(chosen.json()["key"], CHOSEN_KEY);
    assert_eq!(
        chosen.json()["packagePermissions"],
        json!(["view", "add", "promote", "delete"])
    );
    let duplicate = app
        .post_json(
            "/api/api-keys/create",
            &admin,
            json!({"type": "Feed", "feed": "approved-npm", "key": CHOSEN_KEY}),
        )
        .await;
    duplicate.assert_error(400, "That key text is already in use");

    let listed = app.get_json("/api/api-keys/list", &admin).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 4);
    for key in listed {
        assert!(key.get("key").is_none(), "a listing showed key text: {key}");
        assert!(key["id"].is_i64() && key["type"].is_string() && key["logging"].is_string());
    }
    // No column of the keys table holds a key's text.
    let stored = app
        .texts("SELECT name || ' ' || key_hash || ' ' || key_prefix || ' ' || COALESCE(description, '') FROM api_keys")
        .await;
    for text in [&ops_key, &bot_key, &CHOSEN_KEY.to_owned()] {
        assert!(
            stored.iter().all(|row| !row.contains(text.as_str())),
            "key text stored"
        );
    }
    // Nor any part of a chosen key, which (unlike a generated one) may be
    // guessable from its start; the listing shows none of it either.
    let start = &CHOSEN_KEY[..8];
    assert!(
        stored.iter().all(|row| !row.contains(start)),
        "the start of a chosen key was stored: {stored:?}"
    );
    let listing = app
        .send(reqwest::Method::GET, "/api/api-keys/list", &admin, None)
        .await;
    assert!(!listing.body.contains(start), "{}", listing.body);

    let id = bot["id"].as_i64().unwrap();
    let deleted = app
        .send(
            reqwest::Method::POST,
            &format!("/api/api-keys/delete?id={id}"),
            &ops_key,
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    app.get("/api/promotions/list", &bot_key)
        .await
        .assert_error(403, FORBIDDEN);
    assert_eq!(
        app.get_json("/api/api-keys/list", &admin)
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let again = app
        .send(
            reqwest::Method::POST,
            &format!("/api/api-keys/delete?id={id}"),
            &admin,
            None,
        )
        .await;
    again.assert_error(404, &format!("There is no API key with id {id}."));
    let bad = app
        .send(
            reqwest::Method::POST,
            "/api/api-keys/delete?id=abc",
            &admin,
            None,
        )
        .await;
    bad.assert_error(400, "Parameter \"id\" must be a key id");
    let missing = app
        .send(reqwest::Method::POST, "/api/api-keys/delete", &admin, None)
        .await;
    missing.assert_error(400, "Parameter \"id\" is required.");
}

async fn bad_api_key_requests_are_named(app: TestApp) {
    let admin = app.npm_setup().await;
    let before = app
        .texts("SELECT CAST(COUNT(*) AS TEXT) FROM api_keys")
        .await;
    for (body, expected) in [
        (json!({}), "Field \"type\" is required."),
        (
            json!({"type": "Personal", "user": "me"}),
            "only System and Feed keys exist here",
        ),
        (
            json!({"type": "Robot"}),
            "Field \"type\" must be System or Feed.",
        ),
        (
            json!({"type": "Feed"}),
            "a Feed key needs exactly one of them",
        ),
        (
            json!({"type": "Feed", "feed": "approved-npm", "feedGroup": "npm"}),
            "a Feed key needs exactly one of them",
        ),
        (
            json!({"type": "System", "feed": "approved-npm"}),
            "only for Feed keys",
        ),
        (
            json!({"type": "Feed", "feed": "approved-npm", "packagePermissions": ["view", "own"]}),
            "Field \"packagePermissions\" has \"own\"",
        ),
        (
            json!({"type": "Feed", "feed": "approved-npm", "packagePermissions": []}),
            "must name at least one permission",
        ),
        (
            json!({"type": "Feed", "feed": "approved-npm", "packagePermissions": "view"}),
            "",
        ),
        (
            json!({"type": "System", "systemApis": ["sbom"]}),
            "Field \"systemApis\" must include full-control or feeds.",
        ),
        (
            json!({"type": "System", "systemApis": ["root"]}),
            "Field \"systemApis\" has \"root\"",
        ),
        (
            json!({"type": "System", "expiration": "soon"}),
            "Field \"expiration\" must be a date and time",
        ),
        (
            json!({"type": "System", "logging": "Verbose"}),
            "Field \"logging\" must be None, Request, Response or Both.",
        ),
        (
            json!({"type": "System", "key": "s3cr3t-8"}),
            "Field \"key\" must be 32 to 200 characters long, not 8.",
        ),
        (
            json!({"type": "System", "key": "a key with spaces in it, long enough!!"}),
            "Field \"key\" must not contain spaces or control characters.",
        ),
        (
            json!({"type": "System", "expiration": "10000-01-01T00:00:00Z"}),
            "Field \"expiration\" must be a date and time",
        ),
        (
            json!({"type": "System", "expiration": "9999-12-31T23:00:00-05:00"}),
            "Field \"expiration\" must be a date and time between the years 1970 and 9999.",
        ),
        (
            json!({"type": "System", "expiration": "0001-01-01"}),
            "Field \"expiration\" must be a date and time between the years 1970 and 9999.",
        ),
        (
            json!({"type": "Feed", "feed": "nowhere"}),
            "Feed \"nowhere\" does not exist.",
        ),
        (
            json!({"type": "Feed", "feedGroup": "nowhere"}),
            "Feed group \"nowhere\" does not exist.",
        ),
        (
            json!({"type": 3}),
            "Field \"type\" must be a string, not a number.",
        ),
    ] {
        let reply = app
            .post_json("/api/api-keys/create", &admin, body.clone())
            .await;
        if expected.is_empty() {
            // A comma-separated string is accepted as a list too.
            assert_eq!(reply.status, 200, "{body}: {}", reply.body);
        } else {
            reply.assert_error(400, expected);
        }
    }
    let after = app
        .texts("SELECT CAST(COUNT(*) AS TEXT) FROM api_keys")
        .await;
    assert_eq!(
        after[0].parse::<i32>().unwrap(),
        before[0].parse::<i32>().unwrap() + 1
    );
}

async fn the_packages_api_lists_and_deletes_packages(app: TestApp) {
    let admin = app.npm_setup().await;
    let source = app
        .store
        .existing_feed(&FeedName::parse("unapproved-npm").unwrap())
        .await
        .unwrap();
    app.package(&source, Some("@babel"), "runtime", "7.22.0-rc.1", "")
        .await;
    app.package(&source, Some("@babel"), "runtime", "7.9.0", "")
        .await;
    app.package(&source, None, "left-pad", "1.3.0", "").await;
    let docker = app.feed("containers", FeedType::Docker).await;
    app.package(&docker, Some("library"), "nginx", "1.27", "")
        .await;

    let info = app.get_json("/api/packages/unapproved-npm", &admin).await;
    assert_eq!(
        info,
        json!({"id": source.id, "name": "unapproved-npm", "feedType": "npm", "packageType": "npm"})
    );

    let versions = app
        .get_json("/api/packages/unapproved-npm/versions", &admin)
        .await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 5);
    for file in versions {
        for required in ["purl", "name", "version", "published"] {
            assert!(file[required].is_string(), "{required} in {file}");
        }
        assert!(file["size"].is_i64() && file["listed"].is_boolean());
    }
    let tgz = versions
        .iter()
        .find(|v| v["qualifier"] == "file=runtime-7.21.0.tgz")
        .unwrap();
    assert_eq!(
        tgz["purl"],
        "pkg:npm/%40babel/runtime@7.21.0?file=runtime-7.21.0.tgz"
    );
    assert_eq!(tgz["group"], "@babel");
    assert_eq!(tgz["size"], 1024);
    assert_eq!(tgz["sha256"], "ab".repeat(32));

    // pgutil escapes every query value: '@' arrives as %40.
    let selected = app
        .get_json(
            "/api/packages/unapproved-npm/versions?group=%40babel&name=runtime&version=7.21.0",
            &admin,
        )
        .await;
    assert_eq!(selected.as_array().unwrap().len(), 2);
    let unscoped = app
        .get_json(
            "/api/packages/unapproved-npm/versions?name=left-pad",
            &admin,
        )
        .await;
    assert_eq!(unscoped[0]["purl"], "pkg:npm/left-pad@1.3.0");
    assert!(unscoped[0].get("group").is_none());

    let latest = |query: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let files = app
                .get_json(
                    &format!("/api/packages/unapproved-npm/latest{query}"),
                    admin,
                )
                .await;
            let mut versions: Vec<String> = files
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f["name"].as_str().unwrap(),
                        f["version"].as_str().unwrap()
                    )
                })
                .collect();
            versions.sort();
            versions.dedup();
            versions
        }
    };
    assert_eq!(latest("").await, ["left-pad 1.3.0", "runtime 7.22.0-rc.1"]);
    assert_eq!(
        latest("?stableOnly=true").await,
        ["left-pad 1.3.0", "runtime 7.21.0"]
    );
    assert_eq!(
        latest("?group=babel&name=runtime&stableOnly=true").await,
        ["runtime 7.21.0"]
    );

    let docker_files = app
        .get_json(
            "/api/packages/containers/versions?group=library&name=nginx",
            &admin,
        )
        .await;
    assert_eq!(docker_files[0]["name"], "library/nginx");
    assert_eq!(docker_files[0]["purl"], "pkg:docker/library/nginx@1.27");

    // Deleting: one file by qualifier, then a whole version.
    let path = "/api/packages/unapproved-npm/delete?name=runtime&version=7.21.0&group=%40babel";
    let one = app
        .send(
            reqwest::Method::POST,
            &format!("{path}&qualifier=file%3Druntime-7.21.0.sig"),
            &admin,
            None,
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(!app
        .records()
        .await
        .iter()
        .any(|r| r.ends_with("runtime-7.21.0.sig")));
    assert!(app
        .records()
        .await
        .iter()
        .any(|r| r.ends_with("runtime-7.21.0.tgz")));
    let all = app.send(reqwest::Method::POST, path, &admin, None).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(!app.records().await.iter().any(|r| r.contains("7.21.0")));
    let gone = app.send(reqwest::Method::POST, path, &admin, None).await;
    gone.assert_error(
        404,
        "Package @babel/runtime 7.21.0 was not found in feed \"unapproved-npm\".",
    );
    let bad = app
        .send(
            reqwest::Method::POST,
            "/api/packages/unapproved-npm/delete?name=runtime",
            &admin,
            None,
        )
        .await;
    bad.assert_error(400, "Parameter \"version\" is required.");
    let control = app
        .send(
            reqwest::Method::POST,
            "/api/packages/unapproved-npm/delete?name=left-pad&version=1.3.0&qualifier=a%00b",
            &admin,
            None,
        )
        .await;
    control.assert_error(
        400,
        "Parameter \"qualifier\" must not contain control characters.",
    );

    // Reading needs view, deleting needs delete, and scoped keys learn nothing
    // about feeds outside their scope.
    let viewer = app
        .key(
            "viewer",
            KeyScope::Feed(FeedName::parse("unapproved-npm").unwrap()),
            "view",
        )
        .await;
    assert_eq!(
        app.get_json("/api/packages/unapproved-npm/versions", &viewer)
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let refused = app
        .send(
            reqwest::Method::POST,
            "/api/packages/unapproved-npm/delete?name=left-pad&version=1.3.0",
            &viewer,
            None,
        )
        .await;
    refused.assert_error(403, FORBIDDEN);
    for path in [
        "/api/packages/approved-npm/versions",
        "/api/packages/no-such-feed",
        "/api/packages/no-such-feed/latest",
    ] {
        app.send(reqwest::Method::GET, path, &viewer, None)
            .await
            .assert_error(403, FORBIDDEN);
    }
    app.send(
        reqwest::Method::GET,
        "/api/packages/no-such-feed",
        &admin,
        None,
    )
    .await
    .assert_error(404, "Feed \"no-such-feed\" does not exist.");
    app.send(
        reqwest::Method::GET,
        "/api/packages/bad%20name/versions",
        &admin,
        None,
    )
    .await
    .assert_error(400, "The feed name in the path must be 1 to 100 letters");
    app.send(
        reqwest::Method::GET,
        "/api/packages/%FF/versions",
        &admin,
        None,
    )
    .await
    .assert_error(
        400,
        "The feed name in the path is not valid percent-encoded UTF-8.",
    );
}
