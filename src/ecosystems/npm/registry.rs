//! The npm registry protocol as data: the packument (full and abbreviated),
//! what `npm publish` sends, tarball file names and dist-tags. HTTP is
//! `http::native::npm`'s; this file knows what the documents look like.
//!
//! Followed: npm's registry API (`registry/docs/responses/package-metadata.md`
//! in npm/registry), Verdaccio's `packages/store` and `api/publish` for what a
//! server adds to the manifest, and npm-registry-fetch / pacote for what the
//! client reads.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The media type of the abbreviated packument ("corgi"), which npm asks for
/// when it installs.
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// The fields of a version that an install reads: what the abbreviated
/// packument keeps (npm/registry's `package-metadata.md`, and pacote's
/// `corgiDoc`), beside `name`, `version` and `dist`.
const INSTALL_FIELDS: &[&str] = &[
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "acceptDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "deprecated",
    "funding",
    "license",
    "libc",
];

/// One version of a package as a feed holds it.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: String,
    /// The tarball's own `package.json`, as it arrived.
    pub manifest: Option<Value>,
    pub tarball: String,
    /// SHA-1 in hex.
    pub shasum: String,
    /// SHA-512 in hex.
    pub sha512: String,
    /// When its bytes arrived (RFC 3339).
    pub published: String,
    /// How it came into the feed (`_promotion`), when by a promotion.
    pub promotion: Option<Value>,
}

/// A whole package in one feed, for its packument.
#[derive(Debug, Clone)]
pub struct Package {
    /// The full name: `@scope/name` or `name`.
    pub name: String,
    pub versions: Vec<Version>,
    pub dist_tags: BTreeMap<String, String>,
    pub created: String,
    pub modified: String,
}

/// `sha512-BASE64`, as `dist.integrity` and lockfiles write it (SRI).
pub fn integrity(sha512_hex: &str) -> String {
    let bytes = hex::decode(sha512_hex).unwrap_or_default();
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The tarball's file name: `name-1.0.0.tgz`, without the scope (npm's own
/// URLs: `/@scope/name/-/name-1.0.0.tgz`).
pub fn tarball_file_name(name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    format!("{bare}-{version}.tgz")
}

/// The version a tarball's file name stands for, if it is this package's.
pub fn version_of_tarball<'a>(name: &str, file_name: &'a str) -> Option<&'a str> {
    let bare = name.rsplit('/').next().unwrap_or(name);
    file_name
        .strip_prefix(bare)?
        .strip_prefix('-')?
        .strip_suffix(".tgz")
        .filter(|version| !version.is_empty())
}

/// Whether the version's manifest declares an install script: what
/// `hasInstallScript` says in the abbreviated form (npm's registry computes
/// it the same way).
fn has_install_script(manifest: &Map<String, Value>) -> bool {
    manifest
        .get("scripts")
        .and_then(Value::as_object)
        .is_some_and(|scripts| {
            ["preinstall", "install", "postinstall"]
                .iter()
                .any(|script| scripts.contains_key(*script))
        })
}

impl Version {
    /// `dist` as npm checks it (an upstream's version may have no SHA-512,
    /// and then no `integrity`: npm checks `shasum`).
    fn dist(&self) -> Value {
        let mut dist = serde_json::json!({
            "tarball": self.tarball,
            "shasum": self.shasum,
        });
        if !self.sha512.is_empty() {
            dist["integrity"] = Value::from(integrity(&self.sha512));
        }
        dist
    }

    /// The manifest without what the server owns: fields beginning with `_`
    /// and `dist` are the registry's to write, never the publisher's.
    fn own_fields(&self, name: &str) -> Map<String, Value> {
        let mut fields = match &self.manifest {
            Some(Value::Object(fields)) => fields.clone(),
            _ => Map::new(),
        };
        fields.retain(|field, _| !field.starts_with('_') && field != "dist");
        fields.insert("name".into(), Value::from(name));
        fields.insert("version".into(), Value::from(self.version.as_str()));
        fields
    }

