//! Contract section 7: dry runs, the conflict policy, batches, reverts and
//! `latest`, on both backends.

use promoter::domain::FeedType;
use serde_json::{json, Value};

use crate::helpers::{babel_promotion, with, Reply, TestApp};

both_backends!(
    a_dry_run_answers_as_the_real_call_would_and_changes_nothing,
    the_conflict_policy_fails_skips_or_overwrites,
    a_batch_moves_every_version_or_none,
    a_batch_lists_every_failing_item,
    bad_batches_are_refused_whole,
    two_overlapping_batches_never_both_win,
    batches_in_opposite_directions_do_not_deadlock,
    a_revert_into_a_disabled_feed_is_refused,
    a_revert_moves_back_only_the_newest_promotion,
    a_batch_revert_moves_the_whole_batch_back,
    latest_resolves_to_the_highest_version_in_the_source,
    a_batch_of_a_thousand_versions_is_one_transaction,
);

impl TestApp {
    async fn batch(&self, key: &str, body: &Value) -> Reply {
        self.json_post("/api/promotions/batch", key, body).await
    }

    async fn revert(&self, key: &str, body: &Value) -> Reply {
        self.json_post("/api/promotions/revert", key, body).await
    }

    /// npm feeds and versions of `lodash` in the source: `versions`.
    async fn lodash(&self, versions: &[&str]) {
        let source = self.existing("unapproved-npm").await;
        for version in versions {
            self.package(&source, None, "lodash", version, "").await;
        }
    }
}

/// A body without what differs between a dry run and the real call.
fn comparable(reply: &Reply) -> (u16, String) {
    let body = match serde_json::from_str::<Value>(&reply.body) {
        Ok(mut json) => {
            if let Some(object) = json.as_object_mut() {
                for volatile in ["id", "dryRun", "date", "batch"] {
                    object.remove(volatile);
                }
                if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
                    for item in items {
                        item.as_object_mut().unwrap().remove("id");
                    }
                }
            }
            json.to_string()
        }
        Err(_) => reply.body.clone(),
    };
    (reply.status, body)
}

impl Reply {
    fn assert_json_problem(&self, detail: &str) {
        assert_eq!(self.status, 400, "{}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.json()["detail"], detail);
    }
}

fn problem_items(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    reply.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_dry_run_answers_as_the_real_call_would_and_changes_nothing(app: TestApp) {
    let key = app.npm_setup().await;
    app.lodash(&["4.17.21"]).await;
    let approved = app.existing("approved-npm").await;
    app.package(&approved, None, "lodash", "4.17.21", "").await;
    let frozen = app.feed("frozen-npm", FeedType::Npm).await;
    app.store
        .set_feed_active(
            &promoter::domain::FeedName::parse(&frozen.name).unwrap(),
            false,
        )
        .await
        .unwrap();
    let lodash = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "lodash", "version": "4.17.21"});
    let scenarios = [
        babel_promotion(),
        with(&babel_promotion(), "version", json!("9.9.9")),
        with(&babel_promotion(), "toFeed", json!("frozen-npm")),
        lodash.clone(),
        with(&lodash, "onConflict", json!("skip")),
        with(&lodash, "onConflict", json!("overwrite")),
        with(&babel_promotion(), "version", json!("latest")),
    ];
    for scenario in scenarios {
        let before = app.snapshot().await;
        let dry = app
            .promote(&key, &with(&scenario, "dryRun", json!(true)))
            .await;
        assert_eq!(
            app.snapshot().await,
            before,
            "a dry run changed the database: {scenario}"
        );
        if dry.status == 200 {
            let body = dry.json();
            assert_eq!(body["dryRun"], true);
            assert!(body["id"].is_null(), "{body}");
        }
        let real = app.promote(&key, &scenario).await;
        assert_eq!(comparable(&dry), comparable(&real), "{scenario}");
        // Put things back for the next scenario.
        if real.status == 200 {
            app.execute(
                "UPDATE package_versions SET feed_id = (SELECT id FROM feeds WHERE name = 'unapproved-npm') \
                 WHERE name_key = 'runtime'",
            )
            .await;
        }
    }

