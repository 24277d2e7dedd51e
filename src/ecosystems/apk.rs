//! Alpine's apk: versions as apk-tools reads them (src/version.c): numbers
//! separated by `.`, an optional letter, suffixes (`_alpha < _beta < _pre <
//! _rc <` none `< _cvs < _svn < _git < _hg < _p`, each with an optional
//! number), an optional `~hash`, and a package revision `-rN`. apk has no
//! pre-releases.

use std::cmp::Ordering;

use super::version::{Digits, Scheme};

pub(super) struct ApkVersion;

/// The suffixes in their order around "no suffix" (rank 0).
const SUFFIXES: [(&str, i8); 9] = [
    ("alpha", -4),
    ("beta", -3),
    ("pre", -2),
    ("rc", -1),
    ("cvs", 1),
    ("svn", 2),
    ("git", 3),
    ("hg", 4),
    ("p", 5),
];

/// Numbers, letter, suffixes (a missing one is "none", rank 0), revision (a
/// missing one below `-r0`, as apk-tools has it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Apk {
    numbers: Vec<Component>,
    letter: Option<u8>,
    suffixes: Suffixes,
    revision: Option<Digits>,
}

/// A number of the version. After the first, one written with a leading zero
/// (`1.0.05`) is a fraction, compared as text, as apk-tools' `get_token`
/// reads it: `1.0.05 < 1.0.4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Component {
    text: String,
    value: Digits,
}

impl PartialOrd for Component {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Component {
    fn cmp(&self, other: &Self) -> Ordering {
        let fraction = |c: &Component| c.text.len() > 1 && c.text.starts_with('0');
        if fraction(self) || fraction(other) {
            self.text.cmp(&other.text)
        } else {
            self.value.cmp(&other.value)
        }
    }
}

/// Suffixes compared one by one, a missing one ranking as none; a suffix's
/// missing number below an explicit 0 (`1.0_p < 1.0_p0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Suffixes(Vec<(i8, Option<Digits>)>);

impl PartialOrd for Suffixes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Suffixes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for at in 0..self.0.len().max(other.0.len()) {
            let none = (0, None);
            let order = self
                .0
                .get(at)
                .unwrap_or(&none)
                .cmp(other.0.get(at).unwrap_or(&none));
            if order.is_ne() {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    }
}

/// The digits at the start of `text` (if any) and the rest.
fn digits(text: &str) -> (Option<&str>, &str) {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    ((end > 0).then(|| &text[..end]), &text[end..])
}

impl Scheme for ApkVersion {
    type Key = Apk;

    fn parse(version: &str) -> Option<Self::Key> {
        let (mut rest, revision) = match version.trim().rsplit_once("-r") {
            Some((rest, revision)) => {
                let (number, tail) = digits(revision);
                if !tail.is_empty() {
                    return None;
                }
                (rest, Some(Digits::parse(number?)?))
            }
            None => (version.trim(), None),
        };
        if let Some((stem, hash)) = rest.split_once('~') {
            if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            rest = stem;
        }
        let mut numbers = Vec::new();
        loop {
            let (number, tail) = digits(rest);
            let text = number?;
            numbers.push(Component {
                text: text.to_owned(),
                value: Digits::parse(text)?,
            });
            match tail.strip_prefix('.') {
                Some(more) => rest = more,
                None => {
                    rest = tail;
                    break;
                }
            }
        }
        let letter = match rest.as_bytes().first() {
            Some(&b) if b.is_ascii_lowercase() => {
                rest = &rest[1..];
                Some(b)
            }
            _ => None,
        };
        let mut suffixes = Vec::new();
        while let Some(tail) = rest.strip_prefix('_') {
            let (&(name, rank), after) = SUFFIXES
                .iter()
                .filter_map(|entry| tail.strip_prefix(entry.0).map(|after| (entry, after)))
                // `p` is a prefix of `pre`: the longest name wins.
                .max_by_key(|(entry, _)| entry.0.len())?;
            let _ = name;
            let (number, after) = digits(after);
            suffixes.push((rank, number.and_then(Digits::parse)));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Apk {
            numbers,
            letter,
            suffixes: Suffixes(suffixes),
            revision,
        })
    }

    fn is_prerelease(_: &Self::Key) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// apk-tools' test/version.data (lines `a < b`), and the suffix order of
    /// Alpine's APKBUILD reference.
    #[test]
    fn apk_version_order() {
        assert_ascending(
            FeedType::Apk,
            &[
                "1.0_alpha",
                "1.0_alpha1",
                "1.0_alpha2",
                "1.0_beta1",
                "1.0_pre1",
                "1.0_rc1",
                "1.0",
                "1.0-r1",
                "1.0-r2",
                "1.0_cvs1",
                "1.0_svn1",
                "1.0_git20240101",
                "1.0_hg1",
                "1.0_p1",
                "1.0_p2",
                "1.0.1",
                "1.2",
                "1.10",
                "2.0",
            ],
        );
        assert_ascending(FeedType::Apk, &["1.0", "1.0a", "1.0b", "1.0.1"]);
        // A missing number ranks below an explicit 0; a leading zero makes a
        // fraction.
        assert_ascending(FeedType::Apk, &["1.0_p", "1.0_p0"]);
        assert_ascending(FeedType::Apk, &["1.0", "1.0-r0"]);
        assert_ascending(FeedType::Apk, &["1.0.05", "1.0.4", "1.0.10"]);
        assert_ascending(FeedType::Apk, &["2.16.01", "2.16.1"]);
        assert_equal(FeedType::Apk, &[("1.0-r1", "1.0-r01")]);
    }
}
