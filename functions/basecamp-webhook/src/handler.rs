//! Function URL request → `shared::ingest::BasecampReceiver`. Basecamp webhooks are unsigned: the
//! secret route token is the last path segment (`/basecamp/<token>`).

use std::sync::Arc;

use campbridge_lambda::respond;
use lambda_http::{Body, Request, Response};
use shared::ingest::{BasecampReceiver, IngestError};
use shared::ports::JobQueue;

/// What every invocation shares.
pub struct State {
    /// `None`: the configuration has no webhook key (no routes) section, so every request is 404.
    pub receiver: Option<BasecampReceiver>,
    pub queue: Arc<dyn JobQueue>,
}

pub async fn handle(state: &State, request: Request) -> Response<Body> {
    let token = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
    let result = match &state.receiver {
        Some(r) => r.receive(state.queue.as_ref(), &token, request.body(), chrono::Utc::now()).await,
        None => Err(IngestError::NotConfigured("Basecamp")),
    };
    respond(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use shared::adapters::memory::{ManualClock, MemoryJobQueue};
    use shared::domain::Job;
    use shared::testkit::{at, route};

    use super::*;
    use shared::ports::{JobConsumer, QueueOperator};

    /// The receiver with the documented test key of events/README.md.
    fn state() -> (State, Arc<MemoryJobQueue>) {
        let queue = Arc::new(MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))));
        let receiver = BasecampReceiver::new(&[route()], SecretString::from("campbridge-test-webhook-key"));
        (State { receiver: Some(receiver), queue: queue.clone() }, queue)
    }

    fn event(name: &str) -> Request {
        let path = format!("{}/../../events/basecamp-webhook/{name}", env!("CARGO_MANIFEST_DIR"));
        lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_todo_event_on_the_routes_url_is_accepted_and_enqueued_once() {
        let (state, queue) = state();
        let response = handle(&state, event("todo-completed.json")).await;
        assert_eq!(response.status(), 202);
        let again = handle(&state, event("todo-completed.json")).await;
        assert_eq!(again.status(), 202, "a retried delivery is acknowledged");
        assert_eq!(queue.depth().await.unwrap(), 1, "and enqueued once");
        let msg = queue.receive(1, std::time::Duration::from_secs(30)).await.unwrap();
        assert!(matches!(Job::from_wire(&msg[0].body).unwrap(), Job::TodoChanged { .. }));
    }

    #[tokio::test]
    async fn a_wrong_route_token_is_404_and_enqueues_nothing() {
        let (state, queue) = state();
        let response = handle(&state, event("wrong-token.json")).await;
        assert_eq!(response.status(), 404);
        assert_eq!(queue.depth().await.unwrap(), 0);
    }
}
