//! CRAN: R's `package_version`: at least two whole numbers separated by `.`
//! or `-`, compared number by number (a shorter version below a longer one
//! it begins). R has no pre-releases.

use super::version::{Digits, Scheme};

pub(super) struct PackageVersion;

impl Scheme for PackageVersion {
    type Key = Vec<Digits>;

    fn parse(version: &str) -> Option<Self::Key> {
        let numbers = version
            .trim()
            .split(['.', '-'])
            .map(Digits::parse)
            .collect::<Option<Vec<Digits>>>()?;
        (numbers.len() >= 2).then_some(numbers)
    }

    fn is_prerelease(_: &Self::Key) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// R's ?package_version and ?compareVersion examples.
    #[test]
    fn r_package_version_order() {
        assert_ascending(
            FeedType::Cran,
            &["0.9-1", "1.0", "1.0-1", "1.0.2", "1.2-3", "1.10", "2.0"],
        );
        assert_equal(FeedType::Cran, &[("1.0-1", "1.0.1"), ("1.01", "1.1")]);
        assert_ascending(FeedType::Cran, &["1", "1.0"]); // "1" is not a version
    }
}
