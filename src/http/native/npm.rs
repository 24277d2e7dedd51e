//! npm's registry protocol at `/npm/{feed}/` (contract section 13), as the npm
//! CLI calls it: packuments, tarballs, `npm publish`, dist-tags, whoami, ping
//! and the audit endpoints. The documents themselves are built by
//! `ecosystems::npm::registry`; errors are npm's `{"error": "…"}`, which the
//! CLI prints.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use std::sync::Arc;

use super::{
    base_url, cache_offered, described_rows, document, error_parts, feed, promotion, timestamp,
    upstream, with_warning, Call, DocumentKey, Native, OfferedFile, Rendered,
};
use crate::auth::Principal;
use crate::connectors::{Offered, UpstreamFailure};
use crate::content::{self, backfill, Declared};
use crate::domain::{FeedType, Identifier, PackageId, Permission};
use crate::ecosystems;
use crate::ecosystems::npm::registry::{self, PublishRefusal, ABBREVIATED, NOT_A_PUBLISH};
use crate::ecosystems::npm::upstream as npm_upstream;
use crate::error::{Error, Result};
use crate::http::ApiContext;
use crate::store::{Feed, NativeFile, PackageKey, PackageRows, Recorded};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/npm/{feed}", any(npm))
        .route("/npm/{feed}/", any(npm))
        .route("/npm/{feed}/{*path}", any(npm))
}

async fn npm(native: Native, body: Body) -> Response {
    let call = native.call();
    let segments = native.segments();
    match route(&call, &segments, body).await {
        Ok(response) => response,
        Err(error) => npm_error(error).await,
    }
}

/// Which endpoint a path is.
async fn route(call: &Call<'_>, segments: &[&str], body: Body) -> Result<Response> {
    let (method, reading) = (call.method, call.reading());
    match segments {
        ["-", "ping"] => Ok(Json(json!({})).into_response()),
        ["-", "whoami"] => whoami(call).await,
        ["-", "npm", "v1", "security", "advisories", "bulk"]
        | ["-", "npm", "v1", "security", "audits", "quick"]
        | ["-", "npm", "v1", "security", "audits"]
            if method == Method::POST =>
        {
            // No advisory data yet (contract 13, decision): an audit runs clean.
            let caller = call.caller().await?;
            view(call, caller.as_ref()).await?;
            Ok(Json(json!({})).into_response())
        }
        ["-", "package", rest @ ..] => {
            let (name, rest) = package_name(rest)?;
            match rest {
                ["dist-tags"] if reading => list_tags(call, &name).await,
                ["dist-tags", tag] => change_tag(call, &name, tag, body).await,
                _ => Err(no_endpoint()),
            }
        }
        ["-", ..] => Err(no_endpoint()),
        _ => {
            let (name, rest) = package_name(segments)?;
            match rest {
                [] if reading => packument(call, &name).await,
                [] if method == Method::PUT => publish(call, &name, body).await,
                ["-", file] if reading => tarball(call, &name, file).await,
                [version] if reading => one_version(call, &name, version).await,
                // Unpublish and deprecate rewrite or delete through `-rev`.
                [.., "-rev", _] | [] => Err(not_a_publish()),
                _ => Err(no_endpoint()),
            }
        }
    }
}

/// An npm package name from the path: `name`, or `@scope` and `name`.
struct NpmName {
    /// `@scope/name` or `name`, as npm writes it.
    full: String,
    group_key: String,
    name_key: String,
    group: Option<String>,
    name: String,
}

fn package_name<'s, 'p>(segments: &'s [&'p str]) -> Result<(NpmName, &'s [&'p str])> {
    let (group, name, rest) = match segments {
        [scope, name, rest @ ..] if scope.starts_with('@') => (Some(*scope), *name, rest),
        [name, rest @ ..] if !name.starts_with('@') => (None, *name, rest),
        _ => return Err(no_endpoint()),
    };
    // Names npm could never have published (validate-npm-package-name:
    // URL-safe, at most 214 characters) are nothing here, and never reach
    // the database.
    let npm_word = |word: &str| {
        !word.is_empty()
            && word.len() <= 214
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~!*'()".contains(c))
    };
    if !npm_word(name) || group.is_some_and(|scope| !npm_word(&scope[1..])) {
        return Err(not_found());
    }
    let (group, name) = ecosystems::canonical(FeedType::Npm, group, Some(name))
        .map_err(|rule| Error::invalid(format!("The package's scope {rule}.")))?;
    let name = name.unwrap_or_default();
    let full = match &group {
        Some(scope) => format!("{scope}/{name}"),
        None => name.clone(),
    };
    Ok((
        NpmName {
            group_key: ecosystems::group_key(FeedType::Npm, group.as_deref().unwrap_or_default()),
            name_key: ecosystems::name_key(FeedType::Npm, &name),
            full,
            group,
            name,
        },
        rest,
    ))
}

