//! Store and queue work per event, on SQLite (local mode) and on DynamoDB Local + moto (AWS mode).
//!
//! The bench wires its own deployment the way every runtime does (`shared::setup`), with counting
//! decorators over the storage ports and, on AWS, counting interceptors in the SDK clients. The
//! simulators send real webhooks to the receivers (`campbridge::server::router`, no workers); the queue
//! is then drained the way Lambda's SQS event source does it — receive a batch, `process_batch`, delete
//! what is done — so no poll runs between events. The same story of changes runs on both stores; every
//! webhook it causes (the sync's own echoes included) is an event.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use campbridge::server::{self, App};
use campbridge_simulators::{basecamp as bc, bitbucket as bb, jira};
use serde::Serialize;
use shared::adapters::sqlite::{SqliteStore, statements_counted};
use shared::ports::{Clock, JobQueue, SecretStore, SystemClock};
use shared::setup::{self, Stores};
use shared::sync::{Engine, MessageFate, process_batch};
use tokio::sync::Notify;

use crate::counting::{CountingQueue, CountingStore, Counts, SdkCounter};
use crate::logs::LogBytes;
use crate::world::{self, Sims, Store};

/// What one store did for the story.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// People's changes in the story.
    pub changes: usize,
    /// Jobs enqueued (webhook deliveries that became jobs, echoes included).
    pub events: u64,
    /// Port calls per event, by `port.method`.
    pub port_calls_per_event: BTreeMap<String, f64>,
    /// Backend requests per event: SQLite statements, or SDK requests by operation and DynamoDB units.
    pub backend_per_event: BTreeMap<String, f64>,
    /// Upstream API calls per event (Basecamp + Jira + Bitbucket).
    pub upstream_calls_per_event: f64,
    /// Wall time of `process_batch` per event (the mapper's work, upstream calls on loopback included).
    pub mapper_ms_per_event: f64,
    /// JSON log bytes per event, as the functions would write them.
    pub receiver_log_bytes_per_event: f64,
    pub mapper_log_bytes_per_event: f64,
}

