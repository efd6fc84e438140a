//! `campbridge doctor`: the preflight checklist, one line per check with a fix. Failures carry the setup
//! codes of [`shared::doctor::SetupCode`]. Every base URL is checked by the outbound guard before any
//! request is made, and a provider whose base URL fails the safety checks is not contacted at all.
//!
//! A secret the config names but the secret store does not hold is reported as missing, with where to set
//! it; the checks that need it are skipped rather than reported as refused credentials. With a store to
//! read (a stack's table, or local mode's database once it exists), doctor also runs `status --check`'s
//! health rules: dead letters, open conflicts and silent receivers (webhooks are checked above).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use shared::clients::ClientError;
use shared::config::{BitbucketAuth, Config, StoreConfig};
use shared::doctor::{SetupCode, probe_redirect};
use shared::domain::StatusStrategy;
use shared::domain::TrackerTarget;
use shared::outbound::OutboundGuard;
use shared::ports::SecretStore;

use super::webhooks::{self, Action};
use super::{NO_PUBLIC_URL, OpsError, PublicUrls, bitbucket_client_with, mark, secret};

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub provider: &'static str,
    pub name: String,
    /// `Some(true)` passed, `Some(false)` failed, `None` skipped (with the reason in `detail`).
    pub ok: Option<bool>,
    pub code: Option<SetupCode>,
    pub detail: String,
    pub fix: Option<String>,
}

/// The whole checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// False when any check failed (the command then exits non-zero).
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok != Some(false))
    }
    /// The codes of the failed checks, in order.
    pub fn codes(&self) -> Vec<SetupCode> {
        self.checks.iter().filter_map(|c| c.code).collect()
    }
    fn pass(&mut self, provider: &'static str, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            provider,
            name: name.into(),
            ok: Some(true),
            code: None,
            detail: detail.into(),
            fix: None,
        });
    }
    fn skip(&mut self, provider: &'static str, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check { provider, name: name.into(), ok: None, code: None, detail: detail.into(), fix: None });
    }
    fn fail(
        &mut self,
        provider: &'static str,
        name: impl Into<String>,
        code: Option<SetupCode>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check {
            provider,
            name: name.into(),
            ok: Some(false),
            code,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    /// Records a client error on `name` with the code it maps to.
    fn client_error(&mut self, provider: &'static str, name: impl Into<String>, e: &ClientError, scope_fix: &str) {
        match e {
            ClientError::AuthRequired(m) => self.fail(
                provider,
                name,
                Some(SetupCode::AuthRequired),
                format!("credentials rejected: {m}"),
                auth_fix(provider),
            ),
            ClientError::Forbidden(m) => {
                self.fail(provider, name, Some(SetupCode::ScopeUnavailable), format!("forbidden: {m}"), scope_fix)
            }
            ClientError::Blocked(m) => {
                self.fail(provider, name, Some(SetupCode::BaseUrlBlocked), m.clone(), BLOCKED_FIX)
            }
            ClientError::IssuesRemoved => self.fail(
                provider,
                name,
                Some(SetupCode::ScopeUnavailable),
                e.to_string(),
                "route issues to Jira ([[routes]] jira_project)",
            ),
            other => {
                self.fail(provider, name, None, other.to_string(), "check the URL and that the service is reachable")
            }
        }
    }
}

fn auth_fix(provider: &str) -> &'static str {
    match provider {
        "basecamp" => {
            "the access token is expired or revoked: authorize campbridge again (Launchpad OAuth) and store the new \
             access and refresh tokens in the secret store"
        }
        "jira" => "create a new API token for the service account and store it under [jira] api_token's secret",
        _ => "create a new API or access token (with the pullrequest, repository and webhook scopes) and store it",
    }
}

/// Runs every check for the configured providers, behind the outbound guard `config` asks for. A known
/// receiver URL (`urls`, or `[server] public_url`) enables the webhook registration checks.
pub async fn run(config: &Config, secrets: Arc<dyn SecretStore>, urls: &PublicUrls) -> Report {
    run_with(config, secrets, urls, &OutboundGuard::for_config(config)).await
}

