//! A short, stable digest of a text: what a pair remembers of a mirrored comment (an edit changes it, a
//! repeat does not), and how an arbitrary build key becomes part of a queue message group id.

use sha2::{Digest, Sha256};

/// The first 12 bytes of the text's SHA-256, in hex (24 characters). Stored on pairs: never change it.
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hex::encode(&hash[..12])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digest_is_the_stored_form() {
        assert_eq!(super::digest(""), "e3b0c44298fc1c149afbf4c8");
        assert_eq!(super::digest("ci").len(), 24);
    }
}