fn no_endpoint() -> Error {
    Error::NotFound("There is no npm endpoint at this path.".to_owned())
}

/// Unpublish and deprecate: refused (405) whatever the path they use.
fn not_a_publish() -> Error {
    Error::MethodNotAllowed(NOT_A_PUBLISH.to_owned())
}

fn is_npm(feed_type: FeedType) -> bool {
    feed_type == FeedType::Npm
}

async fn view(call: &Call<'_>, caller: Option<&Principal>) -> Result<Feed> {
    feed(call.ctx, caller, call.feed, Permission::View, "npm", is_npm).await
}

async fn whoami(call: &Call<'_>) -> Result<Response> {
    let principal = call.caller().await?.ok_or(Error::Unauthenticated)?;
    Ok(Json(json!({ "username": principal.name })).into_response())
}

/// One package's rows in the feed, described.
async fn rows_of(call: &Call<'_>, feed: &Feed, name: &NpmName) -> Result<Arc<PackageRows>> {
    described_rows(call.ctx, feed, package_key(feed, name)).await
}

fn package_key(feed: &Feed, name: &NpmName) -> PackageKey {
    PackageKey {
        feed_id: feed.id,
        group_key: name.group_key.clone(),
        name_key: name.name_key.clone(),
    }
}

/// Everything a packument shows, from the package's rows: the versions with
/// content and a readable manifest (npm has one file a version).
fn package_document(feed: &Feed, rows: &PackageRows, base: &str) -> Option<registry::Package> {
    let files: Vec<&NativeFile> = rows
        .files
        .iter()
        .filter(|f| f.qualifier.is_empty() && backfill::is_described(FeedType::Npm, f))
        .collect();
    let first = files.first()?;
    let base = format!("{base}/npm/{}", feed.name);
    let full = match first.group_name.as_str() {
        "" => first.name.clone(),
        scope => format!("{scope}/{}", first.name),
    };
    let versions: Vec<registry::Version> = files
        .iter()
        .map(|file| registry::Version {
            version: file.version.clone(),
            manifest: file
                .metadata
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            tarball: format!(
                "{base}/{full}/-/{}",
                registry::tarball_file_name(&full, &file.version)
            ),
            shasum: file.sha1.clone().unwrap_or_default(),
            sha512: file.sha512.clone().unwrap_or_default(),
            published: timestamp(file.published_at),
            promotion: rows.arrivals.get(&file.version_key).map(promotion),
        })
        .collect();
    let present = |key: &str| files.iter().any(|f| f.version_key == key);
    let versions_here = || files.iter().map(|f| f.version.as_str());
    let latest = ecosystems::latest(FeedType::Npm, versions_here(), true)
        .or_else(|| ecosystems::latest(FeedType::Npm, versions_here(), false));
    let dist_tags = registry::dist_tags(
        rows.tags
            .iter()
            .filter(|tag| present(&tag.version_key))
            .map(|tag| (tag.tag.clone(), tag.version.clone())),
        latest,
    );
    let arrived = |f: &&NativeFile| rows.arrivals.get(&f.version_key).map(|a| a.date);
    let created = files.iter().map(|f| f.published_at).min();
    let modified = files
        .iter()
        .map(|f| f.published_at)
        .chain(files.iter().filter_map(arrived))
        .max();
    Some(registry::Package {
        name: full,
        versions,
        dist_tags,
        created: created.map(timestamp).unwrap_or_default(),
        modified: modified.map(timestamp).unwrap_or_default(),
    })
}

/// The packument, full or abbreviated, as rendered from the rows read now:
/// rendered again only when they changed.
async fn packument_of(
    call: &Call<'_>,
    feed: &Feed,
    name: &NpmName,
    abbreviated: bool,
) -> Result<Rendered> {
    let rows = rows_of(call, feed, name).await?;
    let base = base_url(call.ctx, call.headers);
    let key = DocumentKey {
        package: package_key(feed, name),
        form: if abbreviated { ABBREVIATED } else { "full" },
    };
    call.ctx
        .documents
        .get_or_render(key, rows.fingerprint(), &base, || {
            let package = package_document(feed, &rows, &base).ok_or_else(not_found)?;
            let (media_type, body) = if abbreviated {
                (ABBREVIATED, package.abbreviated())
            } else {
                ("application/json", package.full())
            };
            let bytes = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.into()))?;
            Ok(Rendered::new(media_type, bytes))
        })
}

