//! A scripted HTTP server on 127.0.0.1:0 for the client tests: each (method, path) answers from a
//! queue of replies (the last one repeats), bodies are the real fixtures, and every request is
//! recorded so tests can assert what the client sent. `{origin}` in a reply's body or headers is
//! replaced by the server's own `http://127.0.0.1:<port>`, for paging links.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Reads `tests/fixtures/<rel>` from the workspace root.
pub fn fixture(rel: &str) -> String {
    let path = format!("{}/../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A fixture parsed as JSON.
pub fn fixture_json(rel: &str) -> Value {
    serde_json::from_str(&fixture(rel)).unwrap_or_else(|e| panic!("fixture {rel} is not JSON: {e}"))
}

#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: body.into(),
        }
    }
    pub fn value(status: u16, body: &Value) -> Self {
        Self::json(status, body.to_string())
    }
    pub fn fixture(status: u16, rel: &str) -> Self {
        Self::json(status, fixture(rel))
    }
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self { status, headers: vec![("content-type".into(), content_type.into())], body: body.into() }
    }
    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new() }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/todos/1.json?page=2`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

struct Route {
    method: String,
    path: String,
    replies: VecDeque<Reply>,
}

#[derive(Default)]
struct Shared {
    origin: String,
    routes: Mutex<Vec<Route>>,
    log: Mutex<Vec<Recorded>>,
}

pub struct TestServer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { origin, ..Shared::default() });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { shared, task }
    }

    /// `origin` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.origin)
    }

    /// Queues `reply` for `method path`. A `path` with `?` matches only that query, and wins over a
    /// route without one.
    pub fn on(&self, method: &str, path: &str, reply: Reply) -> &Self {
        let mut routes = self.shared.routes.lock().unwrap();
        match routes.iter_mut().find(|r| r.method == method && r.path == path) {
            Some(route) => route.replies.push_back(reply),
            None => routes.push(Route { method: method.into(), path: path.into(), replies: VecDeque::from([reply]) }),
        }
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests to `method path` (path without query).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path() == path).collect()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    shared.log.lock().unwrap().push(Recorded {
        method: method.as_str().to_owned(),
        target: target.clone(),
        headers: headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = {
        let mut routes = shared.routes.lock().unwrap();
        // A route naming the query wins over one naming only the path.
        let exact = routes.iter().position(|r| r.method == method.as_str() && r.path == target);
        let loose = || routes.iter().position(|r| r.method == method.as_str() && r.path == uri.path());
        let route = exact.or_else(loose).map(|i| &mut routes[i]);
        route.and_then(|r| if r.replies.len() > 1 { r.replies.pop_front() } else { r.replies.front().cloned() })
    };
    let Some(reply) = reply else {
        return (StatusCode::NOT_FOUND, format!("no scripted reply for {method} {target}")).into_response();
    };
    let mut response = Response::new(axum::body::Body::from(reply.body.replace("{origin}", &shared.origin)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().append(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::try_from(value.replace("{origin}", &shared.origin)).unwrap(),
        );
    }
    response
}