/// [`run`] behind `guard`: every connection it makes, checks and clients alike, goes through it.
///
/// Order: first every base URL's address check (no request yet), then one redirect probe per URL that
/// passed; only when every URL passed are webhooks checked, and a provider whose URL is blocked is not
/// contacted at all.
pub async fn run_with(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    urls: &PublicUrls,
    guard: &OutboundGuard,
) -> Report {
    let mut report = Report { checks: Vec::new() };
    let missing = secrets_set(config, secrets.as_ref(), &mut report).await;
    let mut providers: Vec<(&'static str, Vec<&url::Url>)> = Vec::new();
    if let Some(bc) = &config.basecamp {
        providers.push(("basecamp", vec![bc.base_url.url(), bc.launchpad_url.url()]));
    }
    if let Some(jira) = &config.jira {
        let mut list = vec![jira.base_url.url()];
        if let Some(site) = &jira.site
            && site.url() != jira.base_url.url()
        {
            list.push(site.url());
        }
        providers.push(("jira", list));
    }
    if let Some(bb) = &config.bitbucket {
        providers.push(("bitbucket", vec![bb.base_url.url()]));
    }
    let mut addressed = Vec::new();
    for (provider, list) in &providers {
        if addresses_safe(&mut report, provider, list, guard).await {
            addressed.push(*provider);
        }
    }
    let mut safe = Vec::new();
    for (provider, list) in &providers {
        if addressed.contains(provider) && redirects_safe(&mut report, provider, list, guard).await {
            safe.push(*provider);
        }
    }
    let all_safe = safe.len() == providers.len();
    let unknown = urls.unknown(config);
    let hooks = if unknown || !all_safe {
        None
    } else {
        match webhooks::run_with(config, secrets.clone(), urls, Action::Check, guard).await {
            Ok(hooks) => Some(hooks),
            Err(e @ OpsError::SecretMissing(_)) => {
                report.skip("webhooks", "registrations", format!("not checked: {e}"));
                None
            }
            Err(e) => {
                report.fail("webhooks", "registrations", None, e.to_string(), "fix the cause, then re-run");
                None
            }
        }
    };
    if safe.contains(&"basecamp") {
        basecamp(config, secrets.clone(), guard, hooks.as_ref(), &missing, &mut report).await;
    }
    if safe.contains(&"jira") {
        jira(config, secrets.as_ref(), guard, &mut report).await;
    }
    if safe.contains(&"bitbucket") {
        bitbucket(config, secrets.as_ref(), guard, hooks.as_ref(), &mut report).await;
    }
    if unknown {
        report.skip("webhooks", "registrations", format!("{NO_PUBLIC_URL}, to check the registrations"));
    } else if !all_safe {
        report.skip("webhooks", "registrations", "not checked: a base URL failed the safety checks");
    }
    store(config, &mut report).await;
    report
}

/// Where to set secret `name` (the Basecamp tokens: `campbridge auth basecamp`), for a fix line.
fn missing_fix(config: &Config, name: &str) -> String {
    let place = match config.store {
        StoreConfig::Sqlite { .. } => format!("set {}", shared::adapters::env_secrets::var_name(name)),
        StoreConfig::DynamoDb { .. } => format!("put a value in Secrets Manager secret <stack>/{name}"),
    };
    let basecamp_token = config.basecamp.as_ref().is_some_and(|bc| {
        bc.access_token.name() == name || bc.refresh.as_ref().is_some_and(|r| r.refresh_token.name() == name)
    });
    if basecamp_token {
        format!("run `campbridge auth basecamp` (signs in and stores both Basecamp tokens), or {place}")
    } else {
        place
    }
}

/// Whether every secret the config names is in the store: one passed line, or a failed line per secret
/// that is not set (or cannot be read). Returns the names that are not available.
async fn secrets_set(config: &Config, secrets: &dyn SecretStore, report: &mut Report) -> BTreeSet<String> {
    const P: &str = "secrets";
    let named = config.secrets();
    let mut missing = BTreeSet::new();
    for (what, secret_ref) in &named {
        let name = secret_ref.name();
        match secrets.get(name).await {
            Ok(_) => {}
            Err(shared::ports::SecretError::Missing(_)) => {
                missing.insert(name.to_owned());
                report.fail(
                    P,
                    format!("{what} ({name})"),
                    None,
                    format!("SECRET_MISSING: secret {name:?} is not set"),
                    missing_fix(config, name),
                );
            }
            Err(e) => {
                missing.insert(name.to_owned());
                report.fail(
                    P,
                    format!("{what} ({name})"),
                    None,
                    format!("cannot read secret {name:?}: {e}"),
                    "check the secret store's permissions (docs/operations.md lists them)",
                );
            }
        }
    }
    if missing.is_empty() && !named.is_empty() {
        report.pass(P, "all set", format!("the {} secret(s) the config names are set", named.len()));
    }
    missing
}

const BLOCKED_FIX: &str = "use the provider's public https API URL; campbridge does not call private, loopback, \
                           link-local or reserved addresses, plain http, or URLs that redirect elsewhere";

/// The guard's checks of each URL, without sending anything; false (and a failed line) when one is blocked.
async fn addresses_safe(
    report: &mut Report,
    provider: &'static str,
    urls: &[&url::Url],
    guard: &OutboundGuard,
) -> bool {
    let mut safe = true;
    let mut seen: Vec<&url::Url> = Vec::new();
    for url in urls {
        if seen.contains(url) {
            continue;
        }
        seen.push(url);
        if let Err(why) = guard.check(url).await {
            safe = false;
            report.fail(provider, "base URL", Some(SetupCode::BaseUrlBlocked), why.to_string(), BLOCKED_FIX);
        }
    }
    safe
}

/// One redirect probe per URL whose addresses passed; a passed line per URL, or a failed one.
async fn redirects_safe(
    report: &mut Report,
    provider: &'static str,
    urls: &[&url::Url],
    guard: &OutboundGuard,
) -> bool {
    let mut safe = true;
    let mut seen: Vec<&url::Url> = Vec::new();
    for url in urls {
        if seen.contains(url) {
            continue;
        }
        seen.push(url);
        match probe_redirect(guard, url).await {
            Ok(()) => report.pass(
                provider,
                "base URL",
                format!("{url} passes the safety checks (https or allowed loopback, public address, no redirect away)"),
            ),
            Err(why) => {
                safe = false;
                report.fail(provider, "base URL", Some(SetupCode::BaseUrlBlocked), why, BLOCKED_FIX);
            }
        }
    }
    safe
}

fn hook_lines(report: &mut Report, hooks: Option<&webhooks::HooksReport>, provider: &'static str) {
    for h in hooks.iter().flat_map(|r| r.hooks.iter()).filter(|h| h.provider == provider) {
        let name = format!("webhook {}", h.target);
        match h.healthy {
            Some(true) => report.pass(provider, name, h.state.clone()),
            Some(false) => report.fail(provider, name, h.code, h.state.clone(), h.fix.clone().unwrap_or_default()),
            None => report.skip(provider, name, h.state.clone()),
        }
    }
}

async fn basecamp(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    guard: &OutboundGuard,
    hooks: Option<&webhooks::HooksReport>,
    missing: &BTreeSet<String>,
    report: &mut Report,
) {
    const P: &str = "basecamp";
    let Some(bc) = &config.basecamp else { return };
    if let Some(name) = [Some(&bc.access_token), bc.refresh.as_ref().map(|r| &r.client_secret)]
        .into_iter()
        .flatten()
        .map(|r| r.name())
        .find(|n| missing.contains(*n))
    {
        return report.skip(P, "credentials", format!("not checked: secret {name:?} is not set (see above)"));
    }
    let token = match secret(secrets.as_ref(), bc.access_token.name()).await {
        Ok(t) => t,
        Err(e) => return report.fail(P, "credentials", Some(SetupCode::AuthRequired), e.to_string(), auth_fix(P)),
    };
    let http = match guard.client_builder().timeout(Duration::from_secs(15)).user_agent(bc.user_agent.clone()).build() {
        Ok(c) => c,
        Err(e) => return report.fail(P, "credentials", None, e.to_string(), "retry"),
    };
    let authorization = |token: SecretString| {
        let request = http.get(bc.launchpad_url.join("/authorization.json")).bearer_auth(token.expose_secret());
        async move { request.send().await }
    };
    let mut renewed = None;
    let mut reply = authorization(token.clone()).await;
    if reply.as_ref().is_ok_and(|r| r.status().as_u16() == 401) {
        // An access token lasts two weeks; with the refresh keys the client renews it by itself, as the
        // runtime would, and writes the new one back. Only a refresh that fails needs a person.
        match renew(config, secrets.clone(), guard, &token).await {
            Ok(Some(fresh)) => {
                renewed = Some(format!(
                    "renewed: the stored access token had expired, so it was refreshed and the new one written back \
                     to secret {:?}",
                    bc.access_token.name()
                ));
                reply = authorization(fresh).await;
            }
            Ok(None) => {}
            Err(why) => {
                return report.fail(
                    P,
                    "credentials",
                    Some(SetupCode::AuthRequired),
                    format!("the access token expired and renewing it failed: {why}"),
                    auth_fix(P),
                );
            }
        }
    }
    match reply {
        Ok(r) if r.status().as_u16() == 401 => {
            let why = if bc.refresh.is_some() {
                "Launchpad refused the access token (401: expired or revoked)"
            } else {
                "Launchpad refused the access token (401: expired or revoked), and campbridge cannot renew it: \
                 [basecamp] has no client_id, client_secret and refresh_token"
            };
            return report.fail(P, "credentials", Some(SetupCode::AuthRequired), why, auth_fix(P));
        }
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let accounts = body["accounts"].as_array().cloned().unwrap_or_default();
            let account = accounts.iter().find(|a| a["id"].as_i64() == Some(bc.account_id.0));
            match account {
                Some(a) if a["product"].as_str().is_some_and(|p| p.starts_with("bc")) => report.pass(
                    P,
                    "credentials",
                    format!(
                        "token works{}; account {} ({}, {})",
                        renewed.map(|r| format!(" ({r})")).unwrap_or_default(),
                        bc.account_id,
                        a["name"].as_str().unwrap_or("?"),
                        a["product"].as_str().unwrap_or("?")
                    ),
                ),
                Some(a) => report.fail(
                    P,
                    "credentials",
                    Some(SetupCode::ScopeUnavailable),
                    format!("account {} is a {} account, not Basecamp 3/4", bc.account_id, a["product"]),
                    "set [basecamp] account_id to a Basecamp (bc3/bc4) account",
                ),
                None => report.fail(
                    P,
                    "credentials",
                    Some(SetupCode::ScopeUnavailable),
                    format!("the token's person cannot reach account {}", bc.account_id),
                    "authorize with a person who belongs to the account, or fix [basecamp] account_id",
                ),
            }
        }
        Ok(r) => {
            return report.fail(P, "credentials", None, format!("Launchpad answered {}", r.status()), "retry later");
        }
        Err(e) => {
            return report.fail(
                P,
                "credentials",
                None,
                format!("Launchpad unreachable: {}", e.without_url()),
                "check the network",
            );
        }
    }
    let client = match super::basecamp_client_with(config, secrets, guard).await {
        Ok(c) => c,
        Err(e) => return report.fail(P, "client", None, e.to_string(), "fix the [basecamp] section"),
    };
    for route in &config.routes {
        let name = format!("project {} (route {})", route.project, route.id);
        match client.project(route.project).await {
            Ok(Some(p)) => report.pass(P, name, format!("reachable: {:?}", p.name)),
            Ok(None) => report.fail(
                P,
                name,
                Some(SetupCode::ScopeUnavailable),
                "not found, or the token's person is not on the project (Basecamp answers 404 for both)",
                "add the campbridge person to the project, or fix the route's basecamp_project",
            ),
            Err(e) => report.client_error(P, name, &e, "add the campbridge person to the project"),
        }
    }
    hook_lines(report, hooks, P);
}

