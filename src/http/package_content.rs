//! Uploads and downloads of package files (contract section 10), as pgutil's
//! `packages upload` and `packages download` call them. Both stream: neither
//! holds a file in memory. They are served outside the request timeout (a
//! large file takes as long as the network needs); an upload instead gives up
//! when its body stalls.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Viewer};
use super::input::{declared_length, Fields};
use super::openapi::Refusals;
use super::packages::{
    feed_for, feed_to_view, info, matching_files, selection, PackageQuery, PackageVersionInfo,
};
use super::ApiContext;
use crate::content::{self, Declared};
use crate::domain::{parse_qualifier, FeedName, FeedType, Permission};
use crate::ecosystems;
use crate::error::{Error, Result};
use crate::store::{PackageFile, Recorded};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(upload_named))
        .routes(routes!(download))
}

/// An upload's query: which package the file is, for feed types whose files do
/// not say (checked against the file where it does). Any other parameter is
/// refused.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// For feed types whose files do not say which package they are.
    name: Option<String>,
    version: Option<String>,
    group: Option<String>,
    qualifier: Option<String>,
    /// A Debian file's distribution, as pgutil sends it (its qualifier when
    /// none is given).
    distribution: Option<String>,
}

#[utoipa::path(
    method(put, post),
    path = "/api/packages/{feed}/upload",
    tag = "packages",
    summary = "Upload a package file (its name unknown, as from stdin)",
    description = "The body is the file's bytes. Which package it is comes from the file (NuGet, npm, universal) or, for other feed types, from `name`, `version`, `group` and `qualifier`. PyPI files need the file name in the path.",
    params(
        ("feed" = FeedName, Path, description = "The feed's name."),
        UploadQuery
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored, or already there with the same bytes.", body = PackageVersionInfo),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        (status = 413, description = "Larger than the upload limit.", body = String, content_type = "text/plain"),
        (status = 408, description = "The body sent nothing for the stall timeout (`--stall-timeout-seconds`); nothing was stored.", body = String, content_type = "text/plain"),
        (status = 415, description = "A multipart body: send the file's bytes as they are.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn upload(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    Path(feed): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<PackageVersionInfo>> {
    let feed = feed_for(&ctx, &principal, &feed, Permission::Add).await?;
    receive(&ctx, &feed, None, query.as_deref(), request).await
}

#[utoipa::path(
    method(put, post),
    path = "/api/packages/{feed}/upload/{fileName}",
    tag = "packages",
    summary = "Upload a package file under its name",
    description = "As the upload without a name; the name is what a download calls the file.",
    params(
        ("feed" = FeedName, Path, description = "The feed's name."),
        ("fileName" = String, Path, description = "The file's name, such as `Django-5.0.6.tar.gz`."),
        UploadQuery
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored, or already there with the same bytes.", body = PackageVersionInfo),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        (status = 413, description = "Larger than the upload limit.", body = String, content_type = "text/plain"),
        (status = 408, description = "The body sent nothing for the stall timeout (`--stall-timeout-seconds`); nothing was stored.", body = String, content_type = "text/plain"),
        (status = 415, description = "A multipart body: send the file's bytes as they are.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn upload_named(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    Path((feed, file_name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<PackageVersionInfo>> {
    let feed = feed_for(&ctx, &principal, &feed, Permission::Add).await?;
    let file_name = file_name.trim();
    // 240, so that a PyPI file's qualifier (`file=NAME`) fits in 250.
    if file_name.is_empty()
        || file_name.chars().count() > 240
        || file_name.contains(['/', '\\'])
        || file_name.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "The file name in the path must be 1 to 240 characters, without slashes or control characters.",
        ));
    }
    receive(&ctx, &feed, Some(file_name), query.as_deref(), request).await
}

async fn receive(
    ctx: &ApiContext,
    feed: &crate::store::Feed,
    file_name: Option<&str>,
    query: Option<&str>,
    request: Request,
) -> Result<Json<PackageVersionInfo>> {
    let params = Fields::from_query(query)?;
    let upload: UploadQuery = params.read()?;
    // pgutil names a Debian file's distribution; it tells files apart as a
    // qualifier would.
    let distribution = upload
        .distribution
        .map(|d| format!("distribution={}", d.trim()));
    let declared = Declared {
        name: upload.name,
        version: upload.version,
        group: upload.group.filter(|g| !g.trim().is_empty()),
        qualifier: upload
            .qualifier
            .or(distribution)
            .map(|raw| parse_qualifier(&raw).map_err(|rule| params.error("qualifier", rule)))
            .transpose()?,
    };
    let headers = request.headers();
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.is_some_and(|m| m.starts_with("multipart/")) {
        return Err(Error::UnsupportedUpload);
    }
    let limit = ctx.content.max_upload;
    let too_large = Error::UploadTooLarge {
        limit_mib: limit / (1024 * 1024),
    };
    if declared_length(headers).is_some_and(|length| length > limit) {
        return Err(too_large);
    }
    // Each chunk must arrive within UPLOAD_STALL of the one before.
    let body = request.into_body().into_data_stream();
    let body = stalls_after(body, ctx.content.stall);
    let uploaded = content::upload(
        &ctx.store,
        &ctx.content,
        feed,
        file_name,
        declared,
        Box::pin(body),
    )
    .await?;
    let (file, verb) = match uploaded.recorded {
        Recorded::Added(file) => (file, "uploaded"),
        Recorded::Unchanged(file) => (file, "already there"),
    };
    tracing::info!(feed = %feed.name, package = %uploaded.package, size = file.size, outcome = verb, "package file");
    Ok(Json(info(feed.feed_type, file)))
}

