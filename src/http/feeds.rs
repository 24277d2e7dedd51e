//! The feeds management API (`/api/management/feeds/…`), as pgutil's `feeds`
//! commands use it. Every endpoint needs a system key with `manage`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Keyed};
use super::input::{Fields, PathName, RawBody};
use super::openapi::{BodyRefusals, Refusals};
use super::ApiContext;
use crate::domain::{FeedName, FeedType, Permission};
use crate::error::{Error, Result};
use crate::store::{Feed, FeedChange};

const MAX_DESCRIPTION_CHARS: usize = 1000;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(show))
        .routes(routes!(update))
        .routes(routes!(remove))
}

/// Documentation only: the handlers read bodies field by field
/// (`input::Fields`), which also takes `type` for `feedType` and a key in `key`.
#[allow(dead_code)]
mod bodies {
    use utoipa::ToSchema;

    use crate::domain::{FeedName, FeedType};

    /// A new feed.
    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase")]
    pub struct NewFeed {
        pub name: FeedName,
        pub feed_type: FeedType,
        /// Up to 1,000 characters.
        pub description: Option<String>,
        /// Enabled (the default) or disabled.
        pub active: Option<bool>,
        /// The only feed this one promotes to; blank for any.
        pub promote_to_feed: Option<String>,
    }

    /// The fields of a feed to change (`name` and `feedType`, if given, must
    /// be the feed's own).
    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase")]
    pub struct FeedChange {
        pub name: Option<FeedName>,
        pub feed_type: Option<FeedType>,
        /// Up to 1,000 characters.
        pub description: Option<String>,
        /// Enabled or disabled; a new feed is enabled by default.
        pub active: Option<bool>,
        /// The only feed this one promotes to; blank for any.
        pub promote_to_feed: Option<String>,
    }
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
    /// ProGet's "Promote To Feed": the only feed this one promotes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    promote_to_feed: Option<String>,
}

impl From<Feed> for FeedView {
    fn from(feed: Feed) -> Self {
        FeedView {
            name: feed.name,
            feed_type: feed.feed_type,
            description: feed.description,
            active: feed.active,
            promote_to_feed: feed.promote_to,
        }
    }
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

/// An optional feed reference in a body: blank clears it.
fn feed_reference(fields: &Fields, name: &'static str) -> Result<Option<Option<FeedName>>> {
    match fields.text(name, &[])? {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(Some(None)),
        Some(_) => Ok(Some(fields.feed(name)?)),
    }
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
        (bodies::NewFeed = "application/json", example = json!({"name": "approved-nuget", "feedType": "nuget"})),
        (bodies::NewFeed = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The new feed.", body = FeedView), Refusals, BodyRefusals),
    security(("apiKey" = []), ("basic" = []))
)]
async fn create(State(ctx): State<ApiContext>, body: Keyed<RawBody>) -> Result<Json<FeedView>> {
    let (principal, fields) = body.manager(&ctx).await?;
    let name = fields
        .feed("name")?
        .ok_or_else(|| fields.error("name", "is required"))?;
    let feed_type: FeedType = fields
        .required("feedType", &["type"])?
        .parse()
        .map_err(|rule| fields.error("feedType", rule))?;
    let description = fields.free_text("description", &[], MAX_DESCRIPTION_CHARS)?;
    let promote_to = feed_reference(&fields, "promoteToFeed")?.flatten();
    let active = fields.boolean("active")?;

    let feed = ctx
        .store
        .create_feed(
            &name,
            feed_type,
            promote_to.as_ref(),
            description.as_deref(),
            active.unwrap_or(true),
        )
        .await?;
    tracing::info!(feed = %feed.name, user = %principal.name, "feed created");
    Ok(Json(feed.into()))
}

#[utoipa::path(
    post,
    path = "/api/management/feeds/update/{name}",
    tag = "feeds",
    summary = "Change a feed's description, state or promotion target",
    params(("name" = FeedName, Path, description = "The feed's name.", example = "unapproved-npm")),
    request_body(content(
        (bodies::FeedChange = "application/json", example = json!({"description": "Awaiting review", "promoteToFeed": "approved-npm"})),
        (bodies::FeedChange = "application/x-www-form-urlencoded")
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
    if let Some(new_name) = fields.feed("name")? {
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
    if let Some(raw) = fields.text("feedType", &["type"])? {
        let feed_type: FeedType = raw.parse().map_err(|rule| fields.error("feedType", rule))?;
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
    let description = match fields.text("description", &[])? {
        None => None,
        Some(_) => Some(fields.free_text("description", &[], MAX_DESCRIPTION_CHARS)?),
    };
    let change = FeedChange {
        description,
        active: fields.boolean("active")?,
        promote_to: feed_reference(&fields, "promoteToFeed")?,
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
