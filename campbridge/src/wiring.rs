//! Local mode's wiring: the SQLite store and queue under [`shared::setup`]'s engine and receivers, and
//! under the reconciler (its cursors live in the same file).
//! Setup problems come back as [`SetupError`]s with a named code.

use std::sync::Arc;

use shared::adapters::sqlite::SqliteStore;
use shared::config::{Config, StoreConfig};
use shared::ingest::Receivers;
use shared::ports::{Clock, SecretStore};
use shared::setup::{self, Stores};
use shared::sync::{Engine, ReconcileStores};
use tokio::sync::Notify;

use crate::server::{self, App, ReconcileHandle, Reconciling};

pub use shared::setup::SetupError;

/// Everything `serve` runs.
pub struct Wired {
    pub app: App,
    pub engine: Engine,
    pub store: SqliteStore,
    pub receivers: Arc<Receivers>,
    /// The reconciler on `[server] reconcile_every` (none when that is off), and its handle.
    pub reconcile: Option<(Reconciling, ReconcileHandle)>,
}

/// Opens the configured SQLite store: local mode's store (`serve`, `demo`). A `[store] kind = "dynamodb"`
/// deployment runs as the stack's Lambda functions; the operator commands open it through
/// [`crate::ops::Backend::open`].
pub fn open_store(config: &Config, clock: Arc<dyn Clock>) -> Result<SqliteStore, SetupError> {
    match &config.store {
        StoreConfig::Sqlite { path } => SqliteStore::open(path, clock)
            .map_err(|e| SetupError::Store(format!("cannot open the SQLite store {}: {e}", path.display()))),
        StoreConfig::DynamoDb { table, .. } => Err(SetupError::Store(format!(
            "`campbridge serve` runs local mode on SQLite; [store] kind = \"dynamodb\" (table {table}) is served by \
             the stack's Lambda functions. The operator commands (status, conflicts, replay, dead-letters, \
             backfill, selftest) work against it as they are."
        ))),
    }
}

fn sqlite_path(config: &Config) -> Result<std::path::PathBuf, SetupError> {
    match &config.store {
        StoreConfig::Sqlite { path } => Ok(path.clone()),
        StoreConfig::DynamoDb { .. } => Err(SetupError::Store("`campbridge serve` runs local mode on SQLite".into())),
    }
}

/// Builds the engine, the receivers and the reconciler over `store`, reading secrets once.
pub async fn wire(
    config: &Config,
    store: SqliteStore,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    worker: &str,
) -> Result<Wired, SetupError> {
    if config.jira.is_none() {
        return Err(SetupError::NotConfigured("[jira] is missing"));
    }
    let receivers = Arc::new(setup::receivers(config, secrets.as_ref()).await?);
    let shared_store = Arc::new(store.clone());
    let engine =
        setup::engine(config, Stores::all(shared_store.clone()), secrets.clone(), clock.clone(), worker).await?;
    let reconcile = match config.server.reconcile_every {
        Some(every) => {
            let stores =
                ReconcileStores { pairs: shared_store.clone(), cursors: shared_store.clone(), queue: shared_store };
            let reconciler = setup::reconciler(config, stores, secrets, clock.clone()).await?;
            Some(server::reconciling(reconciler, every))
        }
        None => None,
    };
    let app = App {
        receivers: receivers.clone(),
        queue: Arc::new(store.clone()),
        clock,
        wake: Arc::new(Notify::new()),
        metrics: shared::metrics::Registry::new(),
        health: Arc::new(server::SqliteHealth { path: sqlite_path(config)? }),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    Ok(Wired { app, engine, store, receivers, reconcile })
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
