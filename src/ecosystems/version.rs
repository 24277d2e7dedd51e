//! Versions in each ecosystem's own order (contract section 11): one scheme
//! per feed type, each in its ecosystem's module, used everywhere a version is
//! ordered or filtered: `latest` and `latest-stable`, the packages API, the
//! native endpoints.
//!
//! The order is total whatever is stored: a version its ecosystem cannot read
//! (a row from before the rules, say) sorts below every version it can, such
//! versions among themselves by text, and is never stable.

use std::cmp::Ordering;

use super::FeedType;
use super::{apk, conda, cran, debian, docker, maven, nuget, pypi, rpm, rubygems, semver};

/// An ecosystem's versions: how one is read, in which order they come, and
/// which are pre-releases.
pub(super) trait Scheme {
    /// A version as the ecosystem reads it; its `Ord` is the ecosystem's
    /// order, and equal keys are one version spelled two ways.
    type Key: Ord;

    /// `None` when the ecosystem cannot read `version`.
    fn parse(version: &str) -> Option<Self::Key>;

    fn is_prerelease(key: &Self::Key) -> bool;
}

/// Runs `$body` with `$scheme` the scheme of `$feed_type`: the registry of
/// version orders, one line per ecosystem.
macro_rules! with_scheme {
    ($feed_type:expr, $scheme:ident => $body:expr) => {
        match $feed_type {
            FeedType::Npm | FeedType::Helm | FeedType::Universal | FeedType::Vsix => {
                type $scheme = semver::SemVer;
                $body
            }
            FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
                type $scheme = nuget::NuGetVersion;
                $body
            }
            FeedType::Pypi => {
                type $scheme = pypi::Pep440;
                $body
            }
            FeedType::Maven => {
                type $scheme = maven::ComparableVersion;
                $body
            }
            FeedType::Debian => {
                type $scheme = debian::Dpkg;
                $body
            }
            FeedType::Rpm => {
                type $scheme = rpm::RpmVersion;
                $body
            }
            FeedType::Rubygems => {
                type $scheme = rubygems::GemVersion;
                $body
            }
            FeedType::Conda => {
                type $scheme = conda::VersionOrder;
                $body
            }
            FeedType::Cran => {
                type $scheme = cran::PackageVersion;
                $body
            }
            FeedType::Apk => {
                type $scheme = apk::ApkVersion;
                $body
            }
            FeedType::Docker => {
                type $scheme = docker::Tag;
                $body
            }
        }
    };
}

/// `a` against `b` in the order of `feed_type`'s ecosystem. Equal means one
/// version spelled two ways (`1.0RC1` and `1.0rc1` on PyPI); callers that need
/// one answer break the tie by text.
pub fn compare_versions(feed_type: FeedType, a: &str, b: &str) -> Ordering {
    with_scheme!(feed_type, S => compare::<S>(a, b))
}

/// Whether `version` is a pre-release in `feed_type`'s ecosystem (what
/// `latest-stable` and `stableOnly` leave out). A version the ecosystem
/// cannot read is never stable.
pub fn is_prerelease(feed_type: FeedType, version: &str) -> bool {
    with_scheme!(feed_type, S => S::parse(version).is_none_or(|key| S::is_prerelease(&key)))
}

/// Whether `version` may be what `latest` names. Docker tags have no order:
/// `latest` and `latest-stable` name the tag `latest` itself (contract 11).
pub fn may_be_latest(feed_type: FeedType, version: &str) -> bool {
    feed_type != FeedType::Docker || version == docker::LATEST
}

/// The highest of `versions` in `feed_type`'s order (ties broken by text, so
/// that the answer does not depend on the order they came in), among those
/// that `latest` (or, with `stable_only`, `latest-stable`) may name.
pub fn latest<'a>(
    feed_type: FeedType,
    versions: impl IntoIterator<Item = &'a str>,
    stable_only: bool,
) -> Option<&'a str> {
    versions
        .into_iter()
        .filter(|v| may_be_latest(feed_type, v))
        .filter(|v| !stable_only || !is_prerelease(feed_type, v))
        .max_by(|a, b| compare_versions(feed_type, a, b).then_with(|| a.cmp(b)))
}

/// A run of digits of any length, compared as the number it is (what each
/// ecosystem's own tool does, whatever the size): leading zeros do not count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Digits(String);

impl Digits {
    /// `None` unless `text` is one or more ASCII digits.
    pub(super) fn parse(text: &str) -> Option<Digits> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Digits(text.trim_start_matches('0').to_owned()))
    }

    pub(super) fn zero() -> Digits {
        Digits(String::new())
    }
}

