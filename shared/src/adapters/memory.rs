//! In-memory adapters (unit tests, benchmarks), each behind one `std::sync::Mutex`.
//!
//! They follow the port contracts exactly, conditional writes included, so the engine's tests exercise the
//! same duplicate, race and expiry behaviour the durable adapters give. Every operation takes the lock
//! once and does its check-then-write inside it, which is what makes the conditional writes atomic. A
//! poisoned lock (a panic while holding it) is reported as [`StoreError::Unexpected`].
//!
//! [`ManualClock`] is the settable [`Clock`] the tests move to expire leases and visibility timeouts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{DEDUP_WINDOW, DEFAULT_MAX_RECEIVES, earlier, later};
use crate::domain::{DeliveryId, DevItemRef, Pair, PairKey, PairState, RouteId};
use crate::ports::{
    AuditEntry, AuditLog, Clock, Conflict, ConflictLog, CursorStore, DeadLetter, DeliveryClaim, DeliveryLog, Inserted,
    JobConsumer, JobProducer, PairStore, QueueOperator, Received, Replaced, Resolution, SecretError, SecretStore, Sent,
    StoreError,
};

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| StoreError::Unexpected(anyhow::anyhow!("in-memory store lock poisoned by an earlier panic")))
}

/// A clock tests set and advance by hand. Starts wherever it is told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Jumps to `t` (backwards too).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.guard() = t;
    }

    /// Moves time forward by `d` (saturating at chrono's maximum).
    pub fn advance(&self, d: Duration) {
        let mut now = self.guard();
        *now = later(*now, d).unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    // A poisoned clock still holds a valid instant: nothing can be half-written in a `DateTime`.
    fn guard(&self) -> MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.guard()
    }
}

#[derive(Debug, Default)]
struct Pairs {
    by_key: BTreeMap<PairKey, Pair>,
    /// Reverse lookup: item index key → the pair that owns the item.
    by_item: HashMap<String, PairKey>,
}

/// Pairs in a map, with the item → pair reverse lookup kept in step under the same lock.
///
/// `insert` of a pair that already carries an item claims the reverse lookup too; if that item belongs to
/// another pair, nothing is written and the result is `AlreadyExists` with that other pair.
#[derive(Debug, Default)]
pub struct MemoryPairStore {
    inner: Mutex<Pairs>,
}

impl MemoryPairStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl PairStore for MemoryPairStore {
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        let mut g = lock(&self.inner)?;
        let key = pair.key();
        if let Some(existing) = g.by_key.get(&key) {
            return Ok(Inserted::AlreadyExists(existing.clone()));
        }
        if let Some(item) = &pair.item {
            let index = item.index_key();
            if let Some(owner) = g.by_item.get(&index).and_then(|k| g.by_key.get(k)) {
                return Ok(Inserted::AlreadyExists(owner.clone()));
            }
            g.by_item.insert(index, key.clone());
        }
        g.by_key.insert(key, pair.clone());
        Ok(Inserted::Inserted)
    }

    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        let mut g = lock(&self.inner)?;
        let key = pair.key();
        let Some(current) = g.by_key.get(&key).cloned() else {
            return Ok(Replaced::Stale(None));
        };
        if current.version != pair.version {
            return Ok(Replaced::Stale(Some(current)));
        }
        let new_index = pair.item.as_ref().map(DevItemRef::index_key);
        if let Some(index) = &new_index
            && g.by_item.get(index).is_some_and(|owner| *owner != key)
        {
            return Ok(Replaced::Stale(Some(current)));
        }
        // The item changed or was dropped: the old lookup must not keep pointing here.
        if let Some(old) = current.item.as_ref().map(DevItemRef::index_key)
            && Some(&old) != new_index.as_ref()
            && g.by_item.get(&old) == Some(&key)
        {
            g.by_item.remove(&old);
        }
        if let Some(index) = new_index {
            g.by_item.insert(index, key.clone());
        }
        let mut next = pair.clone();
        next.version = pair.version + 1;
        let version = next.version;
        g.by_key.insert(key, next);
        Ok(Replaced::Replaced(version))
    }

    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        Ok(lock(&self.inner)?.by_key.get(key).cloned())
    }

    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        let mut g = lock(&self.inner)?;
        if g.by_key.get(key).is_none_or(|p| p.version != version) {
            return Ok(false);
        }
        let removed = g.by_key.remove(key);
        if let Some(index) = removed.and_then(|p| p.item).map(|i| i.index_key())
            && g.by_item.get(&index) == Some(key)
        {
            g.by_item.remove(&index);
        }
        Ok(true)
    }

    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        let g = lock(&self.inner)?;
        Ok(g.by_item.get(&item.index_key()).and_then(|k| g.by_key.get(k)).cloned())
    }

    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let g = lock(&self.inner)?;
        let mut found: Vec<&Pair> = g
            .by_key
            .values()
            .filter(|p| route.is_none_or(|r| p.route == *r) && state.is_none_or(|s| p.state == s))
            .collect();
        // Oldest first; the key breaks ties so the order is stable.
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.key().cmp(&b.key())));
        Ok(found.into_iter().take(limit).cloned().collect())
    }
}

