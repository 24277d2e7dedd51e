//! Maven: versions in the order of Maven's own `ComparableVersion`
//! (apache/maven's compat/maven-artifact org.apache.maven.artifact.versioning.
//! ComparableVersion as of Maven 4, ported item for item, with master's fix
//! for release words with a number): `.`, `-`
//! and a switch between digits and letters separate items; `alpha < beta <
//! milestone < rc = cr < snapshot < "" = ga = final = release < sp`, then
//! other qualifiers alphabetically; a qualifier followed by digits (`rc1`,
//! `rc-1`) is one item; a `-` starts a sub-list; trailing zeros do not count
//! (`1.0 = 1`).
//!
//! `repository` is the repository layout: paths, checksums and the generated
//! `maven-metadata.xml`.

pub mod repository;
pub mod upstream;

use std::cmp::Ordering;

use super::version::{Digits, Scheme};

pub(super) struct ComparableVersion;

/// The known qualifiers in their order; the empty one is a release.
const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Qualifiers that rank as a release without being empty.
const RELEASE_QUALIFIERS: [&str; 3] = ["ga", "final", "release"];

/// Where a release ranks among the qualifiers (`""`'s index).
const RELEASE: &str = "5";

#[derive(Debug, Clone)]
pub(super) enum Item {
    Number(Digits),
    /// A qualifier (`StringItem`), aliases resolved.
    Text(String),
    /// A qualifier with a number (`CombinationItem`: `rc1`, `rc-1`).
    Combination(String, Digits),
    List(Vec<Item>),
}

/// A qualifier's place: its index among the known ones (a release qualifier
/// as the empty one), or after all of them, alphabetically.
fn comparable(qualifier: &str) -> String {
    if RELEASE_QUALIFIERS.contains(&qualifier) {
        return RELEASE.to_owned();
    }
    match QUALIFIERS.iter().position(|q| *q == qualifier) {
        Some(index) => index.to_string(),
        None => format!("{}-{qualifier}", QUALIFIERS.len()),
    }
}

/// `StringItem`'s value: `a`, `b` and `m` before a digit are alpha, beta and
/// milestone; `cr` is `rc`.
fn qualifier(value: &str, followed_by_digit: bool) -> String {
    let value = match (followed_by_digit, value) {
        (true, "a") => "alpha",
        (true, "b") => "beta",
        (true, "m") => "milestone",
        (_, "cr") => "rc",
        (_, other) => other,
    };
    value.to_owned()
}

