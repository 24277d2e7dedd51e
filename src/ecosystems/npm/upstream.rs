//! An upstream npm registry's packument, as a connector reads it (contract
//! section 16): each version's manifest, where its tarball is and what it
//! must hash to, its dist-tags and times. Only versions whose tarball URL
//! and integrity can be read are offered: a file that cannot be checked is
//! never cached. Merging them into the feed's packument is
//! `http::native::npm`'s.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::registry::{Package, Version};
use crate::ecosystems::{compare_versions, latest, path_segment, FeedType, Integrity};

/// One version an upstream offers.
#[derive(Debug, Clone)]
pub struct Offered {
    pub version: String,
    /// The version's manifest as the upstream wrote it.
    pub manifest: Value,
    /// Where the upstream keeps its tarball (absolute).
    pub tarball: url::Url,
    /// `dist.shasum`, SHA-1 in hex.
    pub shasum: Option<String>,
    /// `dist.integrity`'s SHA-512 in hex, when that is what it gives.
    pub sha512: Option<String>,
    /// Every digest the bytes must match.
    pub integrity: Vec<Integrity>,
    /// When the upstream says it was published.
    pub published: Option<String>,
}

/// What an upstream's packument offers.
#[derive(Debug, Clone, Default)]
pub struct Packument {
    pub versions: Vec<Offered>,
    pub dist_tags: BTreeMap<String, String>,
    pub created: Option<String>,
}

/// Reads an upstream's full packument; `None` when it is not one.
pub fn read(body: &[u8], base: &url::Url) -> Option<Packument> {
    let document: Value = serde_json::from_slice(body).ok()?;
    let versions = document.get("versions")?.as_object()?;
    let time = document.get("time").and_then(Value::as_object);
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let offered = versions
        .iter()
        .filter_map(|(version, manifest)| {
            let dist = manifest.get("dist")?;
            let tarball = base.join(dist.get("tarball")?.as_str()?).ok()?;
            if !matches!(tarball.scheme(), "http" | "https") {
                return None;
            }
            let shasum = text(dist.get("shasum")).filter(|s| is_hex(s, 40));
            let from_sri = text(dist.get("integrity")).and_then(|sri| Integrity::from_sri(&sri));
            let sha512 = match &from_sri {
                Some(Integrity::Sha512(hex)) => Some(hex.clone()),
                _ => None,
            };
            let integrity: Vec<Integrity> = from_sri
                .into_iter()
                .chain(shasum.clone().map(Integrity::Sha1))
                .collect();
            if integrity.is_empty() {
                return None;
            }
            Some(Offered {
                version: version.clone(),
                manifest: manifest.clone(),
                tarball,
                shasum,
                sha512,
                integrity,
                published: text(time.and_then(|t| t.get(version))),
            })
        })
        .collect();
    let dist_tags = document
        .get("dist-tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .filter_map(|(tag, version)| Some((tag.clone(), version.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Some(Packument {
        versions: offered,
        dist_tags,
        created: text(time.and_then(|t| t.get("created"))),
    })
}

/// The feed's packument with its connectors' versions: the feed's own
/// versions as they are (a local version always wins), and every other
/// version the connectors offer (the first to offer one wins), its tarball
/// at `tarball_url(version)` on this server. `latest` is the feed's pinned
/// one, else the higher of the upstreams' `latest` and the feed's highest
/// stable version: an upstream's `npm publish --tag next` of a higher version
/// is not installed by default, and a version uploaded here is. `None` when
/// no version is anywhere.
pub fn merge(
    name: &str,
    local: Option<Package>,
    pinned_latest: bool,
    upstreams: &[Packument],
    tarball_url: impl Fn(&str) -> String,
) -> Option<Package> {
    let mut package = local.unwrap_or_else(|| Package {
        name: name.to_owned(),
        versions: Vec::new(),
        dist_tags: BTreeMap::new(),
        created: String::new(),
        modified: String::new(),
    });
    let local_latest = (!pinned_latest)
        .then(|| {
            let versions = package.versions.iter().map(|v| v.version.as_str());
            latest(FeedType::Npm, versions, true).map(str::to_owned)
        })
        .flatten();
    let mut upstream_latest: Option<String> = None;
    let mut present: HashSet<String> = package.versions.iter().map(|v| v.version.clone()).collect();
    for upstream in upstreams {
        for offered in &upstream.versions {
            if !present.insert(offered.version.clone()) {
                continue;
            }
            package.versions.push(Version {
                version: offered.version.clone(),
                manifest: Some(offered.manifest.clone()),
                tarball: tarball_url(&offered.version),
                shasum: offered.shasum.clone().unwrap_or_default(),
                sha512: offered.sha512.clone().unwrap_or_default(),
                published: offered.published.clone().unwrap_or_default(),
                promotion: None,
            });
        }
        for (tag, version) in &upstream.dist_tags {
            let present = present.contains(version);
            if tag == "latest" {
                if present && upstream_latest.is_none() {
                    upstream_latest = Some(version.clone());
                }
            } else if present && !package.dist_tags.contains_key(tag) {
                package.dist_tags.insert(tag.clone(), version.clone());
            }
        }
        if package.created.is_empty() {
            package.created = upstream.created.clone().unwrap_or_default();
        }
    }
    if package.versions.is_empty() {
        return None;
    }
    if !pinned_latest {
        let chosen = match (local_latest, upstream_latest) {
            (Some(a), Some(b)) => Some(if compare_versions(FeedType::Npm, &a, &b).is_ge() {
                a
            } else {
                b
            }),
            (a, b) => a.or(b),
        };
        // Nothing stable anywhere: the computed one stays as it was.
        if let Some(chosen) = chosen.or_else(|| {
            let versions = package.versions.iter().map(|v| v.version.as_str());
            latest(FeedType::Npm, versions, false).map(str::to_owned)
        }) {
            package.dist_tags.insert("latest".to_owned(), chosen);
        }
    }
    let newest = package
        .versions
        .iter()
        .map(|v| v.published.as_str())
        .max()
        .unwrap_or_default()
        .to_owned();
    if package.modified.as_str() < newest.as_str() {
        package.modified = newest;
    }
    Some(package)
}

