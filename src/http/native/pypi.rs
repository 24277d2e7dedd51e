//! PyPI's protocols at `/pypi/{feed}/` (contract section 14), as pip, uv and
//! twine call them: the simple repository API (`simple/`), file downloads
//! with PEP 658 core metadata beside each wheel (`download/`), and twine's
//! upload form (`POST /pypi/{feed}/`, or `legacy/` as on PyPI). The pages
//! themselves are built by `ecosystems::pypi::simple`. Errors are plain text
//! whose sentence is also the HTTP reason phrase, since that is what twine
//! prints (`HTTPError: 409 Client Error: File already exists …`).

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{
    base_url, cache_offered, described_rows, document, feed, form, owned_here, promotion,
    text_error, upstream, with_warning, Call, DocumentKey, Native, OfferedFile, Rendered,
};
use crate::connectors::Offered;
use crate::content::{self, backfill, Declared};
use crate::domain::{FeedType, Identifier, PackageId, Permission};
use crate::ecosystems::pypi::upstream as pypi_upstream;
use crate::ecosystems::pypi::{self, simple};
use crate::ecosystems::{self, compare_versions, sort_in_order};
use crate::error::{Error, Result};
use crate::http::ApiContext;
use crate::store::{Feed, NativeFile, PackageKey, PackageRows, Recorded};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/pypi/{feed}", any(pypi))
        .route("/pypi/{feed}/", any(pypi))
        .route("/pypi/{feed}/{*path}", any(pypi))
}

async fn pypi(native: Native, body: Body) -> Response {
    let call = native.call();
    let segments = native.segments();
    let (method, reading) = (call.method, call.reading());
    let answer = match segments.as_slice() {
        [] | ["legacy"] if method == Method::POST => upload(&call, body).await,
        ["simple"] if reading => index(&call).await,
        ["simple", project] if reading => project_page(&call, project).await,
        ["download", project, version, file] if reading => match file.strip_suffix(".metadata") {
            Some(file) => core_metadata(&call, project, version, file).await,
            None => download(&call, project, version, file).await,
        },
        _ => Err(Error::NotFound(
            "There is no PyPI endpoint at this path: pip reads /pypi/{feed}/simple/, twine uploads to /pypi/{feed}/.".to_owned(),
        )),
    };
    match answer {
        Ok(response) => response,
        // Plain text, whose sentence is also the reason phrase twine prints.
        Err(error) => text_error(error).await,
    }
}

fn is_pypi(feed_type: FeedType) -> bool {
    feed_type == FeedType::Pypi
}

/// The feed, if the caller may view it.
async fn view(call: &Call<'_>) -> Result<Feed> {
    let caller = call.caller().await?;
    feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        Permission::View,
        "pypi",
        is_pypi,
    )
    .await
}

/// A path segment as written in a URL: file names and versions keep the
/// characters wheels and PEP 440 use (`+` of a local version included).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'+')
    .remove(b'!');

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The form of a page the request asks for; `None`: none this index serves.
fn asked_form(call: &Call<'_>) -> Option<&'static str> {
    let accept = call
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    simple::negotiate(accept)
}

/// PEP 691's answer to an `Accept` naming nothing this index serves.
fn not_acceptable() -> Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        [(header::VARY, "Accept")],
        format!(
            "This index serves {}, {} and {}.\n",
            simple::JSON,
            simple::HTML,
            simple::TEXT_HTML
        ),
    )
        .into_response()
}

/// A page in `form`: PEP 691's JSON, or HTML under the name it was asked by.
fn rendered(
    form: &'static str,
    json: impl FnOnce() -> serde_json::Value,
    html: impl FnOnce() -> String,
) -> Result<Rendered> {
    let body = if form == simple::JSON {
        serde_json::to_vec(&json()).map_err(|e| Error::Internal(e.into()))?
    } else {
        html().into_bytes()
    };
    Ok(Rendered::new(form, body))
}