/// The deployment under test.
struct Harness {
    sims: Sims,
    engine: Engine,
    queue: Arc<dyn JobQueue>,
    ports: Counts,
    server: tokio::task::JoinHandle<()>,
    processing: Duration,
    /// SQLite statements spent on the drain loop's empty receives (polling, not per-event work).
    poll_statements: u64,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    async fn start<S>(
        sims: Sims,
        config_text: &str,
        store: Arc<S>,
        queue: Arc<dyn JobQueue>,
        ports: Counts,
    ) -> anyhow::Result<Self>
    where
        S: shared::ports::PairStore
            + shared::ports::DeliveryLog
            + shared::ports::AuditLog
            + shared::ports::ConflictLog
            + 'static,
    {
        let config = world::parse(config_text)?;
        let secrets: Arc<dyn SecretStore> = Arc::new(sims.memory_secrets());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let health = Arc::new(server::PortsHealth { pairs: store.clone(), queue: queue.clone() });
        let counted = Arc::new(CountingStore { inner: store, counts: ports.clone() });
        let engine = setup::engine(&config, Stores::all(counted), secrets.clone(), clock.clone(), "bench-1").await?;
        let receivers = Arc::new(setup::receivers(&config, secrets.as_ref()).await?);
        let app = App {
            receivers: receivers.clone(),
            queue: queue.clone(),
            clock,
            wake: Arc::new(Notify::new()),
            metrics: shared::metrics::Registry::new(),
            health,
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let router = server::router(app);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("bench receivers stopped: {e}");
            }
        });
        sims.register(&url, &config, &receivers).await?;
        Ok(Self { sims, engine, queue, ports, server, processing: Duration::ZERO, poll_statements: 0 })
    }

    /// Delivers every pending webhook and syncs every job, until nothing moves (bounded).
    async fn drain(&mut self) -> anyhow::Result<()> {
        let mut quiet = 0;
        for _ in 0..1000 {
            self.sims.settle().await;
            let before = statements_counted();
            let batch = self.queue.receive(10, Duration::from_secs(60)).await?;
            if batch.is_empty() {
                self.poll_statements += statements_counted() - before;
                quiet += 1;
                if quiet == 2 {
                    return Ok(());
                }
                continue;
            }
            quiet = 0;
            let t0 = Instant::now();
            let report = process_batch(&self.engine, &batch).await;
            self.processing += t0.elapsed();
            for (m, (_, fate)) in batch.iter().zip(&report.fates) {
                match fate {
                    MessageFate::Done => self.queue.delete(&m.receipt).await?,
                    // The bench's story has no delays to wait out: everything not done is retried at once.
                    MessageFate::Postpone { body, .. } => self.queue.requeue(m, body, Duration::ZERO).await?,
                    MessageFate::NotYet(_) | MessageFate::Failed { .. } | MessageFate::DeadLetter { .. } => {
                        self.queue.change_visibility(&m.receipt, Duration::ZERO).await?;
                    }
                }
            }
        }
        bail!("the queue did not drain")
    }

    /// The story: people's changes on every side, each synced before the next.
    async fn story(&mut self, rounds: usize) -> anyhow::Result<usize> {
        let mut changes = 0;
        let sprint = self.sims.basecamp.list_id("Sprint 1").await.context("the seeded Sprint 1 list")?;
        for round in 0..rounds {
            let write = bc::TodoWrite {
                content: Some(format!("Fix login redirect {round}")),
                description: Some("<div>Users land on the home page.</div>".into()),
                assignee_ids: Some(vec![bc::JARED]),
                due_on: Some("2026-12-01".into()),
                ..Default::default()
            };
            let todo = self.sims.basecamp.create_todo(sprint, write, bc::ANNIE).await?;
            self.drain().await?;
            let pairs = shared::ports::PairStore::get(
                self.engine.pairs.as_ref(),
                &shared::domain::PairKey {
                    route: shared::domain::RouteId("web".into()),
                    todo: shared::domain::TodoId(todo),
                },
            )
            .await?;
            let key = pairs.and_then(|p| p.item).context("the to-do was paired")?.display_name().to_owned();
            let bcs = &self.sims.basecamp;
            let edit = |content: Option<&str>, description: Option<&str>| bc::TodoEdit {
                content: content.map(str::to_owned),
                description: description.map(str::to_owned),
                ..Default::default()
            };
            bcs.edit_todo(todo, edit(Some(&format!("Fix login redirect {round} on Safari")), None), bc::ANNIE).await?;
            self.drain().await?;
            let bcs = &self.sims.basecamp;
            bcs.edit_todo(todo, edit(None, Some("<div>Only on Safari 17.</div>")), bc::ANNIE).await?;
            self.drain().await?;
            self.sims.basecamp.assign_todo(todo, vec![bc::VICTOR], bc::ANNIE).await?;
            self.drain().await?;
            self.sims.basecamp.comment(todo, "<div>DEV: it only happens on Safari 17</div>", bc::ANNIE).await?;
            self.drain().await?;
            let branch = format!("feature/{}-login", key.to_lowercase());
            let pr = self.sims.bitbucket.open_pullrequest(&format!("Fix login ({key})"), "", &branch, "jared").await?;
            self.drain().await?;
            let head = self.sims.bitbucket.head_of(pr).await.unwrap_or_default();
            let status = bb::BuildStatus {
                commit: head,
                key: "ci".into(),
                state: shared::domain::BuildState::Failed.as_str().into(),
                name: "CI".into(),
                url: "https://ci.example.invalid/build/1".into(),
                refname: Some(branch),
                ..Default::default()
            };
            self.sims.bitbucket.post_build_status(status, "jared").await?;
            self.drain().await?;
            self.sims.jira.transition_issue(&key, "Done", jira::JARED).await?;
            self.drain().await?;
            changes += 8;
        }
        Ok(changes)
    }
}

fn per_event(map: BTreeMap<String, f64>, events: f64) -> BTreeMap<String, f64> {
    map.into_iter().map(|(k, v)| (k, v / events)).collect()
}

/// Runs the story and collects the counts; `backend` returns the store's own counts since `reset`.
async fn run(
    mut h: Harness,
    queue_counts: &Counts,
    logs: &LogBytes,
    rounds: usize,
    reset: impl Fn(),
    backend: impl Fn(u64) -> BTreeMap<String, f64>,
) -> anyhow::Result<StoreRun> {
    h.sims.basecamp.reset_calls();
    h.sims.jira.reset_calls();
    h.sims.bitbucket.reset_calls();
    h.ports.reset();
    queue_counts.reset();
    reset();
    let logs0 = logs.get();
    let changes = h.story(rounds).await?;
    let logs1 = logs.get();
    let events = queue_counts.get("queue.send") - queue_counts.get("queue.send_duplicate");
    if events < 1.0 {
        bail!("the story enqueued nothing");
    }
    let mut ports = h.ports.snapshot();
    // The drain loop's empty receives stand for the event source's polling, not per-event work.
    ports.extend(queue_counts.snapshot().into_iter().filter(|(k, _)| k != "queue.receive_empty"));
    let (b, j, bbc) = h.sims.calls();
    Ok(StoreRun {
        changes,
        events: events as u64,
        port_calls_per_event: per_event(ports, events),
        backend_per_event: per_event(backend(h.poll_statements), events),
        upstream_calls_per_event: (b + j + bbc) as f64 / events,
        mapper_ms_per_event: h.processing.as_secs_f64() * 1000.0 / events,
        receiver_log_bytes_per_event: (logs1.0 - logs0.0) as f64 / events,
        mapper_log_bytes_per_event: (logs1.1 - logs0.1) as f64 / events,
    })
}

