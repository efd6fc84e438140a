//! The outbound guard: the one place that decides whether campbridge may connect to an upstream
//! address (DESIGN invariant 8). Every API client ([`crate::clients::http`]), `doctor` and the config
//! reader use it; docs/decisions/0008-outbound-guard.md says why it works this way.
//!
//! - **Names** are resolved by the guard itself, as reqwest's DNS resolver: every address of the answer
//!   is checked, and the connection goes to exactly those checked addresses. There is no second lookup
//!   for a DNS-rebinding answer to slip into.
//! - **IP literals** in URLs (which reqwest connects to without asking a resolver) are checked before the
//!   request is sent. The URL parser has already turned hex, octal, decimal and short IPv4 spellings
//!   (`0x7f.1`, `0177.0.0.1`, `2130706433`, `127.1`) into the address they mean.
//! - **Allowed**: public unicast addresses only. Refused whatever the configuration: private, shared
//!   (CGNAT), link-local, reserved, multicast, broadcast, unspecified, documentation and benchmarking
//!   ranges; IPv6 unique-local and site-local; the IPv4-compatible (`::a.b.c.d`), 6to4 (`2002::/16`),
//!   Teredo (`2001::/32`) and local NAT64 (`64:ff9b:1::/48`) forms; and the IPv4-mapped
//!   (`::ffff:a.b.c.d`) and well-known NAT64 (`64:ff9b::/96`) forms of any refused IPv4 address.
//! - **Loopback** (and plain http to it) only under [`OutboundPolicy::insecure_loopback_for_tests`]: the
//!   simulators. No proxy is ever used (a proxy would resolve names where the guard cannot see them), and
//!   redirects are never followed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    /// 100.64/10, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 169.254/16, fe80::/10 (the cloud metadata services live here).
    LinkLocal,
    /// 0/8, `::`.
    Unspecified,
    Multicast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed by some stacks.
    SiteLocal,
    /// `::a.b.c.d`, deprecated.
    Ipv4Compatible,
    /// 2002::/16: a tunnel to whatever IPv4 address it embeds.
    SixToFour,
    /// 2001::/32: a tunnel to whatever IPv4 address it embeds.
    Teredo,
    /// 64:ff9b:1::/48, a network's own translator (RFC 8215).
    LocalNat64,
    /// Everything else that is not global unicast (240/4, 255.255.255.255, 192.0.0/24, 100::/64, …).
    Reserved,
}

impl AddressClass {
    /// The class in a few words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedCgnat => "private (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Documentation => "reserved (documentation)",
            Self::Benchmarking => "reserved (benchmarking)",
            Self::UniqueLocal => "private (IPv6 unique-local)",
            Self::SiteLocal => "private (IPv6 site-local)",
            Self::Ipv4Compatible => "reserved (IPv4-compatible IPv6)",
            Self::SixToFour => "reserved (6to4 tunnel)",
            Self::Teredo => "reserved (Teredo tunnel)",
            Self::LocalNat64 => "private (local-use NAT64)",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The class of `ip`, or `None` for a public unicast address (the only kind campbridge connects to
/// outside tests).
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        (127, ..) => AddressClass::Loopback,
        (0, ..) => AddressClass::Unspecified,
        (10, ..) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::SharedCgnat,
        (169, 254, _) => AddressClass::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (198, 18..=19, _) => AddressClass::Benchmarking,
        // 192.0.0/24 IETF protocol assignments, 192.88.99/24 the old 6to4 relays.
        (192, 0, 0) | (192, 88, 99) => AddressClass::Reserved,
        (224..=239, ..) => AddressClass::Multicast,
        (240..=255, ..) => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // ::ffff:a.b.c.d reaches a.b.c.d: judge the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0; 6] {
        return Some(AddressClass::Ipv4Compatible);
    }
    // 64:ff9b::a.b.c.d (DNS64 answers in IPv6-only networks) reaches a.b.c.d: judge the IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [o0, o1] = s[6].to_be_bytes();
        let [o2, o3] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(o0, o1, o2, o3));
    }
    let class = match s[0] {
        0x64 if s[1] == 0xff9b && s[2] == 1 => AddressClass::LocalNat64,
        0x2002 => AddressClass::SixToFour,
        0x2001 if s[1] == 0 => AddressClass::Teredo,
        0x2001 if s[1] == 0x0db8 => AddressClass::Documentation,
        0x2001 if s[1] == 2 && s[2] == 0 => AddressClass::Benchmarking,
        // 2001::/23: IETF protocol assignments (ORCHID, AMT, …).
        0x2001 if s[1] < 0x0200 => AddressClass::Reserved,
        first if first & 0xfff0 == 0x3ff0 => AddressClass::Documentation,
        first if first & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        first if first & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        first if first & 0xffc0 == 0xfec0 => AddressClass::SiteLocal,
        first if first & 0xff00 == 0xff00 => AddressClass::Multicast,
        // Only 2000::/3 is global unicast.
        first if first & 0xe000 != 0x2000 => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

/// Which addresses a process may connect to. Public unicast only, unless the process opted into the
/// test allowance (see [`OutboundPolicy::insecure_loopback_for_tests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboundPolicy {
    loopback: bool,
}