    // The form field and the query parameter mean the same.
    let before = app.snapshot().await;
    let form = app
        .post(
            "/api/promotions/promote",
            &[("X-ApiKey", &key)],
            Some("application/x-www-form-urlencoded"),
            "fromFeed=unapproved-npm&toFeed=approved-npm&group=%40babel&name=runtime&version=7.21.0&dryRun=true",
        )
        .await;
    assert_eq!(form.json()["dryRun"], true, "{}", form.body);
    let query = app
        .post(
            "/api/promotions/promote?dryRun=true",
            &[("X-ApiKey", &key)],
            Some("application/json"),
            babel_promotion().to_string(),
        )
        .await;
    assert_eq!(query.json()["dryRun"], true, "{}", query.body);
    assert_eq!(app.snapshot().await, before);
}

async fn the_conflict_policy_fails_skips_or_overwrites(app: TestApp) {
    let key = app.npm_setup().await;
    let approved = app.existing("approved-npm").await;
    app.package(
        &approved,
        Some("@babel"),
        "runtime",
        "7.21.0",
        "file=old.tgz",
    )
    .await;
    let before = app.snapshot().await;

    app.promote_refused(
        &key,
        &babel_promotion(),
        400,
        "Package @babel/runtime 7.21.0 already exists in feed \"approved-npm\", so nothing was promoted.",
    )
    .await;
    app.promote_refused(
        &key,
        &with(&babel_promotion(), "onConflict", json!("merge")),
        400,
        "Field \"onConflict\" must be fail, skip or overwrite.",
    )
    .await;

    let skipped = app
        .promote(&key, &with(&babel_promotion(), "onConflict", json!("skip")))
        .await;
    assert_eq!(skipped.status, 200, "{}", skipped.body);
    assert_eq!(skipped.json()["outcome"], "skipped");
    assert!(skipped.json()["id"].is_null());
    assert_eq!(app.snapshot().await, before, "a skip changed something");

    // Overwriting destroys the target's copy, so it needs delete there too.
    let promoter_only = app
        .key(
            "promoter-only",
            promoter::store::KeyScope::System,
            "view,promote",
        )
        .await;
    app.promote_refused(
        &promoter_only,
        &with(&babel_promotion(), "onConflict", json!("overwrite")),
        403,
        crate::helpers::FORBIDDEN,
    )
    .await;

    let overwrite_batch = json!({
        "fromFeed": "unapproved-npm", "toFeed": "approved-npm", "onConflict": "overwrite",
        "packages": [{"group": "@babel", "name": "runtime", "version": "7.21.0"}]
    });
    app.batch(&promoter_only, &overwrite_batch)
        .await
        .assert_error(403, crate::helpers::FORBIDDEN);
    assert_eq!(app.snapshot().await, before);

    let overwritten = app
        .promote(
            &key,
            &with(&babel_promotion(), "onConflict", json!("Overwrite")),
        )
        .await;
    assert_eq!(overwritten.status, 200, "{}", overwritten.body);
    let body = overwritten.json();
    assert_eq!(body["outcome"], "overwritten");
    assert_eq!(body["overwrote"], true);
    assert_eq!(
        app.records().await,
        [
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.sig",
            "approved-npm @babel runtime 7.21.0 file=runtime-7.21.0.tgz"
        ],
        "the target's old copy should be gone and the source's moved in"
    );
    let history = app.history().await;
    assert_eq!(history.len(), 1);
    assert!(history[0].overwrote);
    let listed = app.get("/api/promotions/list", &key).await;
    assert_eq!(listed.json()[0]["promotions"][0]["overwrote"], true);
}

