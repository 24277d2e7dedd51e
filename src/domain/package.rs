use std::fmt;

use super::FeedType;
use crate::ecosystems::{canonical, group_key, name_key, version_key};

const MAX_IDENTIFIER_CHARS: usize = 250;

/// A package group, name or version as a client sent it: trimmed, not empty,
/// at most 250 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    /// Err is the broken rule, phrased to follow a field name.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim();
        if value.is_empty() {
            Err("must not be empty")
        } else if value.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else if value.chars().count() > MAX_IDENTIFIER_CHARS {
            Err("must be at most 250 characters long")
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file's qualifier (`file=Django-5.0.6.tar.gz`, `arch=amd64`), trimmed; empty
/// means the version's only (or unnamed) file. Err is the broken rule, phrased to
/// follow a field name.
/// `[group/]name` split at the last '/', as pgutil splits it: "@babel/runtime"
/// → (Some("@babel"), "runtime"), "library/nginx", "org/example/lib" (Maven's
/// dotted group may hold no slash, but a Docker repository's path may).
pub fn split_package(package: &str) -> (Option<&str>, &str) {
    match package.rsplit_once('/') {
        Some((group, name)) => (Some(group), name),
        None => (None, package),
    }
}

pub fn parse_qualifier(raw: &str) -> Result<String, &'static str> {
    let value = raw.trim();
    if value.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else if value.chars().count() > MAX_IDENTIFIER_CHARS {
        Err("must be at most 250 characters long")
    } else {
        Ok(value.to_owned())
    }
}

/// A package version's identity inside a feed of a given type.
///
/// `group`, `name` and `version` are the canonical display forms (npm scopes carry
/// their `@`, a docker repository is one name); the `*_key` methods give the
/// normalised forms that are stored beside them, indexed and compared. This is the
/// only place where identity rules per feed type live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageId {
    feed_type: FeedType,
    group: String,
    name: String,
    version: String,
}

impl PackageId {
    /// Err is a sentence fragment describing a group that cannot name anything.
    pub fn new(
        feed_type: FeedType,
        group: Option<&Identifier>,
        name: &Identifier,
        version: &Identifier,
    ) -> Result<Self, &'static str> {
        let (group, name) = canonical(
            feed_type,
            group.map(Identifier::as_str),
            Some(name.as_str()),
        )?;
        let (group, name) = (group.unwrap_or_default(), name.unwrap_or_default());
        Ok(Self {
            feed_type,
            group,
            name,
            version: version.as_str().to_owned(),
        })
    }

    pub fn feed_type(&self) -> FeedType {
        self.feed_type
    }

    /// The same package at another version (a `latest` resolved to a real one).
    pub fn with_version(&self, version: &Identifier) -> PackageId {
        PackageId {
            version: version.as_str().to_owned(),
            ..self.clone()
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// `group/name`, or the name alone when there is no group.
    pub fn full_name(&self) -> String {
        if self.group.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.group, self.name)
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn group_key(&self) -> String {
        group_key(self.feed_type, &self.group)
    }

    pub fn name_key(&self) -> String {
        name_key(self.feed_type, &self.name)
    }

    pub fn version_key(&self) -> String {
        version_key(self.feed_type, &self.version)
    }
}

/// A history query's package filter, normalised per feed type: the history mixes
/// feed types, and `newtonsoft.json` names a NuGet package but not a Maven one.
#[derive(Debug, Clone, Default)]
pub struct PackageFilter {
    pub group: Option<Identifier>,
    pub name: Option<Identifier>,
    pub version: Option<Identifier>,
}

/// The normalised keys a filter asks for, and the feed types for which they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterKeys {
    pub feed_types: Vec<FeedType>,
    pub group_key: Option<String>,
    pub name_key: Option<String>,
    pub version_key: Option<String>,
}

impl PackageFilter {
    pub fn is_empty(&self) -> bool {
        self.group.is_none() && self.name.is_none() && self.version.is_none()
    }

    /// One entry per distinct set of keys, with every feed type that yields it;
    /// empty when the filter is. A group that names no npm scope ("@") matches no
    /// npm package rather than failing the query.
    pub fn keys(&self) -> Vec<FilterKeys> {
        let mut out: Vec<FilterKeys> = Vec::new();
        if self.is_empty() {
            return out;
        }
        for &feed_type in FeedType::ALL {
            let Ok((group, name)) = canonical(
                feed_type,
                self.group.as_ref().map(Identifier::as_str),
                self.name.as_ref().map(Identifier::as_str),
            ) else {
                continue;
            };
            let keys = (
                group.map(|g| group_key(feed_type, &g)),
                name.map(|n| name_key(feed_type, &n)),
                self.version
                    .as_ref()
                    .map(|v| version_key(feed_type, v.as_str())),
            );
            match out.iter_mut().find(|k| {
                (&k.group_key, &k.name_key, &k.version_key) == (&keys.0, &keys.1, &keys.2)
            }) {
                Some(existing) => existing.feed_types.push(feed_type),
                None => out.push(FilterKeys {
                    feed_types: vec![feed_type],
                    group_key: keys.0,
                    name_key: keys.1,
                    version_key: keys.2,
                }),
            }
        }
        out
    }
}

