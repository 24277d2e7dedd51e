//! Connectors (contract section 16, issue 25): the package-approval workflow
//! end to end. Upstreams are real: a second Promoter serving a public feed
//! for most tests, Verdaccio (npm) and pypiserver (PyPI) for one end-to-end
//! test each, and for the single-flight test a small registry of the test's
//! own that counts what it is asked (a third party's server, not ours). The
//! clients on top are the real npm and pip; NuGet is replayed as
//! NuGet.Client sends it (see tests/api/nuget.rs).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use promoter::domain::{FeedName, FeedType};
use promoter::store::FeedSettings;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::content::{npm_tgz, nupkg};
use crate::helpers::{Backend, Reply, TestApp};
use crate::maven::Maven;
use crate::npm::{node_require, Npm};
use crate::pypi::{dists, index_url, is_wheel, pip_install, said};

each_backend!(
    npm_request_cache_review_promote_install,
    pypi_request_cache_review_promote_install,
    nuget_versions_and_packages_come_through_a_connector,
    maven_artifacts_come_through_a_connector,
    failures_are_clear_and_store_nothing,
    unsafe_connectors_are_refused_and_credentials_never_shown,
    concurrent_first_downloads_fetch_once,
    verdaccio_upstream_end_to_end,
    pypiserver_upstream_end_to_end,
);

/// A Promoter serving one public feed: the upstream.
async fn upstream(backend: Backend, feed: &str, feed_type: FeedType) -> (TestApp, String) {
    let upstream = TestApp::spawn(backend).await;
    upstream
        .store
        .create_feed(
            &FeedName::parse(feed).unwrap(),
            feed_type,
            FeedSettings {
                public: true,
                ..FeedSettings::default()
            },
        )
        .await
        .unwrap();
    let key = upstream.system_key().await;
    (upstream, key)
}