async fn a_batch_moves_every_version_or_none(app: TestApp) {
    let key = app.npm_setup().await;
    app.lodash(&["4.17.20", "4.17.21"]).await;
    let approved = app.existing("approved-npm").await;
    app.package(&approved, None, "lodash", "4.17.20", "").await;

    let reply = app
        .batch(
            &key,
            &json!({
                "fromFeed": "unapproved-npm", "toFeed": "approved-npm", "comments": "release 4.2",
                "onConflict": "skip",
                "packages": [
                    {"group": "@babel", "name": "runtime", "version": "7.21.0"},
                    {"name": "lodash", "version": "4.17.21"},
                    {"name": "lodash", "version": "4.17.20"},
                ]
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(
        (
            &body["promoted"],
            &body["skipped"],
            &body["overwritten"],
            &body["dryRun"]
        ),
        (&json!(2), &json!(1), &json!(0), &json!(false))
    );
    let batch = body["batch"].as_str().unwrap().to_owned();
    let outcomes: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["promoted", "promoted", "skipped"]);
    assert!(body["items"][0]["id"].is_i64() && body["items"][2]["id"].is_null());

    // One history row per promoted version, sharing the batch id.
    let history = app.history().await;
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .all(|h| h.batch_id.as_deref() == Some(batch.as_str())));
    let listed = app
        .get(&format!("/api/promotions/list?batch={batch}"), &key)
        .await;
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        2,
        "{}",
        listed.body
    );
    assert_eq!(listed.json()[0]["promotions"][0]["batch"], batch);
    let other = app
        .get(
            "/api/promotions/list?batch=00000000-0000-0000-0000-000000000000",
            &key,
        )
        .await;
    assert_eq!(other.json(), json!([]));

    // The same in a dry run answers alike and changes nothing.
    let before = app.snapshot().await;
    let dry = app
        .batch(
            &key,
            &json!({
                "fromFeed": "unapproved-npm", "toFeed": "approved-npm", "dryRun": true,
                "packages": [{"name": "lodash", "version": "4.17.20"}]
            }),
        )
        .await;
    problem_items(&dry);
    assert_eq!(app.snapshot().await, before);
}

async fn a_batch_lists_every_failing_item(app: TestApp) {
    let key = app.npm_setup().await;
    app.lodash(&["4.17.21"]).await;
    let approved = app.existing("approved-npm").await;
    app.package(&approved, None, "lodash", "4.17.21", "").await;
    let before = app.snapshot().await;
    let body = json!({
        "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
        "packages": [
            {"group": "@babel", "name": "runtime", "version": "7.21.0"},
            {"name": "lodash", "version": "4.17.21"},
            {"name": "lodash", "version": "9.9.9"},
        ]
    });
    let dry = app.batch(&key, &with(&body, "dryRun", json!(true))).await;
    let reply = app.batch(&key, &body).await;
    assert_eq!(comparable(&dry), comparable(&reply));
    assert_eq!(
        reply.json()["detail"],
        "2 of 3 packages cannot be promoted, so nothing was changed."
    );
    assert_eq!(
        problem_items(&reply),
        [
            "Package lodash 4.17.21 already exists in feed \"approved-npm\", so nothing was promoted.",
            "Package lodash 9.9.9 was not found in feed \"unapproved-npm\"."
        ]
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused batch changed something"
    );
}

