//! API keys: making them, finding the one a request carries, and deciding what it
//! may do. The key text exists only in the request and in the one response that
//! creates it; the database holds its SHA-256 hash.

use std::fmt;

use axum::http::{header, HeaderMap};
use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::domain::{random_hex, sha256_hex, Permission, Permissions};
use crate::error::{Error, Result};
use crate::store::{Feed, NewKey, Store, StoredKey};

/// How many hex digits of a key's hash label it in listings.
const LABEL_HEX_DIGITS: usize = 8;

/// The shortest key a caller may choose (pgutil's `--key`): anything shorter can
/// be guessed, and no part of a chosen key is ever stored or shown.
pub const MIN_CHOSEN_KEY_CHARS: usize = 32;
pub const MAX_CHOSEN_KEY_CHARS: usize = 200;

/// The text of an API key. Debug output never shows any of it.
pub struct ApiKey(String);

impl ApiKey {
    /// A random key (see `domain::random_hex`).
    pub fn generate() -> Self {
        ApiKey(random_hex())
    }

    /// A key as a request carries it, to be looked up; any text at all.
    pub fn from_presented(text: &str) -> Self {
        ApiKey(text.to_owned())
    }

    /// A key text the caller chose for a new key: long enough not to be guessed,
    /// printable, no spaces. The error completes "the key …".
    pub fn chosen(text: &str) -> Result<Self, String> {
        let chars = text.chars().count();
        if !(MIN_CHOSEN_KEY_CHARS..=MAX_CHOSEN_KEY_CHARS).contains(&chars) {
            return Err(format!(
                "must be {MIN_CHOSEN_KEY_CHARS} to {MAX_CHOSEN_KEY_CHARS} characters long, not {chars}"
            ));
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        Ok(Self::from_presented(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }

    /// What listings show to tell keys apart: the start of the key's hash,
    /// marked as such. Not the start of the key itself: a key the caller chose
    /// may begin with guessable text, and no part of any key is ever stored.
    /// (`printf %s "$KEY" | sha256sum` finds a key's label.)
    pub fn label(&self) -> String {
        format!("sha256:{}", &self.hash()[..LABEL_HEX_DIGITS])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

/// Creates a key and returns its text, which is shown once and never again. The
/// text is random unless the caller chose one (pgutil's `--key`).
pub async fn create_key(
    store: &Store,
    new: &NewKey,
    chosen: Option<ApiKey>,
) -> Result<(ApiKey, StoredKey)> {
    let key = chosen.unwrap_or_else(ApiKey::generate);
    let stored = store.create_key(&key.hash(), &key.label(), new).await?;
    Ok((key, stored))
}

/// A key's expiry time: RFC 3339, or a date and time without an offset (taken as
/// UTC, as .NET clients such as pgutil write them), or a bare date (its midnight
/// UTC), in the years 1970 to 9999 (UTC). The error completes "the expiry …".
pub fn parse_expiry(text: &str) -> Result<DateTime<Utc>, &'static str> {
    let text = text.trim();
    let time = DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|time| time.and_utc())
        })
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|time| time.and_utc())
        })
        .ok_or("must be a date and time such as 2027-01-31T00:00:00Z")?;
    if !(1970..=9999).contains(&time.year()) {
        return Err("must be a date and time between the years 1970 and 9999");
    }
    Ok(time)
}

/// The key a request carries in its headers or query string, in the contract's
/// order: `X-ApiKey`, `Authorization: Basic` (user `api`), `Authorization: Bearer`,
/// `?key=`. Body carriers are read by the handler that parses the body.
pub fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<ApiKey> {
    if let Some(value) = headers.get("x-apikey") {
        return Some(ApiKey::from_presented(value.to_str().unwrap_or_default()));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return Some(ApiKey::from_presented(&authorization_key(
            value.to_str().unwrap_or_default(),
        )));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("key"))
        .map(|(_, value)| ApiKey::from_presented(&value))
}