impl PartialOrd for Digits {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digits {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.len(), &self.0).cmp(&(other.0.len(), &other.0))
    }
}

/// `items` sorted by `compare`, stably, by a merge sort that cannot panic:
/// the standard library's sorts may panic on a comparison that is not a
/// total order, and Maven's own order is not one on some odd versions (see
/// maven.rs), which a client may upload.
pub fn sort_in_order<T>(items: Vec<T>, compare: &impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (sort_in_order(left, compare), sort_in_order(right, compare));
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        if compare(r, l) == Ordering::Less {
            merged.extend(right.next());
        } else {
            merged.extend(left.next());
        }
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

/// Versions ordered by the ecosystem, then by text.
fn compare<S: Scheme>(a: &str, b: &str) -> Ordering {
    match (S::parse(a), S::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// Why `feed_type`'s own client would refuse `version` (npm: not SemVer;
/// PyPI: not PEP 440; NuGet: not a NuGet version), or `None`: what uploads,
/// `packages add` and `packages import` refuse. The other ecosystems' clients
/// take what their build tools write, and their versions are ordered
/// whatever they are.
pub fn version_refusal(feed_type: FeedType, version: &str) -> Option<&'static str> {
    match feed_type {
        FeedType::Npm => semver::refusal(version),
        FeedType::Pypi => pypi::refusal(version),
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => nuget::refusal(version),
        _ => None,
    }
}

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Asserts that `ascending` is strictly ascending in `feed_type`'s order,
    /// pair by pair and both ways round.
    pub fn assert_ascending(feed_type: FeedType, ascending: &[&str]) {
        for (i, low) in ascending.iter().enumerate() {
            for high in &ascending[i + 1..] {
                assert_eq!(
                    compare_versions(feed_type, low, high),
                    Ordering::Less,
                    "{feed_type}: {low} < {high}"
                );
                assert_eq!(
                    compare_versions(feed_type, high, low),
                    Ordering::Greater,
                    "{feed_type}: {high} > {low}"
                );
            }
        }
    }

    /// Asserts that each pair names one version.
    pub fn assert_equal(feed_type: FeedType, pairs: &[(&str, &str)]) {
        for (a, b) in pairs {
            assert_eq!(
                compare_versions(feed_type, a, b),
                Ordering::Equal,
                "{feed_type}: {a} = {b}"
            );
        }
    }

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
    fn what_an_ecosystem_cannot_read_sorts_below_and_is_never_stable() {
        assert_ascending(
            FeedType::Npm,
            &["not a version", "zzz", "0.0.1-alpha", "0.0.1"],
        );
        assert!(is_prerelease(FeedType::Npm, "zzz"));
        assert!(is_prerelease(FeedType::Debian, "")); // nothing to read
        assert!(!is_prerelease(FeedType::Debian, "1.0~rc1-1"));
    }

    #[test]
    fn sorting_never_panics_and_is_stable() {
        // Maven's own cycle: any answer, but no panic.
        let odd: Vec<&str> = ["0sp", "0ga-alpha", "0"].repeat(30);
        let sorted = sort_in_order(odd, &|a: &&str, b: &&str| {
            compare_versions(FeedType::Maven, a, b)
        });
        assert_eq!(sorted.len(), 90);
        let pairs = vec![(2, "b"), (1, "a"), (2, "a"), (1, "b")];
        let sorted = sort_in_order(pairs, &|x: &(i32, &str), y: &(i32, &str)| x.0.cmp(&y.0));
        assert_eq!(sorted, [(1, "a"), (1, "b"), (2, "b"), (2, "a")]);
    }

    #[test]
    fn latest_is_the_highest_that_may_be_named() {
        let pypi = ["2.0.0", "2.0.0rc1", "1.9", "2.0.0.post1", "2.1.dev3"];
        assert_eq!(latest(FeedType::Pypi, pypi, false), Some("2.1.dev3"));
        assert_eq!(latest(FeedType::Pypi, pypi, true), Some("2.0.0.post1"));
        let more = ["1.0", "1.0rc2", "1.0b1", "0.9"];
        assert_eq!(latest(FeedType::Pypi, more, true), Some("1.0"));
        let tags = ["v2", "latest", "zzz"];
        assert_eq!(latest(FeedType::Docker, tags, false), Some("latest"));
        assert_eq!(latest(FeedType::Docker, tags, true), Some("latest"));
        assert_eq!(latest(FeedType::Docker, ["v2"], false), None);
        // Ties (one version spelled two ways) go to the same one either way round.
        assert_eq!(
            latest(FeedType::Pypi, ["1.0RC1", "1.0rc1"], false),
            latest(FeedType::Pypi, ["1.0rc1", "1.0RC1"], false)
        );
    }

    /// One property test per ecosystem, over versions written in that
    /// ecosystem's own alphabet (most of them valid, some not): the order is
    /// total and consistent, i.e. antisymmetric, reflexive, transitive, and
    /// two versions it calls equal compare alike with any third.
    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn total(t: FeedType, a: &str, b: &str, c: &str) -> Result<(), TestCaseError> {
            prop_assert_eq!(
                compare_versions(t, a, b),
                compare_versions(t, b, a).reverse()
            );
            prop_assert!(compare_versions(t, a, a).is_eq());
            let (ab, bc, ac) = (
                compare_versions(t, a, b),
                compare_versions(t, b, c),
                compare_versions(t, a, c),
            );
            if ab.is_le() && bc.is_le() {
                prop_assert!(
                    ac.is_le(),
                    "{}: {} <= {} <= {} but {} > {}",
                    t,
                    a,
                    b,
                    c,
                    a,
                    c
                );
            }
            if ab.is_eq() {
                prop_assert_eq!(
                    ac,
                    bc,
                    "{}: {} = {} but they compare unlike with {}",
                    t,
                    a,
                    b,
                    c
                );
            }
            Ok(())
        }

        macro_rules! total_order {
            ($($name:ident: $feed_type:expr, $pattern:expr;)*) => {$(
                proptest! {
                    #![proptest_config(ProptestConfig::with_cases(2000))]
                    #[test]
                    fn $name(a in $pattern, b in $pattern, c in $pattern) {
                        total($feed_type, &a, &b, &c)?;
                    }
                }
            )*};
        }

        total_order! {
            semver_is_total: FeedType::Npm,
                "v?(0|[1-9][0-9]?)\\.(0|[1-9][0-9]?)\\.(0|[1-9])(-([0-9]|[a-zA-Z][a-zA-Z0-9-]{0,3})(\\.([0-9]{1,2}|[a-z]{1,3})){0,2})?(\\+[0-9a-z]{1,3})?";
            nuget_is_total: FeedType::Nuget,
                "[0-9]{1,2}(\\.[0-9]{1,2}){0,3}(-[0-9A-Za-z]{1,3}(\\.[0-9A-Za-z]{1,3}){0,2})?(\\+[a-z0-9]{1,2})?";
            pep440_is_total: FeedType::Pypi,
                "([0-9]!)?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}((a|b|rc|c|alpha|beta|pre|RC)[0-9]{0,2})?(\\.post[0-9]{1,2}|-[0-9])?(\\.dev[0-9]{0,2})?(\\+[a-z0-9]{1,3}(\\.[a-z0-9]{1,3})?)?";
            maven_is_total: FeedType::Maven,
                "[0-9]{1,2}([.-]?([0-9]{1,2}|alpha|beta|a|b|m|rc|cr|snapshot|SNAPSHOT|ga|final|release|sp|jre|[a-z]{1,3})){0,4}";
            dpkg_is_total: FeedType::Debian,
                "([0-9]:)?[0-9]{1,2}([.+~][0-9a-z]{1,3}){0,3}(-[0-9a-z][0-9a-z.~+]{0,3})?";
            rpm_is_total: FeedType::Rpm,
                "([0-9]:)?[0-9a-z]{1,2}([._~^][0-9a-z]{1,3}){0,3}(-[0-9a-z.~^]{1,4})?";
            gem_is_total: FeedType::Rubygems,
                "[0-9]{1,2}(\\.([0-9]{1,2}|[a-z]{1,3}|[a-z][0-9])){0,3}(-[0-9a-z]{1,3})?";
            conda_is_total: FeedType::Conda,
                "([0-9]!)?[0-9]{1,2}([._]([0-9]{1,2}|dev|post|rc|a|b|_)[0-9]{0,2}){0,3}(\\+[0-9a-z]{1,3})?";
            cran_is_total: FeedType::Cran,
                "[0-9]{1,3}([.-][0-9]{1,3}){0,3}";
            apk_is_total: FeedType::Apk,
                "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]{0,2}){0,2}(-r[0-9]{1,2})?";
            docker_is_total: FeedType::Docker,
                "[a-z0-9._-]{1,8}";
            anything_is_total: FeedType::Npm,
                "\\PC{0,12}";
        }
    }
}
