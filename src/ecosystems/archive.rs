//! What every ecosystem's identity reader shares: bounded reads of a manifest
//! out of a zip or a gzipped tar, and the rule that a manifest counts only
//! when it is the archive's one manifest (tools disagree on which of two
//! counts, so a package with two could be recorded as one package and
//! installed as another). Every read is bounded: the entry's size, the number
//! of entries looked through and the bytes decompressed on the way, so that a
//! zip or gzip bomb is a 400 and not an outage.

use std::io::{Read, Seek};

use super::zip::ZipArchive;

/// The largest manifest read (`.nuspec`, `package.json`, `METADATA` …).
pub(super) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// The most entries looked through in a tar archive, or held by a zip archive.
pub(super) const MAX_ENTRIES: u64 = 65_535;
/// The most bytes decompressed from a `.tgz`: all of it is read, to make sure
/// its manifest is there once.
pub(super) const MAX_SCANNED_BYTES: u64 = 256 * 1024 * 1024;
/// The largest tar extension header (a long name, PAX attributes) looked at.
const MAX_TAR_EXTENSION: u64 = 64 * 1024;

/// The text of the entry at `path` in a zip archive (`what`); `missing` says
/// why when there is none.
pub(super) fn zip_named_entry(
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
pub(super) fn twice(path: &str) -> String {
    format!("is refused: it holds {path} twice, and tools disagree on which one counts")
}

pub(super) fn bounded_text(reader: impl Read, what: &str) -> Result<String, String> {
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
pub(super) fn tar_entry(
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
pub(super) fn tar_scan(
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
