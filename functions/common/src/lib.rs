//! What every campbridge Lambda function wires the same way: [`start`] reads the environment ([`config`]),
//! builds the AWS adapters from the SDK configuration and reads the deployed `campbridge.toml` version
//! once per cold start; logs as the function's `LoggingConfig` says; and the one mapping from an ingest
//! result to an HTTP response. No sync rule lives here; `shared` decides.

pub mod config;

use std::sync::Arc;

use lambda_http::{Body, Response};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets_manager::SecretsManagerSecrets;
use shared::adapters::sqs::SqsFifoQueue;
use shared::adapters::stored_config::StoredConfig;
use shared::ingest::{Accepted, IngestError};
use shared::setup::SetupError;

pub use config::{ConfigError, LambdaConfig, LambdaEnv, LogSettings};

/// The AWS side of a function, built once per cold start.
pub struct Aws {
    pub queue: Arc<SqsFifoQueue>,
    pub secrets: Arc<SecretsManagerSecrets>,
    pub table: Option<Arc<DynamoStore>>,
    pub stored_config: StoredConfig,
}

impl Aws {
    /// Builds the SDK clients (region, credentials and endpoints from the standard AWS environment,
    /// so `AWS_ENDPOINT_URL_*` points them at emulators) and the adapters over them.
    pub async fn connect(env: &LambdaEnv) -> Self {
        let sdk = shared::adapters::aws_sdk::load().await;
        // The only consumer among the functions is the sync-mapper, fed by the event source mapping, which
        // deletes every message the handler does not report (a requeued or dead-lettered one included).
        let mut queue = SqsFifoQueue::new(aws_sdk_sqs::Client::new(&sdk), &env.queue_url).deleted_by_event_source();
        if let Some(dlq) = &env.dead_letter_queue_url {
            queue = queue.with_dead_letter_queue(dlq.clone());
        }
        let queue = Arc::new(queue);
        let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk);
        let secrets = Arc::new(SecretsManagerSecrets::new(secrets_client.clone(), &env.secret_prefix));
        let stored_config = StoredConfig::new(secrets_client, &env.secret_prefix);
        let table =
            env.table.as_ref().map(|t| Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), t.clone())));
        Self { queue, secrets, table, stored_config }
    }
}

/// A cold start: the environment, the AWS adapters, and the configuration version this deployment runs,
/// read from Secrets Manager and validated. Fails, naming what is wrong, before any event is taken.
pub async fn start() -> Result<(LambdaConfig, Aws), StartError> {
    let env = LambdaEnv::from_env().map_err(cold_start_failed)?;
    let aws = Aws::connect(&env).await;
    let stored =
        aws.stored_config.read(Some(&env.config_version)).await.map_err(|e| cold_start_failed(ConfigError::from(e)))?;
    let config = env.with_config(&stored.text).map_err(cold_start_failed)?;
    tracing::info!(
        config_version = %config.config_version,
        routes = config.campbridge.routes.len(),
        "configuration loaded"
    );
    Ok((config, aws))
}

/// Logs why a cold start failed, readable in CloudWatch (the runtime prints only the error's `Debug`
/// when `main` returns it), and returns it.
pub fn cold_start_failed(e: impl Into<StartError>) -> StartError {
    let e = e.into();
    tracing::error!(error = %e, "cold start failed");
    e
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The one mapping from an ingest result to the function URL's response: 202 with a small JSON body,
/// or the error's status with a reason that is safe to show (never a secret or the request body).
pub fn respond(result: Result<Accepted, IngestError>) -> Response<Body> {
    let (status, body) = match result {
        Ok(Accepted::Enqueued { delivery, duplicate }) => {
            (202, serde_json::json!({ "status": "accepted", "delivery": delivery.as_str(), "duplicate": duplicate }))
        }
        Ok(Accepted::Ignored { reason }) => (202, serde_json::json!({ "status": "ignored", "reason": reason })),
        Err(e) => {
            // A 5xx is ours to fix (the queue refused, a permission is missing); a 4xx is the sender's.
            if e.status() >= 500 {
                tracing::error!(status = e.status(), error = %e, "webhook not accepted");
            } else {
                tracing::info!(status = e.status(), error = %e, "webhook rejected");
            }
            (e.status(), serde_json::json!({ "error": e.reason() }))
        }
    };
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() =
        lambda_http::http::StatusCode::from_u16(status).unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The request's headers as name/value pairs (values that are not text are dropped).
pub fn header_pairs(headers: &lambda_http::http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
}

/// Runs one invocation in a fresh metrics registry and prints what it counted to stdout as CloudWatch
/// embedded metric format lines (namespace [`shared::metrics::NAMESPACE`]): CloudWatch Logs turns them into
/// metrics, so publishing needs no API call and no IAM permission beyond the log group the function
/// already writes. An invocation that counted nothing prints nothing.
pub async fn with_metrics<F: std::future::Future>(invocation: F) -> F::Output {
    let (output, lines) = measured(invocation).await;
    for line in lines {
        println!("{line}");
    }
    output
}

/// [`with_metrics`] without the printing: the output and the EMF lines (tests parse them back).
pub async fn measured<F: std::future::Future>(invocation: F) -> (F::Output, Vec<String>) {
    let registry = shared::metrics::Registry::new();
    let output = shared::metrics::scoped(registry.clone(), invocation).await;
    (output, registry.emf(chrono::Utc::now()))
}

/// Logs for CloudWatch as the function's `LoggingConfig` asks ([`LogSettings`]): JSON by default, without
/// ANSI colours or timestamps (CloudWatch adds its own).
///
/// The filter is a [`Targets`](tracing_subscriber::filter::Targets) list (`info`, `shared=debug,warn`), not
/// an `EnvFilter`: the functions never filter on span fields, and `EnvFilter` links a regex engine into
/// every function (decision 0004).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let settings = LogSettings::from_env();
    let filter = settings.targets();
    let builder = tracing_subscriber::fmt().with_ansi(false).without_time().with_target(false);
    if settings.json {
        builder.json().with_current_span(false).finish().with(filter).init();
    } else {
        builder.finish().with(filter).init();
    }
}
