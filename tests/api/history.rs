//! GET /api/promotions/list: shape, filters, visibility, pagination, bad input,
//! and agreement with the database after many random promotions.

use std::collections::BTreeMap;

use promoter::domain::{FeedName, FeedType};
use promoter::store::KeyScope;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp, FORBIDDEN};

both_backends!(
    history_is_grouped_per_version_newest_first,
    history_filters_follow_the_identity_rules,
    history_shows_only_what_the_key_may_view,
    history_pages_stay_stable_while_promotions_arrive,
    bad_history_parameters_are_named,
    history_agrees_with_many_random_promotions,
);

impl TestApp {
    pub async fn get(&self, path: &str, key: &str) -> Reply {
        Reply::read(self.get_from(&self.address, path, key).await).await
    }

    /// Promotes and asserts success.
    async fn promote_ok(
        &self,
        key: &str,
        from: &str,
        to: &str,
        group: Option<&str>,
        name: &str,
        version: &str,
    ) {
        let mut body = json!({"fromFeed": from, "toFeed": to, "name": name, "version": version});
        if let Some(group) = group {
            body["group"] = json!(group);
        }
        let reply = self.promote(key, &body).await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    }

    pub async fn existing(&self, feed: &str) -> promoter::store::Feed {
        self.store
            .existing_feed(&FeedName::parse(feed).unwrap())
            .await
            .unwrap()
    }
}

