//! `X-Hub-Signature: sha256=<hex>` signing as Jira admin webhooks and Bitbucket Cloud do it:
//! HMAC-SHA256 keyed with the secret's UTF-8 bytes over the raw body, lowercase hex.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The full header value, `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; fall back to an impossible signature
    // rather than panicking if the library ever changes that contract.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => "sha256=".to_owned(),
    }
}
