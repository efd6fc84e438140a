//! The reconciler end to end on the simulators: what the webhooks lost is found by polling and synced by
//! the mapper once; deactivated webhooks come back; a create that stopped midway is finished.

use std::sync::Arc;
use std::time::Duration;

use campbridge_simulators::basecamp::{self as bc_sim, TodoWrite};
use campbridge_simulators::jira as jira_sim;
use secrecy::SecretString;
use shared::adapters::memory::{
    MemoryAuditLog, MemoryConflictLog, MemoryCursorStore, MemoryDeliveryLog, MemoryJobQueue, MemoryPairStore,
    MemorySecrets,
};
use shared::config::Config;
use shared::domain::{DeliveryId, Job, PairKey, PairState, ProjectId, RouteId, TodoId};
use shared::ports::{
    Clock, CursorStore, DeadLetter, JobConsumer, JobProducer, PairStore, QueueOperator, Received, Sent, StoreError,
    SystemClock,
};
use shared::setup::{self, Stores};
use shared::sync::reconcile::{BASECAMP_CURSOR, JIRA_CURSOR};
use shared::sync::{Engine, Outcome, ReconcileStores, Reconciler, run_queue_once};
use shared::webhook::verify::route_token;

const WEBHOOK_KEY: &str = "campbridge-test-webhook-key";

/// The Basecamp and Jira simulators, the memory stores, the engine and the reconciler wired to them.
struct World {
    bc: bc_sim::Simulator,
    jira: jira_sim::Simulator,
    config: Config,
    secrets: Arc<MemorySecrets>,
    pairs: Arc<MemoryPairStore>,
    cursors: Arc<MemoryCursorStore>,
    queue: Arc<MemoryJobQueue>,
    engine: Engine,
    reconciler: Reconciler,
}

fn config_text(bc: &bc_sim::Simulator, jira: &jira_sim::Simulator) -> String {
    let bc_host = bc.base_url().trim_end_matches(&format!("/{}", bc.account_id())).to_owned();
    format!(
        r#"[server]
webhook_key = {{ secret = "webhook-key" }}
allow_insecure_loopback_upstreams = true

[basecamp]
account_id = {account}
base_url = {bc_host:?}
launchpad_url = {launchpad:?}
user_agent = "campbridge tests (tests@campbridge.invalid)"
access_token = {{ secret = "basecamp-access-token" }}

[jira]
site = {jira_url:?}
email = {jira_email:?}
api_token = {{ secret = "jira-api-token" }}
webhook_secret = {{ secret = "jira-webhook-secret" }}

[[users]]
name = "Annie Bryan"
basecamp = {annie}
jira = {jira_annie:?}

[[routes]]
id = "web"
basecamp_project = {project}
jira_project = "WEB"
code = "WEB"
todolists = ["Sprint *", "Bugs"]
triage = {{ jira = {mia:?} }}
"#,
        account = bc.account_id(),
        launchpad = bc.launchpad_url(),
        jira_url = jira.base_url(),
        jira_email = jira_sim::BOT_EMAIL,
        annie = bc_sim::ANNIE,
        jira_annie = jira_sim::ANNIE,
        project = bc_sim::PROJECT_ID,
        mia = jira_sim::MIA,
    )
}

impl World {
    async fn start() -> Self {
        Self::start_with(bc_sim::Options::default(), Duration::from_secs(60)).await
    }

