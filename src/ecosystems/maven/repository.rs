//! A Maven repository's layout as data (contract section 15): which file a
//! path names, the checksum files beside every file, and the
//! `maven-metadata.xml` documents generated from what a feed holds. HTTP is
//! `http::native::maven`'s.
//!
//! Followed: Maven's "Repository Layout" and "Maven Metadata" reference
//! (maven.apache.org/repositories/layout.html, /ref/current/maven-repository-
//! metadata), and Maven Resolver's `DefaultLayout`/`RemoteRepositoryFilter`
//! for the checksum algorithms it asks for (SHA-1 and MD5 by default,
//! SHA-256 and SHA-512 when configured).

use std::collections::BTreeMap;

use quick_xml::escape::escape;

/// The checksum files a repository answers beside every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Checksum {
    const ALL: [(Checksum, &'static str); 4] = [
        (Checksum::Md5, ".md5"),
        (Checksum::Sha1, ".sha1"),
        (Checksum::Sha256, ".sha256"),
        (Checksum::Sha512, ".sha512"),
    ];

    /// `file.jar.sha1` is the SHA-1 of `file.jar`; `None`: not a checksum.
    pub fn split(file: &str) -> (&str, Option<Checksum>) {
        for (checksum, suffix) in Checksum::ALL {
            if let Some(base) = file.strip_suffix(suffix).filter(|b| !b.is_empty()) {
                return (base, Some(checksum));
            }
        }
        (file, None)
    }

    pub fn name(self) -> &'static str {
        match self {
            Checksum::Md5 => "MD5",
            Checksum::Sha1 => "SHA-1",
            Checksum::Sha256 => "SHA-256",
            Checksum::Sha512 => "SHA-512",
        }
    }

    /// The checksum of `bytes`, in hex, as the checksum file holds it.
    pub fn of(self, bytes: &[u8]) -> String {
        use sha2::Digest;
        match self {
            Checksum::Md5 => hex::encode(md5::Md5::digest(bytes)),
            Checksum::Sha1 => hex::encode(sha1::Sha1::digest(bytes)),
            Checksum::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Checksum::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        }
    }
}

/// What a path under `/maven2/{feed}/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `{group}/{artifact}/maven-metadata.xml`: the artifact's versions.
    Metadata {
        group: String,
        artifact: String,
        checksum: Option<Checksum>,
    },
    /// `{group}/{artifact}/{version}-SNAPSHOT/maven-metadata.xml`: which
    /// timestamped files a snapshot is made of.
    SnapshotMetadata {
        group: String,
        artifact: String,
        version: String,
        checksum: Option<Checksum>,
    },
    /// `{group}/{artifact}/{version}/{file}`: one file of a version.
    File {
        group: String,
        artifact: String,
        version: String,
        file: String,
        checksum: Option<Checksum>,
    },
}

const METADATA: &str = "maven-metadata.xml";

/// The path's meaning; `None` for one no Maven client writes (too short, a
/// file not named after its artifact).
pub fn parse(segments: &[&str]) -> Option<Path> {
    // `.` and `..` would name another folder; control characters nothing.
    if segments
        .iter()
        .any(|s| *s == "." || *s == ".." || s.chars().any(char::is_control))
    {
        return None;
    }
    let (last, folders) = segments.split_last()?;
    let (file, checksum) = Checksum::split(last);
    if file == METADATA {
        if let [group @ .., artifact, version] = folders {
            if version.ends_with("-SNAPSHOT") && !group.is_empty() {
                return Some(Path::SnapshotMetadata {
                    group: group.join("."),
                    artifact: (*artifact).to_owned(),
                    version: (*version).to_owned(),
                    checksum,
                });
            }
        }
        let [group @ .., artifact] = folders else {
            return None;
        };
        return (!group.is_empty()).then(|| Path::Metadata {
            group: group.join("."),
            artifact: (*artifact).to_owned(),
            checksum,
        });
    }
    let [group @ .., artifact, version] = folders else {
        return None;
    };
    // Every file of a version is named after its artifact and version
    // (`widget-1.0.jar`, `widget-1.0-sources.jar`), a snapshot's after its
    // base version and a timestamp (`widget-1.0-20261204.101500-1.pom`).
    let stem = match version.strip_suffix("-SNAPSHOT") {
        Some(base) => format!("{artifact}-{base}-"),
        None => format!("{artifact}-{version}"),
    };
    let named = file.len() > stem.len() && file.starts_with(&stem);
    (!group.is_empty() && named).then(|| Path::File {
        group: group.join("."),
        artifact: (*artifact).to_owned(),
        version: (*version).to_owned(),
        file: file.to_owned(),
        checksum,
    })
}