fn is_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a package's packument is on an upstream registry at `base`
/// (`@scope%2fname` for a scoped one, as npm asks).
pub fn packument_url(base: &url::Url, full_name: &str) -> Option<url::Url> {
    let path = match full_name.split_once('/') {
        Some((scope, name)) => format!(
            "@{}%2f{}",
            path_segment(scope.strip_prefix('@')?)?,
            path_segment(name)?
        ),
        None => path_segment(full_name)?,
    };
    base.join(&path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_without_a_checkable_tarball_are_not_offered() {
        let base = url::Url::parse("http://up/").unwrap();
        let body = json!({
            "name": "a",
            "dist-tags": {"latest": "1.0.0"},
            "time": {"created": "2020-01-01T00:00:00.000Z", "1.0.0": "2020-01-02T00:00:00.000Z"},
            "versions": {
                "1.0.0": {"name": "a", "version": "1.0.0", "dist": {
                    "tarball": "/a/-/a-1.0.0.tgz", "integrity": "sha512-AP8=",
                    "shasum": "0123456789012345678901234567890123456789"}},
                "2.0.0": {"name": "a", "version": "2.0.0", "dist": {"tarball": "http://up/a-2.tgz"}},
                "3.0.0": {"name": "a", "version": "3.0.0", "dist": {"tarball": "file:///etc/passwd", "shasum": "0123456789012345678901234567890123456789"}}
            }
        });
        let packument = read(&serde_json::to_vec(&body).unwrap(), &base).unwrap();
        assert_eq!(packument.versions.len(), 1);
        let offered = &packument.versions[0];
        assert_eq!(offered.tarball.as_str(), "http://up/a/-/a-1.0.0.tgz");
        assert_eq!(offered.sha512.as_deref(), Some("00ff"));
        assert_eq!(offered.integrity.len(), 2);
        assert_eq!(
            offered.published.as_deref(),
            Some("2020-01-02T00:00:00.000Z")
        );
        assert_eq!(packument.dist_tags["latest"], "1.0.0");
        assert_eq!(
            packument_url(&base, "@s/a").unwrap().as_str(),
            "http://up/@s%2fa"
        );
        assert_eq!(packument_url(&base, ".."), None);
        assert_eq!(
            packument_url(&base, "a?b").unwrap().as_str(),
            "http://up/a%3Fb"
        );
    }

    fn offered(version: &str) -> Offered {
        Offered {
            version: version.into(),
            manifest: json!({"name": "a", "version": version}),
            tarball: url::Url::parse(&format!("http://up/a-{version}.tgz")).unwrap(),
            shasum: Some("ab".into()),
            sha512: None,
            integrity: vec![Integrity::Sha1("ab".into())],
            published: Some(format!("2020-01-0{}T00:00:00.000Z", &version[..1])),
        }
    }

    #[test]
    fn local_versions_win_and_latest_respects_the_upstreams_tag() {
        let upstream = Packument {
            versions: vec![offered("1.0.0"), offered("2.0.0"), offered("3.0.0")],
            dist_tags: [
                ("latest".to_owned(), "2.0.0".to_owned()),
                ("next".to_owned(), "3.0.0".to_owned()),
            ]
            .into(),
            created: Some("2020-01-01T00:00:00.000Z".into()),
        };
        let url = |v: &str| format!("http://here/a-{v}.tgz");
        let merged = merge("a", None, false, std::slice::from_ref(&upstream), url).unwrap();
        assert_eq!(merged.versions.len(), 3);
        assert_eq!(merged.dist_tags["latest"], "2.0.0");
        assert_eq!(merged.dist_tags["next"], "3.0.0");
        assert_eq!(merged.versions[0].tarball, "http://here/a-1.0.0.tgz");
        let full = merged.full();
        assert!(full["versions"]["1.0.0"]["dist"].get("integrity").is_none());
        assert_eq!(full["versions"]["1.0.0"]["dist"]["shasum"], "ab");
        // A higher stable version uploaded here is the latest.
        let mut local = merged.clone();
        local.versions = vec![Version {
            version: "2.5.0".into(),
            ..merged.versions[0].clone()
        }];
        local.dist_tags.clear();
        let with_local = merge(
            "a",
            Some(local),
            false,
            std::slice::from_ref(&upstream),
            url,
        )
        .unwrap();
        assert_eq!(with_local.dist_tags["latest"], "2.5.0");
        assert_eq!(with_local.versions.len(), 4);
        assert!(merge("a", None, false, &[], url).is_none());
    }
}
