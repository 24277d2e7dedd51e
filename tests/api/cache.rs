//! What a serving process keeps in memory of the feeds and keys (src/store/cache.rs):
//! a change made by another process, or by hand in SQL, is heard within 100 ms;
//! this process's own changes at once; and nothing kept ever turns a refusal
//! into a wrong 200 or the other way round for longer than that.

use std::time::Duration;

use promoter::store::{Db, KeyScope};

use crate::helpers::{babel_promotion, Reply, TestApp};

/// The bound the cache promises for a change made elsewhere.
const BOUND: Duration = Duration::from_millis(100);

both_backends!(
    a_revoked_key_stops_working_on_every_server_within_the_bound,
    a_key_revoked_by_hand_stops_working_within_the_bound,
    a_feed_disabled_by_hand_refuses_promotions_at_once,
    a_feed_created_elsewhere_can_be_used_at_once,
    a_group_given_a_feed_by_hand_is_heard_within_the_bound,
    a_server_keeps_the_keys_it_has_used,
);

impl TestApp {
    /// Another server on the same database, once it has had time to start
    /// listening for changes (until then it keeps nothing, and a test of what
    /// it keeps would prove nothing).
    async fn listening_instance(&self) -> String {
        let address = self.another_instance().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        address
    }

    /// Changes to feeds made from now on go unannounced (the triggers of
    /// migration 0007 are off), so that a server keeps its out-of-date feeds
    /// for as long as a test needs, as it might for a moment.
    async fn silence_feed_changes(&self) {
        match self.store.db() {
            Db::Postgres(_) => {
                self.execute("ALTER TABLE feeds DISABLE TRIGGER feeds_catalog_changed")
                    .await
            }
            Db::Sqlite(..) => {
                for trigger in ["feeds_inserted", "feeds_updated", "feeds_deleted"] {
                    self.execute(&format!("DROP TRIGGER {trigger}")).await;
                }
            }
        }
    }

    /// The npm fixtures, a system key named `name` (its text and id), and
    /// another server: both servers have used the key, so both keep it.
    async fn key_used_on_two_servers(&self, name: &str) -> (String, i64, String) {
        self.npm_setup().await;
        let (key, id) = self.system_key_expiring(name, None).await;
        let other = self.listening_instance().await;
        for address in [&self.address, &other] {
            self.expect_status(address, "/api/packages/unapproved-npm", &key, 200)
                .await;
        }
        (key, id, other)
    }

    /// GETs `path` on the server at `address` with `key`, and checks the
    /// status of the answer.
    async fn expect_status(&self, address: &str, path: &str, key: &str, status: u16) {
        let reply = Reply::read(self.get_from(address, path, key).await).await;
        assert_eq!(
            reply.status, status,
            "GET {path} on {address}: {}",
            reply.body
        );
    }
}

async fn a_revoked_key_stops_working_on_every_server_within_the_bound(app: TestApp) {
    let (key, id, other) = app.key_used_on_two_servers("revoked-soon").await;

    assert!(app.store.revoke_key(id).await.unwrap());
    // The server whose store made the change forgets at once.
    app.expect_status(&app.address, "/api/packages/unapproved-npm", &key, 403)
        .await;
    tokio::time::sleep(BOUND).await;
    app.expect_status(&other, "/api/packages/unapproved-npm", &key, 403)
        .await;
    assert_eq!(app.promote_via(&other, &key).await.status, 403);
}

async fn a_key_revoked_by_hand_stops_working_within_the_bound(app: TestApp) {
    let (key, id, other) = app.key_used_on_two_servers("revoked-by-hand").await;

    app.execute(&format!(
        "UPDATE api_keys SET revoked_at = '2026-01-01T00:00:00Z' WHERE id = {id}"
    ))
    .await;
    tokio::time::sleep(BOUND).await;
    for address in [&app.address, &other] {
        app.expect_status(address, "/api/packages/unapproved-npm", &key, 403)
            .await;
    }
}

