//! Local mode's HTTP side and workers: the receivers (`POST /basecamp/{token}`, `/jira`, `/bitbucket`,
//! `GET /healthz`) over the same `shared::ingest` code the Lambda functions use, and mapper workers
//! running `shared::sync` over the durable queue. Graceful shutdown stops accepting requests, then lets
//! the workers finish the batch in hand.

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
use shared::sync::{Engine, Outcome, run_queue_once};
use tokio::sync::{Notify, watch};
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

/// Runs the receivers on `listener` and `workers` mapper workers until `shutdown` resolves; then stops
/// accepting, and waits for the workers to finish the batch in hand.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    engine: Engine,
    workers: usize,
    stats: Arc<Stats>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
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
    info!("stopping workers after their current batch");
    stop_tx.send_replace(true);
    for h in handles {
        if let Err(e) = h.await {
            error!(error = %e, "worker ended abnormally");
        }
    }
    Ok(())
}