async fn bad_batches_are_refused_whole(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    let base = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm"});
    let item = json!({"group": "@babel", "name": "runtime", "version": "7.21.0"});
    let cases = [
        (
            with(&base, "packages", json!([])),
            "Field \"packages\" must list 1 to 1000 package versions, not 0.",
        ),
        (
            with(&base, "packages", Value::Array(vec![item.clone(); 1001])),
            "Field \"packages\" must list 1 to 1000 package versions, not 1001.",
        ),
        (
            with(
                &base,
                "packages",
                json!([item.clone(), {"group": "babel", "name": "runtime", "version": "7.21.0"}]),
            ),
            "names @babel/runtime 7.21.0 a second time",
        ),
        (base.clone(), "Field \"packages\" is required."),
        (
            with(&base, "packages", json!([{"name": "x"}])),
            "Field \"packages[0].version\" is required.",
        ),
        (
            with(&base, "packages", json!(["x"])),
            "Field \"packages\" must be an array of objects",
        ),
        (
            with(
                &with(&base, "packages", json!([item])),
                "toFeed",
                json!("nowhere"),
            ),
            "Field \"toFeed\" names feed \"nowhere\", which does not exist.",
        ),
        (
            with(
                &with(&base, "packages", json!([item])),
                "onConflict",
                json!("replace"),
            ),
            "Field \"onConflict\" must be fail, skip or overwrite.",
        ),
    ];
    for (body, detail) in cases {
        let reply = app.batch(&key, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
        let problem = reply.json();
        assert_eq!(
            (&problem["type"], &problem["status"]),
            (&json!("about:blank"), &json!(400))
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{}",
            reply.body
        );
    }
    // JSON only, and the key first, as everywhere.
    app.post(
        "/api/promotions/batch",
        &[("X-ApiKey", &key)],
        Some("application/x-www-form-urlencoded"),
        "fromFeed=a",
    )
    .await
    .assert_error(415, "A batch must be sent as application/json.");
    app.batch("wrong-key", &base)
        .await
        .assert_error(403, crate::helpers::FORBIDDEN);
    assert_eq!(app.snapshot().await, before);
}

/// Two batches naming some of the same versions, sent at once, over and over:
/// exactly one wins whole each time and the other changes nothing. On
/// PostgreSQL the two go through different server instances.
async fn two_overlapping_batches_never_both_win(app: TestApp) {
    let key = app.system_key().await;
    let source = app.feed("race-a", FeedType::Nuget).await;
    app.feed("race-b", FeedType::Nuget).await;
    let second = match app.store.db() {
        promoter::store::Db::Postgres(_) => app.another_instance().await,
        promoter::store::Db::Sqlite(..) => app.address.clone(),
    };
    for round in 0..10 {
        let version = format!("1.0.{round}");
        for name in ["A", "B", "C"] {
            app.package(&source, None, name, &version, "").await;
        }
        let batch = |names: &[&str]| {
            json!({
                "fromFeed": "race-a", "toFeed": "race-b",
                "packages": names.iter().map(|n| json!({"name": n, "version": version})).collect::<Vec<_>>()
            })
        };
        let send = |address: String, body: Value| {
            let request = app
                .client
                .post(format!("{address}/api/promotions/batch"))
                .header("X-ApiKey", &key)
                .header("Content-Type", "application/json")
                .body(body.to_string());
            async move { Reply::read(request.send().await.unwrap()).await }
        };
        let (first, other) = tokio::join!(
            send(app.address.clone(), batch(&["A", "B"])),
            send(second.clone(), batch(&["B", "C"]))
        );
        let statuses = [first.status, other.status];
        assert!(
            statuses == [200, 400] || statuses == [400, 200],
            "round {round}: {} {} / {} {}",
            first.status,
            first.body,
            other.status,
            other.body
        );
        let (winner, loser) = if first.status == 200 {
            (first, other)
        } else {
            (other, first)
        };
        assert_eq!(winner.json()["promoted"], 2);
        assert_eq!(problem_items(&loser).len(), 1, "{}", loser.body);
        let moved: Vec<String> = app
            .texts(&format!(
                "SELECT name FROM package_records WHERE feed = 'race-b' AND version = '{version}' ORDER BY name"
            ))
            .await;
        let winners: Vec<String> = winner.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(moved, winners, "round {round}: the loser moved something");
    }
    assert_eq!(app.history().await.len(), 20);
}

async fn a_revert_moves_back_only_the_newest_promotion(app: TestApp) {
    let key = app.npm_setup().await;
    let id = app.promote(&key, &babel_promotion()).await.json()["id"]
        .as_i64()
        .unwrap();
    let promoted = app.snapshot().await;

    for bad in [
        json!({}),
        json!({"id": 1, "batch": "00000000-0000-0000-0000-000000000000"}),
        json!({"id": "x"}),
    ] {
        let reply = app.revert(&key, &bad).await;
        assert_eq!(
            reply.content_type, "application/problem+json",
            "{}",
            reply.body
        );
        assert!(
            reply.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("Field"),
            "{}",
            reply.body
        );
    }
    app.revert(&key, &json!({"id": 999}))
        .await
        .assert_json_problem("Field \"id\": there is no promotion with id 999.");
    // A key scoped to feeds learns nothing about ids: the same 403 as for a
    // promotion it may not touch.
    let scoped = app
        .key(
            "scoped",
            promoter::store::KeyScope::Feed(
                promoter::domain::FeedName::parse("approved-npm").unwrap(),
            ),
            "view,promote",
        )
        .await;
    app.revert(&scoped, &json!({"id": 999}))
        .await
        .assert_error(403, crate::helpers::FORBIDDEN);

    // A dry run answers alike and changes nothing.
    let dry = app.revert(&key, &json!({"id": id, "dryRun": true})).await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.json()["batch"].is_null());
    assert_eq!(app.snapshot().await, promoted);

    let reverted = app
        .revert(&key, &json!({"id": id, "comments": "oops"}))
        .await;
    assert_eq!(reverted.status, 200, "{}", reverted.body);
    assert_eq!(comparable(&dry), comparable(&reverted));
    assert_eq!(reverted.json()["promoted"], 1);
    assert!(app
        .records()
        .await
        .iter()
        .all(|r| r.starts_with("unapproved-npm ")));
    let history = app.history().await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].revert_of, Some(id));
    assert_eq!(
        (history[1].from_feed.as_str(), history[1].to_feed.as_str()),
        ("approved-npm", "unapproved-npm")
    );
    let listed = app.get("/api/promotions/list", &key).await;
    assert_eq!(listed.json()[0]["promotions"][0]["revertOf"], id);

    // The original is no longer the newest promotion of that version.
    let before = app.snapshot().await;
    let refused = app.revert(&key, &json!({"id": id})).await;
    assert_eq!(
        problem_items(&refused),
        [format!(
            "Promotion {id} cannot be reverted: promotion {} has moved package @babel/runtime 7.21.0 since.",
            history[1].id
        )]
    );
    assert_eq!(
        refused.json()["detail"],
        "1 of 1 packages cannot be reverted, so nothing was changed."
    );
    assert_eq!(app.snapshot().await, before);

    // A key that may not promote into the original source may not revert.
    let viewer = app
        .key("viewer", promoter::store::KeyScope::System, "view")
        .await;
    app.revert(&viewer, &json!({"id": history[1].id}))
        .await
        .assert_error(403, crate::helpers::FORBIDDEN);

    // An overwrite cannot be reverted: the copy it replaced is gone.
    let approved = app.existing("approved-npm").await;
    app.package(&approved, Some("@babel"), "runtime", "7.21.0", "")
        .await;
    let overwrite = app
        .promote(
            &key,
            &with(&babel_promotion(), "onConflict", json!("overwrite")),
        )
        .await;
    let overwrite_id = overwrite.json()["id"].as_i64().unwrap();
    app.revert(&key, &json!({"id": overwrite_id}))
        .await
        .assert_json_problem(&format!("Promotion {overwrite_id} overwrote the copy of @babel/runtime 7.21.0 that was in feed \"approved-npm\", so it cannot be reverted."));
}

