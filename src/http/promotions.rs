//! `POST /api/promotions/promote`: reading the request and writing the response.
//! The rules of promotion itself are in `crate::promotion`.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Keyed;
use super::error::Problem;
use super::input::{
    BatchBody, BatchId, Fields, FreeText, Objects, OrBlank, RawBody, Whole, WholeRule,
};
use super::openapi::{BodyRefusals, Denials, Refusals};
use super::{native, AnswerDue, ApiContext};
use crate::auth::Principal;
use crate::domain::{FeedName, Identifier, OnConflict, RevertTarget};
use crate::error::{Error, Result};
use crate::promotion::{
    self, ItemRequest, Moved, PromotionRequest, Refusal, RevertRequest, MAX_BATCH,
};
use crate::store::{ItemResult, Outcome};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(promote))
        .routes(routes!(batch))
        .routes(routes!(revert))
}

/// Most characters a promotion's comments may have.
const MAX_COMMENT_CHARS: usize = 4000;

/// `POST /api/promotions/promote`'s body, JSON or form, with ProGet's aliases
/// (`packageName`, `groupName`, `comment`); other fields are ignored, as ProGet
/// ignores them.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PromoteRequest {
    from_feed: FeedName,
    to_feed: FeedName,
    /// The group (npm scope, Maven group …); absent or blank for none.
    #[serde(alias = "groupName")]
    #[schema(value_type = Option<String>)]
    group: Option<OrBlank<Identifier>>,
    #[serde(alias = "packageName")]
    #[schema(value_type = String, min_length = 1)]
    name: Identifier,
    /// A version, or `latest` / `latest-stable`.
    #[schema(value_type = String, min_length = 1)]
    version: Identifier,
    #[serde(alias = "comment")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    comments: Option<FreeText<MAX_COMMENT_CHARS>>,
    /// `fail` by default.
    on_conflict: Option<OnConflict>,
    /// Check everything, change nothing (also `?dryRun=true`).
    dry_run: Option<bool>,
}

/// One package version of a batch: `version` may be `latest` or `latest-stable`.
#[derive(Deserialize, ToSchema)]
struct PackageVersion {
    /// The group (npm scope, Maven group …); absent or blank for none.
    #[serde(alias = "groupName")]
    #[schema(value_type = Option<String>)]
    group: Option<OrBlank<Identifier>>,
    #[serde(alias = "packageName")]
    #[schema(value_type = String, min_length = 1)]
    name: Identifier,
    /// A version, or `latest` / `latest-stable`.
    #[schema(value_type = String, min_length = 1)]
    version: Identifier,
}

impl From<PackageVersion> for ItemRequest {
    fn from(item: PackageVersion) -> ItemRequest {
        ItemRequest {
            group: item.group.and_then(|group| group.0),
            name: item.name,
            version: item.version,
        }
    }
}

/// `POST /api/promotions/batch`'s body (JSON only).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BatchRequest {
    from_feed: FeedName,
    to_feed: FeedName,
    /// 1 to 1,000 package versions, moved all or none.
    #[schema(value_type = Vec<PackageVersion>, min_items = 1, max_items = 1000)]
    packages: Objects,
    #[serde(alias = "comment")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    comments: Option<FreeText<MAX_COMMENT_CHARS>>,
    /// `fail` by default.
    on_conflict: Option<OnConflict>,
    /// Check everything, change nothing (also `?dryRun=true`).
    dry_run: Option<bool>,
}

/// `POST /api/promotions/revert`'s body: exactly one of `id` and `batch`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RevertBody {
    /// A promotion's history id.
    #[schema(value_type = Option<i64>, minimum = 1)]
    id: Option<Whole<PromotionId>>,
    /// A batch id.
    #[schema(value_type = Option<uuid::Uuid>)]
    batch: Option<BatchId>,
    #[serde(alias = "comment")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    comments: Option<FreeText<MAX_COMMENT_CHARS>>,
    /// Check everything, change nothing (also `?dryRun=true`).
    dry_run: Option<bool>,
}

/// A promotion's id in the history.
struct PromotionId;

impl WholeRule for PromotionId {
    const MIN: i64 = 1;
    const MAX: i64 = i64::MAX;

    fn expected() -> String {
        "a promotion id, a whole number".to_owned()
    }
}

