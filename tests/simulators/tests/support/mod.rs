//! Test helpers: a tiny webhook receiver and fixture loading.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

#[derive(Clone, Default)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
}

/// A webhook receiver on 127.0.0.1:0 answering with a settable status.
pub struct Receiver {
    pub url: String,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Shared { got: Arc::default(), status: Arc::new(Mutex::new(200)) };
        let app = Router::new().route("/hook", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, _task: task }
    }

    pub fn respond_with(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.got.lock().unwrap().push(Received { headers, body });
    StatusCode::from_u16(*shared.status.lock().unwrap()).unwrap()
}

/// A fixture copied into tests/fixtures/<service>/.
pub fn fixture(service: &str, name: &str) -> Value {
    let path = format!("{}/../fixtures/{service}/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The raw bytes of a fixture.
pub fn fixture_bytes(service: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../fixtures/{service}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// Asserts the response carries exactly the fixture's top-level keys.
pub fn assert_same_keys(actual: &Value, expected: &Value, what: &str) {
    assert_eq!(keys(actual), keys(expected), "top-level keys of {what} differ from the fixture");
}
