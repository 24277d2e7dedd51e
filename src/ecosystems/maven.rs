//! Maven: versions in the order of Maven's own `ComparableVersion`
//! (maven-artifact's org.apache.maven.artifact.versioning.ComparableVersion,
//! ported item for item): `.`, `-` and a switch between digits and letters
//! separate items; `alpha < beta < milestone < rc = cr < snapshot < "" = ga =
//! final = release < sp`, then other qualifiers alphabetically; a `-` starts
//! a sub-list that ranks below anything after a `.`; trailing zeros and
//! release qualifiers do not count (`1.0 = 1 = 1-ga`). This is the
//! algorithm of Maven 3.6 to 3.8 (3.8.7 is Debian's `mvn`), with 3.9's
//! `release` alias for `ga`.

use std::cmp::Ordering;

use super::version::Scheme;

pub(super) struct ComparableVersion;

/// The known qualifiers in their order; the empty one is a release.
const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Where a release ranks among the qualifiers (`""`'s index).
const RELEASE: &str = "5";

#[derive(Debug, Clone)]
pub(super) enum Item {
    /// Digits without leading zeros (`""` is zero): any length, as Maven's
    /// BigInteger items.
    Number(String),
    /// A qualifier, aliases resolved.
    Text(String),
    List(Vec<Item>),
}

/// A qualifier's place: its index among the known ones, or after all of
/// them, alphabetically.
fn comparable(qualifier: &str) -> String {
    match QUALIFIERS.iter().position(|q| *q == qualifier) {
        Some(index) => index.to_string(),
        None => format!("{}-{qualifier}", QUALIFIERS.len()),
    }
}

impl Item {
    fn text(value: &str, followed_by_digit: bool) -> Item {
        let value = match (followed_by_digit, value) {
            (true, "a") => "alpha",
            (true, "b") => "beta",
            (true, "m") => "milestone",
            _ => value,
        };
        Item::Text(
            match value {
                "ga" | "final" | "release" => "",
                "cr" => "rc",
                other => other,
            }
            .to_owned(),
        )
    }

    fn number(digits: &str) -> Item {
        Item::Number(digits.trim_start_matches('0').to_owned())
    }

    /// Zero, a release qualifier or an empty list: what trailing items may be
    /// without changing the version.
    fn is_null(&self) -> bool {
        match self {
            Item::Number(digits) => digits.is_empty(),
            Item::Text(value) => comparable(value) == RELEASE,
            Item::List(items) => items.is_empty(),
        }
    }

    /// `ComparableVersion`'s `Item.compareTo`, where `None` is a missing item.
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Number(digits), None) => {
                if digits.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Number(a), Some(Item::Number(b))) => (a.len(), a).cmp(&(b.len(), b)),
            (Item::Number(_), Some(_)) => Ordering::Greater,
            (Item::Text(value), None) => comparable(value).as_str().cmp(RELEASE),
            (Item::Text(_), Some(Item::Number(_) | Item::List(_))) => Ordering::Less,
            (Item::Text(a), Some(Item::Text(b))) => comparable(a).cmp(&comparable(b)),
            (Item::List(items), None) => match items.first() {
                None => Ordering::Equal,
                Some(first) => first.compare(None),
            },
            (Item::List(_), Some(Item::Number(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Text(_))) => Ordering::Greater,
            (Item::List(left), Some(Item::List(right))) => compare_lists(left, right),
        }
    }

    fn has_prerelease_qualifier(&self) -> bool {
        match self {
            Item::Number(_) => false,
            Item::Text(value) => !value.is_empty() && comparable(value).as_str() < RELEASE,
            Item::List(items) => items.iter().any(Item::has_prerelease_qualifier),
        }
    }
}

