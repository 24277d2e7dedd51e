//! What a history page asks for: its filters as typed, a timeline's one
//! version, and where the page starts; each wrong one is a sentence on the
//! page.

use super::view::Filters;
use crate::domain::{split_package, FeedType, FilterKeys, Identifier, PackageFilter, PackageId};
use crate::error::{Error, Result};
use crate::http::input::{Fields, Whole, WholeRule};

/// A timeline's page: the one version its path names, from where the query
/// string says.
pub(super) fn timeline_request(
    feed_type: &str,
    package: &str,
    version: &str,
    query: Option<&str>,
) -> Result<PageRequest> {
    let keys = exact_version(feed_type, package, version)?;
    let start: PageStart = Fields::from_query(query)?.read()?;
    let (before, after) = start.positions()?;
    Ok(PageRequest {
        package: vec![keys],
        before,
        after,
        ..PageRequest::default()
    })
}

/// The keys of exactly one package version, from a timeline's path.
fn exact_version(feed_type: &str, package: &str, version: &str) -> Result<FilterKeys> {
    let invalid =
        |rule: &dyn std::fmt::Display| Error::invalid(format!("This timeline's address {rule}."));
    let feed_type: FeedType = feed_type
        .parse()
        .map_err(|rule| invalid(&format_args!("names no feed type: {rule}")))?;
    let (group, name) = split_package(package);
    let part = |text: &str| {
        Identifier::parse(text).map_err(|rule| invalid(&format_args!("has a part that {rule}")))
    };
    let group = group.map(part).transpose()?;
    let id = PackageId::new(feed_type, group.as_ref(), &part(name)?, &part(version)?)
        .map_err(|rule| invalid(&format_args!("names a group that {rule}")))?;
    Ok(FilterKeys {
        feed_types: vec![feed_type],
        group_key: Some(id.group_key()),
        name_key: Some(id.name_key()),
        version_key: Some(id.version_key()),
    })
}

/// What a page asks the history for.
#[derive(Default)]
pub(super) struct PageRequest {
    pub feed_key: Option<String>,
    pub package: Vec<FilterKeys>,
    pub batch: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// The filters as typed (blank fields are no filter) and what they ask for, or
/// the sentence that says what is wrong with them.
pub(super) fn read_filters(query: Option<&str>) -> (Filters, Result<PageRequest>) {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let typed = |name: &str| {
        pairs
            .iter()
            .find(|(given, _)| given.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    let filters = Filters {
        feed: typed("feed"),
        package: typed("package"),
        version: typed("version"),
        batch: typed("batch"),
        timeline: None,
    };
    (filters, parse_filters(query))
}

fn parse_filters(query: Option<&str>) -> Result<PageRequest> {
    // Read whole once, so that an unknown parameter, or a filter given twice
    // with different values, is refused in words as the API refuses it
    // (rather than read as the first).
    let params: PageQuery = Fields::from_query(query)?.read()?;
    let invalid = |name: &str, rule: &dyn std::fmt::Display| {
        Error::invalid(format!("The {name} filter {rule}."))
    };
    // Blank filters are no filter.
    let typed = |value: &Option<String>| value.as_deref().map_or("", str::trim).to_owned();
    let feed_key = match typed(&params.feed).as_str() {
        "" => None,
        raw => Some(
            crate::domain::FeedName::parse(raw)
                .map_err(|rule| invalid("feed", &rule))?
                .key(),
        ),
    };
    let identifier =
        |name: &str, raw: &str| Identifier::parse(raw).map_err(|rule| invalid(name, &rule));
    let (group, name) = match typed(&params.package).as_str() {
        "" => (None, None),
        package => {
            let (group, name) = split_package(package);
            let group = group
                .map(|group| identifier("package", group))
                .transpose()?;
            (group, Some(identifier("package", name)?))
        }
    };
    let version = match typed(&params.version).as_str() {
        "" => None,
        raw => Some(identifier("version", raw)?),
    };
    let batch = match typed(&params.batch).as_str() {
        "" => None,
        raw => Some(
            uuid::Uuid::parse_str(raw)
                .map_err(|_| invalid("batch", &"must be a batch id, a UUID"))?
                .to_string(),
        ),
    };
    let (before, after) = positions(params.before.as_ref(), params.after.as_ref())?;
    Ok(PageRequest {
        feed_key,
        package: PackageFilter {
            group,
            name,
            version,
        }
        .keys(),
        batch,
        before,
        after,
    })
}

/// The history page's query: its filters (read as typed by `read_filters`) and
/// where the page starts.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    feed: Option<String>,
    package: Option<String>,
    version: Option<String>,
    batch: Option<String>,
    before: Option<Whole<PromotionPosition>>,
    after: Option<Whole<PromotionPosition>>,
}

/// Where a page starts: `before` or `after` a promotion (a timeline's only
/// parameters).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageStart {
    before: Option<Whole<PromotionPosition>>,
    after: Option<Whole<PromotionPosition>>,
}

struct PromotionPosition;

impl WholeRule for PromotionPosition {
    const MIN: i64 = 1;
    const MAX: i64 = i64::MAX;
}

impl PageStart {
    fn positions(&self) -> Result<(Option<i64>, Option<i64>)> {
        positions(self.before.as_ref(), self.after.as_ref())
    }
}

/// `before` or `after`: where a page starts.
fn positions(
    before: Option<&Whole<PromotionPosition>>,
    after: Option<&Whole<PromotionPosition>>,
) -> Result<(Option<i64>, Option<i64>)> {
    let (before, after) = (before.map(|before| before.0), after.map(|after| after.0));
    if before.is_some() && after.is_some() {
        return Err(Error::invalid(
            "A page starts either before or after a promotion, not both.",
        ));
    }
    Ok((before, after))
}
