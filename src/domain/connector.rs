//! A feed's connectors (contract section 16): the upstream registries whose
//! packages the feed offers besides its own. The credentials are kept as
//! given, since they must be sent to the upstream, and are never shown: not
//! in the management API, not in listings, not in Debug output.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::webhook::MAX_URL_CHARS;

/// The most connectors one feed may have.
pub const MAX_CONNECTORS: usize = 8;

/// One upstream: its URL (an npm registry, a PyPI simple index, a NuGet v3
/// service index, a Maven repository) and how to sign in to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.url)
            .field("credentials", &self.credentials())
            .finish()
    }
}

impl Connector {
    /// A connector to `url` with the given credentials: a user name with a
    /// password (Basic), or a token (Bearer), or neither. The error is one
    /// sentence naming `field` (the JSON field or the flag), or `url_field`
    /// when the URL is wrong.
    pub fn new(
        url: &str,
        username: Option<String>,
        password: Option<String>,
        token: Option<String>,
        field: &str,
        url_field: &str,
    ) -> Result<Connector, String> {
        let url = connector_url(url).map_err(|rule| format!("{url_field} {rule}."))?;
        let blank = |value: Option<String>| value.filter(|v| !v.is_empty());
        let (username, password, token) = (blank(username), blank(password), blank(token));
        if token.is_some() && (username.is_some() || password.is_some()) {
            return Err(format!(
                "{field} may have a username and password or a token, not both."
            ));
        }
        if password.is_some() && username.is_none() {
            return Err(format!("{field} has a password but no username."));
        }
        for value in [&username, &password, &token].into_iter().flatten() {
            if value.chars().count() > 1000 || value.chars().any(char::is_control) {
                return Err(format!(
                    "{field} has a credential longer than 1,000 characters or holding control characters."
                ));
            }
        }
        Ok(Connector {
            url,
            username,
            password,
            token,
        })
    }

    /// How the connector signs in, as listings show it: never the secret.
    pub fn credentials(&self) -> &'static str {
        match (&self.token, &self.username) {
            (Some(_), _) => "token",
            (None, Some(_)) => "basic",
            (None, None) => "none",
        }
    }

    /// The URL as given: an npm registry's or a PyPI index's root, a NuGet
    /// service index.
    pub fn as_url(&self) -> url::Url {
        url::Url::parse(&self.url).expect("a connector's URL was parsed when it was set")
    }

    /// The URL as a folder that paths join below (`…/simple` is `…/simple/`).
    pub fn as_base(&self) -> url::Url {
        let mut url = self.as_url();
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url
    }
}

/// An absolute http(s) URL with a host, no query, fragment or credentials
/// (they go in their own fields, which are never shown). The error
/// completes "the URL …".
fn connector_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters long"));
    }
    let url = url::Url::parse(text).map_err(|e| {
        format!("is not a valid absolute URL ({e}); give one such as https://registry.npmjs.org/")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password: give them as username and password (or token)".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    Ok(url.to_string())
}

/// A feed's connectors, in the order they are asked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Connectors(pub Arc<[Connector]>);

impl fmt::Debug for Connectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Connectors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Connector> {
        self.0.iter()
    }

    /// As stored in `feeds.connectors`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&*self.0).expect("connectors serialise")
    }
}

impl TryFrom<String> for Connectors {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let list: Vec<Connector> = serde_json::from_str(&text)?;
        Ok(Connectors(list.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_end_in_a_slash_and_credentials_are_never_debugged() {
        let c = Connector::new(
            "http://127.0.0.1:4873",
            Some("u".into()),
            Some("secret".into()),
            None,
            "connectors[0]",
            "connectors[0].url",
        )
        .unwrap();
        assert_eq!(c.url, "http://127.0.0.1:4873/");
        let index = Connector::new("https://h/simple", None, None, None, "c", "c.url").unwrap();
        assert_eq!(index.as_base().as_str(), "https://h/simple/");
        assert_eq!(c.credentials(), "basic");
        assert!(!format!("{c:?}").contains("secret"));
        let listed = Connectors(vec![c].into());
        assert!(!format!("{listed:?}").contains("secret"));
        assert_eq!(Connectors::try_from(listed.to_json()).unwrap(), listed);
    }

    #[test]
    fn bad_connectors_are_refused_in_one_sentence() {
        let refused = |url: &str, token: Option<&str>, password: Option<&str>| {
            Connector::new(
                url,
                None,
                password.map(Into::into),
                token.map(Into::into),
                "--connector",
                "--connector",
            )
            .unwrap_err()
        };
        assert!(refused("ftp://h/", None, None).starts_with("--connector must be an http"));
        assert!(refused("http://u:p@h/", None, None).contains("must not contain a user name"));
        assert!(refused("https://h/?q=1", None, None).contains("query"));
        assert_eq!(
            refused("https://h/", None, Some("p")),
            "--connector has a password but no username."
        );
    }
}
