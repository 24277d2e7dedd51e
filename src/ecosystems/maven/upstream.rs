//! An upstream Maven repository (Maven Central, another Promoter), as a
//! connector reads it (contract section 16): where a file and its checksum
//! files are, and the versions an artifact's `maven-metadata.xml` lists. A
//! file is offered only with a checksum the upstream publishes beside it
//! (`.sha512`, `.sha256` or `.sha1`, the strongest found), since a file that
//! cannot be checked is never cached; `.md5` is not enough. Merging the
//! versions into the feed's metadata is `http::native::maven`'s.

use crate::ecosystems::{path_segment, Integrity};

/// The checksum files tried beside a file, strongest first, with the length
/// of their hex digest.
pub const CHECKSUMS: [(&str, usize); 3] = [(".sha512", 128), (".sha256", 64), (".sha1", 40)];

/// `base/{group as folders}/{artifact}/`.
fn artifact_folder(base: &url::Url, group: &str, artifact: &str) -> Option<url::Url> {
    let mut path = String::new();
    for part in group.split('.') {
        path.push_str(&path_segment(part)?);
        path.push('/');
    }
    path.push_str(&path_segment(artifact)?);
    path.push('/');
    base.join(&path).ok()
}

/// Where the upstream at `base` keeps one file of a version.
pub fn file_url(
    base: &url::Url,
    group: &str,
    artifact: &str,
    version: &str,
    file: &str,
) -> Option<url::Url> {
    artifact_folder(base, group, artifact)?
        .join(&format!(
            "{}/{}",
            path_segment(version)?,
            path_segment(file)?
        ))
        .ok()
}

/// Where the upstream keeps an artifact's `maven-metadata.xml`.
pub fn metadata_url(base: &url::Url, group: &str, artifact: &str) -> Option<url::Url> {
    artifact_folder(base, group, artifact)?
        .join("maven-metadata.xml")
        .ok()
}

/// A checksum file's digest (the hex digest, sometimes followed by the
/// file's name), if it is one of `length` hex digits.
pub fn read_checksum(body: &[u8], extension: &str, length: usize) -> Option<Integrity> {
    let text = std::str::from_utf8(body).ok()?;
    // `HEX`, `HEX  name`, or BSD's `SHA1(name)= HEX`.
    let digest = match text.rsplit_once("= ") {
        Some((_, after)) => after.trim(),
        None => text.split_whitespace().next()?,
    }
    .to_ascii_lowercase();
    if digest.len() != length || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match extension {
        ".sha512" => Some(Integrity::Sha512(digest)),
        ".sha256" => Some(Integrity::Sha256(digest)),
        ".sha1" => Some(Integrity::Sha1(digest)),
        _ => None,
    }
}

/// The versions an artifact's `maven-metadata.xml` lists, and its
/// `lastUpdated` (`yyyyMMddHHmmss`).
pub fn read_metadata(body: &[u8]) -> (Vec<String>, Option<String>) {
    let text = String::from_utf8_lossy(body);
    let inner = |text: &str, tag: &str| -> Vec<String> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(&open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(&close) else { break };
            found.push(after[..end].trim().to_owned());
            rest = &after[end + close.len()..];
        }
        found
    };
    let versions = inner(&text, "versions")
        .first()
        .map(|block| {
            inner(block, "version")
                .into_iter()
                .filter(|v| !v.is_empty() && !v.contains(['<', '>', '&', '/']))
                .collect()
        })
        .unwrap_or_default();
    let last_updated = inner(&text, "lastUpdated")
        .into_iter()
        .find(|t| t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()));
    (versions, last_updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_each_part_in_its_folder() {
        let base = url::Url::parse("https://repo.example/maven2/").unwrap();
        assert_eq!(
            file_url(&base, "org.acme", "widget", "1.0", "widget-1.0.jar")
                .unwrap()
                .as_str(),
            "https://repo.example/maven2/org/acme/widget/1.0/widget-1.0.jar"
        );
        assert_eq!(
            metadata_url(&base, "org.acme", "widget").unwrap().as_str(),
            "https://repo.example/maven2/org/acme/widget/maven-metadata.xml"
        );
        assert_eq!(file_url(&base, "org..x", "w", "1", "w-1.jar"), None);
    }

    #[test]
    fn checksums_and_metadata_are_read() {
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            read_checksum(format!("{sha1}  widget-1.0.jar\n").as_bytes(), ".sha1", 40),
            Some(Integrity::Sha1(sha1.into()))
        );
        assert_eq!(read_checksum(b"<html>", ".sha1", 40), None);
        assert_eq!(
            read_checksum(
                format!("SHA1(widget-1.0.jar)= {sha1}\n").as_bytes(),
                ".sha1",
                40
            ),
            Some(Integrity::Sha1(sha1.into()))
        );
        let xml = b"<metadata><versioning><latest>2.0</latest><versions><version>1.0</version>\n<version>2.0</version></versions><lastUpdated>20261204101500</lastUpdated></versioning></metadata>";
        assert_eq!(
            read_metadata(xml),
            (
                vec!["1.0".to_owned(), "2.0".to_owned()],
                Some("20261204101500".to_owned())
            )
        );
    }
}
