//! Preflight checks `campbridge doctor` runs, and the setup error codes they report.
//!
//! The base-URL check is the outbound guard's ([`crate::outbound`]) plus one request with redirects off,
//! whose answer [`check_redirect`] judges (a pure function, testable without a server).

use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::outbound::OutboundGuard;

/// The codes a failed setup check carries. Stable: the docs and the README name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SetupCode {
    /// Bad, expired or revoked credentials.
    #[serde(rename = "PROVIDER_AUTH_REQUIRED")]
    AuthRequired,
    /// The credentials work but lack a scope or permission, or the target cannot receive what the route
    /// needs (e.g. Bitbucket native issues, removed on 2026-08-20).
    #[serde(rename = "PROVIDER_SCOPE_UNAVAILABLE")]
    ScopeUnavailable,
    /// A base URL failed the safety checks (not https, a private/loopback/link-local/reserved address, a
    /// redirect elsewhere).
    #[serde(rename = "PROVIDER_BASE_URL_BLOCKED")]
    BaseUrlBlocked,
}

impl SetupCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthRequired => "PROVIDER_AUTH_REQUIRED",
            Self::ScopeUnavailable => "PROVIDER_SCOPE_UNAVAILABLE",
            Self::BaseUrlBlocked => "PROVIDER_BASE_URL_BLOCKED",
        }
    }
}

impl std::fmt::Display for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks one answer to a request made with redirects off: a 3xx whose `Location` leaves the base
/// URL's origin, or goes to plain http, is refused (a client following it would send credentials there).
pub fn check_redirect(base: &Url, status: u16, location: Option<&str>) -> Result<(), String> {
    if !(300..400).contains(&status) {
        return Ok(());
    }
    let Some(location) = location else { return Ok(()) };
    let target = match base.join(location) {
        Ok(t) => t,
        Err(_) => return Err(format!("{base} redirects ({status}) to an unreadable location")),
    };
    if base.scheme() == "https" && target.scheme() == "http" {
        return Err(format!(
            "{base} redirects ({status}) from https to http ({})",
            target.origin().ascii_serialization()
        ));
    }
    if target.origin() != base.origin() {
        return Err(format!(
            "{base} redirects ({status}) to another origin ({})",
            target.origin().ascii_serialization()
        ));
    }
    Ok(())
}

/// The full base-URL check, made before anything else is sent to the URL: the guard's scheme and address
/// checks (IP literals need no DNS), then — only when those pass — [`probe_redirect`].
pub async fn check_base_url(guard: &OutboundGuard, url: &Url) -> Result<(), String> {
    guard.check(url).await.map_err(|e| e.to_string())?;
    probe_redirect(guard, url).await
}

/// One GET through a client of `guard` with redirects off, and [`check_redirect`] on its answer. The GET
/// resolves the name again and the guard checks that answer too, so a DNS answer that changed since
/// the address check is refused, not followed. Connection failures are not this check's business (the
/// credential checks report them) and pass.
pub async fn probe_redirect(guard: &OutboundGuard, url: &Url) -> Result<(), String> {
    guard.check_url(url).map_err(|e| e.to_string())?;
    let client = guard
        .client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", e.without_url()))?;
    let reply = match client.get(url.clone()).send().await {
        Ok(reply) => reply,
        Err(e) => return OutboundGuard::refusal(&e).map_or(Ok(()), |refused| Err(refused.to_string())),
    };
    let location = reply.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    check_redirect(url, reply.status().as_u16(), location.as_deref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_from_https_to_http_is_refused() {
        let base = Url::parse("https://api.example/rest/").unwrap();
        let err = check_redirect(&base, 302, Some("http://api.example/rest/")).unwrap_err();
        assert!(err.contains("https to http"), "{err}");
        assert!(check_redirect(&base, 301, Some("https://elsewhere.example/")).is_err());
        assert!(check_redirect(&base, 302, Some("/rest/login")).is_ok());
        assert!(check_redirect(&base, 200, Some("http://x/")).is_ok());
    }
}
