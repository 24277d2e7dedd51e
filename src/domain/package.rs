use std::fmt;

use super::FeedType;

pub const MAX_IDENTIFIER_CHARS: usize = 250;

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
        let mut group = group.map(|g| g.as_str().to_owned()).unwrap_or_default();
        let mut name = name.as_str().to_owned();
        match feed_type {
            FeedType::Npm => {
                // Accept "@scope/name" in the name field too, as npm itself writes it.
                if group.is_empty() && name.starts_with('@') {
                    if let Some((scope, rest)) = name.split_once('/') {
                        (group, name) = (scope.to_owned(), rest.to_owned());
                    }
                }
                if !group.is_empty() {
                    let scope = group.trim_start_matches('@');
                    if scope.is_empty() {
                        return Err("must name an npm scope after '@'");
                    }
                    group = format!("@{scope}");
                }
            }
            // pgutil splits "library/nginx" into a group and a name; for docker the
            // repository is the whole path.
            FeedType::Docker if !group.is_empty() => {
                name = format!("{}/{}", group.trim_end_matches('/'), name);
                group.clear();
            }
            _ => {}
        }
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

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn group_key(&self) -> String {
        match self.feed_type {
            FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
                self.group.to_lowercase()
            }
            _ => self.group.clone(),
        }
    }

    pub fn name_key(&self) -> String {
        match self.feed_type {
            FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
                self.name.to_lowercase()
            }
            FeedType::Pypi => pep503_normalise(&self.name),
            _ => self.name.clone(),
        }
    }

    pub fn version_key(&self) -> String {
        match self.feed_type {
            FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
                self.version.to_lowercase()
            }
            _ => self.version.clone(),
        }
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

/// PEP 503: lower-case, and every run of `-`, `_` and `.` becomes one `-`.
fn pep503_normalise(name: &str) -> String {
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
    fn other_types_match_exactly() {
        let a = id(FeedType::Maven, Some("org.Apache"), "Commons", "1.0");
        assert_eq!(
            (a.group_key().as_str(), a.name_key().as_str()),
            ("org.Apache", "Commons")
        );
    }
}