impl OutboundPolicy {
    /// Production: public unicast addresses over https only.
    pub const fn public_only() -> Self {
        Self { loopback: false }
    }

    /// **Tests and the demo only**: loopback addresses too, over http or https — the simulators on
    /// 127.0.0.1. Every other non-public class stays refused. A configuration asks for it with
    /// `[server] allow_insecure_loopback_upstreams = true`, which `serve`, the operator commands and the
    /// functions refuse unless their process was started with the test opt-in (docs/decisions/0008).
    pub const fn insecure_loopback_for_tests() -> Self {
        Self { loopback: true }
    }

    /// The policy a validated configuration asks for.
    pub fn for_config(config: &crate::config::Config) -> Self {
        if config.server.allow_insecure_loopback_upstreams {
            Self::insecure_loopback_for_tests()
        } else {
            Self::public_only()
        }
    }

    pub fn allows_loopback(self) -> bool {
        self.loopback
    }

    /// Whether `ip` may be connected to; `host` names it in the error.
    pub fn check_ip(self, host: &str, ip: IpAddr) -> Result<(), OutboundError> {
        match classify(ip) {
            None => Ok(()),
            Some(AddressClass::Loopback) if self.loopback => Ok(()),
            Some(class) => {
                Err(OutboundError::Blocked { host: host.to_owned(), ip, class, loopback_hint: !self.loopback })
            }
        }
    }

    /// Checks what can be checked of a URL without DNS: the scheme (https; http only to loopback under
    /// the test allowance) and an IP-literal host. A named host is checked when it resolves.
    pub fn check_url(self, url: &Url) -> Result<(), OutboundError> {
        let host = url.host().ok_or(OutboundError::NoHost)?;
        let shown = url.host_str().unwrap_or_default();
        let literal = match host {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.check_ip(shown, ip)?;
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.loopback && is_loopback_host(&host) => Ok(()),
            other => Err(OutboundError::Scheme { host: shown.to_owned(), scheme: other.to_owned() }),
        }
    }
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(v4) => classify_v4(*v4) == Some(AddressClass::Loopback),
        Host::Ipv6(v6) => classify_v6(*v6) == Some(AddressClass::Loopback),
    }
}

/// Why the guard refused a destination. Messages name the host and the address, never a path or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error(
        "{host} resolves to {ip}, a {class} address: campbridge never connects to private, loopback, link-local \
         or reserved addresses{}",
        if *.loopback_hint && *.class == AddressClass::Loopback {
            " (loopback only for tests: [server] allow_insecure_loopback_upstreams)"
        } else {
            ""
        }
    )]
    Blocked { host: String, ip: IpAddr, class: AddressClass, loopback_hint: bool },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("{host} does not resolve ({reason})")]
    Unresolved { host: String, reason: String },
    #[error("{host} is reached over {scheme}://; upstream APIs must be https")]
    Scheme { host: String, scheme: String },
    #[error("the URL has no host")]
    NoHost,
}

