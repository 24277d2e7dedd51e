//! Which package version an uploaded file is, read from the file itself (contract
//! section 10): the `.nuspec` of a `.nupkg`, `package/package.json` of an npm
//! `.tgz`, a wheel's `METADATA` or an sdist's `PKG-INFO` (checked against the
//! file name), a `.upack`'s `upack.json`.
//!
//! Only the small entry that names the package is decompressed from a zip, and
//! every read is bounded: the entry's size, the number of entries looked
//! through and the bytes decompressed on the way, so that a zip or gzip bomb is
//! a 400 and not an outage. A manifest is taken only when it is the archive's
//! one manifest: tools disagree on which of two counts, so a package with two
//! could be recorded as one package and installed as another. Errors complete
//! the sentence "The file …".

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use quick_xml::events::{BytesRef, Event};

use super::zip::ZipArchive;
use crate::domain::FeedType;

/// The largest manifest read (`.nuspec`, `package.json`, `METADATA` …).
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// The most entries looked through in a tar archive, or held by a zip archive.
pub(super) const MAX_ENTRIES: u64 = 65_535;
/// The most bytes decompressed from a `.tgz`: all of it is read, to make sure
/// its manifest is there once.
const MAX_SCANNED_BYTES: u64 = 256 * 1024 * 1024;
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
    let file =
        BufReader::new(File::open(path).map_err(|e| format!("could not be read back: {e}"))?);
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

fn nupkg(file: impl Read + Seek) -> Result<Found, String> {
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
    Ok(Found {
        group: None,
        name: id,
        version,
        qualifier: String::new(),
    })
}

fn upack(file: impl Read + Seek) -> Result<Found, String> {
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

fn npm(file: impl Read) -> Result<Found, String> {
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
    })
}

/// Whether npm installs the tar entry at `path` as the package's
/// `package.json`: npm extracts with the first folder stripped whatever its
/// name (`strip: 1`), and empty and `.` parts count for nothing, so
/// `x/package.json` and `package//./package.json` are the manifest too.
fn is_npm_manifest(path: &str) -> bool {
    let mut parts = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".");
    parts.next().is_some() && parts.next() == Some("package.json") && parts.next().is_none()
}

/// A wheel (`NAME-VERSION-…whl`, a zip with `NAME-VERSION.dist-info/METADATA`) or
/// an sdist (`NAME-VERSION.tar.gz` with `NAME-VERSION/PKG-INFO`, or `.zip`).
fn pypi(file: impl Read + Seek, file_name: &str) -> Result<Found, String> {
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

/// The text of the entry at `path` in a zip archive (`what`); `missing` says
/// why when there is none.
fn zip_named_entry(
    file: impl Read + Seek,
    what: &str,
    path: &str,
    missing: impl FnOnce() -> String,
) -> Result<String, String> {
    let mut archive = ZipArchive::open(file, what)?;
    let mut named = archive
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.name == path)
        .map(|(index, _)| index);
    let index = named.next().ok_or_else(missing)?;
    if named.next().is_some() {
        return Err(twice(path));
    }
    let label = path.rsplit('/').next().unwrap_or(path);
    bounded_text(archive.open_entry(index, label)?, label)
}

