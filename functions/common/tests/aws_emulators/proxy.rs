//! The rehearsal's window on AWS calls: a loopback proxy in front of moto that every function (and the
//! harness when it plays the Lambda service) talks to. For each request signed with a function role's
//! key it records the authorizations the request needs ([`iam::calls`]), checks them against the role's
//! true policies, and refuses what they do not allow with the service's `AccessDenied` error, as AWS
//! would, before moto sees it; allowed requests go to moto unchanged (moto then checks the signature,
//! the session and the action itself). Requests under other keys (the deploying user) pass through.
//!
//! With enforcement off the proxy only records and forwards, so moto's own IAM check is the one that
//! answers (the negative control uses that to show moto refusing on its own).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::iam::{self, Arns, Call, Statement};

/// One authorization a function's request needed, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub function: String,
    pub call: Call,
    /// Whether the role's true policies allow it.
    pub allowed: bool,
    /// The status the caller got (the proxy's refusal, or moto's answer).
    pub status: u16,
    /// moto's answer named an access denial (`AccessDenied…`).
    pub moto_denied: bool,
}

/// A function role the proxy knows by its access key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub function: String,
    pub role_arn: String,
    pub statements: Vec<Statement>,
}

struct Inner {
    target: String,
    client: reqwest::Client,
    callers: Mutex<BTreeMap<String, Caller>>,
    arns: Mutex<Arns>,
    enforce: AtomicBool,
    records: Mutex<Vec<Record>>,
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct Proxy {
    inner: Arc<Inner>,
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Proxy {
    /// Starts a proxy forwarding to `target` (moto's endpoint).
    pub async fn start(target: &str) -> Self {
        let inner = Arc::new(Inner {
            target: target.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            callers: Mutex::new(BTreeMap::new()),
            arns: Mutex::new(Arns::default()),
            enforce: AtomicBool::new(true),
            records: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(inner.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("the rehearsal proxy stopped: {e}");
            }
        });
        Self { inner, url, server }
    }

    /// Requests signed with `access_key_id` are `caller`'s.
    pub fn add_caller(&self, access_key_id: &str, caller: Caller) {
        self.inner.callers.lock().unwrap().insert(access_key_id.to_owned(), caller);
    }

    pub fn set_arns(&self, arns: Arns) {
        *self.inner.arns.lock().unwrap() = arns;
    }

    /// Whether the proxy refuses what the true policies do not allow (default) or only records.
    pub fn set_enforcing(&self, on: bool) {
        self.inner.enforce.store(on, Ordering::SeqCst);
    }

    /// Everything recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.inner.records.lock().unwrap().clone()
    }
}

fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

/// The error an AWS JSON service sends for a denied call.
fn access_denied(target: &str, caller: &Caller, call: &Call) -> Response {
    let (code, content_type) = if target.starts_with("AmazonSQS.") {
        ("AccessDenied", "application/x-amz-json-1.0")
    } else if target.starts_with("DynamoDB_") {
        ("AccessDeniedException", "application/x-amz-json-1.0")
    } else {
        ("AccessDeniedException", "application/x-amz-json-1.1")
    };
    let message = format!(
        "User: {}/{} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
        caller.role_arn.replace(":role/", ":assumed-role/").replace("arn:aws:iam:", "arn:aws:sts:"),
        caller.function,
        call.action,
        call.resource,
        call.action
    );
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let mut response = (StatusCode::BAD_REQUEST, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    if code == "AccessDenied" {
        headers.insert("x-amzn-query-error", HeaderValue::from_static("AccessDenied;Sender"));
    }
    response
}

async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large for the rehearsal proxy").into_response();
    };
    let caller = access_key(&parts.headers).and_then(|k| inner.callers.lock().unwrap().get(&k).cloned());
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut pending = Vec::new();
    if let Some(caller) = &caller {
        let arns = inner.arns.lock().unwrap().clone();
        let calls = match iam::calls(&target, &body, &arns) {
            Ok(c) => c,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("rehearsal proxy: {e}")).into_response(),
        };
        for call in calls {
            let allowed = iam::allowed(&caller.statements, &call);
            if !allowed && inner.enforce.load(Ordering::SeqCst) {
                let response = access_denied(&target, caller, &call);
                inner.records.lock().unwrap().push(Record {
                    function: caller.function.clone(),
                    call,
                    allowed,
                    status: response.status().as_u16(),
                    moto_denied: false,
                });
                return response;
            }
            pending.push((call, allowed));
        }
    }
    let response = send(&inner, &parts, body).await;
    if let Some(caller) = &caller {
        let (status, denied) = match &response {
            Ok((status, _, body)) => (*status, String::from_utf8_lossy(body).contains("AccessDenied")),
            Err(_) => (502, false),
        };
        let mut records = inner.records.lock().unwrap();
        for (call, allowed) in pending {
            records.push(Record { function: caller.function.clone(), call, allowed, status, moto_denied: denied });
        }
    }
    match response {
        Ok((status, headers, body)) => {
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (k, v) in &headers {
                if !matches!(k.as_str(), "transfer-encoding" | "connection" | "content-length") {
                    out.headers_mut().append(k.clone(), v.clone());
                }
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("rehearsal proxy: moto did not answer: {e}")).into_response(),
    }
}

/// The request as it came (headers included, so moto checks the caller's own signature), to moto.
async fn send(
    inner: &Inner,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Result<(u16, reqwest::header::HeaderMap, Bytes), reqwest::Error> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut request = inner.client.request(method, format!("{}{path}", inner.target));
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "connection" | "transfer-encoding" | "content-length") {
            request = request.header(k.as_str(), v.as_bytes());
        }
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?))
}
