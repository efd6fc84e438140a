//! What every campbridge Lambda function wires the same way: [`config`] read once from the environment,
//! the AWS adapters built from the SDK configuration, JSON logs, and the one mapping from an ingest
//! result to an HTTP response. No sync rule lives here; `shared` decides.

pub mod config;

use std::sync::Arc;

use lambda_http::{Body, Response};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets_manager::SecretsManagerSecrets;
use shared::adapters::sqs::SqsFifoQueue;
use shared::ingest::{Accepted, IngestError, Receivers};
use shared::ports::SecretStore;
use shared::setup::SetupError;

pub use config::{ConfigError, LambdaConfig};

/// The AWS side of a function, built once per cold start.
pub struct Aws {
    pub queue: Arc<SqsFifoQueue>,
    pub secrets: Arc<SecretsManagerSecrets>,
    pub table: Option<Arc<DynamoStore>>,
}

impl Aws {
    /// Builds the SDK clients (region, credentials and endpoints from the standard AWS environment,
    /// so `AWS_ENDPOINT_URL_*` points them at emulators) and the adapters over them.
    pub async fn connect(config: &LambdaConfig) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let queue = Arc::new(SqsFifoQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue_url));
        let secrets =
            Arc::new(SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secret_prefix));
        let table =
            config.table.as_ref().map(|t| Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), t.clone())));
        Self { queue, secrets, table }
    }
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The receivers for this deployment's routes, with the webhook secrets read once from the secret store.
/// A source without a configured secret answers 404 (see [`IngestError::NotConfigured`]).
pub async fn receivers(config: &LambdaConfig, secrets: &dyn SecretStore) -> Result<Receivers, StartError> {
    Ok(shared::setup::receivers(&config.campbridge, secrets).await?)
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
            tracing::info!(status = e.status(), error = %e, "webhook rejected");
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

/// JSON logs for CloudWatch, level from `RUST_LOG` (default `info`), without ANSI colours or timestamps
/// (CloudWatch adds its own).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}
