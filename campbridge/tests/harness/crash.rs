//! Failpoints at every step boundary of the mapper, as injectable decorators over the ports the engine
//! and the worker loop use (test code only: no production build carries them). A point that fires
//! "kills the process": it trips the process's switch and never returns, every later call of that process
//! hangs too, and the supervisor aborts all of the process's tasks — nothing after the point happens, as
//! after a SIGKILL — then starts a fresh process (new clients, new worker name) on the same store.
//!
//! The steps, in the order a job meets them: **claim** (the delivery claim was written), **fetch** (a fresh
//! read of either side returned), **decide** (a plan was made: the point sits just before its first
//! effect, a pair save or an upstream write), **write** (each upstream write returned, per operation),
//! **pair save** (a conditional pair write returned), **completion** (the delivery was marked done) and
//! **ack** (the queue message was settled: deleted, requeued or dead-lettered).
//!
//! [`CrashPlan`] arms one step at a time, in a cycle over all of them, and fires it at its next hit after
//! a random number of other calls, so every step boundary is crashed at, spread over the run. A batch
//! holding a message already received three times is never crashed, so no message is killed five times
//! in a row (which the poison-message policy would, correctly, dead-letter).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::domain::{
    BasecampCommentId, DeliveryId, DevItem, DevItemRef, JiraCommentId, JiraKey, NewDevItem, Pair, PairKey, PairState,
    ProjectId, RouteId, SyncMarker, Todo, TodoId, TodolistId, TrackerTarget,
};
use shared::ports::{
    ApiError, BasecampApi, DeadLetter, DeliveryClaim, DeliveryLog, DevItemPatch, Inserted, JobConsumer, JobProducer,
    JobQueue, PairStore, QueueOperator, Received, RemoteLink, Replaced, Sent, StoreError, TodoComment, TodoPatch,
    TrackerApi, TrackerComment,
};
use tokio::sync::Notify;

/// Where a process can be killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Claim,
    Fetch,
    Decide,
    Write,
    PairSave,
    Completion,
    Ack,
}

impl Step {
    pub const ALL: [Step; 7] =
        [Step::Claim, Step::Fetch, Step::Decide, Step::Write, Step::PairSave, Step::Completion, Step::Ack];

    pub fn name(self) -> &'static str {
        match self {
            Step::Claim => "claim",
            Step::Fetch => "fetch",
            Step::Decide => "decide",
            Step::Write => "write",
            Step::PairSave => "pair save",
            Step::Completion => "completion",
            Step::Ack => "ack",
        }
    }
}

tokio::task_local! {
    /// Set by a worker for the batch in hand: `true` when crashing it is not allowed.
    pub static SPARE_BATCH: Cell<bool>;
}

/// Which step is armed, and what fired so far. Shared by every process of a run.
pub struct CrashPlan {
    inner: Mutex<Plan>,
}

struct Plan {
    enabled: bool,
    armed: usize,
    countdown: u32,
    gap: u32,
    rng: StdRng,
    /// Crashes per point (`write:update_item`, `claim`, …).
    fired: BTreeMap<String, u64>,
}

