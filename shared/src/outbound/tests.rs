//! The outbound guard: every address form classified, and the SSRF table run through a real API client
//! (the Jira client's HTTP layer, as `serve` and the functions use it). "Nothing was connected to" is
//! proven without ever sending a packet beyond loopback: IP-literal URLs run behind a tripwire that
//! counts (and fails) every connection reqwest starts; names resolve through a test resolver, and any
//! answer the guard lets through is diverted to a loopback listener that counts its accepts.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::clients::jira::{JiraClient, JiraConfig};
use crate::clients::{BaseUrl, ClientError, Credentials, HttpSettings};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every form the guard must refuse, as the address a name resolves to, with the class it must report.
const BLOCKED_ADDRESSES: &[(&str, AddressClass)] = &[
    ("127.0.0.1", AddressClass::Loopback),
    ("127.255.255.254", AddressClass::Loopback),
    ("10.0.0.1", AddressClass::Private),
    ("172.16.0.1", AddressClass::Private),
    ("172.31.255.255", AddressClass::Private),
    ("192.168.1.1", AddressClass::Private),
    ("100.64.0.1", AddressClass::SharedCgnat),
    ("100.127.255.254", AddressClass::SharedCgnat),
    ("169.254.169.254", AddressClass::LinkLocal),
    ("0.0.0.0", AddressClass::Unspecified),
    ("0.1.2.3", AddressClass::Unspecified),
    ("192.0.0.1", AddressClass::Reserved),
    ("192.0.2.1", AddressClass::Documentation),
    ("198.51.100.7", AddressClass::Documentation),
    ("203.0.113.9", AddressClass::Documentation),
    ("198.18.0.1", AddressClass::Benchmarking),
    ("192.88.99.1", AddressClass::Reserved),
    ("224.0.0.1", AddressClass::Multicast),
    ("239.255.255.250", AddressClass::Multicast),
    ("240.0.0.1", AddressClass::Reserved),
    ("255.255.255.255", AddressClass::Reserved),
    ("::1", AddressClass::Loopback),
    ("::", AddressClass::Unspecified),
    ("fe80::1", AddressClass::LinkLocal),
    ("fec0::1", AddressClass::SiteLocal),
    ("fc00::1", AddressClass::UniqueLocal),
    ("fd12:3456::1", AddressClass::UniqueLocal),
    ("ff02::1", AddressClass::Multicast),
    ("::127.0.0.1", AddressClass::Ipv4Compatible),
    ("::8.8.8.8", AddressClass::Ipv4Compatible),
    ("::ffff:127.0.0.1", AddressClass::Loopback),
    ("::ffff:10.0.0.1", AddressClass::Private),
    ("::ffff:169.254.169.254", AddressClass::LinkLocal),
    ("64:ff9b::7f00:1", AddressClass::Loopback),
    ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
    ("64:ff9b::10.1.2.3", AddressClass::Private),
    ("64:ff9b:1::a00:1", AddressClass::LocalNat64),
    ("2002:7f00:1::1", AddressClass::SixToFour),
    ("2002:a9fe:a9fe::1", AddressClass::SixToFour),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressClass::Teredo),
    ("2001:db8::1", AddressClass::Documentation),
    ("3fff::1", AddressClass::Documentation),
    ("2001:2::1", AddressClass::Benchmarking),
    ("2001:10::1", AddressClass::Reserved),
    ("100::1", AddressClass::Reserved),
    ("4000::1", AddressClass::Reserved),
];

#[test]
fn every_non_public_form_is_classified_and_public_addresses_pass() {
    for (addr, class) in BLOCKED_ADDRESSES {
        assert_eq!(classify(ip(addr)), Some(*class), "{addr}");
    }
    for public in ["93.184.215.14", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
        assert_eq!(classify(ip(public)), None, "{public}");
    }
    // DNS64 in an IPv6-only network hands out 64:ff9b::/96 for public IPv4 hosts: those pass.
    assert_eq!(classify(ip("64:ff9b::5db8:d70e")), None);
}

#[test]
fn loopback_passes_only_under_the_test_allowance_and_nothing_else_does() {
    let public = OutboundPolicy::public_only();
    let tests = OutboundPolicy::insecure_loopback_for_tests();
    for (addr, class) in BLOCKED_ADDRESSES {
        let err = public.check_ip("h.example", ip(addr)).unwrap_err().to_string();
        assert!(err.contains(class.describe()), "{addr}: {err}");
        assert_eq!(tests.check_ip("h.example", ip(addr)).is_ok(), *class == AddressClass::Loopback, "{addr}");
    }
    let hint = public.check_ip("localhost", ip("127.0.0.1")).unwrap_err().to_string();
    assert!(hint.contains("allow_insecure_loopback_upstreams"), "{hint}");
}

