//! The API-keys API (`/api/api-keys/…`), as pgutil's `apikeys` commands use it.
//! Every endpoint needs a system key with `manage`. A key's text appears in the
//! response that creates it and nowhere else.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Keyed};
use super::input::{Fields, OrBlank, RawBody, TextList, Whole, WholeRule};
use super::openapi::{BodyRefusals, Refusals};
use super::ApiContext;
use crate::auth::{parse_expiry, ApiKey};
use crate::domain::{Description, FeedName, KeyName, Permission, Permissions};
use crate::error::{Error, Result};
use crate::store::{KeyScope, NewKey, StoredKey};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(remove))
}

/// ProGet's ApiKeyInfo, as pgutil sends it (JSON; a form works too, its lists
/// comma-separated). `name` is taken for `displayName`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiKeyRequest {
    /// `System` or `Feed`.
    #[serde(rename = "type")]
    kind: String,
    /// A System key's APIs: `full-control` (the default), `feeds`, `sbom`, `sbom-upload`.
    #[schema(value_type = Option<Vec<String>>)]
    system_apis: Option<TextList>,
    /// A Feed key's feed (or give `feedGroup`).
    feed: Option<FeedName>,
    /// A Feed key's feed group (or give `feed`).
    feed_group: Option<FeedName>,
    /// A Feed key's permissions: `view`, `add`, `promote`, `delete` (all by default).
    #[schema(value_type = Option<Vec<String>>)]
    package_permissions: Option<TextList>,
    /// When the key stops working (RFC 3339, in the future).
    expiration: Option<String>,
    /// `None` (the default), `Request`, `Response` or `Both`.
    logging: Option<String>,
    /// The new key's text, when the caller chooses it; otherwise one is made.
    /// (In a form without an `X-ApiKey` header, `key` is the caller's own key,
    /// as in every ProGet form.)
    #[schema(value_type = Option<String>)]
    key: Option<ApiKey>,
    #[serde(alias = "name")]
    #[schema(value_type = Option<String>, max_length = 100)]
    display_name: Option<OrBlank<KeyName>>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<OrBlank<Description>>,
}

/// A page of the key list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct KeysPage {
    /// Keys per page (10,000 by default).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<Whole<KeysPerPage>>,
    /// Only keys with a larger id, as in the Link header.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<Whole<KeyAfter>>,
}

struct KeysPerPage;

impl WholeRule for KeysPerPage {
    const MIN: i64 = 1;
    const MAX: i64 = MAX_KEYS_PER_PAGE;
}

struct KeyAfter;

impl WholeRule for KeyAfter {
    const MIN: i64 = 0;
    const MAX: i64 = i64::MAX;

    fn expected() -> String {
        "a key id, as in the Link header of the previous page".to_owned()
    }
}

/// The key to revoke.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KeyToRevoke {
    /// The key's id.
    #[param(value_type = i64)]
    id: Whole<KeyId>,
}

struct KeyId;

impl WholeRule for KeyId {
    const MIN: i64 = i64::MIN;
    const MAX: i64 = i64::MAX;

    fn expected() -> String {
        "a key id, a whole number".to_owned()
    }
}

/// ProGet's ApiKeyInfo, as pgutil reads it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiKeyInfo {
    id: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_apis: Option<Vec<&'static str>>,
    package_permissions: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    logging: String,
}

impl ApiKeyInfo {
    fn new(stored: StoredKey, key: Option<&ApiKey>) -> Result<Self> {
        let permissions = stored.permissions()?;
        let system = stored.kind == "system";
        let (feed, feed_group) = match (stored.feed_id, stored.feed_group_id) {
            (Some(_), _) => (stored.scope_name, None),
            (None, Some(_)) => (None, stored.scope_name),
            (None, None) => (None, None),
        };
        Ok(ApiKeyInfo {
            id: stored.id,
            kind: if system { "System" } else { "Feed" },
            key: key.map(|k| k.expose().to_owned()),
            display_name: stored.name,
            description: stored.description,
            system_apis: system.then(|| {
                if permissions.contains(Permission::Manage) {
                    vec!["full-control"]
                } else {
                    vec!["feeds"]
                }
            }),
            package_permissions: permissions
                .iter()
                .filter(|p| *p != Permission::Manage)
                .map(Permission::as_str)
                .collect(),
            feed,
            feed_group,
            expiration: stored
                .expires_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            logging: stored.logging,
        })
    }
}

/// The most keys one `list` response holds (and the default); a
/// `Link: rel="next"` header names the next page (`?after=` the last id) when
/// more remain. pgutil reads only the first page, which holds every key of any
/// real deployment.
const MAX_KEYS_PER_PAGE: i64 = 10_000;

