//! Floors for the local figures, measured in the same run on the same machine, so a figure reads as a
//! ratio to what the machine allows at that moment (shared, noisy machines move both together):
//!
//! - The ack floor: a minimal axum handler on 127.0.0.1 that reads the body and answers 202 without any
//!   work, driven by the same load generator (same client, senders, body sizes and count) as `serve`.
//! - The ingest floor: raw group-commit inserts of the same bodies into a SQLite file (WAL,
//!   `synchronous = FULL`, like the store): as many closed-loop producers as the load has senders, one
//!   writer thread committing every insert waiting at that moment in one transaction, each producer answered
//!   after the commit. No HTTP, no parsing, no deduplication, no indexes beyond the row id.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::local::{self, Plan};
use crate::stats::{LatencySpread, Spread};

/// The floors (`floors` in `results.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Floors {
    pub ack_ms: Option<LatencySpread>,
    pub ingest_events_per_s: Option<Spread>,
}

/// campbridge's figure ÷ its floor, medians over the runs (`ratios` in `results.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    pub ack_ms: Option<AckRatios>,
    pub ingest_events_per_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct AckRatios {
    pub p50: f64,
    pub p99: f64,
}

impl Ratios {
    pub fn of(ack_ms: Option<&LatencySpread>, ingest: Option<&Spread>, floors: &Floors) -> Self {
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        let ack_ms = match (ack_ms, &floors.ack_ms) {
            (Some(a), Some(f)) => ratio(a.p50.median, f.p50.median)
                .zip(ratio(a.p99.median, f.p99.median))
                .map(|(p50, p99)| AckRatios { p50, p99 }),
            _ => None,
        };
        let ingest_events_per_s = match (ingest, &floors.ingest_events_per_s) {
            (Some(a), Some(f)) => ratio(a.median, f.median),
            _ => None,
        };
        Self { ack_ms, ingest_events_per_s }
    }
}

/// The ack floor: `plan.load_runs` runs of `plan.load_requests` webhook bodies against a handler that only
/// answers 202.
pub async fn ack(plan: &Plan) -> anyhow::Result<LatencySpread> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the ack floor")?;
    let url = format!("http://{}/webhooks/basecamp", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/webhooks/basecamp",
        axum::routing::post(|_body: axum::body::Bytes| async { axum::http::StatusCode::ACCEPTED }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });
    let fixture = local::webhook_fixture()?;
    let client = local::client()?;
    let mut next_id = 9_000_000_000_i64;
    let mut runs = Vec::new();
    let mut failed = 0;
    for _ in 0..plan.load_runs {
        let bodies = local::webhook_bodies(&fixture, plan.load_requests, &mut next_id, &[1_069_479_424], 1)?;
        let (samples, f) = local::drive(&client, &url, bodies, plan.load_concurrency).await?;
        failed += f;
        runs.push(samples);
    }
    stop.send(()).ok();
    tokio::time::timeout(Duration::from_secs(10), server).await.context("the ack floor did not stop")???;
    anyhow::ensure!(failed == 0, "the ack floor answered {failed} requests with something else than 202");
    LatencySpread::of(&runs).context("the ack floor took no samples")
}

/// The ingest floor: `plan.load_runs` runs of `plan.load_requests` inserts into a fresh file under `dir`.
pub async fn ingest(dir: &Path, plan: &Plan) -> anyhow::Result<Spread> {
    let fixture = local::webhook_fixture()?;
    let mut next_id = 9_500_000_000_i64;
    let mut rates = Vec::new();
    std::fs::create_dir_all(dir)?;
    for run in 0..plan.load_runs {
        let bodies = local::webhook_bodies(&fixture, plan.load_requests, &mut next_id, &[1_069_479_424], 1)?;
        let path = dir.join(format!("ingest-floor-{run}.db"));
        let producers = plan.load_concurrency;
        let rate = tokio::task::spawn_blocking(move || group_commit_inserts(&path, &bodies, producers)).await??;
        rates.push(rate);
    }
    Spread::of(&rates).context("the ingest floor took no samples")
}

/// One insert waiting for the writer.
struct Insert {
    body: usize,
    done: mpsc::Sender<()>,
}

/// Inserts every body through one group-commit writer fed by `producers` closed-loop threads; rows/s.
fn group_commit_inserts(path: &Path, bodies: &Arc<Vec<Vec<u8>>>, producers: usize) -> anyhow::Result<f64> {
    for suffix in ["", "-wal", "-shm"] {
        let file = path.with_file_name(format!("{}{suffix}", path.file_name().and_then(|f| f.to_str()).unwrap_or("")));
        std::fs::remove_file(file).ok();
    }
    let mut conn = rusqlite::Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "the ingest floor's file is not in WAL mode ({mode})");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE jobs (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")?;
    let (inserts, requests) = mpsc::channel::<Insert>();
    let writer = {
        let bodies = bodies.clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            while let Ok(first) = requests.recv() {
                let mut batch = vec![first];
                batch.extend(requests.try_iter());
                let tx = conn.transaction()?;
                {
                    let mut stmt = tx.prepare_cached("INSERT INTO jobs (body) VALUES (?1)")?;
                    for insert in &batch {
                        stmt.execute([&bodies[insert.body]])?;
                    }
                }
                tx.commit()?;
                for insert in batch {
                    insert.done.send(()).ok();
                }
            }
            Ok(())
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let (inserts, next, n) = (inserts.clone(), next.clone(), bodies.len());
            std::thread::spawn(move || -> usize {
                let mut done = 0;
                let (tell, told) = mpsc::channel();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || Instant::now() > deadline {
                        return done;
                    }
                    if inserts.send(Insert { body: i, done: tell.clone() }).is_err() || told.recv().is_err() {
                        return done;
                    }
                    done += 1;
                }
            })
        })
        .collect();
    drop(inserts);
    let mut inserted = 0;
    for t in threads {
        inserted += t.join().map_err(|_| anyhow::anyhow!("an ingest floor producer panicked"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    writer.join().map_err(|_| anyhow::anyhow!("the ingest floor writer panicked"))??;
    anyhow::ensure!(inserted == bodies.len(), "the ingest floor inserted {inserted} of {} rows", bodies.len());
    Ok(inserted as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64) -> Spread {
        Spread { median, min: median, max: median, runs: 1 }
    }

    #[test]
    fn ratios_are_campbridge_over_the_floor_and_absent_without_both() {
        let latency =
            |p50, p99| LatencySpread { p50: spread(p50), p99: spread(p99), max: spread(p99), samples_per_run: 1 };
        let floors = Floors { ack_ms: Some(latency(0.5, 2.0)), ingest_events_per_s: Some(spread(8000.0)) };
        let r = Ratios::of(Some(&latency(1.0, 5.0)), Some(&spread(6000.0)), &floors);
        let ack = r.ack_ms.unwrap();
        assert!((ack.p50 - 2.0).abs() < 1e-9 && (ack.p99 - 2.5).abs() < 1e-9, "{ack:?}");
        assert!((r.ingest_events_per_s.unwrap() - 0.75).abs() < 1e-9);
        let none = Ratios::of(None, Some(&spread(6000.0)), &Floors::default());
        assert!(none.ack_ms.is_none() && none.ingest_events_per_s.is_none());
    }
}
