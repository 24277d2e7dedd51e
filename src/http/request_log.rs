//! One log line per request, and its request id: the caller's `X-Request-Id`
//! when it is sane, otherwise a new one; either way returned in `X-Request-Id`,
//! so that a caller can quote it and an operator find the line.
//!
//! The line names the route's pattern (`/api/packages/{feed}`), never the raw
//! path or the query string, which may carry an API key. A promotion adds its
//! feeds, package and key name to the same line (see `promotion::finish`); a
//! 5xx adds its error id and what went wrong (`http::error::Failure`) and is
//! written at level ERROR, once, on this line; a panic in a handler becomes
//! such a 500 (`router`'s catch-panic layer).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::Instrument;

use super::error::Failure;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller.
const MAX_ID_CHARS: usize = 64;

/// Wraps every request in the `request` span and writes its line when the
/// answer is ready.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        route = %route,
        key = Empty,
        from = Empty,
        to = Empty,
        package = Empty,
        promotion = Empty,
        outcome = Empty,
        batch = Empty,
        versions = Empty,
    );
    let method = method_label(request.method());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = (elapsed * 1000.0 * 100.0).round() / 100.0;
    let route_label = route.clone();
    metrics::counter!(
        crate::metrics::REQUESTS,
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(crate::metrics::REQUEST_SECONDS, "method" => method, "route" => route)
        .record(elapsed);
    // The line's fields are repeated on the event itself where it matters, so
    // that a 5xx keeps its id and cause even when INFO spans are filtered out.
    span.in_scope(|| match response.extensions().get::<Failure>() {
        Some(failure) => tracing::error!(
            id = %id,
            route = %route_label,
            status,
            latency_ms,
            error_id = %failure.id,
            error = %failure.error,
            "answered"
        ),
        None if status >= 500 => {
            tracing::error!(id = %id, route = %route_label, status, latency_ms, "answered")
        }
        None if status == 408 => tracing::warn!(status, latency_ms, "answered"),
        // Health checks poll every few seconds: their successes are noise.
        None if route_label == "/health" && status < 400 => {
            tracing::debug!(status, latency_ms, "answered")
        }
        None => tracing::info!(status, latency_ms, "answered"),
    });
    let id = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// The method as a metric label. Any token is a valid HTTP method; only the
/// usual ones become labels, so that a caller cannot create series at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The caller's id when it is 1 to 64 letters, digits, `-`, `_`, `.` or `:`
/// (what tracing systems and proxies send), otherwise a new random one: an id
/// goes into every log line, so it must not be able to forge or break one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=MAX_ID_CHARS).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_str(id).unwrap());
        headers
    }

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(request_id(&with_id("abc-123_x.y:z")), "abc-123_x.y:z");
        for insane in ["", "a b", "x\"y", &"a".repeat(65), "é"] {
            let headers = if insane == "é" {
                let mut headers = HeaderMap::new();
                headers.insert(REQUEST_ID, HeaderValue::from_bytes("é".as_bytes()).unwrap());
                headers
            } else {
                with_id(insane)
            };
            let id = request_id(&headers);
            assert_eq!(id.len(), 32, "{insane:?} gave {id:?}");
            assert_ne!(id, insane);
        }
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}
