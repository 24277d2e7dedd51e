//! `GET /health`, in the shape of ProGet's health endpoint (what `pgutil health`
//! and `pgutil sources test` read). No key needed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::Always;
use super::ApiContext;
use crate::error::{describe, unavailable_reason};

/// How long the database may take to answer before it is reported down.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Serialize, ToSchema)]
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

/// ProGet's health check, without a key: for load balancers and probes.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Whether the server and its database answer",
    responses(
        (status = 200, description = "Everything answers.", body = HealthInfo),
        (status = 503, description = "The database does not answer; `databaseStatusDetails` says why, naming no host or user.", body = HealthInfo),
        Always
    )
)]
async fn health(State(ctx): State<ApiContext>) -> (StatusCode, Json<HealthInfo>) {
    let problem = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, ctx.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(diagnose(&ctx, Some(error)).await),
        Err(_) => Some(diagnose(&ctx, None).await),
    };
    let status = if problem.is_some() {
        tracing::warn!(
            details = problem.as_deref(),
            "health check: database unavailable"
        );
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

/// How long one diagnosis answers every `/health` call: probes and load
/// balancers call it often, and each diagnosis opens a connection of its own.
const DIAGNOSIS_REUSE: Duration = Duration::from_secs(5);

/// The last diagnosis and when it was made. Its lock also makes concurrent
/// calls wait for one diagnosis instead of each opening a connection.
#[derive(Clone, Default)]
pub struct DiagnosisCache(Arc<Mutex<Option<(Instant, String)>>>);

/// One fixed sentence saying why the database did not answer, safe to show
/// without a key: never the driver's text, which can name hosts and users (that
/// goes to the log). A pool that timed out or lost a connection does not say why
/// the server cannot be reached, so then a connection of our own finds the cause.
async fn diagnose(ctx: &ApiContext, error: Option<sqlx::Error>) -> String {
    let mut cached = ctx.diagnosis.0.lock().await;
    if let Some((at, sentence)) = cached.as_ref() {
        if at.elapsed() < DIAGNOSIS_REUSE {
            return sentence.clone();
        }
    }
    let sentence = find_cause(ctx, error).await;
    *cached = Some((Instant::now(), sentence.clone()));
    sentence
}

async fn find_cause(ctx: &ApiContext, error: Option<sqlx::Error>) -> String {
    let connection_trouble = error
        .as_ref()
        .is_none_or(|e| unavailable_reason(e).is_some());
    let error = if connection_trouble {
        match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, ctx.store.diagnose_connection()).await {
            Ok(Some(cause)) => Some(cause),
            // A fresh connection works: the pool's trouble was passing.
            Ok(None) => error,
            Err(_) => None,
        }
    } else {
        error
    };
    let Some(error) = error else {
        return format!(
            "The {} database did not answer within {} seconds.",
            ctx.store.backend(),
            DATABASE_CHECK_TIMEOUT.as_secs()
        );
    };
    tracing::warn!(error = %describe(&error), "health check: database error");
    format!(
        "The {} database is unavailable: {}.",
        ctx.store.backend(),
        cause_phrase(&error)
    )
}

/// What went wrong, in words that name no host, user or database.
fn cause_phrase(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "the server refused the connection"
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            "the connection timed out"
        }
        sqlx::Error::Tls(_) => "the TLS handshake failed",
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => "the server refused the configured credentials",
            Some("3D000") => "the configured database does not exist",
            Some("57P03") => "the server is starting up or shutting down",
            Some("53300") => "the server has no connection slots left",
            _ => "the server answered with an error",
        },
        other => unavailable_reason(other).unwrap_or("the connection failed"),
    }
}