/// A deployed stack's table and queues, as the operator commands open them, and the health rules over
/// them. Local mode's SQLite file is created on first use: before that there is nothing to check.
async fn store(config: &Config, report: &mut Report) {
    const P: &str = "store";
    let (table, queue_url) = match &config.store {
        StoreConfig::DynamoDb { table, queue_url } => (table, queue_url),
        StoreConfig::Sqlite { path } if !path.exists() => {
            return report.skip("health", "store", format!("{} does not exist yet: nothing synced", path.display()));
        }
        StoreConfig::Sqlite { path } => {
            match super::Backend::open(config).await {
                Ok(backend) => health(config, &backend, report).await,
                Err(e) => {
                    report.fail(P, format!("SQLite {}", path.display()), None, format!("{e:#}"), "check the file")
                }
            }
            return;
        }
    };
    const FIX: &str = "check [store] table and queue_url against the stack's resources, and that your AWS \
                       credentials, region and permissions reach them (docs/operations.md lists the actions)";
    let backend = match super::Backend::open(config).await {
        Ok(b) => b,
        Err(e) => return report.fail(P, format!("SQS queue {queue_url}"), None, format!("{e:#}"), FIX),
    };
    match backend.stores.pairs.list(None, None, 1).await {
        Ok(_) => report.pass(P, format!("DynamoDB table {table}"), "reachable"),
        Err(e) => report.fail(P, format!("DynamoDB table {table}"), None, format!("{e:#}"), FIX),
    }
    match backend.queue.depth().await {
        Ok(n) => report.pass(P, format!("SQS queue {queue_url}"), format!("reachable; about {n} message(s) queued")),
        Err(e) => report.fail(P, format!("SQS queue {queue_url}"), None, format!("{e:#}"), FIX),
    }
    match &backend.dead_letter_queue {
        Some(dlq) => report.pass(P, "dead-letter queue", format!("{dlq} (from the queue's redrive policy)")),
        None => report.fail(
            P,
            "dead-letter queue",
            None,
            "the job queue has no redrive policy: a job that keeps failing is retried until SQS drops it, and \
             `dead-letters` / `replay` have nothing to work with",
            "give the queue a redrive policy to a FIFO dead-letter queue (infra/template.yaml does, maxReceiveCount 5)",
        ),
    }
    health(config, &backend, report).await;
}

