//! Parse-don't-validate types. Each constructor is the only place its rule lives;
//! the rest of the crate works with values that are already known to be valid.

mod connector;
mod feed;
mod moves;
mod package;
mod permission;
#[cfg(test)]
mod properties;
mod purl;
mod text;
mod token;
mod webhook;

pub use crate::ecosystems::FeedType;
pub use crate::ecosystems::Integrity;
pub use connector::{Connector, Connectors, MAX_CONNECTORS};
pub use feed::FeedName;
pub use moves::{MoveItem, OnConflict, RevertTarget, VersionSpec};
pub use package::{
    parse_qualifier, split_package, FilterKeys, Identifier, PackageFilter, PackageId,
};
pub use permission::{Permission, Permissions};
pub use purl::Purl;
pub use text::{is_free_text, with_article, Description, KeyName, FREE_TEXT_RULE};
pub use token::{random_hex, sha256_hex};
pub use webhook::{check_filter_size, WebhookSecret, WebhookUrl};