/// The body's chunks, each within `stall` of the one before; a stall ends the
/// stream with an error of kind `TimedOut` (answered 408), a broken-off body
/// with another (400).
pub(super) fn stalls_after(
    body: axum::body::BodyDataStream,
    stall: Duration,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> {
    futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(stall, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(error))) => Some((Err(std::io::Error::other(error)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the body stalled",
                )),
                None,
            )),
        }
    })
}

#[utoipa::path(
    get,
    path = "/api/packages/{feed}/download",
    tag = "packages",
    summary = "Download a package file",
    description = "Streamed, with `ETag` (the SHA-256) and `Range` (with `If-Range`) support. `version` may be `latest` or `latest-stable`.",
    params(
        ("feed" = FeedName, Path, description = "The feed's name."),
        PackageQuery
    ),
    responses(
        (status = 200, description = "The file.", body = Vec<u8>, content_type = "application/octet-stream",
            headers(("ETag" = String), ("Content-Disposition" = String), ("Accept-Ranges" = String))),
        (status = 206, description = "The requested range of the file.", body = Vec<u8>, content_type = "application/octet-stream",
            headers(("Content-Range" = String), ("ETag" = String))),
        (status = 304, description = "`If-None-Match` names this file's ETag."),
        (status = 404, description = "The feed, the version or its content is not there.", body = String, content_type = "text/plain"),
        (status = 416, description = "The range is outside the file.", body = String, content_type = "text/plain",
            headers(("Content-Range" = String))),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn download(
    State(ctx): State<ApiContext>,
    Viewer(viewer): Viewer,
    Path(feed): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let feed = feed_to_view(&ctx, viewer.as_ref(), &feed).await?;
    let params = Fields::from_query(query.as_deref())?;
    let mut wanted = selection(&params, params.read()?, &feed)?;
    if wanted.filter.name.is_none() {
        return Err(params.error("name", "is required"));
    }
    let version = wanted
        .filter
        .version
        .clone()
        .ok_or_else(|| params.error("version", "is required"))?;
    // `latest` is the highest version (contract 7.5); ProGet's pgutil also
    // says `latest-unstable` for that.
    let latest = match version.as_str().to_ascii_lowercase().as_str() {
        "latest" | "latest-unstable" => Some(false),
        "latest-stable" => Some(true),
        _ => None,
    };
    if latest.is_some() {
        wanted.filter.version = None;
    }
    let mut files = matching_files(&ctx, &feed, &wanted).await?;
    // A download names one package: without a group, the one without a group
    // (an unscoped npm package, as a purl without a namespace means), never
    // another group's package of the same name.
    if wanted.filter.group.is_none() {
        files.retain(|f| f.group_key.is_empty());
    }
    if let Some(stable_only) = latest {
        let versions = files.iter().map(|f| f.version.as_str());
        let highest = ecosystems::latest(feed.feed_type, versions, stable_only).map(str::to_owned);
        files.retain(|f| Some(&f.version) == highest.as_ref());
    }
    let described = format!(
        "{}{} {}",
        wanted
            .filter
            .group
            .as_ref()
            .map(|g| format!("{}/", g.as_str()))
            .unwrap_or_default(),
        wanted.filter.name.as_ref().map_or("", |n| n.as_str()),
        version.as_str()
    );
    let file = match files.len() {
        0 => {
            return Err(Error::NotFound(format!(
                "Package {described} was not found in feed \"{}\".",
                feed.name
            )))
        }
        1 => files.remove(0),
        n => {
            return Err(params.error(
                "qualifier",
                format!("must name one of the {n} files of package {described}"),
            ))
        }
    };
    serve(&ctx, feed.feed_type, file, &headers).await
}

/// The file's bytes, whole or the range asked for.
pub(super) async fn serve(
    ctx: &ApiContext,
    feed_type: FeedType,
    file: PackageFile,
    headers: &HeaderMap,
) -> Result<Response> {
    let Some(sha256) = file.blob_sha256.clone() else {
        let group = match file.group_name.as_str() {
            "" => String::new(),
            group => format!("{group}/"),
        };
        return Err(Error::NotFound(format!(
            "Package {group}{} {} is a record without content (added with `promoter packages add`), so there is nothing to download.",
            file.name, file.version
        )));
    };
    let size = file.size.unwrap_or(0).max(0) as u64;
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response
            .headers_mut()
            .insert(header::ETAG, header_value(&etag));
        return Ok(response);
    }
    // If-Range (RFC 9110 13.1.5): a range of the file the client already
    // has part of, or else the whole file. Only our strong ETag matches; a
    // date never does, so a resumed `latest` never splices two files.
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|validator| validator.as_bytes() == etag.as_bytes());
    let asked = headers
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok());
    let range = match asked {
        None => None,
        Some(text) => match parse_range(text, size) {
            RangeAsked::Whole => None,
            RangeAsked::Part(start, end) => Some((start, end)),
            RangeAsked::Unsatisfiable => {
                let mut response = super::error::text(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("Header \"Range\" asks for bytes outside the file's {size}."),
                );
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{size}")),
                );
                return Ok(response);
            }
        },
    };
    let (start, length) = range.map_or((0, size), |(start, end)| (start, end - start + 1));
    let stream = ctx
        .content
        .storage
        .open(&sha256, start, length)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("could not read a package file: {e}")))?
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "the content of a recorded file is missing from storage: {sha256}"
            ))
        })?;
    let file_name = file
        .file_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", file.name, file.version));
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(feed_type, &file_name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ETAG, header_value(&etag));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        header_value(&disposition(&file_name)),
    );
    if let Some((start, end)) = range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{end}/{size}")),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("made of visible ASCII")
}

