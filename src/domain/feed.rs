use std::fmt;

/// A feed name: 1–100 letters, digits, `-`, `_` or `.`.
/// Feed names compare case-insensitively; [`FeedName::key`] is the form that is
/// stored in the unique `name_key` column and used for every lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedName(String);

impl FeedName {
    /// The rule, phrased so that callers can append it to a field name.
    pub const RULE: &'static str = "must be 1 to 100 letters, digits, '-', '_' or '.'";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        let valid = (1..=100).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// In the OpenAPI document: the same rule as a pattern.
impl utoipa::PartialSchema for FeedName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Za-z0-9._-]{1,100}$"))
            .description(Some(
                "A feed's name: 1 to 100 letters, digits, '-', '_' or '.'.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FeedName {}

impl fmt::Display for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_names_follow_the_character_rule() {
        assert_eq!(
            FeedName::parse(" Nuget-Approved_1.x ").unwrap().as_str(),
            "Nuget-Approved_1.x"
        );
        assert_eq!(
            FeedName::parse("Nuget-Approved").unwrap().key(),
            "nuget-approved"
        );
        for bad in ["", " ", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(FeedName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(FeedName::parse(&"x".repeat(100)).is_ok());
    }
}
