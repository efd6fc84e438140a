//! From a validated [`Config`] and a [`SecretStore`] to the parts every runtime needs: the API clients,
//! the receivers, the [`Engine`] and the [`Reconciler`]: the one composition root. Local mode, the operator commands and the Lambda functions all wire
//! through here, so a deployment behaves the same wherever it runs; only the stores differ.
//!
//! Setup problems come back as [`SetupError`]s with a stable code; they name secrets, never their values.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::clients::ClientError;
use crate::clients::basecamp::{BasecampClient, BasecampConfig as ClientBasecampConfig};
use crate::clients::bitbucket::{BitbucketClient, BitbucketConfig as ClientBitbucketConfig, RATE_LIMIT_DELAY};
use crate::clients::http::{BaseUrl, Credentials, HttpSettings};
use crate::clients::jira::{JiraClient, JiraConfig as ClientJiraConfig};
use crate::clients::pacing::Pacer;
use crate::config::{BitbucketAuth, Config};
use crate::ingest::{BasecampReceiver, BitbucketReceiver, JiraReceiver, Receivers};
use crate::outbound::OutboundGuard;
use crate::ports::{AuditLog, Clock, ConflictLog, DeliveryLog, PairStore, SecretError, SecretStore};
use crate::sync::{Engine, ReconcileSettings, ReconcileStores, Reconciler, SyncSettings};

/// Why a runtime could not be wired. The codes are stable; `doctor` and the README use them.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("CONFIG_INVALID: {0}")]
    Config(String),
    #[error("SECRET_MISSING: secret {0:?} is not set (locally: set CAMPBRIDGE_SECRET_{var})", var = secret_var(.0))]
    SecretMissing(String),
    #[error("PROVIDER_NOT_CONFIGURED: {0}")]
    NotConfigured(&'static str),
    #[error("STORE_UNAVAILABLE: {0}")]
    Store(String),
    #[error("CLIENT_SETUP_FAILED: {0}")]
    Client(String),
}

impl From<ClientError> for SetupError {
    fn from(e: ClientError) -> Self {
        Self::Client(e.to_string())
    }
}

