//! `campbridge replay <delivery-id>` and `campbridge dead-letters list|redrive [--all]`: failed events
//! back onto the queue. Safe to repeat: the delivery log skips a delivery already completed, and the
//! pair's snapshot makes a change already applied a no-op.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::Job;
use shared::ports::JobQueue;
use shared::sync::{Engine, run_queue_once};

use super::OpsError;

/// A dead letter as people read it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    pub message_id: String,
    /// The job's delivery id (`basecamp:…`, `jira:…`), when the body is a readable job.
    pub delivery: Option<String>,
    /// What the job is about (`todo_changed bc-todo-1`), or why it cannot be read.
    pub about: String,
    pub receive_count: u32,
    pub dead_at: DateTime<Utc>,
    /// What its last attempt failed with; `None` when the queue moved it (no attempt finished: the worker
    /// stopped mid-job every time, e.g. a crash or a timeout).
    pub last_error: Option<String>,
}

/// The dead letters, oldest first.
pub async fn list(queue: &dyn JobQueue) -> Result<Vec<DeadLetterView>, OpsError> {
    Ok(queue
        .dead_letters()
        .await?
        .into_iter()
        .map(|d| {
            let job = Job::from_wire(&d.body);
            DeadLetterView {
                message_id: d.message_id,
                delivery: job.as_ref().ok().map(|j| j.delivery().as_str().to_owned()),
                about: match &job {
                    Ok(j) => format!("{} {}", j.kind(), j.record().group_id()),
                    Err(_) => {
                        "unreadable body (poison message; fix the code that produced it, then redrive)".to_owned()
                    }
                },
                receive_count: d.receive_count,
                dead_at: d.dead_at,
                last_error: d.last_error,
            }
        })
        .collect())
}

/// Moves the dead letter(s) whose job has delivery id `id` (or whose message id is `id`) back onto the
/// queue. Returns the message ids requeued; an unknown id is an error naming where to look.
pub async fn replay(queue: &dyn JobQueue, id: &str) -> Result<Vec<String>, OpsError> {
    let matching: Vec<String> = list(queue)
        .await?
        .into_iter()
        .filter(|d| d.delivery.as_deref() == Some(id) || d.message_id == id)
        .map(|d| d.message_id)
        .collect();
    if matching.is_empty() {
        return Err(OpsError::Usage(format!(
            "no dead letter for delivery {id:?} (see `campbridge dead-letters list`; a delivery that succeeded needs no replay)"
        )));
    }
    redrive(queue, &matching).await
}

/// Requeues the given dead letters (all of them when `ids` is empty).
pub async fn redrive(queue: &dyn JobQueue, ids: &[String]) -> Result<Vec<String>, OpsError> {
    let ids: Vec<String> = if ids.is_empty() {
        queue.dead_letters().await?.into_iter().map(|d| d.message_id).collect()
    } else {
        ids.to_vec()
    };
    let mut done = Vec::new();
    for id in ids {
        if queue.redrive(&id).await? {
            done.push(id);
        }
    }
    Ok(done)
}

/// Works the queue with `engine` until it is empty or `rounds` batches ran (for `--run`, when no
/// `serve` is running to pick the requeued jobs up). Returns the messages processed.
pub async fn drain(engine: &Engine, queue: &dyn JobQueue, rounds: usize) -> Result<usize, OpsError> {
    let mut total = 0;
    for _ in 0..rounds {
        let (n, _) = run_queue_once(engine, queue, 10, Duration::from_secs(60))
            .await
            .map_err(|e| OpsError::Other(anyhow::anyhow!(e)))?;
        if n == 0 {
            break;
        }
        total += n;
    }
    Ok(total)
}

/// The dead letters as a table.
pub fn render_list(letters: &[DeadLetterView]) -> String {
    if letters.is_empty() {
        return "No dead letters.\n".to_owned();
    }
    let mut out = format!("{:<38} {:<44} {:>8}  {}\n", "delivery", "about", "receives", "dead at");
    for d in letters {
        out.push_str(&format!(
            "{:<38} {:<44} {:>8}  {}\n",
            d.delivery.as_deref().unwrap_or(&d.message_id),
            d.about,
            d.receive_count,
            d.dead_at.format("%Y-%m-%d %H:%M:%S")
        ));
        let error = d.last_error.as_deref().unwrap_or("none recorded (the worker stopped mid-job on every receive)");
        out.push_str(&format!("  last error: {error}\n"));
    }
    out.push_str(
        "Re-run one with `campbridge replay <delivery>`, or all with `campbridge dead-letters redrive --all`.\n",
    );
    out
}
