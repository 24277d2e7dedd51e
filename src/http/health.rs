//! `GET /health`, in the shape of ProGet's health endpoint (what `pgutil health`
//! and `pgutil sources test` read). No key needed.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::ApiContext;

/// How long the database may take to answer before it is reported down.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> Router<ApiContext> {
    Router::new().route("/health", get(health))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthInfo {
    application_name: &'static str,
    database_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_status_details: Option<String>,
    license_status: &'static str,
    version_number: &'static str,
    release_number: &'static str,
    service_status: &'static str,
}

async fn health(State(ctx): State<ApiContext>) -> (StatusCode, Json<HealthInfo>) {
    let problem = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, ctx.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!(
            "The {} database did not answer: {error}",
            ctx.store.backend()
        )),
        Err(_) => Some(format!(
            "The {} database did not answer within {} seconds.",
            ctx.store.backend(),
            DATABASE_CHECK_TIMEOUT.as_secs()
        )),
    };
    let status = if problem.is_some() {
        tracing::warn!(details = problem.as_deref(), "health check: database down");
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let info = HealthInfo {
        application_name: "Promoter",
        database_status: if problem.is_some() { "Error" } else { "OK" },
        database_status_details: problem,
        license_status: "OK",
        version_number: env!("CARGO_PKG_VERSION"),
        release_number: env!("CARGO_PKG_VERSION"),
        service_status: "OK",
    };
    (status, Json(info))
}
