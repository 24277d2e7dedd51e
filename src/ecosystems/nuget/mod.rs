//! NuGet packages (also Chocolatey and PowerShell feeds, whose packages are
//! NuGet packages): the identity a `.nupkg`'s `.nuspec` gives, read as NuGet's
//! own XML reader reads it, and kept whole with the file's record; NuGet's
//! versions; and the v3 protocol's documents (`v3`).

pub mod upstream;
pub mod v3;

use std::io::{Read, Seek};

use quick_xml::events::{BytesRef, Event};

use super::archive::bounded_text;
use super::zip::ZipArchive;
use super::Found;

pub(super) fn identity(file: impl Read + Seek) -> Result<Found, String> {
    let mut archive = ZipArchive::open(file, "a .nupkg (a zip archive)")?;
    let mut nuspecs = archive
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, entry)| {
            !entry.name.contains('/') && entry.name.to_ascii_lowercase().ends_with(".nuspec")
        })
        .map(|(index, _)| index);
    let nuspec = nuspecs
        .next()
        .ok_or("is not a NuGet package: it has no .nuspec at its root")?;
    if nuspecs.next().is_some() {
        return Err(
            "is refused: it holds more than one .nuspec at its root, and tools disagree on which one counts"
                .to_owned(),
        );
    }
    let text = bounded_text(archive.open_entry(nuspec, ".nuspec")?, ".nuspec")?;
    let id = xml_text(&text, &["package", "metadata", "id"])?
        .ok_or("is not a NuGet package: its .nuspec has no <id>")?;
    let version = xml_text(&text, &["package", "metadata", "version"])?
        .ok_or("is not a NuGet package: its .nuspec has no <version>")?;
    // PostgreSQL's text holds no NUL, and no .nuspec needs one.
    if text.contains('\0') {
        return Err("has a .nuspec holding a NUL character".to_owned());
    }
    Ok(Found {
        group: None,
        name: id,
        version,
        qualifier: String::new(),
        metadata: Some(text),
    })
}

/// NuGet compares ids and versions without regard to case
/// (`Newtonsoft.Json` is `newtonsoft.json`): the stored key is lower case.
pub(super) fn key(text: &str) -> String {
    text.to_lowercase()
}

/// The text of the element at `path` (local names, namespaces ignored), read
/// as NuGet's XML parser reads it: all its text and CDATA, references
/// resolved, comments and processing instructions contributing nothing, then
/// trimmed. Anything NuGet would refuse or read otherwise is refused: a
/// DOCTYPE, an undefined entity, an element inside, the element twice.
pub(super) fn xml_text(text: &str, path: &[&str]) -> Result<Option<String>, String> {
    let invalid = |why: String| format!("has a .nuspec that is not valid XML ({why})");
    let element = path.last().copied().unwrap_or_default();
    let mut reader = quick_xml::Reader::from_str(text);
    let mut open: Vec<Vec<u8>> = Vec::new();
    // The element's text so far, while inside it.
    let mut inside: Option<String> = None;
    let mut found: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| invalid(e.to_string()))? {
            // NuGet's reader prohibits DTD processing, and a DTD could define
            // entities that this reader would not expand as NuGet's would.
            Event::DocType(_) => {
                return Err(
                    "has a .nuspec with a DOCTYPE declaration, which NuGet refuses to read"
                        .to_owned(),
                )
            }
            Event::Start(_) | Event::Empty(_) if inside.is_some() => {
                return Err(format!(
                    "has a .nuspec whose <{element}> holds an element, which NuGet does not accept"
                ))
            }
            Event::Start(start) => {
                open.push(start.local_name().as_ref().to_vec());
                if at_path(&open, path) {
                    if found.is_some() {
                        return Err(format!("has a .nuspec with two <{element}> elements"));
                    }
                    inside = Some(String::new());
                }
            }
            Event::Empty(start) => {
                open.push(start.local_name().as_ref().to_vec());
                if at_path(&open, path) {
                    if found.is_some() {
                        return Err(format!("has a .nuspec with two <{element}> elements"));
                    }
                    found = Some(String::new());
                }
                open.pop();
            }
            Event::End(_) => {
                // Inside, the only end possible is the element's own: a child
                // was refused, and the parser checks that end names match.
                if let Some(value) = inside.take() {
                    found = Some(value.trim().to_owned());
                }
                open.pop();
            }
            Event::Text(content) => {
                if let Some(value) = &mut inside {
                    value.push_str(
                        &content
                            .xml10_content()
                            .map_err(|e| invalid(e.to_string()))?,
                    );
                }
            }
            Event::CData(content) => {
                if let Some(value) = &mut inside {
                    value.push_str(
                        &content
                            .xml10_content()
                            .map_err(|e| invalid(e.to_string()))?,
                    );
                }
            }
            // Resolved wherever it is: an undefined entity anywhere makes the
            // whole document one NuGet refuses.
            Event::GeneralRef(reference) => {
                let resolved = resolve(&reference).map_err(invalid)?;
                if let Some(value) = &mut inside {
                    value.push_str(&resolved);
                }
            }
            Event::Eof => {
                if inside.is_some() {
                    return Err(invalid(format!("its <{element}> is not closed")));
                }
                return Ok(found);
            }
            _ => {}
        }
    }
}

