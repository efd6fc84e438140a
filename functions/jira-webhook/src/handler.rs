//! Function URL request → `shared::ingest::JiraReceiver`: the HMAC signature is checked over the raw
//! body before anything is parsed; duplicates are keyed on `X-Atlassian-Webhook-Identifier`.

use std::sync::Arc;

use campbridge_lambda::{header_pairs, respond};
use lambda_http::{Body, Request, Response};
use shared::ingest::{IngestError, JiraReceiver};
use shared::ports::JobQueue;

/// What every invocation shares.
pub struct State {
    /// `None`: the configuration has no Jira section, so every request is 404.
    pub receiver: Option<JiraReceiver>,
    pub queue: Arc<dyn JobQueue>,
}

pub async fn handle(state: &State, request: Request) -> Response<Body> {
    let headers = header_pairs(request.headers());
    let result = match &state.receiver {
        Some(r) => r.receive(state.queue.as_ref(), &headers[..], request.body(), chrono::Utc::now()).await,
        None => Err(IngestError::NotConfigured("Jira")),
    };
    respond(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use shared::adapters::memory::{ManualClock, MemoryJobQueue};
    use shared::testkit::{at, route};

    use super::*;
    use shared::ports::QueueOperator;

    /// The receiver with the documented test secret of events/README.md.
    fn state() -> (State, Arc<MemoryJobQueue>) {
        let queue = Arc::new(MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))));
        let receiver = JiraReceiver::new(&[route()], SecretString::from("campbridge-test-jira-secret"));
        (State { receiver: Some(receiver), queue: queue.clone() }, queue)
    }

    fn event(name: &str) -> Request {
        let path = format!("{}/../../events/jira-webhook/{name}", env!("CARGO_MANIFEST_DIR"));
        lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_signed_issue_event_for_a_routed_project_is_enqueued() {
        let (state, queue) = state();
        let response = handle(&state, event("issue-updated.json")).await;
        assert_eq!(response.status(), 202);
        assert_eq!(queue.depth().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_bad_signature_is_401_and_enqueues_nothing() {
        let (state, queue) = state();
        let response = handle(&state, event("bad-signature.json")).await;
        assert_eq!(response.status(), 401);
        assert_eq!(queue.depth().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn without_a_jira_section_every_request_is_404() {
        let queue = Arc::new(MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))));
        let state = State { receiver: None, queue: queue.clone() };
        assert_eq!(handle(&state, event("issue-updated.json")).await.status(), 404);
        assert_eq!(queue.depth().await.unwrap(), 0);
    }
}