/// `status --check`'s rules (dead letters, open conflicts, silent receivers) as checklist lines; the
/// webhooks were checked with the providers.
async fn health(config: &Config, backend: &super::Backend, report: &mut Report) {
    const P: &str = "health";
    match super::status::run(backend, config, None, &PublicUrls::default()).await {
        Ok(status) if status.problems.is_empty() => {
            report.pass(P, "sync", "no dead letters, no open conflicts, no receiver silent past [server] max_silence")
        }
        Ok(status) => {
            for p in status.problems {
                report.fail(P, p.what, None, p.detail, p.fix);
            }
        }
        Err(e) => report.fail(P, "sync", None, format!("cannot read the store: {e}"), "check the store"),
    }
}

/// Renews an expired Basecamp access token the way the runtime does: the client answers a 401 with one
/// refresh and writes the new tokens back through `secrets`. `Ok(None)` without `[basecamp]` refresh keys;
/// `Err` (a reason, never a token) when the refresh is refused or the renewed token is not stored.
async fn renew(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    guard: &OutboundGuard,
    expired: &SecretString,
) -> Result<Option<SecretString>, String> {
    let Some(bc) = &config.basecamp else { return Ok(None) };
    if bc.refresh.is_none() {
        return Ok(None);
    }
    let client = super::basecamp_client_with(config, secrets.clone(), guard).await.map_err(|e| e.to_string())?;
    client.my_profile().await.map_err(|e| e.to_string())?;
    let fresh = secret(secrets.as_ref(), bc.access_token.name()).await.map_err(|e| e.to_string())?;
    if fresh.expose_secret() == expired.expose_secret() {
        // The API took the token Launchpad refused: nothing was renewed.
        return Err("Launchpad refused the access token but the API did not ask for a new one".to_owned());
    }
    Ok(Some(fresh))
}

