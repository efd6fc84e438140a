//! The real API clients: [`basecamp`] (OAuth 2 with refresh), [`jira`] (Cloud REST v3) and
//! [`bitbucket`] (Cloud REST 2.0), over the shared plumbing in [`http`].
//!
//! Each client speaks its API in its own types and errors ([`ClientError`]); the Basecamp and Jira
//! clients also implement the engine's ports ([`crate::ports::BasecampApi`],
//! [`crate::ports::TrackerApi`]) and map their records into the domain there. Each client paces itself
//! to its upstream's budget ([`pacing`]), so 429s are rare; they never sleep on Basecamp's or Jira's 429:
//! they return [`ClientError::RateLimited`] with the server's `Retry-After`, and the queue consumer
//! postpones the job. Bitbucket's 429 carries no `Retry-After`, so its client backs off a bounded
//! number of times first.

pub mod basecamp;
pub mod bitbucket;
#[cfg(any(test, feature = "testkit"))]
pub mod contract;
pub mod http;
pub mod jira;
pub mod pacing;
pub mod polling;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::domain::StatusCategory;
use crate::ports::ApiError;

pub use http::{BaseUrl, Credentials, HttpSettings};

/// Errors from the API clients, shaped for the decisions callers make. Messages come from status
/// codes and the APIs' own error fields, never from credentials or raw error pages.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 429: try again after `retry_after` (the server's `Retry-After`, or our backoff when it gave none).
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The credentials are missing, expired or revoked, and refreshing (where there is a refresh) failed.
    #[error("PROVIDER_AUTH_REQUIRED: {0}")]
    AuthRequired(String),
    /// 403: the credentials work but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: gone, or not visible to us (Basecamp answers 404 for both).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server rejected exactly one named field (e.g. `assignee`, or `description` when it was not ADF).
    #[error("field {field} rejected: {message}")]
    FieldRejected { field: String, message: String },
    /// Any other 400/422: retrying the same request will not help.
    #[error("rejected: {0}")]
    Invalid(String),
    /// No available transition leads to a status in this category (statuses are never chosen by name).
    #[error("no available transition leads to a status in category `{}`", .0.as_jira_key())]
    NoTransition(StatusCategory),
    /// Bitbucket Cloud's issue tracker and its API were removed on 2026-08-20.
    #[error(
        "Bitbucket Cloud issues were removed on 2026-08-20 (their endpoints answer 410 Gone); \
         route issues to Jira instead"
    )]
    IssuesRemoved,
    /// 410 for anything else (e.g. Bitbucket's removed cross-workspace endpoints, Jira's old search).
    #[error("endpoint removed: {0}")]
    Gone(String),
    /// 5xx, timeouts, connection failures, 409 conflicts: retrying may help.
    #[error("transient upstream failure: {0}")]
    Transient(String),
    /// The response did not have the shape we expect.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The outbound guard refused the destination (a private, loopback, link-local or reserved address,
    /// or plain http): nothing was sent. Not retryable as it stands; the base URL or DNS must change.
    #[error("PROVIDER_BASE_URL_BLOCKED: {0}")]
    Blocked(String),
    /// The client was configured wrongly (bad base URL, …).
    #[error("client configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ClientError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            ClientError::AuthRequired(m) => ApiError::AuthRequired(m),
            ClientError::Forbidden(m) => ApiError::Forbidden(m),
            ClientError::FieldRejected { field, message } => ApiError::FieldRejected { field, message },
            ClientError::Transient(m) => ApiError::Transient(m),
            e @ (ClientError::NotFound(_)
            | ClientError::Invalid(_)
            | ClientError::NoTransition(_)
            | ClientError::IssuesRemoved
            | ClientError::Gone(_)) => ApiError::Invalid(e.to_string()),
            e @ (ClientError::Decode(_) | ClientError::Config(_) | ClientError::Blocked(_)) => {
                ApiError::Unexpected(anyhow::anyhow!(e.to_string()))
            }
            ClientError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

/// `Ok(None)` for a 404, for reads whose contract is "gone or no access".
pub(crate) fn found<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