#[utoipa::path(
    get,
    path = "/api/api-keys/list",
    tag = "api-keys",
    summary = "The keys that are not revoked (never their text)",
    params(KeysPage),
    responses(
        (status = 200, description = "A page of keys.", body = Vec<ApiKeyInfo>,
            headers(("Link" = String, description = "The next page, when there is one."))),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    principal.require(Permission::Manage, None)?;
    let page: KeysPage = Fields::from_query(query.as_deref())?.read()?;
    let limit = page.limit.map_or(MAX_KEYS_PER_PAGE, |limit| limit.0);
    let after = page.after.map_or(0, |after| after.0);
    // Revoked keys are what ProGet calls deleted: they stay in the database (and
    // in `promoter keys list`) for the audit trail, but not here.
    let mut keys = ctx.store.list_keys(false, after, limit + 1).await?;
    let more = keys.len() as i64 > limit;
    keys.truncate(limit as usize);
    let next = keys.last().filter(|_| more).map(|last| last.id);
    let infos: Vec<ApiKeyInfo> = keys
        .into_iter()
        .map(|key| ApiKeyInfo::new(key, None))
        .collect::<Result<_>>()?;
    let mut response = Json(infos).into_response();
    if let Some(last) = next {
        let link = format!("</api/api-keys/list?limit={limit}&after={last}>; rel=\"next\"");
        let value = HeaderValue::from_str(&link).expect("digits make a valid header");
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/api/api-keys/create",
    tag = "api-keys",
    summary = "Create a key",
    request_body(
        content = ApiKeyRequest,
        content_type = "application/json",
        description = "JSON, as pgutil sends it (a form works too, its lists comma-separated)."
    ),
    responses(
        (status = 200, description = "The new key, with its text: the only time it is shown.", body = ApiKeyInfo),
        Refusals,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn create(State(ctx): State<ApiContext>, body: Keyed<RawBody>) -> Result<Json<ApiKeyInfo>> {
    let (principal, fields) = body.manager(&ctx).await?;
    let request: ApiKeyRequest = fields.read()?;
    let (scope, permissions) = scope_and_permissions(&fields, &request)?;
    let expires_at = request
        .expiration
        .map(|raw| parse_expiry(&raw).map_err(|rule| fields.error("expiration", rule)))
        .transpose()?;
    let logging = match request.logging {
        None => "None".to_owned(),
        Some(raw) => ["None", "Request", "Response", "Both"]
            .into_iter()
            .find(|level| level.eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| fields.error("logging", "must be None, Request, Response or Both"))?
            .to_owned(),
    };
    let chosen = request.key;
    let new = NewKey {
        name: request.display_name.and_then(|name| name.0),
        scope,
        permissions,
        expires_at,
        description: request.description.and_then(|description| description.0),
        logging,
    };
    let (key, stored) = crate::auth::create_key(&ctx.store, &new, chosen).await?;
    tracing::info!(key_id = stored.id, created_by = %principal.name, "api key created");
    Ok(Json(ApiKeyInfo::new(stored, Some(&key))?))
}

/// The scope and permissions an ApiKeyInfo asks for.
fn scope_and_permissions(
    fields: &Fields,
    request: &ApiKeyRequest,
) -> Result<(KeyScope, Permissions)> {
    let kind = &request.kind;
    let (feed, group) = (request.feed.clone(), request.feed_group.clone());
    match kind.trim().to_ascii_lowercase().as_str() {
        "system" => {
            if feed.is_some() || group.is_some() {
                return Err(Error::invalid(
                    "Fields \"feed\" and \"feedGroup\" are only for Feed keys; a System key covers every feed.",
                ));
            }
            // pgutil sends every API when --apis is not given.
            let apis = match &request.system_apis {
                Some(apis) => apis.0.clone(),
                None => vec!["full-control".to_owned()],
            };
            let mut permissions = Permissions::default();
            for api in &apis {
                match api.to_ascii_lowercase().as_str() {
                    "full-control" => permissions = Permissions::ALL,
                    "feeds" if !permissions.contains(Permission::Manage) => {
                        permissions = Permissions::FEED_ALL
                    }
                    // This service has no SBOM APIs; the names are accepted so
                    // that pgutil's default list works.
                    "feeds" | "sbom" | "sbom-upload" => {}
                    _ => {
                        return Err(fields.error(
                            "systemApis",
                            format!(
                            "has {api:?}, which is none of full-control, feeds, sbom, sbom-upload"
                        ),
                        ))
                    }
                }
            }
            if permissions.is_empty() {
                return Err(fields.error("systemApis", "must include full-control or feeds"));
            }
            Ok((KeyScope::System, permissions))
        }
        "feed" => {
            let scope =
                match (feed, group) {
                    (Some(feed), None) => KeyScope::Feed(feed),
                    (None, Some(group)) => KeyScope::Group(group),
                    _ => return Err(Error::invalid(
                        "Fields \"feed\" and \"feedGroup\": a Feed key needs exactly one of them.",
                    )),
                };
            let permissions = match &request.package_permissions {
                None => Permissions::FEED_ALL,
                Some(names) => {
                    let parsed = names
                        .0
                        .iter()
                        .map(|name| {
                            name.parse::<Permission>()
                                .ok()
                                .filter(|p| *p != Permission::Manage)
                                .ok_or_else(|| {
                                    fields.error(
                                        "packagePermissions",
                                        format!("has {name:?}, which is none of view, add, promote, delete"),
                                    )
                                })
                        })
                        .collect::<Result<Permissions>>()?;
                    if parsed.is_empty() {
                        return Err(
                            fields.error("packagePermissions", "must name at least one permission")
                        );
                    }
                    parsed
                }
            };
            Ok((scope, permissions))
        }
        "personal" | "other" => Err(fields.error(
            "type",
            format!(
                "is {kind:?}, but only System and Feed keys exist here: there are no user accounts"
            ),
        )),
        _ => Err(fields.error("type", "must be System or Feed")),
    }
}

#[utoipa::path(
    method(post, delete),
    path = "/api/api-keys/delete",
    tag = "api-keys",
    summary = "Revoke a key",
    params(KeyToRevoke),
    responses(
        (status = 200, description = "Revoked."),
        (status = 404, description = "No key that is not revoked has that id.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn remove(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<()> {
    principal.require(Permission::Manage, None)?;
    let revoke: KeyToRevoke = Fields::from_query(query.as_deref())?.read()?;
    let id = revoke.id.0;
    if !ctx.store.revoke_key(id).await? {
        return Err(Error::NotFound(format!(
            "There is no API key with id {id}."
        )));
    }
    tracing::info!(key_id = id, deleted_by = %principal.name, "api key revoked");
    Ok(())
}
