//! Universal packages (ProGet's own format): a `.upack`'s `upack.json`.

use std::io::{Read, Seek};

use super::archive::zip_named_entry;
use super::Found;

pub(super) fn identity(file: impl Read + Seek) -> Result<Found, String> {
    let text = zip_named_entry(file, "a .upack (a zip archive)", "upack.json", || {
        "is not a universal package: it has no upack.json at its root".to_owned()
    })?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("is not a universal package: its upack.json is not JSON ({e})"))?;
    let field = |name: &str| {
        manifest
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Ok(Found {
        group: field("group").filter(|g| !g.is_empty()),
        name: field("name").ok_or("is not a universal package: its upack.json has no \"name\"")?,
        version: field("version")
            .ok_or("is not a universal package: its upack.json has no \"version\"")?,
        qualifier: String::new(),
        metadata: None,
    })
}