/// `GET /simple/`: every project with a file in the feed.
async fn index(call: &Call<'_>) -> Result<Response> {
    let feed = view(call).await?;
    let Some(form) = asked_form(call) else {
        return Ok(not_acceptable());
    };
    let base = format!(
        "{}/pypi/{}/simple",
        base_url(call.ctx, call.headers),
        feed.name
    );
    let projects: Vec<simple::Listed> = call
        .ctx
        .store
        .packages_with_files(&feed)
        .await?
        .into_iter()
        .map(|(name, key)| simple::Listed {
            url: format!("{base}/{}/", segment(&key)),
            name,
        })
        .collect();
    let page = rendered(
        form,
        || simple::index_json(&projects),
        || simple::index_html(&projects),
    )?;
    Ok(document(call.headers, page))
}

fn project_not_found(project: &str, feed: &str) -> Error {
    Error::NotFound(format!(
        "Project \"{project}\" has no file in feed \"{feed}\"."
    ))
}

/// `GET /simple/{project}/`: the project's files. Another spelling of the
/// name is sent to the normalised one (301), as PyPI does, so that every
/// spelling has one page and one ETag.
async fn project_page(call: &Call<'_>, project: &str) -> Result<Response> {
    if !pypi::is_project_name(project) {
        return Err(project_not_found(project, call.feed));
    }
    let feed = view(call).await?;
    let normalized = pypi::normalise(project);
    let base = base_url(call.ctx, call.headers);
    if normalized != project {
        let location = format!("{base}/pypi/{}/simple/{normalized}/", feed.name);
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        response.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&location).map_err(|e| Error::Internal(e.into()))?,
        );
        return Ok(response);
    }
    let Some(form) = asked_form(call) else {
        return Ok(not_acceptable());
    };
    let key = package_key(&feed, &normalized);
    let rows = described_rows(call.ctx, &feed, key.clone()).await?;
    if !feed.connectors.is_empty() {
        // With connectors the upstreams' part is kept by `connectors`, and
        // the merged page is rendered for each request.
        let local = project_document(&feed, &rows, &base);
        let upstream = upstream(call.ctx, &feed, pypi_upstream::ACCEPT, |index| {
            pypi_upstream::page_url(&index.as_base(), &normalized)
        })
        .await;
        let offered = upstream
            .documents
            .iter()
            .flat_map(|(connector, body)| {
                let page = pypi_upstream::page_url(&connector.as_base(), &normalized);
                page.map(|page| pypi_upstream::read(body, &page, &normalized))
                    .unwrap_or_default()
            })
            .collect();
        let downloads = format!(
            "{base}/pypi/{}/download/{}",
            feed.name,
            segment(&normalized)
        );
        let owned: std::collections::HashSet<String> = rows
            .files
            .iter()
            .filter(|file| file.cached_from.is_none())
            .map(|file| file.version_key.clone())
            .collect();
        let merged = pypi_upstream::merge(&normalized, local, &owned, offered, |file| {
            format!(
                "{downloads}/{}/{}",
                segment(&file.version),
                segment(&file.filename)
            )
        });
        let project = match merged {
            Some(project) => project,
            None => {
                return Err(upstream
                    .failed(&format!("Project \"{normalized}\""))
                    .unwrap_or_else(|| project_not_found(&normalized, &feed.name)))
            }
        };
        let page = rendered(form, || project.json(), || project.html())?;
        return Ok(with_warning(
            document(call.headers, page),
            &upstream.failures,
        ));
    }
    let page = call.ctx.documents.get_or_render(
        DocumentKey { package: key, form },
        rows.fingerprint(),
        &base,
        || {
            let project = project_document(&feed, &rows, &base)
                .ok_or_else(|| project_not_found(project, &feed.name))?;
            rendered(form, || project.json(), || project.html())
        },
    )?;
    Ok(document(call.headers, page))
}

