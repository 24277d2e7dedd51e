//! The body of a delivery (contract section 8). It is rendered from the history
//! row, which never changes, so every attempt of a delivery sends the same bytes.

use chrono::SecondsFormat;
use serde::Serialize;

use crate::store::PromotionRecord;

/// ProGet's default webhook body first, so receivers written for ProGet keep
/// working, then the promotion as the promote endpoint answers it.
#[derive(Serialize)]
struct Event<'a> {
    event: &'static str,
    delivery: &'a str,
    package: String,
    version: &'a str,
    feed: &'a str,
    user: &'a str,
    promotion: Promotion<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Promotion<'a> {
    id: i64,
    from_feed: &'a str,
    to_feed: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    name: &'a str,
    version: &'a str,
    package_type: &'a str,
    date: String,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<&'a str>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revert_of: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrote: bool,
}

/// The JSON body announcing `record` under the delivery id `delivery`.
pub fn body(delivery: &str, record: &PromotionRecord) -> Vec<u8> {
    let package = match record.group_name.as_str() {
        "" => record.name.clone(),
        group => format!("{group}/{}", record.name),
    };
    let event = Event {
        event: "Promoted",
        delivery,
        package,
        version: &record.version,
        feed: &record.to_feed,
        user: &record.user_name,
        promotion: Promotion {
            id: record.id,
            from_feed: &record.from_feed,
            to_feed: &record.to_feed,
            group: &record.group_name,
            name: &record.name,
            version: &record.version,
            package_type: &record.package_type,
            date: record
                .promoted_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            user: &record.user_name,
            comments: record.comments.as_deref(),
            outcome: if record.overwrote {
                "overwritten"
            } else {
                "promoted"
            },
            batch: record.batch_id.as_deref(),
            revert_of: record.revert_of,
            overwrote: record.overwrote,
        },
    };
    serde_json::to_vec(&event).expect("an event serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_starts_with_progets_fields_and_carries_the_promotion() {
        let record = PromotionRecord {
            id: 17,
            from_feed: "unapproved-npm".into(),
            to_feed: "approved-npm".into(),
            package_type: "npm".into(),
            group_name: "@babel".into(),
            name: "runtime".into(),
            version: "7.21.0".into(),
            comments: Some("ok".into()),
            user_name: "ci".into(),
            promoted_at: "2026-11-23T18:40:13Z".parse().unwrap(),
            batch_id: None,
            revert_of: Some(9),
            overwrote: false,
            fetched_from: None,
        };
        assert_eq!(
            String::from_utf8(body("d-1", &record)).unwrap(),
            r#"{"event":"Promoted","delivery":"d-1","package":"@babel/runtime","version":"7.21.0","feed":"approved-npm","user":"ci","promotion":{"id":17,"fromFeed":"unapproved-npm","toFeed":"approved-npm","group":"@babel","name":"runtime","version":"7.21.0","packageType":"npm","date":"2026-11-23T18:40:13Z","user":"ci","comments":"ok","outcome":"promoted","revertOf":9}}"#
        );
    }
}