/// `parseItem`.
fn item(combination: bool, digit: bool, text: &str) -> Item {
    if combination {
        let text = text.replace('-', "");
        let at = text.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
        let (word, number) = text.split_at(at);
        Item::Combination(
            qualifier(word, true),
            Digits::parse(number).unwrap_or_else(Digits::zero),
        )
    } else if digit {
        Item::Number(Digits::parse(text).unwrap_or_else(Digits::zero))
    } else {
        Item::Text(qualifier(text, false))
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Number(digits) => *digits == Digits::zero(),
            Item::Text(value) => value.is_empty(),
            Item::Combination(..) => false,
            Item::List(items) => items.is_empty(),
        }
    }

    /// `Item.compareTo`, where `None` is a missing item.
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Number(digits), None) => {
                if *digits == Digits::zero() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Number(a), Some(Item::Number(b))) => a.cmp(b),
            (Item::Number(_), Some(_)) => Ordering::Greater,

            (Item::Text(value), None) => comparable(value).as_str().cmp(RELEASE),
            (Item::Text(a), Some(Item::Text(b))) => comparable(a).cmp(&comparable(b)),
            (Item::Text(a), Some(Item::Combination(b, _))) => {
                match comparable(a).cmp(&comparable(b)) {
                    Ordering::Equal => Ordering::Less,
                    order => order,
                }
            }
            (Item::Text(_), Some(Item::Number(_) | Item::List(_))) => Ordering::Less,

            // A release word with a number (`ga1`): the number decides, as
            // apache/maven master has it (so that `1-ga1 = 1 = 1-ga2` cannot
            // hold beside `1-ga1 < 1-ga2`).
            (Item::Combination(word, digits), None) => match comparable(word).as_str().cmp(RELEASE)
            {
                Ordering::Equal => Item::Number(digits.clone()).compare(None),
                order => order,
            },
            (Item::Combination(_, _), Some(Item::Number(_) | Item::List(_))) => Ordering::Less,
            (Item::Combination(word, _), Some(Item::Text(other))) => {
                match comparable(word).cmp(&comparable(other)) {
                    // X1 > X
                    Ordering::Equal => Ordering::Greater,
                    order => order,
                }
            }
            (Item::Combination(a, x), Some(Item::Combination(b, y))) => {
                comparable(a).cmp(&comparable(b)).then_with(|| x.cmp(y))
            }

            // MNG-6964: the whole list against nothing, not its first item.
            (Item::List(items), None) => items
                .iter()
                .map(|item| item.compare(None))
                .find(|order| order.is_ne())
                .unwrap_or(Ordering::Equal),
            (Item::List(_), Some(Item::Number(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Text(_) | Item::Combination(..))) => Ordering::Greater,
            (Item::List(left), Some(Item::List(right))) => compare_lists(left, right),
        }
    }

    fn has_prerelease_qualifier(&self) -> bool {
        let early = |value: &str| comparable(value).as_str() < RELEASE;
        match self {
            Item::Number(_) => false,
            Item::Text(value) | Item::Combination(value, _) => early(value),
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

/// `ListItem.normalize`: null items go when they end the list, or come
/// before a qualifier (or a sub-list that starts with one).
fn normalize(items: &mut Vec<Item>) {
    let mut at = items.len();
    while at > 0 {
        at -= 1;
        if !items[at].is_null() {
            continue;
        }
        let remove = match items.get(at + 1) {
            None | Some(Item::Text(_)) => true,
            Some(Item::List(next)) => {
                matches!(next.first(), Some(Item::Text(_) | Item::Combination(..)))
            }
            Some(_) => false,
        };
        if remove {
            items.remove(at);
        }
    }
}

/// `ComparableVersion.parseVersion`: the open lists are a stack, each new one
/// a child of the one before, closed (normalised, then put in its parent)
/// innermost first at the end.
fn parse_items(version: &str) -> Vec<Item> {
    let version = version.to_lowercase();
    let chars: Vec<(usize, char)> = version.char_indices().collect();
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let (mut digit, mut combination) = (false, false);
    let mut start = 0;
    let open = |stack: &mut Vec<Vec<Item>>| {
        if !stack.last().expect("open").is_empty() {
            stack.push(Vec::new());
        }
    };
    for (n, &(at, c)) in chars.iter().enumerate() {
        if c == '.' {
            let current = stack.last_mut().expect("open");
            current.push(if at == start {
                Item::Number(Digits::zero())
            } else {
                item(combination, digit, &version[start..at])
            });
            combination = false;
            start = at + c.len_utf8();
        } else if c == '-' {
            if at == start {
                stack
                    .last_mut()
                    .expect("open")
                    .push(Item::Number(Digits::zero()));
            } else {
                // X-1 is read as X1.
                let next = chars.get(n + 1).map(|&(_, c)| c);
                if !digit && next.is_some_and(|c| c.is_ascii_digit()) {
                    combination = true;
                    continue;
                }
                let it = item(combination, digit, &version[start..at]);
                stack.last_mut().expect("open").push(it);
            }
            start = at + 1;
            open(&mut stack);
            combination = false;
        } else if c.is_ascii_digit() {
            if !digit && at > start {
                combination = true;
                open(&mut stack);
            }
            digit = true;
        } else {
            if digit && at > start {
                let it = item(combination, true, &version[start..at]);
                stack.last_mut().expect("open").push(it);
                start = at;
                stack.push(Vec::new());
                combination = false;
            }
            digit = false;
        }
    }
    if version.len() > start {
        // 1.0.0.X1 < 1.0.0-X2: a qualifier after `.` is one after `-`.
        if !digit {
            open(&mut stack);
        }
        let it = item(combination, digit, &version[start..]);
        stack.last_mut().expect("open").push(it);
    }
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

    /// `-SNAPSHOT` (or a timestamped snapshot) and the qualifiers below a
    /// release (alpha, beta, milestone, rc and their aliases).
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

    /// Maven's ComparableVersionTest (apache/maven, compat/maven-artifact/src/
    /// test/java/org/apache/maven/artifact/versioning/ComparableVersionTest.java):
    /// VERSIONS_QUALIFIER and VERSIONS_NUMBER, each ascending.
    #[test]
    fn versions_qualifier_and_number() {
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
                "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c",
                "2.1-1", "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2",
                "11.m11", "11", "11.a", "11b", "11c", "11m",
            ],
        );
    }

    /// testVersionsEqual and testVersionsHaveSameOrderButAreNotEqual.
    #[test]
    fn versions_equal() {
        assert_equal(
            FeedType::Maven,
            &[
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
                ("1cr", "1rc"),
                ("1a1", "1-alpha-1"),
                ("1b2", "1-beta-2"),
                ("1m3", "1-milestone-3"),
                ("1X", "1x"),
                ("1A", "1a"),
                ("1B", "1b"),
                ("1M", "1m"),
                ("1Cr", "1Rc"),
                ("1cR", "1rC"),
                ("1m3", "1Milestone3"),
                ("1m3", "1MileStone3"),
                ("1m3", "1MILESTONE3"),
                ("1ga", "1"),
                ("1release", "1"),
                ("1final", "1"),
                ("1GA", "1"),
                ("1RELeaSE", "1"),
                ("1FINAL", "1"),
                ("1.0.0-alpha1", "1.0.0-ALPHA1"),
                (
                    "1-abcdefghijklmnopqrstuvwxyz",
                    "1-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                ),
                ("0000000000000000001", "1"),
                ("0000000000000000000", "0"),
            ],
        );
    }

    /// testVersionComparing, testLeadingZeroes, testCompareDigitToLetter,
    /// testMng5568, testMng6572, testMng6964, testMng7644, testMng7714.
    #[test]
    fn version_comparing_and_the_mng_cases() {
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
            ("0.7", "2"),
            ("0.2", "1.0.7"),
            ("J", "7"),
            ("c", "7"),
            ("aardvark", "zebra"),
            ("6.1.0rc3", "6.1.0"),
            ("6.1.0rc3", "6.1H.5-beta"),
            ("6.1.0", "6.1H.5-beta"),
            ("20190126.230843", "1234567890.12345"),
            ("1234567890.12345", "123456789012345.1H.5-beta"),
            (
                "123456789012345.1H.5-beta",
                "12345678901234567890.1H.5-beta",
            ),
            ("1-0.alpha", "1"),
            ("1-0.beta", "1"),
            ("1-0.alpha", "1-0.beta"),
            ("1.0.final-redhat", "1.0-sp1-redhat"),
            ("1.0.final-redhat", "1.0-sp-1-redhat"),
            ("1.0.final-redhat", "1.0-sp.1-redhat"),
            ("1", "1-ga1"),
            ("1-ga1", "1-ga2"),
        ] {
            assert_ascending(FeedType::Maven, &[low, high]);
        }
        for x in [
            "abc",
            "alpha",
            "a",
            "beta",
            "b",
            "def",
            "milestone",
            "m",
            "RC",
        ] {
            assert_ascending(
                FeedType::Maven,
                &[&format!("1.0.0.{x}1"), &format!("1.0.0-{x}2")],
            );
            assert_equal(
                FeedType::Maven,
                &[
                    (&format!("2-{x}"), &format!("2.0.{x}")),
                    (&format!("2-{x}"), &format!("2.0.0.{x}")),
                    (&format!("2.0.{x}"), &format!("2.0.0.{x}")),
                ],
            );
        }
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
            "1.0.0.RC1",
            "1.0-20240101.123456-1",
        ] {
            assert!(is_prerelease(FeedType::Maven, pre), "{pre}");
        }
        for stable in ["1.0", "1.0-ga", "1.0.Final", "1.0-sp1", "31.1-jre", "1.0-1"] {
            assert!(!is_prerelease(FeedType::Maven, stable), "{stable}");
        }
    }
}