fn not_found() -> Error {
    Error::NotFound("Not found".to_owned())
}

async fn packument(call: &Call<'_>, name: &NpmName) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = view(call, caller.as_ref()).await?;
    let abbreviated = call
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(ABBREVIATED));
    if feed.connectors.is_empty() {
        let rendered = packument_of(call, &feed, name, abbreviated).await?;
        return Ok(document(call.headers, rendered));
    }
    // With connectors the upstreams' part is kept by `connectors`, and the
    // merged document is rendered for each request.
    let (package, failures) = whole_package(call, &feed, name).await?;
    let (media_type, body) = if abbreviated {
        (ABBREVIATED, package.abbreviated())
    } else {
        ("application/json", package.full())
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.into()))?;
    let response = document(call.headers, Rendered::new(media_type, bytes));
    Ok(with_warning(response, &failures))
}

/// The package as a document to take parts of (one version, its tags),
/// with its connectors' versions, and the connectors that failed.
async fn whole_package(
    call: &Call<'_>,
    feed: &Feed,
    name: &NpmName,
) -> Result<(registry::Package, Vec<UpstreamFailure>)> {
    let rows = rows_of(call, feed, name).await?;
    let base = base_url(call.ctx, call.headers);
    let local = package_document(feed, &rows, &base);
    if feed.connectors.is_empty() {
        return Ok((local.ok_or_else(not_found)?, Vec::new()));
    }
    let upstream = upstream(call.ctx, feed, "application/json", |connector| {
        npm_upstream::packument_url(&connector.as_base(), &name.full)
    })
    .await;
    let packuments: Vec<npm_upstream::Packument> = upstream
        .documents
        .iter()
        .filter_map(|(connector, body)| npm_upstream::read(body, &connector.as_base()))
        .collect();
    let pinned = rows.tags.iter().any(|tag| {
        tag.tag == "latest" && rows.files.iter().any(|f| f.version_key == tag.version_key)
    });
    let tarballs = format!("{base}/npm/{}/{}/-/", feed.name, name.full);
    let merged = npm_upstream::merge(&name.full, local, pinned, &packuments, |version| {
        format!(
            "{tarballs}{}",
            registry::tarball_file_name(&name.full, version)
        )
    });
    match merged {
        Some(package) => Ok((package, upstream.failures)),
        None => Err(upstream
            .failed(&format!("Package {}", name.full))
            .unwrap_or_else(not_found)),
    }
}

/// The tarball of `version` of `full` (`@scope/name` or `name`) as the
/// feed's connectors offer it, the first that has it winning.
async fn offered_tarball(
    ctx: &ApiContext,
    feed: &Feed,
    full: &str,
    version: &str,
) -> Result<Offered> {
    let upstream = upstream(ctx, feed, "application/json", |connector| {
        npm_upstream::packument_url(&connector.as_base(), full)
    })
    .await;
    for (connector, body) in &upstream.documents {
        let Some(packument) = npm_upstream::read(body, &connector.as_base()) else {
            continue;
        };
        if let Some(offered) = packument
            .versions
            .into_iter()
            .find(|v| v.version == version)
        {
            return Ok(Offered {
                connector: connector.clone(),
                url: offered.tarball,
                file_name: registry::tarball_file_name(full, version),
                integrity: offered.integrity,
            });
        }
    }
    Err(upstream
        .failed(&format!("Version {version} of {full}"))
        .unwrap_or_else(not_found))
}

