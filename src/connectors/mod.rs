//! Connectors (contract section 16): a feed's upstream registries. This
//! module is how the server talks to them — one HTTP client that calls only
//! the addresses it may, metadata kept per process and revalidated with the
//! upstream's ETag, files fetched once however many ask at the same moment,
//! checked against the upstream's own integrity, and recorded in the feed as
//! cached. What an upstream's documents say (npm packuments, PyPI pages,
//! NuGet indexes) is read by each ecosystem's `upstream` module; how they are
//! merged into the feed's own documents is each native endpoint's.

mod client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

pub use self::client::{Fetched, UpstreamFailure};
use crate::content::{self, Declared, Uploaded};
use crate::domain::{Connector, FeedType, Integrity};
use crate::error::{Error, Result};
use crate::store::{Feed, Store};
use crate::webhooks::targets::{self, AllowedBy};

/// How connectors behave (`--connector-…`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether connectors may call loopback and private addresses
    /// (`--connector-allow-private`).
    pub allow_private: bool,
    /// How long upstream metadata is used before it is revalidated
    /// (`--connector-cache-seconds`, 5 minutes by default).
    pub metadata_ttl: Duration,
    /// How long one metadata request, or one file's connection and each of
    /// its chunks, may take (`--connector-timeout-seconds`).
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            metadata_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl From<&crate::config::ConnectorArgs> for Settings {
    fn from(args: &crate::config::ConnectorArgs) -> Self {
        Settings {
            allow_private: args.connector_allow_private,
            metadata_ttl: Duration::from_secs(args.connector_cache_seconds),
            timeout: Duration::from_secs(args.connector_timeout_seconds),
        }
    }
}

/// The feed types that may have connectors: those with a native endpoint
/// that reads through them.
pub fn supports(feed_type: FeedType) -> bool {
    matches!(feed_type, FeedType::Npm | FeedType::Pypi | FeedType::Maven)
        || crate::ecosystems::is_nuget(feed_type)
}

/// Whether `connector` may be set on a feed of `feed_type` by a server (or a
/// command) that does or does not allow private addresses; the error is one
/// sentence naming `field`.
pub async fn check(
    feed_type: FeedType,
    connector: &Connector,
    allow_private: bool,
    allowed_by: AllowedBy,
    field: &str,
) -> std::result::Result<(), String> {
    if !supports(feed_type) {
        return Err(format!(
            "{field} cannot be set: {} feed has no connectors (npm, pypi, nuget, chocolatey, powershell and maven feeds do).",
            crate::domain::with_article(feed_type.as_str())
        ));
    }
    targets::check(&connector.as_url(), allow_private, allowed_by)
        .await
        .map_err(|rule| format!("{field} {rule}."))
}

/// A file an upstream offers: where it is, what it must hash to, and which
/// connector offers it.
#[derive(Debug, Clone)]
pub struct Offered {
    pub connector: Connector,
    pub url: url::Url,
    pub file_name: String,
    /// At least one; every one given must match.
    pub integrity: Vec<Integrity>,
}

/// What the server keeps of its upstreams: the client, their metadata, and
/// which files are being fetched.
pub struct Upstreams {
    client: client::Client,
    settings: Settings,
    metadata: Mutex<Kept>,
    /// The documents being read, by feed and URL: whoever holds one's lock
    /// asks the upstream, and the others then find what it kept.
    reading: Slots<()>,
    /// The files being fetched, by feed and upstream URL: whoever holds one's
    /// lock fetches it, and leaves the sentence of a failure behind for the
    /// others (see `FAILURE_PAUSE`).
    fetching: Slots<Option<(Instant, String)>>,
}

/// One async lock per feed and URL.
type Slots<T> = Mutex<HashMap<(i64, String), Arc<tokio::sync::Mutex<T>>>>;

/// The lock of one feed and URL in `slots`. Entries nobody holds or waits
/// for are dropped as the map grows; one dropped meanwhile costs at most a
/// second request, since whoever takes a lock first looks again at what is
/// kept or stored.
fn slot<T: Default>(slots: &Slots<T>, key: (i64, String)) -> Arc<tokio::sync::Mutex<T>> {
    let mut slots = slots.lock().expect("slots lock");
    if slots.len() >= 1024 {
        slots.retain(|_, lock| Arc::strong_count(lock) > 1);
    }
    slots.entry(key).or_default().clone()
}