fn package_key(feed: &Feed, normalized: &str) -> PackageKey {
    PackageKey {
        feed_id: feed.id,
        group_key: String::new(),
        name_key: normalized.to_owned(),
    }
}

/// The files a page shows: with content, a file name and a readable
/// description.
fn shown(rows: &PackageRows) -> impl Iterator<Item = &NativeFile> {
    rows.files
        .iter()
        .filter(|file| file.file_name.is_some() && backfill::is_described(FeedType::Pypi, file))
}

/// A project's page from its rows; `None` when no file is shown.
fn project_document(feed: &Feed, rows: &PackageRows, base: &str) -> Option<simple::Project> {
    let files = sort_in_order(
        shown(rows).collect(),
        &|a: &&NativeFile, b: &&NativeFile| {
            compare_versions(FeedType::Pypi, &a.version, &b.version)
                .then_with(|| a.file_name.cmp(&b.file_name))
        },
    );
    let first = files.first()?;
    let normalized = first.name_key.clone();
    let mut versions: Vec<String> = Vec::new();
    for file in &files {
        if versions.last() != Some(&file.version) {
            versions.push(file.version.clone());
        }
    }
    let files = files
        .iter()
        .map(|file| {
            let file_name = file.file_name.clone().unwrap_or_default();
            let metadata = file.metadata.as_deref().unwrap_or_default();
            simple::File {
                url: format!(
                    "{base}/pypi/{}/download/{}/{}/{}",
                    feed.name,
                    segment(&normalized),
                    segment(&file.version),
                    segment(&file_name)
                ),
                sha256: file.blob_sha256.clone().unwrap_or_default(),
                requires_python: pypi::header(metadata, "Requires-Python")
                    .filter(|r| !r.is_empty()),
                core_metadata: pypi::is_wheel(&file_name)
                    .then(|| simple::metadata_sha256(metadata)),
                upload_time: Some(
                    file.published_at
                        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                        .to_string(),
                ),
                size: Some(file.size.unwrap_or_default()),
                promotion: rows.arrivals.get(&file.version_key).map(promotion),
                filename: file_name,
            }
        })
        .collect();
    Some(simple::Project {
        name: first.name.clone(),
        normalized,
        versions,
        files,
    })
}

fn file_not_found(file: &str, feed: &str) -> Error {
    Error::NotFound(format!("File \"{file}\" is not in feed \"{feed}\"."))
}

/// `GET /download/{project}/{version}/{file}`: the file, as the packages
/// API serves it (ETag, Range).
async fn download(call: &Call<'_>, project: &str, version: &str, file: &str) -> Result<Response> {
    let feed = view(call).await?;
    let missing = || file_not_found(file, &feed.name);
    let part = |text: &str| Identifier::parse(text).map_err(|_| missing());
    let package = PackageId::new(FeedType::Pypi, None, &part(project)?, &part(version)?)
        .map_err(|_| missing())?;
    let store = &call.ctx.store;
    let qualifier = pypi::qualifier(file);
    let stored = match store.existing_file(&feed, &package, &qualifier).await? {
        Some(stored) => stored,
        None if feed.connectors.is_empty() => return Err(missing()),
        // A version put here is the feed's own: no upstream file joins it.
        None if owned_here(call.ctx, &feed, &package).await? => return Err(missing()),
        None => {
            // Cached on first download (contract section 16).
            let caller = call.caller().await?;
            let wanted = offered_files(call.ctx, &feed, &package)
                .await?
                .into_iter()
                .find(|offered| offered.offered.file_name == file)
                .ok_or_else(missing)?;
            let is_stored = || async {
                Ok(store
                    .existing_file(&feed, &package, &qualifier)
                    .await?
                    .is_some())
            };
            cache_offered(
                call.ctx,
                &feed,
                caller.as_ref(),
                &wanted.offered,
                wanted.declared,
                is_stored,
            )
            .await?;
            store
                .existing_file(&feed, &package, &qualifier)
                .await?
                .ok_or_else(missing)?
        }
    };
    crate::http::package_content::serve(call.ctx, FeedType::Pypi, stored, call.headers).await
}

