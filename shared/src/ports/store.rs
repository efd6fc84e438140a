//! Storage-side ports: pairs, deliveries, the job queue, audit and conflict logs, the reconciler's cursors,
//! secrets, the clock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{DeliveryId, DevItemRef, Field, Job, Pair, PairKey, PairState, RouteId};

/// Errors from any storage adapter. Conditional-write outcomes are values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored record could not be decoded (corruption or an incompatible schema).
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The result of a conditional insert.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted<T> {
    Inserted,
    /// Somebody else got there first; here is what they wrote (no second read needed).
    AlreadyExists(T),
}

/// The result of a version-conditioned replace.
#[derive(Debug, Clone, PartialEq)]
pub enum Replaced<T> {
    /// Written; the stored version is now the given one.
    Replaced(u64),
    /// The stored version differs from the expected one (or the record is gone: `None`).
    Stale(Option<T>),
}

/// Pairs, filed by (route, to-do) with a reverse lookup from the dev item.
#[async_trait]
pub trait PairStore: Send + Sync {
    /// Inserts a new pair (normally PENDING, version 0) if none exists for its (route, to-do).
    /// Duplicates: exactly one of any number of racing inserts returns `Inserted`; every other returns
    /// `AlreadyExists` with the stored pair.
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError>;

    /// Replaces the stored pair if its version equals `pair.version`; the stored copy gets
    /// `pair.version + 1`. When `pair.item` is set, the reverse lookup item → pair is written in the same
    /// atomic step; if that item already belongs to another pair, nothing is written and the result is
    /// `Stale` with the current pair. Retrying a `Stale` replace without re-reading never succeeds.
    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError>;

    /// The pair for one to-do on one route, if any.
    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError>;

    /// The pair a dev item belongs to, by the item's index key (see [`DevItemRef::index_key`]).
    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError>;

    /// Deletes the pair at `key` if its stored version is `version`, with the item lookup that points at it.
    /// `Ok(true)` when it was deleted; `Ok(false)` when there is no such pair or its version differs (a
    /// worker saved it meanwhile: re-read before deciding again). The sync itself never forgets a pair;
    /// this takes away what `campbridge selftest` made in a sandbox.
    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError>;

    /// Pairs in `state` on `route` (all routes if `None`), oldest first, at most `limit`.
    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError>;
}

/// The outcome of claiming a delivery (the Powertools idempotency protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// New (or expired, or abandoned in progress past its lease): the caller now owns it.
    Claimed,
    /// Another worker is processing it and its lease has not run out: retry later.
    InProgress { until: DateTime<Utc> },
    /// Already processed within the retention window: skip it.
    Completed,
}

/// Remembers which deliveries were processed, so a redelivered or duplicate webhook does nothing twice.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Claims `id` for processing until `now + lease`. Succeeds when the record is absent, when it has
    /// expired (`expires_at <= now`), or when it is in progress with a lease that has run out.
    async fn claim(&self, id: &DeliveryId, now: DateTime<Utc>, lease: Duration) -> Result<DeliveryClaim, StoreError>;

    /// Marks `id` completed; later claims return `Completed` until `now + retention`. Completing an id
    /// that is already completed is a no-op.
    async fn complete(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError>;

    /// Drops an in-progress claim after a failure so the retry can claim it at once. Releasing a
    /// completed or unknown id is a no-op.
    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError>;
}

/// One message handed out by [`JobConsumer::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub receipt: String,
    pub message_id: String,
    pub group: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// Whether a send added a message or matched one already queued with the same deduplication id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Enqueued,
    Duplicate,
}

/// A message moved aside: by the mapper after its last allowed receive failed ([`JobConsumer::dead_letter`]),
/// or by the queue itself after too many receives that never settled (a worker that kept stopping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub group: String,
    pub dedup_id: String,
    pub body: String,
    pub receive_count: u32,
    pub dead_at: DateTime<Utc>,
    /// The error of the last failed attempt; `None` when the queue moved it (no attempt ever finished).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A FIFO queue with message groups, visibility timeouts and a dead-letter queue (SQS FIFO semantics), in
/// its three roles: [`JobProducer`] (the receivers, the reconciler), [`JobConsumer`] (the mapper) and
/// [`QueueOperator`] (`status`, `dead-letters`). Adapters implement the three; anything that does is a
/// `JobQueue`, and a `&dyn JobQueue` or `Arc<dyn JobQueue>` passes where one role is asked for.
pub trait JobQueue: JobProducer + JobConsumer + QueueOperator {}

impl<Q: JobProducer + JobConsumer + QueueOperator + ?Sized> JobQueue for Q {}

/// The producer's side of the [`JobQueue`].
#[async_trait]
pub trait JobProducer: Send + Sync {
    /// Enqueues `body` in `group`. A second send with the same `dedup_id` while the first is still queued
    /// (or was sent within the dedupe window) is a `Duplicate` and adds nothing.
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError>;

