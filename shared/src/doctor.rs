//! Preflight checks `campbridge doctor` runs, and the setup error codes they report.
//!
//! The base-URL safety rules are pure functions over a parsed URL, the addresses its host resolved to,
//! and a redirect answer, so they are testable without DNS; [`check_base_url`] strings them together
//! with `tokio::net::lookup_host` and one request with redirects off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Serialize;
use url::Url;

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

/// Why an address may not be an upstream, or `None` when it is a public unicast address.
/// Loopback is reported as `"loopback"` so callers can allow exactly that.
pub fn address_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_class(v4),
            None => v6_class(v6),
        },
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the carrier-grade NAT range (RFC 6598).
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        Some("reserved")
    } else {
        None
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("reserved")
    } else {
        None
    }
}

/// Checks the addresses `host` resolved to. Loopback passes only when `allow_loopback`; every other
/// non-public class is refused. An empty list is refused too (nothing to connect to).
pub fn check_resolved(host: &str, addrs: &[IpAddr], allow_loopback: bool) -> Result<(), String> {
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for ip in addrs {
        match address_class(*ip) {
            None => {}
            Some("loopback") if allow_loopback => {}
            Some("loopback") => {
                return Err(format!(
                    "{host} resolves to {ip}, a loopback address (allowed only with [server] \
                     allow_insecure_loopback_upstreams = true, for the simulators)"
                ));
            }
            Some(class) => return Err(format!("{host} resolves to {ip}, a {class} address")),
        }
    }
    Ok(())
}

/// Checks the scheme: https, or http only when every address is loopback and loopback is allowed.
pub fn check_scheme(url: &Url, addrs: &[IpAddr], allow_loopback: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http"
            if allow_loopback && !addrs.is_empty() && addrs.iter().all(|ip| address_class(*ip) == Some("loopback")) =>
        {
            Ok(())
        }
        other => Err(format!("{url} uses {other}://; upstream APIs must be https")),
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

/// The full base-URL check: resolve the host (IP literals and `localhost` need no DNS), apply
/// [`check_resolved`] and [`check_scheme`], then — only when those pass — make one GET with redirects
/// off and apply [`check_redirect`]. A URL that fails is never contacted. Connection failures are not
/// this check's business (the credential checks report them) and pass.
pub async fn check_base_url(url: &Url, allow_loopback: bool) -> Result<(), String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("{host} does not resolve ({e})"))?
            .map(|a| a.ip())
            .collect(),
    };
    check_resolved(host, &addrs, allow_loopback)?;
    check_scheme(url, &addrs, allow_loopback)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let Ok(reply) = client.get(url.clone()).send().await else { return Ok(()) };
    let location = reply.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    check_redirect(url, reply.status().as_u16(), location.as_deref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_link_local_and_reserved_addresses_are_refused() {
        for (addr, class) in [
            ("10.1.2.3", "private"),
            ("172.16.0.9", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "reserved"),
            ("240.0.0.1", "reserved"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            let err = check_resolved("h.example", &[ip(addr)], true).unwrap_err();
            assert!(err.contains(class), "{addr}: {err}");
        }
    }

    #[test]
    fn loopback_passes_only_when_allowed() {
        assert!(check_resolved("localhost", &[ip("127.0.0.1")], true).is_ok());
        assert!(check_resolved("localhost", &[ip("::1")], true).is_ok());
        let err = check_resolved("localhost", &[ip("127.0.0.1")], false).unwrap_err();
        assert!(err.contains("loopback"));
    }

    #[test]
    fn one_bad_address_among_good_ones_is_refused() {
        assert!(check_resolved("h.example", &[ip("93.184.215.14"), ip("10.0.0.1")], false).is_err());
        assert!(check_resolved("h.example", &[ip("93.184.215.14")], false).is_ok());
        assert!(check_resolved("h.example", &[], false).is_err());
    }

    #[test]
    fn http_is_allowed_only_on_allowed_loopback() {
        let url = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(check_scheme(&url, &[ip("127.0.0.1")], true).is_ok());
        assert!(check_scheme(&url, &[ip("127.0.0.1")], false).is_err());
        let public = Url::parse("http://api.example/").unwrap();
        assert!(check_scheme(&public, &[ip("93.184.215.14")], true).is_err());
    }

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
