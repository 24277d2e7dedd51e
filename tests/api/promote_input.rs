//! Every 400, 413 and 415 rule of POST /api/promotions/promote; each refusal must
//! leave the database as it was.

use promoter::domain::FeedType;
use serde_json::{json, Value};

use crate::helpers::{babel_promotion, with, TestApp, FORBIDDEN};

both_backends!(
    required_fields_must_be_present_and_not_blank,
    malformed_json_and_wrong_types_are_named,
    legacy_aliases_work_and_may_not_disagree,
    control_characters_and_long_values_are_refused,
    feeds_must_differ_exist_be_enabled_and_share_a_type,
    a_fixed_promotion_target_is_enforced,
    the_version_must_be_in_the_source_and_not_in_the_target,
    bodies_over_64_kib_get_413,
    other_content_types_get_415,
    unknown_paths_and_methods_get_text_errors,
);

async fn required_fields_must_be_present_and_not_blank(app: TestApp) {
    let key = app.npm_setup().await;
    let base = babel_promotion();
    for field in ["fromFeed", "toFeed", "name", "version"] {
        let missing = with(&base, field, Value::Null);
        app.promote_refused(
            &key,
            &missing,
            400,
            &format!("Field \"{field}\" is required."),
        )
        .await;
        // JSON null is the same as leaving the field out.
        let mut null = base.clone();
        null[field] = Value::Null;
        app.promote_refused(&key, &null, 400, &format!("Field \"{field}\" is required."))
            .await;
        for blank in ["", "   ", "\t "] {
            let expected = if field.ends_with("Feed") {
                format!("Field \"{field}\" must be 1 to 100 letters")
            } else {
                format!("Field \"{field}\" must not be empty.")
            };
            app.promote_refused(&key, &with(&base, field, json!(blank)), 400, &expected)
                .await;
        }
    }
}

async fn malformed_json_and_wrong_types_are_named(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    let headers = [("X-ApiKey", key.as_str())];
    let post = |body: &'static str| {
        app.post(
            "/api/promotions/promote",
            &headers,
            Some("application/json"),
            body,
        )
    };
    post(r#"{"fromFeed":"unapproved-npm","#)
        .await
        .assert_error(400, "The request body is not valid JSON");
    post("")
        .await
        .assert_error(400, "The request body is not valid JSON");
    post(r#"["fromFeed"]"#)
        .await
        .assert_error(400, "The request body must be a JSON object.");
    for (value, kind) in [
        (json!(7.21), "a number"),
        (json!(true), "true or false"),
        (json!(["7.21.0"]), "an array"),
        (json!({"v": "7.21.0"}), "an object"),
    ] {
        for field in ["fromFeed", "toFeed", "name", "group", "version", "comments"] {
            let body = with(&babel_promotion(), field, value.clone());
            app.promote_refused(
                &key,
                &body,
                400,
                &format!("Field \"{field}\" must be a string, not {kind}."),
            )
            .await;
        }
    }
    assert_eq!(app.snapshot().await, before);
}

async fn legacy_aliases_work_and_may_not_disagree(app: TestApp) {
    let key = app.npm_setup().await;
    let conflict = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
        "name": "runtime", "packageName": "core", "group": "@babel", "version": "7.21.0"});
    app.promote_refused(&key, &conflict, 400, "Fields \"name\" and \"packageName\"")
        .await;
    let group_conflict = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
        "name": "runtime", "groupName": "@other", "group": "@babel", "version": "7.21.0"});
    app.promote_refused(&key, &group_conflict, 400, "\"group\"")
        .await;

    // Aliases alone, and an alias agreeing with its main name, are fine; names
    // match whatever their case.
    let aliased = json!({"FROMFEED": "unapproved-npm", "tofeed": "approved-npm",
        "packageName": "runtime", "name": "runtime", "groupName": "@babel",
        "Version": "7.21.0", "comment": "via aliases", "unknownField": 1});
    let reply = app.promote(&key, &aliased).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let history = app.history().await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].comments.as_deref(), Some("via aliases"));
}

