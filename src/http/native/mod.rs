//! What every native endpoint shares (contract section 12): the routing by
//! feed type, who the caller is (the extra key carriers, public feeds, the
//! 401 challenge), absolute URLs, and metadata documents with an ETag that
//! are never cached past a commit. Each ecosystem's endpoint is a file here;
//! what its documents look like is in its `ecosystems` module.

mod form;
mod maven;
mod npm;
mod nuget;
mod pypi;
mod upstream;

pub use upstream::fetch_for_promotion;
use upstream::{cache_offered, owned_here, upstream, with_warning, OfferedFile};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::ApiContext;
use crate::auth::{self, Principal};
use crate::content::backfill;
use crate::domain::{FeedName, FeedType, Permission};
use crate::error::{Error, Result};
use crate::store::{Arrival, Feed, NativeFile, PackageKey, PackageRows};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .merge(npm::router())
        .merge(pypi::router())
        .merge(maven::router())
        .merge(nuget::router())
}

/// A request to one feed's native endpoint, as every ecosystem's handler
/// receives it: the feed and the rest of the path (`/{ecosystem}/{feed}/
/// {*path}`), the method, the query and the headers.
pub struct Native {
    ctx: ApiContext,
    feed: String,
    path: String,
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
}

impl FromRequestParts<ApiContext> for Native {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &ApiContext,
    ) -> std::result::Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        Ok(Native {
            ctx: ctx.clone(),
            feed: param("feed"),
            path: param("path"),
            method: parts.method.clone(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
        })
    }
}

impl Native {
    pub fn call(&self) -> Call<'_> {
        Call {
            ctx: &self.ctx,
            feed: &self.feed,
            method: &self.method,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }

    /// The path after the feed, in segments (axum decoded them, so npm's
    /// `@scope%2fname` is `@scope/name` here); empty ones dropped.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// A request to one feed's native endpoint, before it is routed.
pub struct Call<'a> {
    pub ctx: &'a ApiContext,
    /// The feed's name as the path spells it.
    pub feed: &'a str,
    pub method: &'a Method,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

impl Call<'_> {
    /// A read: `GET`, or `HEAD` (answered as `GET`, without the body).
    pub fn reading(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// Who asks (see [`caller`]).
    pub async fn caller(&self) -> Result<Option<Principal>> {
        caller(self.ctx, self.headers, self.query).await
    }
}

/// What the native endpoints are set up with: the base of their absolute
/// URLs, and how feeds' connectors reach upstreams.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub public_url: Option<PublicUrl>,
    pub connectors: crate::connectors::Settings,
}

/// The URL clients reach the server at (`--public-url`), used in the absolute
/// URLs of metadata documents instead of what each request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// `http://` or `https://` with a host, and no query or fragment; a
    /// trailing slash is dropped.
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("must be a URL such as https://packages.example.com ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("must be an http:// or https:// URL with a host".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("must not have a query, a fragment or credentials".to_owned());
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }
}