async fn a_batch_revert_moves_the_whole_batch_back(app: TestApp) {
    let key = app.npm_setup().await;
    app.lodash(&["4.17.21"]).await;
    app.feed("other-npm", FeedType::Npm).await;
    let body = json!({
        "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
        "packages": [{"group": "@babel", "name": "runtime", "version": "7.21.0"}, {"name": "lodash", "version": "4.17.21"}]
    });
    let batch = || async {
        let reply = app.batch(&key, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["batch"].as_str().unwrap().to_owned()
    };

    let first = batch().await;
    let reverted = app.revert(&key, &json!({"batch": first})).await;
    assert_eq!(reverted.status, 200, "{}", reverted.body);
    assert_eq!(reverted.json()["promoted"], 2);
    assert!(app
        .records()
        .await
        .iter()
        .all(|r| r.starts_with("unapproved-npm ")));
    let revert_batch = reverted.json()["batch"].as_str().unwrap().to_owned();
    let dry = app
        .revert(&key, &json!({"batch": revert_batch, "dryRun": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.json()["items"][0]["id"].is_null() && dry.json()["items"][0].get("id").is_some());
    let rows = app
        .get(&format!("/api/promotions/list?batch={revert_batch}"), &key)
        .await;
    assert_eq!(rows.json().as_array().unwrap().len(), 2);

    // Again, but one version moves on before the revert: it is refused whole,
    // listing that version.
    let second = batch().await;
    let moved_on = app
        .promote(
            &key,
            &json!({"fromFeed": "approved-npm", "toFeed": "other-npm", "name": "lodash", "version": "4.17.21"}),
        )
        .await;
    assert_eq!(moved_on.status, 200, "{}", moved_on.body);
    let before = app.snapshot().await;
    let refused = app.revert(&key, &json!({"batch": second})).await;
    let reasons = problem_items(&refused);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("has moved package lodash 4.17.21 since"),
        "{reasons:?}"
    );
    assert_eq!(app.snapshot().await, before);
    app.revert(
        &key,
        &json!({"batch": "00000000-0000-0000-0000-000000000000"}),
    )
    .await
    .assert_json_problem(
        "Field \"batch\": there is no batch 00000000-0000-0000-0000-000000000000.",
    );
}

async fn latest_resolves_to_the_highest_version_in_the_source(app: TestApp) {
    let key = app.npm_setup().await;
    app.lodash(&["4.9.0", "4.17.21", "5.0.0-beta.1"]).await;
    let promote = |version: &str| json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "lodash", "version": version});
    let stable = app.promote(&key, &promote("latest-stable")).await;
    assert_eq!(stable.status, 200, "{}", stable.body);
    assert_eq!(stable.json()["version"], "4.17.21");
    let latest = app.promote(&key, &promote("LATEST")).await;
    assert_eq!(latest.json()["version"], "5.0.0-beta.1");
    assert_eq!(app.history().await[1].version, "5.0.0-beta.1");

    app.promote_refused(
        &key,
        &json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "name": "left-pad", "version": "latest"}),
        400,
        "Package left-pad has no version in feed \"unapproved-npm\".",
    )
    .await;

    // In a batch too, resolved to the concrete version in the answer.
    app.lodash(&["4.18.0"]).await;
    let resolved = app
        .batch(
            &key,
            &json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
                    "packages": [{"name": "lodash", "version": "latest-stable"}]}),
        )
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.json()["items"][0]["version"], "4.18.0");

    // In a batch, latest naming a version listed outright is a duplicate.
    let reply = app
        .batch(
            &key,
            &json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
                    "packages": [{"name": "lodash", "version": "4.9.0"}, {"name": "lodash", "version": "latest"}]}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.json()["detail"].as_str().unwrap().contains("twice"),
        "{}",
        reply.body
    );
}

