//! The mapper use case: a batch of queue messages in, one fate per message out.
//!
//! **Delays never lose work.** A 429, an upstream outage (5xx, timeouts, refused connections) or a record
//! another worker holds is a delay, not a failure: the message is replaced by a fresh copy
//! ([`JobQueue::requeue`]) that carries its attempt count and due time, so the queue's receive count — what
//! moves a message to the dead letters — only ever counts real failures. The delay grows with the attempt
//! count, with jitter ([`SyncError::retry_delay`]). SQS FIFO has no per-message delay, so on SQS the copy
//! can be received before it is due; it is then only made visible again at its due time (one receive).
//! docs/decisions/0013 has the reasoning and the alternatives.
//!
//! **Poison-message policy.** A body that does not parse as any supported [`crate::domain::Job`] version
//! can never succeed, and neither can a job whose sync keeps failing for a reason that is not a delay (a
//! rejected write, a route no longer configured, a store error). Each failed receive is logged at WARN
//! (without the body, which may carry user content) and left to the queue's visibility timeout; on its
//! last allowed receive ([`SyncSettings::max_receives`], the queue's max-receive count, 5) the mapper moves
//! it to the dead letters itself with the error of that attempt ([`JobQueue::dead_letter`]) and logs that
//! once at ERROR. A worker that stops mid-job (a crash, a Lambda timeout) settles nothing, so the queue's
//! own max-receive count moves such a message, without an error. `dead-letters list` shows the error and
//! `replay` re-runs the job after a fix. In AWS mode the count is the job queue's `maxReceiveCount`
//! (`infra/template.yaml`); functions/README.md states the whole policy for operators.
//!
//! Ordering: messages are grouped by FIFO message group in arrival order, and within a group by record
//! (a to-do and its comments share a group); each record is synced once for all its messages (a burst
//! coalesces into one read and one write per side). When a record fails or is postponed, every later
//! message of its group in the batch is put back behind it (postponed, which costs it nothing), so later
//! events never overtake earlier ones.
//!
//! [`SyncSettings::max_receives`]: super::SyncSettings::max_receives

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{debug, error, warn};

use crate::domain::{Job, Queued};
use crate::ports::{DeliveryClaim, JobQueue, Received};

use super::engine::{Engine, Outcome, SyncError};

/// What should happen to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFate {
    /// Done (applied, skipped as a duplicate, or not ours): delete it.
    Done,
    /// Failed for a reason that is not a delay: leave it to the queue's visibility timeout (the receive
    /// counts towards the dead letters).
    Failed { error: String },
    /// Failed on its last allowed receive: move it to the dead letters with this error.
    DeadLetter { error: String },
    /// Not now (a 429, an outage, a busy record, or an earlier message of its group that could not go
    /// ahead): replace it by a fresh copy, `body`, due after `delay`. Never counts towards the dead letters.
    Postpone { delay: Duration, body: String },
    /// A postponed copy received before its due time (SQS FIFO has no per-message delay): make it visible
    /// again after this delay.
    NotYet(Duration),
}

/// The fates of a batch, in message order, and the outcomes of the records synced.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// One fate per message, by receipt, in message order.
    pub fates: Vec<(String, MessageFate)>,
    pub outcomes: Vec<Outcome>,
    pub duplicates: usize,
}

/// Why a record did not go ahead, and what that means for the later messages of its group.
enum Blocked {
    /// Postponed or not due: the later messages wait behind it, due at the same time.
    Until(chrono::DateTime<chrono::Utc>),
    /// Failed: the later messages are put back behind it and come after it again.
    Failed,
}

