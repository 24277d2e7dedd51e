//! The feed types: one per package format. The list is the registry of
//! ecosystems; each entry's rules live in its module beside this one.

use std::fmt;
use std::str::FromStr;

macro_rules! feed_types {
    ($($variant:ident => $name:literal, $purl:literal);* $(;)?) => {
        /// The package format a feed holds; packages only move between feeds of one type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum FeedType { $($variant),* }

        impl FeedType {
            pub const ALL: &'static [FeedType] = &[$(FeedType::$variant),*];

            /// The lower-case name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $(FeedType::$variant => $name),* }
            }

            /// The package-URL type of the feed's packages (`pkg:TYPE/…`).
            pub fn purl_type(self) -> &'static str {
                match self { $(FeedType::$variant => $purl),* }
            }
        }

        /// In the OpenAPI document: one of the lower-case names.
        impl utoipa::PartialSchema for FeedType {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($name),*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for FeedType {}
    };
}

feed_types! {
    Universal => "universal", "universal";
    Nuget => "nuget", "nuget";
    // Chocolatey and PowerShell packages are NuGet packages.
    Chocolatey => "chocolatey", "nuget";
    Powershell => "powershell", "nuget";
    Npm => "npm", "npm";
    Pypi => "pypi", "pypi";
    Maven => "maven", "maven";
    Docker => "docker", "docker";
    Helm => "helm", "helm";
    Rubygems => "rubygems", "gem";
    Debian => "debian", "deb";
    Rpm => "rpm", "rpm";
    Conda => "conda", "conda";
    Cran => "cran", "cran";
    Vsix => "vsix", "vsix";
    Apk => "apk", "apk";
}

impl FromStr for FeedType {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        FeedType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| {
                let names: Vec<_> = FeedType::ALL.iter().map(|t| t.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

impl serde::Serialize for FeedType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Lets `FromRow` read the `feed_type` column.
impl TryFrom<String> for FeedType {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for FeedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_types_parse_case_insensitively() {
        assert_eq!("NuGet".parse::<FeedType>().unwrap(), FeedType::Nuget);
        assert_eq!("pypi".parse::<FeedType>().unwrap().as_str(), "pypi");
        assert!("zip".parse::<FeedType>().unwrap_err().contains("universal"));
    }
}