fn compare_lists(left: &[Item], right: &[Item]) -> Ordering {
    for at in 0..left.len().max(right.len()) {
        let order = match (left.get(at), right.get(at)) {
            (Some(l), r) => l.compare(r),
            (None, Some(r)) => r.compare(None).reverse(),
            (None, None) => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// A parsed Maven version: its item list, and whether it is a timestamped
/// snapshot (`1.0-20240101.123456-1`, a deployed `-SNAPSHOT`, as Maven's
/// `ArtifactUtils.isSnapshot` recognises it), which orders by its items but
/// is a pre-release.
#[derive(Debug, Clone)]
pub(super) struct MavenKey(Vec<Item>, bool);

impl PartialEq for MavenKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MavenKey {}

impl PartialOrd for MavenKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MavenKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_lists(&self.0, &other.0)
    }
}

/// Removes trailing null items, stopping at the first item that is neither
/// null nor a list (`ListItem.normalize`).
fn normalize(items: &mut Vec<Item>) {
    let mut at = items.len();
    while at > 0 {
        at -= 1;
        if items[at].is_null() {
            items.remove(at);
        } else if !matches!(items[at], Item::List(_)) {
            break;
        }
    }
}

/// `ComparableVersion.parseVersion`: the lists are built as a stack of open
/// sub-lists, each closed (normalised, then put in its parent) at the end.
fn parse_items(version: &str) -> Vec<Item> {
    let version = version.to_lowercase();
    // The open lists, outermost first; each new one is a child of the last.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut is_digit = false;
    let mut start = 0;
    let chars: Vec<(usize, char)> = version.char_indices().collect();
    let item = |is_digit: bool, text: &str| {
        if is_digit {
            Item::number(text)
        } else {
            Item::text(text, false)
        }
    };
    for &(at, c) in &chars {
        let current = stack.last_mut().expect("the outermost list stays open");
        if c == '.' || c == '-' {
            current.push(if at == start {
                Item::Number(String::new())
            } else {
                item(is_digit, &version[start..at])
            });
            start = at + 1;
            if c == '-' {
                stack.push(Vec::new());
            }
        } else if c.is_ascii_digit() {
            if !is_digit && at > start {
                current.push(Item::text(&version[start..at], true));
                start = at;
                stack.push(Vec::new());
            }
            is_digit = true;
        } else {
            if is_digit && at > start {
                current.push(item(true, &version[start..at]));
                start = at;
                stack.push(Vec::new());
            }
            is_digit = false;
        }
    }
    if version.len() > start {
        let last = item(is_digit, &version[start..]);
        stack.last_mut().expect("open").push(last);
    }
    // Close the lists innermost first, each normalised before its parent.
    while stack.len() > 1 {
        let mut child = stack.pop().expect("more than one");
        normalize(&mut child);
        stack.last_mut().expect("a parent").push(Item::List(child));
    }
    let mut items = stack.pop().expect("the outermost list");
    normalize(&mut items);
    items
}

impl Scheme for ComparableVersion {
    type Key = MavenKey;

    /// Every text is a Maven version.
    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim();
        Some(MavenKey(parse_items(version), is_timestamped(version)))
    }

    /// `-SNAPSHOT` and the qualifiers below a release (alpha, beta, milestone,
    /// rc and their aliases).
    fn is_prerelease(key: &Self::Key) -> bool {
        key.1 || key.0.iter().any(Item::has_prerelease_qualifier)
    }
}

