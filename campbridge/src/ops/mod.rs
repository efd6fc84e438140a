//! The operator commands (`auth`, `doctor`, `webhooks`, `status`, `explain`, `conflicts`, `replay`, `dead-letters`,
//! `backfill`, `selftest`) as library functions: each returns data plus a `render` for people (and serde
//! for `--json`), so tests call them directly and `main.rs` only maps arguments onto them. The commands
//! that touch the store or queue take a [`Backend`], so each is written once for SQLite and AWS.

pub mod auth;
pub mod backend;
pub mod backfill;
pub mod conflicts;
pub mod doctor;
pub mod explain;
pub mod replay;
pub mod selftest;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use secrecy::SecretString;
use shared::clients::basecamp::BasecampClient;
use shared::clients::bitbucket::BitbucketClient;
use shared::clients::jira::JiraClient;
use shared::config::Config;
use shared::ingest::BasecampReceiver;
use shared::outbound::OutboundGuard;
use shared::ports::SecretStore;
use shared::setup::{self, SetupError};

pub use backend::{Backend, BackendKind, SecretSource};

/// Why an operator command could not run at all (per-check failures are data, not errors).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "SECRET_MISSING: secret {0:?} is not set (locally: set CAMPBRIDGE_SECRET_{var}; with the DynamoDB store: \
         put a value in Secrets Manager secret <stack>/{0})",
        var = .0.to_ascii_uppercase().replace('-', "_")
    )]
    SecretMissing(String),
    #[error("PROVIDER_NOT_CONFIGURED: {0}")]
    NotConfigured(&'static str),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] shared::clients::ClientError),
    #[error(transparent)]
    Store(#[from] shared::ports::StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<SetupError> for OpsError {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::SecretMissing(name) => Self::SecretMissing(name),
            SetupError::NotConfigured(what) => Self::NotConfigured(what),
            other => Self::Other(other.into()),
        }
    }
}

/// Reads one secret, naming it (never its value) when it is missing.
pub async fn secret(secrets: &dyn SecretStore, name: &str) -> Result<SecretString, OpsError> {
    Ok(setup::secret(secrets, name).await?)
}

/// The Basecamp client for `config` (the account's API root), refreshing with the configured refresh
/// token when there is one. Like every client here, its connections pass the outbound guard `config` asks for.
pub async fn basecamp_client(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<BasecampClient, OpsError> {
    basecamp_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`basecamp_client`] behind `guard`.
pub async fn basecamp_client_with(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    guard: &OutboundGuard,
) -> Result<BasecampClient, OpsError> {
    Ok(setup::basecamp_client_with(config, secrets, guard).await?)
}

/// The Jira client for `config`.
pub async fn jira_client(config: &Config, secrets: &dyn SecretStore) -> Result<JiraClient, OpsError> {
    jira_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`jira_client`] behind `guard`.
pub async fn jira_client_with(
    config: &Config,
    secrets: &dyn SecretStore,
    guard: &OutboundGuard,
) -> Result<JiraClient, OpsError> {
    Ok(setup::jira_client_with(config, secrets, guard).await?)
}

/// The Bitbucket client for `config` (a 429 is reported, never waited out).
pub async fn bitbucket_client(config: &Config, secrets: &dyn SecretStore) -> Result<BitbucketClient, OpsError> {
    bitbucket_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`bitbucket_client`] behind `guard`.
pub async fn bitbucket_client_with(
    config: &Config,
    secrets: &dyn SecretStore,
    guard: &OutboundGuard,
) -> Result<BitbucketClient, OpsError> {
    Ok(setup::bitbucket_client_with(config, secrets, guard).await?)
}

/// The Basecamp receiver's route tokens (derived from the webhook key), for building Basecamp webhook URLs.
pub async fn receivers(config: &Config, secrets: &dyn SecretStore) -> Result<BasecampReceiver, OpsError> {
    let key_ref =
        config.server.webhook_key.as_ref().ok_or(OpsError::NotConfigured("[server] webhook_key is missing"))?;
    Ok(BasecampReceiver::new(&config.routes, secret(secrets, key_ref.name()).await?))
}

/// Where the receivers are reachable from the internet, for registering and checking webhooks: one base
/// for all three (local mode behind a tunnel: `<base>/basecamp/<token>`, `<base>/jira`,
/// `<base>/bitbucket`), or one per receiver (a deployed stack: its three function URLs, the outputs
/// `BasecampWebhookUrl`, `JiraWebhookUrl`, `BitbucketWebhookUrl`). A receiver without its own URL uses
/// `base`, then `[server] public_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrls {
    pub base: Option<String>,
    pub basecamp: Option<String>,
    pub jira: Option<String>,
    pub bitbucket: Option<String>,
}

impl PublicUrls {
    /// One base URL for every receiver.
    pub fn base(url: &str) -> Self {
        Self { base: Some(url.to_owned()), ..Self::default() }
    }

    fn pick(&self, own: Option<&String>, config: &Config) -> Option<String> {
        own.or(self.base.as_ref())
            .cloned()
            .or_else(|| config.server.public_url.as_ref().map(|u| u.as_str().to_owned()))
            .map(|u| u.trim_end_matches('/').to_owned())
    }

    /// The Basecamp receiver's base (the route URLs are `<this>/basecamp/<token>`).
    pub fn basecamp(&self, config: &Config) -> Option<String> {
        self.pick(self.basecamp.as_ref(), config)
    }

    /// The Jira receiver's base (the URL is `<this>/jira`).
    pub fn jira(&self, config: &Config) -> Option<String> {
        self.pick(self.jira.as_ref(), config)
    }

    /// The Bitbucket receiver's base (the URL is `<this>/bitbucket`).
    pub fn bitbucket(&self, config: &Config) -> Option<String> {
        self.pick(self.bitbucket.as_ref(), config)
    }

    /// True when no receiver URL is known at all.
    pub fn unknown(&self, config: &Config) -> bool {
        self.basecamp(config).is_none() && self.jira(config).is_none() && self.bitbucket(config).is_none()
    }

    /// The URLs in a few words: the one base, or each receiver's.
    pub fn describe(&self, config: &Config) -> String {
        let all = [self.basecamp(config), self.jira(config), self.bitbucket(config)];
        if all.iter().all(|u| *u == all[0]) {
            return all[0].clone().unwrap_or_else(|| "(no public URL)".to_owned());
        }
        let [bc, jira, bb] = all.map(|u| u.unwrap_or_else(|| "(none)".to_owned()));
        format!("basecamp {bc}, jira {jira}, bitbucket {bb}")
    }
}

/// What to say when no receiver URL is known.
pub const NO_PUBLIC_URL: &str = "no public URL: pass --base-url https://… (where the receivers are reachable; for a \
     deployed stack --basecamp-url, --jira-url and --bitbucket-url with its three function URLs) or set [server] \
     public_url";

/// `✓`/`✗`/`–` for a check's state.
pub fn mark(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "–",
    }
}

/// The store `[store]` names and an engine over it (worker `worker`), wired through
/// [`shared::setup::engine`] like every runtime.
pub async fn open_engine(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    worker: &str,
) -> Result<(Backend, shared::sync::Engine), OpsError> {
    let backend = Backend::open(config).await?;
    let engine = backend.engine(config, secrets, worker).await?;
    Ok((backend, engine))
}
