//! Where the operator commands read and write: the store and queue `[store]` names, and the secret store.
//!
//! - `kind = "sqlite"`: the local database file (pairs, deliveries, audit, conflicts, queue and its dead
//!   letters in one [`SqliteStore`]).
//! - `kind = "dynamodb"`: a deployed stack's [`DynamoStore`] table and [`SqsFifoQueue`]. The dead-letter
//!   queue is the one the job queue's redrive policy names (the SAM template sets it), found at start.
//!   Region and credentials are the AWS SDK's own (environment, `~/.aws` profiles); without a configured
//!   region the queue URL's region is used.
//!
//! Secrets ([`SecretSource`]): by default they follow the store — `CAMPBRIDGE_SECRET_*` variables with
//! SQLite, Secrets Manager under the stack's prefix with DynamoDB, so an operator's laptop reads the same
//! secrets the functions read and a refreshed Basecamp token is written back where the functions find it.
//!
//! Every command is written once against [`Backend`]: the engine's ports ([`Stores`]) plus the queue.

use std::sync::Arc;

use anyhow::Context;
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::env_secrets::EnvSecrets;
use shared::adapters::secrets_manager::SecretsManagerSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::adapters::sqs::SqsFifoQueue;
use shared::config::{Config, StoreConfig};
use shared::ports::{Clock, JobQueue, SecretStore, SystemClock};
use shared::setup::{self, Stores};
use shared::sync::Engine;

use super::OpsError;

/// The Secrets Manager prefix the SAM template uses when the stack is named `campbridge`.
pub const DEFAULT_SECRET_PREFIX: &str = "campbridge/";

/// Which kind of store a [`Backend`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Local mode's database file; `campbridge serve` works its queue.
    Sqlite,
    /// A deployed stack; the sync-mapper function works its queue.
    Aws,
}

/// The store and queue an operator command works on.
#[derive(Clone)]
pub struct Backend {
    pub kind: BackendKind,
    /// The engine's storage ports.
    pub stores: Stores,
    pub queue: Arc<dyn JobQueue>,
    /// AWS: the dead-letter queue the job queue's redrive policy names (`None`: no redrive policy).
    pub dead_letter_queue: Option<String>,
    /// Where it points, for people (`SQLite campbridge.db`, `DynamoDB table …, SQS queue …`).
    pub describe: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("kind", &self.kind).field("describe", &self.describe).finish_non_exhaustive()
    }
}

impl Backend {
    /// Local mode's store.
    pub fn sqlite(store: SqliteStore, describe: impl Into<String>) -> Self {
        let queue: Arc<dyn JobQueue> = Arc::new(store.clone());
        Self {
            kind: BackendKind::Sqlite,
            stores: Stores::all(Arc::new(store)),
            queue,
            dead_letter_queue: None,
            describe: describe.into(),
        }
    }

    /// A deployed stack's table and queue.
    pub fn aws(table: DynamoStore, queue: SqsFifoQueue, dead_letter_queue: Option<&str>) -> Self {
        let describe = format!(
            "DynamoDB table {}, SQS queue {} ({})",
            table.table(),
            queue.queue_url(),
            dead_letter_queue.map_or_else(
                || "no dead-letter queue: the queue has no redrive policy".to_owned(),
                |d| format!("dead letters in {d}")
            )
        );
        Self {
            kind: BackendKind::Aws,
            stores: Stores::all(Arc::new(table)),
            queue: Arc::new(queue),
            dead_letter_queue: dead_letter_queue.map(str::to_owned),
            describe,
        }
    }

    /// Opens the store `[store]` names (for DynamoDB: loads the SDK configuration and finds the
    /// dead-letter queue; nothing is created).
    pub async fn open(config: &Config) -> Result<Self, OpsError> {
        match &config.store {
            StoreConfig::Sqlite { path } => {
                let clock: Arc<dyn Clock> = Arc::new(SystemClock);
                let store = crate::wiring::open_store(config, clock)?;
                Ok(Self::sqlite(store, format!("SQLite {}", path.display())))
            }
            StoreConfig::DynamoDb { table, queue_url } => {
                let sdk = sdk_config(Some(queue_url.as_str())).await;
                let sqs = aws_sdk_sqs::Client::new(&sdk);
                let dlq = dead_letter_queue(&sqs, queue_url.as_str()).await?;
                let mut queue = SqsFifoQueue::new(sqs, queue_url.as_str());
                if let Some(d) = &dlq {
                    queue = queue.with_dead_letter_queue(d.clone());
                }
                let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());
                Ok(Self::aws(store, queue, dlq.as_deref()))
            }
        }
    }

    /// The engine over this backend, wired like every runtime through [`shared::setup::engine`].
    pub async fn engine(
        &self,
        config: &Config,
        secrets: Arc<dyn SecretStore>,
        worker: &str,
    ) -> Result<Engine, OpsError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(setup::engine(config, self.stores.clone(), secrets, clock, worker).await?)
    }

    /// Who works the queue after a requeue, in words.
    pub fn queue_worker(&self) -> &'static str {
        match self.kind {
            BackendKind::Sqlite => "a running `campbridge serve`",
            BackendKind::Aws => "the stack's sync-mapper function",
        }
    }
}