    fn full(&self, name: &str) -> Value {
        let mut fields = self.own_fields(name);
        fields.insert(
            "_id".into(),
            Value::from(format!("{name}@{}", self.version)),
        );
        fields.insert("dist".into(), self.dist());
        if let Some(promotion) = &self.promotion {
            fields.insert("_promotion".into(), promotion.clone());
        }
        Value::Object(fields)
    }

    fn abbreviated(&self, name: &str) -> Value {
        let own = self.own_fields(name);
        let mut fields = Map::new();
        for field in ["name", "version"].iter().chain(INSTALL_FIELDS) {
            if let Some(value) = own.get(*field) {
                fields.insert((*field).into(), value.clone());
            }
        }
        if has_install_script(&own) {
            fields.insert("hasInstallScript".into(), Value::Bool(true));
        }
        fields.insert("dist".into(), self.dist());
        if let Some(promotion) = &self.promotion {
            fields.insert("_promotion".into(), promotion.clone());
        }
        Value::Object(fields)
    }
}

impl Package {
    /// The full packument (`GET /{name}` with `Accept: application/json`).
    pub fn full(&self) -> Value {
        let mut time = Map::new();
        time.insert("created".into(), Value::from(self.created.as_str()));
        time.insert("modified".into(), Value::from(self.modified.as_str()));
        let mut versions = Map::new();
        for version in &self.versions {
            time.insert(
                version.version.clone(),
                Value::from(version.published.as_str()),
            );
            versions.insert(version.version.clone(), version.full(&self.name));
        }
        serde_json::json!({
            "_id": self.name,
            "name": self.name,
            "dist-tags": self.dist_tags,
            "versions": versions,
            "time": time,
        })
    }

    /// The abbreviated packument that `npm install` asks for.
    pub fn abbreviated(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|v| (v.version.clone(), v.abbreviated(&self.name)))
            .collect();
        serde_json::json!({
            "name": self.name,
            "modified": self.modified,
            "dist-tags": self.dist_tags,
            "versions": versions,
        })
    }
}

/// What `npm publish` sends (`PUT /{name}`): one version, its dist-tags, and
/// the tarball as a base64 attachment (libnpmpublish's `buildMetadata`). The
/// base64 text is borrowed from the body, not copied.
#[derive(Debug, Deserialize)]
struct PublishDocument<'a> {
    name: Option<String>,
    #[serde(default)]
    versions: BTreeMap<String, serde::de::IgnoredAny>,
    #[serde(rename = "dist-tags", default)]
    dist_tags: BTreeMap<String, Value>,
    #[serde(rename = "_attachments", default, borrow)]
    attachments: BTreeMap<String, Attachment<'a>>,
}

#[derive(Debug, Deserialize)]
struct Attachment<'a> {
    #[serde(borrow)]
    data: Option<std::borrow::Cow<'a, str>>,
    length: Option<u64>,
}

/// A publish, read from its document.
#[derive(Debug)]
pub struct Publish {
    pub version: String,
    pub tarball: Vec<u8>,
    /// Tags to point at the version (`npm publish --tag beta`; npm sends
    /// `latest` when no tag is named).
    pub tags: Vec<String>,
}

/// Why a `PUT /{name}` is not a publish this server takes.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishRefusal {
    /// A document without a tarball: `npm deprecate` (or an unpublish)
    /// rewriting the packument, which this server does not allow.
    NotAPublish,
    /// The one sentence npm shows, naming the field.
    Invalid(String),
}

/// What npm shows for an unpublish or deprecate (contract section 13).
pub const NOT_A_PUBLISH: &str = "Unpublishing and deprecating through npm are not supported: delete a version with `pgutil packages delete` (DELETE /api/packages/{feed}/delete) instead.";

