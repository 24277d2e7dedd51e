//! The webhooks API (`/api/webhooks/…`, contract section 8). Every endpoint needs
//! a system key with `manage`. The secret appears in one answer only: the one
//! that created the webhook.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Keyed};
use super::input::{Fields, NoParams, RawBody, TextList, Whole, WholeRule};
use super::openapi::{BodyRefusals, Refusals};
use super::ApiContext;
use crate::domain::{FeedName, Permission, WebhookSecret, WebhookUrl};
use crate::error::{Error, Result};
use crate::store::{DeliveryAttempt, Webhook};
use crate::webhooks::{self, targets, NewWebhook, Refused};

const DEFAULT_ATTEMPTS: i64 = 100;
const MAX_ATTEMPTS: i64 = 1000;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
}

/// A new webhook. Unknown fields are refused: a misspelt filter must not
/// become a webhook for every feed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebhookRequest {
    /// An `https://` (or `http://`) URL, called with each promotion.
    #[schema(value_type = String, format = Uri)]
    url: WebhookUrl,
    /// Only promotions into these feeds (at most 100); every feed when absent.
    #[schema(value_type = Option<Vec<FeedName>>, max_items = 100)]
    feeds: Option<TextList>,
    /// The HMAC-SHA256 signing secret, 16 to 200 characters; one is made when absent.
    #[schema(value_type = Option<String>, min_length = 16, max_length = 200)]
    secret: Option<WebhookSecret>,
}

/// The webhook an endpoint acts on.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WebhookId {
    /// The webhook's id.
    #[param(value_type = i64, minimum = 1)]
    id: Whole<PositiveId>,
}

/// A webhook's delivery attempts to show.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// The webhook's id.
    #[param(value_type = i64, minimum = 1)]
    id: Whole<PositiveId>,
    /// Attempts to show (100 by default).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Whole<AttemptsShown>>,
}

struct PositiveId;

impl WholeRule for PositiveId {
    const MIN: i64 = 1;
    const MAX: i64 = i64::MAX;
}

struct AttemptsShown;

impl WholeRule for AttemptsShown {
    const MIN: i64 = 1;
    const MAX: i64 = MAX_ATTEMPTS;
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookView {
    id: i64,
    url: String,
    feeds: Vec<String>,
    created: String,
    /// False while paused (`promoter webhooks pause`).
    active: bool,
    /// Only in the answer that created the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(webhook: Webhook) -> Self {
        WebhookView {
            id: webhook.id,
            url: webhook.url,
            feeds: webhook.feeds,
            created: webhook
                .created_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            active: webhook.active,
            secret: None,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/webhooks/create",
    tag = "webhooks",
    summary = "Add a webhook",
    request_body(
        content = WebhookRequest,
        content_type = "application/json",
        description = "JSON, as pgutil sends it (a form works too, its lists comma-separated)."
    ),
    responses(
        (status = 200, description = "The new webhook, with its secret: the only time it is shown.", body = WebhookView),
        Refusals,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn create(State(ctx): State<ApiContext>, body: Keyed<RawBody>) -> Result<Json<WebhookView>> {
    let (principal, fields) = body.manager(&ctx).await?;
    let request: WebhookRequest = fields.read()?;
    let url = request.url;
    let feeds = request
        .feeds
        .map(|feeds| feeds.0)
        .unwrap_or_default()
        .iter()
        .map(|feed| {
            FeedName::parse(feed)
                .map_err(|rule| fields.error("feeds", format!("has \"{feed}\", which {rule}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let new = NewWebhook {
        url: &url,
        feeds: &feeds,
        secret: request.secret,
        allow_private: ctx.allow_private_webhooks,
        allowed_by: targets::AllowedBy::Server,
    };
    let (webhook, secret) =
        webhooks::add(&ctx.store, new)
            .await
            .map_err(|refused| match refused {
                Refused::Feeds(rule) => fields.error("feeds", rule),
                Refused::Url(rule) => fields.error("url", rule),
                Refused::Store(error) => error,
            })?;
    tracing::info!(webhook = webhook.id, user = %principal.name, "webhook created");
    let mut view = WebhookView::from(webhook);
    view.secret = Some(secret.expose().to_owned());
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/api/webhooks/list",
    tag = "webhooks",
    summary = "Every webhook (never its secret)",
    responses((status = 200, description = "The webhooks.", body = Vec<WebhookView>), Refusals),
    security(("apiKey" = []), ("basic" = []))
)]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<WebhookView>>> {
    principal.require(Permission::Manage, None)?;
    Fields::from_query(query.as_deref())?.read::<NoParams>()?;
    let webhooks = ctx.store.list_webhooks().await?;
    Ok(Json(webhooks.into_iter().map(WebhookView::from).collect()))
}

fn no_such_webhook(id: i64) -> Error {
    Error::NotFound(format!("Webhook {id} does not exist."))
}

#[utoipa::path(
    post,
    path = "/api/webhooks/delete",
    tag = "webhooks",
    summary = "Remove a webhook and its pending deliveries",
    params(WebhookId),
    responses(
        (status = 200, description = "Removed."),
        (status = 404, description = "No webhook has that id.", body = String, content_type = "text/plain"),
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
    let id = Fields::from_query(query.as_deref())?
        .read::<WebhookId>()?
        .id
        .0;
    if !ctx.store.delete_webhook(id).await? {
        return Err(no_such_webhook(id));
    }
    tracing::info!(webhook = id, user = %principal.name, "webhook deleted");
    Ok(())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttemptView {
    delivery: String,
    promotion: i64,
    attempt: i32,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    duration_ms: i64,
    /// The delivery's state now: pending (to be retried), delivered or failed
    /// (given up).
    state: String,
}

impl From<DeliveryAttempt> for AttemptView {
    fn from(attempt: DeliveryAttempt) -> Self {
        AttemptView {
            delivery: attempt.delivery_id,
            promotion: attempt.promotion_id,
            attempt: attempt.attempt,
            time: attempt
                .attempted_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            status_code: attempt.status_code,
            error: attempt.error,
            duration_ms: attempt.duration_ms,
            state: attempt.state,
        }
    }
}

/// A webhook's delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/api/webhooks/deliveries",
    tag = "webhooks",
    summary = "A webhook's delivery attempts, newest first",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The attempts.", body = Vec<AttemptView>),
        (status = 404, description = "No webhook has that id.", body = String, content_type = "text/plain"),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn deliveries(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<AttemptView>>> {
    principal.require(Permission::Manage, None)?;
    let query: DeliveriesQuery = Fields::from_query(query.as_deref())?.read()?;
    let id = query.id.0;
    let limit = query.limit.map_or(DEFAULT_ATTEMPTS, |limit| limit.0);
    let attempts = ctx
        .store
        .webhook_attempts(id, limit)
        .await?
        .ok_or_else(|| no_such_webhook(id))?;
    Ok(Json(attempts.into_iter().map(AttemptView::from).collect()))
}
