//! A Maven repository at `/maven2/{feed}/` (contract section 15), as Maven
//! Resolver (`mvn`) and Gradle call it: `GET`/`HEAD`/`PUT` of a version's
//! files, the checksum files beside each (answered from the digests kept
//! with the blob, checked on `PUT`, never stored), and `maven-metadata.xml`
//! generated from the feed, so that a promotion changes it at once. The
//! layout is `ecosystems::maven::repository`'s. Errors are plain text whose
//! sentence is the reason phrase, which Maven prints.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use chrono::{DateTime, Utc};

use super::{
    cache_offered, described_rows, document, feed, owned_here, text_error, upstream, with_warning,
    Call, Native, OfferedFile, Rendered,
};
use crate::connectors::Offered;
use crate::content::{self, backfill, Declared};
use crate::domain::{FeedType, Identifier, PackageId, Permission};
use crate::ecosystems::maven::repository::{self, Checksum, LAST_UPDATED};
use crate::ecosystems::maven::upstream as maven_upstream;
use crate::ecosystems::{self, compare_versions, sort_in_order};
use crate::error::{Error, Result};
use crate::http::ApiContext;
use crate::store::{Feed, NativeFile, PackageKey, PackageRows, Recorded};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/maven2/{feed}", any(maven))
        .route("/maven2/{feed}/", any(maven))
        .route("/maven2/{feed}/{*path}", any(maven))
}

async fn maven(native: Native, body: Body) -> Response {
    let call = native.call();
    let segments = native.segments();
    let method = call.method;
    let answer = match repository::parse(&segments) {
        None => Err(Error::NotFound(
            "There is no Maven file at this path: files are at /maven2/{feed}/{group as folders}/{artifactId}/{version}/{artifactId}-{version}….".to_owned(),
        )),
        Some(path) if call.reading() => read(&call, path).await,
        Some(path) if method == Method::PUT => write(&call, path, body).await,
        Some(_) => Err(Error::MethodNotAllowed(
            "A Maven repository answers GET, HEAD and PUT; remove a version with pgutil packages delete.".to_owned(),
        )),
    };
    match answer {
        Ok(response) => response,
        Err(error) => text_error(error).await,
    }
}

fn is_maven(feed_type: FeedType) -> bool {
    feed_type == FeedType::Maven
}

/// The feed, if the caller may do `permission` on it, and the caller's name
/// (empty for nobody).
async fn feed_for(call: &Call<'_>, permission: Permission) -> Result<(Feed, String)> {
    let caller = call.caller().await?;
    let feed = feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        permission,
        "maven",
        is_maven,
    )
    .await?;
    Ok((feed, caller.map(|p| p.name).unwrap_or_default()))
}

/// An artifact's rows in the feed (every version's files), described.
async fn artifact_rows(
    call: &Call<'_>,
    feed: &Feed,
    group: &str,
    artifact: &str,
) -> Result<std::sync::Arc<PackageRows>> {
    let key = PackageKey {
        feed_id: feed.id,
        group_key: ecosystems::group_key(FeedType::Maven, group),
        name_key: ecosystems::name_key(FeedType::Maven, artifact),
    };
    described_rows(call.ctx, feed, key).await
}

fn package_id(group: &str, artifact: &str, version: &str) -> Result<PackageId> {
    let part = |text: &str| {
        Identifier::parse(text).map_err(|rule| Error::invalid(format!("\"{text}\" {rule}.")))
    };
    PackageId::new(
        FeedType::Maven,
        Some(&part(group)?),
        &part(artifact)?,
        &part(version)?,
    )
    .map_err(Error::invalid)
}

/// The files of an artifact that hold content, with their digests.
fn stored(rows: &PackageRows) -> impl Iterator<Item = &NativeFile> {
    rows.files
        .iter()
        .filter(|file| file.file_name.is_some() && backfill::is_described(FeedType::Maven, file))
}

/// When anything in the rows last changed: the newest file or arrival.
fn last_updated(rows: &PackageRows) -> String {
    let newest: Option<DateTime<Utc>> = stored(rows)
        .map(|f| f.published_at)
        .chain(rows.arrivals.values().map(|a| a.date))
        .max();
    newest.unwrap_or_default().format(LAST_UPDATED).to_string()
}

fn not_found(what: &str, feed: &Feed) -> Error {
    Error::NotFound(format!("{what} is not in feed \"{}\".", feed.name))
}

