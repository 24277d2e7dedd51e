//! Reading request input: bodies (JSON or form-encoded, at most 64 KiB) and query
//! strings, with names matched case-insensitively and legacy aliases.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use futures_util::StreamExt;

use super::ApiContext;
use crate::error::{Error, Result};

/// The `{name}` or `{feed}` segment of a path, decoded; a segment that is not
/// valid percent-encoded UTF-8 gets our one-sentence 400 rather than axum's.
pub struct PathName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathName {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(PathName(name)),
            Err(_) => Err(Error::invalid(
                "The feed name in the path is not valid percent-encoded UTF-8.",
            )),
        }
    }
}

/// How much beyond its limit a body is still read (and dropped) so that the
/// client can finish writing and read the 413.
const DRAIN_BYTES: usize = 1024 * 1024;

/// The body's length as its `Content-Length` declares it, when it does.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|len| len.parse::<u64>().ok())
}

/// How long a refused request's body is still read (and dropped) at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what a refused client is still sending, up to a mebibyte
/// and for a few seconds, so that it reads the answer rather than a
/// connection reset under it (a declared length over that is not waited for).
pub async fn discard_body(request: Request) {
    if declared_length(request.headers()).is_some_and(|len| len > DRAIN_BYTES as u64) {
        return;
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut body = request.into_body().into_data_stream();
    let mut seen = 0;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        seen += chunk.len();
        if seen > DRAIN_BYTES {
            return;
        }
    }
}

/// A request body, read whole (it is small: anything over `--body-limit-kib`,
/// 64 KiB by default, is a 413).
pub struct RawBody {
    content_type: Option<String>,
    bytes: Bytes,
}

/// A batch's body: the same, with room for 1,000 package versions
/// (`--batch-body-limit-kib`, 1 MiB by default).
pub struct BatchBody(pub RawBody);

impl RawBody {
    pub fn new(content_type: Option<&str>, bytes: &[u8]) -> RawBody {
        RawBody {
            content_type: content_type.map(str::to_owned),
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    /// True when the body was sent as JSON (any charset).
    pub fn is_json(&self) -> bool {
        media_type(self.content_type.as_deref()).as_deref() == Some("application/json")
    }

    async fn read(request: Request, limit: usize) -> Result<Self> {
        let too_large = Error::PayloadTooLarge {
            limit_kib: limit / 1024,
        };
        let headers = request.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A declared length far over the limit is refused without reading.
        if declared_length(headers).is_some_and(|len| len > (limit + DRAIN_BYTES) as u64) {
            return Err(too_large);
        }
        // A body a little over the limit is read to its end and dropped before
        // the 413, so that the client, still writing, sees the answer instead of
        // a connection closed under it.
        let mut body = request.into_body().into_data_stream();
        let mut bytes = Vec::new();
        let mut seen = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|_| Error::invalid("The request body could not be read to its end."))?;
            seen += chunk.len();
            if seen > limit + DRAIN_BYTES {
                return Err(too_large);
            }
            if seen <= limit {
                bytes.extend_from_slice(&chunk);
            }
        }
        if seen > limit {
            return Err(too_large);
        }
        Ok(RawBody {
            content_type,
            bytes: Bytes::from(bytes),
        })
    }
}

impl FromRequest<ApiContext> for RawBody {
    type Rejection = Error;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self> {
        RawBody::read(request, ctx.body_limits.body).await
    }
}

impl FromRequest<ApiContext> for BatchBody {
    type Rejection = Error;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self> {
        RawBody::read(request, ctx.body_limits.batch)
            .await
            .map(BatchBody)
    }
}

/// The media type of a Content-Type value, lower-cased, without parameters.
fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|mt| mt.trim().to_ascii_lowercase())
}

mod fields;
mod values;

pub use fields::Fields;
pub use values::{BatchId, FreeText, Objects, OrBlank, Qualifier, TextList, Whole, WholeRule};

/// A query string that takes no parameters but the key.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A request's query parameters read into `T` (see `fields`): names matched
/// whatever their case, unknown ones refused when `T` says so, and a 400
/// naming the parameter.
pub struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        Fields::from_query(parts.uri.query())?.read().map(Params)
    }
}
