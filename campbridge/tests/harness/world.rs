//! The world a chaos run happens in: the three simulators with their fault controls, the real receivers
//! (local mode's HTTP router over `shared::ingest`) on 127.0.0.1, a backend (SQLite, or DynamoDB Local +
//! SQS on moto), and mapper processes — the real engine and `run_queue_once` over the real queue adapter —
//! supervised so that a process killed at a failpoint is replaced by a fresh one on the same store.
//!
//! Time: the engine, the receivers and the SQLite queue read a [`ScaledClock`] that runs `factor` times
//! faster than the wall clock, so leases (60 s PENDING, 20 s write), visibility timeouts (60 s) and
//! backoffs pass in a fraction of the time; SQS keeps real time, so the worker's queue converts the
//! delays it sets (see [`super::crash::CrashQueue`]). Nothing is asserted about time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campbridge::demo::{StackOptions, simulator_config};
use campbridge::server::{App, router};
use campbridge_simulators::common::faults::{FaultCounts, Faults, WebhookFaults};
use campbridge_simulators::{basecamp as bc, bitbucket as bb, jira};
use chrono::{DateTime, Utc};
use shared::adapters::memory::MemorySecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::clients::basecamp::SYNC_WEBHOOK_TYPES;
use shared::config::Config;
use shared::ingest::Receivers;
use shared::ports::{Clock, ConflictLog, DeliveryLog, JobQueue, PairStore, SecretStore};
use shared::setup::{self, Stores};
use shared::sync::{MessageFate, Outcome, run_queue_once};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::crash::SPARE_BATCH;
use super::crash::{
    CrashBasecamp, CrashDeliveries, CrashPairs, CrashPlan, CrashQueue, CrashTracker, Points, Switch, TodoLocks,
};

pub const WEBHOOK_KEY: &str = "chaos-webhook-key";
pub const JIRA_WEBHOOK_SECRET: &str = "chaos-jira-webhook-secret";
pub const BITBUCKET_WEBHOOK_SECRET: &str = "chaos-bitbucket-webhook-secret";

/// How long a received message stays invisible (in scaled time): the stack's queue's 360 s, six times the
/// mapper's timeout, so a batch is never handed to a second worker while the first is still on it (the
/// scaled clock makes a stall ten times longer; a shorter timeout would turn slow batches into
/// overlapping ones, which the deployed stack rules out). A killed process's messages come back after it.
pub const VISIBILITY: Duration = Duration::from_secs(360);

/// A clock that runs `factor` times faster than the wall clock, from a fixed origin.
#[derive(Debug)]
pub struct ScaledClock {
    start: std::time::Instant,
    origin: DateTime<Utc>,
    pub factor: f64,
}

impl ScaledClock {
    pub fn new(factor: f64) -> Self {
        Self { start: std::time::Instant::now(), origin: Utc::now(), factor }
    }

    /// Scaled time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed().mul_f64(self.factor)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + chrono::Duration::from_std(self.elapsed()).unwrap_or_default()
    }
}

/// Where pairs, deliveries and the queue live.
pub struct Backend {
    pub name: &'static str,
    pub stores: Stores,
    pub queue: Arc<dyn JobQueue>,
    pub conflicts: Arc<dyn ConflictLog>,
    /// The `[store]` section's body for the config.
    pub store_section: String,
    /// 1 when the queue reads the scaled clock (SQLite); the clock's factor when it keeps real time (SQS).
    pub queue_time_factor: f64,
}

impl Backend {
    /// A fresh SQLite file in `dir`, read through `clock`.
    pub fn sqlite(dir: &std::path::Path, clock: Arc<dyn Clock>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("chaos.db");
        let store = SqliteStore::open(&path, clock).unwrap();
        let shared = Arc::new(store.clone());
        Self {
            name: "SQLite",
            stores: Stores::all(shared.clone()),
            queue: shared.clone(),
            conflicts: shared,
            store_section: format!("kind = \"sqlite\"\npath = {:?}", path.display().to_string()),
            queue_time_factor: 1.0,
        }
    }
}

/// What the workers saw, summed over every process.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub echoes: AtomicU64,
    pub skipped: AtomicU64,
    pub duplicates: AtomicU64,
    pub postponed: AtomicU64,
    pub not_yet: AtomicU64,
    pub failed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub conflicts: AtomicU64,
    pub restarts: AtomicU64,
    /// The highest attempt count a postponed copy carried.
    pub max_attempt: AtomicU64,
    /// Why jobs were postponed, by the first words of the reason.
    pub postponed_by: Mutex<BTreeMap<String, u64>>,
    /// Failures (not delays), by message, for a failing run's report.
    pub failures: Mutex<BTreeMap<String, u64>>,
}