    async fn start_with(bc_opts: bc_sim::Options, lease: Duration) -> Self {
        let bc = bc_sim::Simulator::start(bc_opts).await.unwrap();
        let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await.unwrap();
        let config = Config::parse(&config_text(&bc, &jira), "campbridge.toml").unwrap();
        let secrets = Arc::new(MemorySecrets::with([
            ("webhook-key", WEBHOOK_KEY),
            ("basecamp-access-token", bc_sim::ACCESS_TOKEN),
            ("jira-api-token", jira_sim::API_TOKEN),
            ("jira-webhook-secret", "unused"),
        ]));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let pairs = Arc::new(MemoryPairStore::new());
        let cursors = Arc::new(MemoryCursorStore::new());
        let queue = Arc::new(MemoryJobQueue::new(clock.clone()));
        let stores = Stores {
            pairs: pairs.clone(),
            deliveries: Arc::new(MemoryDeliveryLog::new()),
            audit: Arc::new(MemoryAuditLog::new()),
            conflicts: Arc::new(MemoryConflictLog::new()),
        };
        let mut engine =
            shared::setup::engine(&config, stores, secrets.clone(), clock.clone(), "worker-1").await.unwrap();
        let mut settings = (*engine.settings).clone();
        settings.lease = lease;
        // Above the Jira simulator's index lag, as a deployment sets it above Jira's.
        settings.search_settle = Duration::from_millis(2 * jira_sim::DEFAULT_SEARCH_LAG_MS);
        engine.settings = Arc::new(settings);
        let reconciler = setup::reconciler(
            &config,
            ReconcileStores { pairs: pairs.clone(), cursors: cursors.clone(), queue: queue.clone() },
            secrets.clone(),
            clock,
        )
        .await
        .unwrap();
        Self { bc, jira, config, secrets, pairs, cursors, queue, engine, reconciler }
    }

    /// Creates a to-do in `list` as Victor (no webhook is registered, so nobody hears of it).
    async fn todo(&self, list: &str, title: &str) -> i64 {
        let list = self.bc.list_id(list).await.unwrap();
        let write = TodoWrite { content: Some(title.into()), ..TodoWrite::default() };
        self.bc.create_todo(list, write, bc_sim::VICTOR).await.unwrap()
    }

    /// Runs the mapper over the queue until it is empty; the outcomes of every record synced.
    async fn drain(&self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            let (received, report) =
                run_queue_once(&self.engine, self.queue.as_ref(), 10, Duration::from_secs(60)).await.unwrap();
            if received == 0 {
                return outcomes;
            }
            outcomes.extend(report.outcomes);
        }
        panic!("the queue did not drain");
    }

    /// Every issue in WEB, as Jira holds it (the search is asked after its index caught up).
    async fn issue_keys(&self) -> Vec<String> {
        self.jira.refresh_index().await;
        let client = shared::setup::jira_client(&self.config, self.secrets.as_ref()).await.unwrap();
        let issues = client.search("project = WEB ORDER BY key ASC", &["summary"], 50).await.unwrap();
        issues.into_iter().map(|i| i.key).collect()
    }

    fn route(&self) -> RouteId {
        RouteId("web".into())
    }

    async fn pair(&self, todo: i64) -> Option<shared::domain::Pair> {
        self.pairs.get(&PairKey { route: self.route(), todo: TodoId(todo) }).await.unwrap()
    }
}

/// A loopback receiver that answers every delivery with 500, so Basecamp deactivates the webhooks that
/// point at it. Returns its base URL.
async fn failing_receiver() -> String {
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_todo_created_while_webhooks_were_lost_gets_one_issue_after_reconcile_and_mapper() {
    let w = World::start().await;
    let first = w.reconciler.run().await;
    assert!(first.is_ok(), "{:?}", first.failures);
    assert!(first.basecamp.initialized && first.jira.initialized, "the first run only records where to start");

    let todo = w.todo("Sprint 1", "Checkout button is hidden on mobile").await;
    let found = w.reconciler.run().await;
    assert!(found.is_ok(), "{:?}", found.failures);
    assert_eq!((found.basecamp.seen, found.basecamp.enqueued), (1, 1));
    let outcomes = w.drain().await;
    assert!(matches!(outcomes.as_slice(), [Outcome::Created { recovered: false, .. }]), "{outcomes:?}");
    assert_eq!(w.issue_keys().await, ["WEB-1"]);
    assert!(w.pair(todo).await.is_some_and(|p| p.is_linked()));

    let again = w.reconciler.run().await;
    assert!(again.is_ok(), "{:?}", again.failures);
    assert_eq!(again.basecamp.enqueued, 0, "the pair has seen this version of the to-do");
    assert_eq!(again.basecamp.up_to_date, 1);
    let outcomes = w.drain().await;
    assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Created { .. })), "{outcomes:?}");
    assert_eq!(w.issue_keys().await, ["WEB-1"], "a re-run creates nothing more");
}