/// The story on the SQLite store (local mode's default), counting SQL statements.
pub async fn sqlite(dir: &Path, logs: &LogBytes, rounds: usize) -> anyhow::Result<StoreRun> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join(format!("store-ops-{}.db", std::process::id()));
    let sims = Sims::start().await?;
    let text = sims.config_text(Store::Sqlite(&db));
    let store = SqliteStore::open(&db, Arc::new(SystemClock))?;
    store.count_statements()?;
    let queue_counts = Counts::default();
    let queue: Arc<dyn JobQueue> = Arc::new(CountingQueue { inner: store.clone(), counts: queue_counts.clone() });
    let h = Harness::start(sims, &text, Arc::new(store), queue, Counts::default()).await?;
    let start = std::sync::atomic::AtomicU64::new(0);
    let result = run(
        h,
        &queue_counts,
        logs,
        rounds,
        || start.store(statements_counted(), std::sync::atomic::Ordering::Relaxed),
        |polling| {
            let n = statements_counted() - start.load(std::sync::atomic::Ordering::Relaxed) - polling;
            BTreeMap::from([("sqlite.statements".to_owned(), n as f64)])
        },
    )
    .await;
    for suffix in ["", "-wal", "-shm"] {
        // Leftovers only cost disk; the directory is scratch space.
        std::fs::remove_file(format!("{}{suffix}", db.display())).ok();
    }
    result
}

/// The AWS SDK configuration of the emulators (region, dummy credentials, endpoints from the environment).
pub async fn sdk() -> aws_config::SdkConfig {
    shared::adapters::aws_sdk::load().await
}

/// Creates an SQS FIFO queue like the template's (deduplication by id, per-group scope) and returns its URL.
pub async fn fifo_queue(client: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::ContentBasedDeduplication, "false")
        .attributes(A::VisibilityTimeout, "360")
        .send()
        .await
        .context("creating the SQS FIFO queue")?;
    out.queue_url.context("the new queue has no URL")
}

/// The DynamoDB counts that are not requests.
const DYNAMODB_UNITS: [&str; 3] = ["dynamodb.rru", "dynamodb.wru", "dynamodb.failed_writes"];

/// The story on DynamoDB Local + moto SQS, counting requests by operation and DynamoDB request units.
pub async fn aws(logs: &LogBytes, rounds: usize) -> anyhow::Result<StoreRun> {
    use shared::adapters::dynamo::DynamoStore;
    use shared::adapters::sqs::SqsFifoQueue;
    let sdk = sdk().await;
    let backend = Counts::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(SdkCounter::new("dynamodb", backend.clone())).build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk).interceptor(SdkCounter::new("sqs", backend.clone())).build(),
    );
    let name = format!("campbridge-bench-{}", std::process::id());
    DynamoStore::create_table(&dynamo, &name).await?;
    let url = fifo_queue(&sqs, &name).await?;
    let sims = Sims::start().await?;
    let text = sims.config_text(Store::DynamoDb { table: &name, queue_url: &url });
    let queue_counts = Counts::default();
    let queue: Arc<dyn JobQueue> =
        Arc::new(CountingQueue { inner: SqsFifoQueue::new(sqs, url), counts: queue_counts.clone() });
    let store = Arc::new(DynamoStore::new(dynamo, name));
    let h = Harness::start(sims, &text, store, queue, Counts::default()).await?;
    let qc = queue_counts.clone();
    run(
        h,
        &queue_counts,
        logs,
        rounds,
        || backend.reset(),
        |_| {
            let mut m = backend.snapshot();
            // Lambda's event source polls with long polling whether or not events come; the empty receives
            // of the drain loop are that polling, not per-event work.
            let empty = qc.get("queue.receive_empty");
            if let Some(r) = m.get_mut("sqs.ReceiveMessage") {
                *r = (*r - empty).max(0.0);
            }
            let sqs_total: f64 = m.iter().filter(|(k, _)| k.starts_with("sqs.")).map(|(_, v)| v).sum();
            let dynamo_requests: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("dynamodb.") && !DYNAMODB_UNITS.iter().any(|u| k.starts_with(u)))
                .map(|(_, v)| v)
                .sum();
            m.insert("sqs.requests".to_owned(), sqs_total);
            m.insert("dynamodb.requests".to_owned(), dynamo_requests);
            m
        },
    )
    .await
}
