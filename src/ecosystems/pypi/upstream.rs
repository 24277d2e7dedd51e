//! An upstream PyPI index's project page, as a connector reads it (contract
//! section 16): PEP 691's JSON when the upstream speaks it, else PEP 503's
//! HTML (pypiserver, older indexes). Only wheels and sdists with a SHA-256
//! are offered, since a file that cannot be checked is never cached; yanked
//! files (PEP 592) are left out. Merging them into the feed's page is
//! `http::native::pypi`'s.

use std::collections::HashSet;

use serde_json::Value;

use super::normalise;
use super::simple::{File, Project};
use crate::ecosystems::{compare_versions, path_segment, sort_in_order, FeedType};

/// What a connector asks a project page for: JSON first, HTML from an index
/// that has no JSON.
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, text/html;q=0.1";

/// One file an upstream offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub filename: String,
    pub version: String,
    /// Where the upstream keeps it (absolute).
    pub url: url::Url,
    pub sha256: String,
    pub requires_python: Option<String>,
    pub upload_time: Option<String>,
    pub size: Option<i64>,
}

/// The project page of `project` (PEP 503-normalised) on an index whose
/// simple root is `base`.
pub fn page_url(base: &url::Url, project: &str) -> Option<url::Url> {
    base.join(&format!("{}/", path_segment(project)?)).ok()
}

/// The files a project page offers; `page` is where it was read from, which
/// relative URLs are resolved against.
pub fn read(body: &[u8], page: &url::Url, project: &str) -> Vec<Offered> {
    let text = String::from_utf8_lossy(body);
    let links: Vec<Link> = if text.trim_start().starts_with('{') {
        json_links(&text)
    } else {
        html_links(&text)
    };
    links
        .into_iter()
        .filter(|link| !link.yanked)
        .filter_map(|link| {
            let (href, fragment) = match link.href.split_once('#') {
                Some((href, fragment)) => (href, Some(fragment)),
                None => (link.href.as_str(), None),
            };
            let sha256 = link
                .sha256
                .or_else(|| fragment?.strip_prefix("sha256=").map(str::to_owned))
                .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))?
                .to_ascii_lowercase();
            let url = page.join(href).ok()?;
            if !matches!(url.scheme(), "http" | "https") {
                return None;
            }
            let filename = link.filename.trim().to_owned();
            let version = version_of(&filename, project)?;
            Some(Offered {
                filename,
                version,
                url,
                sha256,
                requires_python: link.requires_python.filter(|r| !r.is_empty()),
                upload_time: link.upload_time,
                size: link.size,
            })
        })
        .collect()
}

/// The feed's page of `project` with its connectors' files: the feed's own
/// files as they are, and every other file the connectors offer (the first
/// to offer a file name wins), except for versions `owned` (their keys):
/// those with a file put here rather than cached, to which no upstream adds
/// a file (a wheel beside an uploaded sdist would be what pip picks), at `url_for(file)` on this server, in PEP
/// 440's order. `None` when no file is anywhere.
pub fn merge(
    project: &str,
    local: Option<Project>,
    owned: &HashSet<String>,
    upstreams: Vec<Offered>,
    url_for: impl Fn(&Offered) -> String,
) -> Option<Project> {
    let mut page = local.unwrap_or_else(|| Project {
        name: project.to_owned(),
        normalized: project.to_owned(),
        versions: Vec::new(),
        files: Vec::new(),
    });
    let mut seen: HashSet<String> = page.files.iter().map(|f| f.filename.clone()).collect();
    let mut seen_versions: HashSet<String> = page.versions.iter().map(|v| version_key(v)).collect();
    for offered in upstreams {
        if owned.contains(&version_key(&offered.version)) || !seen.insert(offered.filename.clone())
        {
            continue;
        }
        if seen_versions.insert(version_key(&offered.version)) {
            page.versions.push(offered.version.clone());
        }
        page.files.push(File {
            url: url_for(&offered),
            filename: offered.filename,
            sha256: offered.sha256,
            requires_python: offered.requires_python,
            core_metadata: None,
            upload_time: offered.upload_time,
            size: offered.size,
            promotion: None,
        });
    }
    if page.files.is_empty() {
        return None;
    }
    let order = |a: &String, b: &String| compare_versions(FeedType::Pypi, a, b);
    page.versions = sort_in_order(page.versions, &order);
    let versions = page.versions.clone();
    let rank = |file: &File| {
        let version = version_of(&file.filename, project).unwrap_or_default();
        versions
            .iter()
            .position(|v| *v == version)
            .unwrap_or(usize::MAX)
    };
    page.files.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.filename.cmp(&b.filename))
    });
    Some(page)
}