#[derive(Debug, Clone)]
enum DeliveryRecord {
    InProgress { until: DateTime<Utc> },
    Completed { expires_at: DateTime<Utc> },
}

/// Delivery claims in a map, with the Powertools idempotency conditions.
#[derive(Debug, Default)]
pub struct MemoryDeliveryLog {
    inner: Mutex<HashMap<DeliveryId, DeliveryRecord>>,
}

impl MemoryDeliveryLog {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DeliveryLog for MemoryDeliveryLog {
    async fn claim(&self, id: &DeliveryId, now: DateTime<Utc>, lease: Duration) -> Result<DeliveryClaim, StoreError> {
        let until = later(now, lease)?;
        let mut g = lock(&self.inner)?;
        match g.get(id) {
            Some(DeliveryRecord::InProgress { until: held }) if *held > now => {
                Ok(DeliveryClaim::InProgress { until: *held })
            }
            Some(DeliveryRecord::Completed { expires_at }) if *expires_at > now => Ok(DeliveryClaim::Completed),
            _ => {
                g.insert(id.clone(), DeliveryRecord::InProgress { until });
                Ok(DeliveryClaim::Claimed)
            }
        }
    }

    async fn complete(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError> {
        let expires_at = later(now, retention)?;
        let mut g = lock(&self.inner)?;
        if !matches!(g.get(id), Some(DeliveryRecord::Completed { expires_at }) if *expires_at > now) {
            g.insert(id.clone(), DeliveryRecord::Completed { expires_at });
        }
        Ok(())
    }

    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError> {
        let mut g = lock(&self.inner)?;
        if matches!(g.get(id), Some(DeliveryRecord::InProgress { .. })) {
            g.remove(id);
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct QueuedMessage {
    message_id: String,
    group: String,
    dedup_id: String,
    body: String,
    receive_count: u32,
    /// In flight while this is in the future.
    visible_at: DateTime<Utc>,
    /// The handle of the latest receive; earlier handles are stale.
    receipt: Option<String>,
}

impl QueuedMessage {
    /// The message as a dead letter filed at `now`; `last_error` is `None` when the queue moved it.
    fn into_dead_letter(self, now: DateTime<Utc>, last_error: Option<String>) -> DeadLetter {
        DeadLetter {
            message_id: self.message_id,
            group: self.group,
            dedup_id: self.dedup_id,
            body: self.body,
            receive_count: self.receive_count,
            dead_at: now,
            last_error,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Oldest first: sends and redrives append.
    messages: VecDeque<QueuedMessage>,
    /// Deduplication id → when it was first accepted.
    dedup: HashMap<String, DateTime<Utc>>,
    dead: Vec<DeadLetter>,
}

/// An SQS-FIFO-like queue in memory: message groups, visibility timeouts, deduplication and a
/// dead-letter list, timed by the injected clock.
pub struct MemoryJobQueue {
    inner: Mutex<Queue>,
    clock: Arc<dyn Clock>,
    max_receives: u32,
}

impl MemoryJobQueue {
    /// A queue that dead-letters a message on the receive after [`DEFAULT_MAX_RECEIVES`] receives.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { inner: Mutex::new(Queue::default()), clock, max_receives: DEFAULT_MAX_RECEIVES }
    }

    /// Sets the max-receive count (at least 1).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }
}

#[async_trait]
impl JobProducer for MemoryJobQueue {
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
        let now = self.clock.now();
        let horizon = earlier(now, DEDUP_WINDOW);
        let mut g = lock(&self.inner)?;
        g.dedup.retain(|_, sent_at| *sent_at > horizon);
        if g.dedup.contains_key(dedup_id) || g.messages.iter().any(|m| m.dedup_id == dedup_id) {
            return Ok(Sent::Duplicate);
        }
        g.dedup.insert(dedup_id.to_owned(), now);
        g.messages.push_back(QueuedMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            group: group.to_owned(),
            dedup_id: dedup_id.to_owned(),
            body: body.to_owned(),
            receive_count: 0,
            visible_at: now,
            receipt: None,
        });
        Ok(Sent::Enqueued)
    }
}

#[async_trait]
impl JobConsumer for MemoryJobQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        let now = self.clock.now();
        let invisible_until = later(now, visibility)?;
        let mut g = lock(&self.inner)?;
        let blocked: std::collections::HashSet<String> =
            g.messages.iter().filter(|m| m.visible_at > now).map(|m| m.group.clone()).collect();
        let mut out = Vec::new();
        let mut dead_idx = Vec::new();
        for (i, m) in g.messages.iter_mut().enumerate() {
            if out.len() >= max {
                break;
            }
            if blocked.contains(&m.group) {
                continue;
            }
            if m.receive_count >= self.max_receives {
                dead_idx.push(i);
                continue;
            }
            m.receive_count += 1;
            m.visible_at = invisible_until;
            let receipt = format!("{}/{}/{}", m.message_id, m.receive_count, uuid::Uuid::new_v4());
            m.receipt = Some(receipt.clone());
            out.push(Received {
                receipt,
                message_id: m.message_id.clone(),
                group: m.group.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
            });
        }
        for i in dead_idx.into_iter().rev() {
            if let Some(m) = g.messages.remove(i) {
                tracing::error!(message_id = %m.message_id, "a job was received too often without finishing; moved to the dead letters");
                g.dead.push(m.into_dead_letter(now, None));
            }
        }
        Ok(out)
    }

    async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError> {
        let visible_at = later(self.clock.now(), delay)?;
        let mut g = lock(&self.inner)?;
        if let Some(m) = g.messages.iter_mut().find(|m| m.receipt.as_deref() == Some(message.receipt.as_str())) {
            m.body = body.to_owned();
            m.receive_count = 0;
            m.visible_at = visible_at;
            m.receipt = None;
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut g = lock(&self.inner)?;
        let Some(i) = g.messages.iter().position(|m| m.receipt.as_deref() == Some(message.receipt.as_str())) else {
            return Ok(());
        };
        if let Some(m) = g.messages.remove(i) {
            g.dead.push(m.into_dead_letter(now, Some(error.to_owned())));
        }
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        let mut g = lock(&self.inner)?;
        g.messages.retain(|m| m.receipt.as_deref() != Some(receipt));
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let visible_at = later(self.clock.now(), delay)?;
        let mut g = lock(&self.inner)?;
        if let Some(m) = g.messages.iter_mut().find(|m| m.receipt.as_deref() == Some(receipt)) {
            m.visible_at = visible_at;
        }
        Ok(())
    }
}

#[async_trait]
impl QueueOperator for MemoryJobQueue {
    async fn depth(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.inner)?.messages.len() as u64)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(lock(&self.inner)?.dead.clone())
    }

    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut g = lock(&self.inner)?;
        let Some(i) = g.dead.iter().position(|d| d.message_id == message_id) else {
            return Ok(false);
        };
        let d = g.dead.remove(i);
        g.messages.push_back(QueuedMessage {
            message_id: d.message_id,
            group: d.group,
            dedup_id: d.dedup_id,
            body: d.body,
            receive_count: 0,
            visible_at: now,
            receipt: None,
        });
        Ok(true)
    }
}

