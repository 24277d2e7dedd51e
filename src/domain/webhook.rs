//! A webhook's URL and signing secret. Whether the URL's host may be called
//! (public addresses only) is a question of the network, answered where the
//! deliveries are made (`webhooks::targets`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAX_URL_CHARS: usize = 2000;
pub const MIN_SECRET_CHARS: usize = 16;
pub const MAX_SECRET_CHARS: usize = 200;

/// An absolute `http` or `https` URL with a host and no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// The error completes "the URL …".
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let text = text.trim();
        if text.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters long"));
        }
        let url = url::Url::parse(text)
            .map_err(|e| format!("is not a valid absolute URL ({e}); give one such as https://ci.example.com/hooks/promoted"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("must use http or https, not {}", url.scheme()));
        }
        if url.host().is_none() {
            return Err("must name a host".to_owned());
        }
        // The URL is shown in listings; authentication belongs in the signature.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "must not contain a user name or password; receivers authenticate deliveries by their signature"
                    .to_owned(),
            );
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The shared secret that signs a webhook's deliveries. Debug output never shows
/// any of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A random secret (see `random_hex`).
    pub fn generate() -> WebhookSecret {
        WebhookSecret(super::random_hex())
    }

    /// A secret the caller chose. The error completes "the secret …".
    pub fn chosen(text: &str) -> Result<WebhookSecret, String> {
        let chars = text.chars().count();
        if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
            return Err(format!(
                "must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters long, not {chars}"
            ));
        }
        if text.chars().any(|c| c.is_control()) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(WebhookSecret(text.to_owned()))
    }

    /// A secret read back from the database, where only valid ones are written.
    pub fn stored(text: String) -> WebhookSecret {
        WebhookSecret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `X-Promoter-Signature-256` header's value for `body`: GitHub's
    /// convention, `sha256=` and the hex HMAC-SHA256 of the raw body.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes())
            .expect("HMAC accepts a key of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// More feeds than any repository has; bounds the work a webhook can ask for.
pub const MAX_FILTER_FEEDS: usize = 100;

/// How many feeds a webhook's filter names, checked where it is made (the
/// API and `webhooks add` alike); the error completes "… feeds".
pub fn check_filter_size(feeds: usize) -> Result<(), String> {
    match feeds > MAX_FILTER_FEEDS {
        true => Err(format!("may name at most {MAX_FILTER_FEEDS} feeds")),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_and_no_credentials() {
        assert!(WebhookUrl::parse("https://ci.example.com/hooks?x=1").is_ok());
        assert!(WebhookUrl::parse(" http://10.0.0.1:8080/ ").is_ok());
        for (bad, says) in [
            ("ftp://example.com/", "must use http or https, not ftp"),
            ("file:///etc/passwd", "must use http or https, not file"),
            ("example.com/hook", "is not a valid absolute URL"),
            (
                "https://bob:pw@example.com/",
                "must not contain a user name",
            ),
            ("https://bob@example.com/", "must not contain a user name"),
        ] {
            let error = WebhookUrl::parse(bad).unwrap_err();
            assert!(error.starts_with(says), "{bad}: {error}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn secrets_are_long_enough_and_never_debug_printed() {
        assert!(WebhookSecret::chosen("short").is_err());
        assert!(WebhookSecret::chosen("sixteen chars ok").is_ok());
        assert!(WebhookSecret::chosen("sixteen chars\0ok").is_err());
        let secret = WebhookSecret::generate();
        assert_eq!(secret.expose().len(), 64);
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn signatures_follow_rfc_4231() {
        // RFC 4231, test case 2: key "Jefe".
        let secret = WebhookSecret("Jefe".to_owned());
        assert_eq!(
            secret.sign(b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