/// `maven-metadata.xml`'s time format (UTC).
pub const LAST_UPDATED: &str = "%Y%m%d%H%M%S";

/// The artifact-level `maven-metadata.xml`: every version in the feed, in
/// Maven's order (`versions`, lowest first); `<latest>` the highest,
/// `<release>` the highest that is not a SNAPSHOT, as `maven-deploy-plugin`
/// keeps them.
pub fn metadata(group: &str, artifact: &str, versions: &[String], last_updated: &str) -> String {
    let latest = versions.last();
    let release = versions.iter().rev().find(|v| !v.ends_with("-SNAPSHOT"));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>{}</groupId>\n  <artifactId>{}</artifactId>\n  <versioning>\n",
        escape(group),
        escape(artifact)
    );
    if let Some(latest) = latest {
        xml.push_str(&format!(
            "    <latest>{}</latest>\n",
            escape(latest.as_str())
        ));
    }
    if let Some(release) = release {
        xml.push_str(&format!(
            "    <release>{}</release>\n",
            escape(release.as_str())
        ));
    }
    xml.push_str("    <versions>\n");
    for version in versions {
        xml.push_str(&format!(
            "      <version>{}</version>\n",
            escape(version.as_str())
        ));
    }
    xml.push_str(&format!(
        "    </versions>\n    <lastUpdated>{last_updated}</lastUpdated>\n  </versioning>\n</metadata>\n"
    ));
    xml
}

