//! Property tests for the identity rules: what each feed type treats as the same
//! package version, for any input, not just the examples in the unit tests.

use proptest::prelude::*;

use super::{FeedName, FeedType, Identifier, PackageId, Purl};

fn id(feed_type: FeedType, group: Option<&str>, name: &str, version: &str) -> Option<PackageId> {
    let group = group.map(Identifier::parse).transpose().ok()?;
    let name = Identifier::parse(name).ok()?;
    let version = Identifier::parse(version).ok()?;
    PackageId::new(feed_type, group.as_ref(), &name, &version).ok()
}

fn keys(id: &PackageId) -> (String, String, String) {
    (id.group_key(), id.name_key(), id.version_key())
}

/// Upper- and lower-case letters at random.
fn recase(text: &str, flips: &[bool]) -> String {
    text.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &up)| {
            if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn feed_names_follow_the_rule_and_compare_without_case(raw in "[ A-Za-z0-9._/-]{0,3}[A-Za-z0-9._-]{0,105}[ /]{0,2}|\\PC{0,20}") {
        // Surrounding white space is forgiven; nothing else is.
        let trimmed = raw.trim();
        let valid = (1..=100).contains(&trimmed.chars().count())
            && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let parsed = FeedName::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", raw);
        if let Ok(name) = parsed {
            let upper = FeedName::parse(&raw.to_ascii_uppercase()).unwrap();
            prop_assert_eq!(name.key(), upper.key());
        }
    }

    #[test]
    fn identifiers_are_trimmed_bounded_and_printable(raw in "\\PC{0,260}|[\\x00-\\x1f a-z]{0,20}") {
        match Identifier::parse(&raw) {
            Ok(identifier) => {
                let text = identifier.as_str();
                prop_assert_eq!(text, raw.trim());
                prop_assert!(!text.is_empty() && text.chars().count() <= 250);
                prop_assert!(!text.chars().any(char::is_control));
            }
            Err(_) => prop_assert!(
                raw.trim().is_empty()
                    || raw.trim().chars().count() > 250
                    || raw.trim().chars().any(char::is_control)
            ),
        }
    }

    #[test]
    fn npm_scopes_match_with_or_without_the_at(scope in "[a-z0-9][a-z0-9._-]{0,20}", name in "[a-z0-9][a-z0-9._-]{0,20}", version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
        let bare = id(FeedType::Npm, Some(&scope), &name, &version).unwrap();
        let at = id(FeedType::Npm, Some(&format!("@{scope}")), &name, &version).unwrap();
        let joined = id(FeedType::Npm, None, &format!("@{scope}/{name}"), &version).unwrap();
        prop_assert_eq!(keys(&bare), keys(&at));
        prop_assert_eq!(keys(&bare), keys(&joined));
        prop_assert_eq!(bare.group(), format!("@{scope}"));
    }

    #[test]
    fn nuget_names_and_versions_ignore_case(name in "[A-Za-z][A-Za-z0-9.]{0,30}", version in "[0-9]\\.[0-9]\\.[0-9](-[A-Za-z]{1,8})?", flips in prop::collection::vec(any::<bool>(), 1..8)) {
        for feed_type in [FeedType::Nuget, FeedType::Chocolatey, FeedType::Powershell] {
            let a = id(feed_type, None, &name, &version).unwrap();
            let b = id(feed_type, None, &recase(&name, &flips), &recase(&version, &flips)).unwrap();
            prop_assert_eq!(keys(&a), keys(&b));
        }
        // Elsewhere case matters.
        let lower = id(FeedType::Universal, None, &name.to_ascii_lowercase(), &version).unwrap();
        let upper = id(FeedType::Universal, None, &name.to_ascii_uppercase(), &version).unwrap();
        prop_assert_eq!(lower.name_key() == upper.name_key(), name.to_ascii_lowercase() == name.to_ascii_uppercase());
    }

    #[test]
    fn pypi_names_compare_after_pep_503(parts in prop::collection::vec("[A-Za-z0-9]{1,6}", 1..4), separators in prop::collection::vec("[-_.]{1,3}", 3)) {
        let plain = parts.join("-");
        let mut odd = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                odd.push_str(&separators[i - 1]);
            }
            odd.push_str(&part.to_ascii_uppercase());
        }
        let a = id(FeedType::Pypi, None, &plain, "1.0").unwrap();
        let b = id(FeedType::Pypi, None, &odd, "1.0").unwrap();
        prop_assert_eq!(a.name_key(), b.name_key());
        prop_assert_eq!(a.name_key(), plain.to_ascii_lowercase());
    }

    #[test]
    fn docker_group_and_name_are_one_repository(group in "[a-z0-9]{1,10}(/[a-z0-9]{1,10})?", name in "[a-z0-9]{1,10}", tag in "[a-z0-9.]{1,10}") {
        let split = id(FeedType::Docker, Some(&group), &name, &tag).unwrap();
        let whole = id(FeedType::Docker, None, &format!("{group}/{name}"), &tag).unwrap();
        prop_assert_eq!(keys(&split), keys(&whole));
    }

    #[test]
    fn keys_are_stable_under_renormalisation(feed in 0usize..FeedType::ALL.len(), group in "[A-Za-z0-9@._-]{1,12}", name in "[A-Za-z0-9._-]{1,20}", version in "[A-Za-z0-9.+-]{1,12}") {
        let feed_type = FeedType::ALL[feed];
        if let Some(first) = id(feed_type, Some(&group), &name, &version) {
            // Feeding the canonical form back in names the same version.
            let group = Some(first.group()).filter(|g| !g.is_empty());
            let again = id(feed_type, group, first.name(), first.version()).unwrap();
            prop_assert_eq!(keys(&first), keys(&again));
        }
    }

    #[test]
    fn package_urls_never_panic(text in "pkg:\\PC{0,60}|\\PC{0,60}") {
        let _ = Purl::parse(&text);
    }
}