/// The query string of a promotion, batch or revert: `dryRun` may be there
/// instead of in the body; anything else is left to the key's reader.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct DryRunQuery {
    /// Check everything, change nothing.
    dry_run: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/api/promotions/promote",
    tag = "promotions",
    summary = "Promote one package version",
    description = "Moves a package version from one feed to another and records it in the history, in one transaction (ProGet's Promote Package API).",
    params(DryRunQuery),
    request_body(content(
        (PromoteRequest = "application/json", example = json!({
            "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
            "group": "@babel", "name": "runtime", "version": "7.21.0", "comments": "ok"
        })),
        (PromoteRequest = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Promoted, overwritten, skipped, or a dry run.", body = PromotionView),
        Refusals,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn promote(
    State(ctx): State<ApiContext>,
    AnswerDue(answer_due): AnswerDue,
    RawQuery(query): RawQuery,
    keyed: Keyed<RawBody>,
) -> Result<Json<PromotionView>> {
    let fields = Fields::parse(&keyed.body);
    let principal = keyed.principal(&ctx, &fields).await?;
    let request = read_request(&fields?, query.as_deref())?;
    let fetched = native::fetch_for_promotion(&ctx, &principal, &request).await?;
    let outcome = promotion::promote(&ctx.store, &principal, &request, false, answer_due).await;
    promotion::count_outcomes(&outcome);
    match outcome {
        Ok(moved) => {
            let mut view = PromotionView::new(&request, &principal, moved);
            view.fetched_from = fetched.get(&0).cloned();
            Ok(Json(view))
        }
        Err(Refusal::Request(error)) => Err(error),
        // One item: its reason is the whole answer.
        Err(Refusal::Items { mut failed, .. }) => Err(Error::invalid(failed.remove(0).1)),
    }
}

/// A promotion request from a body as it arrived (content type and bytes): what
/// the promote endpoint does once the key is known. The fuzz target drives it.
pub fn parse_promotion(content_type: Option<&str>, body: &[u8]) -> Result<PromotionRequest> {
    read_request(&Fields::parse(&RawBody::new(content_type, body))?, None)
}

/// The feeds of a promotion, which must differ.
fn feed_pair(from_feed: FeedName, to_feed: FeedName) -> Result<(FeedName, FeedName)> {
    if from_feed.key() == to_feed.key() {
        return Err(Error::invalid(format!(
            "Fields \"fromFeed\" and \"toFeed\" both name feed \"{from_feed}\"; a package can only be promoted to another feed."
        )));
    }
    Ok((from_feed, to_feed))
}

/// `dryRun` from the body, or else `?dryRun=` from the query string.
fn dry_run(in_body: Option<bool>, query: Option<&str>) -> Result<bool> {
    match in_body {
        Some(dry_run) => Ok(dry_run),
        None => Ok(Fields::from_query(query)?
            .read::<DryRunQuery>()?
            .dry_run
            .unwrap_or(false)),
    }
}

fn read_request(fields: &Fields, query: Option<&str>) -> Result<PromotionRequest> {
    let body: PromoteRequest = fields.read()?;
    let (from_feed, to_feed) = feed_pair(body.from_feed, body.to_feed)?;
    Ok(PromotionRequest {
        from_feed,
        to_feed,
        items: vec![ItemRequest {
            group: body.group.and_then(|group| group.0),
            name: body.name,
            version: body.version,
        }],
        comments: body.comments.and_then(FreeText::into_text),
        on_conflict: body.on_conflict.unwrap_or(OnConflict::Fail),
        dry_run: dry_run(body.dry_run, query)?,
    })
}

/// `POST /api/promotions/batch` (contract 7.3): JSON only; refusals are
/// `application/problem+json`.
#[utoipa::path(
    post,
    path = "/api/promotions/batch",
    tag = "promotions",
    summary = "Promote up to 1,000 package versions at once",
    description = "All or nothing, in one transaction. A refusal is `application/problem+json` listing every item that cannot move.",
    params(DryRunQuery),
    request_body(content = BatchRequest, content_type = "application/json", example = json!({
        "fromFeed": "unapproved-npm", "toFeed": "approved-npm",
        "packages": [{"group": "@babel", "name": "runtime", "version": "latest"}],
        "onConflict": "skip"
    })),
    responses(
        (status = 200, description = "Every item's outcome.", body = BatchView),
        (status = 400, description = "Nothing changed: the request, or these items, cannot move (a body that cannot be read at all: one sentence).", content(
            (Problem<ItemView> = "application/problem+json"),
            (String = "text/plain")
        )),
        Denials,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn batch(
    State(ctx): State<ApiContext>,
    AnswerDue(answer_due): AnswerDue,
    RawQuery(query): RawQuery,
    keyed: Keyed<BatchBody>,
) -> Response {
    // The key first, as everywhere: a body of another type carries none.
    let BatchBody(body) = &keyed.body;
    let fields = Fields::parse(body);
    let principal = match keyed.principal(&ctx, &fields).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    if !body.is_json() {
        return Error::UnsupportedBatchMediaType.into_response();
    }
    let request = match fields.and_then(|fields| read_batch(&fields, query.as_deref())) {
        Ok(request) => request,
        Err(error) => return Problem::from_error(error),
    };
    let fetched = match native::fetch_for_promotion(&ctx, &principal, &request).await {
        Ok(fetched) => fetched,
        Err(error) => return Problem::from_error(error),
    };
    let outcome = promotion::promote(&ctx.store, &principal, &request, true, answer_due).await;
    promotion::count_outcomes(&outcome);
    batch_response(outcome, "promoted", &fetched)
}

fn read_batch(fields: &Fields, query: Option<&str>) -> Result<PromotionRequest> {
    let body: BatchRequest = fields.read()?;
    let (from_feed, to_feed) = feed_pair(body.from_feed, body.to_feed)?;
    let packages = body.packages.0;
    if packages.is_empty() || packages.len() > MAX_BATCH {
        return Err(fields.error(
            "packages",
            format!(
                "must list 1 to {MAX_BATCH} package versions, not {}",
                packages.len()
            ),
        ));
    }
    let items = packages
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            Fields::object(item, fields.item_prefix("packages", index))
                .read::<PackageVersion>()
                .map(ItemRequest::from)
        })
        .collect::<Result<_>>()?;
    Ok(PromotionRequest {
        from_feed,
        to_feed,
        items,
        comments: body.comments.and_then(FreeText::into_text),
        on_conflict: body.on_conflict.unwrap_or(OnConflict::Fail),
        dry_run: dry_run(body.dry_run, query)?,
    })
}

/// `POST /api/promotions/revert` (contract 7.4), JSON or form: `id` or `batch`.
/// The answer has the batch endpoint's shape, refusals included
/// (`application/problem+json`).
#[utoipa::path(
    post,
    path = "/api/promotions/revert",
    tag = "promotions",
    summary = "Undo a promotion or a batch",
    description = "Moves the versions back, writing history rows with `revertOf`.",
    params(DryRunQuery),
    request_body(content(
        (RevertBody = "application/json", example = json!({"id": 1, "comments": "not yet"})),
        (RevertBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Every item's outcome.", body = BatchView),
        (status = 400, description = "Nothing changed: the request, or these items, cannot move (a body that cannot be read at all: one sentence).", content(
            (Problem<ItemView> = "application/problem+json"),
            (String = "text/plain")
        )),
        Denials,
        BodyRefusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn revert(
    State(ctx): State<ApiContext>,
    AnswerDue(answer_due): AnswerDue,
    RawQuery(query): RawQuery,
    keyed: Keyed<RawBody>,
) -> Response {
    let fields = Fields::parse(&keyed.body);
    let principal = match keyed.principal(&ctx, &fields).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let request = match fields.and_then(|fields| read_revert(&fields, query.as_deref())) {
        Ok(request) => request,
        Err(error) => return Problem::from_error(error),
    };
    let outcome = promotion::revert(&ctx.store, &principal, &request, answer_due).await;
    promotion::count_outcomes(&outcome);
    batch_response(outcome, "reverted", &HashMap::new())
}

fn read_revert(fields: &Fields, query: Option<&str>) -> Result<RevertRequest> {
    let body: RevertBody = fields.read()?;
    let target = match (body.id, body.batch) {
        (Some(id), None) => RevertTarget::Promotion(id.0),
        (None, Some(batch)) => RevertTarget::Batch(batch.0),
        _ => {
            return Err(Error::invalid(
                "Fields \"id\" and \"batch\": a revert needs exactly one of them.",
            ))
        }
    };
    Ok(RevertRequest {
        target,
        comments: body.comments.and_then(FreeText::into_text),
        dry_run: dry_run(body.dry_run, query)?,
    })
}

/// The batch answer: 200 with every item's outcome, or a problem listing every
/// item that failed.
/// A batch's or a revert's answer; `fetched` names, by item, what a
/// connector fetched first (contract section 16).
fn batch_response(
    outcome: Result<Moved, Refusal>,
    verb: &str,
    fetched: &HashMap<usize, String>,
) -> Response {
    match outcome {
        Ok(moved) => Json(BatchView::new(moved, fetched)).into_response(),
        Err(Refusal::Request(error)) => Problem::from_error(error),
        Err(Refusal::Items { total, failed }) => Problem::new(
            format!(
                "{} of {total} packages cannot be {verb}, so nothing was changed.",
                failed.len(),
            ),
            failed
                .into_iter()
                .map(|(result, reason)| ItemView::failed(&result, reason))
                .collect(),
        )
        .into_response(),
    }
}

/// One item of a batch answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    name: String,
    version: String,
    outcome: &'static str,
    /// Present for what moved: its history id, or null in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, required = false)]
    id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The upstream URL a connector fetched it from, first, for this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_from: Option<String>,
}

impl ItemView {
    fn failed(result: &ItemResult, reason: String) -> ItemView {
        ItemView {
            group: result.package.group().to_owned(),
            name: result.package.name().to_owned(),
            version: result.package.version().to_owned(),
            outcome: "failed",
            id: None,
            reason: Some(reason),
            fetched_from: None,
        }
    }
}

/// The answer of the batch and revert endpoints.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BatchView {
    batch: Option<String>,
    /// Where the versions went (for a revert: back where they came from).
    to_feed: String,
    dry_run: bool,
    promoted: usize,
    skipped: usize,
    overwritten: usize,
    items: Vec<ItemView>,
}

impl BatchView {
    fn new(moved: Moved, fetched: &HashMap<usize, String>) -> Self {
        let to_feed = moved.to_feed;
        let mut view = BatchView {
            batch: moved.batch,
            to_feed: to_feed.to_string(),
            dry_run: moved.dry_run,
            promoted: 0,
            skipped: 0,
            overwritten: 0,
            items: Vec::with_capacity(moved.items.len()),
        };
        for (index, result) in moved.items.into_iter().enumerate() {
            let (outcome, record) = match result.outcome {
                Outcome::Promoted(record) => {
                    view.promoted += 1;
                    ("promoted", Some(record))
                }
                Outcome::Overwritten(record) => {
                    view.overwritten += 1;
                    ("overwritten", Some(record))
                }
                _ => {
                    view.skipped += 1;
                    ("skipped", None)
                }
            };
            let package = &result.package;
            view.items.push(ItemView {
                group: record
                    .as_ref()
                    .map_or_else(|| package.group().to_owned(), |r| r.group_name.clone()),
                name: record
                    .as_ref()
                    .map_or_else(|| package.name().to_owned(), |r| r.name.clone()),
                version: record
                    .as_ref()
                    .map_or_else(|| package.version().to_owned(), |r| r.version.clone()),
                outcome,
                id: record
                    .as_ref()
                    .map(|r| Some(r.id).filter(|_| !moved.dry_run)),
                reason: (outcome == "skipped").then(|| {
                    format!("Package {package} already exists in feed \"{to_feed}\", so it was left where it was.")
                }),
                fetched_from: fetched.get(&index).cloned(),
            });
        }
        view
    }
}

/// The answer of the single promote endpoint: the promotion as it was recorded
/// in the history (`id` null in a dry run and for a skip).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PromotionView {
    id: Option<i64>,
    from_feed: String,
    to_feed: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    name: String,
    version: String,
    package_type: String,
    date: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<String>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrote: bool,
    /// The upstream URL a connector fetched the version from, first, for
    /// this promotion (contract section 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_from: Option<String>,
}

impl PromotionView {
    fn new(request: &PromotionRequest, principal: &Principal, moved: Moved) -> Self {
        let result = moved
            .items
            .into_iter()
            .next()
            .expect("one item was asked for");
        let (outcome, record) = match result.outcome {
            Outcome::Promoted(record) => ("promoted", Some(record)),
            Outcome::Overwritten(record) => ("overwritten", Some(record)),
            _ => ("skipped", None),
        };
        match record {
            Some(record) => PromotionView {
                id: Some(record.id).filter(|_| !moved.dry_run),
                from_feed: record.from_feed,
                to_feed: record.to_feed,
                group: record.group_name,
                name: record.name,
                version: record.version,
                package_type: record.package_type,
                date: record
                    .promoted_at
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                user: record.user_name,
                comments: record.comments,
                outcome,
                dry_run: moved.dry_run,
                overwrote: record.overwrote,
                fetched_from: None,
            },
            // A skip writes no history row: the answer describes the request.
            None => PromotionView {
                id: None,
                from_feed: request.from_feed.to_string(),
                to_feed: request.to_feed.to_string(),
                group: result.package.group().to_owned(),
                name: result.package.name().to_owned(),
                version: result.package.version().to_owned(),
                package_type: result.package.feed_type().to_string(),
                date: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                user: principal.name.clone(),
                comments: request.comments.clone(),
                outcome,
                dry_run: moved.dry_run,
                overwrote: false,
                fetched_from: None,
            },
        }
    }
}
