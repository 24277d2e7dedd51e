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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_allows_line_breaks_but_no_other_controls() {
        assert!(is_free_text("QA passed\r\n\tby é 🚀"));
        assert!(!is_free_text("ok\0"));
        assert!(!is_free_text("\u{1b}[31m"));
    }
}
