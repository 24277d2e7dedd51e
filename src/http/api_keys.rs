//! The API-keys API (`/api/api-keys/…`), as pgutil's `apikeys` commands use it.
//! Every endpoint needs a system key with `manage`. A key's text appears in the
//! response that creates it and nowhere else.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Keyed};
use super::input::{Fields, RawBody};
use super::openapi::{BodyRefusals, Refusals};
use super::ApiContext;
use crate::auth::{parse_expiry, ApiKey};
use crate::domain::{Permission, Permissions};
use crate::error::{Error, Result};
use crate::store::{KeyScope, NewKey, StoredKey};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(remove))
}

/// Documentation only: the handler reads the body field by field
/// (`input::Fields`), which also takes `name` for `displayName`.
#[allow(dead_code)]
mod bodies {
    use utoipa::ToSchema;

    /// ProGet's ApiKeyInfo, as pgutil sends it.
    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase")]
    pub struct ApiKeyRequest {
        /// `System` or `Feed`.
        #[schema(rename = "type")]
        pub kind: String,
        /// A System key's APIs: `full-control` (the default), `feeds`, `sbom`, `sbom-upload`.
        pub system_apis: Option<Vec<String>>,
        /// A Feed key's feed (or give `feedGroup`).
        pub feed: Option<crate::domain::FeedName>,
        /// A Feed key's feed group (or give `feed`).
        pub feed_group: Option<crate::domain::FeedName>,
        /// A Feed key's permissions: `view`, `add`, `promote`, `delete` (all by default).
        pub package_permissions: Option<Vec<String>>,
        /// When the key stops working (RFC 3339, in the future).
        pub expiration: Option<String>,
        /// `None` (the default), `Request`, `Response` or `Both`.
        pub logging: Option<String>,
        /// The new key's text, when the caller chooses it; otherwise one is
        /// made. (In a form without an `X-ApiKey` header, `key` is the
        /// caller's own key, as in every ProGet form.)
        pub key: Option<String>,
        pub display_name: Option<String>,
        pub description: Option<String>,
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
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "Keys per page (10,000 by default)."),
        ("after" = Option<i64>, Query, minimum = 0, description = "Only keys with a larger id, as in the Link header.")
    ),
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
    let params = Fields::from_query(query.as_deref())?;
    params.only(&["after", "limit"])?;
    let limit = params
        .number_in("limit", 1..=MAX_KEYS_PER_PAGE)?
        .unwrap_or(MAX_KEYS_PER_PAGE);
    let after = match params.text("after", &[])? {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| {
                params.error(
                    "after",
                    "must be a key id, as in the Link header of the previous page",
                )
            })?,
    };
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
        content = bodies::ApiKeyRequest,
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
    let (scope, permissions) = scope_and_permissions(&fields)?;
    let expires_at = fields
        .text("expiration", &[])?
        .map(|raw| parse_expiry(&raw).map_err(|rule| fields.error("expiration", rule)))
        .transpose()?;
    let logging = match fields.text("logging", &[])? {
        None => "None".to_owned(),
        Some(raw) => ["None", "Request", "Response", "Both"]
            .into_iter()
            .find(|level| level.eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| fields.error("logging", "must be None, Request, Response or Both"))?
            .to_owned(),
    };
    let chosen = fields
        .text("key", &[])?
        .map(|raw| ApiKey::chosen(&raw).map_err(|rule| fields.error("key", rule)))
        .transpose()?;
    let new = NewKey {
        name: fields
            .free_text("displayName", &["name"], 100)?
            .map(|name| name.trim().to_owned()),
        scope,
        permissions,
        expires_at,
        description: fields.free_text("description", &[], 1000)?,
        logging,
    };
    let (key, stored) = crate::auth::create_key(&ctx.store, &new, chosen).await?;
    tracing::info!(key_id = stored.id, created_by = %principal.name, "api key created");
    Ok(Json(ApiKeyInfo::new(stored, Some(&key))?))
}

/// The scope and permissions an ApiKeyInfo asks for.
fn scope_and_permissions(fields: &Fields) -> Result<(KeyScope, Permissions)> {
    let kind = fields.required("type", &[])?;
    let feed = fields.feed("feed")?;
    let group = fields.feed("feedGroup")?;
    match kind.trim().to_ascii_lowercase().as_str() {
        "system" => {
            if feed.is_some() || group.is_some() {
                return Err(Error::invalid(
                    "Fields \"feed\" and \"feedGroup\" are only for Feed keys; a System key covers every feed.",
                ));
            }
            // pgutil sends every API when --apis is not given.
            let apis = fields
                .list("systemApis")?
                .unwrap_or_else(|| vec!["full-control".to_owned()]);
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
            let permissions = match fields.list("packagePermissions")? {
                None => Permissions::FEED_ALL,
                Some(names) => {
                    let parsed = names
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
    params(("id" = i64, Query, description = "The key's id.")),
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
    let params = Fields::from_query(query.as_deref())?;
    let id = params.required("id", &[])?;
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| params.error("id", "must be a key id, a whole number"))?;
    if !ctx.store.revoke_key(id).await? {
        return Err(Error::NotFound(format!(
            "There is no API key with id {id}."
        )));
    }
    tracing::info!(key_id = id, deleted_by = %principal.name, "api key revoked");
    Ok(())
}