/// `attachment; filename="…"` with anything but plain ASCII replaced, and the
/// exact name in `filename*` (RFC 6266).
fn disposition(file_name: &str) -> String {
    let plain: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = utf8_percent_encode(file_name, NON_ALPHANUMERIC);
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

fn media_type(feed_type: FeedType, file_name: &str) -> &'static str {
    let lower = file_name.to_ascii_lowercase();
    match feed_type {
        _ if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") => "application/gzip",
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell | FeedType::Universal => {
            "application/zip"
        }
        _ if lower.ends_with(".whl") || lower.ends_with(".zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAsked {
    /// No usable range (another unit, several ranges, invalid syntax): the
    /// whole file, as RFC 9110 (14.2) has a server ignore what it cannot use.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A valid range that lies wholly outside the file: 416.
    Unsatisfiable,
}

/// One `bytes=` range as RFC 9110 (14.1.2) writes it: `a-b`, `a-` or `-n`
/// (the last n bytes), the unit in any case. A last position past the end is
/// the end, however many digits it has.
fn parse_range(text: &str, size: u64) -> RangeAsked {
    let Some((unit, spec)) = text.trim().split_once('=') else {
        return RangeAsked::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsked::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsked::Whole;
    };
    // 1*DIGIT, saturating: a position beyond u64 is beyond any file.
    let position = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| {
            digits.bytes().fold(0u64, |n, digit| {
                n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
            })
        })
    };
    let (start, end) = match (first.is_empty(), position(first), position(last)) {
        // A suffix: the last n bytes, the whole file when it is shorter.
        (true, _, Some(0)) => return RangeAsked::Unsatisfiable,
        (true, _, Some(suffix)) => (size.saturating_sub(suffix), size.saturating_sub(1)),
        (false, Some(start), None) if last.is_empty() => (start, size.saturating_sub(1)),
        (false, Some(start), Some(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        _ => return RangeAsked::Whole,
    };
    if size == 0 || start >= size {
        RangeAsked::Unsatisfiable
    } else {
        RangeAsked::Part(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsked::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsked::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsked::Part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), RangeAsked::Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeAsked::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsked::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=9-2", 100), RangeAsked::Whole);
        // RFC 9110: the unit is case-insensitive; a last position past the
        // end is the end, whatever its size; an invalid header is ignored.
        assert_eq!(parse_range("BYTES=0-1", 100), RangeAsked::Part(0, 1));
        assert_eq!(parse_range("Bytes=5-", 100), RangeAsked::Part(5, 99));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999", 100),
            RangeAsked::Part(0, 99)
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999", 100),
            RangeAsked::Part(0, 99)
        );
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            RangeAsked::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=--5", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=+1-5", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=1-+5", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=a-5", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=", 100), RangeAsked::Whole);
        assert_eq!(parse_range("bytes=-", 100), RangeAsked::Whole);
    }

    #[test]
    fn dispositions_quote_safely() {
        assert_eq!(
            disposition("a\"b.nupkg"),
            "attachment; filename=\"a_b.nupkg\"; filename*=UTF-8''a%22b%2Enupkg"
        );
    }
}