/// Reads `npm publish`'s document for package `name` (from the URL).
pub fn read_publish(name: &str, body: &[u8]) -> Result<Publish, PublishRefusal> {
    let invalid = PublishRefusal::Invalid;
    let document: PublishDocument = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The publish document is not valid JSON: {e}.")))?;
    if let Some(claimed) = &document.name {
        if claimed != name {
            return Err(invalid(format!(
                "The document's \"name\" is \"{claimed}\", but the URL names \"{name}\"."
            )));
        }
    }
    if document.attachments.is_empty() {
        return Err(PublishRefusal::NotAPublish);
    }
    read_attachment(name, document).map_err(invalid)
}

fn read_attachment(name: &str, document: PublishDocument) -> Result<Publish, String> {
    let mut versions = document.versions.keys();
    let version = match (versions.next(), versions.next()) {
        (Some(version), None) => version.clone(),
        _ => return Err("Field \"versions\" must hold exactly one version.".to_owned()),
    };
    let mut attachments = document.attachments.iter();
    let (file_name, attachment) = match (attachments.next(), attachments.next()) {
        (Some(one), None) => one,
        _ => return Err("Field \"_attachments\" must hold exactly one tarball.".to_owned()),
    };
    // libnpmpublish names the attachment after the full name
    // (`@scope/name-1.0.0.tgz`); the tarball URL drops the scope.
    let named = *file_name == format!("{name}-{version}.tgz")
        || version_of_tarball(name, file_name) == Some(version.as_str());
    if !named {
        return Err(format!(
            "Field \"_attachments\" names \"{file_name}\", not the tarball of {name}@{version}."
        ));
    }
    let data = attachment
        .data
        .as_deref()
        .ok_or("Field \"_attachments\" has no base64 \"data\".")?;
    let tarball = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| "Field \"_attachments\" has \"data\" that is not base64.".to_owned())?;
    if let Some(length) = attachment.length {
        if length != tarball.len() as u64 {
            return Err(format!(
                "Field \"_attachments\" says the tarball has {length} bytes, but its data has {}.",
                tarball.len()
            ));
        }
    }
    let mut tags = Vec::new();
    for (tag, target) in &document.dist_tags {
        if target.as_str() == Some(version.as_str()) {
            tags.push(check_tag(tag)?.to_owned());
        }
    }
    Ok(Publish {
        version,
        tarball,
        tags,
    })
}

/// A dist-tag as npm allows one: not empty, no slashes or spaces, and not
/// something npm would read as a version or range (`npm dist-tag add` refuses
/// those too, since `pkg@1.0.0` would then be ambiguous).
pub fn check_tag(tag: &str) -> Result<&str, String> {
    let valid = !tag.is_empty()
        && tag.len() <= 100
        && !tag.chars().any(|c| c.is_whitespace() || c.is_control())
        && !tag.contains(['/', '%', '\\'])
        && semver::VersionReq::parse(tag).is_err()
        && semver::Version::parse(tag.trim_start_matches(['v', '='])).is_err();
    if valid {
        Ok(tag)
    } else {
        Err(format!(
            "Tag \"{tag}\" is not a valid dist-tag: use a word such as \"beta\", not a version or range."
        ))
    }
}