impl CrashPlan {
    /// A plan that fires about once per `gap` port calls.
    pub fn new(seed: u64, gap: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let gap = gap.clamp(2, u32::MAX / 2);
        let countdown = rng.gen_range(gap / 2..gap + gap / 2);
        Self { inner: Mutex::new(Plan { enabled: true, armed: 0, countdown, gap, rng, fired: BTreeMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.lock().enabled = enabled;
    }

    /// Crashes so far, per point.
    pub fn fired(&self) -> BTreeMap<String, u64> {
        self.lock().fired.clone()
    }

    /// Crashes so far, per step.
    pub fn fired_by_step(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (point, n) in self.lock().fired.iter() {
            let step = point.split(':').next().unwrap_or(point);
            let step = Step::ALL.iter().map(|s| s.name()).find(|s| *s == step).unwrap_or("other");
            *out.entry(step).or_default() += n;
        }
        out
    }

    fn should_fire(&self, step: Step, point: &str) -> bool {
        if SPARE_BATCH.try_with(Cell::get).unwrap_or(false) {
            return false;
        }
        let mut p = self.lock();
        if !p.enabled {
            return false;
        }
        if p.countdown > 0 {
            p.countdown -= 1;
            return false;
        }
        if Step::ALL[p.armed] != step {
            return false;
        }
        p.armed = (p.armed + 1) % Step::ALL.len();
        let gap = p.gap;
        p.countdown = p.rng.gen_range(gap / 2..gap + gap / 2);
        *p.fired.entry(point.to_owned()).or_default() += 1;
        true
    }
}

/// One process's kill switch.
#[derive(Default)]
pub struct Switch {
    tripped: AtomicBool,
    pub notify: Notify,
    /// Batches in hand holding a message near its last allowed receive: while any is, the process is not
    /// killed at all (a kill takes every worker's batch with it, not just the one at the failpoint).
    pub spared: std::sync::atomic::AtomicUsize,
}

impl Switch {
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

/// The failpoints of one process.
#[derive(Clone)]
pub struct Points {
    pub plan: Arc<CrashPlan>,
    pub switch: Arc<Switch>,
}

impl Points {
    /// Returns when the process lives on; never returns when it was killed here (or earlier).
    async fn at(&self, step: Step, point: &str) {
        let spared = self.switch.spared.load(Ordering::SeqCst) > 0;
        if self.switch.tripped() || (!spared && self.plan.should_fire(step, point)) {
            if !self.switch.tripped.swap(true, Ordering::SeqCst) {
                self.switch.notify.notify_one();
            }
            std::future::pending::<()>().await;
        }
    }

    /// A dying process starts nothing new either.
    async fn alive(&self) {
        if self.switch.tripped() {
            std::future::pending::<()>().await;
        }
    }
}

/// Basecamp has no conditional write: a to-do update is GET → merge → full PUT, and a person's edit that
/// lands between the two is overwritten (docs: "no If-Match"; reference/basecamp-api.md). That window is
/// the one race campbridge cannot close, so the people of a run never edit a to-do while the sync is
/// inside that read-merge-write of it: both hold the to-do's lock. Everything else stays concurrent.
#[derive(Default)]
pub struct TodoLocks {
    locks: Mutex<BTreeMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// How often a person waited for one.
    pub waits: std::sync::atomic::AtomicU64,
}

impl TodoLocks {
    pub fn of(&self, todo: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(todo).or_default().clone()
    }

    /// The lock a person takes before editing `todo`, counting the times it was busy.
    pub async fn person(&self, todo: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self.of(todo);
        match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                lock.lock_owned().await
            }
        }
    }
}

/// The Basecamp port with failpoints.
pub struct CrashBasecamp {
    pub inner: Arc<dyn BasecampApi>,
    pub points: Points,
    pub locks: Arc<TodoLocks>,
}

#[async_trait]
impl BasecampApi for CrashBasecamp {
    async fn get_todo(&self, project: ProjectId, todo: TodoId) -> Result<Option<Todo>, ApiError> {
        self.points.alive().await;
        let r = self.inner.get_todo(project, todo).await;
        self.points.at(Step::Fetch, "fetch:get_todo").await;
        r
    }
    async fn update_todo(&self, project: ProjectId, todo: TodoId, patch: &TodoPatch) -> Result<Todo, ApiError> {
        self.points.at(Step::Decide, "decide:update_todo").await;
        let r = {
            let lock = self.locks.of(todo.0);
            let _read_merge_write = lock.lock().await;
            self.inner.update_todo(project, todo, patch).await
        };
        self.points.at(Step::Write, "write:update_todo").await;
        r
    }
    async fn post_comment(&self, project: ProjectId, todo: TodoId, html: &str) -> Result<BasecampCommentId, ApiError> {
        self.points.at(Step::Decide, "decide:post_comment").await;
        let r = self.inner.post_comment(project, todo, html).await;
        self.points.at(Step::Write, "write:post_comment").await;
        r
    }
    async fn list_comments(&self, project: ProjectId, todo: TodoId) -> Result<Vec<TodoComment>, ApiError> {
        self.points.alive().await;
        let r = self.inner.list_comments(project, todo).await;
        self.points.at(Step::Fetch, "fetch:list_comments").await;
        r
    }
    async fn update_comment(&self, project: ProjectId, comment: BasecampCommentId, html: &str) -> Result<(), ApiError> {
        self.points.at(Step::Decide, "decide:update_comment").await;
        let r = self.inner.update_comment(project, comment, html).await;
        self.points.at(Step::Write, "write:update_comment").await;
        r
    }
    async fn get_comment(
        &self,
        project: ProjectId,
        comment: BasecampCommentId,
    ) -> Result<Option<TodoComment>, ApiError> {
        self.points.alive().await;
        let r = self.inner.get_comment(project, comment).await;
        self.points.at(Step::Fetch, "fetch:get_comment").await;
        r
    }
    async fn list_todos(&self, project: ProjectId, list: TodolistId) -> Result<Option<Vec<Todo>>, ApiError> {
        self.points.alive().await;
        let r = self.inner.list_todos(project, list).await;
        self.points.at(Step::Fetch, "fetch:list_todos").await;
        r
    }
}

/// The tracker port with failpoints.
pub struct CrashTracker {
    pub inner: Arc<dyn TrackerApi>,
    pub points: Points,
}

#[async_trait]
impl TrackerApi for CrashTracker {
    async fn get_item(&self, item: &DevItemRef) -> Result<Option<DevItem>, ApiError> {
        self.points.alive().await;
        let r = self.inner.get_item(item).await;
        self.points.at(Step::Fetch, "fetch:get_item").await;
        r
    }
    async fn find_item(&self, key: &JiraKey) -> Result<Option<DevItemRef>, ApiError> {
        self.points.alive().await;
        let r = self.inner.find_item(key).await;
        self.points.at(Step::Fetch, "fetch:find_item").await;
        r
    }
    async fn find_by_marker(&self, target: &TrackerTarget, marker: &SyncMarker) -> Result<Option<DevItem>, ApiError> {
        self.points.alive().await;
        let r = self.inner.find_by_marker(target, marker).await;
        self.points.at(Step::Fetch, "fetch:find_by_marker").await;
        r
    }
    async fn create_item(&self, target: &TrackerTarget, draft: &NewDevItem) -> Result<DevItem, ApiError> {
        self.points.at(Step::Decide, "decide:create_item").await;
        let r = self.inner.create_item(target, draft).await;
        self.points.at(Step::Write, "write:create_item").await;
        r
    }
    async fn update_item(&self, item: &DevItemRef, patch: &DevItemPatch) -> Result<(), ApiError> {
        self.points.at(Step::Decide, "decide:update_item").await;
        let r = self.inner.update_item(item, patch).await;
        self.points.at(Step::Write, "write:update_item").await;
        r
    }
    async fn upsert_remote_link(&self, item: &DevItemRef, link: &RemoteLink) -> Result<(), ApiError> {
        self.points.at(Step::Decide, "decide:upsert_remote_link").await;
        let r = self.inner.upsert_remote_link(item, link).await;
        self.points.at(Step::Write, "write:upsert_remote_link").await;
        r
    }
    async fn add_comment(&self, item: &DevItemRef, html: &str) -> Result<JiraCommentId, ApiError> {
        self.points.at(Step::Decide, "decide:add_comment").await;
        let r = self.inner.add_comment(item, html).await;
        self.points.at(Step::Write, "write:add_comment").await;
        r
    }
    async fn update_comment(&self, item: &DevItemRef, comment: &JiraCommentId, html: &str) -> Result<(), ApiError> {
        self.points.at(Step::Decide, "decide:update_tracker_comment").await;
        let r = self.inner.update_comment(item, comment, html).await;
        self.points.at(Step::Write, "write:update_tracker_comment").await;
        r
    }
    async fn list_comments(&self, item: &DevItemRef) -> Result<Vec<TrackerComment>, ApiError> {
        self.points.alive().await;
        let r = self.inner.list_comments(item).await;
        self.points.at(Step::Fetch, "fetch:list_tracker_comments").await;
        r
    }
}

/// The pair store with failpoints around its conditional writes.
pub struct CrashPairs {
    pub inner: Arc<dyn PairStore>,
    pub points: Points,
}

#[async_trait]
impl PairStore for CrashPairs {
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        self.points.at(Step::Decide, "decide:pair_insert").await;
        let r = self.inner.insert(pair).await;
        self.points.at(Step::PairSave, "pair save:insert").await;
        r
    }
    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        self.points.at(Step::Decide, "decide:pair_replace").await;
        let r = self.inner.replace(pair).await;
        self.points.at(Step::PairSave, "pair save:replace").await;
        r
    }
    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        self.points.alive().await;
        self.inner.get(key).await
    }
    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        self.points.at(Step::Decide, "decide:pair_remove").await;
        let r = self.inner.remove(key, version).await;
        self.points.at(Step::PairSave, "pair save:remove").await;
        r
    }
    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        self.points.alive().await;
        self.inner.find_by_item(item).await
    }
    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        self.points.alive().await;
        self.inner.list(route, state, limit).await
    }
}

