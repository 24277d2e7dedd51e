//! Parse-don't-validate types. Each constructor is the only place its rule lives;
//! the rest of the crate works with values that are already known to be valid.

mod feed;
mod package;
mod permission;

pub use feed::{FeedName, FeedType};
pub use package::{Identifier, PackageId, MAX_IDENTIFIER_CHARS};
pub use permission::{Permission, Permissions};
