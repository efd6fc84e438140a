//! Plumbing the three clients share: one guarded reqwest client per API (rustls, timeouts, no redirects,
//! no proxy, every connection checked by the [`OutboundGuard`]), its pacing ([`super::pacing`]), base-URL handling with a same-origin
//! check for server-given links, credentials that never print, and the pieces of response handling every
//! client needs (bodies read once and size-limited, JSON only when the server says JSON, `Retry-After`,
//! `Link` headers).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::ClientError;
use super::pacing::Pacer;
use crate::outbound::{OutboundGuard, OutboundPolicy};

/// The largest response body a client reads (Jira's search pages are the largest answers, well below
/// this). A larger one is refused without being read to the end.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Transport settings shared by every client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Sent on every request. Basecamp requires an app name plus a contact: `campbridge (ops@example.com)`.
    pub user_agent: String,
    /// Whole-request timeout. Lambda invocations are short; a hung upstream must not eat them.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Where connections may go. Public addresses over https by default.
    pub guard: OutboundGuard,
    /// Response bodies above this are refused ([`MAX_RESPONSE_BYTES`] by default).
    pub max_response_bytes: usize,
    /// The upstream's request budget, shared with every other client of it in the process (`None`: no
    /// pacing). See [`super::pacing`].
    pub pacer: Option<Arc<Pacer>>,
}

impl HttpSettings {
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            user_agent: user_agent.into(),
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            guard: OutboundGuard::new(OutboundPolicy::public_only()),
            max_response_bytes: MAX_RESPONSE_BYTES,
            pacer: None,
        }
    }

    /// Paced by `pacer`.
    pub fn paced(mut self, pacer: Option<Arc<Pacer>>) -> Self {
        self.pacer = pacer;
        self
    }

    /// Waits for the pacer's permit (for `key` too, when given). A wait beyond the pacer's limit is reported
    /// as a 429 of our own, with the wait as its `Retry-After`: no request is sent.
    pub(crate) async fn pace(&self, key: Option<&str>) -> Result<(), ClientError> {
        match &self.pacer {
            Some(pacer) => pacer.acquire(key).await.map_err(|retry_after| ClientError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// **Tests**: the settings for servers on 127.0.0.1 (fixture servers, the simulators).
    #[cfg(any(test, feature = "testkit"))]
    pub fn for_loopback_tests(user_agent: impl Into<String>) -> Self {
        Self::new(user_agent).with_guard(OutboundGuard::new(OutboundPolicy::insecure_loopback_for_tests()))
    }

    /// The same settings with another guard.
    pub fn with_guard(mut self, guard: OutboundGuard) -> Self {
        self.guard = guard;
        self
    }
}

/// A client's HTTP side: the guarded reqwest client, and the only way its requests are sent.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    guard: OutboundGuard,
    max_response_bytes: usize,
    /// The service's name in [`crate::metrics::UPSTREAM_CALLS`].
    service: &'static str,
}

impl Http {
    /// Builds the guarded client. Redirects are not followed: none of these APIs needs them and a
    /// redirect must never carry our credentials to another host.
    pub fn new(settings: &HttpSettings, service: &'static str) -> Result<Self, ClientError> {
        let client = settings
            .guard
            .client_builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build HTTP client: {}", e.without_url())))?;
        Ok(Self { client, guard: settings.guard.clone(), max_response_bytes: settings.max_response_bytes, service })
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    pub fn post(&self, url: Url) -> RequestBuilder {
        self.client.post(url)
    }

    /// Sends a request and reads the whole body (at most `max_response_bytes`). The URL's scheme and an
    /// IP-literal host are checked first (named hosts are checked as they resolve). Connection failures
    /// and timeouts are transient; their message leaves out the URL.
    pub async fn send(&self, rb: RequestBuilder) -> Result<Reply, ClientError> {
        let (client, request) = rb.build_split();
        let request = request.map_err(|e| ClientError::Config(format!("invalid request: {}", e.without_url())))?;
        self.guard.check_url(request.url()).map_err(|e| ClientError::Blocked(e.to_string()))?;
        let mut response = client.execute(request).await.map_err(transport_error)?;
        let status = response.status();
        crate::metrics::upstream_call(self.service, status.as_u16());
        let headers = response.headers().clone();
        let too_large = || ClientError::Decode(format!("response body over {} bytes refused", self.max_response_bytes));
        if response.content_length().is_some_and(|n| n > self.max_response_bytes as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body })
    }
}

/// An API root such as `https://3.basecampapi.com/195539477/`. Always ends with `/`, so relative
/// paths join below it; carries no credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

impl BaseUrl {
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let mut url = Url::parse(s.trim()).map_err(|e| ClientError::Config(format!("invalid base URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ClientError::Config(format!("base URL must be http(s), not {}", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ClientError::Config("base URL must not carry credentials".into()));
        }
        url.set_query(None);
        url.set_fragment(None);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self(url))
    }

    /// `path` below the base (a leading `/` is ignored, so `/rest/api/3/myself` stays below a gateway base).
    pub fn join(&self, path: &str) -> Result<Url, ClientError> {
        self.0
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Config(format!("invalid path {path:?}: {e}")))
    }

    /// Whether `url` is on this base's origin (scheme, host and port). Links from a response body or
    /// header are followed only when this holds, so credentials never go elsewhere.
    pub fn same_origin(&self, url: &Url) -> bool {
        self.0.origin() == url.origin()
    }

    /// Parses a server-given link and checks it stays on our origin.
    pub(crate) fn follow(&self, link: &str) -> Result<Url, ClientError> {
        let url = self.0.join(link).map_err(|e| ClientError::Decode(format!("unreadable paging link: {e}")))?;
        if self.same_origin(&url) {
            Ok(url)
        } else {
            Err(ClientError::Decode(format!(
                "refusing to follow a paging link to another origin ({})",
                url.origin().ascii_serialization()
            )))
        }
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

/// How a request authenticates. `Debug` shows the user but never the secret.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// HTTP Basic, e.g. an Atlassian account e-mail with an API token.
    Basic { user: String, secret: SecretString },
    /// `Authorization: Bearer …` (OAuth or access tokens).
    Bearer(SecretString),
}

impl Credentials {
    pub(crate) fn apply(&self, rb: RequestBuilder) -> RequestBuilder {
        match self {
            Self::Basic { user, secret } => rb.basic_auth(user, Some(secret.expose_secret())),
            Self::Bearer(token) => rb.bearer_auth(token.expose_secret()),
        }
    }
}

/// A response read in full. The body is kept as bytes and decoded only on request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Whether the server labelled the body JSON. Error pages (a proxy's HTML 429, Bitbucket's plain
    /// text 429) are never parsed as JSON.
    pub fn is_json(&self) -> bool {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
    }

    /// The body as JSON of type `T`. The error names the type, never the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Decode(format!("{} (status {}): {e}", std::any::type_name::<T>(), self.status.as_u16()))
        })
    }

    /// The body as a JSON value, if it is labelled JSON and parses.
    pub fn json_value(&self) -> Option<Value> {
        if self.is_json() { serde_json::from_slice(&self.body).ok() } else { None }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> ClientError {
    if let Some(refused) = OutboundGuard::refusal(&e) {
        return ClientError::Blocked(refused.to_string());
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ClientError::Transient(format!("{kind}: {}", e.without_url()))
}

/// `Retry-After` as delta-seconds (or an HTTP date, converted to a delay from now).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delay = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delay.to_std().unwrap_or(Duration::ZERO))
}

/// The `rel="next"` target of an RFC 8288 `Link` header, if any.
pub(crate) fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next")))
                    .unwrap_or(false)
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_owned());
            }
        }
    }
    None
}

