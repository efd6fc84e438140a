//! Pieces every simulator shares: the HTTP server lifecycle, per-endpoint call counting, fault
//! injection, webhook delivery (with signing, retries and delivery faults) and small JSON helpers.

pub mod basic_auth;
pub mod calls;
pub mod control;
pub mod faults;
pub mod json;
pub mod server;
pub mod signing;
pub mod webhooks;

pub use calls::{CallCounter, Calls};
pub use faults::{Faults, Forced429, SharedFaults, WebhookFaults};
pub use server::Server;
pub use webhooks::{DeliveryRecord, Dispatcher, Outgoing, RetryPolicy};

/// Errors a simulator can raise while starting or being driven through its Rust API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the loopback listener failed.
    #[error("failed to bind the simulator's listener: {0}")]
    Bind(#[from] std::io::Error),
    /// The request named a record the simulator does not hold.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request was malformed or broke a rule of the simulated API.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Building the HTTP client used for webhook deliveries failed.
    #[error("failed to build the webhook client: {0}")]
    Client(#[from] reqwest::Error),
}
