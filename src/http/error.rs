//! The only place where error responses are made: a status and a one-sentence
//! `text/plain` body per `Error` variant.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{describe, Error, FORBIDDEN_TEXT};

/// The challenge of a 401 on the native endpoints.
pub const CHALLENGE: &str = "Basic realm=\"Promoter\"";

/// Seconds a client is asked to wait when the database is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Error::Forbidden => (StatusCode::FORBIDDEN, FORBIDDEN_TEXT.to_owned()),
            Error::Invalid(message) => (StatusCode::BAD_REQUEST, message.clone()),
            Error::NotFound(message) => (StatusCode::NOT_FOUND, message.clone()),
            Error::AlreadyExists(message) => (StatusCode::BAD_REQUEST, message.clone()),
            Error::MethodNotAllowed(message) => (StatusCode::METHOD_NOT_ALLOWED, message.clone()),
            Error::Upstream(message) => (StatusCode::BAD_GATEWAY, message.clone()),
            Error::Unauthenticated => {
                let mut response = text(StatusCode::UNAUTHORIZED, self.to_string());
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
                return response;
            }
            Error::PayloadTooLarge { .. } | Error::UploadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, self.to_string())
            }
            Error::UploadStalled { .. } => (StatusCode::REQUEST_TIMEOUT, self.to_string()),
            Error::TooManyRequests {
                retry_after_secs, ..
            } => {
                let mut response = text(StatusCode::TOO_MANY_REQUESTS, self.to_string());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                return response;
            }
            Error::UnsupportedMediaType
            | Error::UnsupportedBatchMediaType
            | Error::UnsupportedUpload => (StatusCode::UNSUPPORTED_MEDIA_TYPE, self.to_string()),
            Error::Unavailable { reason, .. } => {
                let mut response = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The database is unavailable ({reason}); try again in a few seconds."),
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                // On the request's one line (see `request_log`).
                response.extensions_mut().insert(Failure {
                    id: uuid::Uuid::new_v4(),
                    error: describe(&self),
                });
                return response;
            }
            Error::Database(_) | Error::Internal(_) => {
                // The details go to the log only; the caller gets an id to quote.
                let failure = Failure {
                    id: uuid::Uuid::new_v4(),
                    error: describe(&self),
                };
                let mut response = text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "An unexpected error occurred; quote error id {} when reporting it.",
                        failure.id
                    ),
                );
                response.extensions_mut().insert(failure);
                return response;
            }
        };
        text(status, body)
    }
}

/// What went wrong behind a 5xx, for the request's log line only (see
/// `request_log`): the caller sees the id, never the description.
#[derive(Debug, Clone)]
pub struct Failure {
    pub id: uuid::Uuid,
    pub error: String,
}

pub fn text(status: StatusCode, mut body: String) -> Response {
    // One line, ended as a line: curl prints the prompt after it, not on it.
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An RFC 9457 problem: a 400 whose `items` name every item that failed (the
/// batch and revert endpoints' refusals). The type is also the OpenAPI
/// document's schema of those answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Problem<T> {
    /// Always `about:blank`: the status says it all.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    pub detail: String,
    /// Every item that cannot move, with its `reason` (absent when the request
    /// as a whole is refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<T>,
}

impl<T> Problem<T> {
    pub fn new(detail: String, items: Vec<T>) -> Problem<T> {
        Problem {
            kind: "about:blank",
            title: "Bad Request",
            status: 400,
            detail,
            items,
        }
    }
}

impl Problem<()> {
    /// A request-level refusal: `detail` only. Errors other than 400 keep
    /// their own answers (403's fixed text, 413, 503 …).
    pub fn from_error(error: Error) -> Response {
        match error {
            Error::Invalid(detail) => Problem::<()>::new(detail, Vec::new()).into_response(),
            other => other.into_response(),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Problem<T> {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&self).expect("a problem serialises"),
        )
            .into_response()
    }
}