async fn a_batch_of_a_thousand_versions_is_one_transaction(app: TestApp) {
    let key = app.system_key().await;
    let source = app.feed("big-a", FeedType::Nuget).await;
    app.feed("big-b", FeedType::Nuget).await;
    let packages: Vec<promoter::store::NewPackage> = (0..1000)
        .map(|i| promoter::store::NewPackage {
            id: promoter::domain::PackageId::new(
                FeedType::Nuget,
                None,
                &promoter::domain::Identifier::parse(&format!("Big.Package{i}")).unwrap(),
                &promoter::domain::Identifier::parse("1.0.0").unwrap(),
            )
            .unwrap(),
            file: promoter::store::NewFile::default(),
        })
        .collect();
    app.store.import_packages(&source, &packages).await.unwrap();
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("Big.Package{i}"), "version": "1.0.0"}))
        .collect();
    let reply = app
        .batch(
            &key,
            &json!({"fromFeed": "big-a", "toFeed": "big-b", "packages": items}),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.body[..reply.body.len().min(500)]
    );
    assert_eq!(reply.json()["promoted"], 1000);
    assert_eq!(
        app.texts("SELECT CAST(COUNT(*) AS TEXT) FROM package_records WHERE feed = 'big-b'")
            .await,
        ["1000"]
    );
    assert_eq!(app.history().await.len(), 1000);
}