/// The server's address as the client should write it: `--public-url` when
/// set, otherwise the request's own (`X-Forwarded-Proto`/`X-Forwarded-Host`
/// from a proxy, else `Host`). No trailing slash.
pub fn base_url(ctx: &ApiContext, headers: &HeaderMap) -> String {
    if let Some(PublicUrl(url)) = &ctx.public_url {
        return url.clone();
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
    };
    let scheme = match first("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Who asks: the key's principal, or nobody. A key that is presented but
/// unknown is refused with the challenge, as any wrong password is.
pub async fn caller(
    ctx: &ApiContext,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Principal>> {
    caller_presenting(ctx, auth::native_presented_key(headers, query)).await
}

/// Who presents `key`: its principal, nobody, or the challenge for a key
/// that is unknown.
pub async fn caller_presenting(
    ctx: &ApiContext,
    key: Option<auth::ApiKey>,
) -> Result<Option<Principal>> {
    match key {
        None => Ok(None),
        Some(key) => match ctx.limits.authenticate(&ctx.store, Some(&key)).await {
            Ok(principal) => Ok(Some(principal)),
            Err(Error::Forbidden) => Err(Error::Unauthenticated),
            Err(other) => Err(other),
        },
    }
}

/// The feed a native endpoint serves, if the caller may do `permission` on
/// it and it holds `ecosystem`'s packages. Anyone may view a public feed;
/// otherwise no credentials is the challenge (401) and a key without the
/// permission 403, whether or not the feed exists, so that strangers learn
/// nothing of which feeds there are.
pub async fn feed(
    ctx: &ApiContext,
    caller: Option<&Principal>,
    raw_name: &str,
    permission: Permission,
    ecosystem: &str,
    holds: fn(FeedType) -> bool,
) -> Result<Feed> {
    let feed = match FeedName::parse(raw_name) {
        Ok(name) => ctx.store.feed(&name).await?,
        Err(_) => None,
    };
    let public = feed.as_ref().is_some_and(|f| f.public);
    match caller {
        // Whoever asks, with a key or without: npm sends a host-wide token
        // to every feed, and a key scoped elsewhere must not lose what
        // strangers have.
        _ if permission == Permission::View && public => {}
        None => return Err(Error::Unauthenticated),
        Some(principal) => principal.require(permission, feed.as_ref())?,
    }
    let feed =
        feed.ok_or_else(|| Error::NotFound(format!("Feed \"{raw_name}\" does not exist.")))?;
    if !holds(feed.feed_type) {
        return Err(Error::NotFound(format!(
            "Feed \"{}\" is {} feed, not {} feed.",
            feed.name,
            crate::domain::with_article(feed.feed_type.as_str()),
            crate::domain::with_article(ecosystem)
        )));
    }
    Ok(feed)
}

/// One package's rows in a feed, read afresh (see `Store::package_rows`),
/// with the digests and metadata of blobs stored before they were kept
/// filled in from the blobs themselves (`content::backfill`).
pub async fn described_rows(
    ctx: &ApiContext,
    feed: &Feed,
    key: PackageKey,
) -> Result<Arc<PackageRows>> {
    let rows = ctx.store.package_rows(key).await?;
    let undescribed = |file: &NativeFile| backfill::is_undescribed(feed.feed_type, file);
    if !rows.files.iter().any(undescribed) {
        return Ok(rows);
    }
    let mut rows = PackageRows::clone(&rows);
    for file in &mut rows.files {
        if undescribed(file) {
            if let Err(error) =
                backfill::describe(&ctx.store, &ctx.content, feed.feed_type, file).await
            {
                tracing::warn!(feed = %feed.name, package = %file.name, version = %file.version, error = %crate::error::describe(&error), "could not describe a stored package file");
            }
        }
    }
    Ok(Arc::new(rows))
}

/// A rendered metadata document: its ETag is its bytes' SHA-256.
#[derive(Debug, Clone)]
pub struct Rendered {
    media_type: &'static str,
    etag: String,
    body: Bytes,
}

impl Rendered {
    pub fn new(media_type: &'static str, body: Vec<u8>) -> Rendered {
        let etag = format!("\"{}\"", hex::encode(Sha256::digest(&body)));
        Rendered {
            media_type,
            etag,
            body: Bytes::from(body),
        }
    }
}

/// Which document of which package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentKey {
    pub package: PackageKey,
    /// Which of the ecosystem's documents (npm: full or abbreviated).
    pub form: &'static str,
}

/// Documents rendered before, each with the fingerprint of the rows it was
/// rendered from. The rows are read afresh for every request (so nothing is
/// ever served past a commit); only when they are the same as last time is
/// the rendering (JSON parsing, serialising, hashing) skipped.
#[derive(Default)]
pub struct Documents {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// Each document's last rendering: the fingerprint of its rows, the base
    /// URL it was rendered for (one per document, so that requests naming
    /// many hosts replace it rather than multiply it), and the rendering.
    documents: HashMap<DocumentKey, (u64, String, Rendered)>,
    bytes: usize,
}

/// The most bytes of documents kept; past it they are all dropped and
/// rendered again as they are asked for. A bound on bytes, not on documents,
/// since one package may have thousands of versions and the base URL comes
/// from the request's Host.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

impl Documents {
    /// The document for `key` from rows with `fingerprint`, for `base`: the
    /// one kept if it was rendered from the same rows for the same base,
    /// otherwise `render`'s.
    pub fn get_or_render(
        &self,
        key: DocumentKey,
        fingerprint: u64,
        base: &str,
        render: impl FnOnce() -> Result<Rendered>,
    ) -> Result<Rendered> {
        if let Some((kept, kept_base, rendered)) = self
            .kept
            .lock()
            .expect("documents lock")
            .documents
            .get(&key)
        {
            if *kept == fingerprint && kept_base == base {
                return Ok(rendered.clone());
            }
        }
        let rendered = render()?;
        let size = rendered.body.len() + base.len();
        let mut kept = self.kept.lock().expect("documents lock");
        if kept.bytes + size > MAX_DOCUMENT_BYTES {
            kept.documents.clear();
            kept.bytes = 0;
        }
        if let Some((_, replaced_base, replaced)) = kept
            .documents
            .insert(key, (fingerprint, base.to_owned(), rendered.clone()))
        {
            kept.bytes = kept
                .bytes
                .saturating_sub(replaced.body.len() + replaced_base.len());
        }
        kept.bytes += size;
        Ok(rendered)
    }
}

/// A metadata document as the answer: `If-None-Match` with its ETag is
/// answered 304, which happens exactly when nothing in it changed, and it is
/// never reused without asking (`no-cache`): the next request after a
/// promotion commits sees it, on any replica.
pub fn document(headers: &HeaderMap, rendered: Rendered) -> Response {
    let Rendered {
        media_type,
        etag,
        body,
    } = rendered;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
        response
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a header value"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization"),
    );
    response
}

