//! The operator commands against the simulators and a real SQLite store: doctor's setup codes from real
//! failing conditions, webhook registration idempotency, status, conflicts, replay of a dead letter,
//! and backfill (dry-run, interrupted and resumed under Basecamp's rate limit).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::sync::Arc;

use campbridge::demo::{self, Stack, StackOptions};
use campbridge::ops::{self, Backend, PublicUrls};
use campbridge_simulators::{basecamp as bc, bitbucket as bb};
use shared::config::Config;
use shared::doctor::SetupCode;

/// The stack's own SQLite store as the operator commands' backend.
fn stack_backend(stack: &Stack) -> Backend {
    Backend::sqlite(stack.store.clone(), "the stack's SQLite store")
}

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-ops", name, edit).await.expect("stack starts")
}

fn config_with(stack: &Stack, edit: impl FnOnce(String) -> String) -> Config {
    let text = edit(stack.config_text.clone());
    Config::parse(&text, "campbridge.toml").expect("edited config parses")
}

fn failed<'a>(report: &'a ops::doctor::Report, provider: &str) -> Vec<&'a ops::doctor::Check> {
    report.checks.iter().filter(|c| c.provider == provider && c.ok == Some(false)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_healthy_setup_with_its_webhooks_registered() {
    let stack = start("doctor-ok", |_| {}).await;
    let report = ops::doctor::run(&stack.config, stack.secrets(), &PublicUrls::base(&stack.server_url)).await;
    let text = ops::doctor::render(&report);
    assert!(report.ok(), "{text}");
    assert!(text.contains("✓ basecamp"), "{text}");
    assert!(text.contains("bc3"), "the account's product is named: {text}");
    assert!(text.contains("webhook project"), "{text}");
    stack.stop().await.unwrap();
}

fn basecamp_credentials(report: &ops::doctor::Report) -> &ops::doctor::Check {
    report.checks.iter().find(|c| c.provider == "basecamp" && c.name == "credentials").expect("a credentials line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_basecamp_token_is_renewed_with_the_refresh_token_and_reported_ok() {
    use secrecy::ExposeSecret;
    let stack = start("doctor-renew", |_| {}).await;
    stack.basecamp.expire_token(bc::ACCESS_TOKEN).await;
    let secrets = stack.secrets();
    let report = ops::doctor::run(&stack.config, secrets.clone(), &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    assert!(report.ok(), "{text}");
    let line = basecamp_credentials(&report);
    assert_eq!(line.ok, Some(true), "{text}");
    assert!(line.detail.contains("renewed"), "{text}");
    assert!(!report.codes().contains(&SetupCode::AuthRequired), "{text}");
    // The client wrote the new token back: a second run uses it and refreshes nothing.
    let stored = secrets.get("basecamp-access-token").await.unwrap();
    assert_ne!(stored.expose_secret(), bc::ACCESS_TOKEN);
    assert!(!text.contains(stored.expose_secret()), "tokens are never printed");
    assert_eq!(stack.basecamp.calls().count("POST", "/authorization/token"), 1);
    let again = ops::doctor::run(&stack.config, secrets, &PublicUrls::default()).await;
    assert!(again.ok(), "{}", ops::doctor::render(&again));
    assert!(!basecamp_credentials(&again).detail.contains("renewed"));
    assert_eq!(stack.basecamp.calls().count("POST", "/authorization/token"), 1, "nothing left to renew");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_basecamp_token_whose_refresh_is_refused_is_provider_auth_required() {
    use secrecy::SecretString;
    let stack = start("doctor-expired", |_| {}).await;
    stack.basecamp.expire_token(bc::ACCESS_TOKEN).await;
    let secrets = stack.secrets();
    secrets.put("basecamp-refresh-token", &SecretString::from("revoked-refresh-token"), "test").await.unwrap();
    let report = ops::doctor::run(&stack.config, secrets, &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    assert!(!report.ok());
    let bad = failed(&report, "basecamp");
    assert_eq!(bad.len(), 1, "{text}");
    assert_eq!(bad[0].code, Some(SetupCode::AuthRequired));
    assert!(bad[0].detail.contains("renewing it failed"), "{text}");
    assert!(bad[0].fix.as_deref().unwrap_or_default().contains("authorize"));
    assert!(!text.contains("revoked-refresh-token"), "secrets are never printed");
    assert!(text.contains("PROVIDER_AUTH_REQUIRED"));
    assert_eq!(stack.basecamp.calls().count("POST", "/authorization/token"), 1, "one refresh attempt");
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["checks"].as_array().unwrap().iter().any(|c| c["code"] == "PROVIDER_AUTH_REQUIRED"), "{json}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_basecamp_token_without_refresh_keys_is_provider_auth_required() {
    let stack = start("doctor-no-refresh", |_| {}).await;
    stack.basecamp.expire_token(bc::ACCESS_TOKEN).await;
    let config = config_with(&stack, |t| {
        t.lines()
            .filter(|l| !["client_id", "client_secret", "refresh_token"].iter().any(|k| l.starts_with(k)))
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert!(config.basecamp.as_ref().unwrap().refresh.is_none());
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "basecamp");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert_eq!(bad[0].code, Some(SetupCode::AuthRequired));
    assert!(bad[0].detail.contains("cannot renew it"), "{}", bad[0].detail);
    assert_eq!(stack.basecamp.calls().count("POST", "/authorization/token"), 0);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_jira_and_bitbucket_tokens_are_provider_auth_required() {
    use secrecy::SecretString;
    let stack = start("doctor-wrong-tokens", |_| {}).await;
    let secrets = stack.secrets();
    secrets.put("jira-api-token", &SecretString::from("not-the-jira-token"), "test").await.unwrap();
    secrets.put("bitbucket-api-token", &SecretString::from("not-the-bitbucket-token"), "test").await.unwrap();
    let report = ops::doctor::run(&stack.config, secrets, &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    for provider in ["jira", "bitbucket"] {
        let bad = failed(&report, provider);
        assert_eq!(bad.len(), 1, "{provider}: {text}");
        assert_eq!(bad[0].name, "credentials");
        assert_eq!(bad[0].code, Some(SetupCode::AuthRequired), "{text}");
    }
    assert!(failed(&report, "basecamp").is_empty(), "{text}");
    assert!(!text.contains("not-the-jira-token") && !text.contains("not-the-bitbucket-token"));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_with_403_is_provider_scope_unavailable() {
    use campbridge_simulators::common::faults::Faults;
    let stack = start("doctor-403", |_| {}).await;
    // Bitbucket answers every request 403, as for an API token created without the account scope.
    stack.bitbucket.set_faults(Faults { error_rate: 1.0, error_status: 403, ..Default::default() });
    let report = ops::doctor::run(&stack.config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "bitbucket");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert_eq!(bad[0].code, Some(SetupCode::ScopeUnavailable));
    assert!(bad[0].fix.as_deref().unwrap_or_default().contains("scope"));
    assert!(!report.ok());
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_jira_project_and_a_workflow_without_the_needed_transitions_are_scope_unavailable() {
    let stack = start("doctor-jira-scope", |o| {
        o.status_strategy = "pm-owned";
        o.jira.strict_workflow = true;
    })
    .await;
    // One issue in WEB to read the workflow from: from To Do, the strict workflow cannot reach Done.
    let todo = create_todos(&stack, "Sprint 1", "Workflow probe", 1).await[0];
    stack.wait_issue(todo).await.unwrap();
    stack.jira.refresh_index().await;
    let report = ops::doctor::run(&stack.config, stack.secrets(), &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    let bad = failed(&report, "jira");
    assert_eq!(bad.len(), 1, "{text}");
    assert!(bad[0].name.starts_with("transitions for pm-owned"), "{text}");
    assert_eq!(bad[0].code, Some(SetupCode::ScopeUnavailable));
    assert!(bad[0].detail.contains("done"), "{text}");

    let config = config_with(&stack, |t| t.replace("jira_project = \"WEB\"", "jira_project = \"NOPE\""));
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "jira");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert!(bad[0].name.contains("NOPE"));
    assert_eq!(bad[0].code, Some(SetupCode::ScopeUnavailable));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_the_token_cannot_see_is_provider_scope_unavailable() {
    let stack = start("doctor-scope", |_| {}).await;
    let config = config_with(&stack, |t| {
        t.replace(&format!("basecamp_project = {}", bc::PROJECT_ID), "basecamp_project = 4242")
    });
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "basecamp");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert_eq!(bad[0].code, Some(SetupCode::ScopeUnavailable));
    assert!(bad[0].name.contains("4242"));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitbucket_repository_with_issues_is_scope_unavailable_and_points_to_jira() {
    let stack = start("doctor-issues", |_| {}).await;
    let with_issues = bb::Simulator::start(bb::Options { has_issues: true, ..bb::Options::default() }).await.unwrap();
    let root = |s: &bb::Simulator| s.base_url().trim_end_matches('/').trim_end_matches("/2.0").to_owned();
    let config = config_with(&stack, |t| t.replace(&root(&stack.bitbucket), &root(&with_issues)));
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "bitbucket");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert_eq!(bad[0].code, Some(SetupCode::ScopeUnavailable));
    assert!(bad[0].detail.contains("2026-08-20"), "{}", bad[0].detail);
    assert!(bad[0].fix.as_deref().unwrap_or_default().contains("Jira"));
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn base_urls_resolving_to_loopback_private_or_link_local_addresses_are_blocked() {
    use shared::doctor::check_base_url;
    use shared::outbound::{OutboundGuard, OutboundPolicy};
    let production = OutboundGuard::new(OutboundPolicy::public_only());
    let tests = OutboundGuard::new(OutboundPolicy::insecure_loopback_for_tests());
    // IP literals need no DNS (and `localhost` none beyond the hosts file); a blocked URL is never contacted.
    for url in ["https://127.0.0.1:9/", "https://localhost:9/", "https://10.20.30.40/", "https://169.254.169.254/"] {
        let err = check_base_url(&production, &url::Url::parse(url).unwrap()).await.unwrap_err();
        assert!(err.contains("resolves to"), "{url}: {err}");
    }
    for url in ["https://10.20.30.40/", "https://169.254.169.254/", "https://[fe80::1]/", "https://[fec0::1]/"] {
        assert!(
            check_base_url(&tests, &url::Url::parse(url).unwrap()).await.is_err(),
            "{url} even with loopback allowed"
        );
    }
}

/// A loopback listener counting the connections it accepts (and closing them).
async fn counting_listener() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepts.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, accepts)
}

/// The stack's config with its three upstreams renamed to `https://<name>:<port>` hosts.
fn config_naming(stack: &Stack, basecamp: &str, jira: &str, bitbucket: &str) -> Config {
    let bc_host = stack.basecamp.base_url().trim_end_matches(&format!("/{}", stack.basecamp.account_id())).to_owned();
    let bb_root = stack.bitbucket.base_url().trim_end_matches('/').trim_end_matches("/2.0").to_owned();
    config_with(stack, |t| {
        t.replace(&format!("base_url = {bc_host:?}"), &format!("base_url = \"https://{basecamp}\""))
            .replace(&format!("site = {:?}", stack.jira.base_url()), &format!("site = \"https://{jira}\""))
            .replace(&format!("base_url = \"{bb_root}/2.0\""), &format!("base_url = \"https://{bitbucket}/2.0\""))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_refuses_names_resolving_to_private_addresses_before_any_connection() {
    use shared::outbound::{ConnectTripwire, OutboundGuard, OutboundPolicy, StaticResolver};
    let stack = start("doctor-private", |_| {}).await;
    let (listener, accepts) = counting_listener().await;
    let port = listener.port();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let resolver = StaticResolver::new()
        .answer("basecamp.ssrf.test", &[ip("169.254.169.254")])
        .answer("jira.ssrf.test", &[ip("::ffff:10.1.2.3")])
        .answer("bitbucket.ssrf.test", &[ip("64:ff9b::6440:9")]);
    // Production's policy. Every connection a client of this guard starts is counted (and failed) by the
    // tripwire; an answer the guard wrongly let through would go to the counting listener, nowhere else.
    let resolver = Arc::new(resolver);
    let tripwire = ConnectTripwire::new();
    let guard = OutboundGuard::with_resolver(OutboundPolicy::public_only(), resolver.clone())
        .divert_checked_answers_to(listener)
        .with_tripwire(tripwire.clone());
    let config = config_naming(
        &stack,
        &format!("basecamp.ssrf.test:{port}"),
        &format!("jira.ssrf.test:{port}"),
        &format!("bitbucket.ssrf.test:{port}"),
    );
    let before = (stack.basecamp.calls().total(), stack.jira.calls().total(), stack.bitbucket.calls().total());
    // Receiver URLs known: the webhook checks would run too, if anything were contacted.
    let report = ops::doctor::run_with(&config, stack.secrets(), &PublicUrls::base(&stack.server_url), &guard).await;
    let text = ops::doctor::render(&report);
    for (provider, class) in
        [("basecamp", "link-local"), ("jira", "10.1.2.3, a private"), ("bitbucket", "private (carrier-grade NAT)")]
    {
        let bad = failed(&report, provider);
        assert!(!bad.is_empty(), "{provider}: {text}");
        assert!(bad.iter().all(|c| c.code == Some(SetupCode::BaseUrlBlocked)), "{text}");
        assert!(bad[0].detail.contains(class), "{provider}: {text}");
        assert!(report.checks.iter().filter(|c| c.provider == provider).all(|c| c.name == "base URL"), "{text}");
    }
    assert!(text.contains("registrations: not checked: a base URL failed the safety checks"), "{text}");
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing was connected to");
    assert_eq!(tripwire.attempts(), 0, "no request was even started");
    assert_eq!(resolver.lookups(), 3, "one lookup per named base URL, by its check");
    let after = (stack.basecamp.calls().total(), stack.jira.calls().total(), stack.bitbucket.calls().total());
    assert_eq!(before, after, "a blocked provider is never contacted");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_address_each_connection_resolves_to_so_a_rebinding_name_is_refused() {
    use shared::outbound::{OutboundGuard, OutboundPolicy, StaticResolver};
    let stack = start("doctor-rebind", |_| {}).await;
    let (listener, accepts) = counting_listener().await;
    let port = listener.port();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // The address check sees loopback (allowed in tests); the next lookup, for the request, a private address.
    let resolver = Arc::new(
        StaticResolver::new()
            .answer("jira.rebind.test", &[ip("127.0.0.1")])
            .answer("jira.rebind.test", &[ip("10.0.0.7")]),
    );
    let guard = OutboundGuard::with_resolver(OutboundPolicy::insecure_loopback_for_tests(), resolver.clone())
        .divert_checked_answers_to(listener);
    let bc_host = stack.basecamp.base_url().trim_end_matches(&format!("/{}", stack.basecamp.account_id())).to_owned();
    let bb_root = stack.bitbucket.base_url().trim_end_matches('/').trim_end_matches("/2.0").to_owned();
    let config = config_naming(
        &stack,
        bc_host.trim_start_matches("http://"),
        &format!("jira.rebind.test:{port}"),
        bb_root.trim_start_matches("http://"),
    );
    // Only Jira is renamed: put the other two back on plain http (the simulators speak no TLS).
    let mut config = config;
    config.basecamp.as_mut().unwrap().base_url = stack.config.basecamp.as_ref().unwrap().base_url.clone();
    config.bitbucket.as_mut().unwrap().base_url = stack.config.bitbucket.as_ref().unwrap().base_url.clone();
    let jira_before = stack.jira.calls().total();
    let report = ops::doctor::run_with(&config, stack.secrets(), &PublicUrls::default(), &guard).await;
    let text = ops::doctor::render(&report);
    let bad = failed(&report, "jira");
    assert_eq!(bad.len(), 1, "{text}");
    assert_eq!(bad[0].code, Some(SetupCode::BaseUrlBlocked));
    assert!(bad[0].detail.contains("10.0.0.7, a private address"), "{text}");
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 0, "the rebound answer was not connected to");
    assert_eq!(resolver.lookups(), 2, "one lookup per check, none unchecked");
    assert_eq!(stack.jira.calls().total(), jira_before);
    assert!(failed(&report, "basecamp").is_empty() && failed(&report, "bitbucket").is_empty(), "{text}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_upstreams_need_the_test_allowance_in_the_config_and_pass_no_production_guard() {
    let stack = start("doctor-loopback", |_| {}).await;
    // Without the allowance the config itself is refused, with the line of each loopback URL.
    let text = stack
        .config_text
        .replace("allow_insecure_loopback_upstreams = true", "allow_insecure_loopback_upstreams = false")
        .replace("http://127.0.0.1", "https://127.0.0.1");
    let errors = Config::parse(&text, "campbridge.toml").unwrap_err().to_string();
    for key in ["[basecamp] base_url", "[basecamp] launchpad_url", "[jira] site", "[bitbucket] base_url"] {
        assert!(errors.contains(&format!("{key} \"https://127.0.0.1")), "{key}: {errors}");
    }
    assert!(errors.contains("a loopback address"), "{errors}");
    // With it, the operator commands refuse the config unless the process opted in.
    let refused = stack.config.check_loopback_opt_in(false).unwrap_err();
    assert!(refused.contains(shared::config::LOOPBACK_OPT_IN_VAR), "{refused}");
    assert!(stack.config.check_loopback_opt_in(true).is_ok());
    // And the production guard blocks the simulators whatever the config says.
    let production = shared::outbound::OutboundGuard::new(shared::outbound::OutboundPolicy::public_only());
    let report = ops::doctor::run_with(&stack.config, stack.secrets(), &PublicUrls::default(), &production).await;
    let text = ops::doctor::render(&report);
    for provider in ["basecamp", "jira", "bitbucket"] {
        let bad = failed(&report, provider);
        assert!(!bad.is_empty(), "{provider}: {text}");
        assert!(bad.iter().all(|c| c.code == Some(SetupCode::BaseUrlBlocked)), "{text}");
    }
    stack.stop().await.unwrap();
}

/// A server on 127.0.0.1 that answers every request with a 302 to `location`.
async fn redirector(location: &'static str) -> String {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new()
        .fallback(move || async move { (StatusCode::FOUND, [(header::LOCATION, location)], "moved") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_that_redirects_elsewhere_is_blocked() {
    let to_http = redirector("http://downgraded.invalid/rest/").await;
    let tests = shared::outbound::OutboundGuard::new(shared::outbound::OutboundPolicy::insecure_loopback_for_tests());
    let err = shared::doctor::check_base_url(&tests, &url::Url::parse(&to_http).unwrap()).await.unwrap_err();
    assert!(err.contains("redirects (302) to another origin"), "{err}");
    // https → http, checked on the answer itself (no TLS server on loopback in tests).
    let base = url::Url::parse("https://jira.example/").unwrap();
    let err = shared::doctor::check_redirect(&base, 302, Some("http://jira.example/")).unwrap_err();
    assert!(err.contains("from https to http"), "{err}");

    let stack = start("doctor-redirect", |_| {}).await;
    let config = config_with(&stack, |t| {
        t.replace(&format!("site = {:?}", stack.jira.base_url()), &format!("site = {to_http:?}"))
    });
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let bad = failed(&report, "jira");
    assert_eq!(bad.len(), 1, "{}", ops::doctor::render(&report));
    assert_eq!(bad[0].code, Some(SetupCode::BaseUrlBlocked));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_webhooks_twice_leaves_one_hook_per_project_and_check_is_healthy() {
    use ops::webhooks::{Action, run};
    let stack = start("hooks", |_| {}).await;
    let secrets = stack.secrets();
    let base = &PublicUrls::base(&stack.server_url);
    // Start from nothing registered (the stack registers its own at start).
    run(&stack.config, secrets.clone(), base, Action::Remove).await.unwrap();
    let check = run(&stack.config, secrets.clone(), base, Action::Check).await.unwrap();
    assert!(!check.healthy(), "{}", ops::webhooks::render(&check));

    let first = run(&stack.config, secrets.clone(), base, Action::Register).await.unwrap();
    assert_eq!(first.changes, 2, "one Basecamp project and one repository: {}", ops::webhooks::render(&first));
    let second = run(&stack.config, secrets.clone(), base, Action::Register).await.unwrap();
    assert_eq!(second.changes, 0, "{}", ops::webhooks::render(&second));

    let client = ops::basecamp_client(&stack.config, secrets.clone()).await.unwrap();
    let hooks = client.webhooks(shared::domain::ProjectId(bc::PROJECT_ID)).await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].types, vec!["Todo", "Todolist", "Comment"]);
    let bb_client = ops::bitbucket_client(&stack.config, secrets.as_ref()).await.unwrap();
    let repo = stack.config.bitbucket.as_ref().unwrap().repos[0].clone();
    let repo_hooks = bb_client.webhooks(&repo).await.unwrap();
    assert_eq!(repo_hooks.iter().filter(|h| h.url.ends_with("/bitbucket")).count(), 1);
    assert_eq!(repo_hooks.iter().find(|h| h.url.ends_with("/bitbucket")).unwrap().secret_set, Some(true));

    let check = run(&stack.config, secrets.clone(), base, Action::Check).await.unwrap();
    assert!(check.healthy(), "{}", ops::webhooks::render(&check));
    let status = ops::status::run(&stack_backend(&stack), &stack.config, Some(secrets.clone()), base).await.unwrap();
    let status_text = ops::status::render(&status);
    assert!(status_text.contains("✓ basecamp") && status_text.contains("✓ bitbucket"), "{status_text}");
    let text = ops::webhooks::render(&check);
    assert!(text.contains("plugins/servlet/webhooks") && text.contains("jira-webhook-secret"), "{text}");
    assert!(!text.contains("demo-jira-webhook-secret"), "secrets are named, never printed");

    // An inactive Basecamp hook is re-enabled by `register`, not duplicated.
    client
        .update_webhook(hooks[0].id, &hooks[0].payload_url, shared::clients::basecamp::SYNC_WEBHOOK_TYPES, false)
        .await
        .unwrap();
    assert!(!run(&stack.config, secrets.clone(), base, Action::Check).await.unwrap().healthy());
    let again = run(&stack.config, secrets.clone(), base, Action::Register).await.unwrap();
    assert_eq!(again.changes, 1);
    let hooks = client.webhooks(shared::domain::ProjectId(bc::PROJECT_ID)).await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].active);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_public_url_changes_old_hooks_are_reported_and_register_prune_deletes_only_ours() {
    use ops::webhooks::{Action, run};
    use shared::clients::bitbucket::WebhookSpec;
    let stack = start("hooks-prune", |_| {}).await;
    let secrets = stack.secrets();
    let old = PublicUrls::base("https://old-tunnel.example.com");
    let new = PublicUrls::base("https://new-tunnel.example.com");
    let project = shared::domain::ProjectId(bc::PROJECT_ID);
    let client = ops::basecamp_client(&stack.config, secrets.clone()).await.unwrap();
    let bb_client = ops::bitbucket_client(&stack.config, secrets.as_ref()).await.unwrap();
    let repo = stack.config.bitbucket.as_ref().unwrap().repos[0].clone();
    // Start from our hooks at the old URL, next to other people's hooks on the same project and repository.
    run(&stack.config, secrets.clone(), &PublicUrls::base(&stack.server_url), Action::Remove).await.unwrap();
    assert_eq!(run(&stack.config, secrets.clone(), &old, Action::Register).await.unwrap().changes, 2);
    let foreign = "https://someone-else.example.com/basecamp/not-ours";
    client.create_webhook(project, foreign, shared::clients::basecamp::SYNC_WEBHOOK_TYPES).await.unwrap();
    let spec = WebhookSpec {
        description: "ci".into(),
        url: "https://ci.example.com/bitbucket".into(),
        events: vec!["repo:push".into()],
        secret: secrecy::SecretString::from("ci-secret"),
        active: true,
    };
    bb_client.create_webhook(&repo, &spec).await.unwrap();

    // The URL changes: register adds the new hooks and reports the old ones, without deleting anything.
    let moved = run(&stack.config, secrets.clone(), &new, Action::Register).await.unwrap();
    let text = ops::webhooks::render(&moved);
    assert!(!moved.healthy(), "{text}");
    assert_eq!(moved.changes, 2, "{text}");
    let stale: Vec<_> = moved.hooks.iter().filter(|h| h.target.ends_with("old URL")).collect();
    assert_eq!(stale.len(), 2, "one Basecamp and one Bitbucket hook at the old URL: {text}");
    assert!(stale.iter().all(|h| h.healthy == Some(false) && h.url.starts_with("https://old-tunnel.")), "{text}");
    assert!(text.contains("webhooks register --prune"), "{text}");
    assert_eq!(client.webhooks(project).await.unwrap().len(), 3);
    assert!(!run(&stack.config, secrets.clone(), &new, Action::Check).await.unwrap().healthy());

    // --prune deletes our two old hooks and nobody else's.
    let pruned = run(&stack.config, secrets.clone(), &new, Action::RegisterAndPrune).await.unwrap();
    let text = ops::webhooks::render(&pruned);
    assert!(pruned.healthy(), "{text}");
    assert_eq!(pruned.changes, 2, "{text}");
    assert!(text.contains("removed: it pointed at an old URL"), "{text}");
    let mut left: Vec<String> = client.webhooks(project).await.unwrap().into_iter().map(|h| h.payload_url).collect();
    left.sort();
    assert_eq!(left.len(), 2);
    assert!(left[0].starts_with("https://new-tunnel.example.com/basecamp/") && left[1] == foreign, "{left:?}");
    let mut repo_hooks: Vec<String> = bb_client.webhooks(&repo).await.unwrap().into_iter().map(|h| h.url).collect();
    repo_hooks.sort();
    assert_eq!(repo_hooks, ["https://ci.example.com/bitbucket", "https://new-tunnel.example.com/bitbucket"]);
    let check = run(&stack.config, secrets.clone(), &new, Action::Check).await.unwrap();
    assert!(check.healthy(), "{}", ops::webhooks::render(&check));
    assert_eq!(run(&stack.config, secrets, &new, Action::RegisterAndPrune).await.unwrap().changes, 0);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_stack_registers_each_receiver_at_its_own_function_url_once() {
    use ops::webhooks::{Action, run};
    let stack = start("hooks-aws", |_| {}).await;
    let secrets = stack.secrets();
    // A deployed stack has three function URLs, one per receiver (the stack's outputs).
    let urls = PublicUrls {
        basecamp: Some("https://bc-fn.lambda-url.eu-west-1.on.aws/".into()),
        jira: Some("https://jira-fn.lambda-url.eu-west-1.on.aws/".into()),
        bitbucket: Some("https://bb-fn.lambda-url.eu-west-1.on.aws/".into()),
        ..PublicUrls::default()
    };
    let first = run(&stack.config, secrets.clone(), &urls, Action::Register).await.unwrap();
    assert_eq!(first.changes, 2, "{}", ops::webhooks::render(&first));
    let second = run(&stack.config, secrets.clone(), &urls, Action::Register).await.unwrap();
    assert_eq!(second.changes, 0, "{}", ops::webhooks::render(&second));
    // The only things wrong are the local server's own hooks, now at an old URL.
    let unhealthy: Vec<_> = second.hooks.iter().filter(|h| h.healthy == Some(false)).collect();
    assert_eq!(unhealthy.len(), 2, "{}", ops::webhooks::render(&second));
    assert!(unhealthy.iter().all(|h| h.url.starts_with(&stack.server_url) && h.target.ends_with("old URL")));

    let client = ops::basecamp_client(&stack.config, secrets.clone()).await.unwrap();
    let hooks = client.webhooks(shared::domain::ProjectId(bc::PROJECT_ID)).await.unwrap();
    let ours: Vec<_> = hooks.iter().filter(|h| h.payload_url.starts_with("https://bc-fn.")).collect();
    assert_eq!(ours.len(), 1);
    assert!(ours[0].payload_url.starts_with("https://bc-fn.lambda-url.eu-west-1.on.aws/basecamp/"));
    let bb_client = ops::bitbucket_client(&stack.config, secrets.as_ref()).await.unwrap();
    let repo = stack.config.bitbucket.as_ref().unwrap().repos[0].clone();
    let repo_hooks = bb_client.webhooks(&repo).await.unwrap();
    assert_eq!(repo_hooks.iter().filter(|h| h.url == "https://bb-fn.lambda-url.eu-west-1.on.aws/bitbucket").count(), 1);
    let text = ops::webhooks::render(&second);
    assert!(text.contains("URL https://jira-fn.lambda-url.eu-west-1.on.aws/jira"), "{text}");

    // Without any URL the command says which flags it needs.
    let err = run(&stack.config, secrets, &PublicUrls::default(), Action::Check).await.unwrap_err();
    assert!(err.to_string().contains("--basecamp-url"), "{err}");
    stack.stop().await.unwrap();
}

/// The stack's config with its own SQLite file: a store no running server works on, so a test decides
/// exactly when jobs run.
fn private_store_config(stack: &Stack, name: &str) -> Config {
    config_with(stack, |t| t.replace("campbridge.db", &format!("{name}.db")))
}

/// Removes the stack's Basecamp webhook, so to-dos created in the simulator exist before campbridge
/// hears of them (as when a team starts using it).
async fn without_basecamp_webhooks(stack: &Stack) {
    let report = ops::webhooks::run(
        &stack.config,
        stack.secrets(),
        &PublicUrls::base(&stack.server_url),
        ops::webhooks::Action::Remove,
    )
    .await
    .unwrap();
    assert!(report.changes >= 1, "{}", ops::webhooks::render(&report));
}

async fn create_todos(stack: &Stack, list: &str, prefix: &str, n: usize) -> Vec<i64> {
    let list = stack.list(list).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let write = bc::TodoWrite { content: Some(format!("{prefix} {i}")), ..Default::default() };
        ids.push(stack.basecamp.create_todo(list, write, bc::ANNIE).await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_conflict_is_listed_shown_and_settled_by_taking_one_side() {
    use shared::ports::PairStore;
    let stack = start("conflicts", |o| o.conflict_policy = "manual").await;
    let todo = create_todos(&stack, "Sprint 1", "Fix login", 1).await[0];
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.edit_title_on_both_sides(todo, &key, "PM title", "Dev title").await.unwrap();

    let status = ops::status::run(&stack_backend(&stack), &stack.config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(status.conflicts_open, 1, "{}", ops::status::render(&status));
    assert_eq!(status.pairs_linked, 1);
    assert!(ops::status::render(&status).contains("conflicts list"));
    let open = ops::conflicts::list(&stack.store, false).await.unwrap();
    assert_eq!(open.len(), 1);
    let shown = ops::conflicts::show(&stack.store, &open[0].id).await.unwrap();
    assert!(ops::conflicts::render_one(&shown).contains("--take basecamp|tracker"));

    let (_, engine) = ops::open_engine(&stack.config, stack.secrets(), "ops-test").await.unwrap();
    let side = ops::conflicts::side("tracker").unwrap();
    let resolved = ops::conflicts::resolve(&engine, &open[0].id, side).await.unwrap();
    assert!(resolved.wrote);
    assert_eq!(resolved.value, "Dev title");
    stack.settle().await.unwrap();
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "Dev title");
    assert_eq!(stack.issue_of(todo).await.unwrap()["fields"]["summary"], "[BC][WEB] Dev title");
    assert!(ops::conflicts::list(&stack.store, false).await.unwrap().is_empty());
    let key = shared::domain::PairKey { route: stack.route.clone(), todo: shared::domain::TodoId(todo) };
    assert!(stack.store.get(&key).await.unwrap().unwrap().open_conflicts.is_empty());
    assert!(ops::conflicts::resolve(&engine, &open[0].id, side).await.is_err(), "settling twice is refused");

    // The title syncs again.
    stack
        .basecamp
        .edit_todo(todo, bc::TodoEdit { content: Some("Later".into()), ..Default::default() }, bc::ANNIE)
        .await
        .unwrap();
    stack
        .wait_for("the title to follow", 20, || async {
            let s = stack.issue_of(todo).await?["fields"]["summary"].as_str()?.to_owned();
            (s == "[BC][WEB] Later").then_some(())
        })
        .await
        .unwrap();
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_is_replayed_once_and_a_second_replay_changes_nothing() {
    use campbridge_simulators::common::faults::Faults;
    use shared::domain::{DeliveryId, Job, ProjectId, TodoId};
    use shared::ports::{JobProducer, PairStore};
    let stack = start("replay", |_| {}).await;
    without_basecamp_webhooks(&stack).await;
    let config = private_store_config(&stack, "replay");
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::ports::SystemClock);
    let store = campbridge::wiring::open_store(&config, clock).unwrap();
    let queue = store.clone();
    let backend = Backend::sqlite(queue.clone(), "replay.db");
    let engine = backend.engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let todo = create_todos(&stack, "Sprint 1", "Replay me", 1).await[0];
    let job = Job::TodoChanged {
        delivery: DeliveryId::basecamp(990_001),
        route: stack.route.clone(),
        project: ProjectId(bc::PROJECT_ID),
        todo: TodoId(todo),
        event: "todo_created".into(),
        received_at: chrono::Utc::now(),
    };
    queue.send(&job.record().group_id(), "first", &job.to_wire().unwrap()).await.unwrap();

    // Jira refuses everything until the dead-letter queue takes the job.
    stack.jira.set_faults(Faults { error_rate: 1.0, error_status: 400, ..Default::default() });
    for _ in 0..5 {
        shared::sync::run_queue_once(&engine, &queue, 10, std::time::Duration::ZERO).await.unwrap();
    }
    let dead = ops::replay::list(&queue).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery.as_deref(), Some("basecamp:990001"));
    assert_eq!(dead[0].receive_count, 5, "dead-lettered on its fifth failed receive");
    let listed = ops::replay::render_list(&dead);
    assert!(listed.contains("campbridge replay"), "{listed}");
    assert!(listed.contains("last error: tracker API: rejected"), "the error of its last attempt: {listed}");

    stack.jira.set_faults(Faults::default());
    let requeued = ops::replay::replay(&queue, "basecamp:990001").await.unwrap();
    assert_eq!(requeued.len(), 1);
    assert!(ops::replay::drain(&engine, &queue, 10).await.unwrap() >= 1);
    let key = shared::domain::PairKey { route: stack.route.clone(), todo: TodoId(todo) };
    let item = store.get(&key).await.unwrap().and_then(|p| p.item).expect("paired after the replay");
    assert!(ops::replay::list(&queue).await.unwrap().is_empty());

    // Again: nothing left to replay, and the same delivery sent once more is a no-op.
    assert!(ops::replay::replay(&queue, "basecamp:990001").await.is_err());
    let creates = stack.jira.calls().count("POST", "/rest/api/3/issue");
    queue.send(&job.record().group_id(), "second", &job.to_wire().unwrap()).await.unwrap();
    ops::replay::drain(&engine, &queue, 10).await.unwrap();
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), creates);
    assert_eq!(store.get(&key).await.unwrap().and_then(|p| p.item), Some(item));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_over_300_todos_plans_each_one_and_writes_nothing() {
    let stack = start("dry-run", |_| {}).await;
    without_basecamp_webhooks(&stack).await;
    create_todos(&stack, "Sprint 1", "Old task", 200).await;
    create_todos(&stack, "Backlog", "Someday", 100).await;
    let config = private_store_config(&stack, "dry-run");
    let (backend, engine) = ops::open_engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let client = ops::basecamp_client(&config, stack.secrets()).await.unwrap();
    let writes = stack.upstream_writes();
    let opts =
        ops::backfill::Options { route: stack.route.clone(), dry_run: true, since: None, limit: None, progress: false };
    let limiter = Arc::new(ops::backfill::RateLimiter::basecamp());
    let report = ops::backfill::run(&engine, &client, limiter, &opts).await.unwrap();
    let ours = |prefix: &str, action| {
        report.lines.iter().filter(|l| l.title.starts_with(prefix) && l.action == action).count()
    };
    assert_eq!(ours("Old task", ops::backfill::Action::Create), 200);
    assert_eq!(ours("Someday", ops::backfill::Action::Skip), 100);
    let text = ops::backfill::render(&report);
    assert!(text.contains("dry run: nothing written"), "{text}");
    assert!(text.contains("matches none of the route's lists"), "skips say why");
    assert!(text.contains("[BC][WEB] Old task 7"), "creates name the issue: {text}");
    assert_eq!(stack.upstream_writes(), writes, "no writes to Basecamp or Jira");
    assert!(backend.stores.pairs.list(None, None, 10).await.unwrap().is_empty(), "no pairs stored");
    assert!(backend.stores.audit.recent(None, 10).await.unwrap().is_empty(), "nothing audited");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_resumes_without_duplicates_or_429s() {
    let stack = start("backfill", |_| {}).await; // Basecamp's 50 requests / 10 s is on
    without_basecamp_webhooks(&stack).await;
    let todos = create_todos(&stack, "Sprint 1", "Legacy", 24).await;
    let config = private_store_config(&stack, "backfill");
    let (backend, engine) = ops::open_engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let client = ops::basecamp_client(&config, stack.secrets()).await.unwrap();
    let limiter = Arc::new(ops::backfill::RateLimiter::basecamp());
    let mut opts = ops::backfill::Options {
        route: stack.route.clone(),
        dry_run: false,
        since: None,
        limit: Some(8),
        progress: false,
    };
    let first = ops::backfill::run(&engine, &client, limiter.clone(), &opts).await.unwrap();
    assert_eq!(first.created, 8, "{}", ops::backfill::render(&first));
    assert!(first.remaining >= 16);
    opts.limit = None;
    let second = ops::backfill::run(&engine, &client, limiter.clone(), &opts).await.unwrap();
    let text = ops::backfill::render(&second);
    assert_eq!(second.failed, 0, "{text}");
    assert_eq!(first.rate_limited + second.rate_limited, 0, "the limiter kept below Basecamp's limit: {text}");
    let created = first.created + second.created;
    assert!(created >= 24, "{text}");

    let pairs = backend.stores.pairs.list(None, None, 1000).await.unwrap();
    for todo in &todos {
        assert!(pairs.iter().any(|p| p.todo.0 == *todo && p.is_linked()), "to-do {todo} paired");
    }
    assert_eq!(pairs.len(), created);
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue") as usize, created, "one issue per to-do");

    // A third run finds everything done.
    let third = ops::backfill::run(&engine, &client, limiter, &opts).await.unwrap();
    assert_eq!(third.created + third.linked, 0);
    let status = ops::status::run(&backend, &config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(status.pairs_linked, created);
    assert_eq!(status.claims_stale + status.claims_live, 0);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selftest_runs_the_validation_loop_and_cleans_up_after_itself() {
    let stack = start("selftest", |_| {}).await;
    without_basecamp_webhooks(&stack).await;
    let config = private_store_config(&stack, "selftest");
    let (backend, engine) = ops::open_engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let report = ops::selftest::run(&config, stack.secrets(), &engine, &stack.route).await.unwrap();
    let text = ops::selftest::render(&report);
    assert!(report.ok(), "{text}");
    let passed: Vec<&str> = report.steps.iter().filter(|s| s.ok == Some(true)).map(|s| s.name).collect();
    for step in [
        "create → one issue",
        "update → mirrored once",
        "filter-negative → nothing",
        "conflict → policy applied",
        "clean up",
    ] {
        assert!(passed.contains(&step), "{step}: {text}");
    }
    // The sandbox issue is gone from Jira, the sandbox to-do closed, and nothing of it is left in the store.
    let (todo, item) = sandbox(&report);
    assert!(stack.jira.issue(&item).await.is_none(), "{text}");
    let closed = stack.basecamp.record("todos", todo).await;
    assert!(closed.is_none_or(|t| t["completed"] == true || t["status"] == "trashed"), "{text}");
    assert_nothing_left(&backend, &config, &text).await;
    for debug in ["Skipped(", "Filtered(", "ListNotRouted", "Took", "Updated {"] {
        assert!(!text.contains(debug), "{debug:?}: words, not debug output:\n{text}");
    }
    assert!(text.contains("skipped: not routed: to-do list \"Backlog\" matches none of the route's lists"), "{text}");
    stack.stop().await.unwrap();
}

/// The sandbox to-do and issue the selftest's create step names (`to-do 123 → WEB-1`).
fn sandbox(report: &ops::selftest::Report) -> (i64, String) {
    let step = report.steps.iter().find(|s| s.name == "create → one issue").expect("a create step");
    let (todo, item) = step.detail.trim_start_matches("to-do ").split_once(" → ").expect("to-do N → KEY");
    (todo.parse().expect("a to-do id"), item.to_owned())
}

/// No pair, no open conflict: `status` and `conflicts list` show nothing of the selftest.
async fn assert_nothing_left(backend: &Backend, config: &Config, text: &str) {
    assert!(backend.stores.pairs.list(None, None, 10).await.unwrap().is_empty(), "a sandbox pair is left:\n{text}");
    assert!(
        ops::conflicts::list(backend.stores.conflicts.as_ref(), false)
            .await
            .unwrap()
            .iter()
            .all(|c| c.resolution != shared::ports::Resolution::Open)
    );
    let status = ops::status::run(backend, config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!((status.pairs_linked, status.pairs_pending, status.conflicts_open), (0, 0, 0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selftest_under_the_manual_policy_settles_the_conflict_it_opened() {
    let stack = start("selftest-manual", |o| o.conflict_policy = "manual").await;
    without_basecamp_webhooks(&stack).await;
    let config = private_store_config(&stack, "selftest-manual");
    let (backend, engine) = ops::open_engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let report = ops::selftest::run(&config, stack.secrets(), &engine, &stack.route).await.unwrap();
    let text = ops::selftest::render(&report);
    assert!(report.ok(), "{text}");
    assert!(text.contains("policy manual left it open for a person"), "{text}");
    assert!(text.contains("conflict") && text.contains("settled"), "{text}");
    assert_nothing_left(&backend, &config, &text).await;
    stack.stop().await.unwrap();
}

/// A secret store without some of the stack's secrets: an operator who has not set them yet.
struct Without {
    inner: Arc<dyn shared::ports::SecretStore>,
    unset: Vec<&'static str>,
}

#[async_trait::async_trait]
impl shared::ports::SecretStore for Without {
    async fn get(&self, name: &str) -> Result<secrecy::SecretString, shared::ports::SecretError> {
        if self.unset.contains(&name) {
            return Err(shared::ports::SecretError::Missing(name.to_owned()));
        }
        self.inner.get(name).await
    }
    async fn put(
        &self,
        name: &str,
        value: &secrecy::SecretString,
        request_token: &str,
    ) -> Result<(), shared::ports::SecretError> {
        self.inner.put(name, value, request_token).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_secret_that_is_not_set_as_missing_with_where_to_set_it() {
    let stack = start("doctor-missing", |_| {}).await;
    let secrets = Arc::new(Without { inner: stack.secrets(), unset: vec!["basecamp-access-token", "jira-api-token"] });
    let report = ops::doctor::run(&stack.config, secrets, &PublicUrls::base(&stack.server_url)).await;
    let text = ops::doctor::render(&report);
    assert!(!report.ok(), "{text}");
    let line = |provider: &str, name: &str| {
        report
            .checks
            .iter()
            .find(|c| c.provider == provider && c.name.contains(name))
            .unwrap_or_else(|| panic!("{text}"))
    };
    let access = line("secrets", "basecamp-access-token");
    assert_eq!(access.ok, Some(false));
    assert!(access.detail.contains("SECRET_MISSING") && access.detail.contains("is not set"), "{text}");
    let fix = access.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("campbridge auth basecamp") && fix.contains("CAMPBRIDGE_SECRET_BASECAMP_ACCESS_TOKEN"),
        "{text}"
    );
    let jira = line("secrets", "jira-api-token");
    assert!(jira.fix.as_deref().unwrap_or_default().contains("CAMPBRIDGE_SECRET_JIRA_API_TOKEN"), "{text}");
    assert!(!text.contains("expired or revoked"), "a missing secret is not a refused token:\n{text}");
    // The checks that need them say why they did not run; the others still do.
    assert_eq!(line("basecamp", "credentials").ok, None, "{text}");
    assert_eq!(line("jira", "credentials").ok, None, "{text}");
    assert_eq!(line("bitbucket", "credentials").ok, Some(true), "{text}");
    stack.stop().await.unwrap();
}

/// `campbridge status --check` as cron runs it: the real binary on `config`, the stack's secrets in the
/// environment. (exit success, everything printed).
fn status_check(stack: &Stack, config: &std::path::Path, secrets: &[(String, String)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_campbridge"))
        .args(["status", "--check", "--config"])
        .arg(config)
        .args(["--base-url", &stack.server_url])
        .env(shared::config::LOOPBACK_OPT_IN_VAR, "1")
        .envs(secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_check_fails_on_silence_conflicts_unhealthy_hooks_and_dead_letters_and_doctor_agrees() {
    use secrecy::ExposeSecret;
    use shared::ports::JobProducer;
    let stack = start("status-check", |o| o.conflict_policy = "manual").await;
    let secrets = stack.secrets();
    let base = PublicUrls::base(&stack.server_url);
    let text_with =
        |bound: &str| stack.config_text.replace("[server]\n", &format!("[server]\nmax_silence = {bound:?}\n"));
    let config = Config::parse(&text_with("1h"), "campbridge.toml").unwrap();
    let file = std::env::temp_dir().join(format!("campbridge-status-check-{}.toml", std::process::id()));
    std::fs::write(&file, text_with("1h")).unwrap();
    let mut env = Vec::new();
    for (_, secret) in config.secrets() {
        let value = secrets.get(secret.name()).await.unwrap().expose_secret().to_owned();
        env.push((shared::adapters::env_secrets::var_name(secret.name()), value));
    }
    let backend = stack_backend(&stack);
    let whats = |r: &ops::status::StatusReport| r.problems.iter().map(|p| p.what.clone()).collect::<Vec<_>>();

    // Nothing delivered yet: every receiver is silent.
    let fresh = ops::status::run(&backend, &config, Some(secrets.clone()), &base).await.unwrap();
    assert_eq!(whats(&fresh), ["silent receiver basecamp", "silent receiver jira", "silent receiver bitbucket"]);
    let (ok, out) = status_check(&stack, &file, &env);
    assert!(!ok && out.contains("Needs attention (3)"), "{out}");

    // One delivery from each source: healthy, and the binary exits 0.
    let list = stack.list("Sprint 1").await.unwrap();
    let write = bc::TodoWrite { content: Some("Fix login".into()), ..Default::default() };
    let todo = stack.basecamp.create_todo(list, write, bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.jira.transition_issue(&key, "Done", campbridge_simulators::jira::JARED).await.unwrap();
    stack
        .wait_for("the to-do to complete", 20, || async {
            (stack.basecamp.record("todos", todo).await?["completed"] == true).then_some(())
        })
        .await
        .unwrap();
    stack.bitbucket.open_pullrequest(&format!("Fix login ({key})"), "", "feature/login", "jared").await.unwrap();
    stack
        .wait_for("the pull request note", 20, || async {
            stack.basecamp_comments(todo).await.ok()?.iter().any(|c| c.contains("PR #")).then_some(())
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let healthy = ops::status::run(&backend, &config, Some(secrets.clone()), &base).await.unwrap();
    assert!(healthy.problems.is_empty(), "{}", ops::status::render(&healthy));
    assert!(ops::status::render(&healthy).contains("Nothing needs attention."));
    let (ok, out) = status_check(&stack, &file, &env);
    assert!(ok, "{out}");

    // A conflict left open (manual policy) and a webhook Basecamp deactivated.
    let write = bc::TodoWrite { content: Some("Fix logout".into()), ..Default::default() };
    let second = stack.basecamp.create_todo(list, write, bc::ANNIE).await.unwrap();
    let second_key = stack.wait_issue(second).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.edit_title_on_both_sides(second, &second_key, "PM title", "Dev title").await.unwrap();
    let client = ops::basecamp_client(&config, secrets.clone()).await.unwrap();
    let hook = client.webhooks(shared::domain::ProjectId(bc::PROJECT_ID)).await.unwrap().remove(0);
    client
        .update_webhook(hook.id, &hook.payload_url, shared::clients::basecamp::SYNC_WEBHOOK_TYPES, false)
        .await
        .unwrap();
    let troubled = ops::status::run(&backend, &config, Some(secrets.clone()), &base).await.unwrap();
    let found = whats(&troubled);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], "open conflicts");
    assert!(found[1].starts_with("webhook basecamp project"), "{found:?}");
    let (ok, out) = status_check(&stack, &file, &env);
    assert!(!ok && out.contains("open conflicts") && out.contains("inactive"), "{out}");
    // doctor runs the same rules.
    let doctor = ops::doctor::run(&config, secrets.clone(), &base).await;
    let failed: Vec<String> =
        doctor.checks.iter().filter(|c| c.ok == Some(false)).map(|c| format!("{} {}", c.provider, c.name)).collect();
    assert!(failed.contains(&"health open conflicts".to_owned()), "{failed:?}");
    assert!(failed.iter().any(|f| f.starts_with("basecamp webhook project")), "{failed:?}");

    // Time passes: with a one-second bound, every receiver is silent again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let strict = Config::parse(&text_with("1s"), "campbridge.toml").unwrap();
    let quiet = ops::status::run(&backend, &strict, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(whats(&quiet)[1..], ["silent receiver basecamp", "silent receiver jira", "silent receiver bitbucket"]);
    assert!(quiet.problems[1].detail.contains("ago"), "{:?}", quiet.problems[1]);

    // A dead letter (a body no job version reads, received until the queue gives up).
    let private = private_store_config(&stack, "status-check-dlq");
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::ports::SystemClock);
    let store = campbridge::wiring::open_store(&private, clock).unwrap().with_max_receives(2);
    let dlq_backend = Backend::sqlite(store.clone(), "status-check-dlq.db");
    let engine = dlq_backend.engine(&private, secrets.clone(), "ops-test").await.unwrap();
    store.send("poison", "poison-1", "not a job").await.unwrap();
    for _ in 0..3 {
        shared::sync::run_queue_once(&engine, &store, 10, std::time::Duration::ZERO).await.unwrap();
    }
    let dead = ops::status::run(&dlq_backend, &private, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(dead.dead_letters, 1);
    assert_eq!(whats(&dead), ["dead letters"], "{}", ops::status::render(&dead));
    stack.stop().await.unwrap();
}

fn actions(x: &ops::explain::Explanation) -> Vec<&str> {
    x.events.iter().map(|e| e.action.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_tells_the_story_of_a_synced_a_filtered_and_a_conflicted_item() {
    let stack = start("explain", |o| o.conflict_policy = "manual").await;
    let backend = stack_backend(&stack);
    let todo = create_todos(&stack, "Sprint 1", "Fix login", 1).await[0];
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    let filtered = create_todos(&stack, "Backlog", "Update the brochure", 1).await[0];
    stack.settle().await.unwrap();

    // Synced: the pair and its creation, by to-do id and by Jira key alike.
    let synced = ops::explain::run(&backend, &stack.config, &todo.to_string()).await.unwrap();
    assert_eq!(synced.pairs.len(), 1, "{}", ops::explain::render(&synced));
    assert_eq!(synced.pairs[0].item.as_deref(), Some(key.as_str()));
    let created = synced.events.iter().find(|e| e.action == "created").expect("the creation is audited");
    assert!(created.text.contains(&key), "{}", created.text);
    let text = ops::explain::render(&synced);
    assert!(text.contains(&format!("pair web/{todo} ↔ {key}: linked")), "{text}");
    let by_key = ops::explain::run(&backend, &stack.config, &key.to_lowercase()).await.unwrap();
    assert_eq!(by_key.pairs[0].pair, synced.pairs[0].pair);
    // By the delivery that created it: the same pair.
    let delivery = created.delivery.clone().expect("the creation names its delivery");
    let by_delivery = ops::explain::run(&backend, &stack.config, &delivery).await.unwrap();
    assert_eq!(by_delivery.pairs.len(), 1);
    assert_eq!(by_delivery.pairs[0].pair, synced.pairs[0].pair);

    // Filtered: not paired, and why.
    let x = ops::explain::run(&backend, &stack.config, &filtered.to_string()).await.unwrap();
    assert!(x.pairs.is_empty());
    assert_eq!(actions(&x), ["filtered"], "{}", ops::explain::render(&x));
    assert!(x.events[0].text.contains("not routed"), "{}", x.events[0].text);
    assert!(ops::explain::render(&x).contains(&format!("{filtered} is not paired")));

    // Conflicted: the conflict in words, after the creation, and the pair's open field.
    stack.edit_title_on_both_sides(todo, &key, "PM title", "Dev title").await.unwrap();
    let x = ops::explain::run(&backend, &stack.config, &todo.to_string()).await.unwrap();
    let at = |action: &str| x.events.iter().position(|e| e.action == action);
    assert!(at("created") < at("conflict"), "{}", ops::explain::render(&x));
    let conflict = &x.events[at("conflict").unwrap()];
    assert!(conflict.text.contains("\"PM title\"") && conflict.text.contains("left open"), "{}", conflict.text);
    assert_eq!(x.pairs[0].open_conflicts, ["title"]);
    let json = serde_json::to_string(&x).unwrap();
    assert!(x.events.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
    for secret in [bc::ACCESS_TOKEN, campbridge_simulators::jira::API_TOKEN] {
        assert!(!json.contains(secret) && !ops::explain::render(&x).contains(secret));
    }

    // Nothing known: said so.
    let none = ops::explain::run(&backend, &stack.config, "WEB-999").await.unwrap();
    assert!(ops::explain::render(&none).starts_with("Nothing about \"WEB-999\""));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_failed_attempts_and_the_dead_letter_of_an_item_that_never_synced() {
    use campbridge_simulators::common::faults::Faults;
    use shared::domain::{DeliveryId, Job, ProjectId, TodoId};
    use shared::ports::{JobProducer, QueueOperator};
    let stack = start("explain-dead", |_| {}).await;
    without_basecamp_webhooks(&stack).await;
    let config = private_store_config(&stack, "explain-dead");
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::ports::SystemClock);
    let store = campbridge::wiring::open_store(&config, clock).unwrap();
    let queue = store.clone().with_max_receives(2);
    let backend = Backend::sqlite(queue.clone(), "explain.db");
    let engine = backend.engine(&config, stack.secrets(), "ops-test").await.unwrap();
    let todo = create_todos(&stack, "Sprint 1", "Never syncs", 1).await[0];
    let job = Job::TodoChanged {
        delivery: DeliveryId::basecamp(990_002),
        route: stack.route.clone(),
        project: ProjectId(bc::PROJECT_ID),
        todo: TodoId(todo),
        event: "todo_created".into(),
        received_at: chrono::Utc::now(),
    };
    queue.send(&job.record().group_id(), "first", &job.to_wire().unwrap()).await.unwrap();
    stack.jira.set_faults(Faults { error_rate: 1.0, error_status: 400, ..Default::default() });
    for _ in 0..4 {
        shared::sync::run_queue_once(&engine, &queue, 10, std::time::Duration::ZERO).await.unwrap();
    }
    assert_eq!(queue.dead_letters().await.unwrap().len(), 1);

    for asked in [todo.to_string(), "basecamp:990002".to_owned()] {
        let x = ops::explain::run(&backend, &config, &asked).await.unwrap();
        let text = ops::explain::render(&x);
        assert_eq!(actions(&x), ["failed", "failed", "dead_letter"], "{text}");
        assert!(x.events[0].text.starts_with("failed: "), "{text}");
        assert!(x.events.iter().all(|e| e.delivery.as_deref() == Some("basecamp:990002")), "{text}");
        assert!(text.contains("campbridge replay basecamp:990002"), "{text}");
    }
    stack.stop().await.unwrap();
}
