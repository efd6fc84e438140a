//! Turns a validated [`Config`] and a secret store into a running deployment: the SQLite store and
//! queue, the API clients, the engine and the receivers. Setup problems come back as [`SetupError`]s
//! with a named code.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use shared::adapters::sqlite::SqliteStore;
use shared::clients::basecamp::{BasecampClient, BasecampConfig as ClientBasecampConfig};
use shared::clients::http::{BaseUrl, Credentials, HttpSettings};
use shared::clients::jira::{JiraClient, JiraConfig as ClientJiraConfig};
use shared::config::{Config, StoreConfig};
use shared::ingest::Receivers;
use shared::ports::{Clock, SecretError, SecretStore};
use shared::sync::{Engine, SyncSettings};
use tokio::sync::Notify;

use crate::server::App;

/// Why local mode could not start. The codes are stable; `doctor` and the README use them.
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

fn secret_var(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

async fn secret(secrets: &dyn SecretStore, name: &str) -> Result<SecretString, SetupError> {
    secrets.get(name).await.map_err(|e| match e {
        SecretError::Missing(n) => SetupError::SecretMissing(n),
        SecretError::Unexpected(e) => SetupError::Client(format!("secret store: {e}")),
    })
}

/// Everything `serve` runs.
pub struct Wired {
    pub app: App,
    pub engine: Engine,
    pub store: SqliteStore,
    pub receivers: Arc<Receivers>,
}

/// Opens the configured SQLite store (local mode's only store).
pub fn open_store(config: &Config, clock: Arc<dyn Clock>) -> Result<SqliteStore, SetupError> {
    match &config.store {
        StoreConfig::Sqlite { path } => SqliteStore::open(path, clock).map_err(|e| SetupError::Store(e.to_string())),
        StoreConfig::DynamoDb { .. } => Err(SetupError::Store(
            "local mode runs on SQLite; the DynamoDB store is used by the Lambda functions".to_owned(),
        )),
    }
}

/// Builds the engine and receivers over `store`, reading secrets once.
pub async fn wire(
    config: &Config,
    store: SqliteStore,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    worker: &str,
) -> Result<Wired, SetupError> {
    let bc = config.basecamp.as_ref().ok_or(SetupError::NotConfigured("[basecamp] is missing"))?;
    let jira = config.jira.as_ref().ok_or(SetupError::NotConfigured("[jira] is missing"))?;
    let key_ref =
        config.server.webhook_key.as_ref().ok_or(SetupError::NotConfigured("[server] webhook_key is missing"))?;
    let webhook_key = secret(secrets.as_ref(), key_ref.name()).await?;
    let jira_secret = secret(secrets.as_ref(), jira.webhook_secret.name()).await?;
    let bitbucket_secret = match &config.bitbucket {
        Some(b) => Some(secret(secrets.as_ref(), b.webhook_secret.name()).await?),
        None => None,
    };
    // Fail at start, not on the first job, when a token is missing.
    secret(secrets.as_ref(), bc.access_token.name()).await?;

    let client_err = |e: shared::clients::ClientError| SetupError::Client(e.to_string());
    let (client_id, client_secret, refresh_name) = match &bc.refresh {
        Some(r) => (
            r.client_id.clone(),
            secret(secrets.as_ref(), r.client_secret.name()).await?,
            r.refresh_token.name().to_owned(),
        ),
        None => (String::new(), SecretString::from(String::new()), String::new()),
    };
    let basecamp = BasecampClient::new(
        ClientBasecampConfig {
            base_url: BaseUrl::parse(&format!("{}/{}/", bc.base_url.as_str(), bc.account_id)).map_err(client_err)?,
            token_url: url::Url::parse(&bc.launchpad_url.join("/authorization/token"))
                .map_err(|e| SetupError::Client(format!("launchpad_url: {e}")))?,
            client_id,
            client_secret,
            access_token_secret: bc.access_token.name().to_owned(),
            refresh_token_secret: refresh_name,
            http: HttpSettings::new(bc.user_agent.clone()),
            default_retry_after: Duration::from_secs(10),
        },
        secrets.clone(),
    )
    .map_err(client_err)?;
    let mut jira_config = ClientJiraConfig::new(
        BaseUrl::parse(jira.base_url.as_str()).map_err(client_err)?,
        Credentials::Basic { user: jira.email.clone(), secret: secret(secrets.as_ref(), jira.api_token.name()).await? },
        HttpSettings::new(bc.user_agent.clone()),
    );
    jira_config.browse_url = match &jira.site {
        Some(site) => Some(BaseUrl::parse(site.as_str()).map_err(client_err)?),
        None => None,
    };
    let tracker = JiraClient::new(jira_config).map_err(client_err)?;

    let receivers = Arc::new(Receivers::new(&config.routes, webhook_key, Some(jira_secret), bitbucket_secret));
    let engine = Engine {
        settings: Arc::new(SyncSettings::new(config.routes.clone(), config.users.clone(), worker)),
        pairs: Arc::new(store.clone()),
        deliveries: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        conflicts: Arc::new(store.clone()),
        basecamp: Arc::new(basecamp),
        tracker: Arc::new(tracker),
        clock: clock.clone(),
    };
    let app =
        App { receivers: receivers.clone(), queue: Arc::new(store.clone()), clock, wake: Arc::new(Notify::new()) };
    Ok(Wired { app, engine, store, receivers })
}

/// The webhook URLs to register upstream, for people to read.
pub fn webhook_urls(config: &Config, receivers: &Receivers, base: &str) -> Vec<(String, String)> {
    let base = base.trim_end_matches('/');
    let mut urls: Vec<(String, String)> = config
        .routes
        .iter()
        .map(|r| {
            (
                format!("Basecamp project {} (route {})", r.project, r.id),
                format!("{base}/basecamp/{}", receivers.route_token(&r.id)),
            )
        })
        .collect();
    urls.push(("Jira admin webhook (with the webhook secret)".to_owned(), format!("{base}/jira")));
    if config.bitbucket.is_some() {
        urls.push(("Bitbucket repository webhooks (with the secret)".to_owned(), format!("{base}/bitbucket")));
    }
    urls
}
