//! Promoting package versions: every rule between "the key is known" and "the
//! versions have moved" lives here, in the order the contract gives them, for
//! one promotion, a batch, and a revert. The moves themselves are
//! `Store::execute_plan`, one transaction each.

use std::collections::HashSet;
use std::time::Instant;

use chrono::SecondsFormat;

use crate::auth::Principal;
use crate::domain::{
    FeedName, Identifier, MoveItem, OnConflict, PackageId, Permission, VersionSpec,
};
use crate::error::{Error, Result};
use crate::store::{
    Feed, ItemResult, MoveAudit, MoveError, MovePlan, Outcome, PromotionRecord, Store,
};

mod outcomes;
mod revert;

pub use outcomes::count_outcomes;
pub use revert::{revert, RevertRequest};

/// The most package versions one batch may move.
pub const MAX_BATCH: usize = 1000;

/// One package version named by a request; `version` may be `latest` (or
/// pgutil's `latest-unstable`) or `latest-stable`.
#[derive(Debug, Clone)]
pub struct ItemRequest {
    pub group: Option<Identifier>,
    pub name: Identifier,
    pub version: Identifier,
}

/// A well-formed promotion of one or more versions; see `http::promotions` for
/// how one is read.
#[derive(Debug, Clone)]
pub struct PromotionRequest {
    pub from_feed: FeedName,
    pub to_feed: FeedName,
    pub items: Vec<ItemRequest>,
    pub comments: Option<String>,
    pub on_conflict: OnConflict,
    pub dry_run: bool,
}

/// What a successful call did.
#[derive(Debug)]
pub struct Moved {
    /// The batch id shared by the history rows (None for a single promotion
    /// and in a dry run).
    pub batch: Option<String>,
    pub dry_run: bool,
    /// The feed the versions went to.
    pub to_feed: String,
    pub items: Vec<ItemResult>,
}

/// Why nothing changed.
#[derive(Debug)]
pub enum Refusal {
    /// The request as a whole: bad feeds, permissions, the database.
    Request(Error),
    /// These items (index, result, reason) cannot move, of `total`; the others
    /// could have.
    Items {
        total: usize,
        failed: Vec<(ItemResult, String)>,
    },
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Request(error)
    }
}

/// Promotes what `principal` asks, all or nothing; `answer_due` is when the
/// caller stops waiting (see `MovePlan::answer_due`). `batch` says whether the
/// history rows share a batch id.
pub async fn promote(
    store: &Store,
    principal: &Principal,
    request: &PromotionRequest,
    batch: bool,
    answer_due: Instant,
) -> Result<Moved, Refusal> {
    let (from, to) = store
        .feed_pair(&request.from_feed, &request.to_feed)
        .await?;
    let (from, to) = match allowed(principal, from, to, request) {
        Ok(feeds) => feeds,
        // A refusal must not rest on feeds this process kept, which another
        // process may have changed a moment ago: look again first.
        Err(_) => {
            let (from, to) = store
                .fresh_feed_pair(&request.from_feed, &request.to_feed)
                .await?;
            allowed(principal, from, to, request)?
        }
    };

    let moved = promote_between(store, principal, request, batch, answer_due, &from, &to).await;
    if !matches!(moved, Err(Attempt::FeedsChanged)) {
        return moved.map_err(Attempt::refusal);
    }
    let (fresh_from, fresh_to) = store
        .fresh_feed_pair(&request.from_feed, &request.to_feed)
        .await?;
    let (fresh_from, fresh_to) = allowed(principal, fresh_from, fresh_to, request)?;
    if (&fresh_from, &fresh_to) != (&from, &to) {
        // What this process kept was out of date (a feed re-created or changed
        // elsewhere a moment ago): once more, with the feeds as they are.
        let again = promote_between(
            store,
            principal,
            request,
            batch,
            answer_due,
            &fresh_from,
            &fresh_to,
        )
        .await;
        if !matches!(again, Err(Attempt::FeedsChanged)) {
            return again.map_err(Attempt::refusal);
        }
    }
    // The feeds are fine again by now: say what happened.
    Err(Error::invalid(format!(
        "Feed \"{}\" or \"{}\" changed while the promotion ran, so nothing was promoted.",
        request.from_feed, request.to_feed
    ))
    .into())
}

/// Why one attempt at a promotion changed nothing.
enum Attempt {
    Refused(Refusal),
    /// A feed no longer allows the move (see `MoveError::FeedsChanged`).
    FeedsChanged,
}

impl Attempt {
    fn refusal(self) -> Refusal {
        match self {
            Attempt::Refused(refusal) => refusal,
            Attempt::FeedsChanged => unreachable!("handled by `promote`"),
        }
    }
}

impl<T: Into<Refusal>> From<T> for Attempt {
    fn from(refusal: T) -> Self {
        Attempt::Refused(refusal.into())
    }
}