/// What the feed's connectors offer for `package` (see
/// `upstream::fetch_for_promotion`): its tarball, if any has it.
pub(super) async fn offered_files(
    ctx: &ApiContext,
    feed: &Feed,
    package: &PackageId,
) -> Result<Vec<OfferedFile>> {
    let full = match package.group() {
        "" => package.name().to_owned(),
        scope => format!("{scope}/{}", package.name()),
    };
    match offered_tarball(ctx, feed, &full, package.version()).await {
        Ok(offered) => Ok(vec![OfferedFile {
            offered,
            declared: Declared {
                name: Some(full),
                version: Some(package.version().to_owned()),
                ..Declared::default()
            },
            qualifier: String::new(),
        }]),
        Err(Error::NotFound(_)) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// `GET /{name}/{version or tag}`: one version's manifest.
async fn one_version(call: &Call<'_>, name: &NpmName, wanted: &str) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = view(call, caller.as_ref()).await?;
    let (package, _) = whole_package(call, &feed, name).await?;
    let version = package
        .dist_tags
        .get(wanted)
        .map(String::as_str)
        .unwrap_or(wanted);
    let mut full = package.full();
    let manifest = full["versions"]
        .get_mut(version)
        .map(serde_json::Value::take)
        .ok_or_else(not_found)?;
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Internal(e.into()))?;
    Ok(document(
        call.headers,
        Rendered::new("application/json", bytes),
    ))
}

async fn tarball(call: &Call<'_>, name: &NpmName, file_name: &str) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = view(call, caller.as_ref()).await?;
    let version = registry::version_of_tarball(&name.full, file_name).ok_or_else(not_found)?;
    let package = package_id(name, version).map_err(|_| not_found())?;
    let store = &call.ctx.store;
    let stored = || async { Ok(store.existing_file(&feed, &package, "").await?.is_some()) };
    let file = match store.existing_file(&feed, &package, "").await? {
        Some(file) => file,
        None if feed.connectors.is_empty() => return Err(not_found()),
        None => {
            // Cached on first download (contract section 16).
            let offered = offered_tarball(call.ctx, &feed, &name.full, version).await?;
            let declared = Declared {
                name: Some(name.full.clone()),
                version: Some(version.to_owned()),
                ..Declared::default()
            };
            cache_offered(call.ctx, &feed, caller.as_ref(), &offered, declared, stored).await?;
            store
                .existing_file(&feed, &package, "")
                .await?
                .ok_or_else(not_found)?
        }
    };
    crate::http::package_content::serve(call.ctx, FeedType::Npm, file, call.headers).await
}

fn package_id(name: &NpmName, version: &str) -> Result<PackageId> {
    let part = |text: &str| Identifier::parse(text).map_err(Error::invalid);
    let group = name.group.as_deref().map(part).transpose()?;
    PackageId::new(
        FeedType::Npm,
        group.as_ref(),
        &part(&name.name)?,
        &part(version)?,
    )
    .map_err(Error::invalid)
}

/// `npm publish`: the tarball in the document is stored as any upload is
/// (its own package.json must be the package and version the document
/// names); the same bytes again are fine, other bytes a conflict.
async fn publish(call: &Call<'_>, name: &NpmName, body: Body) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        Permission::Add,
        "npm",
        is_npm,
    )
    .await?;
    let principal = caller.ok_or(Error::Unauthenticated)?;
    let bytes = publish_body(call, body).await?;
    let publish = match registry::read_publish(&name.full, &bytes) {
        Ok(publish) => publish,
        Err(PublishRefusal::NotAPublish) => return Err(not_a_publish()),
        Err(PublishRefusal::Invalid(sentence)) => return Err(Error::invalid(sentence)),
    };
    let declared = Declared {
        name: Some(name.full.clone()),
        version: Some(publish.version.clone()),
        ..Declared::default()
    };
    let file_name = registry::tarball_file_name(&name.full, &publish.version);
    let tarball = Bytes::from(publish.tarball);
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(tarball)]);
    let uploaded = content::upload(
        &call.ctx.store,
        &call.ctx.content,
        &feed,
        Some(&file_name),
        declared,
        stream,
    )
    .await
    .map_err(|error| match error {
        Error::AlreadyExists(_) => Error::AlreadyExists(format!(
            "You cannot publish over the previously published version {} of {} in feed \"{}\": other bytes are stored under it. Publish a new version, or delete this one first (pgutil packages delete).",
            publish.version, name.full, feed.name
        )),
        other => other,
    })?;
    let outcome = match uploaded.recorded {
        Recorded::Added(_) => "published",
        Recorded::Unchanged(_) => "already there",
    };
    let version_key = uploaded.package.version_key();
    let keys = (name.group_key.as_str(), name.name_key.as_str());
    // A retry of a publish already made changes no tag again.
    let tags = match uploaded.recorded {
        Recorded::Added(_) => publish.tags.as_slice(),
        Recorded::Unchanged(_) => &[],
    };
    for tag in tags {
        if tag == "latest" {
            // npm sends `latest` with every publish that names no tag: it
            // hands `latest` back to the feed's order (the highest stable
            // version) rather than pinning it to whatever came last, which
            // would let an old patch release take it (docs/api.md).
            call.ctx.store.remove_dist_tag(&feed, keys, tag).await?;
        } else {
            call.ctx
                .store
                .set_dist_tag(&feed, keys, tag, &version_key)
                .await?;
        }
    }
    tracing::info!(feed = %feed.name, package = %uploaded.package, user = %principal.name, outcome, "npm publish");
    Ok(Json(json!({ "ok": outcome, "id": name.full, "success": true })).into_response())
}

