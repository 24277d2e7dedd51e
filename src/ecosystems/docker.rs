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