/// An append-only list of audit entries.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    inner: Mutex<Vec<AuditEntry>>,
}

impl MemoryAuditLog {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        lock(&self.inner)?.push(entry.clone());
        Ok(())
    }

    async fn recent(&self, subject: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let g = lock(&self.inner)?;
        let mut found: Vec<(usize, &AuditEntry)> =
            g.iter().enumerate().filter(|(_, e)| subject.is_none_or(|s| e.subject == s)).collect();
        // Newest first; among equal times the later-recorded entry is newer.
        found.sort_by(|(ia, a), (ib, b)| b.at.cmp(&a.at).then_with(|| ib.cmp(ia)));
        Ok(found.into_iter().take(limit).map(|(_, e)| e.clone()).collect())
    }
}

/// Conflicts in insertion order, unique by id.
#[derive(Debug, Default)]
pub struct MemoryConflictLog {
    inner: Mutex<Vec<Conflict>>,
}

impl MemoryConflictLog {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ConflictLog for MemoryConflictLog {
    async fn record(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError> {
        let mut g = lock(&self.inner)?;
        if let Some(existing) = g.iter().find(|c| c.id == conflict.id) {
            return Ok(Inserted::AlreadyExists(existing.clone()));
        }
        g.push(conflict.clone());
        Ok(Inserted::Inserted)
    }

    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Conflict>, StoreError> {
        let g = lock(&self.inner)?;
        let mut found: Vec<(usize, &Conflict)> =
            g.iter().enumerate().filter(|(_, c)| !open_only || c.resolution == Resolution::Open).collect();
        found.sort_by(|(ia, a), (ib, b)| b.at.cmp(&a.at).then_with(|| ib.cmp(ia)));
        Ok(found.into_iter().take(limit).map(|(_, c)| c.clone()).collect())
    }

    async fn resolve(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError> {
        let mut g = lock(&self.inner)?;
        match g.iter_mut().find(|c| c.id == id) {
            Some(c) if c.resolution == Resolution::Open => {
                c.resolution = resolution;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Cursors by name.
#[derive(Debug, Default)]
pub struct MemoryCursorStore {
    inner: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl MemoryCursorStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CursorStore for MemoryCursorStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(lock(&self.inner)?.get(name).copied())
    }

    async fn advance(&self, name: &str, to: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut g = lock(&self.inner)?;
        if g.get(name).is_some_and(|stored| *stored >= to) {
            return Ok(false);
        }
        g.insert(name.to_owned(), to);
        Ok(true)
    }
}

#[derive(Default)]
struct SecretVersion {
    value: Option<SecretString>,
    request_token: String,
}

/// Named secrets in a map. A `put` whose request token matches the current version's is a no-op, so two
/// writers with the same token produce one version.
#[derive(Default)]
pub struct MemorySecrets {
    inner: Mutex<HashMap<String, SecretVersion>>,
}

impl std::fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySecrets").finish_non_exhaustive()
    }
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `secrets` (name, value).
    pub fn with<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map = secrets
            .into_iter()
            .map(|(n, v)| (n.to_owned(), SecretVersion { value: Some(v.into()), request_token: String::new() }))
            .collect();
        Self { inner: Mutex::new(map) }
    }

    fn guard(&self) -> Result<MutexGuard<'_, HashMap<String, SecretVersion>>, SecretError> {
        self.inner.lock().map_err(|_| SecretError::Unexpected(anyhow::anyhow!("in-memory secret store lock poisoned")))
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        self.guard()?
            .get(name)
            .and_then(|v| v.value.as_ref())
            .map(|v| SecretString::from(v.expose_secret()))
            .ok_or_else(|| SecretError::Missing(name.to_owned()))
    }

    async fn put(&self, name: &str, value: &SecretString, request_token: &str) -> Result<(), SecretError> {
        let mut g = self.guard()?;
        let slot = g.entry(name.to_owned()).or_default();
        if slot.value.is_some() && !request_token.is_empty() && slot.request_token == request_token {
            return Ok(());
        }
        *slot = SecretVersion {
            value: Some(SecretString::from(value.expose_secret())),
            request_token: request_token.to_owned(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testkit::contract::{Fixture, QueueFixture, clock};

    mod pairs {
        use super::*;
        crate::pair_store_contract_tests!(Fixture::<dyn PairStore>::new(Arc::new(MemoryPairStore::new()), clock()));
    }

    mod deliveries {
        use super::*;
        crate::delivery_log_contract_tests!(Fixture::<dyn DeliveryLog>::new(
            Arc::new(MemoryDeliveryLog::new()),
            clock()
        ));
    }

    mod queue {
        use super::*;

        fn fixture() -> QueueFixture {
            let clock = clock();
            let queue = MemoryJobQueue::new(clock.clone()).with_max_receives(3);
            QueueFixture { queue: Arc::new(queue), clock, max_receives: 3 }
        }

        crate::job_queue_contract_tests!(fixture());

        #[tokio::test]
        async fn the_default_max_receive_count_is_five() {
            let clock = clock();
            let queue = MemoryJobQueue::new(clock.clone());
            crate::testkit::contract::queue_a_message_received_too_often_is_dead_lettered(QueueFixture {
                queue: Arc::new(queue),
                clock,
                max_receives: DEFAULT_MAX_RECEIVES,
            })
            .await;
        }
    }

    mod audit {
        use super::*;
        crate::audit_log_contract_tests!(Fixture::<dyn AuditLog>::new(Arc::new(MemoryAuditLog::new()), clock()));
    }

    mod conflicts {
        use super::*;
        crate::conflict_log_contract_tests!(Fixture::<dyn ConflictLog>::new(
            Arc::new(MemoryConflictLog::new()),
            clock()
        ));
    }

    mod cursors {
        use super::*;
        crate::cursor_store_contract_tests!(Fixture::<dyn CursorStore>::new(
            Arc::new(MemoryCursorStore::new()),
            clock()
        ));
    }

    mod secrets {
        use super::*;
        crate::secret_store_contract_tests!(Fixture::<dyn SecretStore>::new(Arc::new(MemorySecrets::new()), clock()));

        #[tokio::test]
        async fn seeded_secrets_read_back_and_debug_shows_no_value() {
            let store = MemorySecrets::with([("jira-token", "very-secret")]);
            assert_eq!(
                store.get("jira-token").await.map(|s| s.expose_secret().to_owned()).ok(),
                Some("very-secret".into())
            );
            assert!(!format!("{store:?}").contains("very-secret"));
        }
    }

    #[test]
    fn the_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(crate::testkit::at(0));
        assert_eq!(clock.now(), crate::testkit::at(0));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), crate::testkit::at(90));
        clock.set(crate::testkit::at(-5));
        assert_eq!(clock.now(), crate::testkit::at(-5));
    }
}
