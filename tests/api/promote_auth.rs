//! Key carriers, key kinds and the permission rule (promote on the target, view on
//! the source), and the contract's order of checks.

use base64::Engine;
use chrono::{Duration, Utc};
use promoter::domain::{FeedName, FeedType};
use promoter::store::KeyScope;
use serde_json::json;

use crate::helpers::{babel_promotion, with, TestApp, FORBIDDEN};

both_backends!(
    every_key_carrier_is_accepted,
    refused_keys_all_get_the_same_403,
    the_key_is_checked_before_the_body,
    feeds_outside_a_keys_scope_are_403_even_when_missing,
    the_first_carrier_found_wins,
    group_keys_promote_within_their_group,
);

fn basic(user: &str, key: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"));
    format!("Basic {token}")
}

fn form(version: &str, extra: &str) -> String {
    format!(
        "fromFeed=unapproved-npm&toFeed=approved-npm&group=%40babel&name=runtime&version={version}{extra}"
    )
}

async fn every_key_carrier_is_accepted(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app
        .store
        .existing_feed(&FeedName::parse("unapproved-npm").unwrap())
        .await
        .unwrap();
    for version in ["1", "2", "3", "4", "5", "6"] {
        app.package(&source, Some("babel"), "runtime", version, "")
            .await;
    }
    let json_body = |version: &str| with(&babel_promotion(), "version", json!(version)).to_string();
    let json_type = Some("application/json");
    let form_type = Some("application/x-www-form-urlencoded");
    let path = "/api/promotions/promote";
    let replies = [
        app.post(path, &[("X-ApiKey", &key)], json_type, json_body("1"))
            .await,
        app.post(
            path,
            &[("Authorization", &basic("api", &key))],
            json_type,
            json_body("2"),
        )
        .await,
        app.post(
            path,
            &[("Authorization", &format!("Bearer {key}"))],
            json_type,
            json_body("3"),
        )
        .await,
        app.post(&format!("{path}?key={key}"), &[], json_type, json_body("4"))
            .await,
        app.post(path, &[], form_type, form("5", &format!("&key={key}")))
            .await,
        app.post(
            path,
            &[],
            json_type,
            with(&babel_promotion(), "version", json!("6"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("API_Key".into(), json!(key));
                    serde_json::Value::Object(o).to_string()
                })
                .unwrap(),
        )
        .await,
    ];
    for (carrier, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200, "carrier {carrier}: {}", reply.body);
    }
    let history = app.history().await;
    assert_eq!(history.len(), 6);
    assert!(history.iter().all(|h| h.user_name == "ci-key"));
}

async fn refused_keys_all_get_the_same_403(app: TestApp) {
    let system = app.npm_setup().await;
    app.feed("unapproved-nuget", FeedType::Nuget).await;
    app.group("npm", &["unapproved-npm", "approved-npm"]).await;
    app.group("nuget", &["unapproved-nuget"]).await;
    let body = babel_promotion();

    let (expired, _) = app
        .system_key_expiring("expired", Some(Utc::now() - Duration::seconds(1)))
        .await;
    let (revoked, revoked_id) = app
        .system_key_expiring("revoked", Some(Utc::now() + Duration::days(1)))
        .await;
    assert!(app.store.revoke_key(revoked_id).await.unwrap());
    let group = |name: &str| KeyScope::Group(FeedName::parse(name).unwrap());
    let feed = |name: &str| KeyScope::Feed(FeedName::parse(name).unwrap());
    let wrong_group = app
        .key("wrong-group", group("nuget"), "view,add,promote,delete")
        .await;
    let view_only = app.key("view-only", group("npm"), "view").await;
    let promote_only = app.key("promote-only", group("npm"), "promote").await;
    let source_only = app
        .key(
            "source-only",
            feed("unapproved-npm"),
            "view,add,promote,delete",
        )
        .await;
    let target_only = app
        .key(
            "target-only",
            feed("approved-npm"),
            "view,add,promote,delete",
        )
        .await;
    let system_without_promote = app
        .key("no-promote", KeyScope::System, "view,add,delete,manage")
        .await;

    for (case, key) in [
        ("unknown", "0123456789abcdef".to_owned()),
        ("empty", String::new()),
        ("pgutil user:password", "admin:admin".to_owned()),
        ("expired", expired),
        ("revoked", revoked),
        ("feed group without these feeds", wrong_group),
        ("view only", view_only),
        ("promote without view on the source", promote_only),
        ("key for the source feed only", source_only),
        ("key for the target feed only", target_only),
        ("system key without promote", system_without_promote),
    ] {
        let before = app.snapshot().await;
        let reply = app.promote(&key, &body).await;
        assert_eq!(reply.status, 403, "{case}: {}", reply.body);
        assert_eq!(reply.body, format!("{FORBIDDEN}\n"), "{case}");
        assert!(reply.content_type.starts_with("text/plain"), "{case}");
        assert_eq!(app.snapshot().await, before, "{case}");
    }

    let path = "/api/promotions/promote";
    let text = body.to_string();
    let json_type = Some("application/json");
    for reply in [
        app.post(path, &[], json_type, text.clone()).await,
        app.post(
            path,
            &[("Authorization", &basic("admin", &system))],
            json_type,
            text.clone(),
        )
        .await,
        app.post(
            path,
            &[("Authorization", "Negotiate abc")],
            json_type,
            text.clone(),
        )
        .await,
        app.post(&format!("{path}?key=nope"), &[], json_type, text.clone())
            .await,
    ] {
        assert_eq!((reply.status, reply.body.trim_end()), (403, FORBIDDEN));
    }
    assert!(app.history().await.is_empty());
}

