//! Inbound webhooks: size check, then authenticity, then parsing into normalized events.
//!
//! Every receiver (Lambda or local mode) calls one `ingest` function per source:
//! [`basecamp::ingest`], [`jira::ingest`], [`bitbucket::ingest`]. Each enforces [`MAX_BODY_BYTES`] first,
//! then authenticates (Jira/Bitbucket: HMAC over the raw body, see [`verify`]; Basecamp: the receiver checks
//! the route token in the URL with [`verify::check_route_token`] before calling ingest), and only then parses.
//! The JSON parsers for signed sources accept nothing but a [`verify::Verified`] body, which only the
//! verifier can construct.
//!
//! Event kinds are an open set: anything the sync does not act on becomes an `Ignored` event (answer 2xx),
//! never an error. Errors are [`WebhookError`], mapped to an HTTP status in exactly one place,
//! [`WebhookError::status`].

pub mod basecamp;
pub mod bitbucket;
pub mod jira;
pub mod verify;

/// The largest body a receiver accepts (1 MiB). Bitbucket caps its payloads at 256 KB; Basecamp and Jira
/// bodies are far smaller, so anything bigger is not a genuine delivery.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why an inbound webhook was rejected. Every variant is a 4xx: the request is not retried into success,
/// and nothing was enqueued or stored. Messages never contain secrets, signatures or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No `X-Hub-Signature` header on a source that must be signed.
    #[error("missing signature header")]
    MissingSignature,
    /// The signature header is malformed or does not match the body under our secret.
    #[error("signature does not match")]
    BadSignature,
    /// The URL names no configured route, or its route token is wrong (indistinguishable on purpose).
    #[error("unknown route or bad route token")]
    UnknownRoute,
    /// The body exceeds [`MAX_BODY_BYTES`].
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not a delivery of the expected shape; the reason is short and never quotes the body.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A required header (named) is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
}

impl WebhookError {
    /// The HTTP status a receiver answers with. Sources do not retry 4xx, which is right: the same
    /// request would fail the same way.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::BadSignature => 401,
            Self::UnknownRoute => 404,
            Self::TooLarge => 413,
            Self::Malformed(_) | Self::MissingHeader(_) => 400,
        }
    }

    /// A short reason safe to put in a response body (no detail an attacker could probe with).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing signature",
            Self::BadSignature => "bad signature",
            Self::UnknownRoute => "not found",
            Self::TooLarge => "payload too large",
            Self::Malformed(_) => "malformed payload",
            Self::MissingHeader(_) => "missing header",
        }
    }

    /// A [`WebhookError::Malformed`] from a JSON error, cut short so it can never carry much of the body.
    pub(crate) fn malformed(err: impl std::fmt::Display) -> Self {
        Self::Malformed(truncate(&err.to_string(), 160))
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Request headers as a receiver sees them, looked up by name without regard to case. Implemented for
/// slices of name/value pairs, so axum and lambda_http handlers can pass
/// `headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect::<Vec<_>>()`.
pub trait Headers {
    /// The first value of the header `name` (ASCII case-insensitive), if present.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

/// Rejects a body over [`MAX_BODY_BYTES`]; the first check of every `ingest`.
pub fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY_BYTES { Err(WebhookError::TooLarge) } else { Ok(()) }
}

/// A required header's non-empty value, or [`WebhookError::MissingHeader`].
fn required<'h>(headers: &'h (impl Headers + ?Sized), name: &'static str) -> Result<&'h str, WebhookError> {
    headers.header(name).map(str::trim).filter(|v| !v.is_empty()).ok_or(WebhookError::MissingHeader(name))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixture loading shared by the webhook tests.
    #![allow(clippy::unwrap_used)]

    /// The bytes of `tests/fixtures/<service>/<name>` in this repository, exactly as stored.
    pub fn fixture(service: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/{service}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_http_status() {
        assert_eq!(WebhookError::MissingSignature.status(), 401);
        assert_eq!(WebhookError::BadSignature.status(), 401);
        assert_eq!(WebhookError::UnknownRoute.status(), 404);
        assert_eq!(WebhookError::TooLarge.status(), 413);
        assert_eq!(WebhookError::Malformed("x".into()).status(), 400);
        assert_eq!(WebhookError::MissingHeader("X-Event-Key").status(), 400);
    }

    #[test]
    fn a_malformed_reason_is_cut_short() {
        let long = "x".repeat(10_000);
        let WebhookError::Malformed(reason) = WebhookError::malformed(&long) else { panic!("not malformed") };
        assert!(reason.chars().count() <= 161, "{}", reason.len());
    }

    #[test]
    fn headers_are_found_regardless_of_case() {
        let headers = [("x-event-key", "repo:push"), ("X-Request-UUID", "abc")];
        assert_eq!(headers.header("X-Event-Key"), Some("repo:push"));
        assert_eq!(headers.header("x-request-uuid"), Some("abc"));
        assert_eq!(headers.header("X-Hub-Signature"), None);
    }

    #[test]
    fn a_body_of_exactly_the_limit_passes_and_one_more_byte_does_not() {
        assert!(check_size(&vec![b' '; MAX_BODY_BYTES]).is_ok());
        assert_eq!(check_size(&vec![b' '; MAX_BODY_BYTES + 1]), Err(WebhookError::TooLarge));
    }
}
