//! What every native endpoint does with a feed's connectors (contract
//! section 16): asking each connector for a package's document, saying in a
//! `Warning` which failed, caching a file only an upstream has, and, before a
//! promotion, caching the versions it names that only an upstream offers.
//! What each ecosystem's upstream documents say is read in its own module.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use super::{maven, npm, nuget, pypi};
use crate::auth::Principal;
use crate::connectors::{Fetch, Metadata, Offered, UpstreamFailure};
use crate::content;
use crate::domain::{Connector, FeedName, FeedType, FilterKeys, PackageId, Permission};
use crate::error::{Error, Result};
use crate::http::ApiContext;
use crate::promotion::PromotionRequest;
use crate::store::Feed;

/// What a feed's connectors say about one package: each connector's
/// document (in the feed's order) from those that have it, and the failures
/// of those that could not answer.
pub struct Upstream {
    pub documents: Vec<(Connector, Bytes)>,
    pub failures: Vec<UpstreamFailure>,
}

impl Upstream {
    /// The 502 for a request nothing local answers, when a connector failed
    /// (a package no connector has, and none failed, is the caller's 404).
    pub fn failed(&self, what: &str) -> Option<Error> {
        self.failures
            .first()
            .map(|failure| failure.clone().into_error(what))
    }
}

/// The package's document from each of the feed's connectors: `url_for`
/// says where a connector keeps it (`None`: nowhere this server can ask).
pub async fn upstream(
    ctx: &ApiContext,
    feed: &Feed,
    accept: &str,
    url_for: impl Fn(&Connector) -> Option<url::Url>,
) -> Upstream {
    // Every connector at once: the slowest, not their sum, bounds the wait.
    let asked = feed.connectors.iter().filter_map(|connector| {
        let url = url_for(connector)?;
        Some(async move {
            let answer = ctx.upstreams.metadata(feed, connector, &url, accept).await;
            (connector, answer)
        })
    });
    let mut found = Upstream {
        documents: Vec::new(),
        failures: Vec::new(),
    };
    for (connector, answer) in futures_util::future::join_all(asked).await {
        match answer {
            Ok(Metadata { body, stale }) => {
                if let Some(body) = body {
                    found.documents.push((connector.clone(), body));
                }
                found.failures.extend(stale);
            }
            Err(failure) => found.failures.push(failure),
        }
    }
    found
}

/// A document shown without some connector's versions carries a `Warning`
/// saying which failed, so the client knows the list may be short.
pub fn with_warning(mut response: Response, failures: &[UpstreamFailure]) -> Response {
    if let Some(warning) = crate::connectors::warning(failures) {
        if let Ok(value) = HeaderValue::from_str(&warning) {
            response.headers_mut().insert(header::WARNING, value);
        }
    }
    response
}

/// Caches `offered` into `feed` as `declared`'s file (see
/// `connectors::Upstreams::cache`), for `caller` (or anonymously, on a
/// public feed), unless `stored` finds it there by now. True when this call
/// fetched it.
pub async fn cache_offered<F, Fut>(
    ctx: &ApiContext,
    feed: &Feed,
    caller: Option<&Principal>,
    offered: &Offered,
    declared: content::Declared,
    stored: F,
) -> Result<bool>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let user = caller.map_or("anonymous", |principal| principal.name.as_str());
    let fetch = Fetch {
        offered,
        declared,
        user,
    };
    let cached = ctx
        .upstreams
        .cache(&ctx.store, &ctx.content, feed, fetch, stored)
        .await?;
    Ok(cached.is_some())
}

/// Whether `package` has a file in `feed` that was put there rather than
/// cached from a connector: such a version is the feed's own, and no
/// connector adds files to it (an upstream's wheel beside an uploaded sdist,
/// a public `-tests.jar` beside a private artifact: dependency confusion).
pub async fn owned_here(ctx: &ApiContext, feed: &Feed, package: &PackageId) -> Result<bool> {
    let keys = FilterKeys {
        feed_types: vec![feed.feed_type],
        group_key: Some(package.group_key()),
        name_key: Some(package.name_key()),
        version_key: Some(package.version_key()),
    };
    let files = ctx
        .store
        .package_files(feed, Some(&keys), None, 10_000)
        .await?;
    Ok(files.iter().any(|file| file.cached_from.is_none()))
}

