//! A whole deployment in memory: the engine over the memory (or SQLite) adapters, the fake upstreams
//! and a job queue, with helpers that enqueue webhook-like jobs and drain the queue the way a worker
//! does. Used by the engine's tests and property tests; the HTTP end-to-end tests use the simulators.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::memory::{
    ManualClock, MemoryAuditLog, MemoryConflictLog, MemoryDeliveryLog, MemoryJobQueue, MemoryPairStore,
};
use crate::domain::{DeliveryId, DevItemRef, Job, PairKey, Route, Todo, TodoId, UserTable};
use crate::ports::{JobProducer, PairStore};
use crate::sync::{BatchReport, Engine, Outcome, SyncSettings, run_queue_once};

use super::fakes::{FakeBasecamp, FakeTracker};
use super::{at, route, users};

/// One deployment: stores, queue, fakes and the engine wired over them.
pub struct World {
    pub clock: Arc<ManualClock>,
    pub pairs: Arc<MemoryPairStore>,
    pub audit: Arc<MemoryAuditLog>,
    pub conflicts: Arc<MemoryConflictLog>,
    pub queue: Arc<MemoryJobQueue>,
    pub basecamp: Arc<FakeBasecamp>,
    pub tracker: Arc<FakeTracker>,
    pub engine: Engine,
    next_delivery: std::sync::atomic::AtomicU64,
}

impl World {
    /// The default route and users.
    pub fn new() -> Self {
        Self::with(route(), users())
    }

    pub fn with(route: Route, users: UserTable) -> Self {
        let clock = Arc::new(ManualClock::new(at(0)));
        let pairs = Arc::new(MemoryPairStore::new());
        let audit = Arc::new(MemoryAuditLog::new());
        let conflicts = Arc::new(MemoryConflictLog::new());
        let queue = Arc::new(MemoryJobQueue::new(clock.clone()).with_max_receives(5));
        let basecamp = Arc::new(FakeBasecamp::default());
        let tracker = Arc::new(FakeTracker::new());
        let engine = Engine {
            settings: Arc::new(SyncSettings::new(vec![route], users, "worker-1")),
            pairs: pairs.clone(),
            deliveries: Arc::new(MemoryDeliveryLog::new()),
            audit: audit.clone(),
            conflicts: conflicts.clone(),
            basecamp: basecamp.clone(),
            tracker: tracker.clone(),
            code_host: None,
            clock: clock.clone(),
        };
        Self {
            clock,
            pairs,
            audit,
            conflicts,
            queue,
            basecamp,
            tracker,
            engine,
            next_delivery: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A second worker over the same stores and upstreams (for races and takeovers).
    pub fn worker(&self, name: &str) -> Engine {
        let mut settings = (*self.engine.settings).clone();
        settings.worker = name.to_owned();
        Engine { settings: Arc::new(settings), ..self.engine.clone() }
    }

    fn delivery(&self, source: &str) -> DeliveryId {
        let n = self.next_delivery.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        DeliveryId(format!("{source}:{n}"))
    }

    /// The job a Basecamp webhook for `todo` would produce (a fresh delivery id each time).
    pub fn todo_job(&self, todo: TodoId) -> Job {
        let route = &self.engine.settings.routes[0];
        Job::TodoChanged {
            delivery: self.delivery("basecamp"),
            route: route.id.clone(),
            project: route.project,
            todo,
            event: "todo_changed".into(),
            received_at: self.clock_now(),
        }
    }

    /// The job a Basecamp comment webhook would produce.
    pub fn comment_job(&self, todo: TodoId, comment: crate::domain::BasecampCommentId) -> Job {
        let route = &self.engine.settings.routes[0];
        Job::TodoCommentChanged {
            delivery: self.delivery("basecamp"),
            route: route.id.clone(),
            project: route.project,
            todo,
            comment,
            event: "comment_created".into(),
            received_at: self.clock_now(),
        }
    }

    /// The job a Bitbucket pull-request webhook would produce.
    pub fn pr_job(&self, id: u64, title: &str, description: &str, branch: &str, state: &str) -> Job {
        let repo = crate::domain::RepoRef { workspace: "team".into(), repo_slug: "web".into() };
        Job::PullRequestChanged {
            delivery: self.delivery("bitbucket"),
            pull_request: crate::domain::PullRequest {
                pr: crate::domain::PullRequestRef { repo, id },
                title: title.into(),
                description: description.into(),
                source_branch: branch.into(),
                author: "Ana Diaz".into(),
                url: format!("https://bitbucket.org/team/web/pull-requests/{id}"),
            },
            state: state.into(),
            received_at: self.clock_now(),
        }
    }

    /// The job a Bitbucket build-status webhook would produce.
    pub fn build_job(&self, branch: &str, commit: &str, state: &str) -> Job {
        Job::BuildChanged {
            delivery: self.delivery("bitbucket"),
            build: crate::domain::Build {
                repo: crate::domain::RepoRef { workspace: "team".into(), repo_slug: "web".into() },
                commit: commit.into(),
                key: "ci-main".into(),
                state: state.into(),
                name: "CI".into(),
                url: format!("https://ci.example.com/{commit}"),
                branch: Some(branch.into()),
            },
            received_at: self.clock_now(),
        }
    }

    /// The job a Jira comment webhook would produce.
    pub fn issue_comment_job(&self, item: &DevItemRef, comment: &crate::domain::JiraCommentId) -> Job {
        let DevItemRef::Jira { id, key } = item;
        Job::IssueCommentChanged {
            delivery: self.delivery("jira"),
            issue: id.clone(),
            key: key.clone(),
            comment: comment.clone(),
            received_at: self.clock_now(),
        }
    }

    /// The job a Jira webhook for `item` would produce.
    pub fn item_job(&self, item: &DevItemRef) -> Job {
        let DevItemRef::Jira { id, key } = item;
        Job::IssueChanged {
            delivery: self.delivery("jira"),
            issue: id.clone(),
            key: key.clone(),
            event: "jira:issue_updated".into(),
            received_at: self.clock_now(),
        }
    }

    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::ports::Clock::now(self.clock.as_ref())
    }

    /// Enqueues `job` as a receiver would (group = record, dedup id = delivery id).
    pub async fn enqueue(&self, job: &Job) {
        let sent = self.queue.enqueue(job).await;
        assert!(sent.is_ok(), "enqueue failed: {sent:?}");
    }

    /// A person creates a to-do; its webhook is enqueued.
    pub async fn create_todo(&self, todo: Todo) {
        let id = todo.id;
        self.basecamp.put(todo);
        self.enqueue(&self.todo_job(id)).await;
    }

    /// Runs worker batches until the queue has nothing visible (delayed messages wait), at most
    /// `max_batches`; returns every batch report.
    pub async fn drain(&self) -> Vec<BatchReport> {
        let mut reports = Vec::new();
        for _ in 0..200 {
            match run_queue_once(&self.engine, self.queue.as_ref(), 10, Duration::from_secs(30)).await {
                Ok((0, _)) => break,
                Ok((_, report)) => reports.push(report),
                Err(e) => panic!("worker failed: {e}"),
            }
        }
        reports
    }

    /// All outcomes of `drain`.
    pub async fn drain_outcomes(&self) -> Vec<Outcome> {
        self.drain().await.into_iter().flat_map(|r| r.outcomes).collect()
    }

    /// The item paired with `todo`, if any.
    pub async fn item_of(&self, todo: TodoId) -> Option<DevItemRef> {
        let key = PairKey { route: self.engine.settings.routes[0].id.clone(), todo };
        self.pairs.get(&key).await.ok().flatten().and_then(|p| p.item)
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
