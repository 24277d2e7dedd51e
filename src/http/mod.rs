//! The HTTP surface: routes, shared state, and the layers every request passes.

mod api_keys;
mod auth;
pub mod connections;
mod error;
mod feeds;
mod health;
mod history;
mod input;
pub mod limits;
mod metrics;
pub mod native;
mod openapi;
mod package_content;
mod packages;
mod promotions;
pub mod request_log;
mod web;
mod webhooks;

pub use promotions::parse_promotion;

use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Limits;
use crate::error::Error;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiContext {
    pub store: Store,
    /// `/health`'s last diagnosis of an unreachable database (see `health.rs`).
    pub diagnosis: health::DiagnosisCache,
    /// Whether webhooks may call loopback and private addresses.
    pub allow_private_webhooks: bool,
    /// The SHA-256 of the token `/metrics` asks for, if one is set.
    pub metrics_token_hash: Option<String>,
    pub limits: limits::Limiters,
    /// The body limits (`--body-limit-kib`, `--batch-body-limit-kib`).
    pub body_limits: BodyLimits,
    /// `GET /api/openapi.json`'s answer.
    pub openapi: std::sync::Arc<str>,
    /// Where package files are stored, and how large an upload may be.
    pub content: crate::content::Settings,
    /// `--public-url`: the base of absolute URLs in native metadata.
    pub public_url: Option<native::PublicUrl>,
    /// Native metadata documents as last rendered.
    pub documents: std::sync::Arc<native::Documents>,
    /// The feeds' connectors' client and what it keeps (contract section 16).
    pub upstreams: std::sync::Arc<crate::connectors::Upstreams>,
}

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub body: usize,
    pub batch: usize,
}

pub fn router(
    store: Store,
    allow_private_webhooks: bool,
    metrics_token: Option<&str>,
    limiters: limits::Limiters,
    settings: Limits,
    content: crate::content::Settings,
    native: native::Settings,
) -> Router {
    // Every database statement gives up well before the request timeout
    // (`Limits` checks that at start-up), so a request is not answered 408
    // while its transaction goes on to commit.
    let request_timeout = settings.request_timeout;
    let (routes, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(metrics::router())
        .merge(promotions::router())
        .merge(history::router())
        .merge(feeds::router())
        .merge(api_keys::router())
        .merge(packages::router())
        .merge(health::router())
        .merge(webhooks::router())
        .merge(web::router())
        .merge(openapi::router())
        .split_for_parts();
    // Uploads and downloads take as long as the network needs: no request
    // timeout (an upload gives up when its body stalls instead).
    let (streaming, streaming_doc) = package_content::router().split_for_parts();
    doc.merge(streaming_doc);
    // The native endpoints (contract section 12) serve files too; they are
    // protocols of their own, documented in docs/api.md, not in OpenAPI.
    let streaming = streaming.merge(native::router());
    routes
        .layer(middleware::from_fn(move |request, next| {
            stamp_deadline(request, next, request_timeout)
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .merge(streaming)
        .layer(middleware::map_response(ensure_text_body))
        // A panicking handler is answered 500 like any other unexpected
        // error, and logged on the request's line.
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Error::Internal(anyhow::anyhow!("a handler panicked: {message}")).into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            limiters.clone(),
            limits::limit_by_address,
        ))
        // Outermost, so that its line covers what the layers inside answer
        // (a 408, a 413, a 429, a panic) too.
        .layer(middleware::from_fn(request_log::log_request))
        .with_state(ApiContext {
            store,
            diagnosis: health::DiagnosisCache::default(),
            allow_private_webhooks,
            metrics_token_hash: metrics_token.map(crate::domain::sha256_hex),
            limits: limiters,
            body_limits: BodyLimits {
                body: settings.body_limit,
                batch: settings.batch_body_limit,
            },
            openapi: openapi::render(doc),
            content,
            public_url: native.public_url,
            documents: Default::default(),
            upstreams: std::sync::Arc::new(crate::connectors::Upstreams::new(native.connectors)),
        })
}

/// When the answer to a request is due: the moment the timeout layer gives up
/// on it. A write that could not finish before then must not start, or the
/// caller would hear 408 about a change that then commits.
#[derive(Debug, Clone, Copy)]
pub struct AnswerDue(pub Instant);

impl<S: Send + Sync> FromRequestParts<S> for AnswerDue {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<AnswerDue>()
            .copied()
            // Outside the router's layers nothing is due later than now:
            // such a caller must not start a write it cannot finish in time.
            .unwrap_or_else(|| AnswerDue(Instant::now())))
    }
}

/// Runs just inside the timeout layer, so both start their clocks together.
async fn stamp_deadline(mut request: Request, next: Next, timeout: Duration) -> Response {
    request
        .extensions_mut()
        .insert(AnswerDue(Instant::now() + timeout));
    next.run(request).await
}

/// Gives the bodiless errors that axum and tower-http make themselves (404, 405,
/// 408) the same one-sentence text body as ours.
async fn ensure_text_body(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let sentence = match status {
        StatusCode::NOT_FOUND => "There is no endpoint at this path.".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "This endpoint does not accept that HTTP method.".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was abandoned.".to_owned(),
        other => format!("{}.", other.canonical_reason().unwrap_or("Error")),
    };
    let mut replaced = error::text(status, sentence);
    // Keep headers such as Allow on a 405.
    for (name, value) in response.headers() {
        replaced.headers_mut().entry(name).or_insert(value.clone());
    }
    replaced
}