async fn control_characters_and_long_values_are_refused(app: TestApp) {
    let key = app.npm_setup().await;
    let base = babel_promotion();
    for field in ["name", "group", "version"] {
        for bad in ["run\0time", "run\u{7}time", "run\ntime", "\u{1b}[31m"] {
            app.promote_refused(
                &key,
                &with(&base, field, json!(bad)),
                400,
                &format!("Field \"{field}\" must not contain control characters."),
            )
            .await;
        }
        app.promote_refused(
            &key,
            &with(&base, field, json!("x".repeat(251))),
            400,
            &format!("Field \"{field}\" must be at most 250 characters long."),
        )
        .await;
        // 250 characters pass validation; that package simply is not there.
        app.promote_refused(
            &key,
            &with(&base, field, json!("é".repeat(250))),
            400,
            "was not found",
        )
        .await;
    }
    for field in ["fromFeed", "toFeed"] {
        for bad in ["unapproved\0npm", "unapproved npm", "a/b", "ü"] {
            app.promote_refused(
                &key,
                &with(&base, field, json!(bad)),
                400,
                &format!("Field \"{field}\" must be 1 to 100 letters, digits, '-', '_' or '.'."),
            )
            .await;
        }
    }
    app.promote_refused(
        &key,
        &with(&base, "comments", json!("x".repeat(4001))),
        400,
        "Field \"comments\" must be at most 4000 characters long.",
    )
    .await;
    app.promote_refused(
        &key,
        &with(&base, "comments", json!("ok\0")),
        400,
        "Field \"comments\" must not contain control characters",
    )
    .await;

    let long_comment = "é\n".repeat(2000);
    let reply = app
        .promote(&key, &with(&base, "comments", json!(long_comment)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        app.history().await[0].comments.as_deref(),
        Some(long_comment.as_str())
    );
}

async fn feeds_must_differ_exist_be_enabled_and_share_a_type(app: TestApp) {
    let key = app.npm_setup().await;
    app.feed("approved-nuget", FeedType::Nuget).await;
    let base = babel_promotion();

    app.promote_refused(
        &key,
        &with(&base, "toFeed", json!("Unapproved-NPM")),
        400,
        "Fields \"fromFeed\" and \"toFeed\" both name feed \"unapproved-npm\"",
    )
    .await;
    app.promote_refused(
        &key,
        &with(&base, "fromFeed", json!("nowhere")),
        400,
        "Field \"fromFeed\" names feed \"nowhere\", which does not exist.",
    )
    .await;
    app.promote_refused(
        &key,
        &with(&base, "toFeed", json!("nowhere")),
        400,
        "Field \"toFeed\" names feed \"nowhere\", which does not exist.",
    )
    .await;
    app.promote_refused(&key, &with(&base, "toFeed", json!("approved-nuget")), 400,
        "Packages can only be promoted between feeds of the same type: \"unapproved-npm\" is an npm feed and \"approved-nuget\" is a nuget feed.")
        .await;

    for (feed, field) in [("approved-npm", "toFeed"), ("unapproved-npm", "fromFeed")] {
        let name = promoter::domain::FeedName::parse(feed).unwrap();
        app.store.set_feed_active(&name, false).await.unwrap();
        app.promote_refused(
            &key,
            &base,
            400,
            &format!("Field \"{field}\" names feed \"{feed}\", which is disabled."),
        )
        .await;
        app.store.set_feed_active(&name, true).await.unwrap();
    }
    // Feed names compare case-insensitively; the record keeps the feeds' own names.
    let reply = app
        .promote(&key, &with(&base, "toFeed", json!("APPROVED-npm")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["toFeed"], "approved-npm");
}

async fn a_fixed_promotion_target_is_enforced(app: TestApp) {
    let key = app.system_key().await;
    app.feed("approved-pypi", FeedType::Pypi).await;
    app.feed("other-pypi", FeedType::Pypi).await;
    let source = app
        .feed_promoting_to("unapproved-pypi", FeedType::Pypi, "approved-pypi")
        .await;
    app.package(&source, None, "Django", "5.0.6", "file=Django-5.0.6.tar.gz")
        .await;
    let body = json!({"fromFeed": "unapproved-pypi", "toFeed": "other-pypi",
        "name": "django", "version": "5.0.6"});
    app.promote_refused(&key, &body, 400,
        "Feed \"unapproved-pypi\" only promotes to feed \"approved-pypi\", so toFeed \"other-pypi\" is not allowed.")
        .await;
    let reply = app
        .promote(&key, &with(&body, "toFeed", json!("approved-pypi")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn the_version_must_be_in_the_source_and_not_in_the_target(app: TestApp) {
    let key = app.npm_setup().await;
    let base = babel_promotion();
    app.promote_refused(
        &key,
        &with(&base, "version", json!("7.21.1")),
        400,
        "Package @babel/runtime 7.21.1 was not found in feed \"unapproved-npm\".",
    )
    .await;
    app.promote_refused(
        &key,
        &with(&base, "group", Value::Null),
        400,
        "Package runtime 7.21.0 was not found in feed \"unapproved-npm\".",
    )
    .await;

    // The same version already in the target: refused, and neither copy moves.
    let (_, target) = app
        .store
        .feed_pair(
            &promoter::domain::FeedName::parse("unapproved-npm").unwrap(),
            &promoter::domain::FeedName::parse("approved-npm").unwrap(),
        )
        .await
        .unwrap();
    app.package(
        &target.unwrap(),
        Some("@babel"),
        "runtime",
        "7.21.0",
        "other-file",
    )
    .await;
    app.promote_refused(&key, &base, 400,
        "Package @babel/runtime 7.21.0 already exists in feed \"approved-npm\", so nothing was promoted.")
        .await;
}

async fn bodies_over_64_kib_get_413(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    // Exactly 64 KiB is accepted: pad with an unknown field.
    let padded = |total: usize| {
        let mut body = babel_promotion();
        let without = body.to_string().len() + r#","pad":"""#.len();
        body["pad"] = json!("x".repeat(total - without));
        let text = body.to_string();
        assert_eq!(text.len(), total);
        text
    };
    let too_big = padded(64 * 1024 + 1);
    let declared = app
        .post(
            "/api/promotions/promote",
            &[("X-ApiKey", &key)],
            Some("application/json"),
            too_big.clone(),
        )
        .await;
    declared.assert_error(413, "larger than the limit of 64 KiB");
    // Chunked, with no Content-Length, as pgutil sends.
    let stream = futures::stream::iter(
        too_big
            .into_bytes()
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let chunked = app
        .post(
            "/api/promotions/promote",
            &[("X-ApiKey", &key)],
            Some("application/json"),
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    chunked.assert_error(413, "larger than the limit of 64 KiB");
    assert_eq!(app.snapshot().await, before);

    let at_limit = app
        .post(
            "/api/promotions/promote",
            &[("X-ApiKey", &key)],
            Some("application/json"),
            padded(64 * 1024),
        )
        .await;
    assert_eq!(at_limit.status, 200, "{}", at_limit.body);
}

async fn other_content_types_get_415(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.snapshot().await;
    let body = babel_promotion().to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let reply = app
            .post(
                "/api/promotions/promote",
                &[("X-ApiKey", &key)],
                content_type,
                body.clone(),
            )
            .await;
        reply.assert_error(415, "application/json or application/x-www-form-urlencoded");
    }
    // Without a key the answer is 403: the key is checked before the body.
    let reply = app
        .post("/api/promotions/promote", &[], Some("text/plain"), body)
        .await;
    reply.assert_error(403, FORBIDDEN);
    assert_eq!(app.snapshot().await, before);
}

async fn unknown_paths_and_methods_get_text_errors(app: TestApp) {
    let reply = app.post("/api/promotions/nope", &[], None, "").await;
    reply.assert_error(404, "There is no endpoint at this path.");
    let get = app
        .client
        .get(app.url("/api/promotions/promote"))
        .send()
        .await
        .unwrap();
    let reply = crate::helpers::Reply::read(get).await;
    reply.assert_error(405, "does not accept that HTTP method");
    assert!(reply.headers.contains_key("allow"));
}