/// The largest tarball `npm publish` may send: the upload limit, but never
/// more than this, since the document arrives whole, in base64 inside JSON,
/// and is held in memory while it is read (npm itself builds it in memory).
const MAX_PUBLISHED_TARBALL: u64 = 256 * 1024 * 1024;

/// A publish document, read whole within its limit, each chunk within the
/// stall timeout of the last.
async fn publish_body(call: &Call<'_>, body: Body) -> Result<Bytes> {
    let max_tarball = call.ctx.content.max_upload.min(MAX_PUBLISHED_TARBALL);
    // Base64 is four bytes for three, and the document's JSON around it.
    let limit = max_tarball / 3 * 4 + 1024 * 1024;
    let too_large = || Error::UploadTooLarge {
        limit_mib: max_tarball / (1024 * 1024),
    };
    if crate::http::input::declared_length(call.headers).is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut chunks = std::pin::pin!(crate::http::package_content::stalls_after(
        body.into_data_stream(),
        call.ctx.content.stall
    ));
    let declared = crate::http::input::declared_length(call.headers).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(declared.min(limit)).unwrap_or(0));
    while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
        let chunk = chunk.map_err(|error| match error.kind() {
            std::io::ErrorKind::TimedOut => Error::UploadStalled {
                seconds: call.ctx.content.stall.as_secs(),
            },
            _ => Error::invalid("The request body could not be read to its end."),
        })?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

async fn list_tags(call: &Call<'_>, name: &NpmName) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = view(call, caller.as_ref()).await?;
    let (package, _) = whole_package(call, &feed, name).await?;
    let bytes = serde_json::to_vec(&package.dist_tags).map_err(|e| Error::Internal(e.into()))?;
    Ok(document(
        call.headers,
        Rendered::new("application/json", bytes),
    ))
}

/// `npm dist-tag add|rm`: `PUT` with the version as a JSON string, `DELETE`.
async fn change_tag(call: &Call<'_>, name: &NpmName, tag: &str, body: Body) -> Result<Response> {
    let method = call.method;
    if method != Method::PUT && method != Method::POST && method != Method::DELETE {
        return Err(no_endpoint());
    }
    let caller = call.caller().await?;
    let feed = feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        Permission::Add,
        "npm",
        is_npm,
    )
    .await?;
    let tag = registry::check_tag(tag).map_err(Error::invalid)?;
    let keys = (name.group_key.as_str(), name.name_key.as_str());
    let store = &call.ctx.store;
    if method == Method::DELETE {
        if !store.remove_dist_tag(&feed, keys, tag).await? {
            return Err(Error::NotFound(format!(
                "{} has no dist-tag \"{tag}\" in feed \"{}\".",
                name.full, feed.name
            )));
        }
        return Ok(Json(json!({ "ok": "tag removed" })).into_response());
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| Error::invalid("The body must be the version as a JSON string."))?;
    let version: String = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::invalid("The body must be the version as a JSON string, such as \"1.0.0\".")
        })?;
    let version = Identifier::parse(&version)
        .map_err(|rule| Error::invalid(format!("The version in the body {rule}.")))?;
    let version = version.as_str();
    let version_key = ecosystems::version_key(FeedType::Npm, version);
    if !store.set_dist_tag(&feed, keys, tag, &version_key).await? {
        return Err(Error::NotFound(format!(
            "Version {version} of {} is not in feed \"{}\".",
            name.full, feed.name
        )));
    }
    Ok((StatusCode::CREATED, Json(json!({ "ok": "tagged" }))).into_response())
}

/// Any error as npm shows it: `{"error": "…"}` with the status it would
/// have had, and a refused unpublish with the methods that remain.
async fn npm_error(error: Error) -> Response {
    let not_allowed = matches!(error, Error::MethodNotAllowed(_));
    let (mut parts, text) = error_parts(error).await;
    if not_allowed {
        parts
            .headers
            .insert(header::ALLOW, HeaderValue::from_static("GET, PUT"));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": text })).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}