#[test]
fn urls_are_checked_for_scheme_and_literal_hosts_after_normalisation() {
    let public = OutboundPolicy::public_only();
    let tests = OutboundPolicy::insecure_loopback_for_tests();
    let url = |s: &str| Url::parse(s).unwrap();
    assert!(public.check_url(&url("https://api.example.com/")).is_ok());
    assert!(matches!(public.check_url(&url("http://api.example.com/")), Err(OutboundError::Scheme { .. })));
    assert!(tests.check_url(&url("http://127.0.0.1:8080/")).is_ok());
    assert!(tests.check_url(&url("http://localhost:8080/")).is_ok());
    assert!(tests.check_url(&url("http://api.example.com/")).is_err(), "http only to loopback, even in tests");
    for literal in ["https://0x7f.1/", "https://2130706433/", "https://0177.0.0.1/", "https://127.1/"] {
        let err = public.check_url(&url(literal)).unwrap_err();
        assert!(matches!(err, OutboundError::Blocked { class: AddressClass::Loopback, .. }), "{literal}: {err}");
    }
}

/// A loopback listener that counts the connections it accepts and answers each with `{}` (200).
struct Listener {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl Listener {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = accepts.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _read = socket.read(&mut buf).await;
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
                                 connection: close\r\n\r\n{}";
                    let _written = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { addr, accepts }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

fn jira(base: &str, guard: OutboundGuard) -> Result<JiraClient, ClientError> {
    let auth = Credentials::Basic { user: "bot@example.test".into(), secret: SecretString::from("t0ken") };
    let http = HttpSettings::new("campbridge-tests").with_guard(guard);
    JiraClient::new(JiraConfig::new(BaseUrl::parse(base)?, auth, http))
}

#[tokio::test]
async fn ip_literal_urls_in_every_spelling_are_blocked_before_any_connection() {
    let listener = Listener::start().await;
    let port = listener.addr.port();
    let tripwire = ConnectTripwire::new();
    let guard = OutboundGuard::new(OutboundPolicy::public_only()).with_tripwire(tripwire.clone());
    let literals = [
        "127.0.0.1",
        "0x7f.0.0.1",
        "0x7f.1",
        "0177.0.0.1",
        "2130706433",
        "127.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        "169.254.169.254",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "2852039166",
        "169.254.169.254.",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "192.0.2.1",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "[fe80::1]",
        "[fec0::1]",
        "[fd00::1]",
        "[::]",
        "[ff02::1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b:1::1]",
        "[2001:db8::1]",
    ];
    for host in literals {
        let base = format!("https://{host}:{port}/");
        let result = match jira(&base, guard.clone()) {
            Ok(client) => client.myself().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Err(ClientError::Blocked(why)) => assert!(why.contains("address"), "{host}: {why}"),
            other => panic!("{host}: expected PROVIDER_BASE_URL_BLOCKED, got {other:?}"),
        }
    }
    assert_eq!(tripwire.attempts(), 0, "a connection was started for a blocked literal");
    assert_eq!(listener.accepts(), 0);

    // The control: an allowed literal does reach the tripwire, so the count above means something.
    let allowed = OutboundGuard::new(OutboundPolicy::insecure_loopback_for_tests()).with_tripwire(tripwire.clone());
    let err = jira(&format!("http://127.0.0.1:{port}/"), allowed).unwrap().myself().await.unwrap_err();
    assert!(matches!(err, ClientError::Transient(_)), "{err:?}");
    assert_eq!(tripwire.attempts(), 1);
}

#[tokio::test]
async fn names_resolving_to_non_public_addresses_are_blocked_at_connect_time() {
    let listener = Listener::start().await;
    let port = listener.addr.port();
    let mut resolver = StaticResolver::new().answer("public.ssrf.test", &[ip("93.184.215.14")]);
    for (i, (addr, _)) in BLOCKED_ADDRESSES.iter().enumerate() {
        resolver = resolver.answer(&format!("case{i}.ssrf.test"), &[ip(addr)]);
    }
    // One private address among public ones refuses the whole answer.
    resolver = resolver.answer("mixed.ssrf.test", &[ip("93.184.215.14"), ip("10.1.1.1")]);
    let resolver = Arc::new(resolver);
    let guard = OutboundGuard::with_resolver(OutboundPolicy::public_only(), resolver.clone())
        .divert_checked_answers_to(listener.addr);

    let mut hosts: Vec<(String, String)> = BLOCKED_ADDRESSES
        .iter()
        .enumerate()
        .map(|(i, (addr, class))| (format!("case{i}.ssrf.test"), format!("{}, a {class} address", ip(addr))))
        .collect();
    hosts.push(("mixed.ssrf.test".into(), "10.1.1.1, a private address".into()));
    for (host, expected) in &hosts {
        let err = jira(&format!("https://{host}:{port}/"), guard.clone()).unwrap().myself().await.unwrap_err();
        match err {
            ClientError::Blocked(why) => assert!(why.contains(expected.as_str()), "{host}: {why}"),
            other => panic!("{host}: expected PROVIDER_BASE_URL_BLOCKED, got {other:?}"),
        }
    }
    assert_eq!(listener.accepts(), 0, "a blocked answer was connected to");
    assert_eq!(resolver.lookups(), hosts.len(), "each name looked up once, by the connection itself");

    // The control: a public answer passes the guard (and is diverted to the listener, nowhere else).
    let err = jira(&format!("https://public.ssrf.test:{port}/"), guard).unwrap().myself().await.unwrap_err();
    assert!(matches!(err, ClientError::Transient(_)), "the listener speaks no TLS: {err:?}");
    assert_eq!(listener.accepts(), 1);

    // `localhost` through the system resolver (its hosts file, no DNS traffic).
    let system = OutboundGuard::new(OutboundPolicy::public_only()).divert_checked_answers_to(listener.addr);
    let err = jira(&format!("https://localhost:{port}/"), system).unwrap().myself().await.unwrap_err();
    assert!(matches!(&err, ClientError::Blocked(why) if why.contains("loopback")), "{err:?}");
    assert_eq!(listener.accepts(), 1);
}

#[tokio::test]
async fn a_rebinding_name_is_checked_on_every_answer_and_connected_only_to_the_checked_one() {
    let listener = Listener::start().await;
    let port = listener.addr.port();
    // First answer loopback (allowed under the test policy), then a private address.
    let resolver = Arc::new(
        StaticResolver::new()
            .answer("rebind.ssrf.test", &[ip("127.0.0.1")])
            .answer("rebind.ssrf.test", &[ip("10.0.0.9")]),
    );
    let guard = OutboundGuard::with_resolver(OutboundPolicy::insecure_loopback_for_tests(), resolver.clone())
        .divert_checked_answers_to(listener.addr);
    let base = format!("https://rebind.ssrf.test:{port}/");
    let first = jira(&base, guard.clone()).unwrap().myself().await.unwrap_err();
    assert!(matches!(first, ClientError::Transient(_)), "{first:?}");
    assert_eq!((listener.accepts(), resolver.lookups()), (1, 1), "one lookup, and the connection went to its answer");
    let second = jira(&base, guard).unwrap().myself().await.unwrap_err();
    assert!(matches!(&second, ClientError::Blocked(why) if why.contains("10.0.0.9")), "{second:?}");
    assert_eq!((listener.accepts(), resolver.lookups()), (1, 2));
}

/// A loopback server answering every request with `head` and `body`.
async fn answering(head: &'static str, body: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _read = socket.read(&mut buf).await;
                let _head = socket.write_all(head.as_bytes()).await;
                let _body = socket.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let target = Listener::start().await;
    let head = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{}/latest/meta-data/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            target.addr
        )
        .into_boxed_str(),
    );
    let redirector = answering(head, Vec::new()).await;
    let guard = OutboundGuard::new(OutboundPolicy::insecure_loopback_for_tests());
    let err = jira(&format!("http://{redirector}/"), guard).unwrap().myself().await.unwrap_err();
    assert!(!matches!(err, ClientError::Transient(_)), "a 302 is an answer, not a failure to retry: {err:?}");
    assert_eq!(target.accepts(), 0, "the redirect was followed");
}

#[tokio::test]
async fn response_bodies_over_the_limit_are_refused() {
    let big = vec![b' '; 4096];
    let sized = answering(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n",
        big.clone(),
    )
    .await;
    // Without a length: read until the limit, then refused.
    let chunked =
        answering("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n", big).await;
    for server in [sized, chunked] {
        let auth = Credentials::Basic { user: "bot@example.test".into(), secret: SecretString::from("t0ken") };
        let mut http = HttpSettings::for_loopback_tests("campbridge-tests");
        http.max_response_bytes = 1024;
        let client =
            JiraClient::new(JiraConfig::new(BaseUrl::parse(&format!("http://{server}/")).unwrap(), auth, http));
        let err = client.unwrap().myself().await.unwrap_err();
        assert!(err.to_string().contains("over 1024 bytes"), "{server}: {err}");
    }
}