/// Looks names up. The system resolver in production; tests give a table.
#[async_trait::async_trait]
pub trait NameResolver: Send + Sync + 'static {
    /// Every address `host` resolves to (port-less).
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, off the async workers).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl NameResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// The guard: a policy and the resolver it checks. Cheap to clone; every HTTP client campbridge makes
/// towards an upstream is built from one ([`OutboundGuard::client_builder`]).
#[derive(Clone)]
pub struct OutboundGuard {
    policy: OutboundPolicy,
    resolver: Arc<dyn NameResolver>,
    #[cfg(any(test, feature = "testkit"))]
    test: testing::TestHooks,
}

impl fmt::Debug for OutboundGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGuard").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl OutboundGuard {
    /// `policy` over the system resolver.
    pub fn new(policy: OutboundPolicy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    /// `policy` over another resolver (tests: names that resolve to private addresses).
    pub fn with_resolver(policy: OutboundPolicy, resolver: Arc<dyn NameResolver>) -> Self {
        Self {
            policy,
            resolver,
            #[cfg(any(test, feature = "testkit"))]
            test: testing::TestHooks::default(),
        }
    }

    /// The guard a validated configuration asks for, over the system resolver.
    pub fn for_config(config: &crate::config::Config) -> Self {
        Self::new(OutboundPolicy::for_config(config))
    }

    pub fn policy(&self) -> OutboundPolicy {
        self.policy
    }

    /// See [`OutboundPolicy::check_url`].
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        self.policy.check_url(url)
    }

    /// Resolves `host` and checks every address of the answer: one refused address refuses the whole
    /// answer (a name that mixes public and private addresses is not an API). IP literals need no DNS.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, OutboundError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .resolver
                .lookup(bare)
                .await
                .map_err(|e| OutboundError::Unresolved { host: host.to_owned(), reason: e.to_string() })?,
        };
        if addrs.is_empty() {
            return Err(OutboundError::NoAddress { host: host.to_owned() });
        }
        for ip in &addrs {
            self.policy.check_ip(host, *ip)?;
        }
        Ok(addrs)
    }

    /// The whole check of a URL before anything is sent to it: scheme, then the host's addresses.
    pub async fn check(&self, url: &Url) -> Result<Vec<IpAddr>, OutboundError> {
        self.check_url(url)?;
        let host = url.host_str().ok_or(OutboundError::NoHost)?;
        self.resolve(host).await
    }

    /// A reqwest builder whose connections go only where the guard allows: the guard is its resolver
    /// (the checked answer is the one connected to), no proxy, no redirects, https only outside tests.
    /// Callers add timeouts and the User-Agent; IP-literal URLs must still pass [`Self::check_url`]
    /// before each request ([`crate::clients::http`] does it).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!self.policy.loopback)
            .dns_resolver(Arc::new(GuardResolver(self.clone())));
        #[cfg(any(test, feature = "testkit"))]
        let builder = self.test.apply(builder);
        builder
    }

    /// The guard's own refusal inside a reqwest error (it travels as the resolver's error), if any.
    pub fn refusal(error: &reqwest::Error) -> Option<OutboundError> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<OutboundError>() {
                return Some(refused.clone());
            }
            source = e.source();
        }
        None
    }
}

/// The guard as reqwest's resolver: names resolve only to checked addresses.
struct GuardResolver(OutboundGuard);

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = guard.resolve(&host).await?;
            #[cfg(any(test, feature = "testkit"))]
            let addrs = guard.test.divert(addrs);
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(any(test, feature = "testkit"))]
pub use testing::{ConnectTripwire, StaticResolver};