/// Why an archive holding its manifest twice is refused.
fn twice(path: &str) -> String {
    format!("is refused: it holds {path} twice, and tools disagree on which one counts")
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

/// The text of the one entry of a gzipped tar whose path `wanted` accepts.
fn tar_entry(
    file: impl Read,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    // Every gzip member, as gunzip, Node and Python read them: a second
    // member could hold a second manifest.
    tar_scan(
        flate2::read::MultiGzDecoder::new(file),
        MAX_SCANNED_BYTES,
        what,
        &wanted,
    )
}

/// [`tar_entry`] of a decompressed stream, of which at most `limit` bytes are
/// read.
fn tar_scan(
    stream: impl Read,
    limit: u64,
    what: &str,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    // Counts what is decompressed, so a bomb stops at the limit.
    let mut archive = tar::Archive::new(stream.take(limit));
    // Past a zero block, as npm's tar reads on (only two end an archive):
    // an entry after one would otherwise be a manifest this walk misses.
    archive.set_ignore_zeros(true);
    let scanned = tar_walk(&mut archive, what, wanted);
    // A spent limit explains whatever ended the walk: the stream was cut
    // there, which the tar crate reports as a damaged entry or, between
    // entries, as the end of the archive.
    if archive.into_inner().limit() == 0 {
        return Err(format!(
            "is refused: it holds more than {} MiB once decompressed, the most a package is read through",
            limit / (1024 * 1024)
        ));
    }
    scanned
}

/// Reads every entry of `archive`, keeping the text of the one `wanted`.
fn tar_walk<R: Read>(
    archive: &mut tar::Archive<R>,
    what: &str,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    let damaged = |e: std::io::Error| format!("is not {what}: {e}");
    // Raw: extension headers (long names, PAX attributes) come as entries of
    // their own, which the tar crate would otherwise read whole into memory.
    // What they say of the next entry is applied below, as tar and npm apply
    // it: otherwise an entry renamed to package/package.json by a PAX header
    // would be a second manifest this walk does not see.
    let entries = archive.entries().map_err(damaged)?.raw(true);
    let mut found = None;
    // What extension headers say of the next entry; a later header of a kind
    // replaces an earlier one, as in npm's tar.
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    for (seen, entry) in entries.enumerate() {
        if seen as u64 >= MAX_ENTRIES {
            return Err(format!(
                "is refused: a package may hold fewer than {MAX_ENTRIES} entries"
            ));
        }
        let mut entry = entry.map_err(damaged)?;
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
            if kind.is_gnu_longname() {
                let mut name = Vec::new();
                entry.read_to_end(&mut name).map_err(damaged)?;
                // GNU tar and npm read the name up to its first NUL.
                let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
                long_name = Some(String::from_utf8_lossy(&name[..end]).into_owned());
            } else if kind.is_pax_local_extensions() {
                for record in entry
                    .pax_extensions()
                    .map_err(damaged)?
                    .into_iter()
                    .flatten()
                {
                    let record = record.map_err(damaged)?;
                    match record.key_bytes() {
                        b"path" => {
                            pax_path =
                                Some(String::from_utf8_lossy(record.value_bytes()).into_owned())
                        }
                        b"size" => {
                            let size = record.value().ok().and_then(|v| v.parse::<u64>().ok());
                            pax_size = Some(size.ok_or_else(|| {
                                format!("is not {what}: a PAX size is not a number")
                            })?);
                        }
                        _ => {}
                    }
                }
            }
            continue;
        }
        let header_path = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        // tar and npm take a PAX size over the header's, which is what this
        // raw walk goes by: the entries after would differ.
        if pax_size.take().is_some_and(|size| size != entry.size()) {
            return Err(format!(
                "is refused: its tar headers disagree on the size of {header_path}"
            ));
        }
        let path = match (long_name.take(), pax_path.take()) {
            // Which of the two wins differs from tool to tool.
            (Some(long), Some(pax)) if long != pax => {
                if wanted(long.trim_start_matches("./")) || wanted(pax.trim_start_matches("./")) {
                    return Err(
                        "is refused: its tar headers give one entry two names, and tools disagree on which one counts"
                            .to_owned(),
                    );
                }
                continue;
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => header_path,
        };
        let trimmed = path.trim_start_matches("./");
        if wanted(trimmed) {
            if found.is_some() {
                return Err(twice(trimmed));
            }
            found = Some(bounded_text(entry, &path)?);
        }
    }
    Ok(found)
}

/// The text of the element at `path` (local names, namespaces ignored), read
/// as NuGet's XML parser reads it: all its text and CDATA, references
/// resolved, comments and processing instructions contributing nothing, then
/// trimmed. Anything NuGet would refuse or read otherwise is refused: a
/// DOCTYPE, an undefined entity, an element inside, the element twice.
fn xml_text(text: &str, path: &[&str]) -> Result<Option<String>, String> {
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use crate::content::zip::tests::by_hand;

    type Tar = tar::Builder<flate2::write::GzEncoder<Vec<u8>>>;

    const PACKAGE_JSON: &[u8] = br#"{"name":"@scope/a","version":"1.0.0"}"#;

    fn found(group: Option<&str>, name: &str, version: &str) -> Found {
        Found {
            group: group.map(str::to_owned),
            name: name.to_owned(),
            version: version.to_owned(),
            qualifier: String::new(),
        }
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    /// A .nupkg whose .nuspec has `metadata`.
    fn nuget(metadata: &str) -> Result<Found, String> {
        let nuspec = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>{metadata}</metadata></package>"#
        );
        nupkg(Cursor::new(zip_of(&[
            ("_rels/.rels", b"<Relationships/>"),
            ("Contoso.nuspec", nuspec.as_bytes()),
        ])))
    }

    fn tgz(build: impl FnOnce(&mut Tar)) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        build(&mut tar);
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn add<W: std::io::Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, bytes).unwrap();
    }

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

    #[test]
    fn a_nuspec_is_read_as_nuget_reads_it() {
        assert_eq!(
            nuget("<id>Contoso<!-- -->.Evil</id><version>1.0.0<!-- -->-beta</version>"),
            Ok(found(None, "Contoso.Evil", "1.0.0-beta"))
        );
        assert_eq!(
            nuget("<id>&#78;ewtonsoft&#x2E;Json</id><version>13.0.3</version>"),
            Ok(found(None, "Newtonsoft.Json", "13.0.3"))
        );
        assert_eq!(
            nuget("<id><![CDATA[Foo]]></id><version> <![CDATA[1.0]]>.0<?pi?> </version>"),
            Ok(found(None, "Foo", "1.0.0"))
        );
        assert_eq!(
            xml_text("<a> &lt;&gt;&amp;&apos;&quot; </a>", &["a"]),
            Ok(Some("<>&'\"".to_owned()))
        );
        // Present but empty: the caller's rules say what is wrong with "".
        assert_eq!(
            xml_text("<a><id/></a>", &["a", "id"]),
            Ok(Some(String::new()))
        );
        // As before, a document cut short still answers for what it holds.
        assert_eq!(
            xml_text(
                "<package><metadata><id>x</id>",
                &["package", "metadata", "version"]
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_nuspec_nuget_would_refuse_or_read_otherwise_is_refused() {
        assert_eq!(
            nuget("<id>&foo;</id><version>1.0.0</version>"),
            Err("has a .nuspec that is not valid XML (the entity &foo; is not defined)".to_owned())
        );
        assert_eq!(
            nuget("<id>Foo<b>Bar</b></id><version>1.0.0</version>"),
            Err(
                "has a .nuspec whose <id> holds an element, which NuGet does not accept".to_owned()
            )
        );
        assert_eq!(
            nuget("<id>A</id><id>B</id><version>1.0.0</version>"),
            Err("has a .nuspec with two <id> elements".to_owned())
        );
        assert_eq!(
            nuget("<id>A</id><version>1.0.0</version><version>2.0.0</version>"),
            Err("has a .nuspec with two <version> elements".to_owned())
        );
        assert_eq!(
            xml_text("<a><id>x", &["a", "id"]),
            Err("has a .nuspec that is not valid XML (its <id> is not closed)".to_owned())
        );
        let doctype = r#"<?xml version="1.0"?><!DOCTYPE package [<!ENTITY e "Evil">]><package><metadata><id>&e;</id><version>1.0.0</version></metadata></package>"#;
        assert_eq!(
            nupkg(Cursor::new(zip_of(&[("x.nuspec", doctype.as_bytes())]))),
            Err("has a .nuspec with a DOCTYPE declaration, which NuGet refuses to read".to_owned())
        );
    }

    #[test]
    fn a_zip_holding_its_manifest_twice_is_refused() {
        let manifest = br#"{"name":"a","version":"1.0.0"}"#;
        let single = by_hand(&[("upack.json", 0, 0, manifest)]);
        assert_eq!(upack(Cursor::new(single)), Ok(found(None, "a", "1.0.0")));
        let double = by_hand(&[
            ("upack.json", 0, 0, manifest),
            ("upack.json", 0, 0, br#"{"name":"b","version":"6.6.6"}"#),
        ]);
        assert_eq!(
            upack(Cursor::new(double)),
            Err(
                "is refused: it holds upack.json twice, and tools disagree on which one counts"
                    .to_owned()
            )
        );
        let metadata = b"Name: a\nVersion: 1.0\n";
        let wheel = by_hand(&[
            ("a-1.0.dist-info/METADATA", 0, 0, metadata),
            ("a-1.0.dist-info/METADATA", 0, 0, metadata),
        ]);
        assert_eq!(
            pypi(Cursor::new(wheel), "a-1.0-py3-none-any.whl"),
            Err("is refused: it holds a-1.0.dist-info/METADATA twice, and tools disagree on which one counts".to_owned())
        );
    }

    #[test]
    fn a_nupkg_with_two_nuspecs_at_its_root_is_refused() {
        let nuspec = b"<package><metadata><id>A</id><version>1.0.0</version></metadata></package>";
        assert_eq!(
            nupkg(Cursor::new(zip_of(&[("a.nuspec", nuspec), ("B.NUSPEC", nuspec)]))),
            Err("is refused: it holds more than one .nuspec at its root, and tools disagree on which one counts".to_owned())
        );
        // One in a folder is content, not the package's .nuspec.
        assert_eq!(
            nupkg(Cursor::new(zip_of(&[
                ("lib/b.nuspec", b"junk"),
                ("a.nuspec", nuspec)
            ]))),
            Ok(found(None, "A", "1.0.0"))
        );
    }

    #[test]
    fn a_tar_holding_its_manifest_twice_is_refused() {
        let refused: Result<Found, String> = Err(
            "is refused: it holds package/package.json twice, and tools disagree on which one counts"
                .to_owned(),
        );
        let double = tgz(|tar| {
            add(tar, "package/package.json", PACKAGE_JSON);
            add(
                tar,
                "package/package.json",
                br#"{"name":"evil","version":"6.6.6"}"#,
            );
        });
        assert_eq!(npm(Cursor::new(double)), refused);
        // The second named so by a PAX header, which tar and npm apply.
        let renamed = tgz(|tar| {
            add(tar, "package/package.json", PACKAGE_JSON);
            tar.append_pax_extensions([("path", &b"package/package.json"[..])])
                .unwrap();
            add(
                tar,
                "package/innocent.txt",
                br#"{"name":"evil","version":"6.6.6"}"#,
            );
        });
        assert_eq!(npm(Cursor::new(renamed)), refused);
        let sdist = tgz(|tar| {
            add(tar, "a-1.0/PKG-INFO", b"Name: a\nVersion: 1.0\n");
            add(tar, "a-1.0/PKG-INFO", b"Name: b\nVersion: 1.0\n");
        });
        assert_eq!(
            pypi(Cursor::new(sdist), "a-1.0.tar.gz"),
            Err(
                "is refused: it holds a-1.0/PKG-INFO twice, and tools disagree on which one counts"
                    .to_owned()
            )
        );
    }

    /// A tar of one entry, ended by its two zero blocks.
    fn tar_of(path: &str, bytes: &[u8]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        add(&mut tar, path, bytes);
        tar.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_second_manifest_npm_would_install_is_seen() {
        let evil = br#"{"name":"evil","version":"6.6.6"}"#;
        let first = tar_of("package/package.json", PACKAGE_JSON);
        let unended = &first[..first.len() - 1024];
        // After a single zero block, which npm's tar reads past.
        let mut zero_block = unended.to_vec();
        zero_block.extend_from_slice(&[0; 512]);
        zero_block.extend_from_slice(&tar_of("package/package.json", evil));
        // In a second gzip member, which gunzip and Node read too.
        let mut members = gzip(unended);
        members.extend_from_slice(&gzip(&tar_of("package/package.json", evil)));
        for (what, tgz) in [
            ("a zero block", gzip(&zero_block)),
            ("two members", members),
        ] {
            assert_eq!(
                npm(Cursor::new(tgz)),
                Err("is refused: it holds package/package.json twice, and tools disagree on which one counts".to_owned()),
                "{what}"
            );
        }
        // Under any first folder, and with empty or `.` parts: npm strips
        // the first folder whatever its name.
        for path in ["x/package.json", "package//./package.json"] {
            let mut both = unended.to_vec();
            both.extend_from_slice(&tar_of(path, evil));
            assert!(
                npm(Cursor::new(gzip(&both))).unwrap_err().contains("twice"),
                "{path}"
            );
        }
        assert!(is_npm_manifest("package/package.json"));
        assert!(!is_npm_manifest("package/lib/package.json"));
        assert!(!is_npm_manifest("package.json"));
    }

    #[test]
    fn tar_extension_headers_name_the_next_entry() {
        let renamed = tgz(|tar| {
            tar.append_pax_extensions([("path", &b"package/package.json"[..])])
                .unwrap();
            add(tar, "package/innocent.txt", PACKAGE_JSON);
        });
        assert_eq!(
            npm(Cursor::new(renamed)),
            Ok(found(Some("@scope"), "a", "1.0.0"))
        );
        // A path longer than a tar header holds comes as a GNU long name.
        let name = "a".repeat(120);
        let long = tgz(|tar| {
            add(
                tar,
                &format!("{name}-1.0/PKG-INFO"),
                format!("Name: {name}\nVersion: 1.0\n").as_bytes(),
            )
        });
        assert_eq!(
            pypi(Cursor::new(long), &format!("{name}-1.0.tar.gz")),
            Ok(Found {
                qualifier: format!("file={name}-1.0.tar.gz"),
                ..found(None, &name, "1.0")
            })
        );
        let two_names = tgz(|tar| {
            tar.append_pax_extensions([("path", &b"package/package.json"[..])])
                .unwrap();
            add(tar, &format!("package/{}", "n".repeat(200)), PACKAGE_JSON);
        });
        assert_eq!(
            npm(Cursor::new(two_names)),
            Err("is refused: its tar headers give one entry two names, and tools disagree on which one counts".to_owned())
        );
        let sized = tgz(|tar| {
            tar.append_pax_extensions([("size", &b"5"[..])]).unwrap();
            add(tar, "package/x", b"abc");
            add(tar, "package/package.json", PACKAGE_JSON);
        });
        assert_eq!(
            npm(Cursor::new(sized)),
            Err("is refused: its tar headers disagree on the size of package/x".to_owned())
        );
    }

    #[test]
    fn a_scan_cut_by_its_limit_names_the_limit() {
        const MIB: usize = 1024 * 1024;
        let wanted = |path: &str| path == "package/package.json";
        let scan = |bytes: &[u8]| {
            tar_scan(
                flate2::read::GzDecoder::new(bytes),
                MIB as u64,
                "an npm package (a .tgz)",
                &wanted,
            )
        };
        let refused: Result<Option<String>, String> = Err(
            "is refused: it holds more than 1 MiB once decompressed, the most a package is read through"
                .to_owned(),
        );
        // One entry of zeros past the limit: the stream ends inside it, which
        // the tar crate reports as an unexpected end.
        let zeros = tgz(|tar| add(tar, "package/zeros", &vec![0u8; 2 * MIB]));
        assert_eq!(scan(&zeros[..]), refused);
        // The manifest found first does not end the scan: another could follow.
        let after = tgz(|tar| {
            add(tar, "package/package.json", PACKAGE_JSON);
            add(tar, "package/zeros", &vec![0u8; 2 * MIB]);
        });
        assert_eq!(scan(&after[..]), refused);
        let within = tgz(|tar| add(tar, "package/package.json", PACKAGE_JSON));
        assert_eq!(
            scan(&within[..]),
            Ok(Some(String::from_utf8(PACKAGE_JSON.to_vec()).unwrap()))
        );
    }
}
