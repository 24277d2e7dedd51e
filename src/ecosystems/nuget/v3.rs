//! NuGet's v3 protocol as data (contract section 15): the service index, the
//! flat container's version list, registration (versions inline), search
//! results, and what they show of a `.nuspec`. HTTP is
//! `http::native::nuget`'s.
//!
//! Followed: the NuGet server API reference (learn.microsoft.com/nuget/api:
//! service-index, package-base-address-resource, registration-base-url-
//! resource, search-query-service-resource, package-publish-resource) and
//! what NuGet.Client deserialises (NuGet.Protocol's `ServiceIndexResourceV3`,
//! `RegistrationUtility`, `PackageMetadataResourceV3`, `RawSearchResourceV3`,
//! `HttpFileSystemBasedFindPackageByIdResource`, `PackageUpdateResource`).

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Value};

/// What the documents show of a `.nuspec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nuspec {
    pub description: String,
    pub authors: String,
    pub groups: Vec<DependencyGroup>,
}

/// A `<group>` of `<dependencies>`, or the dependencies without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyGroup {
    pub target_framework: Option<String>,
    /// Each dependency's id and version range, as the `.nuspec` writes them.
    pub dependencies: Vec<(String, String)>,
}

/// The parts of a `.nuspec` the documents show; what is missing or unreadable
/// is empty (identity was checked when the package arrived).
pub fn read_nuspec(text: &str) -> Nuspec {
    let field = |name: &str| {
        super::xml_text(text, &["package", "metadata", name])
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let mut nuspec = Nuspec {
        description: field("description"),
        authors: field("authors"),
        groups: Vec::new(),
    };
    let mut reader = Reader::from_str(text);
    let mut open: Vec<String> = Vec::new();
    let local = |name: &[u8]| {
        let name = String::from_utf8_lossy(name).into_owned();
        name.rsplit(':').next().unwrap_or_default().to_owned()
    };
    let attribute = |element: &quick_xml::events::BytesStart<'_>, wanted: &str| {
        element.attributes().flatten().find_map(|a| {
            (local(a.key.as_ref()) == wanted)
                .then(|| a.unescape_value().ok().map(|v| v.trim().to_owned()))
                .flatten()
        })
    };
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(event) => event,
        };
        match event {
            Event::Start(ref element) | Event::Empty(ref element)
                if local(element.name().as_ref()) == "group"
                    && open.ends_with(&["metadata".into(), "dependencies".into()]) =>
            {
                nuspec.groups.push(DependencyGroup {
                    target_framework: attribute(element, "targetFramework"),
                    dependencies: Vec::new(),
                });
                if matches!(event, Event::Start(_)) {
                    open.push("group".into());
                }
            }
            Event::Start(ref element) | Event::Empty(ref element)
                if local(element.name().as_ref()) == "dependency" =>
            {
                if matches!(event, Event::Start(_)) {
                    open.push("dependency".into());
                }
                let in_group = open
                    .iter()
                    .rev()
                    .find(|o| *o != "dependency")
                    .is_some_and(|o| o == "group");
                let in_dependencies = open
                    .iter()
                    .rev()
                    .find(|o| *o != "dependency")
                    .is_some_and(|o| o == "dependencies");
                if !in_group && !in_dependencies {
                    continue;
                }
                if !in_group && nuspec.groups.iter().all(|g| g.target_framework.is_some()) {
                    nuspec.groups.insert(0, DependencyGroup::default());
                }
                let id = attribute(element, "id").unwrap_or_default();
                let range = attribute(element, "version").unwrap_or_default();
                let group = if in_group {
                    nuspec.groups.last_mut()
                } else {
                    nuspec
                        .groups
                        .iter_mut()
                        .find(|g| g.target_framework.is_none())
                };
                if let (Some(group), false) = (group, id.is_empty()) {
                    group.dependencies.push((id, range));
                }
            }
            Event::Start(element) => open.push(local(element.name().as_ref())),
            Event::End(_) => {
                open.pop();
            }
            _ => {}
        }
    }
    nuspec
}

