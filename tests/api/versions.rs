//! Contract section 11: each feed type's versions in its ecosystem's order,
//! through `latest` and `latest-stable` (dry-run promotions), the packages
//! API (`/latest`, `stableOnly`, `/versions`), and uploads refusing what the
//! ecosystem's client would refuse; on both backends.

use promoter::domain::FeedType;
use serde_json::json;

use crate::content::{npm_tgz, nupkg, put};
use crate::helpers::TestApp;
use promoter::domain::{Identifier, PackageId};
use promoter::store::{NewFile, NewPackage, Store};

both_backends!(
    latest_follows_each_ecosystems_order,
    the_packages_api_lists_versions_in_the_ecosystems_order,
    uploads_refuse_versions_the_client_would_refuse,
    one_version_spelled_two_ways_is_one_version,
    keys_stored_under_the_old_rules_are_brought_up_to_date,
);

/// Per feed type: the versions in the source feed, then what `latest` and
/// `latest-stable` must name (the ecosystem's own tools' answer).
const CASES: &[(FeedType, &[&str], &str, &str)] = &[
    // The issue's own examples: PEP 440, not SemVer.
    (
        FeedType::Pypi,
        &["2.0.0", "2.0.0rc1", "1.9", "2.0.0.post1", "2.1.dev3"],
        "2.1.dev3",
        "2.0.0.post1",
    ),
    (
        FeedType::Pypi,
        &["1.0", "1.0rc2", "1.0b1", "0.9"],
        "1.0",
        "1.0",
    ),
    (
        FeedType::Npm,
        &["1.0.0-rc.1", "1.0.0", "1.0.0-beta.11", "0.10.0", "0.9.0"],
        "1.0.0",
        "1.0.0",
    ),
    (
        FeedType::Npm,
        &["2.0.0-alpha", "1.10.0", "1.9.0"],
        "2.0.0-alpha",
        "1.10.0",
    ),
    (
        FeedType::Nuget,
        &["1.0.0-beta.11", "1.0.0-beta.2", "1.0.0-RC.1", "0.9.10"],
        "1.0.0-RC.1",
        "0.9.10",
    ),
    (
        FeedType::Nuget,
        &["1.0.0.1", "1.0.0", "1.0.0-zeta"],
        "1.0.0.1",
        "1.0.0.1",
    ),
    (
        FeedType::Maven,
        &["1.0-SNAPSHOT", "1.0-rc1", "1.0", "1.0-sp1", "0.9"],
        "1.0-sp1",
        "1.0-sp1",
    ),
    (
        FeedType::Maven,
        &["2.0-SNAPSHOT", "2.0-beta", "1.10", "1.9"],
        "2.0-SNAPSHOT",
        "1.10",
    ),
    (
        FeedType::Debian,
        &["1.0~rc1-1", "1.0-1", "1:0.9-1", "1.0-1+b1"],
        "1:0.9-1",
        "1:0.9-1",
    ),
    (
        FeedType::Rpm,
        &["1.0~rc1-1", "1.0-1", "1.0^git1-1", "1.0.1-1"],
        "1.0.1-1",
        "1.0.1-1",
    ),
    (
        FeedType::Rubygems,
        &["1.0.0.pre", "1.0.a", "0.9.9", "1.0.0.rc1"],
        "1.0.0.rc1",
        "0.9.9",
    ),
    (
        FeedType::Conda,
        &["1.1dev1", "1.1.0", "1.1.0post1", "1.0"],
        "1.1.0post1",
        "1.1.0post1",
    ),
    (
        FeedType::Cran,
        &["1.0-1", "1.0-10", "1.0-2"],
        "1.0-10",
        "1.0-10",
    ),
    (
        FeedType::Apk,
        &["1.0_rc1-r0", "1.0-r0", "1.0-r1", "1.0_p1-r0"],
        "1.0_p1-r0",
        "1.0_p1-r0",
    ),
    // Docker tags have no order: `latest` names the tag `latest`.
    (
        FeedType::Docker,
        &["v2", "latest", "zzz"],
        "latest",
        "latest",
    ),
];