/// Processes one batch. Never fails as a whole: every message gets a fate.
pub async fn process_batch(engine: &Engine, messages: &[Received]) -> BatchReport {
    let mut report = BatchReport::default();
    let mut fates: BTreeMap<usize, MessageFate> = BTreeMap::new();
    let now = engine.clock.now();
    let max_receives = engine.settings.max_receives;
    // Group by FIFO message group, keeping first-appearance order.
    let mut groups: Vec<(String, Vec<(usize, Queued)>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match Queued::from_wire(&m.body) {
            Ok(queued) => {
                let key = queued.job.record().group_id();
                match groups.iter_mut().find(|(g, _)| *g == key) {
                    Some((_, list)) => list.push((i, queued)),
                    None => groups.push((key, vec![(i, queued)])),
                }
            }
            Err(e) => {
                warn!(message_id = %m.message_id, receive_count = m.receive_count, error = %e, "poison message: unreadable job");
                let error = format!("unreadable job (no supported version reads it): {e}");
                fates.insert(i, failed(m, max_receives, error));
            }
        }
    }

    for (_, queued) in groups {
        // Records in first-appearance order within the message group.
        let mut records: Vec<(crate::domain::RecordRef, Vec<(usize, Queued)>)> = Vec::new();
        for (i, q) in queued {
            let record = q.job.record();
            match records.iter_mut().find(|(r, _)| *r == record) {
                Some((_, list)) => list.push((i, q)),
                None => records.push((record, vec![(i, q)])),
            }
        }
        let mut blocked: Option<Blocked> = None;
        for (_, list) in records {
            let record_fates = match &blocked {
                Some(b) => behind(engine, b, &list),
                None => {
                    let due = list.iter().filter_map(|(_, q)| q.retry.as_ref().map(|r| r.not_before)).max();
                    match due.filter(|d| *d > now) {
                        // A copy received before its due time (SQS): hold the record until then. The copy
                        // waits in place; any other message of the record is put back behind it, at no cost.
                        Some(due) => {
                            let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
                            let reason = "an earlier message of its record is not due yet";
                            list.iter()
                                .map(|(i, q)| match q.retry.as_ref().filter(|r| r.not_before > now) {
                                    Some(r) => (*i, MessageFate::NotYet((r.not_before - now).to_std().unwrap_or(wait))),
                                    None => (*i, postpone(q, due, wait, reason, false)),
                                })
                                .collect()
                        }
                        None => sync_group(engine, &list, messages, &mut report).await,
                    }
                }
            };
            if blocked.is_none() {
                blocked = record_fates.iter().find_map(|(_, fate)| match fate {
                    MessageFate::Done => None,
                    MessageFate::Postpone { delay, .. } | MessageFate::NotYet(delay) => {
                        Some(Blocked::Until(now + chrono::Duration::from_std(*delay).unwrap_or_default()))
                    }
                    MessageFate::Failed { .. } | MessageFate::DeadLetter { .. } => Some(Blocked::Failed),
                });
            }
            fates.extend(record_fates);
        }
    }
    report.fates = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let fate = fates.remove(&i).unwrap_or_else(|| failed(m, max_receives, "no fate was decided".to_owned()));
            (m.receipt.clone(), fate)
        })
        .collect();
    count_fates(&report.fates);
    report
}

/// Counts one record's outcome in the metrics: a change by kind, a skip by reason, an echo, conflicts.
fn count_outcome(outcome: &Outcome) {
    use crate::metrics::{CHANGES, CONFLICTS, ECHOES, SKIPS, count, count_by};
    match outcome {
        Outcome::Skipped(_) if outcome.is_echo() => count(&ECHOES, 1),
        Outcome::Skipped(skip) => count_by(&SKIPS, skip.action()),
        Outcome::Created { .. } => count_by(&CHANGES, "created"),
        Outcome::Updated { conflicts, .. } => {
            count_by(&CHANGES, "updated");
            count(&CONFLICTS, *conflicts as u64);
        }
        Outcome::Recorded { conflicts } => {
            count_by(&CHANGES, "recorded");
            count(&CONFLICTS, *conflicts as u64);
        }
        Outcome::Detached { .. } => count_by(&CHANGES, "detached"),
    }
}

/// Counts a batch's postponed, failed and dead-lettered messages in the metrics.
fn count_fates(fates: &[(String, MessageFate)]) {
    use crate::metrics::{DEAD_LETTERED, FAILED, POSTPONED, count};
    let n = |f: fn(&MessageFate) -> bool| fates.iter().filter(|(_, fate)| f(fate)).count() as u64;
    count(&POSTPONED, n(|f| matches!(f, MessageFate::Postpone { .. })));
    count(&FAILED, n(|f| matches!(f, MessageFate::Failed { .. } | MessageFate::DeadLetter { .. })));
    count(&DEAD_LETTERED, n(|f| matches!(f, MessageFate::DeadLetter { .. })));
}