/// The delivery log with failpoints after a claim and after a completion.
pub struct CrashDeliveries {
    pub inner: Arc<dyn DeliveryLog>,
    pub points: Points,
}

#[async_trait]
impl DeliveryLog for CrashDeliveries {
    async fn claim(
        &self,
        id: &DeliveryId,
        now: chrono::DateTime<chrono::Utc>,
        lease: Duration,
    ) -> Result<DeliveryClaim, StoreError> {
        self.points.alive().await;
        let r = self.inner.claim(id, now, lease).await;
        if matches!(r, Ok(DeliveryClaim::Claimed)) {
            self.points.at(Step::Claim, "claim").await;
        }
        r
    }
    async fn complete(
        &self,
        id: &DeliveryId,
        now: chrono::DateTime<chrono::Utc>,
        retention: Duration,
    ) -> Result<(), StoreError> {
        self.points.alive().await;
        let r = self.inner.complete(id, now, retention).await;
        self.points.at(Step::Completion, "completion").await;
        r
    }
    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError> {
        self.points.alive().await;
        self.inner.release(id).await
    }
}

/// The worker's view of the queue: failpoints after each settle, a batch spared when it holds a message
/// received three times, and (SQS) delays converted from the scaled clock's time to real time.
pub struct CrashQueue {
    pub inner: Arc<dyn JobQueue>,
    pub points: Points,
    /// Virtual seconds per real second for the queue's own timers (1 when the queue reads the scaled clock).
    pub time_factor: f64,
}