/// Keeps messages taken from response bodies short.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.chars().count() <= MAX { s.to_owned() } else { format!("{}…", s.chars().take(MAX).collect::<String>()) }
}

/// Pages a client follows at most in one listing, a guard against servers that loop.
pub(crate) const MAX_PAGES: usize = 1000;

/// A JSON field that may be absent or `null`, read as its default.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn a_base_url_always_ends_with_a_slash_and_joins_below_it() {
        let base = BaseUrl::parse("https://api.atlassian.com/ex/jira/abc").unwrap();
        assert_eq!(
            base.join("/rest/api/3/myself").unwrap().as_str(),
            "https://api.atlassian.com/ex/jira/abc/rest/api/3/myself"
        );
        assert!(BaseUrl::parse("https://user:pw@example.test/").is_err());
        assert!(BaseUrl::parse("ftp://example.test/").is_err());
    }

    #[test]
    fn links_to_another_origin_are_refused() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/2.0/").unwrap();
        assert!(base.follow("http://127.0.0.1:8080/2.0/x?page=2").is_ok());
        assert!(base.follow("http://127.0.0.1:8081/2.0/x?page=2").is_err());
        assert!(base.follow("https://evil.test/2.0/x").is_err());
    }

    #[test]
    fn the_next_link_is_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                "<https://x.test/a?page=1>; rel=\"prev\", <https://x.test/a?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(link_next(&headers).as_deref(), Some("https://x.test/a?page=3"));
        headers.insert(LINK, HeaderValue::from_static(""));
        assert_eq!(link_next(&headers), None);
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let basic = Credentials::Basic { user: "me@example.test".into(), secret: SecretString::from("tok-123-secret") };
        let bearer = Credentials::Bearer(SecretString::from("bearer-456-secret"));
        let shown = format!("{basic:?} {bearer:?}");
        assert!(!shown.contains("tok-123-secret") && !shown.contains("bearer-456-secret"), "{shown}");
    }
}
