//! NuGet's v3 protocol at `/nuget/{feed}/` (contract section 15) for NuGet,
//! Chocolatey and PowerShell feeds, as NuGet.Client calls it: the service
//! index (`v3/index.json`), the flat container restore downloads from,
//! registration, search, and push and delete (`v2/package`). The documents
//! are `ecosystems::nuget::v3`'s. Errors are plain text whose sentence is
//! the reason phrase, which NuGet prints ("Response status code does not
//! indicate success: 409 (…)").

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::{
    base_url, cache_offered, caller_presenting, described_rows, document, feed, form, text_error,
    timestamp, with_warning, Call, Native, OfferedFile, Rendered,
};
use crate::connectors::{Offered, UpstreamFailure};
use crate::content::{self, backfill, Declared};
use crate::domain::{Connector, Integrity};
use crate::domain::{Identifier, PackageId, Permission};
use crate::ecosystems::nuget::upstream as nuget_upstream;
use crate::ecosystems::nuget::v3::{self, Entry};
use crate::ecosystems::{self, compare_versions, is_nuget, sort_in_order};
use crate::error::{Error, Result};
use crate::http::ApiContext;
use crate::store::{Feed, NativeFile, PackageKey, PackageRows, Recorded};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/nuget/{feed}/{*path}", any(nuget))
}

async fn nuget(native: Native, body: Body) -> Response {
    let call = native.call();
    let segments = native.segments();
    let (method, reading) = (call.method, call.reading());
    let answer = match segments.as_slice() {
        ["v3", "index.json"] if reading => service_index(&call).await,
        ["v3", "flatcontainer", id, "index.json"] if reading => flat_versions(&call, id).await,
        ["v3", "flatcontainer", id, version, file] if reading => {
            flat_file(&call, id, version, file).await
        }
        ["v3", "registration", id, "index.json"] if reading => registration(&call, id, None).await,
        ["v3", "registration", id, leaf] if reading => match leaf.strip_suffix(".json") {
            Some(version) => registration(&call, id, Some(version)).await,
            None => Err(no_endpoint()),
        },
        ["v3", "query"] if reading => search(&call).await,
        ["v2", "package"] if method == Method::PUT => push(&call, body).await,
        ["v2", "package", id, version] if method == Method::DELETE => {
            delete(&call, id, version).await
        }
        _ => Err(no_endpoint()),
    };
    match answer {
        Ok(response) => response,
        Err(error) => text_error(error).await,
    }
}

fn no_endpoint() -> Error {
    Error::NotFound(
        "There is no NuGet endpoint at this path: the service index is /nuget/{feed}/v3/index.json."
            .to_owned(),
    )
}

/// The feed, if the caller may do `permission` on it. Push and delete carry
/// `X-NuGet-ApiKey`; reads the source's credentials, after the challenge.
async fn feed_for(call: &Call<'_>, permission: Permission) -> Result<Feed> {
    Ok(feed_and_user(call, permission).await?.0)
}

/// The feed, and the name of the key that asks (empty for nobody).
async fn feed_and_user(call: &Call<'_>, permission: Permission) -> Result<(Feed, String)> {
    let caller = match crate::auth::nuget_api_key(call.headers) {
        Some(key) if permission != Permission::View => {
            caller_presenting(call.ctx, Some(key)).await?
        }
        _ => call.caller().await?,
    };
    let feed = feed(
        call.ctx,
        caller.as_ref(),
        call.feed,
        permission,
        "nuget",
        is_nuget,
    )
    .await?;
    Ok((feed, caller.map(|p| p.name).unwrap_or_default()))
}

/// `https://host/nuget/{feed}`: where every URL of the documents starts.
fn base(call: &Call<'_>, feed: &Feed) -> String {
    format!("{}/nuget/{}", base_url(call.ctx, call.headers), feed.name)
}

fn json(value: &serde_json::Value) -> Result<Rendered> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.into()))?;
    Ok(Rendered::new("application/json", bytes))
}

