//! `campbridge webhooks register|list|check|remove`: the webhook registrations campbridge needs upstream.
//!
//! Basecamp: one webhook per routed project, with explicit `types` and the route's secret URL.
//! Bitbucket: one hook per repository, signed with the webhook secret, for the events campbridge reads.
//! Jira: admin webhooks with a secret cannot be registered with an API token, so campbridge prints the
//! exact admin steps instead. Registrations are matched by URL, so `register` is idempotent: a second
//! run finds every hook in place and changes nothing (an inactive Basecamp hook is re-enabled).
//!
//! Our own hooks at an **old URL** (the public URL changed: a new tunnel, a redeployed stack) are found
//! too — a Basecamp hook whose URL ends in the route's secret `/basecamp/<token>`, a Bitbucket hook named
//! `campbridge` whose URL ends in `/bitbucket` — and reported unhealthy: their deliveries are lost, or reach
//! whoever holds that address now. `register --prune` deletes them.

use std::sync::Arc;

use serde::Serialize;
use shared::clients::ClientError;
use shared::clients::basecamp::SYNC_WEBHOOK_TYPES;
use shared::clients::bitbucket::WebhookSpec;
use shared::config::Config;
use shared::doctor::SetupCode;
use shared::outbound::OutboundGuard;
use shared::ports::SecretStore;

use super::{NO_PUBLIC_URL, OpsError, PublicUrls, bitbucket_client_with, mark, receivers, secret};

/// The Bitbucket events campbridge reads (pull requests, builds, pushes).
pub const BITBUCKET_EVENTS: &[&str] = &[
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "repo:commit_status_created",
    "repo:commit_status_updated",
];

/// The description campbridge gives the Bitbucket hooks it registers.
const BITBUCKET_DESCRIPTION: &str = "campbridge";

/// One expected registration.
#[derive(Debug, Clone, Serialize)]
pub struct Hook {
    /// `basecamp`, `bitbucket` or `jira`.
    pub provider: &'static str,
    /// The project, repository or site it belongs to.
    pub target: String,
    pub url: String,
    /// Upstream id, when registered.
    pub id: Option<String>,
    /// `Some(true)` registered and active, `Some(false)` missing/inactive/wrong, `None` not checkable.
    pub healthy: Option<bool>,
    /// What was done or found, in a sentence.
    pub state: String,
    /// How to fix it, when unhealthy or not checkable.
    pub fix: Option<String>,
    /// The setup code, when credentials or permissions are the cause.
    pub code: Option<SetupCode>,
}

/// What a `webhooks` subcommand found or did.
#[derive(Debug, Clone, Serialize)]
pub struct HooksReport {
    /// The receivers' URLs: the one base, or each receiver's.
    pub base_url: String,
    pub hooks: Vec<Hook>,
    /// Requests that changed something upstream (0 on a repeated `register`).
    pub changes: usize,
}

impl HooksReport {
    /// True when every checkable hook is healthy.
    pub fn healthy(&self) -> bool {
        self.hooks.iter().all(|h| h.healthy != Some(false))
    }
}

/// What to do with the registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read only: report each expected hook's state.
    Check,
    /// Create missing hooks and re-enable inactive ones.
    Register,
    /// `Register`, and delete our own hooks that point at an old URL.
    RegisterAndPrune,
    /// Delete the hooks campbridge registered (matched by URL).
    Remove,
}

/// The receiver base for `provider`, or a usage error naming the flag.
fn base_for(url: Option<String>, flag: &str) -> Result<String, OpsError> {
    url.ok_or_else(|| OpsError::Usage(format!("{NO_PUBLIC_URL} (missing: {flag})")))
}

fn client_code(e: &ClientError) -> Option<SetupCode> {
    match e {
        ClientError::AuthRequired(_) => Some(SetupCode::AuthRequired),
        ClientError::Forbidden(_) => Some(SetupCode::ScopeUnavailable),
        _ => None,
    }
}

fn client_fix(e: &ClientError, what: &str) -> String {
    match e {
        ClientError::AuthRequired(_) => {
            format!("{what}: credentials rejected (PROVIDER_AUTH_REQUIRED); run `campbridge doctor`")
        }
        ClientError::Forbidden(_) => format!(
            "{what}: permission missing (PROVIDER_SCOPE_UNAVAILABLE); Basecamp needs a project admin, Bitbucket the webhook scope and admin on the repository"
        ),
        other => format!("{what}: {other}"),
    }
}

