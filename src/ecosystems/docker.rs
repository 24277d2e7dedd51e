//! Docker: a repository is one name, however a client splits it.

/// pgutil splits `library/nginx` into a group and a name; for docker the
/// repository is the whole path, so the two are joined into the name.
pub(super) fn canonical(
    group: Option<&str>,
    name: Option<&str>,
) -> (Option<String>, Option<String>) {
    match (group, name) {
        (Some(prefix), Some(rest)) => (
            Some(String::new()),
            Some(format!("{}/{rest}", prefix.trim_end_matches('/'))),
        ),
        _ => (group.map(str::to_owned), name.map(str::to_owned)),
    }
}

/// The one tag `latest` and `latest-stable` name (contract 11, a decision:
/// docker tags have no order).
pub(super) const LATEST: &str = "latest";

/// Docker tags: no order (every tag ranks alike; callers that list them sort
/// by text) and no pre-releases.
pub(super) struct Tag;

impl super::version::Scheme for Tag {
    type Key = ();

    fn parse(_: &str) -> Option<()> {
        Some(())
    }

    fn is_prerelease(_: &()) -> bool {
        false
    }
}