async fn jira(config: &Config, secrets: &dyn SecretStore, guard: &OutboundGuard, report: &mut Report) {
    const P: &str = "jira";
    let Some(jira) = &config.jira else { return };
    let client = match super::jira_client_with(config, secrets, guard).await {
        Ok(c) => c,
        Err(OpsError::SecretMissing(name)) => {
            return report.skip(P, "credentials", format!("not checked: secret {name:?} is not set (see above)"));
        }
        Err(e) => return report.fail(P, "client", None, e.to_string(), "fix the [jira] section"),
    };
    match client.myself().await {
        Ok(me) => {
            report.pass(P, "credentials", format!("token works; acting as {}", me.display_name.unwrap_or_default()))
        }
        Err(e) => return report.client_error(P, "credentials", &e, "grant the account access to Jira"),
    }
    let Ok(token) = secret(secrets, jira.api_token.name()).await else { return };
    let http = guard.client_builder().timeout(Duration::from_secs(15)).build();
    for route in &config.routes {
        let TrackerTarget::Jira { project, .. } = &route.target;
        let name = format!("project {project} (route {})", route.id);
        let reply = match &http {
            Ok(h) => h
                .get(jira.base_url.join(&format!("rest/api/3/project/{project}")))
                .basic_auth(&jira.email, Some(token.expose_secret()))
                .send()
                .await
                .map(|r| r.status().as_u16()),
            Err(_) => Ok(0),
        };
        match reply {
            Ok(200) => report.pass(P, name.clone(), "exists and is visible"),
            Ok(401) => report.fail(P, name.clone(), Some(SetupCode::AuthRequired), "401", auth_fix(P)),
            Ok(403 | 404) => {
                report.fail(
                    P,
                    name.clone(),
                    Some(SetupCode::ScopeUnavailable),
                    "not found, or the account lacks Browse projects on it",
                    "grant the service account Browse projects, Create issues, Edit issues, Transition issues and \
                     Assign issues on the project, or fix the route's jira_project",
                );
                continue;
            }
            Ok(s) => report.fail(P, name.clone(), None, format!("answered {s}"), "retry later"),
            Err(e) => {
                report.fail(P, name.clone(), None, format!("unreachable: {}", e.without_url()), "check the network")
            }
        }
        create_screen(&client, route, report).await;
        transitions(&client, route.status, &project.to_string(), &route.id.to_string(), report).await;
    }
    report.skip(
        P,
        "admin webhook",
        "cannot be read with an API token: `campbridge webhooks check` prints the admin steps to verify it",
    );
}