/// Whether the open elements are `path`.
fn at_path(open: &[Vec<u8>], path: &[&str]) -> bool {
    open.len() == path.len()
        && open
            .iter()
            .zip(path)
            .all(|(name, wanted)| name.as_slice() == wanted.as_bytes())
}

/// What a reference stands for: a character, or one of the five entities XML
/// defines; any other entity would need a DTD, which a .nuspec may not have.
fn resolve(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    quick_xml::escape::resolve_xml_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| format!("the entity &{name}; is not defined"))
}

/// NuGet's versions (NuGet.Versioning's `NuGetVersion`): one to four numbers
/// (`1.0` = `1.0.0` = `1.0.0.0`, leading zeros ignored), SemVer 2.0.0
/// pre-release labels compared without regard to case, build metadata
/// ignored.
pub(super) struct NuGetVersion;

/// A pre-release label: numbers below text, text compared as
/// `StringComparer.OrdinalIgnoreCase` does (upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Label {
    Number(u32),
    Text(String),
}

/// A release above its pre-releases; labels compared one by one, a longer
/// list above its prefix (NuGet's `VersionComparer.CompareReleaseLabels`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Release {
    Pre(Vec<Label>),
    Final,
}

impl super::version::Scheme for NuGetVersion {
    type Key = ([u32; 4], Release);

    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim();
        let (version, metadata) = match version.split_once('+') {
            Some((version, metadata)) => (version, Some(metadata)),
            None => (version, None),
        };
        if metadata.is_some_and(|m| {
            m.split('.')
                .any(|part| part.is_empty() || !part.bytes().all(is_label_byte))
        }) {
            return None;
        }
        let (numbers, labels) = match version.split_once('-') {
            Some((numbers, labels)) => (numbers, Some(labels)),
            None => (version, None),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() > 4 {
            return None;
        }
        let mut release = [0u32; 4];
        for (slot, part) in release.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Int32 parts, as System.Version holds them.
            *slot = part.parse::<i32>().ok()?.try_into().ok()?;
        }
        let Some(labels) = labels else {
            return Some((release, Release::Final));
        };
        let labels = labels
            .split('.')
            .map(|label| {
                let numeric = label.bytes().all(|b| b.is_ascii_digit());
                if label.is_empty()
                    || !label.bytes().all(is_label_byte)
                    || (numeric && label.len() > 1 && label.starts_with('0'))
                {
                    return None;
                }
                // int.TryParse: a number too large for Int32 is compared as text.
                Some(match label.parse::<i32>() {
                    Ok(n) if numeric => Label::Number(n as u32),
                    _ => Label::Text(label.to_ascii_uppercase()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((release, Release::Pre(labels)))
    }

    fn is_prerelease(key: &Self::Key) -> bool {
        matches!(key.1, Release::Pre(_))
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The one spelling of a version as NuGet compares them: its normalized form
/// (three numbers, a fourth only when it is not zero, no metadata), lower
/// case, as NuGet.Client writes versions in feed URLs. `None`: not a NuGet
/// version.
pub(super) fn normalized(version: &str) -> Option<String> {
    use super::version::Scheme;
    let (release, _) = NuGetVersion::parse(version)?;
    let [major, minor, patch, revision] = release;
    let mut text = format!("{major}.{minor}.{patch}");
    if revision != 0 {
        text.push_str(&format!(".{revision}"));
    }
    let version = version.trim();
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    if let Some((_, labels)) = version.split_once('-') {
        text.push('-');
        text.push_str(labels);
    }
    Some(text.to_lowercase())
}

/// Why NuGet would refuse `version`, or `None`.
pub(super) fn refusal(version: &str) -> Option<&'static str> {
    use super::version::Scheme;
    NuGetVersion::parse(version).is_none().then_some(
        "is not a NuGet version (one to four numbers, such as 1.2.3, with an optional -prerelease label)",
    )
}

#[cfg(test)]
mod version_tests {
    use crate::ecosystems::version::is_prerelease;
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// NuGet.Versioning's tests (test/NuGet.Core.Tests/NuGet.Versioning.Test/
    /// VersionComparerTests.cs and NuGetVersionParseTest.cs).
    #[test]
    fn nuget_order() {
        assert_equal(
            FeedType::Nuget,
            &[
                ("1.0", "1.0.0"),
                ("1.0.0", "1.0.0.0"),
                ("1.00.0", "1.0.0"),
                ("1.0.01", "1.0.1"),
                ("1.0.0-BETA", "1.0.0-beta"),
                ("1.0.0-beta+AA", "1.0.0-beta+bb"),
                ("1.0.0+metadata", "1.0.0"),
                ("1.0.0-BETA.X.y.5.77.0+AA", "1.0.0-beta.x.y.5.77.0+bb"),
            ],
        );
        assert_ascending(
            FeedType::Nuget,
            &[
                "0.0.0",
                "1.0.0-0",
                "1.0.0-2",
                "1.0.0-10",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-BETA",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.0.1",
                "1.0.1",
                "1.0.10",
                "1.1",
                "2.0.0.0",
            ],
        );
    }

    /// NuGet.Versioning's NuGetVersionTest.NormalizedVersion and
    /// NuGet.Client's lower-case URLs.
    #[test]
    fn one_version_has_one_key() {
        for (spelling, key) in [
            ("1.0", "1.0.0"),
            ("1.0.0.0", "1.0.0"),
            ("1.00.0", "1.0.0"),
            ("1.0.01", "1.0.1"),
            ("1.0.0.1", "1.0.0.1"),
            ("1.0.0-BETA+meta", "1.0.0-beta"),
            ("1.0-Beta.2", "1.0.0-beta.2"),
        ] {
            assert_eq!(
                super::normalized(spelling).as_deref(),
                Some(key),
                "{spelling}"
            );
        }
        assert_eq!(super::normalized("1.a"), None);
    }

    #[test]
    fn nuget_pre_releases_and_refusals() {
        assert!(is_prerelease(FeedType::Nuget, "1.0.0-beta"));
        assert!(!is_prerelease(FeedType::Chocolatey, "1.0.0.5+meta"));
        for bad in [
            "",
            "1.0.0.0.0",
            "1.a",
            "1.0-",
            "1.0-beta..1",
            "1.0.0-01",
            "a.b.c",
            "1.0+",
        ] {
            assert!(super::refusal(bad).is_some(), "{bad:?}");
        }
        for good in ["1", "1.0", "1.0.0.1", "1.0.0-beta-1.2", "01.0.0"] {
            assert_eq!(super::refusal(good), None, "{good}");
        }
    }
}