fn add(n: &AtomicU64, by: u64) {
    n.fetch_add(by, Ordering::Relaxed);
}

impl Stats {
    fn record(&self, report: &shared::sync::BatchReport) {
        add(&self.batches, 1);
        add(&self.messages, report.fates.len() as u64);
        add(&self.duplicates, report.duplicates as u64);
        for outcome in &report.outcomes {
            match outcome {
                Outcome::Created { .. } => add(&self.created, 1),
                Outcome::Updated { conflicts, .. } => {
                    add(&self.updated, 1);
                    add(&self.conflicts, *conflicts as u64);
                }
                Outcome::Recorded { conflicts } => add(&self.conflicts, *conflicts as u64),
                o if o.is_echo() => add(&self.echoes, 1),
                Outcome::Skipped(_) | Outcome::Detached { .. } => add(&self.skipped, 1),
            }
        }
        for (_, fate) in &report.fates {
            match fate {
                MessageFate::Done => {}
                MessageFate::Postpone { body, .. } => {
                    add(&self.postponed, 1);
                    let retry = shared::domain::Queued::from_wire(body).ok().and_then(|q| q.retry);
                    let attempt = retry.as_ref().map_or(0, |r| u64::from(r.attempt));
                    self.max_attempt.fetch_max(attempt, Ordering::Relaxed);
                    let reason = retry.map(|r| reason_kind(&r.reason)).unwrap_or_else(|| "unknown".to_owned());
                    *lock(&self.postponed_by).entry(reason).or_default() += 1;
                }
                MessageFate::NotYet(_) => add(&self.not_yet, 1),
                MessageFate::Failed { error } => {
                    add(&self.failed, 1);
                    *lock(&self.failures).entry(error.chars().take(160).collect()).or_default() += 1;
                }
                MessageFate::DeadLetter { error } => {
                    add(&self.dead_lettered, 1);
                    *lock(&self.failures)
                        .entry(format!("DEAD: {}", error.chars().take(160).collect::<String>()))
                        .or_default() += 1;
                }
            }
        }
    }

    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }

    pub fn get_max(&self) -> u32 {
        u32::try_from(self.max_attempt.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }
}

