//! The packages API (`/api/packages/{feed}…`): what a feed holds, its latest
//! versions, all versions, and deleting. Reads need `view` on the feed, deleting
//! needs `delete`.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::SecondsFormat;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Viewer};
use super::input::{Fields, NoParams, PathName, Qualifier};
use super::openapi::Refusals;
use super::ApiContext;
use crate::auth::Principal;
use crate::domain::{
    FeedName, FeedType, FilterKeys, Identifier, PackageFilter, PackageId, Permission, Purl,
};
use crate::ecosystems::{compare_versions, is_prerelease, may_be_latest, sort_in_order};
use crate::error::{Error, Result};
use crate::store::{Feed, PackageFile};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(feed_info))
        .routes(routes!(latest))
        .routes(routes!(versions))
        .routes(routes!(remove))
}

/// The feed named in the path, if the key may do `permission` there. A feed
/// outside the key's scope is a 403 whether or not it exists.
pub(super) async fn feed_for(
    ctx: &ApiContext,
    principal: &Principal,
    raw: &str,
    permission: Permission,
) -> Result<Feed> {
    let name = FeedName::parse(raw)
        .map_err(|rule| Error::invalid(format!("The feed name in the path {rule}.")))?;
    let feed = ctx.store.feed(&name).await?;
    principal.require(permission, feed.as_ref())?;
    feed.ok_or_else(|| Error::NotFound(format!("Feed \"{name}\" does not exist.")))
}

/// The feed named in the path, if the caller may view it: anyone may view a
/// public feed, with a key or without; otherwise as `feed_for`, with no key
/// refused as an unknown one (section 2's 403).
pub(super) async fn feed_to_view(
    ctx: &ApiContext,
    viewer: Option<&Principal>,
    raw: &str,
) -> Result<Feed> {
    if let Ok(name) = FeedName::parse(raw) {
        if let Some(feed) = ctx.store.feed(&name).await?.filter(|feed| feed.public) {
            return Ok(feed);
        }
    }
    match viewer {
        Some(principal) => feed_for(ctx, principal, raw, Permission::View).await,
        None => Err(Error::Forbidden),
    }
}

/// ProGet's BasicFeedInfo.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BasicFeedInfo {
    id: i64,
    name: String,
    feed_type: FeedType,
    package_type: FeedType,
}