/// What the feed's connectors offer for one version of a project: each of
/// its files (wheels and sdists with a SHA-256), from the first connector
/// that has the project. A 502 when none has it and one failed.
pub(super) async fn offered_files(
    ctx: &ApiContext,
    feed: &Feed,
    package: &PackageId,
) -> Result<Vec<OfferedFile>> {
    let project = pypi::normalise(package.name());
    let upstream = upstream(ctx, feed, pypi_upstream::ACCEPT, |index| {
        pypi_upstream::page_url(&index.as_base(), &project)
    })
    .await;
    let version_key = package.version_key();
    for (connector, body) in &upstream.documents {
        let Some(page) = pypi_upstream::page_url(&connector.as_base(), &project) else {
            continue;
        };
        let files: Vec<OfferedFile> = pypi_upstream::read(body, &page, &project)
            .into_iter()
            .filter(|file| ecosystems::version_key(FeedType::Pypi, &file.version) == version_key)
            .map(|file| OfferedFile {
                qualifier: pypi::qualifier(&file.filename),
                declared: Declared {
                    name: Some(package.name().to_owned()),
                    version: Some(file.version.clone()),
                    ..Declared::default()
                },
                offered: Offered {
                    connector: connector.clone(),
                    url: file.url,
                    integrity: vec![crate::domain::Integrity::Sha256(file.sha256)],
                    file_name: file.filename,
                },
            })
            .collect();
        if !files.is_empty() {
            return Ok(files);
        }
    }
    match upstream.failed(&format!("Version {} of {project}", package.version())) {
        Some(error) => Err(error),
        None => Ok(Vec::new()),
    }
}

/// `GET /download/{project}/{version}/{wheel}.metadata`: the wheel's
/// `METADATA` as it arrived (PEP 658), which pip resolves with before it
/// downloads anything.
async fn core_metadata(
    call: &Call<'_>,
    project: &str,
    version: &str,
    file: &str,
) -> Result<Response> {
    let feed = view(call).await?;
    let missing = || file_not_found(&format!("{file}.metadata"), &feed.name);
    if !pypi::is_project_name(project) || !pypi::is_wheel(file) {
        return Err(missing());
    }
    let key = package_key(&feed, &pypi::normalise(project));
    let rows = described_rows(call.ctx, &feed, key).await?;
    let version_key = ecosystems::version_key(FeedType::Pypi, version);
    let metadata = shown(&rows)
        .find(|f| f.version_key == version_key && f.file_name.as_deref() == Some(file))
        .and_then(|f| f.metadata.clone())
        .ok_or_else(missing)?;
    Ok(document(
        call.headers,
        Rendered::new("text/plain; charset=utf-8", metadata.into_bytes()),
    ))
}

/// The form fields an upload reads; every other field (the description,
/// classifiers, other digests…) is metadata the file itself holds.
const FIELDS: &[&str] = &[":action", "name", "version", "filetype", "sha256_digest"];

/// The most bytes a field the upload reads may have.
const MAX_FIELD: usize = 64 * 1024;

