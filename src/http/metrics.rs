//! `GET /metrics`: the Prometheus text format (see `crate::metrics` for what is
//! counted). Open by default, as scrape endpoints usually are inside a network;
//! with `--metrics-token` set it answers only `Authorization: Bearer TOKEN`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::text;
use super::openapi::Always;
use super::ApiContext;
use crate::domain::sha256_hex;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(scrape))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Metrics in the Prometheus text format",
    description = "Open unless the server has a metrics token (`--metrics-token`), which is then asked for as `Authorization: Bearer TOKEN`.",
    responses(
        (status = 200, description = "The Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain"),
        (status = 401, description = "The server has a metrics token and the request did not bear it.", body = String, content_type = "text/plain",
            headers(("WWW-Authenticate" = String))),
        Always
    ),
    security((), ("metricsToken" = []))
)]
async fn scrape(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    if let Some(token_hash) = &ctx.metrics_token_hash {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(crate::auth::bearer)
            .map(sha256_hex);
        // Hashes compared, so the comparison's time says nothing of the token.
        if presented.as_ref() != Some(token_hash) {
            // Wrong guesses count as failed authentications.
            if presented.is_some() {
                let refusal = ctx.limits.refused();
                if matches!(refusal, crate::error::Error::TooManyRequests { .. }) {
                    return refusal.into_response();
                }
            }
            let mut refused = text(
                StatusCode::UNAUTHORIZED,
                "Field \"Authorization\" must be \"Bearer\" and this server's metrics token."
                    .to_owned(),
            );
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refused;
        }
    }
    ctx.store.record_gauges().await;
    let handle = crate::metrics::handle();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