/// A file to cache: where it is offered, what its own metadata must say,
/// and for whom it is fetched (the audit row's user).
pub struct Fetch<'a> {
    pub offered: &'a Offered,
    pub declared: Declared,
    pub user: &'a str,
}

/// Upstream metadata as this process keeps it, by feed and URL.
#[derive(Default)]
struct Kept {
    documents: HashMap<(i64, String), KeptDocument>,
    /// Each document's last failure, while it is recent (`FAILURE_PAUSE`).
    failures: HashMap<(i64, String), (Instant, UpstreamFailure)>,
    bytes: usize,
}

struct KeptDocument {
    /// `None`: the upstream answered 404 (it has no such package).
    body: Option<Bytes>,
    etag: Option<String>,
    checked: Instant,
}

impl Kept {
    /// Keeps a document just read or revalidated; past the bound, everything
    /// kept goes first. Every entry counts its URL, so 404s for made-up
    /// names are bounded too.
    fn keep(&mut self, key: (i64, String), body: Option<Bytes>, etag: Option<String>) {
        let size = |key: &(i64, String), body: &Option<Bytes>| {
            key.1.len() + body.as_ref().map_or(0, Bytes::len) + 64
        };
        let added = size(&key, &body);
        if self.bytes + added > MAX_KEPT_BYTES {
            self.documents.clear();
            self.bytes = 0;
        }
        let document = KeptDocument {
            body,
            etag,
            checked: Instant::now(),
        };
        if let Some(replaced) = self.documents.insert(key.clone(), document) {
            self.bytes = self.bytes.saturating_sub(size(&key, &replaced.body));
        }
        self.bytes += added;
    }
}

/// A metadata document as `Upstreams::metadata` answers: the body (`None`:
/// the upstream has no such package), and, when the upstream failed and a
/// copy kept from before is the answer, why.
pub struct Metadata {
    pub body: Option<Bytes>,
    pub stale: Option<UpstreamFailure>,
}

impl Metadata {
    fn fresh(body: Option<Bytes>) -> Metadata {
        Metadata { body, stale: None }
    }
}

/// The copy kept from before, marked stale by `failure`, or the failure.
fn stale_or(
    kept: Option<Option<Bytes>>,
    failure: UpstreamFailure,
) -> std::result::Result<Metadata, UpstreamFailure> {
    match kept {
        Some(body) => Ok(Metadata {
            body,
            stale: Some(failure),
        }),
        None => Err(failure),
    }
}

/// The most bytes of upstream metadata kept in one process; past it all are
/// dropped and fetched again as they are asked for.
const MAX_KEPT_BYTES: usize = 256 * 1024 * 1024;

/// How long a failed upstream document is not asked for again: requests
/// meanwhile get the copy kept from before, or the same failure at once.
const FAILURE_PAUSE: Duration = Duration::from_secs(10);

/// The most failures remembered at once.
const MAX_KEPT_FAILURES: usize = 10_000;

