//! RubyGems: `Gem::Version` (rubygems/lib/rubygems/version.rb): segments are
//! runs of digits (numbers) or letters (text), `-` reads as `.pre.`, trailing
//! zeros do not count, text ranks below numbers, and a version with a letter
//! is a pre-release (`1.0.a < 1.0`).

use std::cmp::Ordering;

use super::version::{Digits, Scheme};

pub(super) struct GemVersion;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Number(Digits),
    Text(String),
}

/// A version's canonical segments (`Gem::Version#canonical_segments`).
#[derive(Debug, Clone)]
pub(super) struct Segments(Vec<Segment>);

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Segments {}

impl PartialOrd for Segments {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `Gem::Version#<=>`: segment by segment, a missing one counting as 0.
impl Ord for Segments {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Segment::Number(Digits::zero());
        for at in 0..self.0.len().max(other.0.len()) {
            let (l, r) = (
                self.0.get(at).unwrap_or(&zero),
                other.0.get(at).unwrap_or(&zero),
            );
            let order = match (l, r) {
                (Segment::Number(a), Segment::Number(b)) => a.cmp(b),
                (Segment::Text(a), Segment::Text(b)) => a.cmp(b),
                (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
                (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}

/// `Gem::Version::ANCHORED_VERSION_PATTERN`:
/// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`.
fn is_correct(version: &str) -> bool {
    let (release, pre) = match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    };
    let mut parts = release.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    first_ok
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && pre.is_none_or(|pre| {
            pre.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
}

impl Scheme for GemVersion {
    type Key = Segments;

    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim();
        if !is_correct(version) {
            return None;
        }
        let version = version.replace('-', ".pre.");
        // `scan(/[0-9]+|[a-z]+/i)`.
        let mut segments = Vec::new();
        let bytes = version.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let digits = bytes[at].is_ascii_digit();
            let end = bytes[at..]
                .iter()
                .position(|b| {
                    if digits {
                        !b.is_ascii_digit()
                    } else {
                        !b.is_ascii_alphabetic()
                    }
                })
                .map_or(bytes.len(), |n| at + n);
            if end == at {
                at += 1;
                continue;
            }
            let run = &version[at..end];
            segments.push(if digits {
                Segment::Number(Digits::parse(run)?)
            } else {
                Segment::Text(run.to_owned())
            });
            at = end;
        }
        // Canonical: trailing zeros dropped from the numbers before the first
        // text and from the whole.
        let first_text = segments
            .iter()
            .position(|s| matches!(s, Segment::Text(_)))
            .unwrap_or(segments.len());
        let (numbers, texts) = segments.split_at(first_text);
        let trim = |part: &[Segment]| {
            let keep = part
                .iter()
                .rposition(|s| *s != Segment::Number(Digits::zero()))
                .map_or(0, |n| n + 1);
            part[..keep].to_vec()
        };
        let mut canonical = trim(numbers);
        canonical.extend(trim(texts));
        Some(Segments(canonical))
    }

    fn is_prerelease(key: &Self::Key) -> bool {
        key.0.iter().any(|s| matches!(s, Segment::Text(_)))
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::is_prerelease;
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// RubyGems' test/rubygems/test_gem_version.rb (test_spaceship,
    /// test_eql_eh, test_prerelease_eh).
    #[test]
    fn gem_version_order() {
        assert_equal(
            FeedType::Rubygems,
            &[
                ("1.0", "1.0.0"),
                ("1.0", "1"),
                ("1.8.2", "1.8.2"),
                ("1.0.a", "1.0.a.0"),
                ("1.0-rc1", "1.0.pre.rc1"),
            ],
        );
        assert_ascending(
            FeedType::Rubygems,
            &[
                "0.9",
                "1.0.a",
                "1.0.a.2",
                "1.0.b",
                "1.0.b1",
                "1.0.0.pre",
                "1.0.0.rc1",
                "1.0",
                "1.8.a",
                "1.8.2",
                "1.9.3",
                "1.9.3.1",
                "1.10",
            ],
        );
        assert!(is_prerelease(FeedType::Rubygems, "1.2.0.a"));
        assert!(is_prerelease(FeedType::Rubygems, "2.9.b"));
        assert!(is_prerelease(FeedType::Rubygems, "22.1.50.0.d"));
        assert!(is_prerelease(FeedType::Rubygems, "1.2.d.42"));
        assert!(is_prerelease(FeedType::Rubygems, "1.A"));
        assert!(is_prerelease(FeedType::Rubygems, "1-1"));
        assert!(!is_prerelease(FeedType::Rubygems, "1.2.0"));
        assert!(!is_prerelease(FeedType::Rubygems, "2.9"));
        assert!(is_prerelease(FeedType::Rubygems, "junk"));
    }
}