async fn the_key_is_checked_before_the_body(app: TestApp) {
    app.npm_setup().await;
    let path = "/api/promotions/promote";
    for (headers, body) in [
        (vec![], "{not json"),
        (vec![("X-ApiKey", "unknown")], "{not json"),
        (vec![("X-ApiKey", "unknown")], "{}"),
        (
            vec![("X-ApiKey", "unknown")],
            r#"{"fromFeed":"a","toFeed":"a"}"#,
        ),
    ] {
        let reply = app
            .post(path, &headers, Some("application/json"), body)
            .await;
        reply.assert_error(403, FORBIDDEN);
    }
}

async fn feeds_outside_a_keys_scope_are_403_even_when_missing(app: TestApp) {
    let system = app.npm_setup().await;
    app.group("npm", &["unapproved-npm", "approved-npm"]).await;
    let group_key = app
        .key(
            "npm-promoter",
            KeyScope::Group(FeedName::parse("npm").unwrap()),
            "view,promote",
        )
        .await;
    for field in ["fromFeed", "toFeed"] {
        let body = with(&babel_promotion(), field, json!("does-not-exist"));
        // A scoped key cannot tell a missing feed from one it may not see...
        app.promote_refused(&group_key, &body, 403, FORBIDDEN).await;
        // ...while a system key, whose scope covers every feed, is told.
        app.promote_refused(&system, &body, 400, "which does not exist")
            .await;
    }
}

async fn the_first_carrier_found_wins(app: TestApp) {
    let key = app.npm_setup().await;
    let path = format!("/api/promotions/promote?key={key}");
    let body = babel_promotion().to_string();
    let reply = app
        .post(
            &path,
            &[("X-ApiKey", "wrong")],
            Some("application/json"),
            body.clone(),
        )
        .await;
    reply.assert_error(403, FORBIDDEN);
    let reply = app
        .post(
            &path,
            &[("Authorization", "Bearer wrong")],
            Some("application/json"),
            body,
        )
        .await;
    reply.assert_error(403, FORBIDDEN);
    // A header key beats one in the body.
    let reply = app
        .post(
            "/api/promotions/promote",
            &[("X-ApiKey", "wrong")],
            Some("application/x-www-form-urlencoded"),
            form("7.21.0", &format!("&key={key}")),
        )
        .await;
    reply.assert_error(403, FORBIDDEN);
}

async fn group_keys_promote_within_their_group(app: TestApp) {
    app.npm_setup().await;
    app.group("npm", &["unapproved-npm", "approved-npm"]).await;
    let key = app
        .key(
            "release-bot",
            KeyScope::Group(FeedName::parse("NPM").unwrap()),
            "view,promote",
        )
        .await;
    let reply = app.promote(&key, &babel_promotion()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["user"], "release-bot");
    let history = app.history().await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].user_name, "release-bot");
}