impl Upstreams {
    pub fn new(settings: Settings) -> Upstreams {
        Upstreams {
            client: client::Client::new(&settings),
            settings,
            metadata: Mutex::default(),
            reading: Mutex::default(),
            fetching: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The document at `url` as `connector` serves it to `feed` (`body`
    /// `None`: 404), from what this process kept if it is younger than the
    /// cache time, else revalidated with its ETag. When the upstream fails
    /// and a copy is kept, the copy is the answer, with the failure beside it
    /// (`stale`); a failure is remembered for a few seconds, so that a dead
    /// upstream does not hold up every request in turn.
    pub async fn metadata(
        &self,
        feed: &Feed,
        connector: &Connector,
        url: &url::Url,
        accept: &str,
    ) -> std::result::Result<Metadata, UpstreamFailure> {
        let key = (feed.id, url.to_string());
        if let Some(answer) = self.kept_answer(&key) {
            return answer;
        }
        // One request at a time asks the upstream for a document; the others
        // wait, then find what it kept.
        let lock = slot(&self.reading, key.clone());
        let _reading = lock.lock().await;
        if let Some(answer) = self.kept_answer(&key) {
            return answer;
        }
        let (etag, kept_body) = {
            let kept = self.metadata.lock().expect("metadata lock");
            let document = kept.documents.get(&key);
            (
                document.and_then(|d| d.etag.clone()),
                document.map(|d| d.body.clone()),
            )
        };
        count_cache("metadata", "miss");
        let fetched = self
            .client
            .metadata(connector, url, accept, etag.as_deref())
            .await;
        count_request("metadata", &fetched);
        let mut kept = self.metadata.lock().expect("metadata lock");
        let (body, etag) = match fetched {
            Err(failure) => {
                tracing::warn!(feed = %feed.name, error = %failure, "a connector could not be read");
                if kept.failures.len() >= MAX_KEPT_FAILURES {
                    kept.failures.clear();
                }
                kept.failures.insert(key, (Instant::now(), failure.clone()));
                return stale_or(kept_body, failure);
            }
            Ok(Fetched::NotModified) => (kept_body.flatten(), etag),
            Ok(Fetched::Missing) => (None, None),
            Ok(Fetched::Document { body, etag }) => (Some(body), etag),
        };
        kept.failures.remove(&key);
        kept.keep(key, body.clone(), etag);
        Ok(Metadata::fresh(body))
    }

    /// What is kept for `key`, if it answers without asking the upstream: a
    /// copy younger than the cache time, or, within the pause after a
    /// failure, the copy from before (stale) or the failure.
    fn kept_answer(
        &self,
        key: &(i64, String),
    ) -> Option<std::result::Result<Metadata, UpstreamFailure>> {
        let kept = self.metadata.lock().expect("metadata lock");
        let document = kept.documents.get(key);
        if let Some(document) = document {
            if document.checked.elapsed() < self.settings.metadata_ttl {
                count_cache("metadata", "hit");
                return Some(Ok(Metadata::fresh(document.body.clone())));
            }
        }
        let (at, failure) = kept.failures.get(key)?;
        (at.elapsed() < FAILURE_PAUSE)
            .then(|| stale_or(document.map(|d| d.body.clone()), failure.clone()))
    }

    /// Caches `offered` into `feed` as the file of `declared` (its own
    /// metadata must agree, as for any upload): fetched from the upstream,
    /// checked against every digest the upstream gave, then stored and
    /// recorded as cached, with its audit row, in one transaction. While one
    /// request fetches a file, others for it in this process wait and then
    /// find it stored; two processes may both fetch it, and the second to
    /// record it finds the same bytes there (`Recorded::Unchanged`).
    /// `stored` says whether the feed holds the file by now.
    pub async fn cache<F, Fut>(
        &self,
        store: &Store,
        settings: &content::Settings,
        feed: &Feed,
        fetch: Fetch<'_>,
        stored: F,
    ) -> Result<Option<Uploaded>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let Fetch {
            offered,
            declared,
            user,
        } = fetch;
        let held = slot(&self.fetching, (feed.id, offered.url.to_string()))
            .lock_owned()
            .await;
        if stored().await? {
            count_cache("file", "hit");
            return Ok(None);
        }
        // A fetch that just failed is not tried again by each waiter in turn.
        if let Some((at, sentence)) = held.as_ref() {
            if at.elapsed() < FAILURE_PAUSE {
                return Err(Error::Upstream(sentence.clone()));
            }
        }
        count_cache("file", "miss");
        // In a task of its own, holding the file's lock: a client that gives
        // up (pip after 15 s) does not abandon a fetch others wait for, and
        // the file is cached for the next one.
        let task = tokio::spawn(fetch_and_record(
            self.client.clone(),
            Destination {
                store: store.clone(),
                settings: settings.clone(),
                feed: feed.clone(),
            },
            offered.clone(),
            declared,
            user.to_owned(),
            held,
        ));
        task.await
            .map_err(|e| Error::Internal(anyhow::anyhow!("fetching from a connector failed: {e}")))?
            .map(Some)
    }
}

/// Where a fetched file is recorded.
struct Destination {
    store: Store,
    settings: content::Settings,
    feed: Feed,
}

/// Fetches `offered` into staging, checks every digest, and records it as
/// cached, while `held` keeps the file's lock; a failure's sentence is left
/// in it for those who wait.
async fn fetch_and_record(
    client: client::Client,
    to: Destination,
    offered: Offered,
    declared: Declared,
    user: String,
    mut held: tokio::sync::OwnedMutexGuard<Option<(Instant, String)>>,
) -> Result<Uploaded> {
    let fetched = fetch_and_record_unlocked(client, to, offered, declared, user).await;
    *held = match &fetched {
        Err(Error::Upstream(sentence)) => Some((Instant::now(), sentence.clone())),
        _ => None,
    };
    fetched
}

async fn fetch_and_record_unlocked(
    client: client::Client,
    to: Destination,
    offered: Offered,
    declared: Declared,
    user: String,
) -> Result<Uploaded> {
    let Destination {
        store,
        settings,
        feed,
    } = to;
    let connector = &offered.connector.url;
    let body = client.file(&offered.connector, &offered.url).await;
    count_request("file", &body);
    let body = body.map_err(|failure| failure.into_error(&offered.file_name))?;
    let staged = content::stage(&settings, body)
        .await
        .map_err(|error| match error {
            Error::UploadTooLarge { limit_mib } => {
                count_failure("file", "too_large");
                Error::Upstream(format!(
                    "Connector {connector} serves {} larger than the upload limit of {limit_mib} MiB, so it was not cached.",
                    offered.file_name
                ))
            }
            Error::UploadStalled { .. } | Error::Invalid(_) => {
                count_failure("file", "unreachable");
                Error::Upstream(format!(
                    "Connector {connector} stopped sending {} before its end, so nothing was stored.",
                    offered.file_name
                ))
            }
            other => other,
        })?;
    if let Some(wrong) = offered.integrity.iter().find(|i| !matches(i, &staged)) {
        count_failure("file", "integrity");
        tracing::warn!(feed = %feed.name, connector = %connector, url = %offered.url, algorithm = wrong.algorithm(), "an upstream file does not match the upstream's own integrity; not stored");
        return Err(Error::Upstream(format!(
            "Connector {connector} served {} with bytes that do not match its own {} digest, so nothing was stored.",
            offered.file_name,
            wrong.algorithm()
        )));
    }
    let origin = crate::store::Origin {
        url: offered.url.as_str(),
        user: &user,
    };
    let uploaded = content::record(
        &store,
        &settings,
        &feed,
        Some(&offered.file_name),
        declared,
        staged,
        Some(origin),
    )
    .await
    .map_err(|error| match error {
        Error::Invalid(sentence) => {
            count_failure("file", "invalid");
            Error::Upstream(format!(
                "Connector {connector} served {} that cannot be cached: {sentence}",
                offered.file_name
            ))
        }
        other => other,
    })?;
    tracing::info!(feed = %feed.name, package = %uploaded.package, url = %offered.url, user = %user, "cached from a connector");
    Ok(uploaded)
}

/// Whether the staged bytes hash to what the upstream said.
fn matches(integrity: &Integrity, staged: &content::storage::Staged) -> bool {
    let (expected, actual) = match integrity {
        Integrity::Sha1(hex) => (hex, &staged.digests.sha1),
        Integrity::Sha256(hex) => (hex, &staged.sha256),
        Integrity::Sha512(hex) => (hex, &staged.digests.sha512),
    };
    expected.eq_ignore_ascii_case(actual)
}

/// `Warning` (RFC 9111's `199 - "…"`) for a document served without some
/// connector's versions, or with those it had before, because it failed.
pub fn warning(failures: &[UpstreamFailure]) -> Option<String> {
    let text: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
    if text.is_empty() {
        return None;
    }
    let joined = text
        .join(" ")
        .replace(['"', '\\'], "'")
        .chars()
        .filter(|c| *c == ' ' || c.is_ascii_graphic())
        .take(600)
        .collect::<String>();
    Some(format!(
        "199 promoter \"Versions from connectors may be missing or out of date: {joined}\""
    ))
}

fn count_cache(kind: &'static str, result: &'static str) {
    metrics::counter!(crate::metrics::CONNECTOR_CACHE, "kind" => kind, "result" => result)
        .increment(1);
}

fn count_request<T>(kind: &'static str, fetched: &std::result::Result<T, UpstreamFailure>) {
    let outcome = if fetched.is_ok() { "ok" } else { "failed" };
    metrics::counter!(crate::metrics::CONNECTOR_REQUESTS, "kind" => kind, "outcome" => outcome)
        .increment(1);
    if let Err(failure) = fetched {
        count_failure(kind, failure.reason());
    }
}

fn count_failure(kind: &'static str, reason: &'static str) {
    metrics::counter!(crate::metrics::CONNECTOR_FAILURES, "kind" => kind, "reason" => reason)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_one_quoted_header_value() {
        let failure = UpstreamFailure::new("http://u/", "unreachable", "it said \"no\"".into());
        let header = warning(&[failure]).unwrap();
        assert!(header.starts_with("199 promoter \""), "{header}");
        assert_eq!(header.matches('"').count(), 2, "{header}");
        assert!(header.contains("http://u/"));
        assert_eq!(warning(&[]), None);
    }
}