async fn service_index(call: &Call<'_>) -> Result<Response> {
    let feed = feed_for(call, Permission::View).await?;
    Ok(document(
        call.headers,
        json(&v3::service_index(&base(call, &feed)))?,
    ))
}

/// One package's files in the feed that hold content and a readable
/// `.nuspec`, in NuGet's order. An id no package could have is none.
async fn versions_of(call: &Call<'_>, feed: &Feed, id: &str) -> Result<Vec<NativeFile>> {
    if Identifier::parse(id).is_err() {
        return Ok(Vec::new());
    }
    let key = PackageKey {
        feed_id: feed.id,
        group_key: String::new(),
        name_key: ecosystems::name_key(feed.feed_type, id),
    };
    let rows: std::sync::Arc<PackageRows> = described_rows(call.ctx, feed, key).await?;
    let files: Vec<NativeFile> = rows
        .files
        .iter()
        .filter(|f| f.qualifier.is_empty() && backfill::is_described(feed.feed_type, f))
        .cloned()
        .collect();
    let feed_type = feed.feed_type;
    Ok(sort_in_order(files, &|a: &NativeFile, b: &NativeFile| {
        compare_versions(feed_type, &a.version, &b.version)
    }))
}

fn package_not_found(id: &str, feed: &Feed) -> Error {
    Error::NotFound(format!("Package {id} is not in feed \"{}\".", feed.name))
}

/// `flatcontainer/{id}/index.json`: the versions as restore asks for them
/// (lower case, normalised), with those the feed's connectors offer.
async fn flat_versions(call: &Call<'_>, id: &str) -> Result<Response> {
    let feed = feed_for(call, Permission::View).await?;
    let files = versions_of(call, &feed, id).await?;
    let mut versions: Vec<String> = files.iter().map(|f| f.version_key.clone()).collect();
    let mut failures = Vec::new();
    if !feed.connectors.is_empty() && Identifier::parse(id).is_ok() {
        let id_key = ecosystems::name_key(feed.feed_type, id);
        for connector in feed.connectors.iter() {
            match upstream_versions(call.ctx, &feed, connector, &id_key).await {
                Ok(Some((_, offered))) => {
                    for version in offered {
                        let key = ecosystems::version_key(feed.feed_type, &version);
                        if !versions.contains(&key) {
                            versions.push(key);
                        }
                    }
                }
                Ok(None) => {}
                Err(failure) => failures.push(failure),
            }
        }
        let feed_type = feed.feed_type;
        versions = sort_in_order(versions, &|a: &String, b: &String| {
            compare_versions(feed_type, a, b)
        });
    }
    if versions.is_empty() {
        return Err(match failures.first() {
            Some(failure) => failure.clone().into_error(&format!("Package {id}")),
            None => package_not_found(id, &feed),
        });
    }
    let response = document(call.headers, json(&v3::flat_versions(&versions))?);
    Ok(with_warning(response, &failures))
}

/// A connector's service index's resources, and the versions its flat
/// container lists for `id_key` (`None`: it has no such package).
async fn upstream_versions(
    ctx: &ApiContext,
    feed: &Feed,
    connector: &Connector,
    id_key: &str,
) -> std::result::Result<Option<(nuget_upstream::Resources, Vec<String>)>, UpstreamFailure> {
    let unusable = || {
        UpstreamFailure::new(
            &connector.url,
            "invalid",
            "does not answer with a NuGet v3 service index".to_owned(),
        )
    };
    let index = connector.as_url();
    let body = ctx
        .upstreams
        .metadata(feed, connector, &index, "application/json")
        .await?
        .body
        .ok_or_else(unusable)?;
    let resources = nuget_upstream::resources(&body, &index).ok_or_else(unusable)?;
    let Some(url) = nuget_upstream::versions_url(&resources, id_key) else {
        return Ok(None);
    };
    let body = ctx
        .upstreams
        .metadata(feed, connector, &url, "application/json")
        .await?
        .body;
    Ok(body.map(|body| (resources, nuget_upstream::versions(&body))))
}