/// Fields campbridge sets on every create, and those it sets when the to-do has a value for them.
const ALWAYS_SET: &[&str] = &["project", "issuetype", "summary", "labels", "priority"];
const SOMETIMES_SET: &[&str] = &["description", "assignee", "duedate", "components"];
/// Fields a create can do without: when the create screen lacks one, the sync creates the issue without
/// it and sets it by an edit (shared::sync::engine, `drop_from_draft`).
const SET_BY_EDIT_WHEN_OFF_SCREEN: &[&str] = &["duedate", "priority", "components"];

/// The route's create screen (`createmeta`): required fields campbridge would not set (unless the route's
/// `create_fields` gives them), and fields campbridge sets that the screen lacks; either makes every
/// create fail, so both are `PROVIDER_SCOPE_UNAVAILABLE` with the field names. A due date, priority or
/// components off the screen is only noted: the sync sets them by an edit after the create.
async fn create_screen(client: &shared::clients::jira::JiraClient, route: &shared::domain::Route, report: &mut Report) {
    const P: &str = "jira";
    let TrackerTarget::Jira { project, issue_type } = &route.target;
    let name = format!("create screen for {issue_type} in {project} (route {})", route.id);
    let types = match client.create_meta_issue_types(project.as_str()).await {
        Ok(t) => t,
        Err(e) => return report.client_error(P, name, &e, "grant Create issues on the project"),
    };
    let Some(found) = types.iter().find(|t| t.name.eq_ignore_ascii_case(issue_type)) else {
        let known: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        return report.fail(
            P,
            name,
            Some(SetupCode::ScopeUnavailable),
            format!("issue type {issue_type:?} cannot be created in {project} (it offers {})", known.join(", ")),
            "set the route's issue_type to one the project offers, or grant Create issues",
        );
    };
    let fields = match client.create_meta_fields(project.as_str(), &found.id).await {
        Ok(f) => f,
        Err(e) => return report.client_error(P, name, &e, "grant Create issues on the project"),
    };
    let given = |id: &str| ALWAYS_SET.contains(&id) || route.create_fields.contains_key(id);
    let unset: Vec<String> = fields
        .iter()
        .filter(|f| f.required && !f.has_default_value && !given(&f.field_id))
        .map(|f| format!("{} ({})", f.name, f.field_id))
        .collect();
    let on_screen = |id: &str| fields.iter().any(|f| f.field_id == id);
    let (deferred, missing): (Vec<String>, Vec<String>) = ALWAYS_SET
        .iter()
        .chain(SOMETIMES_SET)
        .map(|s| (*s).to_owned())
        .chain(route.create_fields.keys().cloned())
        .filter(|id| !on_screen(id))
        .partition(|id| SET_BY_EDIT_WHEN_OFF_SCREEN.contains(&id.as_str()));
    let mut problems = Vec::new();
    if !unset.is_empty() {
        problems.push(format!("required fields campbridge does not set: {}", unset.join(", ")));
    }
    if !missing.is_empty() {
        problems.push(format!("fields campbridge sets that the create screen lacks: {}", missing.join(", ")));
    }
    let later = if deferred.is_empty() {
        String::new()
    } else {
        format!(
            "; not on the create screen, so set by an edit after each create (one more request; audited as \
             field_deferred, and left out if the edit screen lacks them too): {}",
            deferred.join(", ")
        )
    };
    if problems.is_empty() {
        report.pass(
            P,
            name,
            format!("every required field is set, and every field campbridge sets is on the screen{later}"),
        );
    } else {
        problems.push(later.trim_start_matches("; ").to_owned());
        problems.retain(|p| !p.is_empty());
        report.fail(
            P,
            name,
            Some(SetupCode::ScopeUnavailable),
            problems.join("; "),
            "give required fields a value in the route's [routes.create_fields] (docs/configuration.md), and add \
             the missing fields to the project's create screen",
        );
    }
}

