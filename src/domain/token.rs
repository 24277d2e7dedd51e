//! Random secrets and their hashes. API keys, webhook secrets, sign-in session
//! tokens and form tokens are all 32 bytes from the operating system's random
//! source, written as 64 hex digits; what is stored of a key or a session is the
//! SHA-256 of its text, in hex. Plain SHA-256 is enough for these: nothing random
//! of this length can be guessed with a dictionary, unlike a password.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 of `text`, as hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