/// The key a request to a native endpoint carries: every carrier of
/// `presented_key`, and Basic authentication with any user name and the key
/// as the password, as pip, twine, Maven and npm's `_auth` send it (contract
/// section 12).
pub fn native_presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<ApiKey> {
    let basic_password = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .filter(|_| !headers.contains_key("x-apikey"))
        .and_then(basic_credentials)
        .map(|(_, password)| password);
    match basic_password {
        Some(password) => Some(ApiKey::from_presented(&password)),
        None => presented_key(headers, query),
    }
}

/// The key NuGet's push and delete send in a header of their own
/// (`X-NuGet-ApiKey`), beside whatever credentials the source has.
pub fn nuget_api_key(headers: &HeaderMap) -> Option<ApiKey> {
    headers
        .get("x-nuget-apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(ApiKey::from_presented)
}

/// The user name and password of an `Authorization: Basic` header value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of an `Authorization: Bearer TOKEN` header value (the scheme in
/// any case), or `None` for another scheme.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The key inside an Authorization header. Anything that is not a Basic `api:KEY`
/// or a Bearer token is kept as it came, so it is refused as an unknown key rather
/// than ignored in favour of a later carrier.
fn authorization_key(value: &str) -> String {
    if let Some(token) = bearer(value) {
        return token.to_owned();
    }
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some(decoded) = decoded {
            return match decoded.split_once(':') {
                Some((user, key)) if user.eq_ignore_ascii_case("api") => key.to_owned(),
                _ => decoded,
            };
        }
    }
    value.to_owned()
}

/// An authenticated key and what it may touch.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: i64,
    /// The key's name, recorded as the `user` of what it does.
    pub name: String,
    permissions: Permissions,
    scope: Scope,
}

#[derive(Debug, Clone)]
enum Scope {
    System,
    /// A feed key's one feed, or the member feeds of a feed-group key.
    Feeds(std::sync::Arc<[i64]>),
}

impl Principal {
    /// Whether the key may do `permission` on `feed`. A feed that does not exist is
    /// inside the scope of system keys only, so that a feed key cannot learn which
    /// feeds exist outside its scope.
    pub fn may(&self, permission: Permission, feed: Option<&Feed>) -> bool {
        self.permissions.contains(permission)
            && match &self.scope {
                Scope::System => true,
                Scope::Feeds(ids) => feed.is_some_and(|feed| ids.contains(&feed.id)),
            }
    }
}

impl Principal {
    /// Ok when the key may do `permission` on `feed` (see `may`), else the 403.
    pub fn require(&self, permission: Permission, feed: Option<&Feed>) -> Result<()> {
        if self.may(permission, feed) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// The feeds whose contents the key may see with `permission`: `None` for
    /// every feed, or a list (empty when the key lacks the permission).
    pub fn feeds_with(&self, permission: Permission) -> Option<Vec<i64>> {
        if !self.permissions.contains(permission) {
            return Some(Vec::new());
        }
        match &self.scope {
            Scope::System => None,
            Scope::Feeds(ids) => Some(ids.to_vec()),
        }
    }
}

/// Finds the key's record; a missing, unknown, expired or revoked key is refused
/// the same way.
pub async fn authenticate(store: &Store, key: Option<&ApiKey>) -> Result<Principal> {
    let key = key.ok_or(Error::Forbidden)?;
    let stored = store.key_by_hash(&key.hash()).await?;
    principal_of(store, stored).await
}

/// The principal of a key record found some other way (a sign-in session), under
/// the same rules: a missing, expired or revoked key is refused.
pub async fn principal_of(store: &Store, stored: Option<StoredKey>) -> Result<Principal> {
    let stored = stored
        .filter(|stored| stored.is_usable_at(Utc::now()))
        .ok_or(Error::Forbidden)?;
    let scope = match (stored.feed_id, stored.feed_group_id) {
        (Some(feed_id), _) => Scope::Feeds(std::sync::Arc::from([feed_id])),
        (None, Some(group_id)) => Scope::Feeds(store.group_feed_ids(group_id).await?),
        (None, None) => Scope::System,
    };
    Ok(Principal {
        key_id: stored.id,
        permissions: stored.permissions()?,
        name: stored.name,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_and_key: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_key)
        )
    }