/// One attempt at `promote` between the feeds as the caller found them.
async fn promote_between(
    store: &Store,
    principal: &Principal,
    request: &PromotionRequest,
    batch: bool,
    answer_due: Instant,
    from: &Feed,
    to: &Feed,
) -> Result<Moved, Attempt> {
    let mut items = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.iter().enumerate() {
        let field = |rule: &str| match request.items.len() {
            1 => Error::invalid(format!("Field \"group\" {rule}.")),
            _ => Error::invalid(format!("Field \"packages[{index}].group\" {rule}.")),
        };
        let package = PackageId::new(
            from.feed_type,
            item.group.as_ref(),
            &item.name,
            &item.version,
        )
        .map_err(field)?;
        // pgutil says `latest-unstable` for `latest`, as downloads take it.
        let version = match item.version.as_str() {
            v if v.eq_ignore_ascii_case("latest") || v.eq_ignore_ascii_case("latest-unstable") => {
                VersionSpec::Latest
            }
            v if v.eq_ignore_ascii_case("latest-stable") => VersionSpec::LatestStable,
            _ => VersionSpec::Exact,
        };
        items.push(MoveItem {
            package,
            version,
            revert_of: None,
        });
    }
    refuse_duplicates(&items)?;

    let batch_id = (batch && !request.dry_run).then(|| uuid::Uuid::new_v4().to_string());
    let plan = MovePlan {
        from,
        to,
        items: &items,
        on_conflict: request.on_conflict,
        check_fixed_target: true,
        audit: audit(principal, &request.comments),
        batch_id: batch_id.as_deref(),
        dry_run: request.dry_run,
        answer_due,
    };
    let results = match store.execute_plan(&plan).await {
        Ok(results) => results,
        Err(MoveError::FeedsChanged) => return Err(Attempt::FeedsChanged),
        Err(error) => return Err(target_changed(error, to).into()),
    };
    Ok(finish(
        results,
        batch_id,
        request.dry_run,
        to,
        principal,
        |_, result| item_reason(result, from, to, None),
    )?)
}

/// Who asks for the moves, as the history records it.
fn audit<'a>(principal: &'a Principal, comments: &'a Option<String>) -> MoveAudit<'a> {
    MoveAudit {
        comments: comments.as_deref(),
        user: &principal.name,
        api_key_id: principal.key_id,
    }
}

/// Success, or every failed item with its reason. `reason` is given each
/// result with its index, which is its item's index in the plan.
fn finish(
    results: Vec<ItemResult>,
    batch_id: Option<String>,
    dry_run: bool,
    to: &Feed,
    principal: &Principal,
    reason: impl Fn(usize, &ItemResult) -> String,
) -> Result<Moved, Refusal> {
    let total = results.len();
    let failed: Vec<(ItemResult, String)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome.failed())
        .map(|(i, r)| (r.clone(), reason(i, r)))
        .collect();
    if !failed.is_empty() {
        return Err(Refusal::Items { total, failed });
    }
    if !dry_run {
        record_on_request_line(&results, batch_id.as_deref(), principal, to);
    }
    Ok(Moved {
        batch: batch_id,
        dry_run,
        to_feed: to.name.clone(),
        items: results,
    })
}

/// What was moved, on the request's one log line (see `http::request_log`):
/// the key's name (never its text), the feeds, and the package and history id
/// of a single promotion or the batch id and count of a batch. The history
/// holds every row; the log says which request did what.
fn record_on_request_line(
    results: &[ItemResult],
    batch: Option<&str>,
    principal: &Principal,
    to: &Feed,
) {
    let span = tracing::Span::current();
    span.record("key", principal.name.as_str());
    span.record("to", to.name.as_str());
    let moved: Vec<&PromotionRecord> = results
        .iter()
        .filter_map(|result| match &result.outcome {
            Outcome::Promoted(record) | Outcome::Overwritten(record) => Some(record),
            _ => None,
        })
        .collect();
    if let Some(first) = moved.first() {
        span.record("from", first.from_feed.as_str());
        span.record("to", first.to_feed.as_str());
    }
    match batch {
        // A single promotion, moved or skipped: its package, what became of
        // it, and its history id when it moved (a skipped one has none).
        None => {
            if let Some(record) = moved.first() {
                span.record("promotion", record.id);
            }
            if let Some(result) = results.first() {
                let outcome = match result.outcome {
                    Outcome::Promoted(_) => "promoted",
                    Outcome::Overwritten(_) => "overwritten",
                    _ => "skipped",
                };
                span.record("outcome", outcome);
            }
            let package = results
                .iter()
                .find(|r| !r.outcome.failed())
                .map(|r| &r.package);
            if let Some(package) = package {
                // As a string, which is quoted: a name may contain spaces.
                span.record("package", package.to_string().as_str());
            }
        }
        Some(batch) => {
            span.record("batch", batch);
            span.record("versions", moved.len());
        }
    }
}

/// A version that appeared in the target after it was looked for: the unique
/// key stopped the move, and the caller hears it plainly.
fn target_changed(error: MoveError, to: &Feed) -> Refusal {
    match error {
        MoveError::TargetChanged => Error::invalid(format!(
            "A package version appeared in feed \"{}\" while this ran, so nothing was changed.",
            to.name
        ))
        .into(),
        MoveError::Failed(error) => error.into(),
        MoveError::FeedsChanged => unreachable!("handled by the caller"),
    }
}

