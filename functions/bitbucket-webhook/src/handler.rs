//! Function URL request → `shared::ingest::Receivers::bitbucket`: the HMAC signature is checked over the
//! raw body before anything is parsed. Pull-request and build signals are verified and acknowledged;
//! `shared` decides what (if anything) is enqueued for them.

use campbridge_lambda::{header_pairs, respond};
use lambda_http::{Body, Request, Response};
use shared::ingest::Receivers;

/// What every invocation shares. No queue yet: `shared` enqueues no Bitbucket signal in this version.
pub struct State {
    pub receivers: Receivers,
}

pub async fn handle(state: &State, request: Request) -> Response<Body> {
    let headers = header_pairs(request.headers());
    respond(state.receivers.bitbucket(&headers[..], request.body()).await)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use shared::adapters::memory::{ManualClock, MemoryJobQueue};
    use shared::ports::JobQueue;
    use shared::testkit::{at, route};

    use super::*;

    /// The receivers with the documented test secrets of events/README.md.
    fn state() -> (State, Arc<MemoryJobQueue>) {
        let queue = Arc::new(MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))));
        let receivers = Receivers::new(
            &[route()],
            SecretString::from("campbridge-test-webhook-key"),
            None,
            Some(SecretString::from("campbridge-test-bitbucket-secret")),
        );
        (State { receivers }, queue)
    }

    fn event(name: &str) -> Request {
        let path = format!("{}/../../events/bitbucket-webhook/{name}", env!("CARGO_MANIFEST_DIR"));
        lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_signed_pull_request_event_is_verified_and_acknowledged() {
        let (state, queue) = state();
        let response = handle(&state, event("pullrequest-created.json")).await;
        assert_eq!(response.status(), 202);
        assert_eq!(queue.depth().await.unwrap(), 0, "signals are not synced by this version");
    }

    #[tokio::test]
    async fn a_body_changed_after_signing_is_401() {
        let (state, _) = state();
        assert_eq!(handle(&state, event("bad-signature.json")).await.status(), 401);
    }
}