async fn history_is_grouped_per_version_newest_first(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.existing("unapproved-npm").await;
    app.feed("released-npm", FeedType::Npm).await;
    app.package(&source, None, "left-pad", "1.3.0", "").await;
    app.promote(&key, &crate::helpers::babel_promotion()).await;
    app.promote_ok(
        &key,
        "unapproved-npm",
        "approved-npm",
        None,
        "left-pad",
        "1.3.0",
    )
    .await;
    app.promote_ok(
        &key,
        "approved-npm",
        "released-npm",
        Some("@babel"),
        "runtime",
        "7.21.0",
    )
    .await;

    let reply = app.get("/api/promotions/list", &key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("application/json"));
    assert!(!reply.headers.contains_key("link"));
    let body = reply.json();
    let history = app.history().await;
    let date = |i: usize| {
        history[i]
            .promoted_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(
        body,
        json!([
            {"group": "@babel", "package": "runtime", "packageType": "npm", "version": "7.21.0",
             "promotions": [
                {"id": history[2].id, "fromFeed": "approved-npm", "toFeed": "released-npm",
                 "date": date(2), "user": "ci-key"},
                {"id": history[0].id, "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
                 "date": date(0), "user": "ci-key", "comments": "ok"}]},
            {"package": "left-pad", "packageType": "npm", "version": "1.3.0",
             "promotions": [
                {"id": history[1].id, "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
                 "date": date(1), "user": "ci-key"}]}
        ])
    );
}

async fn history_filters_follow_the_identity_rules(app: TestApp) {
    let key = app.system_key().await;
    for (from, to, feed_type) in [
        ("npm-in", "npm-out", FeedType::Npm),
        ("nuget-in", "nuget-out", FeedType::Nuget),
        ("pypi-in", "pypi-out", FeedType::Pypi),
        ("maven-in", "maven-out", FeedType::Maven),
    ] {
        app.feed(to, feed_type).await;
        app.feed(from, feed_type).await;
    }
    let npm = app.existing("npm-in").await;
    let nuget = app.existing("nuget-in").await;
    let pypi = app.existing("pypi-in").await;
    let maven = app.existing("maven-in").await;
    app.package(&npm, Some("@babel"), "runtime", "7.21.0", "")
        .await;
    app.package(&nuget, None, "Newtonsoft.Json", "13.0.1", "")
        .await;
    app.package(&pypi, None, "Django_REST", "3.15", "").await;
    app.package(&maven, Some("org.apache"), "Commons", "1.0", "")
        .await;
    app.package(&maven, Some("org.apache"), "commons", "1.0", "")
        .await;
    app.promote_ok(
        &key,
        "npm-in",
        "npm-out",
        Some("@babel"),
        "runtime",
        "7.21.0",
    )
    .await;
    app.promote_ok(
        &key,
        "nuget-in",
        "nuget-out",
        None,
        "Newtonsoft.Json",
        "13.0.1",
    )
    .await;
    app.promote_ok(&key, "pypi-in", "pypi-out", None, "Django_REST", "3.15")
        .await;
    app.promote_ok(
        &key,
        "maven-in",
        "maven-out",
        Some("org.apache"),
        "Commons",
        "1.0",
    )
    .await;

    let packages = |reply: Reply| -> Vec<String> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["group"].as_str().unwrap_or(""),
                    p["package"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (app, key) = (&app, &key);
    let list = |query: &str| {
        let path = format!("/api/promotions/list?{query}");
        async move { app.get(&path, key).await }
    };
    assert_eq!(packages(list("group=babel").await), ["@babel/runtime"]);
    assert_eq!(
        packages(list("groupName=%40babel&package=runtime").await),
        ["@babel/runtime"]
    );
    assert_eq!(
        packages(list("name=%40babel%2Fruntime").await),
        ["@babel/runtime"]
    );
    assert_eq!(
        packages(list("packageName=NEWTONSOFT.JSON&version=13.0.1").await),
        ["/Newtonsoft.Json"]
    );
    assert_eq!(
        packages(list("package=django-rest").await),
        ["/Django_REST"]
    );
    assert_eq!(
        packages(list("package=Commons").await),
        ["org.apache/Commons"]
    );
    assert_eq!(
        packages(list("package=commons").await),
        Vec::<String>::new()
    );
    assert_eq!(
        packages(list("fromFeed=NUGET-in").await),
        ["/Newtonsoft.Json"]
    );
    assert_eq!(
        packages(list("toFeed=npm-out&version=7.21.0").await),
        ["@babel/runtime"]
    );
    assert_eq!(
        packages(list("toFeed=npm-out&version=7.21.1").await),
        Vec::<String>::new()
    );
    assert_eq!(
        packages(list("fromFeed=no-such-feed").await),
        Vec::<String>::new()
    );
    assert_eq!(packages(list("").await).len(), 4);
}

async fn history_shows_only_what_the_key_may_view(app: TestApp) {
    let system = app.npm_setup().await;
    let source = app.existing("unapproved-npm").await;
    app.package(&source, None, "left-pad", "1.3.0", "").await;
    app.feed("other-in", FeedType::Npm).await;
    app.feed("other-out", FeedType::Npm).await;
    let other = app.existing("other-in").await;
    app.package(&other, None, "secret", "1.0.0", "").await;
    app.promote_ok(
        &system,
        "unapproved-npm",
        "approved-npm",
        Some("@babel"),
        "runtime",
        "7.21.0",
    )
    .await;
    app.promote_ok(&system, "other-in", "other-out", None, "secret", "1.0.0")
        .await;

    let feed = |name: &str| KeyScope::Feed(FeedName::parse(name).unwrap());
    let target_viewer = app.key("target-viewer", feed("approved-npm"), "view").await;
    let outsider = app.key("outsider", feed("other-out"), "view").await;
    let no_view = app
        .key("no-view", feed("approved-npm"), "add,promote")
        .await;

    let names = |reply: Reply| -> Vec<String> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["package"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(app.get("/api/promotions/list", &system).await),
        ["secret", "runtime"]
    );
    assert_eq!(
        names(app.get("/api/promotions/list", &target_viewer).await),
        ["runtime"]
    );
    assert_eq!(
        names(app.get("/api/promotions/list", &outsider).await),
        ["secret"]
    );
    assert!(names(app.get("/api/promotions/list", &no_view).await).is_empty());
    // Filtering for a feed outside the scope simply finds nothing.
    assert!(names(
        app.get("/api/promotions/list?fromFeed=other-in", &target_viewer)
            .await
    )
    .is_empty());

    for key in ["", "unknown-key"] {
        app.get("/api/promotions/list", key)
            .await
            .assert_error(403, FORBIDDEN);
    }
    let reply = Reply::read(
        app.client
            .get(app.url("/api/promotions/list"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(403, FORBIDDEN);
    // The query-string carrier works here too.
    let by_query = app
        .client
        .get(app.url(&format!("/api/promotions/list?key={outsider}")))
        .send()
        .await
        .unwrap();
    assert_eq!(names(Reply::read(by_query).await), ["secret"]);
}

/// The ids of every promotion in a history response, in response order.
fn promotion_ids(history: &Value) -> Vec<i64> {
    let versions = history.as_array().unwrap().iter();
    versions
        .flat_map(|v| v["promotions"].as_array().unwrap().iter())
        .map(|promotion| promotion["id"].as_i64().unwrap())
        .collect()
}

/// Follows `Link: <…>; rel="next"` headers; returns the promotion ids per page.
async fn walk_pages(
    app: &TestApp,
    key: &str,
    first: &str,
    between_pages: impl Fn(usize) -> Option<Value>,
) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let reply = app.get(&path, key).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let ids: Vec<i64> = promotion_ids(&reply.json());
        pages.push(ids);
        if let Some(link) = reply.headers.get("link") {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            assert!(
                !link.contains(key),
                "the Link header must not repeat the key"
            );
            next = Some(
                link.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        if let Some(body) = between_pages(pages.len()) {
            let reply = app.promote(key, &body).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    }
    pages
}

async fn history_pages_stay_stable_while_promotions_arrive(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.existing("unapproved-npm").await;
    for i in 0..12 {
        app.package(&source, Some("@acme"), "lib", &format!("1.0.{i}"), "")
            .await;
    }
    for i in 0..7 {
        app.promote_ok(
            &key,
            "unapproved-npm",
            "approved-npm",
            Some("@acme"),
            "lib",
            &format!("1.0.{i}"),
        )
        .await;
    }
    let before: Vec<i64> = app.history().await.iter().rev().map(|h| h.id).collect();
    // New promotions land between pages; the walk still sees exactly the old ones.
    let pages = walk_pages(
        &app,
        &key,
        "/api/promotions/list?group=acme&package=lib&limit=3",
        |page| {
            (page <= 3).then(|| {
                json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
            "group": "@acme", "name": "lib", "version": format!("1.0.{}", 6 + page)})
            })
        },
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), before);

    // A page size that divides the history exactly ends without a Link.
    let all = walk_pages(&app, &key, "/api/promotions/list?limit=5", |_| None).await;
    assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);
    let versions = app.get("/api/promotions/list", &key).await.json();
    assert_eq!(
        versions.as_array().unwrap().len(),
        10,
        "one group per version"
    );
}

async fn bad_history_parameters_are_named(app: TestApp) {
    let key = app.npm_setup().await;
    for (query, expected) in [
        (
            "limit=abc",
            "Parameter \"limit\" must be a whole number from 1 to 1000.",
        ),
        (
            "limit=0",
            "Parameter \"limit\" must be a whole number from 1 to 1000.",
        ),
        (
            "limit=1001",
            "Parameter \"limit\" must be a whole number from 1 to 1000.",
        ),
        (
            "limit=",
            "Parameter \"limit\" must be a whole number from 1 to 1000.",
        ),
        ("before=-4", "Parameter \"before\" must be a promotion id"),
        ("before=x", "Parameter \"before\" must be a promotion id"),
        (
            "fromFeed=a%20b",
            "Parameter \"fromFeed\" must be 1 to 100 letters",
        ),
        ("toFeed=", "Parameter \"toFeed\" must be 1 to 100 letters"),
        (
            "package=a%00b",
            "Parameter \"package\" must not contain control characters.",
        ),
        ("version=%20", "Parameter \"version\" must not be empty."),
        ("group=", "Parameter \"group\" must not be empty."),
        (
            "package=a&name=b",
            "Parameters \"package\" and \"name\" are the same parameter but have different values.",
        ),
        (
            "limit=1&limit=2",
            "Parameter \"limit\" is given twice with different values.",
        ),
        (
            &format!("group={}", "g".repeat(251)),
            "Parameter \"group\" must be at most 250 characters long.",
        ),
    ] {
        let reply = app
            .get(&format!("/api/promotions/list?{query}"), &key)
            .await;
        reply.assert_error(400, expected);
    }
    let reply = app.get("/api/promotions/list?limit=abc", "bad-key").await;
    reply.assert_error(403, FORBIDDEN);
}

/// Random promotions back and forth between three feeds, then every filter
/// combination checked against a model of what was done.
async fn history_agrees_with_many_random_promotions(app: TestApp) {
    let key = app.system_key().await;
    let feeds = ["stage-a", "stage-b", "stage-c"];
    for feed in feeds {
        app.feed(feed, FeedType::Nuget).await;
    }
    let first = app.existing("stage-a").await;
    let packages: Vec<(String, String)> = (0..6)
        .flat_map(|p| (0..4).map(move |v| (format!("Pkg.{p}"), format!("{v}.0.0"))))
        .collect();
    for (name, version) in &packages {
        app.package(&first, None, name, version, "").await;
    }
    let mut location: BTreeMap<usize, usize> = (0..packages.len()).map(|i| (i, 0)).collect();
    // (id, from, to, package index)
    let mut model: Vec<(i64, usize, usize, usize)> = Vec::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..400 {
        let package = random(packages.len());
        let from = location[&package];
        let to = (from + 1 + random(2)) % 3;
        let (name, version) = &packages[package];
        // NuGet names compare case-insensitively: ask in lower case half the time.
        let asked = if random(2) == 0 {
            name.to_lowercase()
        } else {
            name.clone()
        };
        let reply = app
            .promote(&key, &json!({"fromFeed": feeds[from], "toFeed": feeds[to], "name": asked, "version": version}))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        model.push((reply.json()["id"].as_i64().unwrap(), from, to, package));
        location.insert(package, to);
    }

    let ids_of = |reply: Reply| -> Vec<i64> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut ids: Vec<i64> = promotion_ids(&reply.json());
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    };
    for from in [None, Some(0), Some(2)] {
        for to in [None, Some(1)] {
            for package in [None, Some(5)] {
                for with_version in [false, true] {
                    let mut query = vec!["limit=1000".to_owned()];
                    if let Some(from) = from {
                        query.push(format!("fromFeed={}", feeds[from].to_uppercase()));
                    }
                    if let Some(to) = to {
                        query.push(format!("toFeed={}", feeds[to]));
                    }
                    if let Some(package) = package {
                        query.push(format!("package={}", packages[package].0.to_uppercase()));
                    }
                    let version = packages[5].1.clone();
                    if with_version {
                        query.push(format!("version={version}"));
                    }
                    let mut expected: Vec<i64> = model
                        .iter()
                        .filter(|(_, f, t, p)| {
                            from.is_none_or(|x| x == *f)
                                && to.is_none_or(|x| x == *t)
                                && package.is_none_or(|x| packages[x].0 == packages[*p].0)
                                && (!with_version || packages[*p].1 == version)
                        })
                        .map(|(id, ..)| *id)
                        .collect();
                    expected.reverse();
                    let reply = app
                        .get(&format!("/api/promotions/list?{}", query.join("&")), &key)
                        .await;
                    assert_eq!(ids_of(reply), expected, "{query:?}");
                }
            }
        }
    }
}
