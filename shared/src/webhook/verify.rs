//! Authenticity checks, run on the raw body bytes before anything parses them.
//!
//! - Bitbucket and Jira (admin webhooks with a secret) send `X-Hub-Signature: sha256=<hex>`, the
//!   HMAC-SHA256 of the raw body keyed with the shared secret. [`verify_signature`] checks it in constant
//!   time and returns a [`Verified`] body, the only input the JSON parsers accept.
//! - Basecamp does not sign deliveries. Each route's webhook URL carries a secret token instead,
//!   [`route_token`], derived from a server key so nothing per-route needs storing; receivers check it with
//!   [`check_route_token`].

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WebhookError;
use crate::domain::RouteId;

type HmacSha256 = Hmac<Sha256>;

/// The signature header Bitbucket and Jira use.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// Length of a Basecamp route token, in characters (128 bits of hex).
pub const ROUTE_TOKEN_LEN: usize = 32;

/// A body whose signature has been checked. Only [`verify_signature`] constructs one, so a function taking
/// `Verified` cannot be handed unauthenticated bytes. Its `Debug` shows the length, never the content.
#[derive(Clone, Copy)]
pub struct Verified<'a> {
    body: &'a [u8],
}

impl<'a> Verified<'a> {
    /// The raw body bytes that were verified.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

impl std::fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verified({} bytes)", self.body.len())
    }
}

fn mac(key: &SecretString) -> Result<HmacSha256, WebhookError> {
    // HMAC takes keys of any length, so this cannot fail; map it rather than unwrap on a request path.
    HmacSha256::new_from_slice(key.expose_secret().as_bytes()).map_err(|_| WebhookError::BadSignature)
}

/// Checks `header` (the `X-Hub-Signature` value, `None` if absent) against `body` under `secret`.
///
/// Accepts only `sha256=` followed by exactly 64 hex digits; any other method, bad hex or wrong length is
/// [`WebhookError::BadSignature`], an absent header [`WebhookError::MissingSignature`]. The comparison is
/// constant-time (`hmac`'s `verify_slice`).
pub fn verify_signature<'a>(
    secret: &SecretString,
    header: Option<&str>,
    body: &'a [u8],
) -> Result<Verified<'a>, WebhookError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(WebhookError::MissingSignature)?;
    let hex_digest = header.strip_prefix("sha256=").ok_or(WebhookError::BadSignature)?;
    if hex_digest.len() != 64 {
        return Err(WebhookError::BadSignature);
    }
    let expected = hex::decode(hex_digest).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = mac(secret)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| WebhookError::BadSignature)?;
    Ok(Verified { body })
}

/// The `X-Hub-Signature` value for `body` under `secret` (`sha256=<lowercase hex>`): what Bitbucket and
/// Jira send, and what simulators and tests use to sign deliveries.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    match mac(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // Unreachable (see `mac`); an empty signature never verifies.
        Err(_) => String::new(),
    }
}

/// The secret path token for a route's Basecamp webhook URL: HMAC-SHA256(key, `"basecamp-route:" + id`)
/// as lowercase hex, cut to [`ROUTE_TOKEN_LEN`] characters. Deterministic, so the URL is stable across
/// deploys while the key is unchanged; rotating the key changes every URL.
pub fn route_token(key: &SecretString, route: &RouteId) -> String {
    match mac(key) {
        Ok(mut mac) => {
            mac.update(b"basecamp-route:");
            mac.update(route.as_str().as_bytes());
            let mut token = hex::encode(mac.finalize().into_bytes());
            token.truncate(ROUTE_TOKEN_LEN);
            token
        }
        Err(_) => String::new(),
    }
}