impl CrashQueue {
    fn real(&self, d: Duration) -> Duration {
        d.div_f64(self.time_factor.max(1.0))
    }
}

#[async_trait]
impl JobProducer for CrashQueue {
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
        self.points.alive().await;
        self.inner.send(group, dedup_id, body).await
    }
}

#[async_trait]
impl JobConsumer for CrashQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        self.points.alive().await;
        let got = self.inner.receive(max, self.real(visibility)).await?;
        let spare = got.iter().any(|m| m.receive_count >= 3);
        // Outside a worker's batch scope there is nothing to spare. The worker gives the count back when
        // its batch ends.
        if spare && SPARE_BATCH.try_with(|c| c.set(true)).is_ok() {
            self.points.switch.spared.fetch_add(1, Ordering::SeqCst);
        }
        Ok(got)
    }
    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.points.alive().await;
        let r = self.inner.delete(receipt).await;
        self.points.at(Step::Ack, "ack:delete").await;
        r
    }
    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.points.alive().await;
        let r = self.inner.change_visibility(receipt, self.real(delay)).await;
        self.points.at(Step::Ack, "ack:change_visibility").await;
        r
    }
    async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError> {
        self.points.alive().await;
        let r = self.inner.requeue(message, body, self.real(delay)).await;
        self.points.at(Step::Ack, "ack:requeue").await;
        r
    }
    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
        self.points.alive().await;
        let r = self.inner.dead_letter(message, error).await;
        self.points.at(Step::Ack, "ack:dead_letter").await;
        r
    }
}

#[async_trait]
impl QueueOperator for CrashQueue {
    async fn depth(&self) -> Result<u64, StoreError> {
        self.inner.depth().await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters().await
    }
    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError> {
        self.inner.redrive(message_id).await
    }
}
