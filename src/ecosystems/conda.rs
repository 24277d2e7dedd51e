//! conda: `VersionOrder` (conda/models/version.py, ported): an epoch (`N!`),
//! components separated by `.` or `_`, each split into runs of digits and
//! non-digits, a local part after `+`; `dev` below any text below any number,
//! `post` above every number, missing parts zero (`1.0 = 1.0.0`). conda has no
//! pre-releases.

use std::cmp::Ordering;

use super::version::{Digits, Scheme};

pub(super) struct VersionOrder;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Number(Digits),
    /// `post`: after the corresponding release (conda's `float("inf")`).
    Post,
    /// Text, lower-case; `dev` is `DEV`, so that it sorts first.
    Text(String),
}

impl Part {
    /// conda's `__lt__` for two parts: text below numbers, numbers (and
    /// `post`) among themselves, text by code points.
    fn cmp(&self, other: &Part) -> Ordering {
        match (self, other) {
            (Part::Text(a), Part::Text(b)) => a.cmp(b),
            (Part::Text(_), _) => Ordering::Less,
            (_, Part::Text(_)) => Ordering::Greater,
            (Part::Number(a), Part::Number(b)) => a.cmp(b),
            (Part::Post, Part::Post) => Ordering::Equal,
            (Part::Post, Part::Number(_)) => Ordering::Greater,
            (Part::Number(_), Part::Post) => Ordering::Less,
        }
    }
}

type Component = Vec<Part>;

#[derive(Debug, Clone)]
pub(super) struct Conda {
    version: Vec<Component>,
    local: Vec<Component>,
}

/// Component lists compared with `zip_longest`: a missing component is
/// empty, a missing part zero.
fn compare_components(left: &[Component], right: &[Component]) -> Ordering {
    let empty = Vec::new();
    let zero = Part::Number(Digits::zero());
    for at in 0..left.len().max(right.len()) {
        let (l, r) = (
            left.get(at).unwrap_or(&empty),
            right.get(at).unwrap_or(&empty),
        );
        for part in 0..l.len().max(r.len()) {
            let order = l
                .get(part)
                .unwrap_or(&zero)
                .cmp(r.get(part).unwrap_or(&zero));
            if order != Ordering::Equal {
                return order;
            }
        }
    }
    Ordering::Equal
}

impl PartialEq for Conda {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Conda {}

impl PartialOrd for Conda {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Conda {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_components(&self.version, &other.version)
            .then_with(|| compare_components(&self.local, &other.local))
    }
}

/// One component split into runs (`([0-9]+|[*]+|[^0-9*]+)`), a leading 0
/// added when it starts with text.
fn component(text: &str) -> Option<Component> {
    if text.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let kind = |b: u8| match b {
            b'0'..=b'9' => 0,
            b'*' => 1,
            _ => 2,
        };
        let first = kind(bytes[at]);
        let end = bytes[at..]
            .iter()
            .position(|&b| kind(b) != first)
            .map_or(bytes.len(), |n| at + n);
        let run = &text[at..end];
        parts.push(match run {
            _ if first == 0 => Part::Number(Digits::parse(run)?),
            "post" => Part::Post,
            "dev" => Part::Text("DEV".to_owned()),
            _ => Part::Text(run.to_owned()),
        });
        at = end;
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        parts.insert(0, Part::Number(Digits::zero()));
    }
    Some(parts)
}

impl Scheme for VersionOrder {
    type Key = Conda;

    fn parse(version: &str) -> Option<Self::Key> {
        let version = version.trim().to_lowercase();
        // conda reads `-` as `_` in a version that has no `_`.
        let version = if version.contains('_') {
            version
        } else {
            version.replace('-', "_")
        };
        if version.is_empty()
            || !version
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"*.+!_".contains(&b))
        {
            return None;
        }
        let (epoch, rest) = match version.split('!').collect::<Vec<_>>()[..] {
            [rest] => ("0", rest),
            [epoch, rest] if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
                (epoch, rest)
            }
            _ => return None,
        };
        let (main, local) = match rest.split('+').collect::<Vec<_>>()[..] {
            [main] => (main, None),
            [main, local] => (main, Some(local)),
            _ => return None,
        };
        if main.is_empty() {
            return None;
        }
        // openssl-like versions: a trailing `_` stays with the last component.
        let mut texts: Vec<String> = match main.strip_suffix('_') {
            Some(stem) => {
                let mut texts: Vec<String> = stem
                    .replace('_', ".")
                    .split('.')
                    .map(str::to_owned)
                    .collect();
                if let Some(last) = texts.last_mut() {
                    last.push('_');
                }
                texts
            }
            None => main
                .replace('_', ".")
                .split('.')
                .map(str::to_owned)
                .collect(),
        };
        texts.insert(0, epoch.to_owned());
        let version = texts
            .iter()
            .map(|t| component(t))
            .collect::<Option<Vec<_>>>()?;
        let local = match local {
            Some(local) => local
                .replace('_', ".")
                .split('.')
                .map(component)
                .collect::<Option<Vec<_>>>()?,
            None => Vec::new(),
        };
        Some(Conda { version, local })
    }

    fn is_prerelease(_: &Self::Key) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystems::version::tests::{assert_ascending, assert_equal};
    use crate::ecosystems::FeedType;

    /// conda's tests/models/test_version.py (test_version_order), whose list
    /// is ascending, with its equal groups.
    #[test]
    fn conda_version_order() {
        assert_ascending(
            FeedType::Conda,
            &[
                "0.4",
                "0.4.1.rc",
                "0.4.1",
                "0.5a1",
                "0.5b3",
                "0.5c1",
                "0.5z",
                "0.5za",
                "0.5",
                "0.5_5",
                "0.9.6",
                "0.960923",
                "1.0",
                "1.1dev1",
                "1.1_",
                "1.1a1",
                "1.1.0dev1",
                "1.1.a1",
                "1.1.0rc1",
                "1.1.0",
                "1.1.0post1",
                "1.1post1",
                "1996.07.12",
                "1!0.4.1",
                "1!3.1.1.6",
                "2!0.4.1",
            ],
        );
        assert_equal(
            FeedType::Conda,
            &[
                ("0.4", "0.4.0"),
                ("0.4.1.rc", "0.4.1.RC"),
                ("0.5C1", "0.5c1"),
                ("1.0", "1.0.0.0"),
                ("0!1.0", "1.0"),
                ("0.5-5", "0.5_5"),
            ],
        );
    }
}
