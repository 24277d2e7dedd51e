//! npm packages: the identity `package/package.json` of a `.tgz` gives, found
//! where npm itself would find it, and the registry protocol's documents
//! (`registry`).

pub mod registry;
pub mod upstream;

use std::io::Read;

use super::archive::tar_entry;
use super::Found;

pub(super) fn identity(file: impl Read) -> Result<Found, String> {
    let text = tar_entry(file, "an npm package (a .tgz)", is_npm_manifest)?
        .ok_or("is not an npm package: it has no package/package.json")?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("is not an npm package: its package.json is not JSON ({e})"))?;
    let field = |name: &str| {
        manifest
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let full = field("name").ok_or("is not an npm package: its package.json has no \"name\"")?;
    let version =
        field("version").ok_or("is not an npm package: its package.json has no \"version\"")?;
    let (group, name) = match full.split_once('/') {
        Some((scope, name)) if scope.starts_with('@') => (Some(scope.to_owned()), name.to_owned()),
        _ => (None, full),
    };
    Ok(Found {
        group,
        name,
        version,
        qualifier: String::new(),
        metadata: Some(text),
    })
}

/// An npm package's scope carries its `@` (`babel` is `@babel`), and
/// `@scope/name` in the name alone is split as npm itself writes it. Err: a
/// scope that names nothing (`@`).
pub(super) fn canonical(
    group: Option<&str>,
    name: Option<&str>,
) -> Result<(Option<String>, Option<String>), &'static str> {
    let mut group = group.map(str::to_owned);
    let mut name = name.map(str::to_owned);
    if let (None, Some(full)) = (&group, &name) {
        if let Some((scope, rest)) = full.strip_prefix('@').and_then(|f| f.split_once('/')) {
            (group, name) = (Some(format!("@{scope}")), Some(rest.to_owned()));
        }
    }
    if let Some(scope) = &group {
        let scope = scope.trim_start_matches('@');
        if scope.is_empty() {
            return Err("must name an npm scope after '@'");
        }
        group = Some(format!("@{scope}"));
    }
    Ok((group, name))
}

/// Whether npm installs the tar entry at `path` as the package's
/// `package.json`: npm extracts with the first folder stripped whatever its
/// name (`strip: 1`), and empty and `.` parts count for nothing, so
/// `x/package.json` and `package//./package.json` are the manifest too.
pub(super) fn is_npm_manifest(path: &str) -> bool {
    let mut parts = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".");
    parts.next().is_some() && parts.next() == Some("package.json") && parts.next().is_none()
}
