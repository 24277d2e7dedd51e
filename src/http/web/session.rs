//! Who is looking at the history page: a key carried as section 2 of the contract
//! allows, or a sign-in session. The session cookie holds a random token, never
//! the key; the database keeps only the token's hash (`store::sessions`).

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{self, Principal};
use crate::error::{Error, Result};
use crate::http::ApiContext;

pub const COOKIE: &str = "promoter_session";
/// How long a sign-in lasts (a working day); the key's own expiry or revocation
/// ends it sooner.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// A session's token, as the cookie carries it.
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> SessionToken {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionToken(hex::encode(bytes))
    }

    /// The token in the request's cookies, if any.
    pub fn from_headers(headers: &HeaderMap) -> Option<SessionToken> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, token)| SessionToken(token.to_owned()))
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The `Set-Cookie` value that starts the session in the browser.
    pub fn cookie(&self, secure: bool) -> HeaderValue {
        cookie(&self.0, LIFETIME.as_secs(), secure)
    }
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn expired_cookie(secure: bool) -> HeaderValue {
    cookie("", 0, secure)
}

/// `HttpOnly`: no script reads it; `SameSite=Strict`: no other site's page makes
/// the browser send it.
fn cookie(token: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a hex token makes a valid header")
}

/// Whether the browser reached us over HTTPS: directly, or through a proxy that
/// terminates TLS and says so.
pub fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// Whether a form post comes from one of our own pages. A post from another
/// site's page is refused even though `SameSite=Strict` would keep the cookie
/// from it, because signing in needs no cookie. Browsers say where a post comes
/// from in `Sec-Fetch-Site`, and in `Origin`, which is `null` under our
/// `Referrer-Policy: no-referrer`; a client that is not a browser sends neither.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|value| value.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Who is asking.
pub enum Visitor {
    /// A valid key; `session` when it came from a sign-in.
    Known { principal: Principal, session: bool },
    /// No key, or a session that has ended: the sign-in form.
    Stranger,
    /// A key that is unknown, expired or revoked.
    Refused,
}

/// A key carried by the request wins over a session, as it would in the API.
pub async fn visitor(
    ctx: &ApiContext,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Visitor> {
    if let Some(key) = auth::presented_key(headers, query) {
        return match auth::authenticate(&ctx.store, Some(&key)).await {
            Ok(principal) => Ok(Visitor::Known {
                principal,
                session: false,
            }),
            Err(Error::Forbidden) => Ok(Visitor::Refused),
            Err(other) => Err(other),
        };
    }
    let Some(token) = SessionToken::from_headers(headers) else {
        return Ok(Visitor::Stranger);
    };
    let stored = ctx.store.session_key(&token.hash()).await?;
    match auth::principal_of(&ctx.store, stored).await {
        Ok(principal) => Ok(Visitor::Known {
            principal,
            session: true,
        }),
        Err(Error::Forbidden) => Ok(Visitor::Stranger),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_our_own_pages_may_post_forms() {
        let host = ("host", "promoter.example:8624");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://promoter.example:8624")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        // curl and other clients that are not browsers.
        assert!(same_origin(&headers(&[host])));
    }

    #[test]
    fn the_cookie_is_strict_http_only_and_secure_over_https() {
        let token = SessionToken::generate();
        let cookie = token.cookie(false).to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly; SameSite=Strict") && !cookie.contains("Secure"));
        assert!(token.cookie(true).to_str().unwrap().ends_with("; Secure"));
        let back = SessionToken::from_headers(&headers(&[(
            "cookie",
            &format!("a=b; {COOKIE}={}", token.0),
        )]));
        assert_eq!(back.unwrap().hash(), token.hash());
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
    }
}