/// A snapshot's timestamp and build number (`20261204.101500`, 1), and what
/// follows them in a file's name (`.jar`, `-sources.jar`).
fn snapshot_parts<'f>(
    artifact: &str,
    version: &str,
    file: &'f str,
) -> Option<(&'f str, u32, &'f str)> {
    let base = version.strip_suffix("-SNAPSHOT")?;
    let rest = file.strip_prefix(artifact)?.strip_prefix('-')?;
    let rest = rest.strip_prefix(base)?.strip_prefix('-')?;
    // yyyyMMdd.HHmmss
    let (timestamp, rest) = (rest.get(..15)?, rest.get(15..)?);
    let (date, time) = timestamp.split_once('.')?;
    if date.len() != 8
        || time.len() != 6
        || !(date.bytes().chain(time.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let rest = rest.strip_prefix('-')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let build: u32 = rest.get(..digits)?.parse().ok()?;
    Some((timestamp, build, &rest[digits..]))
}

/// The version-level `maven-metadata.xml` of a SNAPSHOT: for each
/// classifier and extension its newest timestamped file, and the newest
/// build of all, as `maven-deploy-plugin` writes it and Maven Resolver reads
/// it to find `widget-1.0-SNAPSHOT.jar`'s real name. `None` when no file
/// of the version is timestamped.
pub fn snapshot_metadata(
    group: &str,
    artifact: &str,
    version: &str,
    files: &[&str],
    last_updated: &str,
) -> Option<String> {
    let base = version.strip_suffix("-SNAPSHOT")?;
    // (classifier, extension) → (timestamp, build).
    let mut newest: BTreeMap<(String, String), (String, u32)> = BTreeMap::new();
    for file in files {
        let Some((timestamp, build, tail)) = snapshot_parts(artifact, version, file) else {
            continue;
        };
        // A name that only looks timestamped spoils nothing for the rest.
        let (classifier, extension) = match tail.strip_prefix('-') {
            Some(classified) => match classified.split_once('.') {
                Some(parts) => parts,
                None => continue,
            },
            None => match tail.strip_prefix('.') {
                Some(extension) => ("", extension),
                None => continue,
            },
        };
        let entry = newest
            .entry((classifier.to_owned(), extension.to_owned()))
            .or_insert_with(|| (timestamp.to_owned(), build));
        if (timestamp, build) > (entry.0.as_str(), entry.1) {
            *entry = (timestamp.to_owned(), build);
        }
    }
    let (timestamp, build) = newest
        .values()
        .max_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)))?
        .clone();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata modelVersion=\"1.1.0\">\n  <groupId>{}</groupId>\n  <artifactId>{}</artifactId>\n  <version>{}</version>\n  <versioning>\n    <snapshot>\n      <timestamp>{timestamp}</timestamp>\n      <buildNumber>{build}</buildNumber>\n    </snapshot>\n    <lastUpdated>{last_updated}</lastUpdated>\n    <snapshotVersions>\n",
        escape(group),
        escape(artifact),
        escape(version)
    );
    for ((classifier, extension), (timestamp, build)) in &newest {
        xml.push_str("      <snapshotVersion>\n");
        if !classifier.is_empty() {
            xml.push_str(&format!(
                "        <classifier>{}</classifier>\n",
                escape(classifier.as_str())
            ));
        }
        xml.push_str(&format!(
            "        <extension>{}</extension>\n        <value>{}-{timestamp}-{build}</value>\n        <updated>{last_updated}</updated>\n      </snapshotVersion>\n",
            escape(extension.as_str()),
            escape(base)
        ));
    }
    xml.push_str("    </snapshotVersions>\n  </versioning>\n</metadata>\n");
    Some(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_files_checksums_and_metadata() {
        assert_eq!(
            parse(&["org", "acme", "widget", "1.0", "widget-1.0.jar.sha1"]),
            Some(Path::File {
                group: "org.acme".into(),
                artifact: "widget".into(),
                version: "1.0".into(),
                file: "widget-1.0.jar".into(),
                checksum: Some(Checksum::Sha1),
            })
        );
        assert_eq!(
            parse(&["org", "acme", "widget", "maven-metadata.xml"]),
            Some(Path::Metadata {
                group: "org.acme".into(),
                artifact: "widget".into(),
                checksum: None,
            })
        );
        assert_eq!(
            parse(&["org", "widget", "1.0-SNAPSHOT", "maven-metadata.xml.md5"]),
            Some(Path::SnapshotMetadata {
                group: "org".into(),
                artifact: "widget".into(),
                version: "1.0-SNAPSHOT".into(),
                checksum: Some(Checksum::Md5),
            })
        );
        // Not named after the artifact, or no group: nothing a client writes.
        assert_eq!(parse(&["org", "widget", "1.0", "other-1.0.jar"]), None);
        assert_eq!(parse(&["org", "widget", "1.0", "widget-2.0.jar"]), None);
        assert_eq!(
            parse(&["org", "..", "widget", "1.0", "widget-1.0.jar"]),
            None
        );
        assert_eq!(parse(&["org", "wid\0get", "1.0", "wid\0get-1.0.jar"]), None);
        assert_eq!(parse(&["widget", "1.0", "widget-1.0.jar"]), None);
        assert_eq!(parse(&["widget", "maven-metadata.xml"]), None);
        assert_eq!(Checksum::split(".sha1"), (".sha1", None));
        assert_eq!(Checksum::Md5.of(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn metadata_names_latest_and_release() {
        let versions = [
            "1.0".to_owned(),
            "1.1".to_owned(),
            "2.0-SNAPSHOT".to_owned(),
        ];
        let xml = metadata("org.acme", "a&b", &versions, "20261204101500");
        assert!(xml.contains("<latest>2.0-SNAPSHOT</latest>"), "{xml}");
        assert!(xml.contains("<release>1.1</release>"), "{xml}");
        assert!(xml.contains("<artifactId>a&amp;b</artifactId>"), "{xml}");
        assert!(
            xml.contains("<version>1.0</version>\n      <version>1.1</version>"),
            "{xml}"
        );
    }

    #[test]
    fn snapshot_metadata_points_at_the_newest_build() {
        let files = [
            "widget-1.0-20261204.101500-1.jar",
            "widget-1.0-20261204.111500-2.jar",
            "widget-1.0-20261204.111500-2.pom",
            "widget-1.0-20261204.111500-2-sources.jar",
            "widget-1.0-SNAPSHOT.jar",
            "widget-1.0-20261204.121500-3x",
        ];
        let xml =
            snapshot_metadata("org", "widget", "1.0-SNAPSHOT", &files, "20261204111600").unwrap();
        assert!(
            xml.contains(
                "<timestamp>20261204.111500</timestamp>\n      <buildNumber>2</buildNumber>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<classifier>sources</classifier>\n        <extension>jar</extension>\n        <value>1.0-20261204.111500-2</value>"), "{xml}");
        assert!(xml.contains("<extension>pom</extension>"), "{xml}");
        assert!(!xml.contains("20261204.101500-1"), "{xml}");
        assert_eq!(
            snapshot_metadata(
                "org",
                "widget",
                "1.0-SNAPSHOT",
                &["widget-1.0-SNAPSHOT.jar"],
                "x"
            ),
            None
        );
    }
}