#[tokio::test]
async fn more_basecamp_changes_than_the_page_limit_are_a_gap_and_the_newest_are_still_synced() {
    let bc_opts = bc_sim::Options { page_size: 2, ..bc_sim::Options::default() };
    let mut w = World::start_with(bc_opts, Duration::from_secs(60)).await;
    w.reconciler.settings.basecamp_max_pages = 2;
    w.reconciler.run().await;
    let mut todos = Vec::new();
    for n in 1..=5 {
        todos.push(w.todo("Sprint 1", &format!("Lost change {n}")).await);
    }
    w.bc.reset_calls();

    let report = w.reconciler.run().await;
    assert!(report.basecamp.gap, "{report:?}");
    assert!(report.problems().iter().any(|p| p.contains("page limit")), "{:?}", report.problems());
    assert_eq!((report.basecamp.seen, report.basecamp.enqueued), (4, 4), "two pages of two");
    assert_eq!(
        w.bc.calls().count("GET", "/projects/recordings.json"),
        4,
        "the active walk stopped at the limit (2 pages), then one page each of trashed and archived to-dos"
    );
    w.drain().await;
    assert!(w.pair(todos[0]).await.is_none(), "the oldest change was beyond the pages read");
    for todo in &todos[1..] {
        assert!(w.pair(*todo).await.is_some_and(|p| p.is_linked()), "to-do {todo}");
    }
}

#[tokio::test]
async fn a_jira_change_missed_by_the_webhook_reaches_the_todo_after_reconcile() {
    let w = World::start().await;
    w.reconciler.run().await;
    let todo = w.todo("Sprint 1", "Wire the payment provider").await;
    w.reconciler.run().await;
    w.drain().await;

    w.jira.transition_issue("WEB-1", "Done", jira_sim::MIA).await.unwrap();
    // Jira's search index has not caught up yet: this pass cannot see the change…
    let early = w.reconciler.run().await;
    assert!(early.is_ok(), "{:?}", early.failures);
    assert_eq!(early.jira.enqueued, 0, "{early:?}");
    // …and the next one, after the index caught up, re-reads the overlap before its cursor and finds it.
    w.jira.refresh_index().await;
    let report = w.reconciler.run().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert!(report.jira.enqueued >= 1, "{report:?}");
    let outcomes = w.drain().await;
    assert!(outcomes.iter().any(|o| matches!(o, Outcome::Updated { .. })), "{outcomes:?}");
    let record = w.bc.record("todos", todo).await.unwrap();
    assert_eq!(record["completed"], serde_json::json!(true), "dev-owned status: Done completes the to-do");

    let again = w.reconciler.run().await;
    assert_eq!(again.jira.enqueued, 0, "the pair has seen this version of the issue: {again:?}");
}

#[tokio::test]
async fn a_deactivated_webhook_pointing_at_us_is_re_enabled_and_others_are_left_alone() {
    let bc_opts = bc_sim::Options::default();
    let w = World::start_with(bc_opts, Duration::from_secs(60)).await;
    let receiver = failing_receiver().await;
    let token = route_token(&SecretString::from(WEBHOOK_KEY), &w.route());
    let client = shared::setup::basecamp_client(&w.config, w.secrets.clone()).await.unwrap();
    let project = ProjectId(bc_sim::PROJECT_ID);
    let ours = client.create_webhook(project, &format!("{receiver}/basecamp/{token}"), &["Todo"]).await.unwrap();
    let theirs = client.create_webhook(project, &format!("{receiver}/another-integration"), &["Todo"]).await.unwrap();
    w.reconciler.run().await;

    // The receiver fails the delivery and its nine retries (about 4–5 hours): Basecamp deactivates both hooks
    // silently, and the change is lost.
    w.todo("Sprint 1", "Update the privacy policy").await;
    w.bc.settle().await;
    w.bc.advance_clock(Duration::from_secs(6 * 3600)).await;
    assert!(!client.webhook(ours.id).await.unwrap().unwrap().active);

    let report = w.reconciler.run().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert_eq!((report.webhooks.ours, report.webhooks.reenabled, report.webhooks.missing), (1, 1, 0));
    assert!(client.webhook(ours.id).await.unwrap().unwrap().active, "ours is active again");
    assert!(!client.webhook(theirs.id).await.unwrap().unwrap().active, "another integration's hook is not ours");
    assert_eq!(report.basecamp.enqueued, 1, "and the change its delivery lost is enqueued");

    let again = w.reconciler.run().await;
    assert_eq!(again.webhooks.reenabled, 0, "an active hook is left as it is");
}