/// Uploads a file to `feed` as pgutil does.
async fn upload(app: &TestApp, key: &str, feed: &str, file_name: &str, bytes: Vec<u8>) {
    let reply = Reply::read(
        app.client
            .put(app.url(&format!("/api/packages/{feed}/upload/{file_name}")))
            .header("X-ApiKey", key)
            .body(bytes)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Creates a feed through the management API.
async fn create_feed(app: &TestApp, key: &str, body: Value) -> Reply {
    app.json_post("/api/management/feeds/create", key, &body)
        .await
}

async fn get(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .basic_auth("api", Some(key))
        .send()
        .await
        .unwrap()
}

async fn files_of(app: &TestApp, key: &str, feed: &str, name: &str) -> Vec<Value> {
    let response = get(
        app,
        &format!("/api/packages/{feed}/versions?name={name}"),
        key,
    )
    .await;
    assert_eq!(response.status(), 200);
    let listed: Value = response.json().await.unwrap();
    listed.as_array().unwrap().clone()
}

/// `npm install NAME@VERSION` into a new project of `npm`'s works, and
/// installs that version.
fn installs(npm: &Npm, project: &str, name: &str, version: &str) {
    let project = npm.project(project);
    npm.ok(&project, &["install", &format!("{name}@{version}")]);
    assert_eq!(installed_version(&project, name), version);
}

/// A file's bytes, downloaded with `key`.
async fn downloaded(app: &TestApp, path: &str, key: &str) -> axum::body::Bytes {
    let response = get(app, path, key).await;
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap()
}

/// The version of `package` npm installed in `project`.
fn installed_version(project: &std::path::Path, package: &str) -> String {
    let manifest = project
        .join("node_modules")
        .join(package)
        .join("package.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    manifest["version"].as_str().unwrap().to_owned()
}

/// Creates the workflow's two feeds: `unapproved` with a connector to
/// `upstream`, and `approved` without.
async fn approval_feeds(
    app: &TestApp,
    key: &str,
    feed_type: &str,
    (unapproved, approved): (&str, &str),
    upstream: &str,
) {
    for body in [
        json!({"name": unapproved, "feedType": feed_type, "connectors": [{"url": upstream}]}),
        json!({"name": approved, "feedType": feed_type}),
    ] {
        let created = create_feed(app, key, body).await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
}

/// Promotes, expecting success; the answer.
async fn promoted(
    app: &TestApp,
    key: &str,
    from: &str,
    to: &str,
    name: &str,
    version: &str,
) -> Reply {
    let reply = app.promote(key, &promotion(from, to, name, version)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
}

/// `pip install Hello.Promoter==1.0.0` from `feed` works and installs it.
fn pip_installs_hello(app: &TestApp, key: &str, feed: &str, work: &std::path::Path) {
    let (output, target) = pip_install(
        work,
        &index_url(app, feed, Some(key)),
        &["Hello.Promoter==1.0.0"],
    );
    assert!(output.status.success(), "{}", crate::pypi::text(&output));
    assert_eq!(said(&target), "hello");
}

fn promotion(from: &str, to: &str, name: &str, version: &str) -> Value {
    json!({"fromFeed": from, "toFeed": to, "packageName": name, "version": version})
}

async fn npm_request_cache_review_promote_install(backend: Backend) {
    let (upstream, upstream_key) = upstream(backend, "npmjs", FeedType::Npm).await;
    let (first, second) = (npm_tgz("left-pad", "1.0.0"), npm_tgz("left-pad", "1.1.0"));
    upload(
        &upstream,
        &upstream_key,
        "npmjs",
        "left-pad-1.0.0.tgz",
        first.clone(),
    )
    .await;
    upload(
        &upstream,
        &upstream_key,
        "npmjs",
        "left-pad-1.1.0.tgz",
        second.clone(),
    )
    .await;
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let registry = format!("{}/npm/npmjs/", upstream.address);
    let created = create_feed(
        &app,
        &key,
        json!({"name": "unapproved-npm", "feedType": "npm", "connectors": [{"url": registry}]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(
        created.json()["connectors"],
        json!([{"url": registry, "credentials": "none"}])
    );
    let created = create_feed(
        &app,
        &key,
        json!({"name": "approved-npm", "feedType": "npm"}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);

    // A developer asks for a public package: it lands in unapproved-npm.
    let developer = Npm::new(&app, "unapproved-npm", Some(&key));
    installs(&developer, "wants-left-pad", "left-pad", "1.0.0");
    let tarball = downloaded(
        &app,
        "/npm/unapproved-npm/left-pad/-/left-pad-1.0.0.tgz",
        &key,
    )
    .await;
    assert_eq!(tarball.as_ref(), first.as_slice());
    let files = files_of(&app, &key, "unapproved-npm", "left-pad").await;
    assert_eq!(
        files.len(),
        1,
        "only what was asked for is cached: {files:?}"
    );
    let origin = format!("{registry}left-pad/-/left-pad-1.0.0.tgz");
    assert_eq!(files[0]["cached"], true);
    assert_eq!(files[0]["cachedFrom"], origin.as_str());
    assert_eq!(
        app.texts("SELECT url FROM connector_fetches").await,
        std::slice::from_ref(&origin)
    );
    // Both versions show, with tarballs on this feed.
    let packument: Value = get(&app, "/npm/unapproved-npm/left-pad", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(packument["dist-tags"]["latest"], "1.1.0");
    assert!(packument["versions"]["1.1.0"]["dist"]["tarball"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/npm/unapproved-npm/", app.address)));

    // Review, then promote: the history says where the bytes came from.
    let reply = promoted(
        &app,
        &key,
        "unapproved-npm",
        "approved-npm",
        "left-pad",
        "1.0.0",
    )
    .await;
    assert!(reply.json().get("fetchedFrom").is_none(), "{}", reply.body);
    // A version nobody downloaded yet is cached first, then promoted.
    let reply = promoted(
        &app,
        &key,
        "unapproved-npm",
        "approved-npm",
        "left-pad",
        "1.1.0",
    )
    .await;
    let second_origin = format!("{registry}left-pad/-/left-pad-1.1.0.tgz");
    assert_eq!(reply.json()["fetchedFrom"], second_origin.as_str());
    let mut recorded = app
        .texts("SELECT fetched_from FROM promotions ORDER BY id")
        .await;
    recorded.sort();
    assert_eq!(recorded, [origin, second_origin]);
    let history: Value = get(&app, "/api/promotions/list?toFeed=approved-npm", &key)
        .await
        .json()
        .await
        .unwrap();
    assert!(history.to_string().contains("fetchedFrom"), "{history}");

    // Developers install from approved-npm, which has no connector.
    let consumer = Npm::new(&app, "approved-npm", Some(&key));
    installs(&consumer, "uses-approved", "left-pad", "1.1.0");
    let approved = downloaded(
        &app,
        "/npm/approved-npm/left-pad/-/left-pad-1.1.0.tgz",
        &key,
    )
    .await;
    assert_eq!(approved.as_ref(), second.as_slice());
}

async fn pypi_request_cache_review_promote_install(backend: Backend) {
    let (upstream, upstream_key) = upstream(backend, "pypi-org", FeedType::Pypi).await;
    let files = dists();
    for file in files.stable.iter().chain(&files.candidate) {
        let name = file.file_name().unwrap().to_str().unwrap();
        upload(
            &upstream,
            &upstream_key,
            "pypi-org",
            name,
            std::fs::read(file).unwrap(),
        )
        .await;
    }
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    // The index URL as pip takes it, without the trailing slash.
    let index = format!("{}/pypi/pypi-org/simple", upstream.address);
    approval_feeds(
        &app,
        &key,
        "pypi",
        ("unapproved-pypi", "approved-pypi"),
        &index,
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    pip_installs_hello(&app, &key, "unapproved-pypi", work.path());
    let cached = files_of(&app, &key, "unapproved-pypi", "hello-promoter").await;
    assert_eq!(cached.len(), 1, "pip took one wheel: {cached:?}");
    assert_eq!(cached[0]["cached"], true);
    let wheel = files.stable.iter().find(|f| is_wheel(f)).unwrap();
    assert_eq!(
        cached[0]["sha256"],
        hex::encode(sha2::Sha256::digest(std::fs::read(wheel).unwrap()))
    );

    // A dry run of a version never downloaded caches it and says so.
    let mut dry = promotion(
        "unapproved-pypi",
        "approved-pypi",
        "Hello.Promoter",
        "1.1.0rc1",
    );
    dry["dryRun"] = json!(true);
    let reply = app.promote(&key, &dry).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["dryRun"], true);
    assert!(reply.json()["fetchedFrom"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/pypi/pypi-org/download/", upstream.address)));
    assert_eq!(
        files_of(&app, &key, "approved-pypi", "hello-promoter").await,
        Vec::<Value>::new()
    );

    promoted(
        &app,
        &key,
        "unapproved-pypi",
        "approved-pypi",
        "Hello.Promoter",
        "1.0.0",
    )
    .await;
    pip_installs_hello(&app, &key, "approved-pypi", work.path());
}

async fn nuget_versions_and_packages_come_through_a_connector(backend: Backend) {
    let (upstream, upstream_key) = upstream(backend, "nuget-org", FeedType::Nuget).await;
    let (older, newer) = (
        nupkg("Acme.Widgets", "1.0.0"),
        nupkg("Acme.Widgets", "1.1.0"),
    );
    upload(
        &upstream,
        &upstream_key,
        "nuget-org",
        "acme.widgets.1.0.0.nupkg",
        older.clone(),
    )
    .await;
    upload(
        &upstream,
        &upstream_key,
        "nuget-org",
        "acme.widgets.1.1.0.nupkg",
        newer.clone(),
    )
    .await;
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let index = format!("{}/nuget/nuget-org/v3/index.json", upstream.address);
    approval_feeds(
        &app,
        &key,
        "nuget",
        ("nuget-unapproved", "nuget-approved"),
        &index,
    )
    .await;
    // What restore asks (NuGet.Client's HttpFileSystemBasedFindPackageByIdResource).
    let flat = "/nuget/nuget-unapproved/v3/flatcontainer/acme.widgets";
    let versions: Value = get(&app, &format!("{flat}/index.json"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions, json!({"versions": ["1.0.0", "1.1.0"]}));
    let package = get(
        &app,
        &format!("{flat}/1.0.0/acme.widgets.1.0.0.nupkg"),
        &key,
    )
    .await;
    assert_eq!(package.status(), 200);
    assert_eq!(package.bytes().await.unwrap().as_ref(), older.as_slice());
    let cached = files_of(&app, &key, "nuget-unapproved", "Acme.Widgets").await;
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0]["cached"], true);

    let reply = promoted(
        &app,
        &key,
        "nuget-unapproved",
        "nuget-approved",
        "Acme.Widgets",
        "1.1.0",
    )
    .await;
    assert!(reply.json()["fetchedFrom"]
        .as_str()
        .unwrap()
        .ends_with("/acme.widgets/1.1.0/acme.widgets.1.1.0.nupkg"));
    let approved = downloaded(
        &app,
        "/nuget/nuget-approved/v3/flatcontainer/acme.widgets/1.1.0/acme.widgets.1.1.0.nupkg",
        &key,
    )
    .await;
    assert_eq!(approved.as_ref(), newer.as_slice());
}

async fn maven_artifacts_come_through_a_connector(backend: Backend) {
    let (upstream, upstream_key) = upstream(backend, "central", FeedType::Maven).await;
    let publisher = Maven::new(&upstream, "central", &upstream_key);
    for version in ["1.0", "2.0"] {
        let jar = publisher.jar(
            &format!("widget-{version}.jar"),
            &format!("widget {version}"),
        );
        publisher.deploy(&upstream, "central", &jar, version);
    }
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let repository = format!("{}/maven2/central", upstream.address);
    approval_feeds(
        &app,
        &key,
        "maven",
        ("maven-unapproved", "maven-approved"),
        &repository,
    )
    .await;
    // mvn with strict checksums: the metadata merged, the jar and pom cached.
    let developer = Maven::new(&app, "maven-unapproved", &key);
    let output = developer.get("m2-asks", "1.0");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let cached = files_of(&app, &key, "maven-unapproved", "widget").await;
    assert!(
        cached.len() >= 2 && cached.iter().all(|f| f["cached"] == true),
        "{cached:?}"
    );
    let metadata = downloaded(
        &app,
        "/maven2/maven-unapproved/org/acme/widget/maven-metadata.xml",
        &key,
    )
    .await;
    let metadata = String::from_utf8_lossy(&metadata);
    assert!(
        metadata.contains("<version>1.0</version>") && metadata.contains("<version>2.0</version>"),
        "{metadata}"
    );
    // Version 2.0, never downloaded, is fetched (pom and jar) and promoted.
    let mut body = promotion("maven-unapproved", "maven-approved", "widget", "2.0");
    body["group"] = json!("org.acme");
    let reply = app.promote(&key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.json()["fetchedFrom"]
            .as_str()
            .unwrap()
            .starts_with(&repository),
        "{}",
        reply.body
    );
    let consumer = Maven::new(&app, "maven-approved", &key);
    let output = consumer.get("m2-uses", "2.0");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// An upstream that hangs up on every connection, as a dying server does;
/// held for the rest of the test, so no other test's server can take its
/// port.
async fn dead_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            drop(connection);
        }
    });
    address
}

/// A free port for a registry started by the test (Verdaccio, pypiserver).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn failures_are_clear_and_store_nothing(backend: Backend) {
    let (upstream, upstream_key) = upstream(backend, "npmjs", FeedType::Npm).await;
    upload(
        &upstream,
        &upstream_key,
        "npmjs",
        "left-pad-2.0.0.tgz",
        npm_tgz("left-pad", "2.0.0"),
    )
    .await;
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let registry = format!("{}/npm/npmjs/", upstream.address);
    let dead = dead_upstream().await;
    for (name, url) in [("unapproved-npm", &registry), ("dead-npm", &dead)] {
        let created = create_feed(
            &app,
            &key,
            json!({"name": name, "feedType": "npm", "connectors": [{"url": url}]}),
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.body);
        upload(
            &app,
            &key,
            name,
            "left-pad-0.9.0.tgz",
            npm_tgz("left-pad", "0.9.0"),
        )
        .await;
    }

    // An upstream serving bytes that do not match its own integrity: 502,
    // logged, nothing stored.
    let sha = upstream
        .texts("SELECT blob_sha256 FROM package_files")
        .await
        .remove(0);
    let blob = crate::helpers::blob_path(&upstream.database.url, &sha);
    crate::helpers::tamper_with(&blob);
    let tampered = get(
        &app,
        "/npm/unapproved-npm/left-pad/-/left-pad-2.0.0.tgz",
        &key,
    )
    .await;
    assert_eq!(tampered.status(), 502);
    let error: Value = tampered.json().await.unwrap();
    assert_eq!(
        error["error"],
        format!("Connector {registry} served left-pad-2.0.0.tgz with bytes that do not match its own SHA-512 digest, so nothing was stored.")
    );
    assert_eq!(
        files_of(&app, &key, "unapproved-npm", "left-pad")
            .await
            .len(),
        1
    );
    assert!(app
        .texts("SELECT url FROM connector_fetches")
        .await
        .is_empty());
    let refused = app
        .promote(
            &key,
            &promotion("unapproved-npm", "dead-npm", "left-pad", "2.0.0"),
        )
        .await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(app.texts("SELECT name FROM promotions").await.is_empty());

    // An upstream that cannot be reached: the feed's own versions, with a
    // Warning; what only it has is a 502 naming it.
    let response = get(&app, "/npm/dead-npm/left-pad", &key).await;
    assert_eq!(response.status(), 200);
    let warning = response.headers()["warning"].to_str().unwrap().to_owned();
    assert!(
        warning.starts_with("199 promoter \"") && warning.contains(&dead),
        "{warning}"
    );
    let packument: Value = response.json().await.unwrap();
    assert_eq!(
        packument["versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["0.9.0"]
    );
    let missing = get(&app, "/npm/dead-npm/left-pad/-/left-pad-1.0.0.tgz", &key).await;
    assert_eq!(missing.status(), 502);
    let error: Value = missing.json().await.unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("Version 1.0.0 of left-pad is only offered by connector {dead}, which could not be reached")),
        "{error}"
    );
    let absent = get(&app, "/npm/dead-npm/right-pad", &key).await;
    assert_eq!(absent.status(), 502);
    // The local version still installs.
    let npm = Npm::new(&app, "dead-npm", Some(&key));
    let project = npm.project("offline");
    npm.ok(&project, &["install", "left-pad@0.9.0"]);
}

async fn unsafe_connectors_are_refused_and_credentials_never_shown(backend: Backend) {
    // A server without --connector-allow-private.
    let strict = TestApp::spawn_allowing_private(backend, false).await;
    let key = strict.system_key().await;
    let before = strict.texts("SELECT name FROM feeds").await;
    let refused = create_feed(
        &strict,
        &key,
        json!({"name": "inside", "feedType": "npm", "connectors": [{"url": "http://127.0.0.1:4873/"}]}),
    )
    .await;
    refused.assert_error(
        400,
        "Field \"connectors[0].url\" names 127.0.0.1, a loopback address; connectors may only call public addresses unless the server runs with --connector-allow-private.",
    );
    let refused = create_feed(
        &strict,
        &key,
        json!({"name": "files", "feedType": "universal", "connectors": [{"url": "https://registry.npmjs.org/"}]}),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("universal feed has no connectors"),
        "{}",
        refused.body
    );
    let refused = create_feed(
        &strict,
        &key,
        json!({"name": "odd", "feedType": "npm", "connectors": [{"url": "ftp://h/"}]}),
    )
    .await;
    refused.assert_error(
        400,
        "Field \"connectors[0].url\" must be an http:// or https:// URL with a host.",
    );
    assert_eq!(strict.texts("SELECT name FROM feeds").await, before);
    // A private connector set some other way (the command with its own
    // flag) is still refused on every connection by this server.
    let (upstream, upstream_key) = upstream(backend, "npmjs", FeedType::Npm).await;
    upload(
        &upstream,
        &upstream_key,
        "npmjs",
        "left-pad-1.0.0.tgz",
        npm_tgz("left-pad", "1.0.0"),
    )
    .await;
    let inside = promoter::domain::Connector::new(
        &format!("{}/npm/npmjs/", upstream.address),
        None,
        None,
        None,
        "connector",
        "connector",
    )
    .unwrap();
    strict
        .store
        .create_feed(
            &FeedName::parse("inside-npm").unwrap(),
            FeedType::Npm,
            FeedSettings {
                connectors: promoter::domain::Connectors(vec![inside].into()),
                ..FeedSettings::default()
            },
        )
        .await
        .unwrap();
    let refused = get(&strict, "/npm/inside-npm/left-pad", &key).await;
    assert_eq!(refused.status(), 502);
    let error: Value = refused.json().await.unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.contains("a loopback address; connectors may only call public addresses unless the server runs with --connector-allow-private"),
        "{error}"
    );
    assert!(strict
        .texts("SELECT url FROM connector_fetches")
        .await
        .is_empty());

    // Credentials are kept to be sent, and never shown.
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let created = create_feed(
        &app,
        &key,
        json!({"name": "private-npm", "feedType": "npm",
            "connectors": [{"url": "http://127.0.0.1:4873/", "token": "s3cret-token"}]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    for path in [
        "/api/management/feeds/get/private-npm",
        "/api/management/feeds/list",
    ] {
        let shown = get(&app, path, &key).await.text().await.unwrap();
        assert!(shown.contains("\"credentials\":\"token\""), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    // Removed with an empty list.
    let updated = app
        .json_post(
            "/api/management/feeds/update/private-npm",
            &key,
            &json!({"connectors": []}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json().get("connectors"), None);
}

/// A registry of the test's own that serves `slow-pad` 1.0.0 and 1.1.0,
/// counts tarball requests and answers each slowly, so that concurrent
/// first downloads overlap.
async fn counting_registry() -> (String, Arc<AtomicUsize>) {
    use axum::extract::Path as Segment;
    use axum::routing::get as route;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let versions: serde_json::Map<String, Value> = ["1.0.0", "1.1.0"]
        .iter()
        .map(|version| {
            let integrity = format!(
                "sha512-{}",
                base64_of(&Sha512::digest(npm_tgz("slow-pad", version)))
            );
            let manifest = json!({"name": "slow-pad", "version": version, "dist": {
                "tarball": format!("{address}/slow-pad/-/slow-pad-{version}.tgz"),
                "integrity": integrity}});
            ((*version).to_owned(), manifest)
        })
        .collect();
    let packument =
        json!({"name": "slow-pad", "dist-tags": {"latest": "1.1.0"}, "versions": versions});
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let router = axum::Router::new()
        .route(
            "/slow-pad",
            route(move || async move { axum::Json(packument) }),
        )
        .route(
            "/slow-pad/-/{file}",
            route(move |Segment(file): Segment<String>| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let version = file
                        .trim_start_matches("slow-pad-")
                        .trim_end_matches(".tgz");
                    npm_tgz("slow-pad", version)
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (address, count)
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn concurrent_first_downloads_fetch_once(backend: Backend) {
    let (registry, count) = counting_registry().await;
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let created = create_feed(
        &app,
        &key,
        json!({"name": "unapproved-npm", "feedType": "npm", "connectors": [{"url": registry}]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let download = |address: String, version: &'static str| {
        let key = key.clone();
        async move {
            let response = reqwest::Client::new()
                .get(format!(
                    "{address}/npm/unapproved-npm/slow-pad/-/slow-pad-{version}.tgz"
                ))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (response.status(), response.bytes().await.unwrap())
        }
    };
    // Eight at once on one server: one fetch.
    let downloads = (0..8).map(|_| download(app.address.clone(), "1.0.0"));
    for (status, bytes) in futures::future::join_all(downloads).await {
        assert_eq!(status, 200);
        assert_eq!(bytes.as_ref(), npm_tgz("slow-pad", "1.0.0").as_slice());
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "one fetch for eight downloads"
    );
    assert_eq!(
        app.texts("SELECT url FROM connector_fetches").await.len(),
        1
    );
    // Two replicas at once: each may fetch, one record, every answer right.
    let replica = app.another_instance().await;
    let downloads = (0..8).map(|i| {
        let address = if i % 2 == 0 {
            app.address.clone()
        } else {
            replica.clone()
        };
        download(address, "1.1.0")
    });
    for (status, bytes) in futures::future::join_all(downloads).await {
        assert_eq!(status, 200);
        assert_eq!(bytes.as_ref(), npm_tgz("slow-pad", "1.1.0").as_slice());
    }
    assert!(
        count.load(Ordering::SeqCst) <= 3,
        "at most one fetch per replica"
    );
    let files = files_of(&app, &key, "unapproved-npm", "slow-pad").await;
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        app.texts("SELECT url FROM connector_fetches").await.len(),
        2
    );
}

/// A process stopped when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `url` answers 200, or fails the test.
async fn wait_for(url: &str, what: &str) {
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(url).await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not start at {url}");
}

fn required_tool(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} must name the program: run the tests through scripts/test, which installs it")
    })
}

async fn verdaccio_upstream_end_to_end(backend: Backend) {
    let verdaccio = required_tool("PROMOTER_TEST_VERDACCIO");
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage: {storage}\nauth:\n  htpasswd:\n    file: {htpasswd}\nuplinks: {{}}\n\
             packages:\n  '**':\n    access: $all\n    publish: $authenticated\n\
             log: {{ type: stdout, format: pretty, level: warn }}\n",
            storage = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display()
        ),
    )
    .unwrap();
    let _verdaccio = Running(
        Command::new(&verdaccio)
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Verdaccio could not be started"),
    );
    let registry = format!("http://127.0.0.1:{port}/");
    wait_for(&format!("{registry}-/ping"), "Verdaccio").await;
    let user: Value = reqwest::Client::new()
        .put(format!("{registry}-/user/org.couchdb.user:publisher"))
        .json(&json!({"name": "publisher", "password": "publisher-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = user["token"].as_str().expect("Verdaccio gave a token");
    let publisher = Npm::at(&registry, Some(token));
    let package = publisher.package("lodash-like", "1.0.0", "like lodash");
    publisher.ok(&package, &["publish"]);

    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    approval_feeds(
        &app,
        &key,
        "npm",
        ("unapproved-npm", "approved-npm"),
        &registry,
    )
    .await;
    let developer = Npm::new(&app, "unapproved-npm", Some(&key));
    let project = developer.project("asks");
    developer.ok(&project, &["install", "lodash-like@1.0.0"]);
    assert_eq!(node_require(&project, "lodash-like"), "like lodash");
    promoted(
        &app,
        &key,
        "unapproved-npm",
        "approved-npm",
        "lodash-like",
        "1.0.0",
    )
    .await;
    let consumer = Npm::new(&app, "approved-npm", Some(&key));
    let project = consumer.project("installs");
    consumer.ok(&project, &["install", "lodash-like@1.0.0"]);
    assert_eq!(node_require(&project, "lodash-like"), "like lodash");
    let ours = get(
        &app,
        "/npm/approved-npm/lodash-like/-/lodash-like-1.0.0.tgz",
        &key,
    )
    .await
    .bytes()
    .await
    .unwrap();
    let theirs = reqwest::get(format!("{registry}lodash-like/-/lodash-like-1.0.0.tgz"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(ours, theirs, "the bytes are the upstream's");
}

async fn pypiserver_upstream_end_to_end(backend: Backend) {
    let pypi_server = required_tool("PROMOTER_TEST_PYPISERVER");
    let packages = tempfile::tempdir().unwrap();
    let files = dists();
    for file in &files.stable {
        std::fs::copy(file, packages.path().join(file.file_name().unwrap())).unwrap();
    }
    let port = closed_port();
    let _pypiserver = Running(
        Command::new(&pypi_server)
            .args([
                "run",
                "-p",
                &port.to_string(),
                "-i",
                "127.0.0.1",
                "-a",
                ".",
                "-P",
                ".",
            ])
            .arg(packages.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pypiserver could not be started"),
    );
    let index = format!("http://127.0.0.1:{port}/simple/");
    wait_for(&index, "pypiserver").await;

    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    approval_feeds(
        &app,
        &key,
        "pypi",
        ("unapproved-pypi", "approved-pypi"),
        &index,
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    pip_installs_hello(&app, &key, "unapproved-pypi", work.path());
    promoted(
        &app,
        &key,
        "unapproved-pypi",
        "approved-pypi",
        "Hello.Promoter",
        "1.0.0",
    )
    .await;
    pip_installs_hello(&app, &key, "approved-pypi", work.path());
    let wheel = files.stable.iter().find(|f| is_wheel(f)).unwrap();
    let name = wheel.file_name().unwrap().to_str().unwrap();
    let ours = get(
        &app,
        &format!("/pypi/approved-pypi/download/hello-promoter/1.0.0/{name}"),
        &key,
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(ours.as_ref(), std::fs::read(wheel).unwrap().as_slice());
}
