//! The mapper use case: a batch of queue messages in, one fate per message out.
//!
//! Poison-message policy: a body that does not parse as any supported [`Job`] version can never succeed.
//! It is logged once per receive (without its body, which may carry user content) and reported failed,
//! so the queue's max-receive count moves it to the dead-letter queue, where `dead-letters list` shows
//! it and `replay` can re-run it after a fix. It never blocks its group for longer than that. In AWS mode
//! the count is the job queue's `maxReceiveCount`, 5 (`infra/template.yaml`); functions/README.md states
//! the whole policy for operators.
//!
//! Ordering: messages are grouped by FIFO message group in arrival order, and within a group by record
//! (a to-do and its comments share a group); each record is synced once for all its messages (a burst
//! coalesces into one read and one write per side). When a record fails, every later message of its
//! group fails with it, so later events never overtake earlier ones.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::domain::Job;
use crate::ports::{DeliveryClaim, JobQueue, Received};

use super::engine::{Engine, Outcome, SyncError};

/// What should happen to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFate {
    /// Done (applied, skipped as a duplicate, or not ours): delete it.
    Done,
    /// Failed: leave it to the queue's visibility timeout (and, eventually, the dead-letter queue).
    Failed,
    /// Not now: make it visible again after this delay (a 429's Retry-After, a busy pair).
    RetryAfter(Duration),
}

/// The fates of a batch, in message order, and the outcomes of the records synced.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub fates: Vec<(String, MessageFate)>,
    pub outcomes: Vec<Outcome>,
    pub duplicates: usize,
}

/// Processes one batch. Never fails as a whole: every message gets a fate.
pub async fn process_batch(engine: &Engine, messages: &[Received]) -> BatchReport {
    let mut report = BatchReport::default();
    let mut fates: BTreeMap<usize, MessageFate> = BTreeMap::new();
    // Group by record, keeping first-appearance order.
    let mut groups: Vec<(String, Vec<(usize, Job)>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match Job::from_wire(&m.body) {
            Ok(job) => {
                let key = job.record().group_id();
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, jobs)) => jobs.push((i, job)),
                    None => groups.push((key, vec![(i, job)])),
                }
            }
            Err(e) => {
                error!(message_id = %m.message_id, receive_count = m.receive_count, error = %e, "poison message: unreadable job");
                fates.insert(i, MessageFate::Failed);
            }
        }
    }

    for (_, jobs) in groups {
        // Records in first-appearance order within the message group.
        let mut records: Vec<(crate::domain::RecordRef, Vec<(usize, Job)>)> = Vec::new();
        for (i, job) in jobs {
            let record = job.record();
            match records.iter_mut().find(|(r, _)| *r == record) {
                Some((_, list)) => list.push((i, job)),
                None => records.push((record, vec![(i, job)])),
            }
        }
        let mut failed: Option<MessageFate> = None;
        for (_, list) in records {
            let fate = match &failed {
                Some(f) => f.clone(),
                None => sync_group(engine, &list, &mut report).await,
            };
            if fate != MessageFate::Done {
                failed = Some(fate.clone());
            }
            for (i, _) in &list {
                fates.insert(*i, fate.clone());
            }
        }
    }
    report.fates = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.receipt.clone(), fates.remove(&i).unwrap_or(MessageFate::Failed)))
        .collect();
    report
}

async fn sync_group(engine: &Engine, jobs: &[(usize, Job)], report: &mut BatchReport) -> MessageFate {
    let now = engine.clock.now();
    let lease = engine.settings.lease;
    let mut claimed = Vec::new();
    for (_, job) in jobs {
        match engine.deliveries.claim(job.delivery(), now, lease).await {
            Ok(DeliveryClaim::Claimed) => claimed.push(job.clone()),
            Ok(DeliveryClaim::Completed) => report.duplicates += 1,
            Ok(DeliveryClaim::InProgress { until }) => {
                let wait = (until - now).to_std().unwrap_or(Duration::from_secs(1));
                release_all(engine, &claimed).await;
                return MessageFate::RetryAfter(wait);
            }
            Err(e) => {
                error!(delivery = %job.delivery(), error = %e, "could not claim delivery");
                release_all(engine, &claimed).await;
                return MessageFate::Failed;
            }
        }
    }
    if claimed.is_empty() {
        return MessageFate::Done;
    }
    match engine.sync_record(&claimed).await {
        Ok(outcome) => {
            let done_at = engine.clock.now();
            for job in &claimed {
                if let Err(e) =
                    engine.deliveries.complete(job.delivery(), done_at, engine.settings.delivery_retention).await
                {
                    // The sync is done; a failed completion only means a duplicate would be re-checked
                    // against the snapshot (and found unchanged).
                    warn!(delivery = %job.delivery(), error = %e, "could not mark delivery completed");
                }
            }
            report.outcomes.push(outcome);
            MessageFate::Done
        }
        Err(e) => {
            release_all(engine, &claimed).await;
            match e.retry_after() {
                Some(d) => {
                    // Waiting for another worker's write lease is routine (the echo of a write in flight);
                    // everything else postponed is worth a warning.
                    if matches!(e, SyncError::Held { .. }) {
                        info!(error = %e, retry_in = ?d, "sync postponed");
                    } else {
                        warn!(error = %e, retry_in = ?d, "sync postponed");
                    }
                    MessageFate::RetryAfter(d)
                }
                None => {
                    error!(error = %e, "sync failed");
                    MessageFate::Failed
                }
            }
        }
    }
}

async fn release_all(engine: &Engine, jobs: &[Job]) {
    for job in jobs {
        if let Err(e) = engine.deliveries.release(job.delivery()).await {
            warn!(delivery = %job.delivery(), error = %e, "could not release delivery claim");
        }
    }
}

/// Receives one batch from `queue`, processes it and settles every message. Returns how many messages
/// were received (0 = the queue had nothing visible). Used by local mode's workers and by tests.
pub async fn run_queue_once(
    engine: &Engine,
    queue: &dyn JobQueue,
    max: usize,
    visibility: Duration,
) -> Result<(usize, BatchReport), SyncError> {
    let messages = queue.receive(max, visibility).await?;
    if messages.is_empty() {
        return Ok((0, BatchReport::default()));
    }
    let report = process_batch(engine, &messages).await;
    for (receipt, fate) in &report.fates {
        match fate {
            MessageFate::Done => queue.delete(receipt).await?,
            MessageFate::RetryAfter(d) => queue.change_visibility(receipt, *d).await?,
            MessageFate::Failed => {}
        }
    }
    Ok((messages.len(), report))
}
