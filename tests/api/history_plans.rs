//! Every combination of history filters is answered through an index, checked on
//! PostgreSQL's plans over a quarter of a million history rows. A plan check, not
//! a timing: the plan does not depend on how busy the machine is.

use promoter::domain::{Identifier, PackageFilter};
use promoter::store::HistoryQuery;

use crate::helpers::{Backend, TestApp};

const ROWS: i64 = 240_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_history_filter_combination_uses_an_index() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // 24 feeds, four feed types, 3,000 package names, 40 versions, a scope on a
    // quarter of the rows: roughly what a busy repository accumulates.
    app.execute(&format!(
        "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, \
           to_feed_key, package_type, group_name, name, version, group_key, name_key, version_key, \
           comments, user_name, api_key_id, promoted_at) \
         SELECT f, t, 'feed-' || f, 'feed-' || t, 'feed-' || f, 'feed-' || t, \
           (ARRAY['npm', 'nuget', 'pypi', 'maven'])[1 + i % 4], g, n, v, g, n, v, \
           NULL, 'loader', NULL, now() - make_interval(secs => {ROWS} - i) \
         FROM (SELECT i, i % 24 AS f, (i + 1 + i % 5) % 24 AS t, \
                 CASE WHEN i % 4 = 0 THEN '@scope' || (i % 50) ELSE '' END AS g, \
                 'pkg' || (i % 3000) AS n, '1.' || (i % 40) || '.0' AS v \
               FROM generate_series(1, {ROWS}) AS s (i)) AS rows"
    ))
    .await;
    app.execute("ANALYZE promotions").await;
    assert_eq!(
        app.texts("SELECT COUNT(*)::text FROM promotions").await,
        [ROWS.to_string()]
    );

    let identifier = |text: &str| Some(Identifier::parse(text).unwrap());
    let mut checked = 0;
    for mask in 0..32u32 {
        let on = |bit: u32| mask & (1 << bit) != 0;
        let filter = PackageFilter {
            group: on(2).then(|| identifier("scope8")).flatten(),
            name: on(3).then(|| identifier("pkg408")).flatten(),
            version: on(4).then(|| identifier("1.8.0")).flatten(),
        };
        let base = HistoryQuery {
            from_feed_key: on(0).then(|| "feed-3".to_owned()),
            to_feed_key: on(1).then(|| "feed-5".to_owned()),
            batch_id: None,
            package: filter.keys(),
            visible_feed_ids: None,
            before_id: None,
            limit: 1001,
            ..Default::default()
        };
        let variants = [
            base.clone(),
            // A key scoped to three feeds, on a later page.
            HistoryQuery {
                visible_feed_ids: Some(vec![3, 4, 5]),
                before_id: Some(ROWS / 2),
                ..base.clone()
            },
            // The history page: one feed on either side, the page before another.
            HistoryQuery {
                feed_key: Some("feed-4".to_owned()),
                after_id: Some(ROWS / 2),
                ..base.clone()
            },
        ];
        for query in variants {
            let plan = app.store.explain_history(&query).await.unwrap().unwrap();
            assert!(
                !plan.contains("Seq Scan") && plan.contains("Index"),
                "filter combination {mask:05b} ({query:?}) is not served by an index:\n{plan}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 96);
}