/// A real failure: retried by the queue, or dead-lettered on the last allowed receive.
fn failed(m: &Received, max_receives: u32, error: String) -> MessageFate {
    if m.receive_count >= max_receives { MessageFate::DeadLetter { error } } else { MessageFate::Failed { error } }
}

/// The fates of messages behind a record that did not go ahead: each is put back (at no cost to its
/// receive count) to come after it again.
fn behind(engine: &Engine, blocked: &Blocked, list: &[(usize, Queued)]) -> Vec<(usize, MessageFate)> {
    let now = engine.clock.now();
    let (due, reason) = match blocked {
        Blocked::Until(due) => (*due, "an earlier message of its group was postponed"),
        // The failed message stays first in its group (in flight until its visibility timeout ends).
        Blocked::Failed => (now + chrono::Duration::seconds(1), "an earlier message of its group failed"),
    };
    let delay = (due - now).to_std().unwrap_or(Duration::ZERO);
    list.iter().map(|(i, q)| (*i, postpone(q, due, delay, reason, false))).collect()
}

/// `counted`: the upstream's delay (429, outage), which grows the attempt count and so the backoff.
fn postpone(
    q: &Queued,
    due: chrono::DateTime<chrono::Utc>,
    delay: Duration,
    reason: &str,
    counted: bool,
) -> MessageFate {
    match q.postponed(due, reason, counted) {
        Ok(body) => MessageFate::Postpone { delay, body },
        // Serializing a job that was just parsed cannot fail; if it ever did, the queue's own retry is
        // the safe fallback.
        Err(e) => MessageFate::Failed { error: format!("could not write the postponed job: {e}") },
    }
}

/// Syncs one record for its messages and returns one fate per message.
async fn sync_group(
    engine: &Engine,
    list: &[(usize, Queued)],
    messages: &[Received],
    report: &mut BatchReport,
) -> Vec<(usize, MessageFate)> {
    let now = engine.clock.now();
    let attempt = list.iter().map(|(_, q)| q.attempts()).max().unwrap_or(0) + 1;
    let all = |fate: MessageFate| list.iter().map(|(i, _)| (*i, fate.clone())).collect::<Vec<_>>();
    let postpone_all = |delay: Duration, reason: &str, counted: bool| {
        let due = now + chrono::Duration::from_std(delay).unwrap_or_default();
        list.iter().map(|(i, q)| (*i, postpone(q, due, delay, reason, counted))).collect::<Vec<_>>()
    };
    let fail_all = |error: String| {
        list.iter()
            .map(|(i, _)| {
                let fate = match messages.get(*i) {
                    Some(m) => failed(m, engine.settings.max_receives, error.clone()),
                    None => MessageFate::Failed { error: error.clone() },
                };
                (*i, fate)
            })
            .collect::<Vec<_>>()
    };

    let lease = engine.settings.lease;
    let mut claimed: Vec<Job> = Vec::new();
    for (_, q) in list {
        let job = &q.job;
        match engine.deliveries.claim(job.delivery(), now, lease).await {
            Ok(DeliveryClaim::Claimed) => claimed.push(job.clone()),
            Ok(DeliveryClaim::Completed) => report.duplicates += 1,
            Ok(DeliveryClaim::InProgress { until }) => {
                let wait = (until - now).to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1));
                release_all(engine, &claimed).await;
                debug!(delivery = %job.delivery(), retry_in = ?wait, "delivery in progress elsewhere; postponed");
                return postpone_all(wait, "the delivery is being processed by another worker", false);
            }
            Err(e) => {
                warn!(delivery = %job.delivery(), error = %e, "could not claim delivery");
                release_all(engine, &claimed).await;
                return fail_all(format!("could not claim the delivery: {e}"));
            }
        }
    }
    if claimed.is_empty() {
        return all(MessageFate::Done);
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
            for job in &claimed {
                crate::metrics::sync_latency(job.received_at(), done_at);
            }
            count_outcome(&outcome);
            report.outcomes.push(outcome);
            all(MessageFate::Done)
        }
        Err(e) => {
            release_all(engine, &claimed).await;
            match e.retry_delay(attempt, rand::random::<f64>()) {
                Some(delay) => {
                    // Waiting for another worker is routine (the echo of a write in flight) and does not
                    // count as an attempt; a rate limit or an outage does, and is worth a warning.
                    // Lease contention is DEBUG and not audited; an upstream delay is audited
                    // (`campbridge explain` shows it).
                    let upstream = !matches!(e, SyncError::Held { .. } | SyncError::Busy(_));
                    if upstream {
                        warn!(error = %e, attempt, retry_in = ?delay, "sync postponed");
                        let why =
                            format!("postponed (attempt {attempt}): {e}; retried in {} s", delay.as_secs().max(1));
                        audit_attempt(engine, &claimed, "postponed", &why).await;
                    } else {
                        debug!(error = %e, retry_in = ?delay, "sync postponed");
                    }
                    postpone_all(delay, &e.to_string(), upstream)
                }
                None => {
                    warn!(error = %e, "sync failed; the queue will retry it");
                    let why = format!("failed: {e}; the queue retries it (dead letters after too many tries)");
                    audit_attempt(engine, &claimed, "failed", &why).await;
                    fail_all(e.to_string())
                }
            }
        }
    }
}

