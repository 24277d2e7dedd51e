//! The words of a move that every layer speaks: which version an item means,
//! what to do on a conflict, what a revert names.

use std::str::FromStr;

use super::PackageId;

/// What a revert undoes: one promotion, or every promotion of a batch.
#[derive(Debug, Clone)]
pub enum RevertTarget {
    Promotion(i64),
    Batch(uuid::Uuid),
}

/// Which version of a package an item means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// The version in the package's identity.
    Exact,
    /// The highest version in the source feed (`latest`).
    Latest,
    /// The highest version that is not a pre-release (`latest-stable`).
    LatestStable,
}

/// What to do with a version that is already in the target feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum OnConflict {
    Fail,
    Skip,
    Overwrite,
}

/// One package version to move. For `latest` the package's version is a
/// placeholder until the transaction resolves it.
#[derive(Debug, Clone)]
pub struct MoveItem {
    pub package: PackageId,
    pub version: VersionSpec,
    /// For a revert: the promotion being undone, which must still be the newest
    /// promotion of this version.
    pub revert_of: Option<i64>,
}

impl FromStr for OnConflict {
    /// The broken rule, phrased to follow a field name.
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fail" => Ok(OnConflict::Fail),
            "skip" => Ok(OnConflict::Skip),
            "overwrite" => Ok(OnConflict::Overwrite),
            _ => Err("must be fail, skip or overwrite"),
        }
    }
}