async fn transitions(
    client: &shared::clients::jira::JiraClient,
    strategy: StatusStrategy,
    project: &str,
    route: &str,
    report: &mut Report,
) {
    const P: &str = "jira";
    let name = format!("transitions for {strategy} (route {route})");
    if strategy == StatusStrategy::DevOwned {
        return report.skip(P, name, "dev-owned: campbridge never moves Jira issues, so no transition is needed");
    }
    let jql = format!("project = {}", shared::clients::jira::jql_string(project));
    let page = match client.search_page(&jql, &["status"], 1, None).await {
        Ok(p) => p,
        Err(e) => return report.client_error(P, name, &e, "grant Browse projects on the project"),
    };
    let Some(issue) = page.issues.first() else {
        return report.skip(
            P,
            name,
            format!("no issue in {project} yet to read the workflow from; re-run after the first sync"),
        );
    };
    let current = issue.fields.status.as_ref().and_then(|s| s.status_category.as_ref()).map(|c| c.key.clone());
    let available = match client.transitions(&issue.key).await {
        Ok(t) => t,
        Err(e) => return report.client_error(P, name, &e, "grant Transition issues on the project"),
    };
    let mut reach: Vec<String> =
        available.iter().filter_map(|t| t.to.as_ref()?.status_category.as_ref().map(|c| c.key.clone())).collect();
    reach.extend(current);
    let missing: Vec<&str> = ["done", "new"].into_iter().filter(|c| !reach.iter().any(|r| r == c)).collect();
    if missing.is_empty() {
        report.pass(P, name, format!("from {} the workflow reaches the done and new categories", issue.key));
    } else {
        report.fail(
            P,
            name,
            Some(SetupCode::ScopeUnavailable),
            format!("from {} no available transition reaches category {}", issue.key, missing.join(", ")),
            "grant Transition issues, or add workflow transitions to a Done and a To Do status",
        );
    }
}

