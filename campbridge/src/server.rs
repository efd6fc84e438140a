//! Local mode's HTTP side and workers: the receivers (`POST /basecamp/{token}`, `/jira`, `/bitbucket`)
//! over the same `shared::ingest` code the Lambda functions use, `GET /metrics` (Prometheus text),
//! `GET /healthz` (the store and the queue answer) and `GET /readyz` (not draining), mapper workers
//! running `shared::sync` over the durable queue, and the reconciler on an interval (what the reconciler
//! function does on its schedule in AWS mode). Graceful shutdown (Ctrl-C or SIGTERM) stops accepting
//! requests, lets the requests in flight finish, then lets the workers finish the batch in hand and the
//! reconciler the pass in hand.
//!
//! The listener holds against slow and greedy clients ([`Limits`]): a request's headers must arrive within
//! `header_read_timeout` (an idle keep-alive connection is closed after as long), its body within
//! `body_read_timeout` (else 408), and at most `max_connections` connections are served at once — one more
//! is answered `503` with `Retry-After` and closed. Store work runs on blocking threads (the SQLite
//! adapter), so a database locked by another process delays the requests that need it; `/healthz` waits
//! at most [`PROBE_TIMEOUT`] for each and then says which did not answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use shared::ingest::{Accepted, IngestError, Receivers};
use shared::metrics::Registry;
use shared::ports::{Clock, JobQueue};
use shared::sync::{Engine, Outcome, ReconcileReport, Reconciler, run_queue_once};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// What the request handlers share.
#[derive(Clone)]
pub struct App {
    pub receivers: Arc<Receivers>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    /// Wakes the workers when a job arrives, so local mode syncs at once instead of on the next poll.
    pub wake: Arc<Notify>,
    /// Where this server's receivers, workers and reconciler count (`GET /metrics`).
    pub metrics: Arc<Registry>,
    /// What `/healthz` checks.
    pub health: Arc<dyn Health>,
    /// False once the server is draining: `/readyz` answers 503 from then on.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
}

/// What `/healthz` checks: each dependency by name (`store`, `queue`), and why it is down.
#[async_trait::async_trait]
pub trait Health: Send + Sync {
    async fn check(&self) -> Vec<(&'static str, Result<(), String>)>;
}

/// Local mode's store and queue: tables of one SQLite file, each read on a connection of its own.
pub struct SqliteHealth {
    pub path: std::path::PathBuf,
}

#[async_trait::async_trait]
impl Health for SqliteHealth {
    async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut results = Vec::new();
        for (what, table) in [("store", "pairs"), ("queue", "jobs")] {
            let path = self.path.clone();
            let read = tokio::task::spawn_blocking(move || {
                shared::adapters::sqlite::probe(&path, table, PROBE_TIMEOUT / 2).map_err(|e| format!("{e:#}"))
            });
            let result = match probe(read).await {
                Ok(answer) => answer,
                Err(e) => Err(e),
            };
            results.push((what, result));
        }
        results
    }
}

/// Any store and queue, through their ports (a list of one pair, the queue's depth); for stores other
/// than local mode's SQLite file (the chaos harness's DynamoDB and SQS).
pub struct PortsHealth {
    pub pairs: Arc<dyn shared::ports::PairStore>,
    pub queue: Arc<dyn JobQueue>,
}

#[async_trait::async_trait]
impl Health for PortsHealth {
    async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let store = probe(self.pairs.list(None, None, 1)).await.map(drop);
        let queue = probe(self.queue.depth()).await.map(drop);
        vec![("store", store), ("queue", queue)]
    }
}

/// How long `/healthz` and `/metrics` wait for the store or the queue before calling it unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How much the listener gives any one client. The defaults suit webhook senders, which post a few KB
/// and wait at most 10 s (Bitbucket) for the answer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's line and headers must arrive within this; an idle keep-alive connection is closed after it.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this after its headers, else `408`.
    pub body_read_timeout: Duration,
    /// Connections served at once; one more is answered `503` with `Retry-After` and closed.
    pub max_connections: usize,
    /// The `Retry-After` sent with that `503`.
    pub retry_after: Duration,
    /// On shutdown, `/readyz` answers 503 and the server keeps serving this long before it closes the
    /// listener (0 by default: it closes at once).
    pub drain_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            retry_after: Duration::from_secs(1),
            drain_delay: Duration::ZERO,
        }
    }
}

/// The handlers' state: the app and the limits its bodies are read under.
#[derive(Clone)]
struct Served {
    app: App,
    limits: Limits,
}

/// The receivers' routes with the default [`Limits`].
pub fn router(app: App) -> Router {
    router_with(app, Limits::default())
}