/// The service index of a feed whose base is `base`
/// (`https://host/nuget/{feed}`): every resource type NuGet.Client looks for,
/// each version it may ask by.
pub fn service_index(base: &str) -> Value {
    let resource = |id: String, kind: &str, comment: &str| json!({ "@id": id, "@type": kind, "comment": comment });
    let flat = format!("{base}/v3/flatcontainer/");
    let registration = format!("{base}/v3/registration/");
    let search = format!("{base}/v3/query");
    let publish = format!("{base}/v2/package");
    let mut resources = vec![
        resource(
            flat,
            "PackageBaseAddress/3.0.0",
            "Package contents (.nupkg, .nuspec)",
        ),
        resource(publish, "PackagePublish/2.0.0", "Push and delete"),
    ];
    for kind in [
        "RegistrationsBaseUrl",
        "RegistrationsBaseUrl/3.0.0-beta",
        "RegistrationsBaseUrl/3.0.0-rc",
        "RegistrationsBaseUrl/3.4.0",
        "RegistrationsBaseUrl/3.6.0",
    ] {
        resources.push(resource(registration.clone(), kind, "Package metadata"));
    }
    for kind in [
        "SearchQueryService",
        "SearchQueryService/3.0.0-beta",
        "SearchQueryService/3.0.0-rc",
        "SearchQueryService/3.4.0",
        "SearchQueryService/3.5.0",
    ] {
        resources.push(resource(search.clone(), kind, "Search"));
    }
    json!({ "version": "3.0.0", "resources": resources })
}

/// The flat container's `{id}/index.json`: normalised, lower-case versions,
/// lowest first.
pub fn flat_versions(versions: &[String]) -> Value {
    json!({ "versions": versions })
}

/// One version as registration and search show it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The id as the package spells it.
    pub id: String,
    pub version: String,
    pub nuspec: Nuspec,
    /// When it arrived (RFC 3339).
    pub published: String,
    /// Its `.nupkg` in the flat container.
    pub content: String,
    /// Its registration leaf.
    pub leaf: String,
    /// The `.nupkg`'s SHA-512 in base64, as NuGet's catalog writes
    /// `packageHash` (what a connector to this feed checks).
    pub package_hash: Option<String>,
}

fn dependency_groups(nuspec: &Nuspec) -> Value {
    nuspec
        .groups
        .iter()
        .map(|group| {
            let mut value = json!({
                "@type": "PackageDependencyGroup",
                "dependencies": group.dependencies.iter().map(|(id, range)| {
                    json!({ "@type": "PackageDependency", "id": id, "range": range })
                }).collect::<Vec<_>>(),
            });
            if let Some(framework) = &group.target_framework {
                value["targetFramework"] = json!(framework);
            }
            value
        })
        .collect()
}

impl Entry {
    fn catalog_entry(&self) -> Value {
        json!({
            "@id": self.leaf,
            "@type": "PackageDetails",
            "id": self.id,
            "version": self.version,
            "listed": true,
            "published": self.published,
            "description": self.nuspec.description,
            "authors": self.nuspec.authors,
            "dependencyGroups": dependency_groups(&self.nuspec),
            "packageContent": self.content,
            "packageHash": self.package_hash,
            "packageHashAlgorithm": self.package_hash.as_ref().map(|_| "SHA512"),
        })
    }

    fn leaf(&self, index: &str) -> Value {
        json!({
            "@id": self.leaf,
            "@type": "Package",
            "catalogEntry": self.catalog_entry(),
            "packageContent": self.content,
            "registration": index,
        })
    }
}

/// Registration's `{id}/index.json`: one page holding every version inline,
/// lowest first (`entries` are in NuGet's order).
pub fn registration_index(index: &str, entries: &[Entry]) -> Value {
    let lower = entries
        .first()
        .map(|e| e.version.as_str())
        .unwrap_or_default();
    let upper = entries
        .last()
        .map(|e| e.version.as_str())
        .unwrap_or_default();
    json!({
        "@id": index,
        "@type": ["catalog:CatalogRoot", "PackageRegistration", "catalog:Permalink"],
        "count": 1,
        "items": [{
            "@id": format!("{index}#page/{lower}/{upper}"),
            "@type": "catalog:CatalogPage",
            "count": entries.len(),
            "lower": lower,
            "upper": upper,
            "parent": index,
            "items": entries.iter().map(|e| e.leaf(index)).collect::<Vec<_>>(),
        }],
    })
}