async fn bitbucket(
    config: &Config,
    secrets: &dyn SecretStore,
    guard: &OutboundGuard,
    hooks: Option<&webhooks::HooksReport>,
    report: &mut Report,
) {
    const P: &str = "bitbucket";
    let Some(bb) = &config.bitbucket else { return };
    let client = match bitbucket_client_with(config, secrets, guard).await {
        Ok(c) => c,
        Err(OpsError::SecretMissing(name)) => {
            return report.skip(P, "credentials", format!("not checked: secret {name:?} is not set (see above)"));
        }
        Err(e) => return report.fail(P, "client", None, e.to_string(), "fix the [bitbucket] section"),
    };
    match &bb.auth {
        // An access token is no user (`/2.0/user` refuses it): a call on a repository it is for proves it.
        BitbucketAuth::AccessToken(_) => {
            let Some(repo) = bb.repos.first() else {
                return report.skip(
                    P,
                    "credentials",
                    "an access token is checked with a repository call, and [bitbucket] repos lists none",
                );
            };
            match client.repository(repo).await {
                Ok(Some(_)) => report.pass(P, "credentials", format!("access token works on {repo}")),
                Ok(None) => {
                    return report.fail(
                        P,
                        "credentials",
                        Some(SetupCode::ScopeUnavailable),
                        format!("the access token cannot see {repo}"),
                        "create the access token on that repository (or its project or workspace) with the \
                         repository, pullrequest and webhook scopes",
                    );
                }
                Err(e) => {
                    return report.client_error(P, "credentials", &e, "give the access token the repository scope");
                }
            }
        }
        BitbucketAuth::ApiToken { .. } => match client.user().await {
            Ok(me) => {
                report.pass(P, "credentials", format!("token works; acting as {}", me.display_name.unwrap_or_default()))
            }
            Err(e) => return report.client_error(P, "credentials", &e, "add the account scope to the token"),
        },
    }
    for repo in &bb.repos {
        let name = format!("repository {repo}");
        match client.repository(repo).await {
            Ok(Some(r)) if r.has_issues == Some(true) => report.fail(
                P,
                name,
                Some(SetupCode::ScopeUnavailable),
                "the repository has its issue tracker enabled, but Bitbucket Cloud removed issues on 2026-08-20: \
                 campbridge cannot create or read Bitbucket issues",
                "route issues to Jira ([[routes]] jira_project); Bitbucket stays the source of pull requests and builds",
            ),
            Ok(Some(_)) => report.pass(P, name, "reachable (pull requests and builds; issues go to Jira)"),
            Ok(None) => report.fail(
                P,
                name,
                Some(SetupCode::ScopeUnavailable),
                "not found, or the token cannot read it",
                "give the token the repository:read scope on the repository, or fix [bitbucket] repos",
            ),
            Err(e) => report.client_error(P, name, &e, "give the token the repository:read and webhook scopes"),
        }
    }
    hook_lines(report, hooks, P);
}

/// The checklist as people read it.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let code = c.code.map(|c| format!("{c}: ")).unwrap_or_default();
        out.push_str(&format!("{} {:<9} {}: {code}{}\n", mark(c.ok), c.provider, c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    let failed = report.checks.iter().filter(|c| c.ok == Some(false)).count();
    if failed == 0 {
        out.push_str("All checks passed.\n");
    } else {
        out.push_str(&format!("{failed} check(s) failed. Fix permissions and credentials first, then re-run.\n"));
    }
    out
}
