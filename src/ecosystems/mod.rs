//! Everything specific to one package format, one module per ecosystem: which
//! names mean the same package (the keys stored beside each name), how its
//! files say which package they are (contract section 10), and, as they come,
//! its version order (`version` holds the order all types share today) and its
//! native endpoint. Adding an ecosystem is a variant of [`FeedType`], one
//! module here and its lines in the dispatching functions below; types whose
//! files say nothing the server reads share [`generic`].
//!
//! Identity is read from the file itself: the `.nuspec` of a `.nupkg`,
//! `package/package.json` of an npm `.tgz`, a wheel's `METADATA` or an sdist's
//! `PKG-INFO` (checked against the file name), a `.upack`'s `upack.json`, as
//! the ecosystem's own client reads them, within the bounds of `archive`.
//! Errors complete the sentence "The file …".

mod apk;
mod archive;
mod conda;
mod cran;
mod debian;
mod docker;
mod feed_type;
pub mod generic;
mod integrity;
pub mod maven;
pub mod npm;
pub mod nuget;
pub mod pypi;
mod rpm;
mod rubygems;
mod semver;
mod universal;
mod version;
mod zip;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

pub use feed_type::FeedType;
pub use integrity::{path_segment, Integrity};
pub use version::{
    compare_versions, is_prerelease, latest, may_be_latest, reserved_version, sort_in_order,
    version_refusal,
};

/// Whether a feed type holds NuGet packages (NuGet, Chocolatey, PowerShell).
pub fn is_nuget(feed_type: FeedType) -> bool {
    matches!(
        feed_type,
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell
    )
}

/// The canonical group and name of a package in a feed of `feed_type`, from
/// what a client sent; either may be absent (a history filter may name only
/// one). Err describes a group that cannot name anything.
pub fn canonical(
    feed_type: FeedType,
    group: Option<&str>,
    name: Option<&str>,
) -> Result<(Option<String>, Option<String>), &'static str> {
    match feed_type {
        FeedType::Npm => npm::canonical(group, name),
        FeedType::Docker => Ok(docker::canonical(group, name)),
        _ => Ok((group.map(str::to_owned), name.map(str::to_owned))),
    }
}

/// The normalised form of a canonical group, as stored in `group_key` columns.
pub fn group_key(feed_type: FeedType, group: &str) -> String {
    match feed_type {
        t if is_nuget(t) => nuget::key(group),
        _ => group.to_owned(),
    }
}

/// The normalised form of a canonical name, as stored in `name_key` columns.
pub fn name_key(feed_type: FeedType, name: &str) -> String {
    match feed_type {
        FeedType::Pypi => pypi::normalise(name),
        t if is_nuget(t) => nuget::key(name),
        _ => name.to_owned(),
    }
}

/// The one spelling of a version for lookups, promotions and conflicts, as
/// stored in `version_key` columns: where the ecosystem says two spellings
/// are one version (PyPI's `1.0RC1` and `1.0rc1`, NuGet's `1.0` and `1.0.0`),
/// they have one key. A version the ecosystem cannot read keeps the key it
/// always had. Changing these rules needs a `store::keys` revision, which
/// re-keys the rows stored before.
pub fn version_key(feed_type: FeedType, version: &str) -> String {
    match feed_type {
        FeedType::Pypi => pypi::canonical(version).unwrap_or_else(|| version.to_owned()),
        t if is_nuget(t) => nuget::normalized(version).unwrap_or_else(|| nuget::key(version)),
        _ => version.to_owned(),
    }
}

/// What a file says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub group: Option<String>,
    pub name: String,
    pub version: String,
    /// `file=NAME` for a PyPI file (a version has several); empty otherwise.
    pub qualifier: String,
    /// The ecosystem's own description of the file, kept with its record so
    /// that metadata documents never open archives: an npm tarball's
    /// `package.json`. `None` where the native endpoint needs nothing.
    pub metadata: Option<String>,
}

/// An ecosystem's identity reader: the file, and its name from the URL.
/// `Ok(None)`: this ecosystem's files say nothing, so the query string must.
type Reader = fn(BufReader<File>, Option<&str>) -> Result<Option<Found>, String>;

/// The registry: which reader each feed type's files are read with.
fn identity_reader(feed_type: FeedType) -> Reader {
    match feed_type {
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
            |file, _| nuget::identity(file).map(Some)
        }
        FeedType::Npm => |file, _| npm::identity(file).map(Some),
        FeedType::Pypi => |file, name| {
            let name = name.ok_or(
                "has no file name: a PyPI file is uploaded to /api/packages/{feed}/upload/{fileName}",
            )?;
            pypi::identity(file, name).map(Some)
        },
        FeedType::Universal => |file, _| universal::identity(file).map(Some),
        _ => generic::identity,
    }
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
    identity_reader(feed_type)(file, file_name)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::archive::tar_scan;
    use super::npm::{identity as npm, is_npm_manifest};
    use super::nuget::{identity as nupkg, xml_text};
    use super::pypi::{identity as pypi, normalise};
    use super::universal::identity as upack;
    use super::zip::tests::by_hand;
    use super::*;

    type Tar = tar::Builder<flate2::write::GzEncoder<Vec<u8>>>;

    const PACKAGE_JSON: &[u8] = br#"{"name":"@scope/a","version":"1.0.0"}"#;

    fn found(group: Option<&str>, name: &str, version: &str) -> Found {
        Found {
            group: group.map(str::to_owned),
            name: name.to_owned(),
            version: version.to_owned(),
            qualifier: String::new(),
            metadata: None,
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
        let found = nupkg(Cursor::new(zip_of(&[
            ("_rels/.rels", b"<Relationships/>"),
            ("Contoso.nuspec", nuspec.as_bytes()),
        ])))?;
        assert_eq!(
            found.metadata.as_deref(),
            Some(nuspec.as_str()),
            "kept whole"
        );
        Ok(Found {
            metadata: None,
            ..found
        })
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
            ])))
            .map(|found| found.name),
            Ok("A".to_owned())
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
            Ok(Found {
                metadata: Some(String::from_utf8(PACKAGE_JSON.to_vec()).unwrap()),
                ..found(Some("@scope"), "a", "1.0.0")
            })
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
                metadata: Some(format!("Name: {name}\nVersion: 1.0\n")),
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