/// The `.nupkg` of a version only the feed's connectors have: from the
/// first whose flat container lists it, to be checked against the SHA-512
/// its registration gives (`packageHash`).
async fn offered_nupkg(
    ctx: &ApiContext,
    feed: &Feed,
    id_key: &str,
    version_key: &str,
) -> Result<Option<Offered>> {
    let mut failures = Vec::new();
    for connector in feed.connectors.iter() {
        let resources = match upstream_versions(ctx, feed, connector, id_key).await {
            Ok(Some((resources, versions))) => {
                let listed = versions
                    .iter()
                    .any(|v| ecosystems::version_key(feed.feed_type, v) == version_key);
                if !listed {
                    continue;
                }
                resources
            }
            Ok(None) => continue,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let what = format!("Package {id_key} {version_key}");
        let no_hash = || {
            Error::Upstream(format!(
                "{what} is offered by connector {}, which gives no SHA-512 packageHash to check it against, so it was not cached.",
                connector.url
            ))
        };
        let mut next = nuget_upstream::registration_url(&resources, id_key);
        let mut sha512 = None;
        // The index, a page, a leaf, the catalog leaf: at most four documents.
        for _ in 0..4 {
            let Some(url) = next.take() else { break };
            let body = ctx
                .upstreams
                .metadata(feed, connector, &url, "application/json")
                .await
                .map_err(|failure| failure.into_error(&what))?
                .body
                .ok_or_else(no_hash)?;
            match nuget_upstream::hash(&body, &url, version_key) {
                nuget_upstream::Hash::Found(hex) => sha512 = Some(hex),
                nuget_upstream::Hash::Follow(link) => next = Some(link),
                nuget_upstream::Hash::Missing => {}
            }
        }
        let sha512 = sha512.ok_or_else(no_hash)?;
        let url = nuget_upstream::nupkg_url(&resources, id_key, version_key).ok_or_else(no_hash)?;
        return Ok(Some(Offered {
            connector: connector.clone(),
            url,
            file_name: format!("{id_key}.{version_key}.nupkg"),
            integrity: vec![Integrity::Sha512(sha512)],
        }));
    }
    match failures.into_iter().next() {
        Some(failure) => Err(failure.into_error(&format!("Package {id_key} {version_key}"))),
        None => Ok(None),
    }
}

/// What the feed's connectors offer for `package` (see
/// `upstream::fetch_for_promotion`): its `.nupkg`, if any has it.
pub(super) async fn offered_files(
    ctx: &ApiContext,
    feed: &Feed,
    package: &PackageId,
) -> Result<Vec<OfferedFile>> {
    let offered = offered_nupkg(ctx, feed, &package.name_key(), &package.version_key()).await?;
    Ok(offered
        .map(|offered| OfferedFile {
            offered,
            declared: Declared {
                name: Some(package.name().to_owned()),
                version: Some(package.version().to_owned()),
                ..Declared::default()
            },
            qualifier: String::new(),
        })
        .into_iter()
        .collect())
}

/// `flatcontainer/{id}/{version}/{id}.{version}.nupkg` and `{id}.nuspec`.
async fn flat_file(call: &Call<'_>, id: &str, version: &str, file: &str) -> Result<Response> {
    let feed = feed_for(call, Permission::View).await?;
    let missing = || package_not_found(&format!("{id} {version}"), &feed);
    let id_key = ecosystems::name_key(feed.feed_type, id);
    let version_key = ecosystems::version_key(feed.feed_type, version);
    let file = file.to_lowercase();
    if file == format!("{id_key}.nuspec") {
        let files = versions_of(call, &feed, id).await?;
        let nuspec = files
            .iter()
            .find(|f| f.version_key == version_key)
            .and_then(|f| f.metadata.clone())
            .ok_or_else(missing)?;
        return Ok(document(
            call.headers,
            Rendered::new("application/xml", nuspec.into_bytes()),
        ));
    }
    if file != format!("{id_key}.{version_key}.nupkg") {
        return Err(missing());
    }
    let part = |text: &str| Identifier::parse(text).map_err(|_| missing());
    let package =
        PackageId::new(feed.feed_type, None, &part(id)?, &part(version)?).map_err(|_| missing())?;
    let store = &call.ctx.store;
    let stored = match store.existing_file(&feed, &package, "").await? {
        Some(stored) => stored,
        None if feed.connectors.is_empty() => return Err(missing()),
        None => {
            // Cached on first download (contract section 16).
            let offered = offered_nupkg(call.ctx, &feed, &id_key, &version_key)
                .await?
                .ok_or_else(missing)?;
            let declared = Declared {
                name: Some(id.to_owned()),
                version: Some(version.to_owned()),
                ..Declared::default()
            };
            let caller = call.caller().await?;
            let is_stored =
                || async { Ok(store.existing_file(&feed, &package, "").await?.is_some()) };
            cache_offered(
                call.ctx,
                &feed,
                caller.as_ref(),
                &offered,
                declared,
                is_stored,
            )
            .await?;
            store
                .existing_file(&feed, &package, "")
                .await?
                .ok_or_else(missing)?
        }
    };
    crate::http::package_content::serve(call.ctx, feed.feed_type, stored, call.headers).await
}

/// Registration's and search's view of each version.
fn entries(call: &Call<'_>, feed: &Feed, files: &[NativeFile]) -> Vec<Entry> {
    let base = base(call, feed);
    files
        .iter()
        .map(|file| {
            let (id, version) = (&file.name_key, &file.version_key);
            Entry {
                id: file.name.clone(),
                version: file.version.clone(),
                nuspec: v3::read_nuspec(file.metadata.as_deref().unwrap_or_default()),
                published: timestamp(file.published_at),
                content: format!("{base}/v3/flatcontainer/{id}/{version}/{id}.{version}.nupkg"),
                leaf: format!("{base}/v3/registration/{id}/{version}.json"),
                package_hash: file.sha512.as_deref().and_then(|hex| {
                    use base64::Engine;
                    let bytes = hex::decode(hex).ok()?;
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }),
            }
        })
        .collect()
}

/// `registration/{id}/index.json`, every version inline, or one version's
/// leaf.
async fn registration(call: &Call<'_>, id: &str, version: Option<&str>) -> Result<Response> {
    let feed = feed_for(call, Permission::View).await?;
    let files = versions_of(call, &feed, id).await?;
    let entries = entries(call, &feed, &files);
    let first = entries
        .first()
        .ok_or_else(|| package_not_found(id, &feed))?;
    let index = format!(
        "{}/v3/registration/{}/index.json",
        base(call, &feed),
        ecosystems::name_key(feed.feed_type, &first.id)
    );
    let body = match version {
        None => v3::registration_index(&index, &entries),
        Some(version) => {
            let version_key = ecosystems::version_key(feed.feed_type, version);
            let (_, entry) = files
                .iter()
                .zip(&entries)
                .find(|(file, _)| file.version_key == version_key)
                .ok_or_else(|| package_not_found(&format!("{id} {version}"), &feed))?;
            v3::registration_leaf(&index, entry)
        }
    };
    Ok(document(call.headers, json(&body)?))
}

/// The most results one search page holds, as nuget.org caps `take`.
const MAX_TAKE: usize = 1000;

/// `query?q=&skip=&take=&prerelease=&semVerLevel=`: packages whose id holds
/// `q` (without regard to case), each with its versions the client can use.
async fn search(call: &Call<'_>) -> Result<Response> {
    let feed = feed_for(call, Permission::View).await?;
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(call.query.unwrap_or_default()).unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    };
    let number = |name: &str, default: usize| -> Result<usize> {
        match param(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                Error::invalid(format!(
                    "Parameter {name} must be a whole number, not \"{text}\"."
                ))
            }),
        }
    };
    let q = param("q").unwrap_or_default().to_lowercase();
    let skip = number("skip", 0)?;
    let take = number("take", 20)?.min(MAX_TAKE);
    let prerelease = param("prerelease").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let semver2 = param("semVerLevel").is_some_and(|v| v.starts_with('2'));
    let mut found = Vec::new();
    for (_, key) in call.ctx.store.packages_with_files(&feed).await? {
        if !key.contains(&q) {
            continue;
        }
        let files: Vec<NativeFile> = versions_of(call, &feed, &key)
            .await?
            .into_iter()
            .filter(|f| prerelease || !ecosystems::is_prerelease(feed.feed_type, &f.version))
            .filter(|f| semver2 || !v3::is_semver2(&f.version))
            .collect();
        if files.is_empty() {
            continue;
        }
        found.push(v3::Found {
            registration: format!("{}/v3/registration/{key}/index.json", base(call, &feed)),
            versions: entries(call, &feed, &files),
        });
    }
    let total = found.len();
    let page: Vec<v3::Found> = found.into_iter().skip(skip).take(take).collect();
    Ok(document(call.headers, json(&v3::search(total, &page))?))
}

