//! The feeds management API (`/api/management/feeds/…`), as pgutil's `feeds`
//! commands use it. Every endpoint needs a system key with `manage`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::auth::{self, Authenticated};
use super::input::{Fields, PathName, RawBody};
use super::ApiContext;
use crate::domain::{FeedName, FeedType, Permission};
use crate::error::{Error, Result};
use crate::store::{Feed, FeedChange};

const MAX_DESCRIPTION_CHARS: usize = 1000;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/management/feeds/list", get(list))
        .route("/api/management/feeds/create", post(create))
        .route("/api/management/feeds/get/{name}", get(show))
        .route("/api/management/feeds/update/{name}", post(update))
        .route(
            "/api/management/feeds/delete/{name}",
            delete(remove).post(remove),
        )
}

/// A feed in ProGet's shape. pgutil lists a feed only when `active` is true.
#[derive(Serialize)]
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

async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<FeedView>>> {
    principal.require(Permission::Manage, None)?;
    let feeds = ctx.store.list_feeds().await?;
    Ok(Json(feeds.into_iter().map(FeedView::from).collect()))
}

async fn show(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    PathName(name): PathName,
) -> Result<Json<FeedView>> {
    principal.require(Permission::Manage, None)?;
    Ok(Json(path_feed(&ctx, &name).await?.into()))
}

async fn create(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: RawBody,
) -> Result<Json<FeedView>> {
    let (principal, fields) =
        auth::manager_with_body(&ctx, &headers, query.as_deref(), &body).await?;
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

async fn update(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathName(name): PathName,
    body: RawBody,
) -> Result<Json<FeedView>> {
    let (principal, fields) =
        auth::manager_with_body(&ctx, &headers, query.as_deref(), &body).await?;
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