/// The receivers' routes, reading bodies under `limits`.
pub fn router_with(app: App, limits: Limits) -> Router {
    Router::new()
        .route("/basecamp/{token}", post(basecamp))
        .route("/jira", post(jira))
        .route("/bitbucket", post(bitbucket))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Served { app, limits })
}

/// `GET /healthz`: 200 `ok` when the store and the queue answer within [`PROBE_TIMEOUT`]; otherwise 503
/// with a JSON body naming what is down and why.
async fn healthz(State(s): State<Served>) -> Response {
    let checked = tokio::time::timeout(PROBE_TIMEOUT * 2, s.app.health.check()).await;
    let checked = checked.unwrap_or_else(|_| vec![("store and queue", Err("no answer in time".to_owned()))]);
    let down: Vec<String> =
        checked.into_iter().filter_map(|(what, r)| r.err().map(|why| format!("{what}: {why}"))).collect();
    if down.is_empty() {
        return (StatusCode::OK, "ok").into_response();
    }
    warn!(down = %down.join("; "), "health check failed");
    let body = serde_json::json!({ "status": "unhealthy", "down": down });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// Runs a store or queue call under [`PROBE_TIMEOUT`]; the error in words.
async fn probe<T, E: std::fmt::Display>(call: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// `GET /readyz`: 200 while the server takes work; 503 `draining` once it is shutting down (an
/// orchestrator stops sending traffic; the requests in flight still finish).
async fn readyz(State(s): State<Served>) -> Response {
    if s.app.ready.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    }
}

/// `GET /metrics`: the counters in the Prometheus text format, with the queue's depth and dead letters
/// read now (left out when the queue does not answer).
async fn metrics(State(s): State<Served>) -> Response {
    let mut gauges = Vec::new();
    if let Ok(depth) = probe(s.app.queue.depth()).await {
        gauges.push(("queue_depth", "Messages waiting on the job queue", depth));
    }
    if let Ok(dead) = probe(s.app.queue.dead_letters()).await {
        gauges.push(("dead_letters", "Messages in the dead letters", dead.len() as u64));
    }
    let text = s.app.metrics.prometheus(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    info!(status = status.as_u16(), reason, "webhook rejected");
    (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
}

/// The webhook body, after checking its media type (every source posts `application/json`: Basecamp and
/// Bitbucket exactly that, Jira with `; charset=utf-8`) and reading it within the body timeout. The
/// read stops just above the receivers' own limit, so they answer 413 with their reason.
async fn webhook_body(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Bytes, Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"));
    }
    let read = axum::body::to_bytes(body, shared::webhook::MAX_BODY_BYTES + 1024);
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {} bytes", shared::webhook::MAX_BODY_BYTES),
        )),
        Err(_) => Err(refuse(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time")),
    }
}

fn respond(result: Result<Accepted, IngestError>, app: &App) -> Response {
    match result {
        Ok(Accepted::Enqueued { delivery, duplicate }) => {
            app.wake.notify_waiters();
            let body =
                serde_json::json!({ "status": "accepted", "delivery": delivery.as_str(), "duplicate": duplicate });
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Ok(Accepted::Ignored { reason }) => {
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "status": "ignored", "reason": reason })))
                .into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            info!(status = status.as_u16(), error = %e, "webhook rejected");
            (status, axum::Json(serde_json::json!({ "error": e.reason() }))).into_response()
        }
    }
}

async fn basecamp(State(s): State<Served>, Path(token): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let body = match webhook_body(&headers, body, &s.limits).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let received = s.app.receivers.basecamp(s.app.queue.as_ref(), &token, &body, s.app.clock.now());
    let result = shared::metrics::scoped(s.app.metrics.clone(), received).await;
    respond(result, &s.app)
}

async fn jira(State(s): State<Served>, headers: HeaderMap, body: Body) -> Response {
    let body = match webhook_body(&headers, body, &s.limits).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let headers = header_pairs(&headers);
    let received = s.app.receivers.jira(s.app.queue.as_ref(), &headers[..], &body, s.app.clock.now());
    let result = shared::metrics::scoped(s.app.metrics.clone(), received).await;
    respond(result, &s.app)
}

