//! An upstream NuGet v3 feed, as a connector reads it (contract section 16):
//! its service index's package base address (the flat container) and
//! registration, a package's versions from the flat container, and a
//! version's `packageHash` from its registration's catalog entry (inline,
//! as this server and many feeds write it, or in the catalog leaf it links
//! to, as nuget.org does). A version whose hash cannot be found is never
//! cached. Followed: NuGet's server API documentation ("Service index",
//! "Package content", "Package metadata", "Catalog").

use base64::Engine;
use serde_json::Value;

use crate::ecosystems::{compare_versions, path_segment, FeedType};

/// The resources a connector uses from a service index.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// `PackageBaseAddress/3.0.0`, ending in `/`.
    pub flat: url::Url,
    /// `RegistrationsBaseUrl` (any version), ending in `/`.
    pub registration: Option<url::Url>,
}

/// The resources of a service index; `None` when it is not one.
pub fn resources(body: &[u8], index: &url::Url) -> Option<Resources> {
    let document: Value = serde_json::from_slice(body).ok()?;
    let listed = document.get("resources")?.as_array()?;
    let find = |wanted: &dyn Fn(&str) -> bool| {
        listed.iter().find_map(|resource| {
            let kind = resource.get("@type")?;
            let kinds: Vec<&str> = match kind {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            kinds.iter().any(|k| wanted(k)).then_some(())?;
            let mut url = index.join(resource.get("@id")?.as_str()?).ok()?;
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            Some(url)
        })
    };
    Some(Resources {
        flat: find(&|k| k == "PackageBaseAddress/3.0.0")?,
        // 3.6.0 lists SemVer 2.0.0 versions too; older hubs leave them out.
        registration: find(&|k| k == "RegistrationsBaseUrl/3.6.0")
            .or_else(|| find(&|k| k.starts_with("RegistrationsBaseUrl"))),
    })
}

/// The flat container's `{id}/index.json` of a package.
pub fn versions_url(resources: &Resources, id_key: &str) -> Option<url::Url> {
    let id = path_segment(id_key)?;
    resources.flat.join(&format!("{id}/index.json")).ok()
}

/// Where the flat container keeps a version's `.nupkg`.
pub fn nupkg_url(resources: &Resources, id_key: &str, version_key: &str) -> Option<url::Url> {
    resources
        .flat
        .join(&format!(
            "{id_key}/{version_key}/{id_key}.{version_key}.nupkg"
        ))
        .ok()
}

/// A package's registration index.
pub fn registration_url(resources: &Resources, id_key: &str) -> Option<url::Url> {
    let id = path_segment(id_key)?;
    resources
        .registration
        .as_ref()?
        .join(&format!("{id}/index.json"))
        .ok()
}

/// The versions a flat container's `{id}/index.json` lists.
pub fn versions(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|document| {
            let listed = document.get("versions")?.as_array()?.clone();
            Some(
                listed
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// Where a registration document leads for one version's hash.
#[derive(Debug, Clone, PartialEq)]
pub enum Hash {
    /// The SHA-512 in hex.
    Found(String),
    /// In another document: a page not inlined, or the catalog leaf.
    Follow(url::Url),
    Missing,
}

/// The hash of the version whose normalised lower-case form is
/// `version_key`, from a registration index, page, leaf or catalog leaf.
pub fn hash(body: &[u8], document_url: &url::Url, version_key: &str) -> Hash {
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return Hash::Missing;
    };
    let join = |text: &str| document_url.join(text).ok();
    // A catalog leaf, or a catalog entry inline.
    if let Some(found) = package_hash(&document) {
        return Hash::Found(found);
    }
    // A registration leaf whose catalogEntry is a link.
    if let Some(link) = document.get("catalogEntry").and_then(Value::as_str) {
        return join(link).map_or(Hash::Missing, Hash::Follow);
    }
    let same = |version: &str| version.to_lowercase().split('+').next() == Some(version_key);
    let items = document.get("items").and_then(Value::as_array);
    for page in items.into_iter().flatten() {
        match page.get("items").and_then(Value::as_array) {
            Some(leaves) => {
                for leaf in leaves {
                    let entry = leaf.get("catalogEntry");
                    let version = entry
                        .and_then(|e| e.get("version"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !same(version) {
                        continue;
                    }
                    if let Some(found) = entry.and_then(package_hash) {
                        return Hash::Found(found);
                    }
                    let link = entry
                        .and_then(|e| e.get("@id"))
                        .or_else(|| entry.filter(|e| e.is_string()))
                        .and_then(Value::as_str);
                    return link.and_then(join).map_or(Hash::Missing, Hash::Follow);
                }
            }
            None => {
                // A page not inlined: follow it if the version is in its range.
                let bound =
                    |field: &str| page.get(field).and_then(Value::as_str).unwrap_or_default();
                let order = |a: &str, b: &str| compare_versions(FeedType::Nuget, a, b);
                let in_range = order(bound("lower"), version_key).is_le()
                    && order(version_key, bound("upper")).is_le();
                let url = page.get("@id").and_then(Value::as_str).and_then(join);
                if let (true, Some(url)) = (in_range, url) {
                    return Hash::Follow(url);
                }
            }
        }
    }
    Hash::Missing
}

/// `packageHash` in hex, when its algorithm is SHA-512 (NuGet's only one).
fn package_hash(entry: &Value) -> Option<String> {
    let hash = entry.get("packageHash")?.as_str()?;
    let algorithm = entry
        .get("packageHashAlgorithm")
        .and_then(Value::as_str)
        .unwrap_or("SHA512");
    if !algorithm.eq_ignore_ascii_case("SHA512") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .ok()?;
    (bytes.len() == 64).then(|| hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_indexes_name_the_flat_container_and_registration() {
        let index = url::Url::parse("https://api.example/v3/index.json").unwrap();
        let body = json!({"version": "3.0.0", "resources": [
            {"@id": "https://api.example/v3-flatcontainer", "@type": "PackageBaseAddress/3.0.0"},
            {"@id": "https://api.example/v3/registration5-gz-semver2/", "@type": "RegistrationsBaseUrl/3.6.0"}
        ]});
        let found = resources(&serde_json::to_vec(&body).unwrap(), &index).unwrap();
        assert_eq!(found.flat.as_str(), "https://api.example/v3-flatcontainer/");
        assert_eq!(
            nupkg_url(&found, "a.b", "1.0.0").unwrap().as_str(),
            "https://api.example/v3-flatcontainer/a.b/1.0.0/a.b.1.0.0.nupkg"
        );
        assert!(registration_url(&found, "a.b").is_some());
    }

    #[test]
    fn hashes_are_found_inline_or_followed() {
        let url = url::Url::parse("https://api.example/v3/registration/a/index.json").unwrap();
        let hash64 = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        let inline = json!({"items": [{"items": [
            {"catalogEntry": {"version": "1.0.0", "packageHash": hash64, "packageHashAlgorithm": "SHA512"}},
            {"catalogEntry": {"@id": "https://api.example/catalog/a.1.1.0.json", "version": "1.1.0"}}
        ]}]});
        let body = serde_json::to_vec(&inline).unwrap();
        assert_eq!(
            hash(&body, &url, "1.0.0"),
            Hash::Found(hex::encode([7u8; 64]))
        );
        assert_eq!(
            hash(&body, &url, "1.1.0"),
            Hash::Follow(url::Url::parse("https://api.example/catalog/a.1.1.0.json").unwrap())
        );
        assert_eq!(hash(&body, &url, "2.0.0"), Hash::Missing);
        let leaf = json!({"packageHash": hash64, "packageHashAlgorithm": "SHA512"});
        assert!(matches!(
            hash(&serde_json::to_vec(&leaf).unwrap(), &url, "x"),
            Hash::Found(_)
        ));
    }
}
