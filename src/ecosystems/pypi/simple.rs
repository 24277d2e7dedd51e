//! The simple repository API as data: the project list and each project's
//! page, in PEP 503 HTML and PEP 691 JSON (api-version 1.1: PEP 700's
//! `versions`, `upload-time` and `size`), with PEP 658/714 core metadata,
//! and which of them a client's `Accept` asks for. HTTP is
//! `http::native::pypi`'s.
//!
//! Followed: PEP 503, 629, 658, 691, 700 and 714 as the PyPA's "Simple
//! repository API" specification gathers them; warehouse's
//! `templates/api/simple/detail.html` and `packaging/utils` for what PyPI
//! itself writes; pip's `index/collector.py` and `models/link.py` for what
//! the client reads.

use maud::{html, DOCTYPE};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// PEP 691's JSON form.
pub const JSON: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691's name for the HTML form.
pub const HTML: &str = "application/vnd.pypi.simple.v1+html";
/// PEP 503's HTML, for clients that predate PEP 691.
pub const TEXT_HTML: &str = "text/html";

/// The API version both forms declare (PEP 629; 1.1 is PEP 700's).
const API_VERSION: &str = "1.1";

/// Which form of a page a client's `Accept` asks for (PEP 691's content
/// negotiation): the supported type with the highest quality, the first
/// listed among equals; HTML when the client names no type at all (pip
/// before 22.2, browsers). `None`: nothing the client accepts is served
/// (406).
pub fn negotiate(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(TEXT_HTML);
    };
    let mut best: Option<(f32, &'static str)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.split_once('='))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .find_map(|(_, q)| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let served = match media.as_str() {
            "application/vnd.pypi.simple.v1+json"
            | "application/vnd.pypi.simple.latest+json"
            | "application/*" => JSON,
            "application/vnd.pypi.simple.v1+html" | "application/vnd.pypi.simple.latest+html" => {
                HTML
            }
            "text/html" | "text/*" | "*/*" => TEXT_HTML,
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, served));
        }
    }
    best.map(|(_, served)| served)
}

/// One file on a project's page.
#[derive(Debug, Clone)]
pub struct File {
    pub filename: String,
    /// Absolute, without a fragment.
    pub url: String,
    pub sha256: String,
    /// `Requires-Python` from the file's own metadata.
    pub requires_python: Option<String>,
    /// The SHA-256 of the core metadata served at `{url}.metadata` (wheels).
    pub core_metadata: Option<String>,
    /// When its bytes arrived, as PEP 700 writes it; an upstream's file may
    /// not say (a PEP 503 page), and then it is left out.
    pub upload_time: Option<String>,
    pub size: Option<i64>,
    /// How its version came into the feed (`_promotion`), when by a promotion.
    pub promotion: Option<Value>,
}

/// A project's page: its name, every version with a file, and its files.
#[derive(Debug, Clone)]
pub struct Project {
    /// The name as the project spells it.
    pub name: String,
    /// PEP 503's normalised form, which names the page.
    pub normalized: String,
    /// In PEP 440's order.
    pub versions: Vec<String>,
    pub files: Vec<File>,
}

impl File {
    /// `sha256=HEX` of the core metadata, as the HTML attributes write it.
    fn core_metadata_attribute(&self) -> Option<String> {
        self.core_metadata
            .as_ref()
            .map(|hash| format!("sha256={hash}"))
    }
}

impl Project {
    /// PEP 691's JSON. `core-metadata` is PEP 714's name; pip before 23.2
    /// reads PEP 658's `dist-info-metadata`, which PyPI still writes too.
    pub fn json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|file| {
                let metadata = match &file.core_metadata {
                    Some(hash) => json!({ "sha256": hash }),
                    None => Value::Bool(false),
                };
                let mut entry = Map::new();
                entry.insert("filename".into(), json!(file.filename));
                entry.insert("url".into(), json!(file.url));
                entry.insert("hashes".into(), json!({ "sha256": file.sha256 }));
                if let Some(requires) = &file.requires_python {
                    entry.insert("requires-python".into(), json!(requires));
                }
                entry.insert("core-metadata".into(), metadata.clone());
                entry.insert("dist-info-metadata".into(), metadata);
                entry.insert("yanked".into(), Value::Bool(false));
                if let Some(time) = &file.upload_time {
                    entry.insert("upload-time".into(), json!(time));
                }
                if let Some(size) = file.size {
                    entry.insert("size".into(), json!(size));
                }
                if let Some(promotion) = &file.promotion {
                    entry.insert("_promotion".into(), promotion.clone());
                }
                Value::Object(entry)
            })
            .collect();
        json!({
            "meta": { "api-version": API_VERSION },
            "name": self.normalized,
            "versions": self.versions,
            "files": files,
        })
    }

    /// PEP 503's page: an anchor per file, its SHA-256 in the fragment, and
    /// the `data-` attributes PEP 503, 658 and 714 add (maud escapes them,
    /// so `>=3.8` is `&gt;=3.8`).
    pub fn html(&self) -> String {
        html! {
            (DOCTYPE)
            html {
                head {
                    meta name="pypi:repository-version" content=(API_VERSION);
                    title { "Links for " (self.name) }
                }
                body {
                    h1 { "Links for " (self.name) }
                    @for file in &self.files {
                        a href=(format!("{}#sha256={}", file.url, file.sha256))
                            data-requires-python=[file.requires_python.as_deref()]
                            data-dist-info-metadata=[file.core_metadata_attribute()]
                            data-core-metadata=[file.core_metadata_attribute()]
                            { (file.filename) }
                        br;
                    }
                }
            }
        }
        .into_string()
    }
}