/// A generated document, or the checksum of it that was asked for.
fn generated(headers: &HeaderMap, xml: String, checksum: Option<Checksum>) -> Response {
    match checksum {
        Some(checksum) => document(
            headers,
            Rendered::new("text/plain", checksum.of(xml.as_bytes()).into_bytes()),
        ),
        None => {
            // Maven Resolver's "smart checksums" read these instead of
            // asking for each checksum file apart.
            let sums = [
                ("x-checksum-sha1", Checksum::Sha1),
                ("x-checksum-md5", Checksum::Md5),
                ("x-checksum-sha256", Checksum::Sha256),
            ]
            .map(|(name, checksum)| (name, checksum.of(xml.as_bytes())));
            let mut response = document(headers, Rendered::new("text/xml", xml.into_bytes()));
            for (name, value) in sums {
                if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
    }
}

async fn read(call: &Call<'_>, path: repository::Path) -> Result<Response> {
    let (feed, _) = match feed_for(call, Permission::View).await {
        // Deploying reads the artifact's metadata first, to merge it: a key
        // that may only add may read that much.
        Err(Error::Forbidden)
            if matches!(
                path,
                repository::Path::Metadata { .. } | repository::Path::SnapshotMetadata { .. }
            ) =>
        {
            feed_for(call, Permission::Add).await?
        }
        other => other?,
    };
    match path {
        repository::Path::Metadata {
            group,
            artifact,
            checksum,
        } => {
            let rows = artifact_rows(call, &feed, &group, &artifact).await?;
            let mut listed: Vec<String> = stored(&rows).map(|f| f.version.clone()).collect();
            let mut updated = last_updated(&rows);
            let mut failures = Vec::new();
            if !feed.connectors.is_empty() {
                // The connectors' versions too; `lastUpdated` the newest of
                // all, never the time of the request, so that the document
                // and its checksum, asked for apart, agree.
                let upstream = upstream(call.ctx, &feed, "application/xml", |connector| {
                    maven_upstream::metadata_url(&connector.as_base(), &group, &artifact)
                })
                .await;
                for (_, body) in &upstream.documents {
                    let (versions, upstream_updated) = maven_upstream::read_metadata(body);
                    // Upstream snapshots are not offered (see `offered_file`).
                    listed.extend(versions.into_iter().filter(|v| !v.ends_with("-SNAPSHOT")));
                    updated = updated.max(upstream_updated.unwrap_or_default());
                }
                failures = upstream.failures;
            }
            let mut seen = std::collections::HashSet::new();
            let versions: Vec<String> = sort_in_order(listed, &|a: &String, b: &String| {
                compare_versions(FeedType::Maven, a, b)
            })
            .into_iter()
            .filter(|version| seen.insert(ecosystems::version_key(FeedType::Maven, version)))
            .collect();
            if versions.is_empty() {
                return Err(match failures.first() {
                    Some(failure) => failure.clone().into_error(&format!("{group}:{artifact}")),
                    None => not_found(&format!("{group}:{artifact}"), &feed),
                });
            }
            let xml = repository::metadata(&group, &artifact, &versions, &updated);
            Ok(with_warning(
                generated(call.headers, xml, checksum),
                &failures,
            ))
        }
        repository::Path::SnapshotMetadata {
            group,
            artifact,
            version,
            checksum,
        } => {
            let rows = artifact_rows(call, &feed, &group, &artifact).await?;
            let version_key = ecosystems::version_key(FeedType::Maven, &version);
            let files: Vec<&str> = stored(&rows)
                .filter(|f| f.version_key == version_key)
                .filter_map(|f| f.file_name.as_deref())
                .collect();
            let xml = repository::snapshot_metadata(
                &group,
                &artifact,
                &version,
                &files,
                &last_updated(&rows),
            )
            .ok_or_else(|| not_found(&format!("{group}:{artifact}:{version}"), &feed))?;
            Ok(generated(call.headers, xml, checksum))
        }
        repository::Path::File {
            group,
            artifact,
            version,
            file,
            checksum: Some(checksum),
        } => {
            let mut rows = artifact_rows(call, &feed, &group, &artifact).await?;
            if stored_file(&rows, &version, &file).is_none() && !feed.connectors.is_empty() {
                // A checksum asked for before its file: the file is cached
                // first, and the checksum is of what was stored.
                cache_file(call, &feed, &group, &artifact, &version, &file).await?;
                rows = artifact_rows(call, &feed, &group, &artifact).await?;
            }
            let stored = stored_file(&rows, &version, &file)
                .ok_or_else(|| not_found(&format!("File {file}"), &feed))?;
            let digest = digest_of(stored, checksum)?;
            Ok(document(
                call.headers,
                Rendered::new("text/plain", digest.into_bytes()),
            ))
        }
        repository::Path::File {
            group,
            artifact,
            version,
            file,
            checksum: None,
        } => {
            let missing = || not_found(&format!("File {file}"), &feed);
            let package = package_id(&group, &artifact, &version).map_err(|_| missing())?;
            let store = &call.ctx.store;
            let stored = match store.existing_file(&feed, &package, &file).await? {
                Some(stored) => stored,
                None if feed.connectors.is_empty() => return Err(missing()),
                None => {
                    // Cached on first download (contract section 16).
                    cache_file(call, &feed, &group, &artifact, &version, &file).await?;
                    store
                        .existing_file(&feed, &package, &file)
                        .await?
                        .ok_or_else(missing)?
                }
            };
            crate::http::package_content::serve(call.ctx, FeedType::Maven, stored, call.headers)
                .await
        }
    }
}

/// Caches one file of a version that only the feed's connectors have: a 404
/// when none has it (with a checksum to check it by).
async fn cache_file(
    call: &Call<'_>,
    feed: &Feed,
    group: &str,
    artifact: &str,
    version: &str,
    file: &str,
) -> Result<()> {
    let missing = || not_found(&format!("File {file}"), feed);
    let package = package_id(group, artifact, version)?;
    // A version put here is the feed's own: no public file joins it.
    if owned_here(call.ctx, feed, &package).await? {
        return Err(missing());
    }
    let offered = offered_file(call.ctx, feed, group, artifact, version, file)
        .await?
        .ok_or_else(missing)?;
    let caller = call.caller().await?;
    let store = &call.ctx.store;
    let stored = || async { Ok(store.existing_file(feed, &package, file).await?.is_some()) };
    cache_offered(
        call.ctx,
        feed,
        caller.as_ref(),
        &offered.offered,
        offered.declared,
        stored,
    )
    .await
    .map(drop)
}

/// One file of a version as the feed's connectors offer it, with the
/// strongest checksum the first that has one publishes beside it.
async fn offered_file(
    ctx: &ApiContext,
    feed: &Feed,
    group: &str,
    artifact: &str,
    version: &str,
    file: &str,
) -> Result<Option<OfferedFile>> {
    // A snapshot's files change under one name: never cached from upstream.
    if version.ends_with("-SNAPSHOT") {
        return Ok(None);
    }
    let mut failures = Vec::new();
    for connector in feed.connectors.iter() {
        let Some(url) =
            maven_upstream::file_url(&connector.as_base(), group, artifact, version, file)
        else {
            continue;
        };
        // The strongest checksum published; a repository that refuses a
        // name it does not know (403, 400) is asked for the next one.
        let mut integrity = None;
        let mut failure = None;
        for (extension, length) in maven_upstream::CHECKSUMS {
            let Ok(checksum_url) = url::Url::parse(&format!("{url}{extension}")) else {
                continue;
            };
            match ctx
                .upstreams
                .metadata(feed, connector, &checksum_url, "text/plain")
                .await
            {
                Ok(answer) => {
                    integrity = answer
                        .body
                        .and_then(|body| maven_upstream::read_checksum(&body, extension, length));
                    if integrity.is_some() {
                        break;
                    }
                }
                Err(error) => failure = Some(error),
            }
        }
        if integrity.is_none() {
            failures.extend(failure);
        }
        if let Some(integrity) = integrity {
            return Ok(Some(OfferedFile {
                offered: Offered {
                    connector: connector.clone(),
                    url,
                    file_name: file.to_owned(),
                    integrity: vec![integrity],
                },
                declared: Declared {
                    group: Some(group.to_owned()),
                    name: Some(artifact.to_owned()),
                    version: Some(version.to_owned()),
                    qualifier: Some(file.to_owned()),
                },
                qualifier: file.to_owned(),
            }));
        }
    }
    match failures.into_iter().next() {
        Some(failure) => Err(failure.into_error(&format!("File {file}"))),
        None => Ok(None),
    }
}

/// What the feed's connectors offer for one version (see
/// `upstream::fetch_for_promotion`): its pom and its jar, those an upstream
/// has. Maven repositories list no version's files, so others (sources,
/// classifiers) are cached when they are first downloaded.
pub(super) async fn offered_files(
    ctx: &ApiContext,
    feed: &Feed,
    package: &PackageId,
) -> Result<Vec<OfferedFile>> {
    let (group, artifact, version) = (package.group(), package.name(), package.version());
    let mut offered = Vec::new();
    for extension in ["pom", "jar"] {
        let file = format!("{artifact}-{version}.{extension}");
        if let Some(found) = offered_file(ctx, feed, group, artifact, version, &file).await? {
            offered.push(found);
        }
    }
    Ok(offered)
}

fn stored_file<'r>(rows: &'r PackageRows, version: &str, file: &str) -> Option<&'r NativeFile> {
    let version_key = ecosystems::version_key(FeedType::Maven, version);
    stored(rows).find(|f| f.version_key == version_key && f.file_name.as_deref() == Some(file))
}

