//! The one HTTP client connectors call upstreams with. It calls only the
//! addresses webhooks may (public ones, unless `--connector-allow-private`),
//! checked on every connection by its resolver and for literal addresses
//! before each request; follows redirects only within the same origin; sends
//! a connector's credentials only to the connector's own origin (as pip does
//! for an index's); and bounds every answer in size and time.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header;

use super::Settings;
use crate::domain::Connector;
use crate::error::Error;
use crate::webhooks::targets::{self, AllowedBy};

/// The largest metadata document read from an upstream (npm's largest
/// packuments are tens of MiB).
const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;

/// The most redirects followed, all within the request's origin.
const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

/// What an upstream answered a metadata request.
pub enum Fetched {
    Document {
        body: Bytes,
        etag: Option<String>,
    },
    /// 304 to the ETag sent.
    NotModified,
    /// 404 or 410: the upstream has no such package.
    Missing,
}

/// Why an upstream could not answer: a sentence's end, after "connector URL".
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    connector: String,
    reason: &'static str,
    detail: String,
}

impl fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connector {} {}.", self.connector, self.detail)
    }
}

impl UpstreamFailure {
    /// `reason` is the metric's label; `detail` completes "connector URL …".
    pub fn new(connector: &str, reason: &'static str, detail: String) -> UpstreamFailure {
        UpstreamFailure {
            connector: connector.to_owned(),
            reason,
            detail,
        }
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The 502 of a request for `what`, which only this connector offers.
    pub fn into_error(self, what: &str) -> Error {
        Error::Upstream(format!(
            "{what} is only offered by connector {}, which {}.",
            self.connector, self.detail
        ))
    }
}

impl Client {
    pub fn new(settings: &Settings) -> Client {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().map(url::Url::origin);
            if attempt.previous().len() > MAX_REDIRECTS
                || first.is_some_and(|origin| origin != attempt.url().origin())
            {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .redirect(policy)
            // A proxy would connect on our behalf to addresses the resolver never saw.
            .no_proxy()
            .dns_resolver(Arc::new(targets::PublicOnly {
                allow_private: settings.allow_private,
                allowed_by: AllowedBy::ConnectorServer,
            }))
            .user_agent(concat!("Promoter-Connector/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the connector client's settings are valid");
        Client {
            http,
            allow_private: settings.allow_private,
            timeout: settings.timeout,
        }
    }

    /// A GET of `url` for `connector`, with its credentials when `url` is on
    /// the connector's own origin.
    async fn get(
        &self,
        connector: &Connector,
        url: &url::Url,
        headers: &[(header::HeaderName, String)],
    ) -> Result<reqwest::Response, UpstreamFailure> {
        let fail = |reason, detail| UpstreamFailure::new(&connector.url, reason, detail);
        if let Some(refusal) =
            targets::refuse_literal(url, self.allow_private, AllowedBy::ConnectorServer)
        {
            return Err(fail("refused", format!("may not be called: {refusal}")));
        }
        let mut request = self.http.get(url.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if url.origin() == connector.as_url().origin() {
            if let Some(token) = &connector.token {
                request = request.bearer_auth(token);
            } else if let Some(username) = &connector.username {
                request = request.basic_auth(username, connector.password.as_deref());
            }
        }
        let response = request.send().await.map_err(|error| {
            // The chain's innermost cause says what happened (refused,
            // timed out, a private address); the outer ones repeat the URL.
            let mut cause: &dyn std::error::Error = &error;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            let reason = if error.is_timeout() {
                "timeout"
            } else {
                "unreachable"
            };
            fail(reason, format!("could not be reached ({cause})"))
        })?;
        let status = response.status();
        if status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED {
            return Err(fail(
                "redirect",
                format!("redirected to another host, or more than {MAX_REDIRECTS} times, which connectors do not follow"),
            ));
        }
        Ok(response)
    }

    /// A metadata document, revalidated with `etag` when one is kept.
    pub async fn metadata(
        &self,
        connector: &Connector,
        url: &url::Url,
        accept: &str,
        etag: Option<&str>,
    ) -> Result<Fetched, UpstreamFailure> {
        let fail = |reason, detail| UpstreamFailure::new(&connector.url, reason, detail);
        let mut headers = vec![(header::ACCEPT, accept.to_owned())];
        if let Some(etag) = etag {
            headers.push((header::IF_NONE_MATCH, etag.to_owned()));
        }
        let within = tokio::time::timeout(self.timeout, async {
            let response = self.get(connector, url, &headers).await?;
            let status = response.status();
            match status.as_u16() {
                304 => return Ok(Fetched::NotModified),
                404 | 410 => return Ok(Fetched::Missing),
                200 => {}
                _ => return Err(status_failure(connector, status)),
            }
            let etag = response
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if response
                .content_length()
                .is_some_and(|length| length > MAX_METADATA_BYTES as u64)
            {
                return Err(too_large(connector));
            }
            let mut body = Vec::new();
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk
                    .map_err(|e| fail("unreachable", format!("broke off its answer ({e})")))?;
                if body.len() + chunk.len() > MAX_METADATA_BYTES {
                    return Err(too_large(connector));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched::Document {
                body: Bytes::from(body),
                etag,
            })
        })
        .await;
        within.unwrap_or_else(|_| {
            Err(fail(
                "timeout",
                format!("did not answer within {} s", self.timeout.as_secs()),
            ))
        })
    }

    /// A file's bytes as they arrive, each chunk within the timeout of the
    /// last (the size is bounded where they are staged).
    pub async fn file(
        &self,
        connector: &Connector,
        url: &url::Url,
    ) -> Result<Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>, UpstreamFailure> {
        let response = tokio::time::timeout(self.timeout, self.get(connector, url, &[]))
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamFailure::new(
                    &connector.url,
                    "timeout",
                    format!("did not answer within {} s", self.timeout.as_secs()),
                ))
            })?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(status_failure(connector, status));
        }
        let stall = self.timeout;
        let chunks = response.bytes_stream();
        Ok(Box::pin(futures_util::stream::unfold(
            Some(chunks),
            move |chunks| async move {
                let mut chunks = chunks?;
                match tokio::time::timeout(stall, chunks.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
                    Ok(Some(Err(error))) => Some((Err(std::io::Error::other(error)), None)),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the upstream stalled",
                        )),
                        None,
                    )),
                }
            },
        )))
    }
}

fn status_failure(connector: &Connector, status: reqwest::StatusCode) -> UpstreamFailure {
    let reason = match status.as_u16() {
        401 | 403 => "refused",
        404 | 410 => "missing",
        500.. => "server_error",
        _ => "status",
    };
    let detail = match status.as_u16() {
        401 | 403 => format!("refused this server's credentials ({status})"),
        _ => format!("answered {status}"),
    };
    UpstreamFailure::new(&connector.url, reason, detail)
}

fn too_large(connector: &Connector) -> UpstreamFailure {
    UpstreamFailure::new(
        &connector.url,
        "too_large",
        format!(
            "sent a document larger than {} MiB",
            MAX_METADATA_BYTES / (1024 * 1024)
        ),
    )
}