/// A promotion checks the feeds in the statement that moves the version, so
/// even a server that has not heard that a feed was disabled (the announcement
/// is switched off) refuses, with the reason, and changes nothing.
async fn a_feed_disabled_by_hand_refuses_promotions_at_once(app: TestApp) {
    let key = app.npm_setup().await;
    let other = app.listening_instance().await;
    // The other server reads (and keeps) the feeds.
    app.expect_status(&other, "/api/packages/approved-npm", &key, 200)
        .await;

    app.silence_feed_changes().await;
    app.execute("UPDATE feeds SET active = FALSE WHERE name = 'approved-npm'")
        .await;
    let before = app.snapshot().await;
    app.promote_via(&other, &key).await.assert_error(
        400,
        "Field \"toFeed\" names feed \"approved-npm\", which is disabled.",
    );
    assert_eq!(app.snapshot().await, before);

    app.execute("UPDATE feeds SET active = TRUE WHERE name = 'approved-npm'")
        .await;
    let reply = app.promote_via(&other, &key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A feed that a server has not heard of (the announcement is switched off) is
/// looked for in the database before the server says it does not exist.
async fn a_feed_created_elsewhere_can_be_used_at_once(app: TestApp) {
    let key = app.npm_setup().await;
    let other = app.listening_instance().await;
    app.expect_status(&other, "/api/packages/unapproved-npm", &key, 200)
        .await;

    app.silence_feed_changes().await;
    app.execute(
        "INSERT INTO feeds (name, name_key, feed_type, active, created_at) \
         VALUES ('released-npm', 'released-npm', 'npm', TRUE, '2026-01-01T00:00:00Z')",
    )
    .await;
    let body = crate::helpers::with(
        &babel_promotion(),
        "toFeed",
        serde_json::json!("released-npm"),
    );
    let reply = app
        .json_post_to(&other, "/api/promotions/promote", &key, &body)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["toFeed"], "released-npm");
}

async fn a_group_given_a_feed_by_hand_is_heard_within_the_bound(app: TestApp) {
    app.npm_setup().await;
    app.group("npm", &["unapproved-npm"]).await;
    let key = app
        .key(
            "group-viewer",
            KeyScope::Group(promoter::domain::FeedName::parse("npm").unwrap()),
            "view",
        )
        .await;
    let other = app.listening_instance().await;
    app.expect_status(&other, "/api/packages/unapproved-npm", &key, 200)
        .await;
    app.expect_status(&other, "/api/packages/approved-npm", &key, 403)
        .await;

    app.execute(
        "INSERT INTO feed_group_members (group_id, feed_id) \
         SELECT g.id, f.id FROM feed_groups g, feeds f \
         WHERE g.name = 'npm' AND f.name = 'approved-npm'",
    )
    .await;
    tokio::time::sleep(BOUND).await;
    app.expect_status(&other, "/api/packages/approved-npm", &key, 200)
        .await;
}

/// The other side of the bound: a server does keep what it has read (here a
/// key, revoked by hand with the announcement switched off), which is what
/// spares each request its key lookup.
async fn a_server_keeps_the_keys_it_has_used(app: TestApp) {
    let (key, id, other) = app.key_used_on_two_servers("kept").await;
    match app.store.db() {
        Db::Postgres(_) => {
            app.execute("ALTER TABLE api_keys DISABLE TRIGGER api_keys_catalog_changed")
                .await
        }
        Db::Sqlite(..) => app.execute("DROP TRIGGER api_keys_updated").await,
    }
    app.execute(&format!(
        "UPDATE api_keys SET revoked_at = '2026-01-01T00:00:00Z' WHERE id = {id}"
    ))
    .await;
    tokio::time::sleep(BOUND).await;
    app.expect_status(&other, "/api/packages/unapproved-npm", &key, 200)
        .await;
}
