//! campbridge's library: everything the Lambda functions and the `campbridge` command share.
//!
//! - [`domain`]: identifiers, normalized records, pairs, jobs and route rules (pure).
//! - [`sync`]: the engine — a pure `decide`, the executor that applies its plan through the ports, the
//!   mapper use case, signals and selective comments.
//! - [`ingest`]: what every receiver does with a webhook (verify, route, enqueue).
//! - [`metrics`]: counts and latencies, rendered as Prometheus text (`serve`) or CloudWatch EMF (functions).
//! - [`ports`]: one trait per external capability, with written contracts.
//! - [`adapters`]: memory and SQLite implementations of the storage ports; DynamoDB, SQS FIFO and Secrets
//!   Manager behind the `aws` feature.
//! - [`clients`]: Basecamp, Jira and Bitbucket API clients; [`richtext`]: Basecamp HTML ⇄ Jira ADF.
//! - [`webhook`]: signature checks and parsing of inbound webhooks.
//! - [`config`]: `campbridge.toml`, validated with line-numbered errors; [`doctor`]: setup checks;
//!   [`setup`]: config + secrets → clients, receivers and the engine, the same for every runtime;
//!   [`deploy`]: the AWS stack's secrets and each function's permissions, declared once.

pub mod adapters;
pub mod clients;
pub mod config;
pub mod deploy;
pub mod doctor;
pub mod domain;
pub mod ingest;
pub mod metrics;
pub mod outbound;
pub mod ports;
pub mod richtext;
pub mod setup;
pub mod sync;
pub mod webhook;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