/// "@babel/runtime 7.21.0", the way people write a package version in prose.
impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} {}", self.name, self.version)
        } else {
            write!(f, "{}/{} {}", self.group, self.name, self.version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(feed_type: FeedType, group: Option<&str>, name: &str, version: &str) -> PackageId {
        let group = group.map(|g| Identifier::parse(g).unwrap());
        PackageId::new(
            feed_type,
            group.as_ref(),
            &Identifier::parse(name).unwrap(),
            &Identifier::parse(version).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn identifiers_reject_empty_control_and_long_values() {
        assert_eq!(Identifier::parse("  x ").unwrap().as_str(), "x");
        assert!(Identifier::parse(" \t ").is_err());
        assert!(Identifier::parse("a\0b").is_err());
        assert!(Identifier::parse("a\u{7f}").is_err());
        assert!(Identifier::parse(&"é".repeat(250)).is_ok());
        assert!(Identifier::parse(&"é".repeat(251)).is_err());
    }

    #[test]
    fn npm_scopes_gain_their_at_sign() {
        let with = id(FeedType::Npm, Some("@babel"), "runtime", "7.21.0");
        let without = id(FeedType::Npm, Some("babel"), "runtime", "7.21.0");
        let in_name = id(FeedType::Npm, None, "@babel/runtime", "7.21.0");
        assert_eq!(with, without);
        assert_eq!(with, in_name);
        assert_eq!(with.group(), "@babel");
        assert_eq!(with.to_string(), "@babel/runtime 7.21.0");
        let group = Identifier::parse("@").unwrap();
        let name = Identifier::parse("x").unwrap();
        assert!(PackageId::new(FeedType::Npm, Some(&group), &name, &name).is_err());
    }

    #[test]
    fn nuget_compares_name_and_version_case_insensitively() {
        let a = id(FeedType::Nuget, None, "Newtonsoft.Json", "13.0.1-Beta");
        let b = id(FeedType::Nuget, None, "newtonsoft.json", "13.0.1-beta");
        assert_eq!(
            (a.name_key(), a.version_key()),
            (b.name_key(), b.version_key())
        );
        assert_eq!(a.name(), "Newtonsoft.Json");
    }

    #[test]
    fn pypi_names_are_pep503_normalised() {
        let a = id(FeedType::Pypi, None, "Django_REST..framework", "3.15");
        assert_eq!(a.name_key(), "django-rest-framework");
        assert_eq!(a.version_key(), "3.15");
    }

    #[test]
    fn docker_repository_is_group_and_name_joined() {
        let split = id(FeedType::Docker, Some("library"), "nginx", "1.27");
        let whole = id(FeedType::Docker, None, "library/nginx", "1.27");
        assert_eq!(split, whole);
        assert_eq!(split.group(), "");
    }

    #[test]
    fn filters_group_feed_types_by_the_keys_they_produce() {
        let filter = PackageFilter {
            name: Some(Identifier::parse("Django_REST").unwrap()),
            ..PackageFilter::default()
        };
        let keys = filter.keys();
        let for_type = |t| keys.iter().find(|k| k.feed_types.contains(&t)).unwrap();
        assert_eq!(
            for_type(FeedType::Pypi).name_key.as_deref(),
            Some("django-rest")
        );
        assert_eq!(
            for_type(FeedType::Nuget).name_key.as_deref(),
            Some("django_rest")
        );
        assert_eq!(
            for_type(FeedType::Maven).name_key.as_deref(),
            Some("Django_REST")
        );
        assert_eq!(for_type(FeedType::Maven).group_key, None);
        assert_eq!(keys.len(), 3);
        assert!(PackageFilter::default().keys().is_empty());

        let npm = PackageFilter {
            group: Some(Identifier::parse("babel").unwrap()),
            ..PackageFilter::default()
        };
        let keys = npm.keys();
        let npm_keys = keys
            .iter()
            .find(|k| k.feed_types.contains(&FeedType::Npm))
            .unwrap();
        assert_eq!(npm_keys.group_key.as_deref(), Some("@babel"));
    }

    #[test]
    fn other_types_match_exactly() {
        let a = id(FeedType::Maven, Some("org.Apache"), "Commons", "1.0");
        assert_eq!(
            (a.group_key().as_str(), a.name_key().as_str()),
            ("org.Apache", "Commons")
        );
    }
}