/// The environment variable local mode reads a secret from (`CAMPBRIDGE_SECRET_<NAME>`), for messages.
fn secret_var(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Reads one secret, naming it (never its value) when it is missing.
pub async fn secret(secrets: &dyn SecretStore, name: &str) -> Result<SecretString, SetupError> {
    secrets.get(name).await.map_err(|e| match e {
        SecretError::Missing(n) => SetupError::SecretMissing(n),
        SecretError::Unexpected(e) => SetupError::Client(format!("secret store: {e}")),
    })
}

/// The User-Agent every client sends (Basecamp requires one naming a contact).
fn user_agent(config: &Config) -> String {
    config.basecamp.as_ref().map_or_else(|| "campbridge (ops@campbridge.invalid)".to_owned(), |b| b.user_agent.clone())
}

/// The process-wide pacer for one upstream under `config`'s `[pacing]` (`None` when that upstream's pacing
/// is off), split between the processes that share the budget.
fn pacer(
    config: &Config,
    upstream: &str,
    base: &BaseUrl,
    budget: Option<crate::config::Budget>,
    per_key: Option<crate::config::Budget>,
) -> Option<Arc<Pacer>> {
    let share = config.pacing.share;
    let origin = base.as_url().origin().ascii_serialization();
    budget.map(|b| Pacer::shared(upstream, &origin, b.split(share), per_key.map(|k| k.split(share))))
}

/// The Basecamp client for the account's API root. With `[basecamp.refresh]` it renews an expired access
/// token and writes the new tokens back through `secrets`. Its connections pass the outbound guard the
/// config asks for ([`OutboundGuard::for_config`]), as every client's here do.
pub async fn basecamp_client(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<BasecampClient, SetupError> {
    basecamp_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`basecamp_client`] behind a given guard (`doctor` checks and connects through one guard).
pub async fn basecamp_client_with(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    guard: &OutboundGuard,
) -> Result<BasecampClient, SetupError> {
    let bc = config.basecamp.as_ref().ok_or(SetupError::NotConfigured("[basecamp] is missing"))?;
    let (client_id, client_secret, refresh_name) = match &bc.refresh {
        Some(r) => (
            r.client_id.clone(),
            secret(secrets.as_ref(), r.client_secret.name()).await?,
            r.refresh_token.name().to_owned(),
        ),
        None => (String::new(), SecretString::from(String::new()), String::new()),
    };
    let token_url = url::Url::parse(&bc.launchpad_url.join("/authorization/token"))
        .map_err(|e| SetupError::Client(format!("launchpad_url: {e}")))?;
    let base_url = BaseUrl::parse(&format!("{}/{}/", bc.base_url.as_str(), bc.account_id))?;
    let http = HttpSettings::new(bc.user_agent.clone()).with_guard(guard.clone()).paced(pacer(
        config,
        "basecamp",
        &base_url,
        config.pacing.basecamp,
        None,
    ));
    Ok(BasecampClient::new(
        ClientBasecampConfig {
            base_url,
            token_url,
            client_id,
            client_secret,
            access_token_secret: bc.access_token.name().to_owned(),
            refresh_token_secret: refresh_name,
            http,
            default_retry_after: Duration::from_secs(10),
        },
        secrets,
    )?)
}

/// The Jira client (API token over basic auth).
pub async fn jira_client(config: &Config, secrets: &dyn SecretStore) -> Result<JiraClient, SetupError> {
    jira_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`jira_client`] behind a given guard.
pub async fn jira_client_with(
    config: &Config,
    secrets: &dyn SecretStore,
    guard: &OutboundGuard,
) -> Result<JiraClient, SetupError> {
    let jira = config.jira.as_ref().ok_or(SetupError::NotConfigured("[jira] is missing"))?;
    let base_url = BaseUrl::parse(jira.base_url.as_str())?;
    let pacing = &config.pacing;
    let http = HttpSettings::new(user_agent(config)).with_guard(guard.clone()).paced(pacer(
        config,
        "jira",
        &base_url,
        pacing.jira,
        pacing.jira_issue_writes,
    ));
    let mut jc = ClientJiraConfig::new(
        base_url,
        Credentials::Basic { user: jira.email.clone(), secret: secret(secrets, jira.api_token.name()).await? },
        http,
    );
    jc.browse_url = match &jira.site {
        Some(site) => Some(BaseUrl::parse(site.as_str())?),
        None => None,
    };
    Ok(JiraClient::new(jc)?)
}

/// The Bitbucket client (a 429 is a delay of [`RATE_LIMIT_DELAY`], never a sleep).
pub async fn bitbucket_client(config: &Config, secrets: &dyn SecretStore) -> Result<BitbucketClient, SetupError> {
    bitbucket_client_with(config, secrets, &OutboundGuard::for_config(config)).await
}

/// [`bitbucket_client`] behind a given guard.
pub async fn bitbucket_client_with(
    config: &Config,
    secrets: &dyn SecretStore,
    guard: &OutboundGuard,
) -> Result<BitbucketClient, SetupError> {
    let bb = config.bitbucket.as_ref().ok_or(SetupError::NotConfigured("[bitbucket] is missing"))?;
    let auth = match &bb.auth {
        BitbucketAuth::ApiToken { email, token } => {
            Credentials::Basic { user: email.clone(), secret: secret(secrets, token.name()).await? }
        }
        BitbucketAuth::AccessToken(token) => Credentials::Bearer(secret(secrets, token.name()).await?),
    };
    let base_url = BaseUrl::parse(&format!("{}/", bb.base_url.as_str()))?;
    let http = HttpSettings::new(user_agent(config)).with_guard(guard.clone()).paced(pacer(
        config,
        "bitbucket",
        &base_url,
        config.pacing.bitbucket,
        None,
    ));
    Ok(BitbucketClient::new(ClientBitbucketConfig { base_url, auth, http, rate_limit_delay: RATE_LIMIT_DELAY })?)
}

/// The Basecamp receiver, reading only the webhook key; `None` when `[server] webhook_key` is not set
/// (then there are no routes, and Basecamp webhooks answer 404).
pub async fn basecamp_receiver(
    config: &Config,
    secrets: &dyn SecretStore,
) -> Result<Option<BasecampReceiver>, SetupError> {
    match &config.server.webhook_key {
        Some(key) => Ok(Some(BasecampReceiver::new(&config.routes, secret(secrets, key.name()).await?))),
        None => Ok(None),
    }
}

/// The Jira receiver, reading only `[jira] webhook_secret`; `None` without `[jira]`.
pub async fn jira_receiver(config: &Config, secrets: &dyn SecretStore) -> Result<Option<JiraReceiver>, SetupError> {
    match &config.jira {
        Some(j) => Ok(Some(JiraReceiver::new(&config.routes, secret(secrets, j.webhook_secret.name()).await?))),
        None => Ok(None),
    }
}

/// The Bitbucket receiver, reading only `[bitbucket] webhook_secret`; `None` without `[bitbucket]`.
pub async fn bitbucket_receiver(
    config: &Config,
    secrets: &dyn SecretStore,
) -> Result<Option<BitbucketReceiver>, SetupError> {
    match &config.bitbucket {
        Some(b) => Ok(Some(BitbucketReceiver::new(secret(secrets, b.webhook_secret.name()).await?))),
        None => Ok(None),
    }
}

/// Local mode's three receivers, each built as its Lambda function builds it. Routes need the webhook key.
pub async fn receivers(config: &Config, secrets: &dyn SecretStore) -> Result<Receivers, SetupError> {
    let basecamp = basecamp_receiver(config, secrets)
        .await?
        .ok_or(SetupError::NotConfigured("[server] webhook_key is missing"))?;
    Ok(Receivers {
        basecamp,
        jira: jira_receiver(config, secrets).await?,
        bitbucket: bitbucket_receiver(config, secrets).await?,
    })
}

/// The storage side of an engine: one object per port, often the same store behind all four.
#[derive(Clone)]
pub struct Stores {
    pub pairs: Arc<dyn PairStore>,
    pub deliveries: Arc<dyn DeliveryLog>,
    pub audit: Arc<dyn AuditLog>,
    pub conflicts: Arc<dyn ConflictLog>,
}

impl Stores {
    /// All four ports served by one store (SQLite, DynamoDB, memory).
    pub fn all<S>(store: Arc<S>) -> Self
    where
        S: PairStore + DeliveryLog + AuditLog + ConflictLog + 'static,
    {
        Self { pairs: store.clone(), deliveries: store.clone(), audit: store.clone(), conflicts: store }
    }
}

/// The engine for `config` over `stores`, with the Basecamp and Jira clients built from `secrets`.
/// Fails at start, not on the first job, when a token is missing.
pub async fn engine(
    config: &Config,
    stores: Stores,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    worker: &str,
) -> Result<Engine, SetupError> {
    let bc = config.basecamp.as_ref().ok_or(SetupError::NotConfigured("[basecamp] is missing"))?;
    secret(secrets.as_ref(), bc.access_token.name()).await?;
    let basecamp = basecamp_client(config, secrets.clone()).await?;
    let tracker = jira_client(config, secrets.as_ref()).await?;
    let code_host: Option<Arc<dyn crate::ports::CodeHostApi>> = match &config.bitbucket {
        Some(_) => Some(Arc::new(bitbucket_client(config, secrets.as_ref()).await?)),
        None => None,
    };
    Ok(Engine {
        settings: Arc::new(SyncSettings::new(config.routes.clone(), config.users.clone(), worker)),
        pairs: stores.pairs,
        deliveries: stores.deliveries,
        audit: stores.audit,
        conflicts: stores.conflicts,
        basecamp: Arc::new(basecamp),
        tracker: Arc::new(tracker),
        code_host,
        clock,
    })
}

/// The reconciler for `config`, with the Basecamp and Jira clients and the webhook key read from
/// `secrets` once (a missing one fails here, at start, naming it).
pub async fn reconciler(
    config: &Config,
    stores: ReconcileStores,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
) -> Result<Reconciler, SetupError> {
    let key_ref =
        config.server.webhook_key.as_ref().ok_or(SetupError::NotConfigured("[server] webhook_key is missing"))?;
    let webhook_key = secret(secrets.as_ref(), key_ref.name()).await?;
    let bc = config.basecamp.as_ref().ok_or(SetupError::NotConfigured("[basecamp] is missing"))?;
    secret(secrets.as_ref(), bc.access_token.name()).await?;
    let basecamp = basecamp_client(config, secrets.clone()).await?;
    let tracker = jira_client(config, secrets.as_ref()).await?;
    Ok(Reconciler::new(
        config.routes.clone(),
        &webhook_key,
        ReconcileSettings::default(),
        Arc::new(basecamp),
        Arc::new(tracker),
        stores,
        clock,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemorySecrets;

    #[tokio::test]
    async fn a_missing_secret_is_named_and_its_value_never_shown() {
        let secrets = MemorySecrets::default();
        let err = secret(&secrets, "jira-api-token").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "SECRET_MISSING: secret \"jira-api-token\" is not set (locally: set CAMPBRIDGE_SECRET_JIRA_API_TOKEN)"
        );
    }
}
