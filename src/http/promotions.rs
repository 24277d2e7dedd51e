//! `POST /api/promotions/promote`: reading the request and writing the response.
//! The rules of promotion itself are in `crate::promotion`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Serialize;

use super::body::{Fields, RawBody};
use super::ApiContext;
use crate::auth;
use crate::domain::{FeedName, Identifier};
use crate::error::{Error, Result};
use crate::promotion::{self, PromotionRequest};
use crate::store::PromotionRecord;

const MAX_COMMENT_CHARS: usize = 4000;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/api/promotions/promote", post(promote))
}

async fn promote(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: RawBody,
) -> Result<Json<PromotionView>> {
    // The key is checked before the body is judged (a body that cannot be parsed
    // simply carries no key), so that strangers learn nothing about validation.
    let fields = Fields::parse(&body);
    let key = auth::presented_key(&headers, query.as_deref())
        .or_else(|| fields.as_ref().ok().and_then(Fields::api_key));
    let principal = auth::authenticate(&ctx.store, key.as_ref()).await?;
    let request = read_request(&fields?)?;
    let record = promotion::promote(&ctx.store, &principal, &request).await?;
    Ok(Json(PromotionView::from(record)))
}

fn read_request(fields: &Fields) -> Result<PromotionRequest> {
    let required = |name: &'static str, aliases: &[&'static str]| {
        fields
            .text(name, aliases)?
            .ok_or_else(|| Error::invalid(format!("Field \"{name}\" is required.")))
    };
    let feed = |name: &'static str| {
        let raw = required(name, &[])?;
        FeedName::parse(&raw).map_err(|rule| Error::invalid(format!("Field \"{name}\" {rule}.")))
    };
    let identifier = |name: &'static str, raw: &str| {
        Identifier::parse(raw).map_err(|rule| Error::invalid(format!("Field \"{name}\" {rule}.")))
    };

    let from_feed = feed("fromFeed")?;
    let to_feed = feed("toFeed")?;
    if from_feed.key() == to_feed.key() {
        return Err(Error::invalid(format!(
            "Fields \"fromFeed\" and \"toFeed\" both name feed \"{from_feed}\"; a package can only be promoted to another feed."
        )));
    }
    let name = identifier("name", &required("name", &["packageName"])?)?;
    // The group is optional: absent, null and blank all mean "no group".
    let group = match fields.text("group", &["groupName"])? {
        Some(raw) if !raw.trim().is_empty() => Some(identifier("group", &raw)?),
        _ => None,
    };
    let version = identifier("version", &required("version", &[])?)?;
    let comments = fields
        .text("comments", &["comment"])?
        .filter(|text| !text.trim().is_empty());
    if let Some(text) = &comments {
        if text.chars().count() > MAX_COMMENT_CHARS {
            return Err(Error::invalid(
                "Field \"comments\" must be at most 4000 characters long.",
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Error::invalid(
                "Field \"comments\" must not contain control characters other than tabs and line breaks.",
            ));
        }
    }
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