/// Whether `presented` is `route`'s token, compared in constant time (a length mismatch is simply false;
/// the length is public).
pub fn check_route_token(key: &SecretString, route: &RouteId, presented: &str) -> bool {
    let expected = route_token(key, route);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// [`check_route_token`] as a result, for receivers that branch on [`WebhookError`]: a wrong token is
/// [`WebhookError::UnknownRoute`], indistinguishable from a route that does not exist.
pub fn authorize_route(key: &SecretString, route: &RouteId, presented: &str) -> Result<(), WebhookError> {
    if check_route_token(key, route, presented) { Ok(()) } else { Err(WebhookError::UnknownRoute) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::webhook::test_support::fixture;

    const BITBUCKET_SECRET: &str = "Gkvl$k$wyNpQAF42";
    const BITBUCKET_SIGNATURE: &str = "sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[derive(Deserialize)]
    struct Vector {
        secret: String,
        raw_body: String,
        header_value: String,
    }

    #[test]
    fn the_jira_documentation_vector_verifies() {
        let v: Vector =
            serde_json::from_slice(&fixture("jira", "webhook-signature-test-vector.docs-example.json")).unwrap();
        assert_eq!(v.raw_body, "Hello World!");
        let key = secret(&v.secret);
        assert!(verify_signature(&key, Some(&v.header_value), v.raw_body.as_bytes()).is_ok());
        assert_eq!(sign(&key, v.raw_body.as_bytes()), v.header_value);
    }

    #[test]
    fn the_second_jira_vector_verifies() {
        // From the reference (jira-api.md §5.2, recomputed there).
        let header = "sha256=beb656dd03b5a81bee94aab4966943bf694929fcd359c45a1947277df2541a5d";
        assert!(verify_signature(&secret("wrong-secret"), Some(header), b"smth").is_ok());
    }

    #[test]
    fn the_real_bitbucket_delivery_verifies_over_its_exact_raw_bytes() {
        let body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
        assert_eq!(body.len(), 14_515, "the fixture must stay byte-exact (no trailing newline)");
        let verified = verify_signature(&secret(BITBUCKET_SECRET), Some(BITBUCKET_SIGNATURE), &body).unwrap();
        assert_eq!(verified.body().len(), body.len());
        assert_eq!(sign(&secret(BITBUCKET_SECRET), &body), BITBUCKET_SIGNATURE);
    }

    #[test]
    fn flipping_the_last_hex_digit_of_the_bitbucket_signature_fails() {
        let body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
        let tampered = BITBUCKET_SIGNATURE.replace("a035", "a036");
        assert_eq!(
            verify_signature(&secret(BITBUCKET_SECRET), Some(&tampered), &body).unwrap_err(),
            WebhookError::BadSignature
        );
    }

    #[test]
    fn a_body_signed_here_verifies_here() {
        let key = secret("round-trip-secret");
        let body = br#"{"hello":"world"}"#;
        let header = sign(&key, body);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), 7 + 64);
        assert!(verify_signature(&key, Some(&header), body).is_ok());
    }

    #[test]
    fn a_body_with_one_byte_changed_fails() {
        let key = secret(BITBUCKET_SECRET);
        let mut body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
        body[100] ^= 0x01;
        assert_eq!(verify_signature(&key, Some(BITBUCKET_SIGNATURE), &body).unwrap_err(), WebhookError::BadSignature);
    }

    #[test]
    fn the_wrong_secret_fails() {
        let body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
        assert_eq!(
            verify_signature(&secret("not-the-secret"), Some(BITBUCKET_SIGNATURE), &body).unwrap_err(),
            WebhookError::BadSignature
        );
    }

    #[test]
    fn a_missing_signature_header_is_its_own_error() {
        assert_eq!(verify_signature(&secret("k"), None, b"x").unwrap_err(), WebhookError::MissingSignature);
        assert_eq!(verify_signature(&secret("k"), Some("  "), b"x").unwrap_err(), WebhookError::MissingSignature);
    }

    #[test]
    fn malformed_signature_headers_fail() {
        let key = secret("It's a Secret to Everybody");
        let good = "a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9";
        let bad = [
            good.to_owned(),                     // no method prefix
            format!("sha1={good}"),              // another method
            format!("SHA256={good}"),            // the method is lower case
            format!("sha256={}", &good[..62]),   // too short
            format!("sha256={good}00"),          // too long
            format!("sha256={}zz", &good[..62]), // not hex
            format!("sha256= {}", &good[..63]),  // stray space
            "sha256=".to_owned(),                // empty digest
        ];
        for header in bad {
            assert_eq!(
                verify_signature(&key, Some(&header), b"Hello World!").unwrap_err(),
                WebhookError::BadSignature,
                "{header}"
            );
        }
        assert!(verify_signature(&key, Some(&format!("sha256={good}")), b"Hello World!").is_ok());
    }

    #[test]
    fn an_upper_case_hex_digest_is_accepted() {
        let key = secret("It's a Secret to Everybody");
        let header = "sha256=A4771C39FBE90F317C7824E83DDEF3CAAE9CB3D976C214ACE1F2937E133263C9";
        assert!(verify_signature(&key, Some(header), b"Hello World!").is_ok());
    }

    #[test]
    fn verified_debug_output_hides_the_body() {
        let key = secret("k");
        let body = b"top secret body";
        let verified = verify_signature(&key, Some(&sign(&key, body)), body).unwrap();
        assert_eq!(format!("{verified:?}"), "Verified(15 bytes)");
    }

    #[test]
    fn route_tokens_are_32_hex_chars_stable_and_distinct_per_route() {
        let key = secret("server-key");
        let web = RouteId::parse("web").unwrap();
        let api = RouteId::parse("api").unwrap();
        let token = route_token(&key, &web);
        assert_eq!(token.len(), ROUTE_TOKEN_LEN);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(token, route_token(&key, &web));
        assert_ne!(token, route_token(&key, &api));
        assert_ne!(token, route_token(&secret("other-key"), &web));
    }

    #[test]
    fn a_route_token_is_the_truncated_hmac_of_the_route_id() {
        let key = secret("server-key");
        let route = RouteId::parse("web").unwrap();
        let full = sign(&key, b"basecamp-route:web");
        assert_eq!(route_token(&key, &route), full["sha256=".len().."sha256=".len() + ROUTE_TOKEN_LEN]);
    }

    #[test]
    fn only_the_right_route_token_passes() {
        let key = secret("server-key");
        let web = RouteId::parse("web").unwrap();
        let api = RouteId::parse("api").unwrap();
        let token = route_token(&key, &web);
        assert!(check_route_token(&key, &web, &token));
        assert!(authorize_route(&key, &web, &token).is_ok());
        assert!(!check_route_token(&key, &api, &token));
        assert!(!check_route_token(&key, &web, &token[..31]));
        assert!(!check_route_token(&key, &web, &format!("{token}0")));
        assert!(!check_route_token(&key, &web, &token.to_uppercase()));
        assert!(!check_route_token(&key, &web, ""));
        assert_eq!(authorize_route(&key, &api, &token).unwrap_err(), WebhookError::UnknownRoute);
    }

    proptest! {
        #[test]
        fn flipping_any_single_byte_of_a_signed_body_fails_verification(
            body in proptest::collection::vec(any::<u8>(), 1..2048),
            index in any::<proptest::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let key = secret("property-secret");
            let header = sign(&key, &body);
            prop_assert!(verify_signature(&key, Some(&header), &body).is_ok());
            let mut tampered = body.clone();
            let i = index.index(tampered.len());
            tampered[i] ^= mask;
            prop_assert_eq!(verify_signature(&key, Some(&header), &tampered).unwrap_err(), WebhookError::BadSignature);
        }

        #[test]
        fn flipping_any_byte_of_the_real_bitbucket_delivery_fails(index in 0usize..14_515, mask in 1u8..=255) {
            let key = secret(BITBUCKET_SECRET);
            let mut body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
            body[index] ^= mask;
            prop_assert_eq!(
                verify_signature(&key, Some(BITBUCKET_SIGNATURE), &body).unwrap_err(),
                WebhookError::BadSignature
            );
        }
    }
}
