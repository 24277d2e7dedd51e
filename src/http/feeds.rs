//! The feeds management API (`/api/management/feeds/…`), as pgutil's `feeds`
//! commands use it. Every endpoint needs a system key with `manage`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Keyed};
use super::input::{OrBlank, PathName, RawBody};
use super::openapi::{BodyRefusals, Refusals};
use super::ApiContext;
use crate::domain::{
    Connector, Connectors, Description, FeedName, FeedType, Permission, MAX_CONNECTORS,
};
use crate::error::{Error, Result};
use crate::store::{Feed, FeedChange, FeedSettings};
use crate::webhooks::targets::AllowedBy;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(show))
        .routes(routes!(update))
        .routes(routes!(remove))
}

/// A new feed (JSON or form; `type` is taken for `feedType`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewFeed {
    name: FeedName,
    #[serde(alias = "type")]
    feed_type: FeedType,
    /// Up to 1,000 characters.
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<OrBlank<Description>>,
    /// Enabled (the default) or disabled.
    active: Option<bool>,
    /// Whether anyone may view it without a key (off by default).
    public: Option<bool>,
    /// The only feed this one promotes to; blank for any.
    #[schema(value_type = Option<String>)]
    promote_to_feed: Option<OrBlank<FeedName>>,
    /// Upstream registries the feed offers packages from (npm, pypi and
    /// NuGet feeds), asked in this order.
    connectors: Option<Vec<ConnectorInput>>,
}

/// A connector as it is set: its URL and, for a private upstream, a user
/// name and password or a token (kept to be sent, never shown).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConnectorInput {
    #[schema(example = "https://registry.npmjs.org/")]
    url: String,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// A connector as the API shows it: never its credentials.
#[derive(Serialize, ToSchema)]
struct ConnectorView {
    url: String,
    /// How it signs in: `none`, `basic` or `token`.
    credentials: &'static str,
}

/// The fields of a feed to change (`name` and `feedType`, if given, must be the
/// feed's own); a blank `description` or `promoteToFeed` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FeedUpdate {
    name: Option<FeedName>,
    #[serde(alias = "type")]
    feed_type: Option<FeedType>,
    /// Up to 1,000 characters.
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<OrBlank<Description>>,
    /// Enabled or disabled; a new feed is enabled by default.
    active: Option<bool>,
    /// Whether anyone may view it without a key.
    public: Option<bool>,
    /// The only feed this one promotes to; blank for any.
    #[schema(value_type = Option<String>)]
    promote_to_feed: Option<OrBlank<FeedName>>,
    /// The feed's connectors, replacing those it has; `[]` removes them all.
    connectors: Option<Vec<ConnectorInput>>,
}

/// A feed in ProGet's shape. pgutil lists a feed only when `active` is true.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FeedView {
    name: String,
    feed_type: FeedType,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    active: bool,
    /// Whether anyone may view it without a key.
    public: bool,
    /// ProGet's "Promote To Feed": the only feed this one promotes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    promote_to_feed: Option<String>,
    /// Its upstream registries (contract section 16), without credentials;
    /// left out when it has none, as ProGet's own shape has no such field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connectors: Vec<ConnectorView>,
}

impl From<Feed> for FeedView {
    fn from(feed: Feed) -> Self {
        FeedView {
            name: feed.name,
            feed_type: feed.feed_type,
            description: feed.description,
            active: feed.active,
            public: feed.public,
            promote_to_feed: feed.promote_to,
            connectors: feed
                .connectors
                .iter()
                .map(|connector| ConnectorView {
                    url: connector.url.clone(),
                    credentials: connector.credentials(),
                })
                .collect(),
        }
    }
}

/// The connectors a request sets on a feed of `feed_type`, each checked as
/// the server allows (a public address unless `--connector-allow-private`);
/// the error names the field.
async fn connectors_of(
    ctx: &ApiContext,
    feed_type: FeedType,
    given: Vec<ConnectorInput>,
) -> Result<Connectors> {
    if given.len() > MAX_CONNECTORS {
        return Err(Error::invalid(format!(
            "Field \"connectors\" may list at most {MAX_CONNECTORS} connectors, not {}.",
            given.len()
        )));
    }
    let allow_private = ctx.upstreams.settings().allow_private;
    let mut connectors = Vec::with_capacity(given.len());
    for (i, input) in given.into_iter().enumerate() {
        let field = format!("Field \"connectors[{i}]\"");
        let url_field = format!("Field \"connectors[{i}].url\"");
        let connector = Connector::new(
            &input.url,
            input.username,
            input.password,
            input.token,
            &field,
            &url_field,
        )
        .map_err(Error::invalid)?;
        crate::connectors::check(
            feed_type,
            &connector,
            allow_private,
            AllowedBy::ConnectorServer,
            &url_field,
        )
        .await
        .map_err(Error::invalid)?;
        connectors.push(connector);
    }
    Ok(Connectors(connectors.into()))
}

