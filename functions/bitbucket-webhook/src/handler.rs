//! Function URL request → `shared::ingest::BitbucketReceiver`: the HMAC signature is checked over the
//! raw body before anything is parsed; pull requests and build statuses are enqueued as signal jobs.

use std::sync::Arc;

use campbridge_lambda::{header_pairs, respond};
use lambda_http::{Body, Request, Response};
use shared::ingest::{BitbucketReceiver, IngestError};
use shared::ports::JobQueue;

/// What every invocation shares.
pub struct State {
    /// `None`: the configuration has no Bitbucket section, so every request is 404.
    pub receiver: Option<BitbucketReceiver>,
    pub queue: Arc<dyn JobQueue>,
}

pub async fn handle(state: &State, request: Request) -> Response<Body> {
    let headers = header_pairs(request.headers());
    let result = match &state.receiver {
        Some(r) => r.receive(state.queue.as_ref(), &headers[..], request.body(), chrono::Utc::now()).await,
        None => Err(IngestError::NotConfigured("Bitbucket")),
    };
    respond(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use shared::adapters::memory::{ManualClock, MemoryJobQueue};
    use shared::ports::JobConsumer;
    use shared::testkit::at;

    use super::*;

    /// The receiver with the documented test secret of events/README.md.
    fn state() -> (State, Arc<MemoryJobQueue>) {
        let queue = Arc::new(MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))));
        let receiver = BitbucketReceiver::new(SecretString::from("campbridge-test-bitbucket-secret"));
        (State { receiver: Some(receiver), queue: queue.clone() }, queue)
    }

    fn event(name: &str) -> Request {
        let path = format!("{}/../../events/bitbucket-webhook/{name}", env!("CARGO_MANIFEST_DIR"));
        lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_signed_pull_request_event_is_verified_and_enqueued_as_a_signal() {
        let (state, queue) = state();
        let response = handle(&state, event("pullrequest-created.json")).await;
        assert_eq!(response.status(), 202);
        let messages = queue.receive(10, std::time::Duration::from_secs(30)).await.unwrap();
        assert_eq!(messages.len(), 1);
        let job = shared::domain::Job::from_wire(&messages[0].body).unwrap();
        assert_eq!(job.kind(), "pull_request_changed");
    }

    #[tokio::test]
    async fn a_body_changed_after_signing_is_401() {
        let (state, _) = state();
        assert_eq!(handle(&state, event("bad-signature.json")).await.status(), 401);
    }
}
