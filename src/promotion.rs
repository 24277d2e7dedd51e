//! Promoting a package version: every rule between "the key is known" and "the
//! version has moved" lives here, in the order the contract gives them.

use std::time::Instant;

use crate::auth::Principal;
use crate::domain::{FeedName, Identifier, PackageId, Permission};
use crate::error::{Error, Result};
use crate::store::{Feed, MoveAudit, MoveError, PromotionRecord, Store};

/// A well-formed promotion request; see `http::promotions` for how one is read.
#[derive(Debug, Clone)]
pub struct PromotionRequest {
    pub from_feed: FeedName,
    pub to_feed: FeedName,
    pub group: Option<Identifier>,
    pub name: Identifier,
    pub version: Identifier,
    pub comments: Option<String>,
}

/// Promotes as `principal` asks; `answer_due` is when the caller stops waiting
/// (see `Store::move_package`).
pub async fn promote(
    store: &Store,
    principal: &Principal,
    request: &PromotionRequest,
    answer_due: Instant,
) -> Result<PromotionRecord> {
    let (from, to) = store
        .feed_pair(&request.from_feed, &request.to_feed)
        .await?;

    // ProGet's rule: promote on the target, view on the source. Checked before
    // existence so that a key cannot probe for feeds outside its scope.
    if !principal.may(Permission::View, from.as_ref())
        || !principal.may(Permission::Promote, to.as_ref())
    {
        return Err(Error::Forbidden);
    }
    let (from, to) = feeds_allow_move(from, to, request)?;

    let package = PackageId::new(
        from.feed_type,
        request.group.as_ref(),
        &request.name,
        &request.version,
    )
    .map_err(|rule| Error::invalid(format!("Field \"group\" {rule}.")))?;

    let audit = MoveAudit {
        comments: request.comments.as_deref(),
        user: &principal.name,
        api_key_id: principal.key_id,
    };
    match store
        .move_package(&from, &to, &package, &audit, answer_due)
        .await
    {
        Ok(record) => {
            tracing::info!(
                promotion = record.id,
                from = %from.name,
                to = %to.name,
                package = %package,
                user = %principal.name,
                "promoted"
            );
            Ok(record)
        }
        Err(MoveError::NotMoved) => Err(why_not_moved(store, request, &from, &package).await),
        Err(MoveError::AlreadyInTarget) => Err(Error::invalid(format!(
            "Package {package} already exists in feed \"{}\", so nothing was promoted.",
            to.name
        ))),
        Err(MoveError::Failed(error)) => Err(error),
    }
}

/// The feeds of a promotion, when they allow it: both exist and are enabled, are
/// of one type, and the source's fixed target (if any) is the target. The move
/// statement re-checks the same rules (`store::promotions`), so this read only
/// words the refusal; it decides nothing alone.
fn feeds_allow_move(
    from: Option<Feed>,
    to: Option<Feed>,
    request: &PromotionRequest,
) -> Result<(Feed, Feed)> {
    let from = usable_feed(from, "fromFeed", &request.from_feed)?;
    let to = usable_feed(to, "toFeed", &request.to_feed)?;
    if from.feed_type != to.feed_type {
        return Err(Error::invalid(format!(
            "Packages can only be promoted between feeds of the same type: \"{}\" is a {} feed and \"{}\" is a {} feed.",
            from.name, from.feed_type, to.name, to.feed_type
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

/// Why a move changed nothing: a feed changed while the promotion waited, or the
/// version is not in the source, and then where the history says it went.
async fn why_not_moved(
    store: &Store,
    request: &PromotionRequest,
    from: &Feed,
    package: &PackageId,
) -> Error {
    let feeds = match store.feed_pair(&request.from_feed, &request.to_feed).await {
        Ok((from, to)) => feeds_allow_move(from, to, request),
        Err(error) => return error,
    };
    if let Err(refusal) = feeds {
        return refusal;
    }
    match store.last_departure(from, package).await {
        Ok(Some(departure)) => Error::invalid(format!(
            "Package {package} was not found in feed \"{}\": promotion {} moved it to feed \"{}\" at {}.",
            from.name,
            departure.id,
            departure.to_feed,
            departure
                .promoted_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        Ok(None) => Error::invalid(format!(
            "Package {package} was not found in feed \"{}\".",
            from.name
        )),
        Err(error) => error,
    }
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