/// One project in the list of every project (`/simple/`).
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    /// Its page, absolute.
    pub url: String,
}

/// The project list in PEP 691's JSON.
pub fn index_json(projects: &[Listed]) -> Value {
    json!({
        "meta": { "api-version": API_VERSION },
        "projects": projects.iter().map(|p| json!({ "name": p.name })).collect::<Vec<_>>(),
    })
}

/// The project list in PEP 503's HTML.
pub fn index_html(projects: &[Listed]) -> String {
    html! {
        (DOCTYPE)
        html {
            head {
                meta name="pypi:repository-version" content=(API_VERSION);
                title { "Simple index" }
            }
            body {
                @for project in projects {
                    a href=(project.url) { (project.name) }
                    br;
                }
            }
        }
    }
    .into_string()
}

/// The SHA-256 of core metadata as served (PEP 658: of the file's bytes).
pub fn metadata_sha256(metadata: &str) -> String {
    hex::encode(Sha256::digest(metadata.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_pep_691() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(Some(pip)), Some(JSON));
        assert_eq!(negotiate(None), Some(TEXT_HTML));
        assert_eq!(negotiate(Some("*/*")), Some(TEXT_HTML));
        assert_eq!(
            negotiate(Some("text/html, application/vnd.pypi.simple.v1+html")),
            Some(TEXT_HTML)
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html"
            )),
            Some(HTML)
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.latest+json")),
            Some(JSON)
        );
        assert_eq!(negotiate(Some("application/xml")), None);
        assert_eq!(negotiate(Some("text/html;q=0")), None);
        assert_eq!(
            negotiate(Some("text/html;Q=0.1, application/*")),
            Some(JSON)
        );
    }

    fn project() -> Project {
        Project {
            name: "Foo.Bar".into(),
            normalized: "foo-bar".into(),
            versions: vec!["1.0".into()],
            files: vec![File {
                filename: "foo_bar-1.0-py3-none-any.whl".into(),
                url: "http://h/pypi/f/download/foo-bar/1.0/foo_bar-1.0-py3-none-any.whl".into(),
                sha256: "ab".repeat(32),
                requires_python: Some(">=3.8, <4".into()),
                core_metadata: Some("cd".repeat(32)),
                upload_time: Some("2026-12-04T10:00:00.000000Z".into()),
                size: Some(12),
                promotion: None,
            }],
        }
    }

    #[test]
    fn html_escapes_requires_python_and_carries_the_hashes() {
        let page = project().html();
        assert!(
            page.contains("data-requires-python=\"&gt;=3.8, &lt;4\""),
            "{page}"
        );
        assert!(
            page.contains(&format!("#sha256={}\"", "ab".repeat(32))),
            "{page}"
        );
        assert!(page.contains(&format!(
            "data-core-metadata=\"sha256={}\"",
            "cd".repeat(32)
        )));
        assert!(page.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));
    }

    #[test]
    fn json_is_api_version_1_1() {
        let json = project().json();
        assert_eq!(json["meta"]["api-version"], "1.1");
        assert_eq!(json["name"], "foo-bar");
        assert_eq!(json["versions"], json!(["1.0"]));
        let file = &json["files"][0];
        assert_eq!(file["requires-python"], ">=3.8, <4");
        assert_eq!(file["core-metadata"]["sha256"], "cd".repeat(32));
        assert_eq!(file["size"], 12);
        assert!(file.get("_promotion").is_none());
    }
}
