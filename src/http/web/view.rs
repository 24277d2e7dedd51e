//! The pages, as maud templates: every value is escaped by maud, and no page has
//! a script or an inline style (the Content-Security-Policy forbids both).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::store::PromotionRecord;

/// What stays as it is in a path segment of a link.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b'+');

/// `group/name`, or the name alone.
fn full_name(record: &PromotionRecord) -> String {
    match record.group_name.as_str() {
        "" => record.name.clone(),
        group => format!("{group}/{}", record.name),
    }
}

/// The filters as the visitor typed them, to fill the form again.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub feed: String,
    pub package: String,
    pub version: String,
    pub batch: String,
    /// A timeline's feed type: the page is `/promotions/{type}/{package}/{version}`.
    pub timeline: Option<String>,
}

/// The filter form's fields: name, label, an example value.
const FIELDS: [(&str, &str, &str); 4] = [
    ("feed", "Feed", "approved-npm"),
    ("package", "Package", "@babel/runtime"),
    ("version", "Version", "7.21.0"),
    ("batch", "Batch", "batch id"),
];

impl Filters {
    /// What was typed, in the order of `FIELDS`.
    fn values(&self) -> [&String; 4] {
        [&self.feed, &self.package, &self.version, &self.batch]
    }

    pub fn is_empty(&self) -> bool {
        self.values().iter().all(|value| value.is_empty())
    }

    /// The timeline of one package version.
    pub fn timeline(record: &PromotionRecord) -> Filters {
        Filters {
            package: full_name(record),
            version: record.version.clone(),
            timeline: Some(record.package_type.clone()),
            ..Filters::default()
        }
    }

    /// `/promotions?…` with these filters and `extra`, or a timeline's address
    /// with `extra`.
    pub fn link(&self, extra: &[(&str, String)]) -> String {
        let (path, mut pairs): (String, Vec<(&str, String)>) = match &self.timeline {
            Some(feed_type) => {
                let segments: Vec<String> = [feed_type.as_str()]
                    .into_iter()
                    .chain(self.package.split('/'))
                    .chain([self.version.as_str()])
                    .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
                    .collect();
                (format!("/promotions/{}", segments.join("/")), Vec::new())
            }
            None => (
                "/promotions".to_owned(),
                FIELDS
                    .iter()
                    .zip(self.values())
                    .filter(|(_, value)| !value.is_empty())
                    .map(|((name, ..), value)| (*name, value.clone()))
                    .collect(),
            ),
        };
        pairs.extend(extra.iter().cloned());
        match serde_urlencoded::to_string(&pairs).expect("strings encode") {
            query if query.is_empty() => path,
            query => format!("{path}?{query}"),
        }
    }
}

/// One page of the history.
pub struct HistoryPage<'a> {
    pub user: &'a str,
    /// Signed in with the form (so signing out means something).
    pub session: bool,
    /// The forms' token (`session::FormToken`).
    pub form_token: &'a str,
    pub filters: &'a Filters,
    /// Why the filters were not applied, when they were not.
    pub problem: Option<&'a str>,
    /// Reached through an Older or Newer link.
    pub paged: bool,
    pub rows: &'a [PromotionRecord],
    pub newer: Option<String>,
    pub older: Option<String>,
    pub now: DateTime<Utc>,
}

fn layout(title: &str, header_extra: Markup, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Promoter" }
                link rel="stylesheet" href="/static/promoter.css";
            }
            body {
                header.bar {
                    a.brand href="/promotions" { span.logo aria-hidden="true" { "⇡" } "Promoter" }
                    (header_extra)
                }
                main { (main) }
            }
        }
    }
}

/// The sign-in form, with a sentence saying what went wrong, if anything did.
pub fn sign_in(problem: Option<&str>, form_token: &str) -> Markup {
    let hours = super::session::LIFETIME.as_secs() / 3600;
    let main = html! {
        section.card.sign-in {
            h1 { "Promotion history" }
            p.lead { "Sign in with an API key to see who promoted what, when, and why." }
            @if let Some(problem) = problem {
                p.problem role="alert" { (problem) }
            }
            form method="post" action="/sign-in" {
                label for="key" { "API key" }
                input #key type="password" name="key" required autocomplete="current-password" autofocus;
                input type="hidden" name=(super::FORM_FIELD) value=(form_token);
                button type="submit" { "Sign in" }
            }
            p.hint {
                "The key is checked, then forgotten: the browser keeps a session cookie for " (hours) " hours, not the key."
            }
        }
    };
    layout("Sign in", html! {}, main)
}

/// The history: filters, the table (or a sentence when it is empty), paging.
pub fn history(page: &HistoryPage<'_>) -> Markup {
    let header = html! {
        // Only a sign-in is a session to end; a key carried by the request
        // (`?key=`, a header) is used for this page alone.
        @if page.session {
            span.who { "Signed in as " strong { (page.user) } }
            form.sign-out method="post" action="/sign-out" {
                input type="hidden" name=(super::FORM_FIELD) value=(page.form_token);
                button.quiet type="submit" { "Sign out" }
            }
        } @else {
            span.who { "Viewing with the key " strong { (page.user) } " from this request" }
        }
    };
    let f = page.filters;
    let main = html! {
        h1 { "Promotion history" }
        form.filters method="get" action="/promotions" role="search" aria-label="Filter the history" {
            @for ((name, label, example), value) in FIELDS.iter().zip(f.values()) {
                div.field {
                    label for=(name) { (label) }
                    input id=(name) name=(name) value=(value) placeholder=(example) autocomplete="off";
                }
            }
            div.actions {
                button type="submit" { "Filter" }
                @if !f.is_empty() {
                    a.clear href="/promotions" { "Clear" }
                }
            }
        }
        @if let Some(problem) = page.problem {
            p.problem role="alert" { (problem) }
        } @else if page.rows.is_empty() {
            p.empty {
                @if page.paged { "No promotions on this page." }
                @else if f.is_empty() { "No promotions yet: none that this key may view." }
                @else { "No promotions match these filters." }
            }
        } @else {
            (table(page))
        }
        @if page.newer.is_some() || page.older.is_some() {
            nav.pages aria-label="Pages" {
                @if let Some(newer) = &page.newer { a rel="prev" href=(newer) { "← Newer" } }
                @if let Some(older) = &page.older { a rel="next" href=(older) { "Older →" } }
            }
        }
    };
    layout("Promotion history", header, main)
}

