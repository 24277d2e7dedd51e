//! SemVer 2.0.0 (semver.org), the order of npm, Helm, universal packages and
//! VSIX: `1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0-rc.1 < 1.0.0`, build
//! metadata ignored. Read by the `semver` crate (dtolnay's, which Cargo itself
//! uses); a leading `v` or `=`, which npm's own client cleans off
//! (node-semver's `clean`), is allowed.

use super::version::Scheme;

pub(super) struct SemVer;

impl Scheme for SemVer {
    /// Precedence only: major, minor, patch and the pre-release (whose `Ord`
    /// puts a release above its pre-releases and compares identifiers as
    /// SemVer's §11 says); build metadata is not part of it.
    type Key = (u64, u64, u64, ::semver::Prerelease);

    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim();
        // node-semver's `clean`: any run of `=` and `v` before the version.
        let version = version.trim_start_matches(['=', 'v', 'V']).trim_start();
        let parsed = ::semver::Version::parse(version).ok()?;
        Some((parsed.major, parsed.minor, parsed.patch, parsed.pre))
    }

    fn is_prerelease(key: &Self::Key) -> bool {
        !key.3.is_empty()
    }
}

/// The largest number node-semver takes (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why npm would refuse to publish `version`, or `None`.
pub(super) fn refusal(version: &str) -> Option<&'static str> {
    match SemVer::parse(version) {
        None => {
            Some("is not a SemVer 2.0.0 version (such as 1.2.3 or 1.2.3-rc.1), as npm requires")
        }
        Some((major, minor, patch, _)) if major.max(minor).max(patch) > MAX_SAFE_INTEGER => {
            Some("has a number larger than npm takes (2^53 - 1)")
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// semver.org §11's examples, and node-semver's test/fixtures/comparisons.js
    /// (the pairs whose left side is greater, read right to left).
    #[test]
    fn semver_precedence() {
        assert_ascending(
            FeedType::Npm,
            &[
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "2.0.0",
                "2.1.0",
                "2.1.1",
            ],
        );
        // node-semver comparisons.js
        for (greater, less) in [
            ("0.0.0", "0.0.0-foo"),
            ("0.0.1", "0.0.0"),
            ("1.0.0", "0.9.9"),
            ("0.10.0", "0.9.0"),
            ("0.99.0", "0.10.0"),
            ("2.0.0", "1.2.3"),
            ("v0.0.0", "0.0.0-foo"),
            ("v0.0.1", "0.0.0"),
            ("1.2.3", "1.2.3-asdf"),
            ("1.2.3", "1.2.3-4"),
            ("1.2.3", "1.2.3-4-foo"),
            ("1.2.3-5-foo", "1.2.3-5"),
            ("1.2.3-5", "1.2.3-4"),
            ("1.2.3-5-foo", "1.2.3-5-Foo"),
            ("3.0.0", "2.7.2+asdf"),
            ("1.2.3-a.10", "1.2.3-a.5"),
            ("1.2.3-a.b", "1.2.3-a.5"),
            ("1.2.3-a.b", "1.2.3-a"),
            ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
            ("1.2.3-r2", "1.2.3-r100"),
            ("1.2.3-r100", "1.2.3-R2"),
        ] {
            assert_ascending(FeedType::Npm, &[less, greater]);
        }
        // node-semver equality.js: build metadata and a `v` or `=` change nothing.
        assert_equal(
            FeedType::Npm,
            &[
                ("1.2.3", "v1.2.3"),
                ("1.2.3", "=1.2.3"),
                ("1.2.3", "=v1.2.3"),
                ("1.2.3", "v 1.2.3"),
                ("1.2.3-beta+build", "1.2.3-beta+otherbuild"),
                ("1.2.3+build", "1.2.3+otherbuild"),
            ],
        );
    }

    #[test]
    fn pre_releases_and_what_npm_refuses() {
        use crate::ecosystems::version::is_prerelease;
        assert!(is_prerelease(FeedType::Npm, "1.0.0-rc.1"));
        assert!(!is_prerelease(FeedType::Npm, "1.0.0+build.1"));
        for bad in ["1.0", "1.0.0.0", "01.0.0", "1.0.0-", "latest", "1.0.0-01"] {
            assert!(super::refusal(bad).is_some(), "{bad}");
        }
        assert_eq!(super::refusal("1.0.0-rc.1+sha.5114f85"), None);
        assert!(super::refusal("9007199254740992.0.0").is_some());
        assert_eq!(super::refusal("9007199254740991.0.0"), None);
    }
}
