//! Local mode's HTTP side and workers: the receivers (`POST /basecamp/{token}`, `/jira`, `/bitbucket`,
//! `GET /healthz`) over the same `shared::ingest` code the Lambda functions use, mapper workers
//! running `shared::sync` over the durable queue, and the reconciler on an interval (what the reconciler
//! function does on its schedule in AWS mode). Graceful shutdown stops accepting requests, then lets
//! the workers finish the batch in hand and the reconciler the pass in hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::ingest::{Accepted, IngestError, Receivers};
use shared::ports::{Clock, JobQueue};
use shared::sync::{Engine, Outcome, ReconcileReport, Reconciler, run_queue_once};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{error, info};

/// What the request handlers share.
#[derive(Clone)]
pub struct App {
    pub receivers: Arc<Receivers>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    /// Wakes the workers when a job arrives, so local mode syncs at once instead of on the next poll.
    pub wake: Arc<Notify>,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/basecamp/{token}", post(basecamp))
        .route("/jira", post(jira))
        .route("/bitbucket", post(bitbucket))
        .route("/healthz", get(|| async { "ok" }))
        // Slightly above the receivers' own limit, so they answer 413 with their reason.
        .layer(DefaultBodyLimit::max(shared::webhook::MAX_BODY_BYTES + 1024))
        .with_state(app)
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
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

async fn basecamp(State(app): State<App>, Path(token): Path<String>, body: Bytes) -> Response {
    let result = app.receivers.basecamp(app.queue.as_ref(), &token, &body, app.clock.now()).await;
    respond(result, &app)
}

async fn jira(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let result = app.receivers.jira(app.queue.as_ref(), &header_pairs(&headers)[..], &body, app.clock.now()).await;
    respond(result, &app)
}

async fn bitbucket(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let result = app.receivers.bitbucket(app.queue.as_ref(), &header_pairs(&headers)[..], &body, app.clock.now()).await;
    respond(result, &app)
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
                        Outcome::Skipped(_) => 0,
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

/// Runs the receivers on `listener`, `workers` mapper workers and the reconciler (when given) until
/// `shutdown` resolves; then stops accepting, and waits for the workers to finish the batch in hand and
/// the reconciler the pass in hand.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    engine: Engine,
    workers: usize,
    stats: Arc<Stats>,
    reconcile: Option<Reconciling>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
    if let Some(reconciling) = reconcile {
        info!(every_secs = reconciling.every.as_secs(), "reconciling at start and then on an interval");
        handles.push(tokio::spawn(reconcile_loop(reconciling, app.wake.clone(), stats.clone(), stop_rx.clone())));
    }
    for _ in 0..workers.max(1) {
        handles.push(tokio::spawn(worker(
            engine.clone(),
            app.queue.clone(),
            app.wake.clone(),
            stats.clone(),
            stop_rx.clone(),
        )));
    }
    let addr: SocketAddr = listener.local_addr()?;
    info!(%addr, "listening");
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await?;
    info!("stopping workers after their current batch (and the reconciler after its pass)");
    stop_tx.send_replace(true);
    for h in handles {
        if let Err(e) = h.await {
            error!(error = %e, "a worker or the reconciler ended abnormally");
        }
    }
    Ok(())
}
