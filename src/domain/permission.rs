use std::fmt;
use std::str::FromStr;

/// One thing a key may do. `view`, `add`, `promote` and `delete` apply to the
/// feeds in a key's scope; `manage` (system keys only) covers feeds and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    View,
    Add,
    Promote,
    Delete,
    Manage,
}

impl Permission {
    const ALL: [Permission; 5] = [
        Permission::View,
        Permission::Add,
        Permission::Promote,
        Permission::Delete,
        Permission::Manage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Add => "add",
            Permission::Promote => "promote",
            Permission::Delete => "delete",
            Permission::Manage => "manage",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions. Stored as its comma-separated text (`view,promote`), so
/// that a person reading the `api_keys` table sees what a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const FEED_ALL: Permissions = Permissions(0b01111);
    pub const ALL: Permissions = Permissions(0b11111);

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| {
                format!("unknown permission {raw:?}: use view, add, promote, delete or manage")
            })
    }
}

impl FromStr for Permissions {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        raw.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse::<Permission>)
            .collect()
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Permission::as_str).collect();
        f.pad(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_through_text() {
        let p: Permissions = "promote, VIEW".parse().unwrap();
        assert!(p.contains(Permission::View) && p.contains(Permission::Promote));
        assert!(!p.contains(Permission::Add));
        assert_eq!(p.to_string(), "view,promote");
        assert_eq!(
            Permissions::ALL.to_string(),
            "view,add,promote,delete,manage"
        );
        assert!("".parse::<Permissions>().unwrap().is_empty());
        assert!("view,own"
            .parse::<Permissions>()
            .unwrap_err()
            .contains("own"));
    }
}