/// The feed named in a path, or 404.
async fn path_feed(ctx: &ApiContext, raw: &str) -> Result<Feed> {
    let name = FeedName::parse(raw)
        .map_err(|rule| Error::invalid(format!("The feed name in the path {rule}.")))?;
    ctx.store
        .feed(&name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("Feed \"{name}\" does not exist.")))
}

#[utoipa::path(
    get,
    path = "/api/management/feeds/list",
    tag = "feeds",
    summary = "Every feed",
    responses((status = 200, description = "The feeds.", body = Vec<FeedView>), Refusals),
    security(("apiKey" = []), ("basic" = []))
)]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<FeedView>>> {
    principal.require(Permission::Manage, None)?;
    let feeds = ctx.store.list_feeds().await?;
    Ok(Json(feeds.into_iter().map(FeedView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/api/management/feeds/get/{name}",
    tag = "feeds",
    summary = "One feed",
    params(("name" = FeedName, Path, description = "The feed's name.", example = "approved-npm")),
    responses(
        (status = 200, description = "The feed.", body = FeedView),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn show(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    PathName(name): PathName,
) -> Result<Json<FeedView>> {
    principal.require(Permission::Manage, None)?;
    Ok(Json(path_feed(&ctx, &name).await?.into()))
}

#[utoipa::path(
    post,
    path = "/api/management/feeds/create",
    tag = "feeds",
    summary = "Create a feed",
    request_body(content(
        (NewFeed = "application/json", example = json!({"name": "approved-nuget", "feedType": "nuget"})),
        (NewFeed = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The new feed.", body = FeedView), Refusals, BodyRefusals),
    security(("apiKey" = []), ("basic" = []))
)]
async fn create(State(ctx): State<ApiContext>, body: Keyed<RawBody>) -> Result<Json<FeedView>> {
    let (principal, fields) = body.manager(&ctx).await?;
    let NewFeed {
        name,
        feed_type,
        description,
        active,
        public,
        promote_to_feed,
        connectors,
    } = fields.read()?;
    let description = description.and_then(|description| description.0);
    let promote_to = promote_to_feed.and_then(|feed| feed.0);
    let connectors = connectors_of(&ctx, feed_type, connectors.unwrap_or_default()).await?;

    let settings = FeedSettings {
        promote_to: promote_to.as_ref(),
        description: description.as_ref(),
        active: active.unwrap_or(true),
        public: public.unwrap_or(false),
        connectors,
    };
    let feed = ctx.store.create_feed(&name, feed_type, settings).await?;
    tracing::info!(feed = %feed.name, user = %principal.name, "feed created");
    Ok(Json(feed.into()))
}

#[utoipa::path(
    post,
    path = "/api/management/feeds/update/{name}",
    tag = "feeds",
    summary = "Change a feed's description, state, visibility or promotion target",
    params(("name" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm")),
    request_body(content(
        (FeedUpdate = "application/json", example = json!({"description": "Awaiting review", "promoteToFeed": "approved-npm"})),
        (FeedUpdate = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The feed as it now is.", body = FeedView),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn update(
    State(ctx): State<ApiContext>,
    PathName(name): PathName,
    body: Keyed<RawBody>,
) -> Result<Json<FeedView>> {
    let (principal, fields) = body.manager(&ctx).await?;
    let feed = path_feed(&ctx, &name).await?;
    let update: FeedUpdate = fields.read()?;
    if let Some(new_name) = update.name {
        if new_name.key() != feed.name_key {
            return Err(fields.error(
                "name",
                format!(
                    "must be \"{}\" or left out: feeds cannot be renamed",
                    feed.name
                ),
            ));
        }
    }
    if let Some(feed_type) = update.feed_type {
        if feed_type != feed.feed_type {
            return Err(fields.error(
                "feedType",
                format!(
                    "must be {} or left out: a feed's type cannot change",
                    feed.feed_type
                ),
            ));
        }
    }
    let connectors = match update.connectors {
        Some(given) => Some(connectors_of(&ctx, feed.feed_type, given).await?),
        None => None,
    };
    let change = FeedChange {
        description: update.description.map(|description| description.0),
        active: update.active,
        public: update.public,
        promote_to: update.promote_to_feed.map(|feed| feed.0),
        connectors,
    };
    let feed = ctx.store.update_feed(&feed, &change).await?;
    tracing::info!(feed = %feed.name, user = %principal.name, "feed updated");
    Ok(Json(feed.into()))
}

#[utoipa::path(
    method(delete, post),
    path = "/api/management/feeds/delete/{name}",
    tag = "feeds",
    summary = "Delete a feed with its package records (its history stays)",
    params(("name" = FeedName, Path, description = "The feed's name.")),
    responses(
        (status = 200, description = "Deleted."),
        (status = 404, description = "No feed has that name.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn remove(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    PathName(name): PathName,
) -> Result<()> {
    principal.require(Permission::Manage, None)?;
    let feed = path_feed(&ctx, &name).await?;
    if !ctx.store.delete_feed(&feed).await? {
        return Err(Error::NotFound(format!(
            "Feed \"{}\" does not exist.",
            feed.name
        )));
    }
    tracing::info!(feed = %feed.name, user = %principal.name, "feed deleted");
    Ok(())
}
