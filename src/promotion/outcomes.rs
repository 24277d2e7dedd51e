//! Counting what promotions did, for `/metrics`.

use super::{Moved, Refusal};
use crate::error::Error;
use crate::store::Outcome;

/// Counts what a promotion, batch or revert did, item by item: promoted,
/// overwritten, skipped, dry_run, or refused_* by the reason's class.
pub fn count_outcomes(outcome: &Result<Moved, Refusal>) {
    let count = |label: &'static str, n: usize| {
        metrics::counter!(crate::metrics::PROMOTIONS, "outcome" => label).increment(n as u64);
    };
    match outcome {
        Ok(moved) if moved.dry_run => count("dry_run", moved.items.len()),
        Ok(moved) => {
            for item in &moved.items {
                count(outcome_label(&item.outcome), 1);
            }
        }
        Err(Refusal::Items { failed, .. }) => {
            for (item, _) in failed {
                count(outcome_label(&item.outcome), 1);
            }
        }
        Err(Refusal::Request(error)) => count(
            match error {
                Error::Forbidden => "refused_forbidden",
                Error::Invalid(_) | Error::NotFound(_) => "refused_invalid",
                Error::Unavailable { .. } => "refused_unavailable",
                _ => "failed",
            },
            1,
        ),
    }
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Promoted(_) => "promoted",
        Outcome::Overwritten(_) => "overwritten",
        Outcome::Skipped => "skipped",
        Outcome::NotInSource(_) => "refused_not_in_source",
        Outcome::AlreadyInTarget => "refused_already_in_target",
        Outcome::NotNewest(_) => "refused_not_newest",
        Outcome::NoVersion => "refused_no_version",
    }
}
