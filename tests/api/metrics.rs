//! `GET /metrics`: the Prometheus text format, counting requests by route
//! pattern and status, promotions by outcome, the pool and the webhook outbox;
//! and, with a token set, only for those who present it.

use std::collections::HashMap;

use promoter::startup::Application;

use crate::helpers::{babel_promotion, serve, with, Backend, TestApp};

both_backends!(promotions_and_requests_are_counted_by_outcome_and_route);

/// The samples of a scrape, by name and labels as written, after checking
/// that every line is a comment or `name{labels} value`.
fn samples(body: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("TYPE ") || comment.starts_with("HELP "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "{line}");
        }
        samples.insert(series.to_owned(), value.parse::<f64>().unwrap());
    }
    samples
}

impl TestApp {
    async fn scrape(&self) -> HashMap<String, f64> {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        samples(&response.text().await.unwrap())
    }
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

async fn promotions_and_requests_are_counted_by_outcome_and_route(app: TestApp) {
    let key = app.npm_setup().await;
    let before = app.scrape().await;

    let dry = with(&babel_promotion(), "dryRun", serde_json::json!(true));
    assert_eq!(app.promote(&key, &dry).await.status, 200);
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 400);
    let secret = "s3cr3t-in-a-query-string";
    let listed = app
        .client
        .get(app.url(&format!("/api/packages/approved-npm?key={secret}")))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 403);

    let after = app.scrape().await;
    let grew = |series: &str| value(&after, series) - value(&before, series);
    // Other tests in this process count too: at least ours.
    for outcome in ["dry_run", "promoted", "refused_not_in_source"] {
        let series = format!("promoter_promotions_total{{outcome=\"{outcome}\"}}");
        assert!(grew(&series) >= 1.0, "{series} did not grow");
    }
    let promote_200 = "promoter_http_requests_total{method=\"POST\",route=\"/api/promotions/promote\",status=\"200\"}";
    assert!(grew(promote_200) >= 2.0, "{promote_200}");
    let listed_403 = "promoter_http_requests_total{method=\"GET\",route=\"/api/packages/{feed}\",status=\"403\"}";
    assert!(grew(listed_403) >= 1.0, "{listed_403}");
    let latency = "promoter_http_request_duration_seconds_count{method=\"POST\",route=\"/api/promotions/promote\"}";
    assert!(grew(latency) >= 3.0, "{latency}");
    assert!(after.keys().all(|series| !series.contains(secret)));
    assert!(after.keys().all(|series| !series.contains("approved-npm?")));

    assert!(value(&after, "promoter_db_pool_max_connections") >= 1.0);
    assert!(after.contains_key("promoter_db_pool_connections{state=\"idle\"}"));
    assert!(after.contains_key("promoter_webhook_outbox_pending"));
    assert!(after
        .keys()
        .any(|series| series.starts_with("promoter_cache_lookups_total{")));
}

/// With a token set, `/metrics` answers only a bearer of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_is_asked_for_when_set() {
    let database = crate::helpers::TestDatabase::fresh(Backend::Sqlite).await;
    let app = Application::build("127.0.0.1:0", &database.url)
        .await
        .unwrap()
        .metrics_token(Some("scrape-me-please".to_owned()));
    let url = format!("{}/metrics", serve(app));
    let client = reqwest::Client::new();

    for authorization in [None, Some("Bearer wrong"), Some("scrape-me-please")] {
        let mut request = client.get(&url);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        assert!(refused.text().await.unwrap().contains("Authorization"));
    }
    let allowed = client
        .get(&url)
        .header("Authorization", "Bearer scrape-me-please")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(allowed
        .text()
        .await
        .unwrap()
        .contains("promoter_db_pool_max_connections"));
}
