//! Authenticating HTTP requests: the extractor for endpoints whose key can only be
//! in the headers or the query string, and the body-aware variant.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::input::Fields;
use super::ApiContext;
use crate::auth::{self, Principal};
use crate::error::{Error, Result};

/// The principal of a request whose key is in a header or `?key=`.
pub struct Authenticated(pub Principal);

impl FromRequestParts<ApiContext> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self> {
        let key = auth::presented_key(&parts.headers, parts.uri.query());
        Ok(Authenticated(
            auth::authenticate(&ctx.store, key.as_ref()).await?,
        ))
    }
}

/// The principal of a request with a body, whose key may also be in the body.
/// The key is checked before the body is judged (a body that cannot be parsed
/// simply carries no key), so that strangers learn nothing about validation.
pub async fn with_body(
    ctx: &ApiContext,
    headers: &HeaderMap,
    query: Option<&str>,
    fields: &Result<Fields>,
) -> Result<Principal> {
    let key = auth::presented_key(headers, query)
        .or_else(|| fields.as_ref().ok().and_then(Fields::api_key));
    auth::authenticate(&ctx.store, key.as_ref()).await
}
