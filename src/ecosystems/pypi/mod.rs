//! Python packages: a wheel's `METADATA` or an sdist's `PKG-INFO`, which must
//! agree with the file's name and is kept with the file's record (the simple
//! API's `requires-python` and PEP 658's core metadata come from it), PEP
//! 503's name normalisation, PEP 440's versions, and the simple repository
//! API (`simple`).

pub mod simple;
pub mod upstream;

use std::io::{Read, Seek};

use super::archive::{tar_entry, zip_named_entry};
use super::Found;

/// A wheel (`NAME-VERSION-…whl`, a zip with `NAME-VERSION.dist-info/METADATA`) or
/// an sdist (`NAME-VERSION.tar.gz` with `NAME-VERSION/PKG-INFO`, or `.zip`).
pub(super) fn identity(file: impl Read + Seek, file_name: &str) -> Result<Found, String> {
    let lower = file_name.to_ascii_lowercase();
    let (stem, metadata) = if is_wheel(file_name) {
        let stem = &file_name[..file_name.len() - 4];
        let mut parts = stem.splitn(3, '-');
        let (name, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let wanted = format!("{name}-{version}.dist-info/METADATA");
        let text = zip_named_entry(file, "a wheel (a zip archive)", &wanted, || {
            format!("is not a wheel: it has no {wanted}")
        })?;
        (format!("{name}-{version}"), text)
    } else if let Some(stem) = lower.strip_suffix(".tar.gz").map(|s| &file_name[..s.len()]) {
        let wanted = format!("{stem}/PKG-INFO");
        let text = tar_entry(file, "an sdist (a .tar.gz)", |path| path == wanted)?
            .ok_or_else(|| format!("is not an sdist: it has no {wanted}"))?;
        (stem.to_owned(), text)
    } else if let Some(stem) = lower.strip_suffix(".zip").map(|s| &file_name[..s.len()]) {
        let wanted = format!("{stem}/PKG-INFO");
        let text = zip_named_entry(file, "an sdist (a zip archive)", &wanted, || {
            format!("is not an sdist: it has no {wanted}")
        })?;
        (stem.to_owned(), text)
    } else {
        return Err(format!(
            "\"{file_name}\" is not a PyPI file name: a wheel ends in .whl, an sdist in .tar.gz or .zip"
        ));
    };
    // PostgreSQL's text holds no NUL, and no metadata needs one.
    if metadata.contains('\0') {
        return Err("has core metadata holding a NUL character".to_owned());
    }
    let header = |key: &str| header(&metadata, key);
    let name = header("Name").ok_or("is not a Python package: its metadata has no Name")?;
    let version =
        header("Version").ok_or("is not a Python package: its metadata has no Version")?;
    // The file name's NAME-VERSION must be the metadata's (names compared as
    // PEP 503 normalises them; a wheel's name has `_` for `-`).
    let (stem_name, stem_version) = stem.rsplit_once('-').unwrap_or((stem.as_str(), ""));
    if normalise(stem_name) != normalise(&name) || stem_version != version {
        return Err(format!(
            "\"{file_name}\" names {stem_name} {stem_version}, but its metadata says {name} {version}"
        ));
    }
    Ok(Found {
        group: None,
        name,
        version,
        qualifier: qualifier(file_name),
        metadata: Some(metadata),
    })
}

/// The value of a core metadata header (`Name`, `Requires-Python`…): the
/// headers are an email message's, ended by the first empty line, and their
/// names are compared as email's are, without case. A line that begins with
/// white space continues the header before it (a folded `License`), so it
/// names no header of its own.
pub fn header(metadata: &str, key: &str) -> Option<String> {
    metadata
        .lines()
        .take_while(|line| !line.trim_end_matches('\r').is_empty())
        .filter(|line| !line.starts_with([' ', '\t']))
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(key)
                .then(|| v.trim().to_owned())
        })
}

/// Whether a file is a wheel (the rest are sdists).
pub fn is_wheel(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().ends_with(".whl")
}

/// Whether `text` names a project as PEP 508 allows (letters, digits and
/// `.`, `_`, `-` inside): anything else names nothing on any index.
pub fn is_project_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
}

/// Checks an upload's `filetype` against the file it names: `sdist` for a
/// `.tar.gz` or `.zip`, `bdist_wheel` for a `.whl` (PyPI accepts nothing
/// else today). Err completes "The upload's …".
pub fn check_filetype(filetype: &str, file_name: &str) -> Result<(), String> {
    let lower = file_name.to_ascii_lowercase();
    let fits = match filetype {
        "sdist" => lower.ends_with(".tar.gz") || lower.ends_with(".zip"),
        "bdist_wheel" => is_wheel(file_name),
        other => {
            return Err(format!(
                "field filetype \"{other}\" is not accepted: only sdist and bdist_wheel are"
            ))
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "field filetype \"{filetype}\" does not fit the file \"{file_name}\""
        ))
    }
}

/// The qualifier a PyPI file is stored under: a version has several files.
pub fn qualifier(file_name: &str) -> String {
    format!("file={file_name}")
}

/// PEP 503: lower case (as Python's `str.lower`), every run of `-`, `_` and
/// `.` one `-`. PyPI names the same project by every spelling with this form,
/// so it is also the `name_key` stored beside a PyPI package's name.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator_run {
                out.push('-');
            }
            in_separator_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator_run = false;
        }
    }
    out
}