async fn bitbucket(State(s): State<Served>, headers: HeaderMap, body: Body) -> Response {
    let body = match webhook_body(&headers, body, &s.limits).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let headers = header_pairs(&headers);
    let received = s.app.receivers.bitbucket(s.app.queue.as_ref(), &headers[..], &body, s.app.clock.now());
    let result = shared::metrics::scoped(s.app.metrics.clone(), received).await;
    respond(result, &s.app)
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then stops accepting and waits
/// for the requests in flight (each connection closes after its current request). Connections the kernel
/// had already completed when the shutdown came (still in the listen backlog) are requests in flight too:
/// each is served for one request, then closed, instead of being reset with the listener.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let serve = |connections: &mut JoinSet<()>, stream, peer, keep_alive| {
        spawn_connection(connections, &permits, &router, limits, &drain_rx, stream, peer, keep_alive);
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        serve(&mut connections, stream, peer, true);
    }
    drain_tx.send_replace(true);
    for (stream, peer) in accept_backlog(listener) {
        serve(&mut connections, stream, peer, false);
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Takes the connections waiting in the listen backlog without blocking, then closes the listener.
fn accept_backlog(listener: tokio::net::TcpListener) -> Vec<(tokio::net::TcpStream, SocketAddr)> {
    let mut waiting = Vec::new();
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            warn!(error = %e, "could not take the waiting connections; they are closed");
            return waiting;
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        warn!(error = %e, "could not take the waiting connections; they are closed");
        return waiting;
    }
    // A non-blocking accept answers WouldBlock once the backlog is empty.
    while let Ok((stream, peer)) = listener.accept() {
        let stream = stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream));
        match stream {
            Ok(stream) => waiting.push((stream, peer)),
            Err(e) => warn!(%peer, error = %e, "could not serve a waiting connection"),
        }
    }
    waiting
}

/// Serves one connection under a permit (or answers `503` when none is left). `keep_alive: false` serves
/// a single request; otherwise the connection lasts until the drain signal, then finishes its request.
#[allow(clippy::too_many_arguments)]
fn spawn_connection(
    connections: &mut JoinSet<()>,
    permits: &Arc<Semaphore>,
    router: &Router,
    limits: Limits,
    drain_rx: &watch::Receiver<bool>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    keep_alive: bool,
) {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        warn!(%peer, max = limits.max_connections, "connection limit reached; answering 503");
        connections.spawn(too_busy(stream, limits.retry_after));
        return;
    };
    let service = TowerToHyperService::new(router.clone());
    let mut drain = drain_rx.clone();
    connections.spawn(async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(keep_alive);
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        // A single-request connection needs no drain: it closes after its answer.
        let mut draining = !keep_alive;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        info!(%peer, error = %e, "connection ended");
                    }
                    break;
                }
                _ = drain.changed(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        drop(permit);
    });
}

/// Answers a connection over the limit with `503` and `Retry-After`, after reading what its request sent
/// within a second (closing on unread data would reset the connection before the client reads the answer).
async fn too_busy(mut stream: tokio::net::TcpStream, retry_after: Duration) {
    let mut buf = [0u8; 4096];
    let _request = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    let body = r#"{"error":"too many connections; retry later"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        retry_after.as_secs().max(1),
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), write).await {
        info!(error = %e, "could not answer 503");
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, what systemd and container runtimes send to stop a service.
///
/// The handlers are installed when this is called, not when the future is first polled: a SIGTERM that
/// arrives between "serving on" and the first poll must drain the server, not kill it with the default
/// action (which resets every connection in flight). Call it inside the runtime, before announcing the
/// server.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => info!("Ctrl-C received"),
                        _ = term.recv() => info!("SIGTERM received"),
                    }
                }
                (Err(e), Ok(mut interrupt)) => {
                    error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                    interrupt.recv().await;
                }
                (Ok(mut term), Err(e)) => {
                    error!(error = %e, "cannot listen for Ctrl-C; only SIGTERM stops gracefully");
                    term.recv().await;
                }
                (Err(e), Err(_)) => {
                    error!(error = %e, "cannot listen for SIGTERM or Ctrl-C; stop the process by other means");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for Ctrl-C");
        }
    }
}

/// Counters the demo and `status` print.
#[derive(Debug, Default)]
pub struct Stats {
    pub echoes: std::sync::atomic::AtomicUsize,
    pub created: std::sync::atomic::AtomicUsize,
    pub updated: std::sync::atomic::AtomicUsize,
    pub conflicts: std::sync::atomic::AtomicUsize,
    /// Reconcile passes finished.
    pub reconcile_passes: std::sync::atomic::AtomicUsize,
}