/// A file an upstream offers for one version, as it is cached: what it is,
/// what its own metadata must say, and the qualifier it is stored under.
pub struct OfferedFile {
    pub offered: Offered,
    pub declared: content::Declared,
    pub qualifier: String,
}

/// The files the feed's connectors offer for `package` (empty: none does),
/// by its ecosystem; a 502 when none has it and one failed.
async fn offered_files(
    ctx: &ApiContext,
    feed: &Feed,
    package: &PackageId,
) -> Result<Vec<OfferedFile>> {
    match feed.feed_type {
        FeedType::Npm => npm::offered_files(ctx, feed, package).await,
        FeedType::Pypi => pypi::offered_files(ctx, feed, package).await,
        FeedType::Maven => maven::offered_files(ctx, feed, package).await,
        feed_type if crate::ecosystems::is_nuget(feed_type) => {
            nuget::offered_files(ctx, feed, package).await
        }
        _ => Ok(Vec::new()),
    }
}

/// Before a promotion, single, batch or dry run: each exact version it names
/// that is not in the source feed but that the source's connectors offer is
/// cached into the source first (contract section 16), so that the
/// promotion moves it. Returns, by item, the upstream URL of what was
/// fetched. Nothing is fetched for a caller who may not make the promotion,
/// nor for `latest`, which is the feed's own; an upstream failing for a
/// version the feed does not have is the 502 that names it.
pub async fn fetch_for_promotion(
    ctx: &ApiContext,
    principal: &Principal,
    request: &PromotionRequest,
) -> Result<HashMap<usize, String>> {
    let mut fetched = HashMap::new();
    let (Some(from), to) = ctx
        .store
        .feed_pair(&request.from_feed, &request.to_feed)
        .await?
    else {
        return Ok(fetched);
    };
    // Only for a promotion that could happen: the caller may make it, both
    // feeds are enabled, and the source's fixed target (if any) is the one
    // asked for; otherwise the promotion's own refusal is the answer.
    let fixed_elsewhere = from.promote_to.as_deref().is_some_and(|target| {
        FeedName::parse(target).map_or(true, |target| target.key() != request.to_feed.key())
    });
    if from.connectors.is_empty()
        || !from.active
        || to.as_ref().is_none_or(|to| !to.active)
        || fixed_elsewhere
        || principal.require(Permission::Promote, Some(&from)).is_err()
        || principal.require(Permission::Promote, to.as_ref()).is_err()
    {
        return Ok(fetched);
    }
    for (index, item) in request.items.iter().enumerate() {
        let version = item.version.as_str();
        if ["latest", "latest-stable", "latest-unstable"]
            .iter()
            .any(|word| version.eq_ignore_ascii_case(word))
        {
            continue;
        }
        let Ok(package) = PackageId::new(
            from.feed_type,
            item.group.as_ref(),
            &item.name,
            &item.version,
        ) else {
            continue;
        };
        // A version someone put here is the feed's own; one cached only in
        // part (a wheel pip chose, a pom Maven read) gets its other files.
        if owned_here(ctx, &from, &package).await? {
            continue;
        }
        for file in offered_files(ctx, &from, &package).await? {
            let stored = || async {
                Ok(ctx
                    .store
                    .existing_file(&from, &package, &file.qualifier)
                    .await?
                    .is_some())
            };
            if cache_offered(
                ctx,
                &from,
                Some(principal),
                &file.offered,
                file.declared.clone(),
                stored,
            )
            .await?
            {
                fetched
                    .entry(index)
                    .or_insert_with(|| file.offered.url.to_string());
            }
        }
    }
    Ok(fetched)
}