/// The dist-tags a packument shows: the tags set on versions still in the
/// feed, and `latest` as set or else the highest stable version (any version
/// when none is stable), in the ecosystem's order.
pub fn dist_tags(
    set: impl IntoIterator<Item = (String, String)>,
    computed_latest: Option<&str>,
) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = set.into_iter().collect();
    if !tags.contains_key("latest") {
        if let Some(latest) = computed_latest {
            tags.insert("latest".into(), latest.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str, manifest: Value) -> Version {
        Version {
            version: v.into(),
            manifest: Some(manifest),
            tarball: format!("http://h/npm/f/a/-/a-{v}.tgz"),
            shasum: "ab".into(),
            sha512: "00ff".into(),
            published: "2026-12-04T00:00:00Z".into(),
            promotion: None,
        }
    }

    #[test]
    fn integrity_is_sri_base64() {
        assert_eq!(integrity("00ff"), "sha512-AP8=");
    }

    #[test]
    fn tarball_names_drop_the_scope() {
        assert_eq!(tarball_file_name("@s/a", "1.0.0"), "a-1.0.0.tgz");
        assert_eq!(
            version_of_tarball("@s/a", "a-1.0.0-rc.1.tgz"),
            Some("1.0.0-rc.1")
        );
        assert_eq!(version_of_tarball("a", "b-1.0.0.tgz"), None);
        assert_eq!(version_of_tarball("a", "a-.tgz"), None);
    }

    #[test]
    fn the_server_owns_underscored_fields_and_dist() {
        let v = version(
            "1.0.0",
            serde_json::json!({"name": "evil", "version": "9", "_promotion": {"id": 1},
                "dist": {"tarball": "http://elsewhere"}, "main": "index.js",
                "scripts": {"postinstall": "x"}, "dependencies": {"b": "^1"}}),
        );
        let full = v.full("a");
        assert_eq!(full["name"], "a");
        assert_eq!(full["version"], "1.0.0");
        assert_eq!(full["_id"], "a@1.0.0");
        assert!(full.get("_promotion").is_none());
        assert_eq!(full["dist"]["tarball"], "http://h/npm/f/a/-/a-1.0.0.tgz");
        assert_eq!(full["main"], "index.js");
        let short = v.abbreviated("a");
        assert!(short.get("main").is_none());
        assert_eq!(short["hasInstallScript"], true);
        assert_eq!(short["dependencies"]["b"], "^1");
    }

    #[test]
    fn publish_documents_are_read_and_checked() {
        let tgz = base64::engine::general_purpose::STANDARD.encode(b"bytes");
        let doc = |name: &str, file: &str, length: usize| {
            serde_json::json!({
                "name": name, "versions": {"1.0.0": {}},
                "dist-tags": {"beta": "1.0.0", "old": "0.9.0"},
                "_attachments": {file: {"data": tgz, "length": length}}
            })
            .to_string()
        };
        let publish = read_publish("@s/a", doc("@s/a", "@s/a-1.0.0.tgz", 5).as_bytes()).unwrap();
        assert_eq!(publish.tarball, b"bytes");
        assert!(read_publish("@s/a", doc("@s/a", "a-1.0.0.tgz", 5).as_bytes()).is_ok());
        assert_eq!(publish.tags, ["beta"]);
        let refusal = |document: String| match read_publish("@s/a", document.as_bytes()) {
            Err(PublishRefusal::Invalid(sentence)) => sentence,
            other => panic!("{other:?}"),
        };
        assert!(refusal(doc("@s/b", "a-1.0.0.tgz", 5)).contains("\"name\""));
        assert!(refusal(doc("@s/a", "a-2.0.0.tgz", 5)).contains("_attachments"));
        assert!(refusal(doc("@s/a", "a-1.0.0.tgz", 6)).contains("6 bytes"));
        assert_eq!(
            read_publish("a", br#"{"versions": {"1.0.0": {"deprecated": "x"}}}"#).unwrap_err(),
            PublishRefusal::NotAPublish
        );
    }

    #[test]
    fn tags_are_words_not_versions() {
        for good in ["beta", "next", "latest", "v2-line"] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", "1.0.0", "v1.0.0", "^1.2", ">=1", "a/b", "a b", "1.x"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn latest_is_computed_unless_set() {
        let tags = dist_tags([("beta".into(), "2.0.0-b".into())], Some("1.0.0"));
        assert_eq!(tags["latest"], "1.0.0");
        let tags = dist_tags([("latest".into(), "0.9.0".into())], Some("1.0.0"));
        assert_eq!(tags["latest"], "0.9.0");
        assert_eq!(
            version("1.0.0", Value::Null).full("a")["dist"]["integrity"],
            "sha512-AP8="
        );
    }
}