/// Ends in `-yyyyMMdd.HHmmss-N`: a snapshot as deployed.
fn is_timestamped(version: &str) -> bool {
    let Some((stem, build)) = version.rsplit_once('-') else {
        return false;
    };
    let Some((_, stamp)) = stem.rsplit_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(build)
        && stamp.len() == 15
        && stamp.as_bytes()[8] == b'.'
        && digits(&stamp[..8])
        && digits(&stamp[9..])
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::is_prerelease;
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// Maven's ComparableVersionTest (maven-artifact/src/test/java/org/apache/
    /// maven/artifact/versioning/ComparableVersionTest.java): VERSIONS_QUALIFIER
    /// and VERSIONS_NUMBER are each in ascending order, and testVersionsEqual's
    /// pairs name one version.
    #[test]
    fn comparable_version_test() {
        assert_ascending(
            FeedType::Maven,
            &[
                "1-alpha2snapshot",
                "1-alpha2",
                "1-alpha-123",
                "1-beta-2",
                "1-beta123",
                "1-m2",
                "1-m11",
                "1-rc",
                "1-cr2",
                "1-rc123",
                "1-SNAPSHOT",
                "1",
                "1-sp",
                "1-sp2",
                "1-sp123",
                "1-abc",
                "1-def",
                "1-pom-1",
                "1-1-snapshot",
                "1-1",
                "1-2",
                "1-123",
            ],
        );
        assert_ascending(
            FeedType::Maven,
            &[
                "2.0", "2-1", "2.0.a", "2.0.0.a", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b",
                "2.1-c", "2.1-1", "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11",
                "11.m2", "11.m11", "11", "11.a", "11b", "11c", "11m",
            ],
        );
        assert_equal(
            FeedType::Maven,
            &[
                ("1", "1"),
                ("1", "1.0"),
                ("1", "1.0.0"),
                ("1.0", "1.0.0"),
                ("1", "1-0"),
                ("1", "1.0-0"),
                ("1.0", "1.0-0"),
                ("1a", "1-a"),
                ("1a", "1.0-a"),
                ("1a", "1.0.0-a"),
                ("1.0a", "1-a"),
                ("1.0.0a", "1-a"),
                ("1x", "1-x"),
                ("1x", "1.0-x"),
                ("1x", "1.0.0-x"),
                ("1.0x", "1-x"),
                ("1.0.0x", "1-x"),
                ("1ga", "1"),
                ("1release", "1"),
                ("1final", "1"),
                ("1cr", "1rc"),
                ("1a1", "1-alpha-1"),
                ("1b2", "1-beta-2"),
                ("1m3", "1-milestone-3"),
                ("1X", "1x"),
                ("1A", "1a"),
                ("1B", "1b"),
                ("1M", "1m"),
                ("1Ga", "1"),
                ("1GA", "1"),
                ("1RELEASE", "1"),
                ("1release", "1"),
                ("1RELeaSE", "1"),
                ("1Final", "1"),
                ("1FinaL", "1"),
                ("1FINAL", "1"),
                ("1Cr", "1Rc"),
                ("1cR", "1rC"),
                ("1m3", "1Milestone3"),
                ("1m3", "1MileStone3"),
                ("1m3", "1MILESTONE3"),
            ],
        );
    }

    /// ComparableVersionTest.testVersionComparing.
    #[test]
    fn version_comparing() {
        for (low, high) in [
            ("1", "2"),
            ("1.5", "2"),
            ("1", "2.5"),
            ("1.0", "1.1"),
            ("1.1", "1.2"),
            ("1.0.0", "1.1"),
            ("1.0.1", "1.1"),
            ("1.1", "1.2.0"),
            ("1.0-alpha-1", "1.0"),
            ("1.0-alpha-1", "1.0-alpha-2"),
            ("1.0-alpha-1", "1.0-beta-1"),
            ("1.0-beta-1", "1.0-SNAPSHOT"),
            ("1.0-SNAPSHOT", "1.0"),
            ("1.0-alpha-1-SNAPSHOT", "1.0-alpha-1"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-2"),
            ("1.0.0", "1.0-1"),
            ("2.0-1", "2.0.1"),
            ("2.0.1-klm", "2.0.1-lmn"),
            ("2.0.1", "2.0.1-xyz"),
            ("2.0.1", "2.0.1-123"),
            ("2.0.1-xyz", "2.0.1-123"),
            // MNG-5568, MNG-6572: long numbers compare as numbers.
            ("6.1.0rc3", "6.1.0"),
            ("6.1.0", "6.1H.5-beta"),
            (
                "2.0.0.v200706041905-7C78EK9E_EkMNfNOd2d8qq",
                "2.0.0.v200706041906-7C78EK9E_EkMNfNOd2d8qq",
            ),
            ("1.0.9999999999", "1.0.10000000000"),
            ("9999999999999999999999", "10000000000000000000000"),
        ] {
            assert_ascending(FeedType::Maven, &[low, high]);
        }
    }

    /// Maven's own order is not transitive on some versions no project
    /// writes: a qualifier compared with a sub-list, and a sub-list with
    /// nothing, follow different rules. The port answers each pair as Maven
    /// does (`mvn` would pick the same), rather than invent a total order
    /// that disagrees with Maven; the property test keeps to versions as
    /// projects write them.
    #[test]
    fn odd_versions_compare_as_maven_compares_them() {
        assert_ascending(FeedType::Maven, &["0sp", "0ga-alpha"]);
        assert_ascending(FeedType::Maven, &["0ga-alpha", "0"]);
        assert_ascending(FeedType::Maven, &["0", "0sp"]);
    }

    #[test]
    fn snapshots_and_early_qualifiers_are_pre_releases() {
        for pre in [
            "1.0-SNAPSHOT",
            "1.0-alpha-1",
            "2.0.0-M1",
            "2.0-rc1",
            "1.0-cr2",
            "1.0b2",
        ] {
            assert!(is_prerelease(FeedType::Maven, pre), "{pre}");
        }
        for stable in ["1.0", "1.0-ga", "1.0.Final", "1.0-sp1", "31.1-jre", "1.0-1"] {
            assert!(!is_prerelease(FeedType::Maven, stable), "{stable}");
        }
    }
}
