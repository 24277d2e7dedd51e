//! `POST /api/promotions/promote`: reading the request and writing the response.
//! The rules of promotion itself are in `crate::promotion`.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Serialize;

use super::auth::{self, Authenticated};
use super::input::{Fields, RawBody};
use super::{AnswerDue, ApiContext};
use crate::domain::{PackageFilter, Permission};
use crate::error::{Error, Result};
use crate::promotion::{self, PromotionRequest};
use crate::store::{HistoryQuery, HistoryRow, PromotionRecord};

const MAX_COMMENT_CHARS: usize = 4000;

/// Most promotions one history page returns, and the default page size.
const MAX_HISTORY_PAGE: i64 = 1000;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/promotions/promote", post(promote))
        .route("/api/promotions/list", get(list))
}

async fn promote(
    State(ctx): State<ApiContext>,
    AnswerDue(answer_due): AnswerDue,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: RawBody,
) -> Result<Json<PromotionView>> {
    let fields = Fields::parse(&body);
    let principal = auth::with_body(&ctx, &headers, query.as_deref(), &fields).await?;
    let request = read_request(&fields?)?;
    let record = promotion::promote(&ctx.store, &principal, &request, answer_due).await?;
    Ok(Json(PromotionView::from(record)))
}

/// A promotion request from a body as it arrived (content type and bytes): what
/// the promote endpoint does once the key is known. The fuzz target drives it.
pub fn parse_promotion(content_type: Option<&str>, body: &[u8]) -> Result<PromotionRequest> {
    read_request(&Fields::parse(&RawBody::new(content_type, body))?)
}

fn read_request(fields: &Fields) -> Result<PromotionRequest> {
    let required_feed = |name| {
        fields
            .feed(name)?
            .ok_or_else(|| fields.error(name, "is required"))
    };
    let from_feed = required_feed("fromFeed")?;
    let to_feed = required_feed("toFeed")?;
    if from_feed.key() == to_feed.key() {
        return Err(Error::invalid(format!(
            "Fields \"fromFeed\" and \"toFeed\" both name feed \"{from_feed}\"; a package can only be promoted to another feed."
        )));
    }
    let name = fields
        .identifier("name", &["packageName"])?
        .ok_or_else(|| fields.error("name", "is required"))?;
    // The group is optional: absent, null and blank all mean "no group".
    let group = match fields.text("group", &["groupName"])? {
        Some(raw) if raw.trim().is_empty() => None,
        _ => fields.identifier("group", &["groupName"])?,
    };
    let version = fields
        .identifier("version", &[])?
        .ok_or_else(|| fields.error("version", "is required"))?;
    let comments = fields.free_text("comments", &["comment"], MAX_COMMENT_CHARS)?;
    Ok(PromotionRequest {
        from_feed,
        to_feed,
        group,
        name,
        version,
        comments,
    })
}

/// The 200 body: the promotion as it was recorded in the history.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromotionView {
    id: i64,
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
}

impl From<PromotionRecord> for PromotionView {
    fn from(record: PromotionRecord) -> Self {
        PromotionView {
            id: record.id,
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
        }
    }
}

/// `GET /api/promotions/list`: the history, newest first, grouped per package
/// version, one page at a time (see the README's "History" section).
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
        "limit",
        "before",
    ])?;
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
        package: filter.keys(),
        visible_feed_ids: principal.feeds_with(Permission::View),
        before_id: before,
        // One more than a page tells whether another page follows.
        limit: limit + 1,
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
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PackageHistory {
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    package: String,
    package_type: String,
    version: String,
    promotions: Vec<PromotionEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromotionEntry {
    id: i64,
    from_feed: String,
    to_feed: String,
    date: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<String>,
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