#[tokio::test]
async fn a_create_that_stopped_midway_is_finished_with_the_issue_it_made() {
    let mut w = World::start_with(bc_sim::Options::default(), Duration::from_secs(1)).await;
    // No overlap: the poll must not see the to-do, so only the PENDING retry can finish it.
    w.reconciler.settings.overlap = Duration::ZERO;
    let todo = w.todo("Bugs", "Receipts show the wrong VAT").await;

    // Jira commits the issue but the answer is lost; the job's message is then lost too (say, a deploy
    // dropped it), so only the PENDING pair remembers the create.
    w.jira.set_config(jira_sim::Config { lose_create_responses: 1, ..jira_sim::Config::default() }).await;
    let job = Job::TodoChanged {
        delivery: DeliveryId::basecamp(1),
        route: w.route(),
        project: ProjectId(bc_sim::PROJECT_ID),
        todo: TodoId(todo),
        event: "todo_created".into(),
        received_at: chrono::Utc::now(),
    };
    assert!(w.engine.sync_record(&[job]).await.is_err());
    assert_eq!(w.pair(todo).await.map(|p| p.state), Some(PairState::Pending));
    assert_eq!(w.issue_keys().await, ["WEB-1"]);

    let live = w.reconciler.run().await;
    assert_eq!(live.pending_retried, 0, "a live lease is left to its owner");
    assert_eq!(w.queue.depth().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // The lease ran out, but the search may not show the issue yet: the takeover waits for the index.
    let early = w.reconciler.run().await;
    assert_eq!(early.pending_retried, 1);
    let waiting = w.drain().await;
    assert!(waiting.is_empty(), "the job waits for the index instead of creating: {waiting:?}");
    assert_eq!(w.issue_keys().await, ["WEB-1"]);
    tokio::time::sleep(Duration::from_millis(2 * jira_sim::DEFAULT_SEARCH_LAG_MS)).await;

    let report = w.reconciler.run().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert_eq!((report.pending_retried, report.basecamp.enqueued), (1, 0));
    let outcomes = w.drain().await;
    assert!(matches!(outcomes.as_slice(), [Outcome::Created { recovered: true, .. }]), "{outcomes:?}");
    assert_eq!(w.pair(todo).await.map(|p| p.state), Some(PairState::Linked));
    assert_eq!(w.issue_keys().await, ["WEB-1"], "the issue Jira made is linked, not made again");
}

/// A queue that refuses every send, as an unavailable SQS would.
struct RefusingQueue;

#[async_trait::async_trait]
impl JobProducer for RefusingQueue {
    async fn send(&self, _: &str, _: &str, _: &str) -> Result<Sent, StoreError> {
        Err(StoreError::Unexpected(anyhow::anyhow!("queue unavailable")))
    }
}

#[async_trait::async_trait]
impl JobConsumer for RefusingQueue {
    async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Received>, StoreError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn change_visibility(&self, _: &str, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn requeue(&self, _: &Received, _: &str, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn dead_letter(&self, _: &Received, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl QueueOperator for RefusingQueue {
    async fn depth(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(Vec::new())
    }
    async fn redrive(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[tokio::test]
async fn the_cursor_advances_only_after_everything_was_enqueued() {
    let w = World::start().await;
    w.reconciler.run().await;
    let start = w.cursors.cursor(BASECAMP_CURSOR).await.unwrap().unwrap();
    w.todo("Sprint 1", "Fix the password reset e-mail").await;

    let mut broken = w.reconciler.clone();
    broken.queue = Arc::new(RefusingQueue);
    let failed = broken.run().await;
    assert!(!failed.is_ok());
    assert_eq!(failed.basecamp.cursor, None);
    assert_eq!(w.cursors.cursor(BASECAMP_CURSOR).await.unwrap(), Some(start), "a failed poll leaves it");

    let report = w.reconciler.run().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert_eq!(report.basecamp.enqueued, 1, "the next run finds the change again");
    let moved = w.cursors.cursor(BASECAMP_CURSOR).await.unwrap().unwrap();
    assert!(moved > start && report.basecamp.cursor == Some(moved));
    assert!(w.cursors.cursor(JIRA_CURSOR).await.unwrap().unwrap() > start);
}
