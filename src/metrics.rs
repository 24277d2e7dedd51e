//! Prometheus metrics: the one recorder of the process, and the names of what is
//! counted. `GET /metrics` renders them (`http::metrics`).
//!
//! | metric | labels | where it is counted |
//! |---|---|---|
//! | `promoter_http_requests_total` | method, route, status | every answer (`http::request_log`) |
//! | `promoter_http_request_duration_seconds` (histogram) | method, route | the same |
//! | `promoter_promotions_total` | outcome | each promotion, batch item and revert item (`promotion::count_outcomes`) |
//! | `promoter_group_commit_rounds_total` | | each round of single promotions that moved a version (`store::promotions::group`) |
//! | `promoter_group_commit_promotions_total` | | the versions those rounds moved (÷ rounds: the mean round) |
//! | `promoter_cache_lookups_total` | result (hit, miss, unheard) | feeds and keys (`store::cache`) |
//! | `promoter_webhook_deliveries_total` | outcome (delivered, retry, given_up) | each attempt (`webhooks::dispatcher`) |
//! | `promoter_connector_requests_total` | kind (metadata, file), outcome (ok, failed) | each request to an upstream (`connectors`) |
//! | `promoter_connector_cache_total` | kind (metadata, file), result (hit, miss) | upstream metadata kept or fetched; a file cached already or fetched |
//! | `promoter_connector_failures_total` | kind, reason (unreachable, timeout, server_error, integrity, …) | each upstream failure |
//! | `promoter_db_pool_connections` | state (in_use, idle) | at each scrape |
//! | `promoter_db_pool_max_connections` | | at each scrape |
//! | `promoter_webhook_outbox_pending` | | at each scrape |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "promoter_http_requests_total";
pub const REQUEST_SECONDS: &str = "promoter_http_request_duration_seconds";
pub const PROMOTIONS: &str = "promoter_promotions_total";
pub const GROUP_COMMIT_ROUNDS: &str = "promoter_group_commit_rounds_total";
pub const GROUP_COMMIT_PROMOTIONS: &str = "promoter_group_commit_promotions_total";
pub const CACHE_LOOKUPS: &str = "promoter_cache_lookups_total";
pub const WEBHOOK_DELIVERIES: &str = "promoter_webhook_deliveries_total";
pub const CONNECTOR_REQUESTS: &str = "promoter_connector_requests_total";
pub const CONNECTOR_CACHE: &str = "promoter_connector_cache_total";
pub const CONNECTOR_FAILURES: &str = "promoter_connector_failures_total";
pub const POOL_CONNECTIONS: &str = "promoter_db_pool_connections";
pub const POOL_MAX: &str = "promoter_db_pool_max_connections";
pub const OUTBOX_PENDING: &str = "promoter_webhook_outbox_pending";

/// Request latency buckets, in seconds: from a cached promotion to the request
/// timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use: one per process, however
/// many servers it runs (the tests run many).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.to_owned()), LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .install_recorder()
            .expect("nothing else installs a metrics recorder")
    })
}