/// A version as PEP 440 compares it.
fn version_key(version: &str) -> String {
    crate::ecosystems::version_key(FeedType::Pypi, version)
}

/// A file's version, from its name: a wheel's second part (PEP 427), or what
/// follows the project's name in an sdist's (PEP 625, and the older
/// spellings whose name part normalises to the project's).
pub fn version_of(filename: &str, project: &str) -> Option<String> {
    if filename.contains('/') || filename.contains('\\') {
        return None;
    }
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) || normalise(parts[0]) != project {
            return None;
        }
        return Some(parts[1].to_owned());
    }
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    stem.char_indices()
        .filter(|(_, c)| *c == '-')
        .find(|(i, _)| normalise(&stem[..*i]) == project)
        .map(|(i, _)| stem[i + 1..].to_owned())
        .filter(|version| !version.is_empty())
}

struct Link {
    filename: String,
    href: String,
    sha256: Option<String>,
    requires_python: Option<String>,
    upload_time: Option<String>,
    size: Option<i64>,
    yanked: bool,
}

fn json_links(text: &str) -> Vec<Link> {
    let Ok(page) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let files = page.get("files").and_then(Value::as_array);
    files
        .into_iter()
        .flatten()
        .filter_map(|file| {
            let text = |field: &str| file.get(field).and_then(Value::as_str).map(str::to_owned);
            Some(Link {
                filename: text("filename")?,
                href: text("url")?,
                sha256: file
                    .get("hashes")
                    .and_then(|h| h.get("sha256"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                requires_python: text("requires-python"),
                upload_time: text("upload-time"),
                size: file.get("size").and_then(Value::as_i64),
                // `yanked` is false or a reason (PEP 592, 691).
                yanked: file
                    .get("yanked")
                    .is_some_and(|y| y.as_bool() != Some(false) && !y.is_null()),
            })
        })
        .collect()
}

/// PEP 503's anchors: `<a href="…#sha256=…" data-requires-python="…">name</a>`.
/// A small reader for what indexes write, not a general HTML parser.
fn html_links(text: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a ").map(|i| at + i) {
        let Some(tag_end) = lower[start..].find('>').map(|i| start + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| tag_end + i) else {
            break;
        };
        let tag = &text[start + 3..tag_end];
        let attribute = |name: &str| attribute(tag, name).map(|v| unescape(&v));
        if let Some(href) = attribute("href") {
            links.push(Link {
                filename: unescape(&text[tag_end + 1..close]),
                href,
                sha256: None,
                requires_python: attribute("data-requires-python"),
                upload_time: None,
                size: None,
                yanked: attribute("data-yanked").is_some(),
            });
        }
        at = close + 4;
    }
    links
}

/// An attribute's value in a tag's text (`name="v"`, `name='v'`, `name=v`,
/// or `name` alone, whose value is empty).
fn attribute(tag: &str, wanted: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return None;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let value = match rest.strip_prefix('=') {
            Some(after) => {
                let after = after.trim_start();
                match after.chars().next() {
                    Some(quote @ ('"' | '\'')) => {
                        let end = after[1..].find(quote).map_or(after.len(), |i| i + 1);
                        rest = after.get(end + 1..).unwrap_or_default();
                        after[1..end].to_owned()
                    }
                    _ => {
                        let end = after.find(char::is_whitespace).unwrap_or(after.len());
                        rest = &after[end..];
                        after[..end].to_owned()
                    }
                }
            }
            None => String::new(),
        };
        if name.eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn versions_come_from_file_names() {
        assert_eq!(
            version_of("left_pad-1.0.0-py3-none-any.whl", "left-pad").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            version_of("Left.Pad-1.0.0.tar.gz", "left-pad").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            version_of("left-pad-2.0rc1.zip", "left-pad").as_deref(),
            Some("2.0rc1")
        );
        assert_eq!(version_of("other-1.0.tar.gz", "left-pad"), None);
        assert_eq!(version_of("left_pad-1.0.exe", "left-pad"), None);
        assert_eq!(version_of("../left_pad-1.0.tar.gz", "left-pad"), None);
    }

    #[test]
    fn html_pages_as_pypiserver_writes_them() {
        let page = url::Url::parse("http://up/simple/left-pad/").unwrap();
        let html = format!(
            "<html><body><h1>Links for left-pad</h1>\
             <a href=\"../../packages/left_pad-1.0.0-py3-none-any.whl#sha256={HASH}\" data-requires-python=\"&gt;=3.8\">left_pad-1.0.0-py3-none-any.whl</a><br>\
             <a href=\"/packages/left_pad-0.9.tar.gz\">left_pad-0.9.tar.gz</a><br>\
             <A HREF='http://files/left_pad-1.1.tar.gz#sha256={HASH}' data-yanked>left_pad-1.1.tar.gz</A>\
             </body></html>"
        );
        let offered = read(html.as_bytes(), &page, "left-pad");
        assert_eq!(offered.len(), 1, "{offered:?}");
        assert_eq!(
            offered[0].url.as_str(),
            "http://up/packages/left_pad-1.0.0-py3-none-any.whl"
        );
        assert_eq!(offered[0].version, "1.0.0");
        assert_eq!(offered[0].requires_python.as_deref(), Some(">=3.8"));
    }

    #[test]
    fn local_files_win_and_the_page_stays_in_version_order() {
        let offered = |file: &str, version: &str| Offered {
            filename: file.into(),
            version: version.into(),
            url: url::Url::parse(&format!("http://up/{file}")).unwrap(),
            sha256: HASH.into(),
            requires_python: None,
            upload_time: None,
            size: None,
        };
        let url = |o: &Offered| format!("http://here/{}", o.filename);
        let none = HashSet::new();
        let page = merge(
            "left-pad",
            None,
            &none,
            vec![
                offered("left_pad-1.10.tar.gz", "1.10"),
                offered("left_pad-1.9.tar.gz", "1.9"),
            ],
            url,
        )
        .unwrap();
        assert_eq!(page.versions, ["1.9", "1.10"]);
        assert_eq!(page.files[0].url, "http://here/left_pad-1.9.tar.gz");
        let owned: HashSet<String> = ["1.9".to_owned()].into();
        let again = merge(
            "left-pad",
            Some(page.clone()),
            &owned,
            vec![offered("left_pad-1.9.tar.gz", "1.9")],
            url,
        )
        .unwrap();
        assert_eq!(again.files.len(), 2);
        let cached_only = merge(
            "left-pad",
            Some(page.clone()),
            &none,
            vec![offered("left_pad-1.9-py3-none-any.whl", "1.9")],
            url,
        )
        .unwrap();
        assert_eq!(
            cached_only.files.len(),
            3,
            "a version only cached gets its other files"
        );
        assert!(merge("left-pad", None, &none, Vec::new(), url).is_none());
    }

    #[test]
    fn json_pages_as_pep_691_writes_them() {
        let page = url::Url::parse("http://up/simple/left-pad/").unwrap();
        let json = serde_json::json!({"meta": {"api-version": "1.1"}, "name": "left-pad", "files": [
            {"filename": "left_pad-1.0.0.tar.gz", "url": "https://files/l.tgz", "hashes": {"sha256": HASH}, "size": 10, "yanked": false},
            {"filename": "left_pad-0.1.tar.gz", "url": "https://files/o.tgz", "hashes": {"sha256": HASH}, "yanked": "broken"},
            {"filename": "left_pad-0.2.tar.gz", "url": "https://files/p.tgz", "hashes": {"md5": "x"}}
        ]});
        let offered = read(&serde_json::to_vec(&json).unwrap(), &page, "left-pad");
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].size, Some(10));
        assert_eq!(offered[0].url.as_str(), "https://files/l.tgz");
    }
}
