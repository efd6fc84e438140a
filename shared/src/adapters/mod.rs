//! Adapters for the storage ports, named after their technology.
//!
//! - [`memory`]: `Mutex`-guarded maps for unit tests and benchmarks, plus [`memory::ManualClock`].
//! - [`sqlite`]: the embedded default for local mode (one file, WAL).
//! - [`env_secrets`]: local mode's secret store, read from `CAMPBRIDGE_SECRET_*` environment variables.
//! - `dynamo`, `sqs`, `secrets_manager` (feature `aws`): DynamoDB, SQS FIFO and Secrets Manager for AWS mode;
//!   `stored_config`: a stack's `campbridge.toml`, validated, versioned, in Secrets Manager; `aws_sdk`: the
//!   SDK configuration every AWS client is built from (its HTTPS client on the workspace's one TLS provider).
//!
//! Every adapter passes the same contract suite (`testkit::contract`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::StoreError;

#[cfg(feature = "aws")]
pub mod aws_sdk;
#[cfg(feature = "aws")]
pub mod dynamo;
pub mod env_secrets;
pub mod memory;
#[cfg(feature = "aws")]
pub mod secrets_manager;
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(feature = "aws")]
pub mod stored_config;

/// How many times a queue message may be received before the next receive dead-letters it (SQS's
/// `maxReceiveCount`), unless an adapter is built with another value.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// A send whose deduplication id was accepted this recently is a duplicate, even if the first message is
/// gone already (SQS FIFO's deduplication interval).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// `t + d`, or an error when it leaves chrono's range (a caller passed an absurd lease or retention).
pub(crate) fn later(t: DateTime<Utc>, d: Duration) -> Result<DateTime<Utc>, StoreError> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("time {t} plus {d:?} is out of range")))
}

/// `t - d`, saturating at the earliest representable instant.
pub(crate) fn earlier(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_sub_signed(d)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
