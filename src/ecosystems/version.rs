//! Ordering versions to find a package's latest: numeric parts compare as numbers,
//! a release outranks its pre-releases (`1.0.0` > `1.0.0-rc.1`), and build
//! metadata (`+…`) is ignored, as in SemVer; other schemes fall back to text.

use std::cmp::Ordering;

use super::FeedType;

/// Why `version` cannot be stored as a version of a `feed_type` package, or
/// `None`. `latest` and `latest-stable` (and pgutil's `latest-unstable`) are
/// how a request asks for the highest version (contract 7.5), so a version by
/// one of those names could never be asked for exactly. On docker feeds
/// `latest` is an ordinary tag, the one those words name (contract 11).
pub fn reserved_version(feed_type: FeedType, version: &str) -> Option<String> {
    let word = ["latest", "latest-stable", "latest-unstable"]
        .into_iter()
        .find(|word| version.trim().eq_ignore_ascii_case(word))?;
    if feed_type == FeedType::Docker && word == "latest" {
        return None;
    }
    Some(format!(
        "is \"{}\", which requests use to ask for the highest version, so a version by that name could never be asked for exactly",
        version.trim()
    ))
}

/// True for a SemVer-style pre-release such as `2.0.0-beta.1`.
pub fn is_prerelease(version: &str) -> bool {
    split(version).1.is_some()
}

pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a_release, a_pre) = split(a);
    let (b_release, b_pre) = split(b);
    compare_parts(a_release, b_release, true).then_with(|| match (a_pre, b_pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => compare_parts(a, b, false),
    })
}

/// The release part and the pre-release part, without build metadata.
fn split(version: &str) -> (&str, Option<&str>) {
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    }
}

/// Compares dot-separated parts; missing release parts count as 0 (`1.0` = `1.0.0`).
fn compare_parts(a: &str, b: &str, pad_with_zero: bool) -> Ordering {
    let mut a_parts = a.split('.');
    let mut b_parts = b.split('.');
    loop {
        let (x, y) = match (a_parts.next(), b_parts.next()) {
            (None, None) => return Ordering::Equal,
            (Some(x), None) if pad_with_zero => (x, "0"),
            (None, Some(y)) if pad_with_zero => ("0", y),
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(x), Some(y)) => (x, y),
        };
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            // SemVer: numeric identifiers rank below alphanumeric ones.
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.to_lowercase().cmp(&y.to_lowercase()),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_for_the_highest_version_are_not_versions() {
        for word in ["latest", "LATEST", "latest-stable", "Latest-Unstable"] {
            assert!(reserved_version(FeedType::Npm, word).is_some(), "{word}");
            assert!(reserved_version(FeedType::Nuget, word).is_some(), "{word}");
        }
        assert_eq!(reserved_version(FeedType::Docker, "latest"), None);
        assert!(reserved_version(FeedType::Docker, "latest-stable").is_some());
        for version in ["1.0.0", "latest2", "not-latest"] {
            assert_eq!(reserved_version(FeedType::Npm, version), None, "{version}");
        }
    }

    #[test]
    fn versions_order_like_semver() {
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2",
            "1.10.0",
            "2.0.0+build.5",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(
                compare_versions(pair[0], pair[1]),
                Ordering::Less,
                "{pair:?}"
            );
            assert_eq!(
                compare_versions(pair[1], pair[0]),
                Ordering::Greater,
                "{pair:?}"
            );
        }
        assert_eq!(compare_versions("1.0", "1.0.0"), Ordering::Equal);
        assert!(is_prerelease("7.0.0-rc.1") && !is_prerelease("7.0.0+meta"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::compare_versions;

        proptest! {
        #[test]
        fn version_order_is_a_total_order(a in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(-[a-z0-9.]{1,6})?", b in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(-[a-z0-9.]{1,6})?", c in "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}") {
            prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
            prop_assert!(compare_versions(&a, &a).is_eq());
            if compare_versions(&a, &b).is_le() && compare_versions(&b, &c).is_le() {
                prop_assert!(compare_versions(&a, &c).is_le());
            }
        }
        }
    }
}
