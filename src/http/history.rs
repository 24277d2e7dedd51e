//! `GET /api/promotions/list`: the promotion history, newest first, grouped per
//! package version, a page at a time. The queries are `store::history`'s.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::input::Fields;
use super::openapi::Refusals;
use super::ApiContext;
use crate::domain::{PackageFilter, Permission};
use crate::error::Result;
use crate::store::{HistoryQuery, HistoryRow};

/// Most promotions one history page returns, and the default page size.
const MAX_HISTORY_PAGE: i64 = 1000;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list))
}

/// `GET /api/promotions/list`: the history, newest first, grouped per package
/// version, one page at a time (see docs/api.md, "History").
#[utoipa::path(
    get,
    path = "/api/promotions/list",
    tag = "promotions",
    summary = "The promotion history",
    description = "Newest first, grouped per package version, only of feeds the key may view. A `Link: rel=\"next\"` header names the next page.",
    params(
        ("fromFeed" = Option<String>, Query, description = "Promotions out of this feed.", example = "unapproved-npm"),
        ("toFeed" = Option<String>, Query, description = "Promotions into this feed.", example = "approved-npm"),
        ("group" = Option<String>, Query, description = "The package's group (alias `groupName`)."),
        ("package" = Option<String>, Query, description = "The package's name (aliases `packageName`, `name`)."),
        ("version" = Option<String>, Query, min_length = 1),
        ("batch" = Option<uuid::Uuid>, Query, description = "Promotions of one batch."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Promotions per page (1,000 by default)."),
        ("before" = Option<i64>, Query, minimum = 1, description = "Only promotions older than this id, as in the Link header.")
    ),
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
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = Fields::from_query(query.as_deref())?;
    params.only(&[
        "fromFeed",
        "toFeed",
        "group",
        "groupName",
        "package",
        "packageName",
        "name",
        "version",
        "batch",
        "limit",
        "before",
    ])?;
    let batch = params
        .text("batch", &[])?
        .map(|raw| {
            uuid::Uuid::parse_str(raw.trim())
                .map(|batch| batch.to_string())
                .map_err(|_| params.error("batch", "must be a batch id, a UUID"))
        })
        .transpose()?;
    let from_feed = params.feed("fromFeed")?;
    let to_feed = params.feed("toFeed")?;
    let filter = PackageFilter {
        group: params.identifier("group", &["groupName"])?,
        name: params.identifier("package", &["packageName", "name"])?,
        version: params.identifier("version", &[])?,
    };
    let limit = params
        .number_in("limit", 1..=MAX_HISTORY_PAGE)?
        .unwrap_or(MAX_HISTORY_PAGE);
    let before = params
        .text("before", &[])?
        .map(|raw| {
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    params.error(
                        "before",
                        "must be a promotion id, as in the Link header of the previous page",
                    )
                })
        })
        .transpose()?;

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