fn table(page: &HistoryPage<'_>) -> Markup {
    html! {
        div.table-wrap {
            table.history {
                caption.visually-hidden { "Promotions, newest first" }
                thead {
                    tr {
                        th scope="col" { "Date (UTC)" }
                        th scope="col" { "Package" }
                        th scope="col" { "Version" }
                        th scope="col" { "From → To" }
                        th scope="col" { "User" }
                        th scope="col" { "Comments" }
                        th scope="col" { "Notes" }
                    }
                }
                tbody {
                    @for record in page.rows {
                        (row(record, page))
                    }
                }
            }
        }
    }
}

fn row(record: &PromotionRecord, page: &HistoryPage<'_>) -> Markup {
    let package = full_name(record);
    let timeline = Filters::timeline(record).link(&[]);
    let iso = record
        .promoted_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    html! {
        tr id={ "promotion-" (record.id) } {
            td data-label="Date (UTC)" { div {
                time datetime=(iso) title=(iso) { (record.promoted_at.format("%Y-%m-%d %H:%M")) }
                span.relative { (relative(record.promoted_at, page.now)) }
            } }
            td data-label="Package" { div {
                a.package href=(timeline) title="This version's timeline" { (package) }
                span.type { (record.package_type) }
            } }
            td data-label="Version" { div { a href=(timeline) title="This version's timeline" { (record.version) } } }
            td data-label="From → To" { div {
                span.feed { (record.from_feed) }
                span.arrow aria-hidden="true" { " → " }
                span.visually-hidden { " to " }
                span.feed { (record.to_feed) }
            } }
            td.user data-label="User" { div { (record.user_name) } }
            td.comments data-label="Comments" { div {
                @match &record.comments {
                    Some(comments) => (comments),
                    None => span.none { "—" },
                }
            } }
            td data-label="Notes" { div {
                span.id { "#" (record.id) }
                @if let Some(batch) = &record.batch_id {
                    a.mark.batch href=(Filters { batch: batch.clone(), ..Filters::default() }.link(&[])) title={ "Batch " (batch) } { "batch" }
                }
                @if let Some(undone) = record.revert_of {
                    span.mark.revert title={ "Undoes promotion " (undone) } { "reverts #" (undone) }
                }
                @if record.overwrote {
                    span.mark.overwrite title="Replaced the copy that was already in the target feed" { "overwrote" }
                }
            } }
        }
    }
}

/// "3 hours ago": a hint beside the exact UTC time.
pub fn relative(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds();
    // Rounded to the nearest unit; every range below starts at 1.5 units, so
    // the count is at least 2.
    let (unit_seconds, unit) = match seconds {
        s if s < 45 => return "just now".to_owned(),
        s if s < 90 => return "a minute ago".to_owned(),
        s if s < 45 * 60 => (60, "minute"),
        s if s < 90 * 60 => return "an hour ago".to_owned(),
        s if s < 22 * 3600 => (3600, "hour"),
        s if s < 36 * 3600 => return "a day ago".to_owned(),
        s if s < 26 * 86400 => (86400, "day"),
        s if s < 45 * 86400 => return "a month ago".to_owned(),
        s if s < 320 * 86400 => (30 * 86400, "month"),
        s if s < 548 * 86400 => return "a year ago".to_owned(),
        _ => (365 * 86400, "year"),
    };
    let count = (seconds + unit_seconds / 2) / unit_seconds;
    format!("{count} {unit}s ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ago = |seconds: i64| relative(now - chrono::Duration::seconds(seconds), now);
        assert_eq!(ago(-5), "just now");
        assert_eq!(ago(10), "just now");
        assert_eq!(ago(60), "a minute ago");
        assert_eq!(ago(5 * 60), "5 minutes ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(30 * 3600), "a day ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(100 * 86400), "3 months ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
        // Just past the singular ranges: never "1 minutes".
        assert_eq!(ago(95), "2 minutes ago");
        assert_eq!(ago(95 * 60), "2 hours ago");
        assert_eq!(ago(40 * 3600), "2 days ago");
        assert_eq!(ago(50 * 86400), "2 months ago");
        assert_eq!(ago(600 * 86400), "2 years ago");
    }

    #[test]
    fn filter_links_keep_the_filters_and_encode_them() {
        let filters = Filters {
            package: "@babel/runtime".into(),
            version: "7.21.0 & <b>".into(),
            ..Filters::default()
        };
        assert_eq!(
            filters.link(&[("before", "17".into())]),
            "/promotions?package=%40babel%2Fruntime&version=7.21.0+%26+%3Cb%3E&before=17"
        );
        assert_eq!(Filters::default().link(&[]), "/promotions");
        let timeline = Filters {
            package: "@babel/run time".into(),
            version: "7.21.0".into(),
            timeline: Some("npm".into()),
            ..Filters::default()
        };
        assert_eq!(
            timeline.link(&[("before", "9".into())]),
            "/promotions/npm/@babel/run%20time/7.21.0?before=9"
        );
    }
}