/// Runs `action` over every expected registration. Errors of one provider are reported on its hooks
/// and do not stop the others.
pub async fn run(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    urls: &PublicUrls,
    action: Action,
) -> Result<HooksReport, OpsError> {
    run_with(config, secrets, urls, action, &OutboundGuard::for_config(config)).await
}

/// [`run`] with the clients behind `guard`.
pub async fn run_with(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    urls: &PublicUrls,
    action: Action,
    guard: &OutboundGuard,
) -> Result<HooksReport, OpsError> {
    if urls.unknown(config) {
        return Err(OpsError::Usage(NO_PUBLIC_URL.to_owned()));
    }
    let mut report = HooksReport { base_url: urls.describe(config), hooks: Vec::new(), changes: 0 };
    if config.basecamp.is_some() {
        let base = base_for(urls.basecamp(config), "--basecamp-url")?;
        basecamp(config, secrets.clone(), &base, action, guard, &mut report).await?;
    }
    if config.bitbucket.is_some() {
        let base = base_for(urls.bitbucket(config), "--bitbucket-url")?;
        bitbucket(config, secrets.as_ref(), &base, action, guard, &mut report).await?;
    }
    if let Some(jira) = &config.jira {
        let base = base_for(urls.jira(config), "--jira-url")?;
        let site = jira.site.as_ref().unwrap_or(&jira.base_url).as_str().to_owned();
        report.hooks.push(Hook {
            provider: "jira",
            target: site.clone(),
            url: format!("{base}/jira"),
            id: None,
            healthy: None,
            state: "admin webhooks with a secret cannot be registered or read with an API token".to_owned(),
            fix: Some(jira_steps(&site, &base, jira.webhook_secret.name(), config)),
            code: None,
        });
    }
    Ok(report)
}

/// The Jira admin steps, naming where the secret comes from (never its value).
pub fn jira_steps(site: &str, base: &str, secret_name: &str, config: &Config) -> String {
    let projects: Vec<String> = config
        .routes
        .iter()
        .map(|r| {
            let shared::domain::TrackerTarget::Jira { project, .. } = &r.target;
            project.to_string()
        })
        .collect();
    format!(
        "as a Jira admin: {site}/plugins/servlet/webhooks › Create a WebHook › URL {base}/jira › Secret: the value of \
         secret {secret_name:?} (locally CAMPBRIDGE_SECRET_{var}; for a deployed stack the Secrets Manager \
         secret <stack>/{secret_name}) › Events: Issue created, updated, deleted; Comment \
         created, updated › JQL: project in ({projects}) › Save",
        var = shared::adapters::env_secrets::var_name(secret_name).trim_start_matches("CAMPBRIDGE_SECRET_"),
        projects = projects.join(", "),
    )
}