#[utoipa::path(
    get,
    path = "/api/packages/{feed}",
    tag = "packages",
    summary = "ProGet's BasicFeedInfo of a feed",
    params(("feed" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm")),
    responses(
        (status = 200, description = "The feed.", body = BasicFeedInfo),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn feed_info(
    State(ctx): State<ApiContext>,
    Viewer(viewer): Viewer,
    PathName(feed): PathName,
    RawQuery(query): RawQuery,
) -> Result<Json<BasicFeedInfo>> {
    let feed = feed_to_view(&ctx, viewer.as_ref(), &feed).await?;
    Fields::from_query(query.as_deref())?.read::<NoParams>()?;
    Ok(Json(BasicFeedInfo {
        id: feed.id,
        name: feed.name,
        feed_type: feed.feed_type,
        package_type: feed.feed_type,
    }))
}

/// ProGet's PackageVersionInfo: one per file.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PackageVersionInfo {
    purl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    name: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    qualifier: Option<String>,
    published: String,
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    listed: bool,
    total_downloads: i64,
    downloads: i64,
    /// Whether a connector fetched it from an upstream (contract section 16).
    cached: bool,
    /// The upstream URL it was fetched from, when cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_from: Option<String>,
}

/// What package-URL components may hold unescaped.
const PURL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `pkg:npm/%40babel/runtime@7.21.0`: the group (or, for docker, the repository
/// path before the last `/`) is the namespace.
fn purl(feed_type: FeedType, file: &PackageFile) -> String {
    let full = if file.group_name.is_empty() {
        file.name.clone()
    } else {
        format!("{}/{}", file.group_name, file.name)
    };
    let path: Vec<String> = full
        .split('/')
        .map(|segment| utf8_percent_encode(segment, PURL_COMPONENT).to_string())
        .collect();
    let version = utf8_percent_encode(&file.version, PURL_COMPONENT);
    let mut purl = format!("pkg:{}/{}@{version}", feed_type.purl_type(), path.join("/"));
    if !file.qualifier.is_empty() {
        purl.push('?');
        purl.push_str(&file.qualifier);
    }
    purl
}

pub(super) fn info(feed_type: FeedType, file: PackageFile) -> PackageVersionInfo {
    PackageVersionInfo {
        purl: purl(feed_type, &file),
        group: Some(file.group_name).filter(|g| !g.is_empty()),
        name: file.name,
        version: file.version,
        qualifier: Some(file.qualifier).filter(|q| !q.is_empty()),
        published: file.published_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        size: file.size.unwrap_or(0),
        sha256: file.sha256,
        listed: true,
        total_downloads: 0,
        downloads: 0,
        cached: file.cached_from.is_some(),
        cached_from: file.cached_from,
    }
}

/// The most files one `versions` or `latest` answer may hold. Past it the answer
/// would be megabytes; the caller is asked to narrow the query instead of being
/// given a silently cut list.
pub const MAX_FILES_LISTED: i64 = 10_000;

/// The query naming packages, a version or one file: `name`, `group`,
/// `version`, `qualifier`, or one `purl` instead. Any other parameter is
/// refused.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PackageQuery {
    /// The package's name (alias `package`); a download and a delete need it
    /// unless `purl` is given.
    #[serde(alias = "package")]
    #[param(value_type = Option<String>, min_length = 1, example = "runtime")]
    name: Option<Identifier>,
    /// The package's group.
    #[param(value_type = Option<String>, min_length = 1, example = "@babel")]
    group: Option<Identifier>,
    /// A version; a download may say `latest` (or `latest-unstable`) or
    /// `latest-stable`.
    #[param(value_type = Option<String>, min_length = 1)]
    version: Option<Identifier>,
    /// One file of the version, such as `type=tgz`.
    #[param(value_type = Option<String>)]
    qualifier: Option<Qualifier>,
    /// A package URL instead of the fields above.
    #[param(value_type = Option<String>)]
    purl: Option<Purl>,
}

/// The latest versions' query: as `PackageQuery`, without a version.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LatestQuery {
    /// The package's name (alias `package`).
    #[serde(alias = "package")]
    #[param(value_type = Option<String>, min_length = 1, example = "runtime")]
    name: Option<Identifier>,
    /// The package's group.
    #[param(value_type = Option<String>, min_length = 1, example = "@babel")]
    group: Option<Identifier>,
    /// One file of the version, such as `type=tgz`.
    #[param(value_type = Option<String>)]
    qualifier: Option<Qualifier>,
    /// A package URL instead of the fields above.
    #[param(value_type = Option<String>)]
    purl: Option<Purl>,
    /// Leave out prereleases.
    stable_only: Option<bool>,
}

/// What a packages query selects: a package (or version) and maybe one file.
pub(super) struct Selection {
    pub filter: PackageFilter,
    pub qualifier: Option<String>,
}

/// The selection a query names in `feed`; `params` words the errors.
pub(super) fn selection(params: &Fields, query: PackageQuery, feed: &Feed) -> Result<Selection> {
    let PackageQuery {
        name,
        group,
        version,
        qualifier,
        purl,
    } = query;
    let qualifier = qualifier.map(|q| q.0).filter(|q| !q.is_empty());
    let Some(purl) = purl else {
        return Ok(Selection {
            filter: PackageFilter {
                group,
                name,
                version,
            },
            qualifier,
        });
    };
    if group.is_some() || name.is_some() || version.is_some() || qualifier.is_some() {
        return Err(params.error(
            "purl",
            "already names the package, so name, group, version and qualifier must be left out",
        ));
    }
    if purl.purl_type != feed.feed_type.purl_type() {
        return Err(params.error(
            "purl",
            format!(
                "is {} package URL, but feed \"{}\" holds {} packages",
                crate::domain::with_article(&purl.purl_type),
                feed.name,
                feed.feed_type.purl_type()
            ),
        ));
    }
    Ok(Selection {
        filter: PackageFilter {
            group: purl.group,
            name: Some(purl.name),
            version: purl.version,
        },
        qualifier: purl.qualifier,
    })
}

/// The filter keys a selection means in a feed of this type: `Ok(None)` for
/// "everything", `Err(())` when it cannot name anything there.
fn selection_keys(feed: &Feed, selection: &Selection) -> Result<Option<FilterKeys>, ()> {
    if selection.filter.is_empty() {
        return Ok(None);
    }
    selection
        .filter
        .keys()
        .into_iter()
        .find(|keys| keys.feed_types.contains(&feed.feed_type))
        .map(Some)
        .ok_or(())
}

/// The answer to a query that matched more than [`MAX_FILES_LISTED`] files;
/// `narrow_by` names the parameters that can narrow it.
fn too_many_files(feed: &Feed, narrow_by: &str) -> Error {
    Error::invalid(format!(
        "The query matches more than {MAX_FILES_LISTED} files in feed \"{}\"; narrow it with {narrow_by}.",
        feed.name
    ))
}

/// The files of `feed` that the selection names, at most [`MAX_FILES_LISTED`].
pub(super) async fn matching_files(
    ctx: &ApiContext,
    feed: &Feed,
    selection: &Selection,
) -> Result<Vec<PackageFile>> {
    let Ok(keys) = selection_keys(feed, selection) else {
        return Ok(Vec::new());
    };
    let files = ctx
        .store
        .package_files(
            feed,
            keys.as_ref(),
            selection.qualifier.as_deref(),
            MAX_FILES_LISTED + 1,
        )
        .await?;
    if files.len() as i64 > MAX_FILES_LISTED {
        return Err(too_many_files(feed, "name, group or version"));
    }
    Ok(files)
}

#[utoipa::path(
    get,
    path = "/api/packages/{feed}/versions",
    tag = "packages",
    summary = "The files of the versions a query names",
    params(
        ("feed" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm"),
        PackageQuery
    ),
    responses(
        (status = 200, description = "One PackageVersionInfo per file.", body = Vec<PackageVersionInfo>),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn versions(
    State(ctx): State<ApiContext>,
    Viewer(viewer): Viewer,
    PathName(feed): PathName,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<PackageVersionInfo>>> {
    let feed = feed_to_view(&ctx, viewer.as_ref(), &feed).await?;
    let params = Fields::from_query(query.as_deref())?;
    let selection = selection(&params, params.read()?, &feed)?;
    let files = matching_files(&ctx, &feed, &selection).await?;
    // Each package's versions in its ecosystem's order, oldest first.
    let files = sort_in_order(files, &|a: &PackageFile, b: &PackageFile| {
        (&a.name_key, &a.group_key)
            .cmp(&(&b.name_key, &b.group_key))
            .then_with(|| compare_versions(feed.feed_type, &a.version, &b.version))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.qualifier.cmp(&b.qualifier))
    });
    Ok(Json(
        files.into_iter().map(|f| info(feed.feed_type, f)).collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/api/packages/{feed}/latest",
    tag = "packages",
    summary = "The files of each package's highest version",
    params(
        ("feed" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm"),
        LatestQuery
    ),
    responses(
        (status = 200, description = "One PackageVersionInfo per file.", body = Vec<PackageVersionInfo>),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn latest(
    State(ctx): State<ApiContext>,
    Viewer(viewer): Viewer,
    PathName(feed): PathName,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<PackageVersionInfo>>> {
    let feed = feed_to_view(&ctx, viewer.as_ref(), &feed).await?;
    let params = Fields::from_query(query.as_deref())?;
    let latest_query: LatestQuery = params.read()?;
    let stable_only = latest_query.stable_only.unwrap_or(false);
    let query = PackageQuery {
        name: latest_query.name,
        group: latest_query.group,
        version: None,
        qualifier: latest_query.qualifier,
        purl: latest_query.purl,
    };
    let selection = selection(&params, query, &feed)?;
    if selection.filter.version.is_some() {
        return Err(params.error(
            "purl",
            "must not name a version here: this endpoint finds the latest one",
        ));
    }
    let Ok(keys) = selection_keys(&feed, &selection) else {
        return Ok(Json(Vec::new()));
    };

    // The highest version of each package with every file of that version, kept
    // as the files stream past: the answer is small even when the feed is not.
    let mut latest: HashMap<(String, String), Vec<PackageFile>> = HashMap::new();
    let mut kept = 0i64;
    ctx.store
        .for_each_package_file(
            &feed,
            keys.as_ref(),
            selection.qualifier.as_deref(),
            |file| {
                let feed_type = feed.feed_type;
                if !may_be_latest(feed_type, &file.version)
                    || (stable_only && is_prerelease(feed_type, &file.version))
                {
                    return Ok(());
                }
                let files = latest
                    .entry((file.group_key.clone(), file.name_key.clone()))
                    .or_default();
                let order = files.first().map_or(std::cmp::Ordering::Greater, |best| {
                    compare_versions(feed_type, &file.version, &best.version)
                        .then_with(|| file.version.cmp(&best.version))
                });
                match order {
                    std::cmp::Ordering::Less => return Ok(()),
                    std::cmp::Ordering::Greater => {
                        kept -= files.len() as i64;
                        files.clear();
                    }
                    std::cmp::Ordering::Equal => {}
                }
                files.push(file);
                kept += 1;
                if kept > MAX_FILES_LISTED {
                    return Err(too_many_files(&feed, "name or group"));
                }
                Ok(())
            },
        )
        .await?;
    let mut chosen: Vec<PackageFile> = latest.into_values().flatten().collect();
    chosen.sort_by(|a, b| {
        (&a.name_key, &a.group_key, &a.qualifier).cmp(&(&b.name_key, &b.group_key, &b.qualifier))
    });
    let chosen = chosen
        .into_iter()
        .map(|f| info(feed.feed_type, f))
        .collect();
    Ok(Json(chosen))
}

#[utoipa::path(
    method(post, delete),
    path = "/api/packages/{feed}/delete",
    tag = "packages",
    summary = "Delete a package version (or one of its files)",
    params(
        ("feed" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm"),
        PackageQuery
    ),
    responses(
        (status = 200, description = "Deleted."),
        (status = 404, description = "No such feed, or the version is not in it.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn remove(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    PathName(feed): PathName,
    RawQuery(query): RawQuery,
) -> Result<()> {
    let feed = feed_for(&ctx, &principal, &feed, Permission::Delete).await?;
    let params = Fields::from_query(query.as_deref())?;
    let Selection { filter, qualifier } = selection(&params, params.read()?, &feed)?;
    let name = filter
        .name
        .ok_or_else(|| params.error("name", "is required"))?;
    let version = filter
        .version
        .ok_or_else(|| params.error("version", "is required"))?;
    let package = PackageId::new(feed.feed_type, filter.group.as_ref(), &name, &version)
        .map_err(|rule| params.error("group", rule))?;
    let deleted = crate::content::delete(
        &ctx.store,
        &ctx.content,
        &feed,
        &package,
        qualifier.as_deref(),
        &principal.name,
    )
    .await?;
    if deleted == 0 {
        let file = qualifier
            .map(|q| format!(" with qualifier \"{q}\""))
            .unwrap_or_default();
        return Err(Error::NotFound(format!(
            "Package {package}{file} was not found in feed \"{}\".",
            feed.name
        )));
    }
    Ok(())
}