/// Where secrets are read (and a refreshed Basecamp token written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `CAMPBRIDGE_SECRET_<NAME>` environment variables (a refreshed token lives until the process exits).
    Env,
    /// AWS Secrets Manager, secret `<prefix><name>`.
    SecretsManager { prefix: String },
}

impl SecretSource {
    /// The default for `config`: Secrets Manager (under `prefix`) with the DynamoDB store, the
    /// environment with SQLite.
    pub fn for_store(config: &Config, prefix: &str) -> Self {
        match config.store {
            StoreConfig::Sqlite { .. } => Self::Env,
            StoreConfig::DynamoDb { .. } => Self::SecretsManager { prefix: prefix.to_owned() },
        }
    }

    /// The secret store.
    pub async fn open(&self, config: &Config) -> Arc<dyn SecretStore> {
        match self {
            Self::Env => Arc::new(EnvSecrets::from_env()),
            Self::SecretsManager { prefix } => {
                let queue_url = match &config.store {
                    StoreConfig::DynamoDb { queue_url, .. } => Some(queue_url.as_str()),
                    StoreConfig::Sqlite { .. } => None,
                };
                let sdk = sdk_config(queue_url).await;
                Arc::new(SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&sdk), prefix.clone()))
            }
        }
    }

    /// Where secret `name` is looked up, for messages (never its value).
    pub fn locate(&self, name: &str) -> String {
        match self {
            Self::Env => shared::adapters::env_secrets::var_name(name),
            Self::SecretsManager { prefix } => format!("Secrets Manager secret {prefix}{name}"),
        }
    }
}

/// The SDK configuration from the standard AWS environment; when no region is configured, the region
/// of `queue_url` (`https://sqs.<region>.amazonaws.com/…`).
async fn sdk_config(queue_url: Option<&str>) -> aws_config::SdkConfig {
    let sdk = shared::adapters::aws_sdk::load().await;
    match (sdk.region(), queue_url.and_then(region_of_queue_url)) {
        (None, Some(region)) => {
            shared::adapters::aws_sdk::defaults().region(aws_config::Region::new(region)).load().await
        }
        _ => sdk,
    }
}

/// The region in an SQS queue URL's host (`sqs.eu-west-1.amazonaws.com`, or the legacy
/// `eu-west-1.queue.amazonaws.com`).
pub fn region_of_queue_url(queue_url: &str) -> Option<String> {
    let host = url::Url::parse(queue_url).ok()?.host_str()?.to_owned();
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] | [region, "queue", "amazonaws", ..] => Some((*region).to_owned()),
        _ => None,
    }
}

/// The URL of the dead-letter queue the redrive policy of `queue_url` names, if any.
async fn dead_letter_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Option<String>, OpsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .with_context(|| format!("STORE_UNAVAILABLE: cannot read the attributes of SQS queue {queue_url}"))?;
    let Some(policy) = out.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)) else {
        return Ok(None);
    };
    let policy: serde_json::Value = serde_json::from_str(policy).context("the queue's redrive policy is not JSON")?;
    let Some((account, name)) = policy["deadLetterTargetArn"].as_str().and_then(queue_arn_parts) else {
        return Ok(None);
    };
    let out = sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .with_context(|| format!("STORE_UNAVAILABLE: cannot find the dead-letter queue {name}"))?;
    Ok(out.queue_url)
}

/// `(account, queue name)` of an SQS queue ARN (`arn:aws:sqs:<region>:<account>:<name>`).
fn queue_arn_parts(arn: &str) -> Option<(&str, &str)> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "sqs", _, account, name] if !name.is_empty() => Some((account, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_queue_url_host() {
        let region = |u: &str| region_of_queue_url(u);
        assert_eq!(region("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo").as_deref(), Some("eu-west-1"));
        assert_eq!(
            region("https://us-east-2.queue.amazonaws.com/123456789012/jobs.fifo").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region("http://127.0.0.1:5000/123456789012/jobs.fifo"), None);
    }

    #[test]
    fn a_queue_arn_names_its_account_and_queue() {
        assert_eq!(queue_arn_parts("arn:aws:sqs:eu-west-1:123456789012:dlq.fifo"), Some(("123456789012", "dlq.fifo")));
        assert_eq!(queue_arn_parts("arn:aws:sns:eu-west-1:123456789012:topic"), None);
        assert_eq!(queue_arn_parts("not an arn"), None);
    }
}