/// The audit subject of a job's record: the pair key (`web/1069480015`) for a to-do, the item's index key
/// (`jira:10002`) for an issue; `None` for records no pair is named by (pull requests, builds).
pub fn audit_subject(record: &crate::domain::RecordRef) -> Option<String> {
    use crate::domain::RecordRef;
    match record {
        RecordRef::Todo { route, todo, .. } | RecordRef::TodoComment { route, todo, .. } => {
            Some(format!("{route}/{todo}"))
        }
        RecordRef::Issue { issue, .. } | RecordRef::IssueComment { issue, .. } => Some(format!("jira:{issue}")),
        RecordRef::Todolist { route, list, .. } => Some(format!("{route}/list-{list}")),
        RecordRef::PullRequest { .. } | RecordRef::Build { .. } => None,
    }
}

/// Audits a failed or postponed attempt of each job (best effort: the store may be what failed).
async fn audit_attempt(engine: &Engine, jobs: &[Job], action: &str, detail: &str) {
    for job in jobs {
        let Some(subject) = audit_subject(&job.record()) else { continue };
        let route = match job {
            Job::TodoChanged { route, .. }
            | Job::TodolistChanged { route, .. }
            | Job::TodoCommentChanged { route, .. } => Some(route.clone()),
            _ => None,
        };
        let entry = crate::ports::AuditEntry {
            at: engine.clock.now(),
            route,
            subject,
            delivery: Some(job.delivery().clone()),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        if let Err(e) = engine.audit.record(&entry).await {
            warn!(delivery = %job.delivery(), error = %e, "could not audit the attempt");
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

/// Carries out the fates of a batch received from `queue`: deletes what is done, requeues what is
/// postponed, delays what is not due, dead-letters what failed for good (logged once, at ERROR) and
/// leaves failures to the visibility timeout. A settle that fails is logged and left to the queue
/// (the message comes back after its visibility timeout).
pub async fn settle(queue: &dyn JobQueue, messages: &[Received], report: &BatchReport) -> Result<(), SyncError> {
    for (m, (_, fate)) in messages.iter().zip(&report.fates) {
        match fate {
            MessageFate::Done => queue.delete(&m.receipt).await?,
            MessageFate::Failed { .. } => {}
            MessageFate::Postpone { delay, body } => queue.requeue(m, body, *delay).await?,
            MessageFate::NotYet(delay) => queue.change_visibility(&m.receipt, *delay).await?,
            MessageFate::DeadLetter { error } => {
                queue.dead_letter(m, error).await?;
                log_dead_letter(m, error);
            }
        }
    }
    Ok(())
}

/// The one ERROR line a dead-lettered job gets.
pub fn log_dead_letter(m: &Received, error: &str) {
    error!(
        message_id = %m.message_id,
        group = %m.group,
        receive_count = m.receive_count,
        error,
        "job moved to the dead letters after {} failed receives; `campbridge dead-letters list` shows it",
        m.receive_count
    );
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
    settle(queue, &messages, &report).await?;
    Ok((messages.len(), report))
}
