//! Authenticating HTTP requests: the extractor for endpoints whose key can only be
//! in the headers or the query string, and the body-aware variant.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use super::input::{discard_body, Fields};
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

/// The caller of a read that a public feed allows without a key: the
/// principal of the key in a header or `?key=`, or nobody. A key that is
/// presented must be valid.
pub struct Viewer(pub Option<Principal>);

impl FromRequestParts<ApiContext> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self> {
        match auth::presented_key(&parts.headers, parts.uri.query()) {
            None => Ok(Viewer(None)),
            Some(key) => Ok(Viewer(Some(
                ctx.limits.authenticate(&ctx.store, Some(&key)).await?,
            ))),
        }
    }
}

/// A body `B` whose request may carry its key in a header, `?key=` or the body
/// itself. A key in a header or the query is checked before the body is read
/// (contract section 2: an unknown key is refused before the body is even
/// looked at, so a stranger's oversized body is a 403, not a 413); without
/// one, the body's key decides once it is parsed.
pub struct Keyed<B> {
    presented: Option<Principal>,
    pub body: B,
}

impl<B> FromRequest<ApiContext> for Keyed<B>
where
    B: FromRequest<ApiContext, Rejection = Error>,
{
    type Rejection = Error;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self> {
        let presented = match auth::presented_key(request.headers(), request.uri().query()) {
            Some(key) => match ctx.limits.authenticate(&ctx.store, Some(&key)).await {
                Ok(principal) => Some(principal),
                Err(refused) => {
                    discard_body(request).await;
                    return Err(refused);
                }
            },
            None => None,
        };
        Ok(Keyed {
            presented,
            body: B::from_request(request, ctx).await?,
        })
    }
}

impl<B> Keyed<B> {
    /// The request's principal: the header's or query's key, already checked,
    /// or else the body's (a body that cannot be parsed simply carries none,
    /// so that strangers learn nothing about validation).
    pub async fn principal(&self, ctx: &ApiContext, fields: &Result<Fields>) -> Result<Principal> {
        if let Some(principal) = &self.presented {
            return Ok(principal.clone());
        }
        let key = fields.as_ref().ok().and_then(Fields::api_key);
        ctx.limits.authenticate(&ctx.store, key.as_ref()).await
    }
}

impl Keyed<super::input::RawBody> {
    /// A management request: its key must be a system key with `manage`; then
    /// the body is read.
    pub async fn manager(&self, ctx: &ApiContext) -> Result<(Principal, Fields)> {
        let fields = Fields::parse(&self.body);
        let principal = self.principal(ctx, &fields).await?;
        principal.require(Permission::Manage, None)?;
        Ok((principal, fields?))
    }
}