/// `PUT v2/package`: `dotnet nuget push`'s multipart form, its `.nupkg` the
/// file part. 201 when stored, 200 when the same bytes were there already,
/// 409 for other bytes under the version, 400 for anything not a package.
async fn push(call: &Call<'_>, body: Body) -> Result<Response> {
    let (feed, user) = feed_and_user(call, Permission::Add).await?;
    let settings = &call.ctx.content;
    let mut parts = form::open(
        call.headers,
        body,
        settings,
        "A push must be a multipart/form-data form with the .nupkg as its file, as dotnet nuget push sends it.",
    )?;
    let field = loop {
        match parts
            .next_field()
            .await
            .map_err(|e| form::error(e, settings))?
        {
            Some(field) if field.file_name().is_some() || field.name() == Some("package") => {
                break field
            }
            Some(_) => continue,
            None => {
                return Err(Error::invalid(
                    "The push has no file part: send the .nupkg as the form's file.",
                ))
            }
        }
    };
    let uploaded = content::upload(
        &call.ctx.store,
        settings,
        &feed,
        None,
        Declared::default(),
        form::stream(field),
    )
    .await
    .map_err(|error| match error {
        Error::AlreadyExists(_) => Error::AlreadyExists(format!(
            "Conflict: another package is already stored as this version in feed \"{}\". Push a new version, or delete this one first (dotnet nuget delete).",
            feed.name
        )),
        other => other,
    })?;
    let (status, outcome) = match uploaded.recorded {
        Recorded::Added(_) => (StatusCode::CREATED, "pushed"),
        Recorded::Unchanged(_) => (StatusCode::OK, "already there"),
    };
    tracing::info!(feed = %feed.name, package = %uploaded.package, user, outcome, "nuget push");
    Ok(status.into_response())
}

/// `DELETE v2/package/{id}/{version}` (`dotnet nuget delete`), with `delete`
/// on the feed: 204, or 404 when the version is not there.
async fn delete(call: &Call<'_>, id: &str, version: &str) -> Result<Response> {
    let (feed, user) = feed_and_user(call, Permission::Delete).await?;
    let missing = || package_not_found(&format!("{id} {version}"), &feed);
    let part = |text: &str| Identifier::parse(text).map_err(|_| missing());
    let package =
        PackageId::new(feed.feed_type, None, &part(id)?, &part(version)?).map_err(|_| missing())?;
    let deleted = content::delete(
        &call.ctx.store,
        &call.ctx.content,
        &feed,
        &package,
        None,
        &user,
    )
    .await?;
    if deleted == 0 {
        return Err(missing());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