/// PEP 440, read by the `pep440_rs` crate (the parser uv grew from):
/// epochs (`1!`), `a`/`b`/`rc` and `.dev` pre-releases, `.post` releases and
/// local versions (`+`), with PEP 440's normalisation: `1.0RC1` is `1.0rc1`,
/// `1.0-1` is `1.0.post1`, `v1.0` is `1.0`.
pub(super) struct Pep440;

impl super::version::Scheme for Pep440 {
    type Key = pep440_rs::Version;

    fn parse(version: &str) -> Option<Self::Key> {
        version.trim().parse().ok()
    }

    /// `a`, `b`, `rc` and `.dev` releases, as pip leaves them out without `--pre`.
    fn is_prerelease(key: &Self::Key) -> bool {
        key.any_prerelease()
    }
}

/// The one spelling of a version as PyPI compares them: PEP 440's normal
/// form with the release's trailing zeros dropped (`packaging`'s
/// `canonicalize_version`, which warehouse uses to find a version), so that
/// `1.0RC1`, `1.0rc1` and `1.0.0rc1` name one version. `None`: not PEP 440.
pub(super) fn canonical(version: &str) -> Option<String> {
    use super::version::Scheme;
    let parsed = Pep440::parse(version)?;
    let mut release = parsed.release().to_vec();
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    Some(parsed.with_release(release).to_string())
}

/// Why PyPI (and twine) would refuse `version`, or `None`.
pub(super) fn refusal(version: &str) -> Option<&'static str> {
    use super::version::Scheme;
    Pep440::parse(version)
        .is_none()
        .then_some("is not a PEP 440 version (such as 1.2.3, 1.2.3rc1 or 1.2.3.post1)")
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn filetypes_names_and_headers() {
        assert!(check_filetype("sdist", "a-1.0.tar.gz").is_ok());
        assert!(check_filetype("bdist_wheel", "a-1.0-py3-none-any.whl").is_ok());
        assert!(check_filetype("sdist", "a-1.0-py3-none-any.whl").is_err());
        assert!(check_filetype("bdist_egg", "a-1.0.egg").is_err());
        for good in ["a", "Foo.Bar", "foo_bar-2", "x9"] {
            assert!(is_project_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", "é"] {
            assert!(!is_project_name(bad), "{bad}");
        }
        let metadata = "Name: a\nLicense: MIT\n  Requires-Python: <2\nRequires-Python: >=3.8\n\nRequires-Python: body";
        assert_eq!(
            header(metadata, "requires-python").as_deref(),
            Some(">=3.8")
        );
        assert_eq!(header("Name: a\n\nVersion: 1", "Version"), None);
    }
}

#[cfg(test)]
mod version_tests {
    use crate::ecosystems::version::is_prerelease;
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// PEP 440's "Summary of permitted suffixes and relative ordering" example,
    /// and pypa/packaging's tests/test_version.py (VERSIONS, in order).
    #[test]
    fn pep440_order() {
        assert_ascending(
            FeedType::Pypi,
            &[
                "1.dev0",
                "1.0.dev456",
                "1.0a1",
                "1.0a2.dev456",
                "1.0a12.dev456",
                "1.0a12",
                "1.0b1.dev456",
                "1.0b2",
                "1.0b2.post345.dev456",
                "1.0b2.post345",
                "1.0rc1.dev456",
                "1.0rc1",
                "1.0",
                "1.0+abc.5",
                "1.0+abc.7",
                "1.0+5",
                "1.0.post456.dev34",
                "1.0.post456",
                "1.0.15",
                "1.1.dev1",
                "1!0.1",
            ],
        );
        assert_equal(
            FeedType::Pypi,
            &[
                ("1.0RC1", "1.0rc1"),
                ("1.0-1", "1.0.post1"),
                ("1.0c1", "1.0rc1"),
                ("1.0.0", "1.0"),
                ("v1.0", "1.0"),
                ("1.0alpha1", "1.0a1"),
                ("1.0-dev1", "1.0.dev1"),
                ("0!1.0", "1.0"),
            ],
        );
    }

    #[test]
    fn one_version_has_one_key() {
        for (spelling, key) in [
            ("1.0RC1", "1rc1"),
            ("1.0.0rc1", "1rc1"),
            ("1.0-1", "1.post1"),
            ("v2.1", "2.1"),
            ("1!2.0.0+Local.5", "1!2+local.5"),
            ("2.0", "2"),
            ("0", "0"),
        ] {
            assert_eq!(
                super::canonical(spelling).as_deref(),
                Some(key),
                "{spelling}"
            );
        }
        assert_eq!(super::canonical("not-a-version"), None);
    }

    #[test]
    fn pep440_pre_releases_and_refusals() {
        for pre in ["1.0a1", "1.0rc1", "2.1.dev3", "1.0.post1.dev0"] {
            assert!(is_prerelease(FeedType::Pypi, pre), "{pre}");
        }
        for stable in ["1.0", "2.0.0.post1", "1.0+local"] {
            assert!(!is_prerelease(FeedType::Pypi, stable), "{stable}");
        }
        for bad in ["", "1.0.x", "latest", "1..0", "1.0+"] {
            assert!(super::refusal(bad).is_some(), "{bad:?}");
        }
    }
}