async fn basecamp(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    base: &str,
    action: Action,
    guard: &OutboundGuard,
    report: &mut HooksReport,
) -> Result<(), OpsError> {
    let client = super::basecamp_client_with(config, secrets.clone(), guard).await?;
    let receivers = receivers(config, secrets.as_ref()).await?;
    let types: Vec<String> = SYNC_WEBHOOK_TYPES.iter().map(|t| (*t).to_owned()).collect();
    for route in &config.routes {
        let url = format!("{base}/basecamp/{}", receivers.route_token(&route.id));
        let target = format!("project {} (route {})", route.project, route.id);
        let mut hook = Hook {
            provider: "basecamp",
            target,
            url: url.clone(),
            id: None,
            healthy: None,
            state: String::new(),
            fix: None,
            code: None,
        };
        let suffix = format!("/basecamp/{}", receivers.route_token(&route.id));
        let (existing, stale) = match client.webhooks(route.project).await {
            Ok(list) => {
                let (ours, other): (Vec<_>, Vec<_>) = list.into_iter().partition(|h| h.payload_url == url);
                let stale: Vec<_> = other.into_iter().filter(|h| h.payload_url.ends_with(&suffix)).collect();
                (ours.into_iter().next(), stale)
            }
            Err(e) => {
                hook.healthy = Some(false);
                hook.state = "could not list the project's webhooks".to_owned();
                hook.fix = Some(client_fix(&e, "Basecamp"));
                hook.code = client_code(&e);
                report.hooks.push(hook);
                continue;
            }
        };
        for old in stale {
            let target = format!("project {} (route {}): old URL", route.project, route.id);
            let mut hook = stale_hook("basecamp", target, old.payload_url.clone(), old.id.to_string());
            if action == Action::RegisterAndPrune {
                match client.delete_webhook(old.id).await {
                    Ok(()) => {
                        report.changes += 1;
                        hook.healthy = Some(true);
                        hook.state = "removed: it pointed at an old URL".to_owned();
                        hook.fix = None;
                    }
                    Err(e) => {
                        hook.fix = Some(client_fix(&e, "Basecamp"));
                        hook.code = client_code(&e);
                    }
                }
            }
            report.hooks.push(hook);
        }
        let types_ok = |t: &[String]| types.iter().all(|want| t.contains(want));
        let result: Result<(), ClientError> = async {
            match (action, existing) {
                (Action::Remove, Some(h)) => {
                    client.delete_webhook(h.id).await?;
                    report.changes += 1;
                    hook.id = Some(h.id.to_string());
                    hook.state = "removed".to_owned();
                }
                (Action::Remove, None) => hook.state = "not registered; nothing to remove".to_owned(),
                (Action::Register | Action::RegisterAndPrune, None) => {
                    let h = client.create_webhook(route.project, &url, SYNC_WEBHOOK_TYPES).await?;
                    report.changes += 1;
                    hook.id = Some(h.id.to_string());
                    hook.healthy = Some(true);
                    hook.state = format!("registered (types {})", SYNC_WEBHOOK_TYPES.join(", "));
                }
                (Action::Register | Action::RegisterAndPrune, Some(h)) if !h.active || !types_ok(&h.types) => {
                    client.update_webhook(h.id, &url, SYNC_WEBHOOK_TYPES, true).await?;
                    report.changes += 1;
                    hook.id = Some(h.id.to_string());
                    hook.healthy = Some(true);
                    hook.state =
                        if h.active { "types updated".to_owned() } else { "re-enabled (was inactive)".to_owned() };
                }
                (_, Some(h)) => {
                    hook.id = Some(h.id.to_string());
                    let ok = h.active && types_ok(&h.types);
                    hook.healthy = Some(ok);
                    hook.state = if ok {
                        "registered and active".to_owned()
                    } else if !h.active {
                        "registered but inactive (Basecamp deactivates a hook after 10 failed deliveries)".to_owned()
                    } else {
                        format!(
                            "registered with types [{}], missing some of {}",
                            h.types.join(", "),
                            SYNC_WEBHOOK_TYPES.join(", ")
                        )
                    };
                    if !ok {
                        hook.fix =
                            Some("run `campbridge webhooks register` (re-enables it with the right types)".to_owned());
                    }
                }
                (Action::Check, None) => {
                    hook.healthy = Some(false);
                    hook.state = "not registered".to_owned();
                    hook.fix = Some("run `campbridge webhooks register`".to_owned());
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            hook.healthy = Some(false);
            hook.fix = Some(client_fix(&e, "Basecamp"));
            hook.code = client_code(&e);
        }
        report.hooks.push(hook);
    }
    Ok(())
}

async fn bitbucket(
    config: &Config,
    secrets: &dyn SecretStore,
    base: &str,
    action: Action,
    guard: &OutboundGuard,
    report: &mut HooksReport,
) -> Result<(), OpsError> {
    let Some(bb) = &config.bitbucket else { return Ok(()) };
    let client = bitbucket_client_with(config, secrets, guard).await?;
    let url = format!("{base}/bitbucket");
    for repo in &bb.repos {
        let mut hook = Hook {
            provider: "bitbucket",
            target: format!("repository {repo}"),
            url: url.clone(),
            id: None,
            healthy: None,
            state: String::new(),
            fix: None,
            code: None,
        };
        let result: Result<(), OpsError> = async {
            let (ours, other): (Vec<_>, Vec<_>) = client.webhooks(repo).await?.into_iter().partition(|h| h.url == url);
            let existing = ours.into_iter().next();
            let stale = other.into_iter().filter(|h| {
                h.description.as_deref() == Some(BITBUCKET_DESCRIPTION)
                    && h.url.trim_end_matches('/').ends_with("/bitbucket")
            });
            for old in stale {
                let target = format!("repository {repo}: old URL");
                let mut entry = stale_hook("bitbucket", target, old.url.clone(), old.uuid.clone());
                if action == Action::RegisterAndPrune {
                    client.delete_webhook(repo, &old.uuid).await?;
                    report.changes += 1;
                    entry.healthy = Some(true);
                    entry.state = "removed: it pointed at an old URL".to_owned();
                    entry.fix = None;
                }
                report.hooks.push(entry);
            }
            let events_ok = |e: &[String]| BITBUCKET_EVENTS.iter().all(|want| e.iter().any(|have| have == want));
            match (action, existing) {
                (Action::Remove, Some(h)) => {
                    client.delete_webhook(repo, &h.uuid).await?;
                    report.changes += 1;
                    hook.id = Some(h.uuid);
                    hook.state = "removed".to_owned();
                }
                (Action::Remove, None) => hook.state = "not registered; nothing to remove".to_owned(),
                (Action::Register | Action::RegisterAndPrune, existing)
                    if existing
                        .as_ref()
                        .is_none_or(|h| !h.active || !events_ok(&h.events) || h.secret_set == Some(false)) =>
                {
                    let spec = WebhookSpec {
                        description: BITBUCKET_DESCRIPTION.to_owned(),
                        url: url.clone(),
                        events: BITBUCKET_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
                        secret: secret(secrets, bb.webhook_secret.name()).await?,
                        active: true,
                    };
                    let (h, state) = match existing {
                        Some(old) => {
                            (client.update_webhook(repo, &old.uuid, &spec).await?, "updated (active, events, secret)")
                        }
                        None => (client.create_webhook(repo, &spec).await?, "registered with the webhook secret"),
                    };
                    report.changes += 1;
                    hook.id = Some(h.uuid);
                    hook.healthy = Some(true);
                    hook.state = state.to_owned();
                }
                (_, Some(h)) => {
                    let ok = h.active && events_ok(&h.events) && h.secret_set != Some(false);
                    hook.id = Some(h.uuid);
                    hook.healthy = Some(ok);
                    hook.state = if ok {
                        "registered and active, with a secret".to_owned()
                    } else if !h.active {
                        "registered but inactive".to_owned()
                    } else if h.secret_set == Some(false) {
                        "registered without a secret (deliveries would be refused)".to_owned()
                    } else {
                        "registered without some of the events campbridge reads".to_owned()
                    };
                    if !ok {
                        hook.fix = Some("run `campbridge webhooks register`".to_owned());
                    }
                }
                (_, None) => {
                    hook.healthy = Some(false);
                    hook.state = "not registered".to_owned();
                    hook.fix = Some("run `campbridge webhooks register`".to_owned());
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(OpsError::Client(e)) => {
                hook.healthy = Some(false);
                hook.state = "could not read or change the repository's hooks".to_owned();
                hook.fix = Some(client_fix(&e, "Bitbucket"));
                hook.code = client_code(&e);
            }
            Err(e) => return Err(e),
        }
        report.hooks.push(hook);
    }
    Ok(())
}

/// One of our hooks at an old URL, as `check` reports it.
fn stale_hook(provider: &'static str, target: String, url: String, id: String) -> Hook {
    Hook {
        provider,
        target,
        url,
        id: Some(id),
        healthy: Some(false),
        state: "ours, but pointing at an old URL: its deliveries are lost, or reach whoever holds that address now"
            .to_owned(),
        fix: Some("run `campbridge webhooks register --prune` (deletes our hooks at old URLs)".to_owned()),
        code: None,
    }
}

/// The report as people read it.
pub fn render(report: &HooksReport) -> String {
    let mut out = format!("Webhooks for {}\n", report.base_url);
    for h in &report.hooks {
        out.push_str(&format!("{} {:<9} {}: {}\n", mark(h.healthy), h.provider, h.target, h.state));
        out.push_str(&format!("    url: {}\n", redact_token(&h.url)));
        if let Some(fix) = &h.fix {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    out.push_str(&format!("{} change(s) made upstream\n", report.changes));
    out
}

/// Shortens a route token in a Basecamp URL for display (the URL is a secret: whoever has it can post).
pub fn redact_token(url: &str) -> String {
    match url.rsplit_once("/basecamp/") {
        Some((head, token)) if token.len() > 8 => {
            format!("{head}/basecamp/{}…", token.chars().take(6).collect::<String>())
        }
        _ => url.to_owned(),
    }
}