    #[test]
    fn keys_are_random_hex_and_debug_hides_them() {
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 64);
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.expose());
        assert_eq!(a.label(), format!("sha256:{}", &a.hash()[..8]));
        assert_eq!(format!("{a:?}"), "ApiKey(redacted)");
    }

    #[test]
    fn chosen_keys_are_long_and_labelled_by_their_hash() {
        assert!(ApiKey::chosen("s3cr3t-8").is_err());
        assert!(ApiKey::chosen(&"x".repeat(31)).is_err());
        assert!(ApiKey::chosen(&format!("{} x", "y".repeat(32))).is_err());
        let chosen = ApiKey::chosen(&"k".repeat(32)).unwrap();
        assert!(!chosen.label().contains('k'), "{}", chosen.label());
        assert!(chosen.label().starts_with("sha256:"));
    }

    #[test]
    fn authorization_headers_yield_the_key() {
        assert_eq!(authorization_key(&basic("api:s3cret")), "s3cret");
        assert_eq!(authorization_key(&basic("API:a:b")), "a:b");
        assert_eq!(authorization_key("Bearer  s3cret "), "s3cret");
        // Other users and other schemes stay as they are and match no key.
        assert_eq!(authorization_key(&basic("admin:pw")), "admin:pw");
        assert_eq!(authorization_key("Digest x"), "Digest x");
    }

    #[test]
    fn native_endpoints_take_the_password_of_any_basic_user() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        for user in ["api", "__token__", "admin", ""] {
            let key = native_presented_key(&headers(&basic(&format!("{user}:s3cret"))), None);
            assert_eq!(key.unwrap().expose(), "s3cret", "{user}");
        }
        let key = native_presented_key(&headers("Bearer t0ken"), None);
        assert_eq!(key.unwrap().expose(), "t0ken");
        // X-ApiKey still comes first.
        let mut both = headers(&basic("api:s3cret"));
        both.insert("X-ApiKey", "x".parse().unwrap());
        assert_eq!(native_presented_key(&both, None).unwrap().expose(), "x");
    }

    #[test]
    fn expiry_times_take_the_forms_clients_send() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_expiry("2027-01-31T10:00:00+01:00"),
            Ok(utc("2027-01-31T09:00:00Z"))
        );
        assert_eq!(
            parse_expiry("2027-01-31T10:00:00.5"),
            Ok(utc("2027-01-31T10:00:00.5Z"))
        );
        assert_eq!(parse_expiry("2027-01-31"), Ok(utc("2027-01-31T00:00:00Z")));
        assert!(parse_expiry("tomorrow").is_err());
    }

    #[test]
    fn expiry_times_stay_within_the_years_1970_to_9999() {
        assert!(parse_expiry("1970-01-01").is_ok());
        assert!(parse_expiry("9999-12-31T23:59:59Z").is_ok());
        for far in [
            "1969-12-31T23:59:59Z",
            "0001-01-01",
            "9999-12-31T23:00:00-05:00",
            "+10000-01-01T00:00:00Z",
            "262143-12-31",
        ] {
            assert!(parse_expiry(far).is_err(), "{far}");
        }
    }

    #[test]
    fn header_carriers_come_before_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_key(&headers, Some("a=1&KEY=q")).unwrap().expose(),
            "q"
        );
        assert!(presented_key(&headers, Some("a=1")).is_none());
        headers.insert(header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(
            presented_key(&headers, Some("key=q")).unwrap().expose(),
            "b"
        );
        headers.insert("X-ApiKey", "x".parse().unwrap());
        assert_eq!(
            presented_key(&headers, Some("key=q")).unwrap().expose(),
            "x"
        );
    }
}