/// A registration leaf (`{id}/{version}.json`).
pub fn registration_leaf(index: &str, entry: &Entry) -> Value {
    json!({
        "@id": entry.leaf,
        "@type": ["Package", "http://schema.nuget.org/catalog#Permalink"],
        "catalogEntry": entry.catalog_entry(),
        "listed": true,
        "packageContent": entry.content,
        "published": entry.published,
        "registration": index,
    })
}

/// One package in search results: every version a search shows, lowest
/// first (never none); the newest describes the package.
#[derive(Debug, Clone)]
pub struct Found {
    pub registration: String,
    pub versions: Vec<Entry>,
}

/// A search's answer: `totalHits` and the page of packages asked for.
pub fn search(total: usize, found: &[Found]) -> Value {
    json!({
        "totalHits": total,
        "data": found.iter().filter_map(|f| Some((f, f.versions.last()?))).map(|(f, newest)| json!({
            "@id": f.registration,
            "@type": "Package",
            "registration": f.registration,
            "id": newest.id,
            "version": newest.version,
            "description": newest.nuspec.description,
            "authors": newest.nuspec.authors,
            "totalDownloads": 0,
            "verified": false,
            "packageTypes": [{ "name": "Dependency" }],
            "versions": f.versions.iter().map(|v| json!({
                "version": v.version, "downloads": 0, "@id": v.leaf,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Whether a version needs SemVer 2.0.0 to be read (a dotted pre-release
/// label or build metadata): search leaves it out unless the client says it
/// understands them (`semVerLevel=2.0.0`), as nuget.org does.
pub fn is_semver2(version: &str) -> bool {
    version.contains('+')
        || version
            .split_once('-')
            .is_some_and(|(_, label)| label.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuspecs_give_description_and_dependency_groups() {
        let text = r#"<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata><id>A</id><version>1.0.0</version><authors>Ann &amp; Bo</authors><description>Does a &lt;thing&gt;.</description><dependencies><group targetFramework="net8.0"><dependency id="B" version="[1.0.0, )" /></group><group targetFramework="netstandard2.0" /></dependencies></metadata></package>"#;
        let nuspec = read_nuspec(text);
        assert_eq!(nuspec.description, "Does a <thing>.");
        assert_eq!(nuspec.authors, "Ann & Bo");
        assert_eq!(
            nuspec.groups,
            vec![
                DependencyGroup {
                    target_framework: Some("net8.0".into()),
                    dependencies: vec![("B".into(), "[1.0.0, )".into())],
                },
                DependencyGroup {
                    target_framework: Some("netstandard2.0".into()),
                    dependencies: vec![],
                },
            ]
        );
        let flat = read_nuspec(
            r#"<package><metadata><dependencies><dependency id="C" version="2.0" /></dependencies></metadata></package>"#,
        );
        assert_eq!(
            flat.groups,
            vec![DependencyGroup {
                target_framework: None,
                dependencies: vec![("C".into(), "2.0".into())],
            }]
        );
    }

    #[test]
    fn the_service_index_names_every_resource() {
        let index = service_index("http://h/nuget/f");
        let types: Vec<&str> = index["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["@type"].as_str().unwrap())
            .collect();
        for wanted in [
            "PackageBaseAddress/3.0.0",
            "PackagePublish/2.0.0",
            "RegistrationsBaseUrl/3.6.0",
            "SearchQueryService/3.5.0",
        ] {
            assert!(types.contains(&wanted), "{wanted}");
        }
        assert_eq!(index["version"], "3.0.0");
    }

    #[test]
    fn semver2_versions() {
        assert!(is_semver2("1.0.0-beta.1"));
        assert!(is_semver2("1.0.0+build"));
        assert!(!is_semver2("1.0.0-beta1"));
        assert!(!is_semver2("1.0.0"));
    }
}