/// An error as an ecosystem's endpoint answers it, before it is put in that
/// client's words: its status and headers (a challenge keeps its
/// `WWW-Authenticate`), with a file already there as 409, the status package
/// clients know (the ProGet API's 400 is pgutil's), and its sentence.
pub async fn error_parts(error: Error) -> (axum::http::response::Parts, String) {
    let conflict = matches!(error, Error::AlreadyExists(_));
    let (mut parts, body) = error.into_response().into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim_end().to_owned())
        .unwrap_or_default();
    if conflict {
        parts.status = StatusCode::CONFLICT;
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, text)
}

/// An error as clients that print the HTTP reason phrase show it (twine,
/// Maven): the sentence as the body and as the reason phrase, plain text.
pub async fn text_error(error: Error) -> Response {
    let (mut parts, text) = error_parts(error).await;
    let reason: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(400)
        .collect();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes()) {
        parts.extensions.insert(reason);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(text + "\n"))
}

/// A time as the documents write it: RFC 3339 in UTC, to the millisecond.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `_promotion`: how a version came into the feed.
pub fn promotion(arrival: &Arrival) -> serde_json::Value {
    serde_json::json!({
        "id": arrival.id,
        "date": timestamp(arrival.date),
        "fromFeed": arrival.from_feed,
        "user": arrival.user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_plain_http_urls() {
        assert_eq!(
            PublicUrl::parse("https://pkgs.example.com/").unwrap(),
            PublicUrl("https://pkgs.example.com".into())
        );
        assert_eq!(
            PublicUrl::parse("http://h:8624/promoter").unwrap().0,
            "http://h:8624/promoter"
        );
        for bad in [
            "pkgs.example.com",
            "ftp://h",
            "http://h/?a=1",
            "http://u:p@h",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_answer_their_etag_with_304() {
        let json = |body: &[u8]| Rendered::new("application/json", body.to_vec());
        let first = document(&HeaderMap::new(), json(b"{}"));
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = first.headers()[header::ETAG].clone();
        let mut asking = HeaderMap::new();
        asking.insert(header::IF_NONE_MATCH, etag.clone());
        let again = document(&asking, json(b"{}"));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let changed = document(&asking, json(b"{\"a\":1}"));
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(changed.headers()[header::ETAG], etag);
    }

    #[test]
    fn a_document_is_rendered_again_when_its_rows_change() {
        let documents = Documents::default();
        let key = DocumentKey {
            package: PackageKey {
                feed_id: 1,
                group_key: String::new(),
                name_key: "a".into(),
            },
            form: "full",
        };
        let render =
            |body: &'static [u8]| move || Ok(Rendered::new("application/json", body.to_vec()));
        let get = |fingerprint, base, body| {
            documents
                .get_or_render(key.clone(), fingerprint, base, render(body))
                .unwrap()
        };
        let first = get(1, "http://h", b"1");
        assert_eq!(get(1, "http://h", b"2").body, first.body);
        assert_eq!(&get(2, "http://h", b"2").body[..], b"2");
        assert_eq!(&get(2, "http://i", b"3").body[..], b"3");
        assert_eq!(documents.kept.lock().unwrap().documents.len(), 1);
    }
}