async fn latest_follows_each_ecosystems_order(app: TestApp) {
    let key = app.system_key().await;
    for (n, (feed_type, versions, latest, stable)) in CASES.iter().enumerate() {
        let (from, to) = (format!("from-{n}"), format!("to-{n}"));
        let source = app.feed(&from, *feed_type).await;
        app.feed(&to, *feed_type).await;
        for version in *versions {
            app.package(&source, None, "pkg", version, "").await;
        }
        let asked_for = [
            ("latest", latest),
            ("latest-unstable", latest),
            ("latest-stable", stable),
        ];
        for (asked, expected) in asked_for {
            let reply = app
                .promote(
                    &key,
                    &json!({"fromFeed": from, "toFeed": to, "name": "pkg", "version": asked, "dryRun": true}),
                )
                .await;
            assert_eq!(reply.status, 200, "{feed_type} {asked}: {}", reply.body);
            assert_eq!(
                reply.json()["version"],
                *expected,
                "{feed_type} {asked} of {versions:?}"
            );
        }
        for (query, expected) in [("", latest), ("&stableOnly=true", stable)] {
            let reply = app
                .get(
                    &format!("/api/packages/{from}/latest?name=pkg{query}"),
                    &key,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let listed = reply.json();
            assert_eq!(
                listed[0]["version"], *expected,
                "{feed_type} /latest{query} of {versions:?}"
            );
        }
    }
    // Docker without a `latest` tag: `latest` names nothing.
    let source = app.feed("tags", FeedType::Docker).await;
    app.feed("tags-out", FeedType::Docker).await;
    app.package(&source, Some("library"), "nginx", "1.27", "")
        .await;
    let reply = app
        .promote(
            &key,
            &json!({"fromFeed": "tags", "toFeed": "tags-out", "name": "library/nginx", "version": "latest", "dryRun": true}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

async fn the_packages_api_lists_versions_in_the_ecosystems_order(app: TestApp) {
    let key = app.system_key().await;
    let feed = app.feed("python", FeedType::Pypi).await;
    for version in ["1.10", "1.0.post1", "1.0", "1.9", "1.0rc1", "1.0.dev0"] {
        app.package(&feed, None, "Django", version, "").await;
    }
    let reply = app
        .get("/api/packages/python/versions?name=django", &key)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listed: Vec<String> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        ["1.0.dev0", "1.0rc1", "1.0", "1.0.post1", "1.9", "1.10"]
    );
}

async fn uploads_refuse_versions_the_client_would_refuse(app: TestApp) {
    let key = app.system_key().await;
    app.feed("npm-in", FeedType::Npm).await;
    app.feed("nuget-in", FeedType::Nuget).await;
    let refused = put(
        &app,
        "/api/packages/npm-in/upload",
        &key,
        npm_tgz("left-pad", "1.0"),
    )
    .await;
    refused.assert_error(
        400,
        "The package's version \"1.0\" is not a SemVer 2.0.0 version (such as 1.2.3 or 1.2.3-rc.1), as npm requires.",
    );
    let refused = put(
        &app,
        "/api/packages/nuget-in/upload",
        &key,
        nupkg("Lib", "1.0.0.0.1"),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("is not a NuGet version"),
        "{}",
        refused.body
    );
    // Nothing was stored.
    assert!(app.records().await.is_empty(), "{:?}", app.records().await);
    // What the clients take is taken.
    let taken = put(
        &app,
        "/api/packages/npm-in/upload",
        &key,
        npm_tgz("left-pad", "1.0.0-rc.1"),
    )
    .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    let taken = put(
        &app,
        "/api/packages/nuget-in/upload",
        &key,
        nupkg("Lib", "1.0"),
    )
    .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
}

/// A version `add_package` would store (false: the feed already has it).
async fn add(app: &TestApp, feed: &promoter::store::Feed, name: &str, version: &str) -> bool {
    let id = PackageId::new(
        feed.feed_type,
        None,
        &Identifier::parse(name).unwrap(),
        &Identifier::parse(version).unwrap(),
    )
    .unwrap();
    let file = NewFile {
        qualifier: String::new(),
        size: None,
        sha256: None,
    };
    app.store
        .add_package(feed, &NewPackage { id, file })
        .await
        .unwrap()
}

async fn one_version_spelled_two_ways_is_one_version(app: TestApp) {
    let key = app.system_key().await;
    for (feed_type, stored, other) in [
        (FeedType::Pypi, "1.0RC1", "1.0.0rc1"),
        (FeedType::Pypi, "2.0-1", "2.0.post1"),
        (FeedType::Nuget, "1.0", "1.0.0.0"),
        (FeedType::Nuget, "2.0.0-Beta", "2.0-beta"),
    ] {
        let (from, to) = (
            format!("{feed_type}-{stored}-from"),
            format!("{feed_type}-{stored}-to"),
        );
        let source = app.feed(&from, feed_type).await;
        app.feed(&to, feed_type).await;
        assert!(add(&app, &source, "pkg", stored).await);
        // The other spelling is the same version: not stored again...
        assert!(
            !add(&app, &source, "pkg", other).await,
            "{feed_type} {other}"
        );
        // ...and it names the stored one in a promotion.
        let reply = app
            .promote(
                &key,
                &json!({"fromFeed": from, "toFeed": to, "name": "pkg", "version": other}),
            )
            .await;
        assert_eq!(reply.status, 200, "{feed_type} {other}: {}", reply.body);
        // A conflict in the target is found under either spelling.
        let again = app.feed(&format!("{from}-2"), feed_type).await;
        assert!(add(&app, &again, "pkg", other).await);
        let reply = app
            .promote(&key, &json!({"fromFeed": format!("{from}-2"), "toFeed": to, "name": "pkg", "version": other}))
            .await;
        assert_eq!(reply.status, 400, "{feed_type} {other}: {}", reply.body);
        assert!(reply.body.contains("already"), "{}", reply.body);
    }
}

async fn keys_stored_under_the_old_rules_are_brought_up_to_date(app: TestApp) {
    let key = app.system_key().await;
    let python = app.feed("python", FeedType::Pypi).await;
    let dotnet = app.feed("dotnet", FeedType::Nuget).await;
    app.feed("python-out", FeedType::Pypi).await;
    assert!(add(&app, &python, "pkg", "1.0RC1").await);
    assert!(add(&app, &python, "pkg", "not.a!version").await);
    assert!(add(&app, &dotnet, "Lib", "1.0").await);
    // Two spellings of one version, both stored before the rules (added here
    // under two keys by hand, below): the one that already has the key keeps
    // it, the other keeps its old key, and `latest` passes it over rather than
    // move the other by its key.
    assert!(add(&app, &python, "twice", "2").await);
    assert!(add(&app, &python, "twice", "3.9").await);
    // A history row of a PyPI version, to be re-keyed too.
    assert!(add(&app, &python, "moved", "3.0.0").await);
    let body =
        json!({"fromFeed": "python", "toFeed": "python-out", "name": "moved", "version": "3.0.0"});
    let reply = app.promote(&key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // As a server before these rules stored them: PyPI's versions as given,
    // NuGet's lower-cased.
    app.execute("UPDATE package_versions SET version = '2.0' WHERE version = '3.9'")
        .await;
    app.execute("UPDATE package_versions SET version_key = version WHERE name <> 'Lib'")
        .await;
    app.execute("UPDATE promotions SET version_key = version")
        .await;
    app.execute("UPDATE package_versions SET version_key = lower(version) WHERE name = 'Lib'")
        .await;
    app.execute("DELETE FROM key_revisions").await;
    // The next start re-keys them, once.
    drop(Store::open(&app.database.url).await.unwrap());
    let keys = app
        .texts("SELECT version || ' ' || version_key FROM package_versions ORDER BY id")
        .await;
    assert_eq!(
        keys,
        [
            "1.0RC1 1rc1",
            "not.a!version not.a!version",
            "1.0 1.0.0",
            "2 2",
            "2.0 2.0",
            "3.0.0 3"
        ]
    );
    let history = app
        .texts("SELECT version || ' ' || version_key FROM promotions")
        .await;
    assert_eq!(history, ["3.0.0 3"]);
    assert_eq!(
        app.texts("SELECT revision FROM key_revisions").await.len(),
        1
    );
    let body =
        json!({"fromFeed": "python", "toFeed": "python-out", "name": "pkg", "version": "1.0rc1"});
    let reply = app.promote(&key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = json!({"fromFeed": "python", "toFeed": "python-out", "name": "twice", "version": "latest", "dryRun": true});
    let reply = app.promote(&key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["version"], "2");
}