/// A postponement reason, shortened to its kind.
fn reason_kind(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let kind = if r.contains("rate limit") {
        "429"
    } else if r.contains("transient") || r.contains("503") || r.contains("timed out") || r.contains("connection") {
        "5xx / transport"
    } else if r.contains("being written")
        || r.contains("busy")
        || r.contains("kept changing")
        || r.contains("created by another")
    {
        "record busy"
    } else if r.contains("another worker") {
        "delivery in progress"
    } else if r.contains("earlier message") {
        "behind an earlier message"
    } else if r.contains("tracker's search") {
        "search index settling"
    } else {
        return reason.chars().take(60).collect();
    };
    kind.to_owned()
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds mapper processes: the engine through `shared::setup`, its ports behind failpoints.
pub struct Factory {
    pub config: Config,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<ScaledClock>,
    pub stores: Stores,
    pub queue: Arc<dyn JobQueue>,
    pub queue_time_factor: f64,
    pub plan: Arc<CrashPlan>,
    pub stats: Arc<Stats>,
    pub workers: usize,
    pub locks: Arc<TodoLocks>,
    next: AtomicU64,
}

/// A running mapper process: its workers and its kill switch.
struct Process {
    switch: Arc<Switch>,
    tasks: Vec<JoinHandle<()>>,
}

impl Factory {
    async fn start(&self) -> Process {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let switch = Arc::new(Switch::default());
        let points = Points { plan: self.plan.clone(), switch: switch.clone() };
        let stores = Stores {
            pairs: Arc::new(CrashPairs { inner: self.stores.pairs.clone(), points: points.clone() }),
            deliveries: Arc::new(CrashDeliveries { inner: self.stores.deliveries.clone(), points: points.clone() }),
            audit: self.stores.audit.clone(),
            conflicts: self.stores.conflicts.clone(),
        };
        let clock: Arc<dyn Clock> = self.clock.clone();
        let mut engine = setup::engine(&self.config, stores, self.secrets.clone(), clock, &format!("chaos-{n}"))
            .await
            .expect("the engine wires");
        // The run's virtual time spans hours (a clock ×10 over the full run): keep completed deliveries for
        // all of it, so the verdict can check that every accepted delivery completed (2 h by default).
        let mut settings = (*engine.settings).clone();
        settings.delivery_retention = Duration::from_secs(7 * 24 * 60 * 60);
        engine.settings = Arc::new(settings);
        engine.basecamp = Arc::new(CrashBasecamp {
            inner: engine.basecamp.clone(),
            points: points.clone(),
            locks: self.locks.clone(),
        });
        engine.tracker = Arc::new(CrashTracker { inner: engine.tracker.clone(), points: points.clone() });
        let queue: Arc<dyn JobQueue> =
            Arc::new(CrashQueue { inner: self.queue.clone(), points, time_factor: self.queue_time_factor });
        let idle = if self.queue_time_factor > 1.0 { Duration::from_millis(100) } else { Duration::from_millis(20) };
        let tasks = (0..self.workers.max(1))
            .map(|_| {
                let (engine, queue, stats) = (engine.clone(), queue.clone(), self.stats.clone());
                let switch = switch.clone();
                tokio::spawn(async move {
                    loop {
                        let batch = async {
                            let done = run_queue_once(&engine, queue.as_ref(), 10, VISIBILITY).await;
                            if SPARE_BATCH.with(std::cell::Cell::get) {
                                switch.spared.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            done
                        };
                        match SPARE_BATCH.scope(std::cell::Cell::new(false), batch).await {
                            Ok((0, _)) => tokio::time::sleep(idle).await,
                            Ok((_, report)) => stats.record(&report),
                            Err(e) => {
                                *lock(&stats.failures).entry(format!("worker: {e}")).or_default() += 1;
                                tokio::time::sleep(idle).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Process { switch, tasks }
    }
}

/// Runs processes until `stop`: whenever one is killed at a failpoint, its tasks are aborted and a fresh
/// process starts on the same store.
async fn supervise(factory: Arc<Factory>, mut stop: watch::Receiver<bool>) {
    loop {
        let process = factory.start().await;
        let killed = tokio::select! {
            () = process.switch.notify.notified() => true,
            _ = stop.changed() => false,
        };
        for task in &process.tasks {
            task.abort();
        }
        for task in process.tasks {
            // An aborted task ends with a cancellation: that is the kill.
            let _ended = task.await;
        }
        if !killed {
            return;
        }
        factory.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The delivery faults of the run: 30 % duplicated, every delivery held back until two more are
/// queued and then sent newest first (reordered and delayed).
pub fn webhook_faults() -> WebhookFaults {
    WebhookFaults { duplicate_rate: 0.3, reorder_hold: 3, ..WebhookFaults::default() }
}

/// The API faults of the run: 5 % of requests answered 503, 2 % answered 429.
pub fn api_faults(webhook: WebhookFaults) -> Faults {
    Faults { error_rate: 0.05, error_status: 503, rate_limit_rate: 0.02, webhook, ..Faults::default() }
}

/// Simulators, receivers, backend and supervised mapper processes.
pub struct World {
    pub basecamp: bc::Simulator,
    pub jira: jira::Simulator,
    pub bitbucket: bb::Simulator,
    pub config: Config,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<ScaledClock>,
    pub backend: Backend,
    pub plan: Arc<CrashPlan>,
    pub stats: Arc<Stats>,
    pub locks: Arc<TodoLocks>,
    pub route: shared::domain::RouteId,
    stop: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    server: JoinHandle<()>,
}

/// How a world is set up.
pub struct Setup {
    pub factor: f64,
    pub workers: usize,
    pub seed: u64,
    /// Port calls between crashes, on average.
    pub crash_gap: u32,
}

impl World {
    /// Starts the simulators, the receivers and the mapper processes over `make_backend(clock)`.
    pub async fn start(setup: &Setup, make_backend: impl FnOnce(Arc<ScaledClock>) -> Backend) -> Self {
        let basecamp = bc::Simulator::start(bc::Options { rate_limit: None, ..bc::Options::default() }).await.unwrap();
        let jira = jira::Simulator::start(jira::Options::default()).await.unwrap();
        let bitbucket = bb::Simulator::start(bb::Options::default()).await.unwrap();
        let clock = Arc::new(ScaledClock::new(setup.factor));
        let backend = make_backend(clock.clone());

        let mut opts = StackOptions::new(std::env::temp_dir());
        opts.basecamp_rate_limit = false;
        let text = simulator_config(&opts, &backend.store_section, &basecamp, &jira, &bitbucket);
        let config = Config::parse(&text, "campbridge.toml").unwrap_or_else(|e| panic!("chaos config: {e}"));
        let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecrets::with([
            ("webhook-key", WEBHOOK_KEY),
            ("basecamp-access-token", bc::ACCESS_TOKEN),
            ("basecamp-client-secret", bc::CLIENT_SECRET),
            ("basecamp-refresh-token", bc::REFRESH_TOKEN),
            ("jira-api-token", jira::API_TOKEN),
            ("jira-webhook-secret", JIRA_WEBHOOK_SECRET),
            ("bitbucket-api-token", bitbucket.credentials().1.as_str()),
            ("bitbucket-webhook-secret", BITBUCKET_WEBHOOK_SECRET),
        ]));
        let route = config.routes[0].id.clone();

        // The receivers: local mode's router over the backend's queue.
        let receivers = Arc::new(setup::receivers(&config, secrets.as_ref()).await.unwrap());
        let app = App {
            receivers: receivers.clone(),
            queue: backend.queue.clone(),
            clock: clock.clone(),
            wake: Arc::new(Notify::new()),
            metrics: shared::metrics::Registry::new(),
            health: Arc::new(campbridge::server::PortsHealth {
                pairs: backend.stores.pairs.clone(),
                queue: backend.queue.clone(),
            }),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _stopped = axum::serve(listener, router(app)).await;
        });
        register_webhooks(&config, secrets.clone(), &receivers, &url, &jira, &bitbucket).await;

        let plan = Arc::new(CrashPlan::new(setup.seed, setup.crash_gap));
        let stats = Arc::new(Stats::default());
        let locks = Arc::new(TodoLocks::default());
        let factory = Arc::new(Factory {
            config: config.clone(),
            secrets: secrets.clone(),
            clock: clock.clone(),
            stores: backend.stores.clone(),
            queue: backend.queue.clone(),
            queue_time_factor: backend.queue_time_factor,
            plan: plan.clone(),
            stats: stats.clone(),
            workers: setup.workers,
            locks: locks.clone(),
            next: AtomicU64::new(1),
        });
        let (stop, stopped) = watch::channel(false);
        let supervisor = Some(tokio::spawn(supervise(factory, stopped)));
        Self {
            basecamp,
            jira,
            bitbucket,
            config,
            secrets,
            clock,
            backend,
            plan,
            stats,
            locks,
            route,
            stop,
            supervisor,
            server,
        }
    }

    /// Sets the faults of all three simulators.
    pub fn set_faults(&self, faults: &Faults) {
        self.basecamp.set_faults(faults.clone());
        self.jira.set_faults(faults.clone());
        self.bitbucket.set_faults(faults.clone());
    }

    /// What the three simulators injected, summed.
    pub fn fault_counts(&self) -> FaultCounts {
        let mut sum = FaultCounts::default();
        for c in [self.basecamp.fault_counts(), self.jira.fault_counts(), self.bitbucket.fault_counts()] {
            sum.server_errors += c.server_errors;
            sum.rate_limits += c.rate_limits;
            sum.duplicated_deliveries += c.duplicated_deliveries;
            sum.reordered_deliveries += c.reordered_deliveries;
        }
        sum
    }

    /// Sends held deliveries and waits until every simulator has attempted every queued delivery.
    pub async fn flush_webhooks(&self) {
        self.basecamp.release_held();
        self.jira.release_held();
        self.bitbucket.release_held();
        self.basecamp.settle().await;
        self.jira.settle().await;
        self.bitbucket.settle().await;
    }

    /// Waits until no webhook is pending and the queue is empty, three checks in a row (bounded, so a
    /// broken run fails instead of hanging; not a timing assertion).
    pub async fn quiesce(&self, what: &str, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        let mut quiet = 0;
        while quiet < 3 {
            self.flush_webhooks().await;
            let depth = self.backend.queue.depth().await.unwrap_or(u64::MAX);
            quiet = if depth == 0 { quiet + 1 } else { 0 };
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the queue did not drain ({depth} left); failures: {:#?}",
                lock(&self.stats.failures)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the mapper processes and the receivers.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(s) = self.supervisor.take() {
            let _ended = s.await;
        }
        self.server.abort();
    }

    pub fn pairs(&self) -> &Arc<dyn PairStore> {
        &self.backend.stores.pairs
    }

    pub fn deliveries(&self) -> &Arc<dyn DeliveryLog> {
        &self.backend.stores.deliveries
    }
}

async fn register_webhooks(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    receivers: &Receivers,
    url: &str,
    jira_sim: &jira::Simulator,
    bitbucket: &bb::Simulator,
) {
    let client = setup::basecamp_client(config, secrets).await.unwrap();
    for r in &config.routes {
        let hook = format!("{url}/basecamp/{}", receivers.route_token(&r.id));
        client.create_webhook(r.project, &hook, SYNC_WEBHOOK_TYPES).await.unwrap();
    }
    jira_sim
        .register_webhook(jira::AdminHook {
            id: 0,
            url: format!("{url}/jira"),
            secret: Some(JIRA_WEBHOOK_SECRET.to_owned()),
            events: Vec::new(),
            jql: None,
        })
        .await;
    bitbucket
        .register_webhook(
            &format!("{url}/bitbucket"),
            Some(BITBUCKET_WEBHOOK_SECRET),
            &[
                "pullrequest:created",
                "pullrequest:updated",
                "pullrequest:fulfilled",
                "pullrequest:rejected",
                "repo:commit_status_created",
                "repo:commit_status_updated",
            ],
        )
        .await;
}
