//! Authenticating HTTP requests: the extractor for endpoints whose key can only be
//! in the headers or the query string, and the body-aware variant.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::input::{Fields, RawBody};
use super::ApiContext;
use crate::auth::{self, Principal};
use crate::domain::Permission;
use crate::error::{Error, Result};

/// The principal of a request whose key is in a header or `?key=`.
pub struct Authenticated(pub Principal);

impl FromRequestParts<ApiContext> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self> {
        let key = auth::presented_key(&parts.headers, parts.uri.query());
        Ok(Authenticated(
            ctx.limits.authenticate(&ctx.store, key.as_ref()).await?,
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
    ctx.limits.authenticate(&ctx.store, key.as_ref()).await
}

/// A management request with a body: its key (which may be in the body) must be
/// a system key with `manage`; then the body is read.
pub async fn manager_with_body(
    ctx: &ApiContext,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &RawBody,
) -> Result<(Principal, Fields)> {
    let fields = Fields::parse(body);
    let principal = with_body(ctx, headers, query, &fields).await?;
    principal.require(Permission::Manage, None)?;
    Ok((principal, fields?))
}