/// Batches moving the same versions in opposite directions lock the rows of
/// both feeds in one order, so they queue instead of deadlocking (which
/// PostgreSQL would answer with an error for one of them).
async fn batches_in_opposite_directions_do_not_deadlock(app: TestApp) {
    let key = app.system_key().await;
    let a = app.feed("dir-a", FeedType::Nuget).await;
    let b = app.feed("dir-b", FeedType::Nuget).await;
    let names: Vec<String> = (0..20).map(|i| format!("Both.Pkg{i}")).collect();
    for name in &names {
        // A copy in each feed: both batches lock rows in both.
        app.package(&a, None, name, "1.0.0", "").await;
        app.package(&b, None, name, "1.0.0", "").await;
    }
    let batch = |from: &str, to: &str| {
        json!({
            "fromFeed": from, "toFeed": to, "onConflict": "overwrite",
            "packages": names.iter().map(|n| json!({"name": n, "version": "1.0.0"})).collect::<Vec<_>>()
        })
    };
    for round in 0..5 {
        let (forth_body, back_body) = (batch("dir-a", "dir-b"), batch("dir-b", "dir-a"));
        let (forth, back) = tokio::join!(app.batch(&key, &forth_body), app.batch(&key, &back_body));
        for reply in [&forth, &back] {
            assert!(
                [200, 400].contains(&reply.status),
                "round {round}: {} {}",
                reply.status,
                reply.body
            );
        }
        assert!(
            forth.status == 200 || back.status == 200,
            "round {round}: neither won"
        );
        // Put a copy back where the loser's versions went missing.
        for feed in [&a, &b] {
            for name in &names {
                let present = app
                    .texts(&format!(
                        "SELECT name FROM package_records WHERE feed = '{}' AND name = '{name}'",
                        feed.name
                    ))
                    .await;
                if present.is_empty() {
                    app.package(feed, None, name, "1.0.0", "").await;
                }
            }
        }
    }
}

/// A disabled feed takes part in no move, an undo included.
async fn a_revert_into_a_disabled_feed_is_refused(app: TestApp) {
    let key = app.npm_setup().await;
    let id = app.promote(&key, &babel_promotion()).await.json()["id"]
        .as_i64()
        .unwrap();
    app.store
        .set_feed_active(
            &promoter::domain::FeedName::parse("unapproved-npm").unwrap(),
            false,
        )
        .await
        .unwrap();
    let before = app.snapshot().await;
    app.revert(&key, &json!({"id": id}))
        .await
        .assert_json_problem(&format!(
            "Feed \"unapproved-npm\" is disabled, so promotion {id} cannot be reverted."
        ));
    assert_eq!(app.snapshot().await, before);
}
