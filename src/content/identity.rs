//! Which package version an uploaded file is, read from the file itself (contract
//! section 10): the `.nuspec` of a `.nupkg`, `package/package.json` of an npm
//! `.tgz`, a wheel's `METADATA` or an sdist's `PKG-INFO` (checked against the
//! file name), a `.upack`'s `upack.json`.
//!
//! Only the small entry that names the package is decompressed, and every read
//! is bounded: the entry's size, the number of entries looked through and the
//! bytes decompressed on the way, so that a zip or gzip bomb is a 400 and not an
//! outage. Errors complete the sentence "The file …".

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::domain::FeedType;

/// The largest manifest read (`.nuspec`, `package.json`, `METADATA` …).
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// The most entries looked through in a tar archive, or held by a zip archive.
const MAX_ENTRIES: u64 = 65_535;
/// The most bytes decompressed while looking for the manifest in a `.tgz`.
const MAX_SCANNED_BYTES: u64 = 256 * 1024 * 1024;
/// The largest zip central directory read (the zip crate holds it in memory).
const MAX_CENTRAL_DIRECTORY: u32 = 16 * 1024 * 1024;
/// The largest tar extension header (a long name, PAX attributes) looked at.
const MAX_TAR_EXTENSION: u64 = 64 * 1024;

/// What a file says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub group: Option<String>,
    pub name: String,
    pub version: String,
    /// `file=NAME` for a PyPI file (a version has several); empty otherwise.
    pub qualifier: String,
}

/// Reads the identity of `path`, an upload to a feed of `feed_type`, whose file
/// name (from the URL) is `file_name`. `Ok(None)`: this feed type's files say
/// nothing, so the query string must.
pub fn read(
    feed_type: FeedType,
    path: &Path,
    file_name: Option<&str>,
) -> Result<Option<Found>, String> {
    let file = File::open(path).map_err(|e| format!("could not be read back: {e}"))?;
    match feed_type {
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => nupkg(file).map(Some),
        FeedType::Npm => npm(file).map(Some),
        FeedType::Universal => upack(file).map(Some),
        FeedType::Pypi => {
            let name = file_name.ok_or(
                "has no file name: a PyPI file is uploaded to /api/packages/{feed}/upload/{fileName}",
            )?;
            pypi(file, name).map(Some)
        }
        _ => Ok(None),
    }
}

fn nupkg(file: File) -> Result<Found, String> {
    let mut archive = zip_archive(file, "a .nupkg (a zip archive)")?;
    let nuspec = (0..archive.len())
        .filter_map(|i| {
            archive
                .name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| (i, n.into_owned()))
        })
        .find(|(_, name)| !name.contains('/') && name.to_ascii_lowercase().ends_with(".nuspec"))
        .map(|(i, _)| i)
        .ok_or("is not a NuGet package: it has no .nuspec at its root")?;
    let text = zip_entry(&mut archive, nuspec, ".nuspec")?;
    let id = xml_text(&text, &["package", "metadata", "id"])?
        .ok_or("is not a NuGet package: its .nuspec has no <id>")?;
    let version = xml_text(&text, &["package", "metadata", "version"])?
        .ok_or("is not a NuGet package: its .nuspec has no <version>")?;
    Ok(Found {
        group: None,
        name: id,
        version,
        qualifier: String::new(),
    })
}

fn upack(file: File) -> Result<Found, String> {
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
    })
}

fn npm(file: File) -> Result<Found, String> {
    let text = tar_entry(file, "an npm package (a .tgz)", |path| {
        path == "package/package.json"
    })?
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
    })
}

/// A wheel (`NAME-VERSION-…whl`, a zip with `NAME-VERSION.dist-info/METADATA`) or
/// an sdist (`NAME-VERSION.tar.gz` with `NAME-VERSION/PKG-INFO`, or `.zip`).
fn pypi(file: File, file_name: &str) -> Result<Found, String> {
    let lower = file_name.to_ascii_lowercase();
    let (stem, metadata) = if lower.ends_with(".whl") {
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
    let header = |key: &str| {
        metadata
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(key)
                    .then(|| v.trim().to_owned())
            })
    };
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
        qualifier: format!("file={file_name}"),
    })
}

