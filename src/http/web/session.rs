//! Who is looking at the history page: a key carried as section 2 of the contract
//! allows, or a sign-in session. The session cookie holds a random token, never
//! the key; the database keeps only the token's hash (`store::sessions`).

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};

use crate::auth::{self, Principal};
use crate::domain::{random_hex, sha256_hex};
use crate::error::{Error, Result};
use crate::http::ApiContext;

pub const COOKIE: &str = "promoter_session";
/// The cookie half of the forms' double-submit token (see `posted_from_our_pages`).
pub const FORM_COOKIE: &str = "promoter_form";
/// The length of the tokens we issue (`random_hex`: 32 random bytes).
const TOKEN_LENGTH: usize = 64;
/// How long a sign-in lasts (a working day); the key's own expiry or revocation
/// ends it sooner.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// A session's token, as the cookie carries it.
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> SessionToken {
        SessionToken(random_hex())
    }

    /// The token in the request's cookies, if any.
    pub fn from_headers(headers: &HeaderMap) -> Option<SessionToken> {
        read_cookie(headers, COOKIE).map(SessionToken)
    }

    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }

    /// The `Set-Cookie` value that starts the session in the browser.
    pub fn cookie(&self, secure: bool) -> HeaderValue {
        cookie(COOKIE, &self.0, LIFETIME.as_secs(), secure)
    }
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn expired_cookie(secure: bool) -> HeaderValue {
    cookie(COOKIE, "", 0, secure)
}

/// The forms' token: the same random value in a cookie and in a hidden field.
/// Another site can make a browser post a form to us, but it can neither read
/// nor set our cookie (and `SameSite=Strict` keeps the browser from sending it
/// with that post), so it cannot make the two match.
pub struct FormToken(String);

impl FormToken {
    /// The browser's token, or a new one (`true`: it must be set as a cookie).
    pub fn for_page(headers: &HeaderMap) -> (FormToken, bool) {
        match read_cookie(headers, FORM_COOKIE).filter(|t| t.len() == TOKEN_LENGTH) {
            Some(token) => (FormToken(token), false),
            None => (FormToken(random_hex()), true),
        }
    }

    pub fn value(&self) -> &str {
        &self.0
    }

    pub fn cookie(&self, secure: bool) -> HeaderValue {
        cookie(FORM_COOKIE, &self.0, LIFETIME.as_secs(), secure)
    }
}

/// Whether the form's field matches the browser's form cookie, compared in
/// constant time.
fn form_token_matches(headers: &HeaderMap, field: Option<&str>) -> bool {
    match (read_cookie(headers, FORM_COOKIE), field) {
        // Only a token of the length we issue: a shorter one is far easier
        // to guess or to plant.
        (Some(cookie), Some(field))
            if cookie.len() == TOKEN_LENGTH && field.len() == TOKEN_LENGTH =>
        {
            cookie
                .bytes()
                .zip(field.bytes())
                .fold(0u8, |differ, (a, b)| differ | (a ^ b))
                == 0
        }
        _ => false,
    }
}

fn read_cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
}

/// `HttpOnly`: no script reads it; `SameSite=Strict`: no other site's page makes
/// the browser send it.
fn cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
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

/// Whether a form post (sign-in, sign-out) comes from one of our own pages; a
/// post from another site's page is refused, although `SameSite=Strict` keeps
/// the session cookie from it, because signing someone in needs no cookie.
/// - `Sec-Fetch-Site`, which browsers send to HTTPS and loopback servers, says
///   so directly (`none`: typed or bookmarked by the user).
/// - Otherwise an `Origin` naming a site must name this host. Under our
///   `Referrer-Policy: no-referrer` browsers send `Origin: null` for our own
///   forms, and a sandboxed page of another site does too: then the form's
///   token (`FormToken`) must match.
/// - A client that is not a browser sends none of these, and cannot be made to
///   post by another site.
pub fn posted_from_our_pages(headers: &HeaderMap, form_token: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return form_token_matches(headers, form_token);
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|value| value.to_str().ok())
        .map(|hosts| hosts.split(',').next().unwrap_or_default().trim());
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
        return match ctx.limits.authenticate(&ctx.store, Some(&key)).await {
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
        // A signed-in key is held to its own rate limit as it is in a header.
        Ok(principal) => {
            ctx.limits.check_key(principal.key_id)?;
            Ok(Visitor::Known {
                principal,
                session: true,
            })
        }
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
        let ours = |pairs: &[(&'static str, &str)]| posted_from_our_pages(&headers(pairs), None);
        let host = ("host", "promoter.example:8624");
        assert!(ours(&[host, ("origin", "https://promoter.example:8624")]));
        assert!(!ours(&[host, ("origin", "https://evil.example")]));
        assert!(!ours(&[host, ("origin", "null")]));
        assert!(!ours(&[host, ("sec-fetch-site", "cross-site")]));
        assert!(ours(&[host, ("sec-fetch-site", "same-origin")]));
        // What Chromium sends for our own form under `Referrer-Policy: no-referrer`.
        assert!(ours(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!ours(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ]));
        // curl and other clients that are not browsers.
        assert!(ours(&[host]));
    }

    #[test]
    fn on_plain_http_the_form_token_decides() {
        let host = ("host", "promoter.example:8624");
        let token = "ab".repeat(32);
        let cookie = format!("{FORM_COOKIE}={token}");
        let browser = headers(&[host, ("origin", "null"), ("cookie", &cookie)]);
        assert!(posted_from_our_pages(&browser, Some(&token)));
        assert!(!posted_from_our_pages(&browser, Some(&"cd".repeat(32))));
        assert!(!posted_from_our_pages(&browser, None));
        let without_cookie = headers(&[host, ("origin", "null")]);
        assert!(!posted_from_our_pages(&without_cookie, Some(&token)));
        // Only tokens of the length we issue: a planted short one, however
        // well it matches, is refused.
        for short in ["a", "ab", &"ab".repeat(31)] {
            let cookie = format!("{FORM_COOKIE}={short}");
            let planted = headers(&[host, ("origin", "null"), ("cookie", &cookie)]);
            assert!(!posted_from_our_pages(&planted, Some(short)), "{short}");
        }
    }

    #[test]
    fn the_cookie_is_strict_http_only_and_secure_over_https() {
        let token = SessionToken::generate();
        let cookie = token.cookie(false).to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly; SameSite=Strict") && !cookie.contains("Secure"));
        assert!(token.cookie(true).to_str().unwrap().ends_with("; Secure"));
        let sent = format!("a=b; {COOKIE}={}", token.0);
        let back = SessionToken::from_headers(&headers(&[("cookie", &sent)]));
        assert_eq!(back.unwrap().hash(), token.hash());
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
    }
}
