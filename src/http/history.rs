//! `GET /api/promotions/list`: the promotion history, newest first, grouped per
//! package version, a page at a time. The queries are `store::history`'s.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::input::{BatchId, Params, Whole, WholeRule};
use super::openapi::Refusals;
use super::ApiContext;
use crate::domain::{FeedName, Identifier, PackageFilter, Permission};
use crate::error::Result;
use crate::store::{HistoryQuery, HistoryRow};

/// Most promotions one history page returns, and the default page size.
const MAX_HISTORY_PAGE: i64 = 1000;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The history's filters and page; any other parameter is refused, so that a
/// misspelt filter is not silently a list of everything.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    /// Promotions out of this feed.
    #[param(example = "unapproved-npm")]
    from_feed: Option<FeedName>,
    /// Promotions into this feed.
    #[param(example = "approved-npm")]
    to_feed: Option<FeedName>,
    /// The package's group (alias `groupName`).
    #[serde(alias = "groupName")]
    #[param(value_type = Option<String>)]
    group: Option<Identifier>,
    /// The package's name (aliases `packageName`, `name`).
    #[serde(alias = "packageName", alias = "name")]
    #[param(value_type = Option<String>)]
    package: Option<Identifier>,
    #[param(value_type = Option<String>, min_length = 1)]
    version: Option<Identifier>,
    /// Promotions of one batch.
    #[param(value_type = Option<uuid::Uuid>)]
    batch: Option<BatchId>,
    /// Promotions per page (1,000 by default).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Whole<HistoryPage>>,
    /// Only promotions older than this id, as in the Link header.
    #[param(value_type = Option<i64>, minimum = 1)]
    before: Option<Whole<Before>>,
}

struct HistoryPage;

impl WholeRule for HistoryPage {
    const MIN: i64 = 1;
    const MAX: i64 = MAX_HISTORY_PAGE;
}

struct Before;

impl WholeRule for Before {
    const MIN: i64 = 1;
    const MAX: i64 = i64::MAX;

    fn expected() -> String {
        "a promotion id, as in the Link header of the previous page".to_owned()
    }
}

/// `GET /api/promotions/list`: the history, newest first, grouped per package
/// version, one page at a time (see docs/api.md, "History").
#[utoipa::path(
    get,
    path = "/api/promotions/list",
    tag = "promotions",
    summary = "The promotion history",
    description = "Newest first, grouped per package version, only of feeds the key may view. A `Link: rel=\"next\"` header names the next page.",
    params(HistoryParams),
    responses(
        (status = 200, description = "A page of the history.", body = Vec<PackageHistory>,
            headers(("Link" = String, description = "The next page, when there is one."))),
        Refusals
    ),
    security(("apiKey" = []), ("basic" = []))
)]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(principal): Authenticated,
    Params(params): Params<HistoryParams>,
) -> Result<Response> {
    let batch = params.batch.map(|batch| batch.0.to_string());
    let (from_feed, to_feed) = (params.from_feed, params.to_feed);
    let filter = PackageFilter {
        group: params.group,
        name: params.package,
        version: params.version,
    };
    let limit = params.limit.map_or(MAX_HISTORY_PAGE, |limit| limit.0);
    let before = params.before.map(|before| before.0);

    let history = HistoryQuery {
        from_feed_key: from_feed.as_ref().map(|f| f.key()),
        to_feed_key: to_feed.as_ref().map(|f| f.key()),
        batch_id: batch.clone(),
        package: filter.keys(),
        visible_feed_ids: principal.feeds_with(Permission::View),
        before_id: before,
        // One more than a page tells whether another page follows.
        limit: limit + 1,
        ..HistoryQuery::default()
    };
    let mut rows = ctx.store.promotion_history(&history).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = rows.last().filter(|_| more).map(|last| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let feeds = [("fromFeed", &from_feed), ("toFeed", &to_feed)];
        for (name, feed) in feeds {
            if let Some(feed) = feed {
                pairs.push((name, feed.to_string()));
            }
        }
        let package = [
            ("group", &filter.group),
            ("package", &filter.name),
            ("version", &filter.version),
        ];
        for (name, value) in package {
            if let Some(value) = value {
                pairs.push((name, value.as_str().to_owned()));
            }
        }
        if let Some(batch) = &batch {
            pairs.push(("batch", batch.clone()));
        }
        pairs.push(("limit", limit.to_string()));
        pairs.push(("before", last.record.id.to_string()));
        let query = serde_urlencoded::to_string(&pairs).expect("strings always encode");
        format!("</api/promotions/list?{query}>; rel=\"next\"")
    });

    let mut response = Json(group_by_package(rows)).into_response();
    if let Some(link) = next {
        let value = HeaderValue::from_str(&link).expect("an encoded query is a valid header");
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// One package version and its promotions, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PackageHistory {
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    package: String,
    package_type: String,
    version: String,
    promotions: Vec<PromotionEntry>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PromotionEntry {
    id: i64,
    from_feed: String,
    to_feed: String,
    date: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revert_of: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrote: bool,
    /// The upstream URL a connector fetched the version's bytes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_from: Option<String>,
}

/// Groups rows (newest first) per package version, in the order of each version's
/// newest promotion.
fn group_by_package(rows: Vec<HistoryRow>) -> Vec<PackageHistory> {
    let mut groups: Vec<PackageHistory> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for row in rows {
        let identity = (
            row.record.package_type.clone(),
            row.group_key,
            row.name_key,
            row.version_key,
        );
        let record = row.record;
        let entry = PromotionEntry {
            id: record.id,
            from_feed: record.from_feed,
            to_feed: record.to_feed,
            date: record
                .promoted_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            user: record.user_name,
            comments: record.comments,
            batch: record.batch_id,
            revert_of: record.revert_of,
            overwrote: record.overwrote,
            fetched_from: record.fetched_from,
        };
        let position = *index.entry(identity).or_insert_with(|| {
            groups.push(PackageHistory {
                group: record.group_name,
                package: record.name,
                package_type: record.package_type,
                version: record.version,
                promotions: Vec::new(),
            });
            groups.len() - 1
        });
        groups[position].promotions.push(entry);
    }
    groups
}