/// Test-only parts: a resolver from a table, and two ways to prove that nothing was connected to without
/// ever sending a packet anywhere but loopback.
#[cfg(any(test, feature = "testkit"))]
mod testing {
    use std::collections::HashMap;
    use std::future::Future;
    use std::net::{IpAddr, SocketAddr};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use super::{NameResolver, OutboundGuard};

    /// A name's answers, and how many have been given.
    type Answers = (usize, Vec<Vec<IpAddr>>);

    /// Names → answers, in turn: a name given several answers gets the next one on each lookup (the
    /// last one repeats), which is how a rebinding DNS server behaves. Unknown names do not resolve.
    #[derive(Debug, Default)]
    pub struct StaticResolver {
        answers: Mutex<HashMap<String, Answers>>,
        lookups: AtomicUsize,
    }

    impl StaticResolver {
        pub fn new() -> Self {
            Self::default()
        }

        /// `host` answers `addrs` (after any answers given before).
        pub fn answer(self, host: &str, addrs: &[IpAddr]) -> Self {
            if let Ok(mut answers) = self.answers.lock() {
                answers.entry(host.to_ascii_lowercase()).or_default().1.push(addrs.to_vec());
            }
            self
        }

        /// Lookups made so far.
        pub fn lookups(&self) -> usize {
            self.lookups.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl NameResolver for StaticResolver {
        async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            let Some((next, list)) = answers.get_mut(&host.to_ascii_lowercase()) else {
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such test host"));
            };
            let answer = list.get(*next).or(list.last()).cloned().unwrap_or_default();
            *next += 1;
            Ok(answer)
        }
    }

    /// Counts every connection reqwest starts (before it resolves or dials anything) and fails it, so
    /// an IP-literal URL that got past the guard is counted instead of contacted.
    #[derive(Debug, Clone, Default)]
    pub struct ConnectTripwire(Arc<AtomicUsize>);

    impl ConnectTripwire {
        pub fn new() -> Self {
            Self::default()
        }
        /// Connections started so far.
        pub fn attempts(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl<S> tower_layer::Layer<S> for ConnectTripwire {
        type Service = TripwireService<S>;
        fn layer(&self, inner: S) -> Self::Service {
            TripwireService { _inner: inner, attempts: self.0.clone() }
        }
    }

    #[derive(Clone)]
    pub struct TripwireService<S> {
        _inner: S,
        attempts: Arc<AtomicUsize>,
    }

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    impl<S, R> tower_service::Service<R> for TripwireService<S>
    where
        S: tower_service::Service<R, Error = BoxError>,
        S::Response: Send + 'static,
    {
        type Response = S::Response;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: R) -> Self::Future {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err("connection refused by the test tripwire".into()) })
        }
    }

    /// What a test guard does besides checking.
    #[derive(Debug, Clone, Default)]
    pub(super) struct TestHooks {
        divert: Option<SocketAddr>,
        tripwire: Option<ConnectTripwire>,
    }

    impl TestHooks {
        pub(super) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
            match &self.tripwire {
                Some(t) => builder.connector_layer(t.clone()),
                None => builder,
            }
        }

        /// Addresses that passed the check, replaced by the diversion target when there is one.
        pub(super) fn divert(&self, addrs: Vec<IpAddr>) -> Vec<IpAddr> {
            match self.divert {
                Some(to) => vec![to.ip()],
                None => addrs,
            }
        }
    }

    impl OutboundGuard {
        /// **Tests**: every answer that passes the check is replaced by `to`'s address (a loopback
        /// listener counting its accepts; the URL names its port), so a name the guard wrongly lets
        /// through reaches the test's listener and nothing else.
        pub fn divert_checked_answers_to(mut self, to: SocketAddr) -> Self {
            self.test.divert = Some(to);
            self
        }

        /// **Tests**: clients built from this guard count and fail every connection they start.
        pub fn with_tripwire(mut self, tripwire: ConnectTripwire) -> Self {
            self.test.tripwire = Some(tripwire);
            self
        }
    }
}

#[cfg(test)]
mod tests;