    /// Enqueues `job` in its wire form, in its record's message group, deduplicated by its delivery id:
    /// the same delivery sent twice is a `Duplicate`. The one way the product puts a job on the queue.
    async fn enqueue(&self, job: &Job) -> Result<Sent, StoreError> {
        let body = job.to_wire().map_err(|e| StoreError::Unexpected(e.into()))?;
        self.send(&job.record().group_id(), job.delivery().as_str(), &body).await
    }
}

/// The consumer's side of the [`JobQueue`]: what the mapper does with the messages it receives.
#[async_trait]
pub trait JobConsumer: Send + Sync {
    /// Up to `max` visible messages, oldest first, keeping per-group order: a group with a message in
    /// flight hands out nothing until that message is deleted or becomes visible again. Received
    /// messages stay invisible for `visibility`. A message received more than the queue's max-receive
    /// count moves to the dead letters instead of being returned.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError>;

    /// Deletes a received message (processing finished). An unknown or stale receipt is a no-op.
    async fn delete(&self, receipt: &str) -> Result<(), StoreError>;

    /// Makes a received message visible again after `delay` (0 = now). Counts as a receive like any other:
    /// use [`JobConsumer::requeue`] for a delay that must not move the message towards the dead letters.
    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError>;

    /// Puts a received message back as a fresh one: `body` in the same group, receive count 0, and the
    /// received message gone. The delay is honoured where the queue has per-message delays (SQLite,
    /// memory: the message keeps its place in its group and is invisible until then); SQS FIFO has none, so
    /// the copy goes to the back of its group and is visible at once, and the consumer holds it by the due
    /// time its body carries. A stale receipt deletes nothing; SQS may still enqueue the copy, so the job
    /// must be safe to run twice (jobs are: the delivery log and pair versions absorb it).
    async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError>;

    /// Moves a received message to the dead letters now, recording `error` (what its last attempt failed
    /// with) with it. A stale receipt: SQS may still file the copy; the others do nothing.
    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError>;
}

/// The operator's side of the [`JobQueue`]: what `status` and `dead-letters` read and do.
#[async_trait]
pub trait QueueOperator: Send + Sync {
    /// Messages waiting (visible or in flight), not counting dead letters.
    async fn depth(&self) -> Result<u64, StoreError>;

    /// The dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// Moves one dead letter back onto the queue with a fresh receive count. Unknown ids return false.
    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError>;
}

/// What happened to one record, secret-free, for people reading `status` or debugging a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub route: Option<RouteId>,
    /// The pair or record it concerns (`web/1069480015`, `jira:10002`).
    pub subject: String,
    pub delivery: Option<DeliveryId>,
    /// A short machine-readable action (`created`, `updated`, `filtered`, `echo`, `assignee_fallback`…).
    pub action: String,
    /// A sentence a person can read on its own.
    pub detail: String,
}

/// An append-only audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an entry. Entries are never updated; a retried job may append a second, identical entry.
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` entries for `subject` (all subjects if `None`), newest first.
    async fn recent(&self, subject: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// How a conflict was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The route's policy applied the Basecamp value.
    TookBasecamp,
    /// The route's policy applied the tracker value.
    TookTracker,
    /// `manual`: neither side was overwritten; waiting for a person.
    Open,
}

/// Both sides changed one field since the last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Unique per (pair, field, snapshot version): retries of the same job record the same id.
    pub id: String,
    pub pair: PairKey,
    pub item: Option<DevItemRef>,
    pub field: Field,
    pub basecamp_value: String,
    pub tracker_value: String,
    pub policy: String,
    pub resolution: Resolution,
    pub at: DateTime<Utc>,
}

/// The conflict log: every conflict, however it was resolved.
#[async_trait]
pub trait ConflictLog: Send + Sync {
    /// Records a conflict. A second record with the same id is `AlreadyExists` and changes nothing.
    async fn record(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError>;
    /// Conflicts, newest first; only `Open` ones when `open_only`.
    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Conflict>, StoreError>;
    /// Sets the resolution of an open conflict. Returns false if the id is unknown or already settled.
    async fn resolve(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError>;
}

/// Named instants that only move forward: the reconciler's polling cursors ("everything updated before
/// this was looked at").
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// The instant stored under `name`, or `None` before its first [`CursorStore::advance`].
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Moves `name` forward to `to` and returns `true`. A stored cursor already at or past `to` is kept
    /// and `false` returned, so overlapping or retried runs never move a cursor back; of racing
    /// advances, the latest instant wins whatever the order.
    async fn advance(&self, name: &str, to: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// Errors reading or writing secrets. Messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0:?} is not set")]
    Missing(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Named secrets (API tokens, webhook secrets). Values are `SecretString`: their `Debug` is redacted.
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError>;
    /// Stores a new value. `request_token` makes the write idempotent: two writers with the same token
    /// produce one version (used when a refreshed OAuth token is written back).
    async fn put(&self, name: &str, value: &SecretString, request_token: &str) -> Result<(), SecretError>;
}

/// The time, injectable so leases and expiries are testable.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