/// One sentence saying why an item cannot move (or, for a skip, why it did
/// not). `reverting` is the promotion being undone, if any.
pub fn item_reason(result: &ItemResult, from: &Feed, to: &Feed, reverting: Option<i64>) -> String {
    let package = &result.package;
    match (&result.outcome, reverting) {
        (Outcome::NotInSource(_), Some(promotion)) => format!(
            "Package {package} is no longer in feed \"{}\", so promotion {promotion} cannot be reverted.",
            from.name
        ),
        (Outcome::NotInSource(Some(departure)), None) => format!(
            "Package {package} was not found in feed \"{}\": promotion {} moved it to feed \"{}\" at {}.",
            from.name,
            departure.id,
            departure.to_feed,
            departure
                .promoted_at
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        (Outcome::NotInSource(None), None) => {
            format!("Package {package} was not found in feed \"{}\".", from.name)
        }
        (Outcome::AlreadyInTarget, _) => format!(
            "Package {package} already exists in feed \"{}\", so nothing was promoted.",
            to.name
        ),
        (Outcome::Skipped, _) => format!(
            "Package {package} already exists in feed \"{}\", so it was left where it was.",
            to.name
        ),
        (Outcome::NotNewest(newer), promotion) => format!(
            "Promotion {} cannot be reverted: promotion {newer} has moved package {package} since.",
            promotion.unwrap_or_default()
        ),
        (Outcome::NoVersion, _) => format!(
            "Package {} has no {} in feed \"{}\".",
            package.full_name(),
            if package.version().eq_ignore_ascii_case("latest-stable") {
                "stable version"
            } else {
                "version"
            },
            from.name
        ),
        (Outcome::Promoted(_) | Outcome::Overwritten(_), _) => String::new(),
    }
}

/// The same version named twice would be moved once and reported twice.
fn refuse_duplicates(items: &[MoveItem]) -> Result<()> {
    let mut seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let p = &item.package;
        let version = match item.version {
            VersionSpec::Exact => p.version_key(),
            // `latest` twice (under either of its names) is the same version too.
            VersionSpec::Latest => "latest".to_owned(),
            VersionSpec::LatestStable => "latest-stable".to_owned(),
        };
        if !seen.insert((p.group_key(), p.name_key(), version)) {
            return Err(Error::invalid(format!(
                "Field \"packages[{index}]\" names {} {} a second time; each version may appear once.",
                p.full_name(),
                p.version()
            )));
        }
    }
    Ok(())
}

/// The feeds of a promotion, when the key may use them and they allow it.
fn allowed(
    principal: &Principal,
    from: Option<Feed>,
    to: Option<Feed>,
    request: &PromotionRequest,
) -> Result<(Feed, Feed)> {
    // ProGet's rule: promote on the target, view on the source; an overwrite
    // destroys the target's copy, so it also needs delete there. Checked before
    // existence so that a key cannot probe for feeds outside its scope.
    if !principal.may(Permission::View, from.as_ref())
        || !principal.may(Permission::Promote, to.as_ref())
        || (request.on_conflict == OnConflict::Overwrite
            && !principal.may(Permission::Delete, to.as_ref()))
    {
        return Err(Error::Forbidden);
    }
    feeds_allow_move(from, to, request)
}

/// The feeds of a promotion, when they allow it: both exist and are enabled, are
/// of one type, and the source's fixed target (if any) is the target. The plan
/// re-checks the same rules under lock (`Store::execute_plan`), so this read
/// only words the refusal; it decides nothing alone.
fn feeds_allow_move(
    from: Option<Feed>,
    to: Option<Feed>,
    request: &PromotionRequest,
) -> Result<(Feed, Feed)> {
    let from = usable_feed(from, "fromFeed", &request.from_feed)?;
    let to = usable_feed(to, "toFeed", &request.to_feed)?;
    if from.feed_type != to.feed_type {
        return Err(Error::invalid(format!(
            "Packages can only be promoted between feeds of the same type: \"{}\" is {} feed and \"{}\" is {} feed.",
            from.name,
            crate::domain::with_article(from.feed_type.as_str()),
            to.name,
            crate::domain::with_article(to.feed_type.as_str())
        )));
    }
    if let Some(target) = from.promote_to.as_deref() {
        if !target.eq_ignore_ascii_case(&to.name) {
            return Err(Error::invalid(format!(
                "Feed \"{}\" only promotes to feed \"{target}\", so toFeed \"{}\" is not allowed.",
                from.name, to.name
            )));
        }
    }
    Ok((from, to))
}

/// The feed, if it exists and is enabled; `field` names where the request named it.
fn usable_feed(feed: Option<Feed>, field: &str, name: &FeedName) -> Result<Feed> {
    match feed {
        None => Err(Error::invalid(format!(
            "Field \"{field}\" names feed \"{name}\", which does not exist."
        ))),
        Some(feed) if !feed.active => Err(Error::invalid(format!(
            "Field \"{field}\" names feed \"{}\", which is disabled.",
            feed.name
        ))),
        Some(feed) => Ok(feed),
    }
}
