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
    fn free_text_allows_line_breaks_but_no_other_controls() {
        assert!(is_free_text("QA passed\r\n\tby é 🚀"));
        assert!(!is_free_text("ok\0"));
        assert!(!is_free_text("\u{1b}[31m"));
    }
}
