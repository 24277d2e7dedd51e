//! Debian: dpkg's order (epoch `:`, upstream version, revision `-`; `~` sorts
//! before anything, even the end), read by the `debversion` crate (Jelmer
//! Vernooĳ's, which follows dpkg's `verrevcmp`). apt has no pre-releases, so
//! `latest-stable` is `latest`.

use super::version::Scheme;

pub(super) struct Dpkg;

impl Scheme for Dpkg {
    type Key = debversion::Version;

    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim();
        // dpkg: a version starts with a digit (after any epoch).
        let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        version.parse().ok()
    }

    fn is_prerelease(_: &Self::Key) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// dpkg's lib/dpkg/t/t-version.c (test_version_compare) and Debian
    /// Policy §5.6.12's examples.
    #[test]
    fn dpkg_order() {
        assert_equal(
            FeedType::Debian,
            &[
                ("0:1.1-1", "1.1-1"),
                ("1.1", "1.1-0"),
                ("1.0-0", "1.0"),
                ("0:0-00", "0:0-0"),
                ("1.0", "1.00"),
            ],
        );
        for (low, high) in [
            ("0:1.0-1", "1:1.0-1"),
            ("1:0.9", "2:0.1"),
            ("1.0-1", "1.0-2"),
            ("1.0", "1.1"),
            ("1.0~rc1", "1.0"),
            ("1.0~~", "1.0~~a"),
            ("1.0~~a", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0+"),
            ("1.0+", "1.0.1"),
            ("1.0-1", "1.0-1+b1"),
            ("1.2.3", "1.2.3+dfsg"),
            ("2.4", "2.30"),
            ("0:0-0", "0:0-1"),
            ("0:0-0", "0:0-a"),
            ("0:0-a", "0:0-b"),
            ("0:0-a", "0:0-aa"),
            ("0:0-~~", "0:0-~~a"),
            ("0:0-~", "0:0-0"),
            ("1:0", "2:0"),
        ] {
            assert_ascending(FeedType::Debian, &[low, high]);
        }
    }
}
