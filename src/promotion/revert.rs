//! Undoing a promotion or a batch: the versions move back under the same rules,
//! if nothing has moved them since.

use std::time::Instant;

use super::{audit, finish, item_reason, target_changed, Moved, Refusal};
use crate::auth::Principal;
use crate::domain::{
    Identifier, MoveItem, OnConflict, PackageId, Permission, RevertTarget, VersionSpec,
};
use crate::error::Error;
use crate::store::{Feed, MoveError, MovePlan, Store};

/// A revert of one promotion or of every promotion of a batch.
#[derive(Debug, Clone)]
pub struct RevertRequest {
    pub target: RevertTarget,
    pub comments: Option<String>,
    pub dry_run: bool,
}

/// Reverts a promotion (or a batch): moves each version back, all or nothing,
/// if it is still where that promotion put it and nothing has moved it since.
pub async fn revert(
    store: &Store,
    principal: &Principal,
    request: &RevertRequest,
    answer_due: Instant,
) -> Result<Moved, Refusal> {
    let promotions = store.promotions_to_revert(&request.target).await?;
    let Some(first) = promotions.first() else {
        // Only a key that sees every feed learns that an id does not exist;
        // others get the same 403 as for a promotion they may not touch.
        if principal.feeds_with(Permission::View).is_some() {
            return Err(Error::Forbidden.into());
        }
        return Err(Error::invalid(match &request.target {
            RevertTarget::Promotion(id) => {
                format!("Field \"id\": there is no promotion with id {id}.")
            }
            RevertTarget::Batch(batch) => format!("Field \"batch\": there is no batch {batch}."),
        })
        .into());
    };
    // Undoing moves from the promotion's target back to its source: view on
    // the one, promote on the other, as for promoting that way.
    let back_from = store.feed_by_id(first.to_feed_id).await?;
    let back_to = store.feed_by_id(first.from_feed_id).await?;
    if !principal.may(Permission::View, back_from.as_ref())
        || !principal.may(Permission::Promote, back_to.as_ref())
    {
        return Err(Error::Forbidden.into());
    }
    if let Some(overwrite) = promotions.iter().find(|p| p.overwrote) {
        return Err(Error::invalid(format!(
            "Promotion {} overwrote the copy of {} {} that was in feed \"{}\", so it cannot be reverted.",
            overwrite.id, overwrite.full_name(), overwrite.version, overwrite.to_feed
        ))
        .into());
    }
    let usable = |feed: Option<Feed>, name: &str| match feed {
        None => Err(Error::invalid(format!(
            "Feed \"{name}\" of promotion {} no longer exists, so it cannot be reverted.",
            first.id
        ))),
        Some(feed) if !feed.active => Err(Error::invalid(format!(
            "Feed \"{}\" is disabled, so promotion {} cannot be reverted.",
            feed.name, first.id
        ))),
        Some(feed) => Ok(feed),
    };
    let back_from = usable(back_from, &first.to_feed)?;
    let back_to = usable(back_to, &first.from_feed)?;

    let mut items = Vec::with_capacity(promotions.len());
    for promotion in &promotions {
        let group = Some(promotion.group_name.as_str())
            .filter(|g| !g.is_empty())
            .map(Identifier::parse)
            .transpose();
        let package = match (
            group,
            Identifier::parse(&promotion.name),
            Identifier::parse(&promotion.version),
        ) {
            (Ok(group), Ok(name), Ok(version)) => {
                PackageId::new(back_from.feed_type, group.as_ref(), &name, &version).ok()
            }
            _ => None,
        }
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "promotion {} holds a package identity that no longer parses",
                promotion.id
            ))
        })?;
        items.push(MoveItem {
            package,
            version: VersionSpec::Exact,
            revert_of: Some(promotion.id),
        });
    }

    let batch_id = (!request.dry_run).then(|| uuid::Uuid::new_v4().to_string());
    let plan = MovePlan {
        from: &back_from,
        to: &back_to,
        items: &items,
        on_conflict: OnConflict::Fail,
        check_fixed_target: false,
        audit: audit(principal, &request.comments),
        batch_id: batch_id.as_deref(),
        dry_run: request.dry_run,
        answer_due,
    };
    let results = match store.execute_plan(&plan).await {
        Ok(results) => results,
        Err(MoveError::FeedsChanged) => {
            return Err(Error::invalid(format!(
                "Feed \"{}\" or \"{}\" changed while the revert ran, so nothing was reverted.",
                back_from.name, back_to.name
            ))
            .into())
        }
        Err(error) => return Err(target_changed(error, &back_to)),
    };
    finish(
        results,
        batch_id,
        request.dry_run,
        &back_to,
        principal,
        |index, result| item_reason(result, &back_from, &back_to, items[index].revert_of),
    )
}