/// `POST /pypi/{feed}/`: twine's and uv's `multipart/form-data` upload. The
/// file is staged as it streams in, its SHA-256 checked against
/// `sha256_digest`, and it is then recorded as any upload is: its own
/// metadata must be the `name` and `version` the form says, identical bytes
/// again are fine, other bytes are refused with "File already exists".
async fn upload(call: &Call<'_>, body: Body) -> Result<Response> {
    let caller = call.caller().await?;
    let feed = feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        Permission::Add,
        "pypi",
        is_pypi,
    )
    .await?;
    let principal = caller.ok_or(Error::Unauthenticated)?;
    let settings = &call.ctx.content;
    let mut parts = form::open(
        call.headers,
        body,
        settings,
        "The upload must be a multipart/form-data form, as twine and uv send it.",
    )?;
    let mut fields: HashMap<&'static str, String> = HashMap::new();
    let mut content = None;
    while let Some(field) = parts
        .next_field()
        .await
        .map_err(|e| form::error(e, settings))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "content" {
            if content.is_some() {
                return Err(Error::invalid(
                    "The upload has two content fields: send one file per request, as twine does.",
                ));
            }
            let file_name = field
                .file_name()
                .map(str::to_owned)
                .filter(|n| !n.is_empty() && !n.contains(['/', '\\']))
                .ok_or_else(|| {
                    Error::invalid("Field content must have a file name, such as example-1.0-py3-none-any.whl.")
                })?;
            let staged = content::stage(settings, form::stream(field)).await?;
            if staged.size == 0 {
                return Err(Error::invalid(
                    "Field content is empty: send the distribution file.",
                ));
            }
            content = Some((file_name, staged));
        } else if let Some(known) = FIELDS.iter().find(|known| **known == name) {
            fields.insert(known, field_text(field, known, settings).await?);
        }
    }
    let field = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let required = |name: &str, what: &str| {
        field(name).ok_or_else(|| Error::invalid(format!("Field {name} is missing: {what}.")))
    };
    let action = required(":action", "twine and uv send file_upload")?;
    if action != "file_upload" {
        return Err(Error::invalid(format!(
            "Field :action \"{action}\" is not supported: only file_upload (twine upload, uv publish) is."
        )));
    }
    let (file_name, staged) = content
        .ok_or_else(|| Error::invalid("Field content is missing: the upload has no file."))?;
    let filetype = required("filetype", "it is sdist or bdist_wheel")?;
    pypi::check_filetype(filetype, &file_name)
        .map_err(|rule| Error::invalid(format!("The upload's {rule}.")))?;
    let digest = required(
        "sha256_digest",
        "the file's SHA-256 lets the server check that it arrived whole",
    )?;
    if !digest.eq_ignore_ascii_case(&staged.sha256) {
        return Err(Error::invalid(format!(
            "Field sha256_digest is {digest}, but the file that arrived has SHA-256 {}: it was damaged on the way, and nothing was stored.",
            staged.sha256
        )));
    }
    let declared = Declared {
        name: Some(required("name", "it is the project's name")?.to_owned()),
        version: Some(required("version", "it is the release's version")?.to_owned()),
        ..Declared::default()
    };
    let uploaded = content::record(
        &call.ctx.store,
        settings,
        &feed,
        Some(&file_name),
        declared,
        staged,
        None,
    )
    .await
    .map_err(|error| match error {
        Error::AlreadyExists(_) => Error::AlreadyExists(format!(
            "File already exists: \"{file_name}\" is in feed \"{}\" with other bytes. Upload it under a new version, or delete this one first (pgutil packages delete).",
            feed.name
        )),
        other => other,
    })?;
    let outcome = match uploaded.recorded {
        Recorded::Added(_) => "uploaded",
        Recorded::Unchanged(_) => "already there",
    };
    tracing::info!(feed = %feed.name, package = %uploaded.package, file = %file_name, user = %principal.name, outcome, "pypi upload");
    Ok((StatusCode::OK, "OK\n").into_response())
}

/// A text field the upload reads, within `MAX_FIELD`.
async fn field_text(
    mut field: multer::Field<'static>,
    name: &str,
    settings: &content::Settings,
) -> Result<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| form::error(e, settings))? {
        if bytes.len() + chunk.len() > MAX_FIELD {
            return Err(Error::invalid(format!(
                "Field {name} is longer than {} KiB.",
                MAX_FIELD / 1024
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| Error::invalid(format!("Field {name} is not UTF-8.")))
}
