//! The operator commands (`doctor`, `webhooks`, `status`, `conflicts`, `replay`, `dead-letters`,
//! `backfill`) as library functions: each returns data plus a `render` for people (and serde for
//! `--json`), so tests call them directly and `main.rs` only maps arguments onto them.

pub mod backfill;
pub mod conflicts;
pub mod doctor;
pub mod replay;
pub mod selftest;
pub mod status;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use shared::clients::basecamp::{BasecampClient, BasecampConfig as ClientBasecampConfig};
use shared::clients::bitbucket::{Backoff, BitbucketClient, BitbucketConfig as ClientBitbucketConfig};
use shared::clients::http::{BaseUrl, Credentials, HttpSettings};
use shared::clients::jira::{JiraClient, JiraConfig as ClientJiraConfig};
use shared::config::{BitbucketAuth, Config};
use shared::ingest::Receivers;
use shared::ports::{SecretError, SecretStore};

/// Why an operator command could not run at all (per-check failures are data, not errors).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("SECRET_MISSING: secret {0:?} is not set (locally: set CAMPBRIDGE_SECRET_{var})", var = .0.to_ascii_uppercase().replace('-', "_"))]
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

/// Reads one secret, naming it (never its value) when it is missing.
pub async fn secret(secrets: &dyn SecretStore, name: &str) -> Result<SecretString, OpsError> {
    secrets.get(name).await.map_err(|e| match e {
        SecretError::Missing(n) => OpsError::SecretMissing(n),
        SecretError::Unexpected(e) => OpsError::Other(e),
    })
}

fn user_agent(config: &Config) -> String {
    config.basecamp.as_ref().map_or_else(|| "campbridge (ops@campbridge.invalid)".to_owned(), |b| b.user_agent.clone())
}

/// The Basecamp client for `config` (the account's API root), refreshing with the configured refresh
/// token when there is one.
pub async fn basecamp_client(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<BasecampClient, OpsError> {
    let bc = config.basecamp.as_ref().ok_or(OpsError::NotConfigured("[basecamp] is missing"))?;
    let (client_id, client_secret, refresh_name) = match &bc.refresh {
        Some(r) => (
            r.client_id.clone(),
            secret(secrets.as_ref(), r.client_secret.name()).await?,
            r.refresh_token.name().to_owned(),
        ),
        None => (String::new(), SecretString::from(String::new()), String::new()),
    };
    let token_url = url::Url::parse(&bc.launchpad_url.join("/authorization/token"))
        .map_err(|e| OpsError::Usage(format!("launchpad_url: {e}")))?;
    Ok(BasecampClient::new(
        ClientBasecampConfig {
            base_url: BaseUrl::parse(&format!("{}/{}/", bc.base_url.as_str(), bc.account_id))?,
            token_url,
            client_id,
            client_secret,
            access_token_secret: bc.access_token.name().to_owned(),
            refresh_token_secret: refresh_name,
            http: HttpSettings::new(bc.user_agent.clone()),
            default_retry_after: Duration::from_secs(10),
        },
        secrets,
    )?)
}

/// The Jira client for `config`.
pub async fn jira_client(config: &Config, secrets: &dyn SecretStore) -> Result<JiraClient, OpsError> {
    let jira = config.jira.as_ref().ok_or(OpsError::NotConfigured("[jira] is missing"))?;
    let mut jc = ClientJiraConfig::new(
        BaseUrl::parse(jira.base_url.as_str())?,
        Credentials::Basic { user: jira.email.clone(), secret: secret(secrets, jira.api_token.name()).await? },
        HttpSettings::new(user_agent(config)),
    );
    jc.browse_url = match &jira.site {
        Some(site) => Some(BaseUrl::parse(site.as_str())?),
        None => None,
    };
    Ok(JiraClient::new(jc)?)
}

/// The Bitbucket client for `config`, with a short backoff (operator commands should answer quickly).
pub async fn bitbucket_client(config: &Config, secrets: &dyn SecretStore) -> Result<BitbucketClient, OpsError> {
    let bb = config.bitbucket.as_ref().ok_or(OpsError::NotConfigured("[bitbucket] is missing"))?;
    let auth = match &bb.auth {
        BitbucketAuth::ApiToken { email, token } => {
            Credentials::Basic { user: email.clone(), secret: secret(secrets, token.name()).await? }
        }
        BitbucketAuth::AccessToken(token) => Credentials::Bearer(secret(secrets, token.name()).await?),
    };
    Ok(BitbucketClient::new(ClientBitbucketConfig {
        base_url: BaseUrl::parse(&format!("{}/", bb.base_url.as_str()))?,
        auth,
        http: HttpSettings::new(user_agent(config)),
        backoff: Backoff { initial: Duration::from_millis(500), max_delay: Duration::from_secs(2), max_retries: 1 },
    })?)
}

/// The receivers' route tokens (derived from the webhook key), for building Basecamp webhook URLs.
pub async fn receivers(config: &Config, secrets: &dyn SecretStore) -> Result<Receivers, OpsError> {
    let key_ref =
        config.server.webhook_key.as_ref().ok_or(OpsError::NotConfigured("[server] webhook_key is missing"))?;
    Ok(Receivers::new(&config.routes, secret(secrets, key_ref.name()).await?, None, None))
}

/// The public base URL webhooks are registered with: `--base-url`, else `[server] public_url`.
pub fn public_base(config: &Config, base_url: Option<&str>) -> Option<String> {
    base_url
        .map(str::to_owned)
        .or_else(|| config.server.public_url.as_ref().map(|u| u.as_str().to_owned()))
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// `✓`/`✗`/`–` for a check's state.
pub fn mark(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "–",
    }
}

/// The local store and an engine over it, wired like `serve` (worker `worker`).
pub async fn open_engine(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    worker: &str,
) -> Result<(shared::adapters::sqlite::SqliteStore, shared::sync::Engine), OpsError> {
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::ports::SystemClock);
    let store = crate::wiring::open_store(config, clock.clone()).map_err(|e| OpsError::Other(e.into()))?;
    let wired =
        crate::wiring::wire(config, store, secrets, clock, worker).await.map_err(|e| OpsError::Other(e.into()))?;
    Ok((wired.store, wired.engine))
}

/// The local store alone (for read-only commands).
pub fn open_store(config: &Config) -> Result<shared::adapters::sqlite::SqliteStore, OpsError> {
    let clock: Arc<dyn shared::ports::Clock> = Arc::new(shared::ports::SystemClock);
    crate::wiring::open_store(config, clock).map_err(|e| OpsError::Other(e.into()))
}