/// One mapper worker: receive a batch, sync it, settle every message; sleep until woken or polled.
pub async fn worker(
    engine: Engine,
    queue: Arc<dyn JobQueue>,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        if *stop.borrow() {
            return;
        }
        let notified = wake.notified();
        match run_queue_once(&engine, queue.as_ref(), 10, Duration::from_secs(60)).await {
            Ok((0, _)) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok((_, report)) => {
                for outcome in &report.outcomes {
                    match outcome {
                        Outcome::Skipped(_) if outcome.is_echo() => stats.echoes.fetch_add(1, Relaxed),
                        Outcome::Created { .. } => stats.created.fetch_add(1, Relaxed),
                        Outcome::Updated { conflicts, .. } | Outcome::Recorded { conflicts } => {
                            stats.conflicts.fetch_add(*conflicts, Relaxed);
                            stats.updated.fetch_add(1, Relaxed)
                        }
                        Outcome::Skipped(_) | Outcome::Detached { .. } => 0,
                    };
                }
            }
            Err(e) => {
                error!(error = %e, "worker could not use the queue; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A request for a reconcile pass, answered with its report.
type PassRequest = oneshot::Sender<ReconcileReport>;

/// The reconciler as local mode runs it: a pass at start, then one every `every`, and one whenever a
/// [`ReconcileHandle`] asks.
pub struct Reconciling {
    reconciler: Reconciler,
    every: Duration,
    requests: mpsc::Receiver<PassRequest>,
}

/// Asks the running server for a reconcile pass now (the test stack does). Cheap to clone.
#[derive(Clone)]
pub struct ReconcileHandle(mpsc::Sender<PassRequest>);

impl ReconcileHandle {
    /// Runs a pass as soon as the one in hand (if any) is over, and returns its report; `None` when the
    /// server is not running (or stopped before the pass).
    pub async fn pass(&self) -> Option<ReconcileReport> {
        let (tx, rx) = oneshot::channel();
        self.0.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// `reconciler` run every `every` (the first pass at start), and the handle that asks for more passes.
pub fn reconciling(reconciler: Reconciler, every: Duration) -> (Reconciling, ReconcileHandle) {
    let (tx, rx) = mpsc::channel(8);
    // A zero period would make the interval panic; the config refuses anything under 10 s anyway.
    let every = every.max(Duration::from_secs(1));
    (Reconciling { reconciler, every, requests: rx }, ReconcileHandle(tx))
}

/// Reconcile passes until stopped. A pass's jobs go onto the queue like a receiver's, so the workers are
/// woken. A pass never fails as a whole (its report, already logged, lists failed steps), so the loop
/// just goes on; a pass in hand when the stop comes is finished (cursors move only after its jobs were
/// enqueued, so an interrupted one would be repeated, not lost, but finishing is cheaper).
async fn reconcile_loop(
    mut reconciling: Reconciling,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut ticks = tokio::time::interval(reconciling.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let request = tokio::select! {
            _ = ticks.tick() => None,
            Some(request) = reconciling.requests.recv() => Some(request),
            _ = stop.changed() => return,
        };
        if *stop.borrow() {
            return;
        }
        let report = reconciling.reconciler.run().await;
        stats.reconcile_passes.fetch_add(1, Relaxed);
        if report.basecamp.enqueued + report.jira.enqueued + report.pending_retried > 0 {
            wake.notify_waiters();
        }
        if let Some(request) = request
            && request.send(report).is_err()
        {
            info!("a reconcile pass was asked for and finished after the asker left");
        }
    }
}

/// Runs the receivers on `listener` (under the default [`Limits`]), `workers` mapper workers and the
/// reconciler (when given) until `shutdown` resolves; then stops accepting, lets the requests in flight
/// finish, and waits for the workers to finish the batch in hand and the reconciler the pass in hand.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    engine: Engine,
    workers: usize,
    stats: Arc<Stats>,
    reconcile: Option<Reconciling>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(listener, app, engine, workers, stats, reconcile, Limits::default(), shutdown).await
}

/// [`run`] under `limits`.
#[allow(clippy::too_many_arguments)]
pub async fn run_with(
    listener: tokio::net::TcpListener,
    app: App,
    engine: Engine,
    workers: usize,
    stats: Arc<Stats>,
    reconcile: Option<Reconciling>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
    if let Some(reconciling) = reconcile {
        info!(every_secs = reconciling.every.as_secs(), "reconciling at start and then on an interval");
        let pass = reconcile_loop(reconciling, app.wake.clone(), stats.clone(), stop_rx.clone());
        handles.push(tokio::spawn(shared::metrics::scoped(app.metrics.clone(), pass)));
    }
    for _ in 0..workers.max(1) {
        let work = worker(engine.clone(), app.queue.clone(), app.wake.clone(), stats.clone(), stop_rx.clone());
        handles.push(tokio::spawn(shared::metrics::scoped(app.metrics.clone(), work)));
    }
    let addr: SocketAddr = listener.local_addr()?;
    info!(%addr, "listening");
    let ready = app.ready.clone();
    let shutdown = async move {
        shutdown.await;
        ready.store(false, std::sync::atomic::Ordering::SeqCst);
        if !limits.drain_delay.is_zero() {
            info!(secs = limits.drain_delay.as_secs(), "not ready: serving on for the drain delay");
            tokio::time::sleep(limits.drain_delay).await;
        }
    };
    serve_http(listener, router_with(app, limits), limits, shutdown).await?;
    info!("stopping workers after their current batch (and the reconciler after its pass)");
    stop_tx.send_replace(true);
    for h in handles {
        if let Err(e) = h.await {
            error!(error = %e, "a worker or the reconciler ended abnormally");
        }
    }
    Ok(())
}