/// PEP 503: lower case, every run of `-`, `_` and `.` one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Opens a zip archive after checking, from its end record, that its central
/// directory is of a sane size (the zip crate reads all of it into memory).
fn zip_archive(mut file: File, what: &str) -> Result<zip::ZipArchive<BufReader<File>>, String> {
    let not = || format!("is not {what}");
    let length = file.metadata().map_err(|_| not())?.len();
    let tail_len = length.min(22 + 65_535);
    file.seek(SeekFrom::Start(length - tail_len))
        .map_err(|_| not())?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail).map_err(|_| not())?;
    let end = tail
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .filter(|at| at + 22 <= tail.len())
        .ok_or_else(not)?;
    let field = |at: usize, len: usize| {
        tail[end + at..end + at + len]
            .iter()
            .rev()
            .fold(0u64, |n, b| n << 8 | u64::from(*b))
    };
    let (entries, directory_size, directory_offset) = (field(10, 2), field(12, 4), field(16, 4));
    // All ones marks a ZIP64 archive, whose counts are elsewhere and unbounded.
    if entries >= MAX_ENTRIES || directory_offset == u64::from(u32::MAX) {
        return Err(format!(
            "is refused: a package may hold fewer than {MAX_ENTRIES} entries"
        ));
    }
    if directory_size > u64::from(MAX_CENTRAL_DIRECTORY) {
        return Err(format!(
            "is refused: its zip directory is larger than {} MiB",
            MAX_CENTRAL_DIRECTORY / (1024 * 1024)
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(|_| not())?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("is not {what} ({e})"))
}

/// The text of the entry at `path` in a zip archive (`what`); `missing` says
/// why when there is none.
fn zip_named_entry(
    file: File,
    what: &str,
    path: &str,
    missing: impl FnOnce() -> String,
) -> Result<String, String> {
    let mut archive = zip_archive(file, what)?;
    let index = archive.index_for_name(path).ok_or_else(missing)?;
    let label = path.rsplit('/').next().unwrap_or(path);
    zip_entry(&mut archive, index, label)
}

/// One entry's text, at most [`MAX_MANIFEST_BYTES`] of it decompressed.
fn zip_entry(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    index: usize,
    what: &str,
) -> Result<String, String> {
    let entry = archive
        .by_index(index)
        .map_err(|e| format!("has a {what} that cannot be read ({e})"))?;
    bounded_text(entry, what)
}

fn bounded_text(reader: impl Read, what: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("has a {what} that cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "has a {what} larger than {} KiB",
            MAX_MANIFEST_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("has a {what} that is not UTF-8"))
}

/// The text of the first entry of a gzipped tar whose path `wanted` accepts.
fn tar_entry(
    file: File,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    let gunzipped = flate2::read::GzDecoder::new(BufReader::new(file));
    // Counts what is decompressed, so a bomb stops at the limit.
    let mut archive = tar::Archive::new(gunzipped.take(MAX_SCANNED_BYTES));
    // Raw: extension headers (long names, PAX attributes) come as entries of
    // their own, which the tar crate would otherwise read whole into memory.
    let entries = archive
        .entries()
        .map_err(|e| format!("is not {what} ({e})"))?
        .raw(true);
    for (seen, entry) in entries.enumerate() {
        if seen as u64 >= MAX_ENTRIES {
            return Err(format!(
                "is refused: a package may hold fewer than {MAX_ENTRIES} entries"
            ));
        }
        let entry = entry.map_err(|e| format!("is not {what} ({e})"))?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            if entry.size() > MAX_TAR_EXTENSION {
                return Err(format!(
                    "is refused: it has a tar extension header larger than {} KiB",
                    MAX_TAR_EXTENSION / 1024
                ));
            }
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("is not {what} ({e})"))?
            .to_string_lossy()
            .into_owned();
        if wanted(path.trim_start_matches("./")) {
            return bounded_text(entry, &path).map(Some);
        }
    }
    if archive.into_inner().limit() == 0 {
        return Err(format!(
            "is refused: nothing named the package in its first {} MiB",
            MAX_SCANNED_BYTES / (1024 * 1024)
        ));
    }
    Ok(None)
}

/// The text of the element at `path` (local names, namespaces ignored).
fn xml_text(text: &str, path: &[&str]) -> Result<Option<String>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut open: Vec<Vec<u8>> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => open.push(start.local_name().as_ref().to_vec()),
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Text(content)) if open.len() == path.len() => {
                let here = open.iter().map(|n| n.as_slice());
                if here.eq(path.iter().map(|p| p.as_bytes())) {
                    let value = content
                        .decode()
                        .map_err(|e| format!("has a .nuspec that is not valid XML ({e})"))?;
                    return Ok(Some(value.trim().to_owned()));
                }
            }
            Ok(Event::Eof) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("has a .nuspec that is not valid XML ({e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep_503_names() {
        assert_eq!(normalise("Django_REST.framework"), "django-rest-framework");
        assert_eq!(normalise("a--b"), "a-b");
    }

    #[test]
    fn nuspec_elements_are_found_under_any_namespace() {
        let text = r#"<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata><id>Newtonsoft.Json</id><version>13.0.3</version></metadata></package>"#;
        assert_eq!(
            xml_text(text, &["package", "metadata", "id"]).unwrap(),
            Some("Newtonsoft.Json".to_owned())
        );
        assert_eq!(
            xml_text(text, &["package", "metadata", "version"]).unwrap(),
            Some("13.0.3".to_owned())
        );
    }
}