/// A stored file's checksum, from the digests kept with its blob (a file
/// whose blob could not be read for them is not shown at all).
fn digest_of(file: &NativeFile, checksum: Checksum) -> Result<String> {
    match checksum {
        Checksum::Md5 => file.md5.clone(),
        Checksum::Sha1 => file.sha1.clone(),
        Checksum::Sha256 => file.blob_sha256.clone(),
        Checksum::Sha512 => file.sha512.clone(),
    }
    .ok_or_else(|| Error::Internal(anyhow::anyhow!("a shown file has no {}", checksum.name())))
}

/// The most bytes a checksum file or an uploaded `maven-metadata.xml` may
/// have: they are read whole, and then checked or dropped.
const MAX_SIDE_FILE: usize = 1024 * 1024;

async fn side_file(call: &Call<'_>, body: Body) -> Result<String> {
    let too_large = || {
        Error::invalid(format!(
            "A checksum or metadata file must be at most {} KiB.",
            MAX_SIDE_FILE / 1024
        ))
    };
    if crate::http::input::declared_length(call.headers)
        .is_some_and(|length| length > MAX_SIDE_FILE as u64)
    {
        return Err(too_large());
    }
    let mut chunks = std::pin::pin!(crate::http::package_content::stalls_after(
        body.into_data_stream(),
        call.ctx.content.stall
    ));
    let mut bytes = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
        let chunk = chunk.map_err(|error| match error.kind() {
            std::io::ErrorKind::TimedOut => Error::UploadStalled {
                seconds: call.ctx.content.stall.as_secs(),
            },
            _ => Error::invalid("The request body could not be read to its end."),
        })?;
        if bytes.len() + chunk.len() > MAX_SIDE_FILE {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// How long after its upload a file whose checksum then disagrees is taken
/// back: Maven PUTs a file and then its checksums, so a disagreement this
/// soon means that upload arrived damaged; an older file stays.
const DAMAGED_UPLOAD_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

async fn write(call: &Call<'_>, path: repository::Path, body: Body) -> Result<Response> {
    let (feed, user) = feed_for(call, Permission::Add).await?;
    match path {
        // The feed's metadata is generated from what it holds; what a client
        // computed from what it saw is read and dropped.
        repository::Path::Metadata { .. } | repository::Path::SnapshotMetadata { .. } => {
            side_file(call, body).await?;
            Ok(StatusCode::OK.into_response())
        }
        repository::Path::File {
            group,
            artifact,
            version,
            file,
            checksum: Some(checksum),
        } => {
            let text = side_file(call, body).await?;
            // A checksum file is the hex digest, sometimes followed by the
            // file's name.
            let claimed = text.split_whitespace().next().unwrap_or_default();
            let rows = artifact_rows(call, &feed, &group, &artifact).await?;
            let stored = stored_file(&rows, &version, &file).ok_or_else(|| {
                Error::invalid(format!(
                    "The {} checksum of {file} cannot be checked: {file} is not in feed \"{}\". Upload the file first.",
                    checksum.name(),
                    feed.name
                ))
            })?;
            let actual = digest_of(stored, checksum)?;
            if !claimed.eq_ignore_ascii_case(&actual) {
                let just_uploaded = Utc::now() - stored.published_at < DAMAGED_UPLOAD_WINDOW;
                let mut consequence = "";
                if just_uploaded {
                    let package = package_id(&group, &artifact, &version)?;
                    content::delete(
                        &call.ctx.store,
                        &call.ctx.content,
                        &feed,
                        &package,
                        Some(&file),
                        &user,
                    )
                    .await?;
                    consequence = " It was removed: upload it again.";
                }
                return Err(Error::invalid(format!(
                    "The {} checksum of {file} is {claimed}, but the file stored in feed \"{}\" has {actual}: one of them was damaged on the way.{consequence}",
                    checksum.name(),
                    feed.name
                )));
            }
            Ok(StatusCode::OK.into_response())
        }
        repository::Path::File {
            group,
            artifact,
            version,
            file,
            checksum: None,
        } => {
            let declared = Declared {
                group: Some(group),
                name: Some(artifact),
                version: Some(version),
                qualifier: Some(file.clone()),
            };
            let body = crate::http::package_content::stalls_after(
                body.into_data_stream(),
                call.ctx.content.stall,
            );
            let uploaded = content::upload(
                &call.ctx.store,
                &call.ctx.content,
                &feed,
                Some(&file),
                declared,
                Box::pin(body),
            )
            .await?;
            let (status, outcome) = match uploaded.recorded {
                Recorded::Added(_) => (StatusCode::CREATED, "uploaded"),
                Recorded::Unchanged(_) => (StatusCode::OK, "already there"),
            };
            tracing::info!(feed = %feed.name, package = %uploaded.package, file = %file, user, outcome, "maven upload");
            Ok(status.into_response())
        }
    }
}
