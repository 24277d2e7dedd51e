//! Free text (comments, descriptions): anything printable, plus tabs and line
//! breaks. Other control characters (NUL among them, which PostgreSQL cannot
//! store) are refused.

/// The rule, phrased to follow a field name.
pub const FREE_TEXT_RULE: &str =
    "must not contain control characters other than tabs and line breaks";

pub fn is_free_text(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A description of a feed or a key: free text of at most 1,000 characters,
/// kept as given. The one rule for the API and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 1000;

    /// `None` for blank text, which says nothing; Err is the broken rule,
    /// phrased to follow a field name.
    pub fn parse(text: &str) -> Result<Option<Description>, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else if text.chars().count() > Self::MAX_CHARS {
            Err(format!(
                "must be at most {} characters long",
                Self::MAX_CHARS
            ))
        } else if !is_free_text(text) {
            Err(FREE_TEXT_RULE.to_owned())
        } else {
            Ok(Some(Description(text.to_owned())))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key's name, recorded as the user of every promotion it makes (and
/// so in the history and the logs): 1 to 100 characters, trimmed, without
/// control characters. The one rule for the API and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    /// Err is the broken rule, phrased to follow a field name.
    pub fn parse(text: &str) -> Result<KeyName, &'static str> {
        let name = text.trim();
        if name.is_empty() {
            Err("must not be empty")
        } else if name.chars().count() > 100 {
            Err("must be at most 100 characters long")
        } else if name.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(KeyName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `word` after the article it takes as it is said: "an npm", "an rpm", "an
/// apk", "a nuget", "a universal" (feed types and package-URL types are read
/// letter by letter or as words).
pub fn with_article(word: &str) -> String {
    let spoken_vowel = matches!(word, "npm" | "rpm" | "apk")
        || word.starts_with(['a', 'e', 'i', 'o', 'A', 'E', 'I', 'O']);
    format!("{} {word}", if spoken_vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_follow_the_sound() {
        assert_eq!(with_article("npm"), "an npm");
        assert_eq!(with_article("rpm"), "an rpm");
        assert_eq!(with_article("apk"), "an apk");
        assert_eq!(with_article("nuget"), "a nuget");
        assert_eq!(with_article("universal"), "a universal");
    }

    #[test]
    fn descriptions_and_key_names_have_one_rule_each() {
        assert_eq!(Description::parse("  ").unwrap(), None);
        let kept = Description::parse(" Awaiting review\n").unwrap().unwrap();
        assert_eq!(kept.as_str(), " Awaiting review\n");
        assert!(Description::parse(&"d".repeat(1001)).is_err());
        assert!(Description::parse("a\u{7}").is_err());
        assert_eq!(KeyName::parse(" ci ").unwrap().as_str(), "ci");
        assert!(KeyName::parse(" ").is_err());
        assert!(KeyName::parse("a\tb").is_err());
        assert!(KeyName::parse(&"n".repeat(101)).is_err());
    }

    #[test]
    fn free_text_allows_line_breaks_but_no_other_controls() {
        assert!(is_free_text("QA passed\r\n\tby é 🚀"));
        assert!(!is_free_text("ok\0"));
        assert!(!is_free_text("\u{1b}[31m"));
    }
}
