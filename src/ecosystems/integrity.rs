//! The digests an upstream registry publishes for a file (npm's `integrity`
//! and `shasum`, PyPI's `sha256`, NuGet's `packageHash`), which a connector
//! checks the bytes against before it keeps them (contract section 16).

/// `text` as one segment of an upstream URL's path, percent-encoded so that
/// a name from a request can never reach another path on the upstream (`..`,
/// `?`, `#`, `/`); `None` for what no package is called (empty, `.`, `..`).
pub fn path_segment(text: &str) -> Option<String> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEPT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    if text.is_empty() || text == "." || text == ".." {
        return None;
    }
    Some(utf8_percent_encode(text, KEPT).to_string())
}

/// A digest an upstream publishes for a file, in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Sha1(String),
    Sha256(String),
    Sha512(String),
}

impl Integrity {
    /// npm's `integrity` (`sha512-BASE64`, or another SRI algorithm this
    /// server computes), if it is one.
    pub fn from_sri(sri: &str) -> Option<Integrity> {
        use base64::Engine;
        // SRI may list several; the strongest this server computes wins.
        let mut found = None;
        for entry in sri.split_whitespace() {
            // An entry that cannot be read is skipped, as browsers do.
            let Some((algorithm, digest)) = entry.split_once('-') else {
                continue;
            };
            let digest = digest.split('?').next().unwrap_or(digest);
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(digest) else {
                continue;
            };
            match algorithm {
                "sha512" => return Some(Integrity::Sha512(hex::encode(bytes))),
                "sha256" => found = Some(Integrity::Sha256(hex::encode(bytes))),
                "sha1" if found.is_none() => found = Some(Integrity::Sha1(hex::encode(bytes))),
                _ => {}
            }
        }
        found
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Integrity::Sha1(_) => "SHA-1",
            Integrity::Sha256(_) => "SHA-256",
            Integrity::Sha512(_) => "SHA-512",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_path_segment() {
        assert_eq!(path_segment("left-pad").as_deref(), Some("left-pad"));
        assert_eq!(
            path_segment("a/../b?x#y").as_deref(),
            Some("a%2F..%2Fb%3Fx%23y")
        );
        assert_eq!(path_segment(".."), None);
        assert_eq!(path_segment(""), None);
    }

    #[test]
    fn sri_integrity_is_read_as_hex() {
        assert_eq!(
            Integrity::from_sri("sha512-AP8="),
            Some(Integrity::Sha512("00ff".into()))
        );
        assert_eq!(
            Integrity::from_sri("sha1-AP8= sha512-AQ=="),
            Some(Integrity::Sha512("01".into()))
        );
        assert_eq!(Integrity::from_sri("md5-AP8="), None);
        assert_eq!(Integrity::from_sri("nonsense"), None);
    }
}
