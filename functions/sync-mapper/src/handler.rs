//! SQS FIFO batch → `shared::sync::process_batch` → partial batch failures (`ReportBatchItemFailures`).
//!
//! Every message gets the fate the mapper decided. Done ones are left out of the response (Lambda deletes
//! them). Failed ones are reported: they come back after the queue's visibility timeout, and each such
//! receive counts towards the dead letters. A failure on the last allowed receive is filed in the
//! dead-letter queue by the mapper itself, with its error (`DEAD_LETTER_QUEUE_URL`), and left out of the
//! response; if that filing fails it is reported, and the queue's redrive policy moves it without the
//! error. Postponed ones (a 429, an outage, a busy record) are replaced by a fresh copy carrying their
//! attempt count and due time, so a delay never counts towards the dead letters; if the copy cannot be
//! sent, the message's visibility is set to the delay and it is reported (the old way, which does count).
//! A copy received before it is due gets its visibility set to the due time and is reported. The mapper's
//! policies are in `shared/src/sync/mapper.rs` and in functions/README.md.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::ports::{JobQueue, Received};
use shared::sync::{Engine, MessageFate, log_dead_letter, process_batch};
use tracing::{info, warn};

/// What every invocation shares.
pub struct State {
    pub engine: Engine,
    pub queue: Arc<dyn JobQueue>,
}

/// The port's view of one SQS record. A record without an id yields an empty identifier, which Lambda
/// reads as "the whole batch failed" if it is reported: safe, never a silent delete.
fn received(m: &SqsMessage) -> Received {
    Received {
        receipt: m.receipt_handle.clone().unwrap_or_default(),
        message_id: m.message_id.clone().unwrap_or_default(),
        group: m.attributes.get("MessageGroupId").cloned().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
    }
}

pub async fn handle(state: &State, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<Received> = event.records.iter().map(received).collect();
    let report = process_batch(&state.engine, &messages).await;
    let mut response = SqsBatchResponse::default();
    let (mut postponed, mut dead) = (0, 0);
    let failed = MessageFate::Failed { error: "no fate was decided".to_owned() };
    for (i, m) in messages.iter().enumerate() {
        // `process_batch` gives one fate per message, in order; a missing one counts as failed.
        match report.fates.get(i).map_or(&failed, |(_, fate)| fate) {
            MessageFate::Done => {}
            MessageFate::Failed { .. } => response.add_failure(m.message_id.clone()),
            MessageFate::DeadLetter { error } => match state.queue.dead_letter(m, error).await {
                Ok(()) => {
                    dead += 1;
                    log_dead_letter(m, error);
                }
                Err(e) => {
                    warn!(message_id = %m.message_id, error = %e, "could not file the dead letter; the queue's redrive policy moves it");
                    response.add_failure(m.message_id.clone());
                }
            },
            MessageFate::Postpone { delay, body } => {
                postponed += 1;
                if let Err(e) = state.queue.requeue(m, body, *delay).await {
                    warn!(message_id = %m.message_id, error = %e, "could not requeue the message; delaying it instead");
                    delay_and_report(state, m, *delay, &mut response).await;
                }
            }
            MessageFate::NotYet(delay) => delay_and_report(state, m, *delay, &mut response).await,
        }
    }
    info!(
        messages = messages.len(),
        reported = response.batch_item_failures.len(),
        postponed,
        dead_lettered = dead,
        synced = report.outcomes.len(),
        duplicates = report.duplicates,
        "batch settled"
    );
    response
}

/// Sets the message's visibility to `delay` and reports it. A failed visibility change still reports it:
/// it then comes back after the queue's visibility timeout instead.
async fn delay_and_report(state: &State, m: &Received, delay: std::time::Duration, response: &mut SqsBatchResponse) {
    if let Err(e) = state.queue.change_visibility(&m.receipt, delay).await {
        warn!(message_id = %m.message_id, error = %e, "could not delay the message; it returns after the queue's visibility timeout");
    }
    response.add_failure(m.message_id.clone());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use campbridge_simulators::basecamp::{self as bc_sim, TodoWrite};
    use campbridge_simulators::jira as jira_sim;
    use campbridge_simulators::{Faults, Forced429};
    use shared::adapters::memory::{
        MemoryAuditLog, MemoryConflictLog, MemoryDeliveryLog, MemoryPairStore, MemorySecrets,
    };
    use shared::config::Config;
    use shared::ports::{DeadLetter, JobConsumer, JobProducer, QueueOperator, Sent, StoreError, SystemClock};
    use shared::setup::Stores;

    use super::*;

    /// The to-dos the events name: the first two a freshly seeded simulator creates (events/README.md).
    const TODO_A: i64 = 9_007_199_254_750_007;
    const TODO_B: i64 = 9_007_199_254_750_009;

    /// Records visibility changes, requeues and dead letters; refuses them all when `refuse` is set (an
    /// SQS outage).
    #[derive(Default)]
    struct RecordingQueue {
        delays: Mutex<Vec<(String, Duration)>>,
        requeued: Mutex<Vec<(String, String, Duration)>>,
        dead: Mutex<Vec<(String, String)>>,
        refuse: bool,
    }

    impl RecordingQueue {
        fn refused(&self) -> Result<(), StoreError> {
            if self.refuse { Err(StoreError::Unexpected(anyhow::anyhow!("SQS unavailable"))) } else { Ok(()) }
        }
    }

    #[async_trait::async_trait]
    impl JobProducer for RecordingQueue {
        async fn send(&self, _: &str, _: &str, _: &str) -> Result<Sent, StoreError> {
            Ok(Sent::Enqueued)
        }
    }

    #[async_trait::async_trait]
    impl JobConsumer for RecordingQueue {
        async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Received>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
            self.refused()?;
            self.delays.lock().unwrap().push((receipt.to_owned(), delay));
            Ok(())
        }
        async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError> {
            self.refused()?;
            self.requeued.lock().unwrap().push((message.message_id.clone(), body.to_owned(), delay));
            Ok(())
        }
        async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
            self.refused()?;
            self.dead.lock().unwrap().push((message.message_id.clone(), error.to_owned()));
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl QueueOperator for RecordingQueue {
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

    /// The Basecamp and Jira simulators (the events' two to-dos created), the engine over memory stores.
    struct World {
        bc: bc_sim::Simulator,
        jira: jira_sim::Simulator,
        queue: Arc<RecordingQueue>,
        state: State,
    }

    fn config_text(bc: &bc_sim::Simulator, jira: &jira_sim::Simulator) -> String {
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

[[routes]]
id = "web"
basecamp_project = {project}
jira_project = "WEB"
code = "WEB"
todolists = ["Sprint *"]
triage = {{ jira = {mia:?} }}
"#,
            account = bc.account_id(),
            bc_host = bc.base_url().trim_end_matches(&format!("/{}", bc.account_id())),
            launchpad = bc.launchpad_url(),
            jira_url = jira.base_url(),
            jira_email = jira_sim::BOT_EMAIL,
            project = bc_sim::PROJECT_ID,
            mia = jira_sim::MIA,
        )
    }

    impl World {
        async fn start(queue: RecordingQueue) -> Self {
            let bc = bc_sim::Simulator::start(bc_sim::Options::default()).await.unwrap();
            let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await.unwrap();
            let list = bc.list_id("Sprint 1").await.unwrap();
            let mut ids = Vec::new();
            for title in ["Checkout button is hidden on mobile", "Receipts show the wrong VAT"] {
                let write = TodoWrite { content: Some(title.into()), ..TodoWrite::default() };
                ids.push(bc.create_todo(list, write, bc_sim::VICTOR).await.unwrap());
            }
            assert_eq!(ids, [TODO_A, TODO_B], "the events name the first two to-dos of a fresh simulator");
            let config = Config::parse(&config_text(&bc, &jira), "campbridge.toml").unwrap();
            let secrets = Arc::new(MemorySecrets::with([
                ("webhook-key", "campbridge-test-webhook-key"),
                ("basecamp-access-token", bc_sim::ACCESS_TOKEN),
                ("jira-api-token", jira_sim::API_TOKEN),
                ("jira-webhook-secret", "campbridge-test-jira-secret"),
            ]));
            let stores = Stores {
                pairs: Arc::new(MemoryPairStore::new()),
                deliveries: Arc::new(MemoryDeliveryLog::new()),
                audit: Arc::new(MemoryAuditLog::new()),
                conflicts: Arc::new(MemoryConflictLog::new()),
            };
            let engine = shared::setup::engine(&config, stores, secrets, Arc::new(SystemClock), "sync-mapper-test")
                .await
                .unwrap();
            let queue = Arc::new(queue);
            Self { bc, jira, queue: queue.clone(), state: State { engine, queue } }
        }

        /// How many issues the Jira project holds (keys are numbered from 1).
        async fn issues(&self) -> usize {
            let mut n = 0;
            while self.jira.issue(&format!("WEB-{}", n + 1)).await.is_some() {
                n += 1;
            }
            n
        }
    }

    fn event(name: &str) -> SqsEvent {
        let path = format!("{}/../../events/sync-mapper/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn ids(event: &SqsEvent, which: &[usize]) -> Vec<String> {
        which.iter().map(|i| event.records[*i].message_id.clone().unwrap()).collect()
    }

    fn reported(response: &SqsBatchResponse) -> Vec<String> {
        response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
    }

    #[tokio::test]
    async fn a_batch_whose_every_message_is_fine_reports_no_failures() {
        let w = World::start(RecordingQueue::default()).await;
        let response = handle(&w.state, event("todo-burst.json")).await;
        assert_eq!(reported(&response), Vec::<String>::new());
        assert_eq!(w.issues().await, 2, "one issue per to-do, the burst on the first coalesced");
        assert_eq!(w.bc.calls().count("GET", "/todos/{id}.json"), 2, "one read per to-do for three messages");
    }

    /// The EMF documents an invocation printed, parsed back; and the value of `metric` in the one document
    /// whose dimensions are `dims` (a document holds one value per dimension name).
    fn emf_value(docs: &[serde_json::Value], metric: &str, dims: &[(&str, &str)]) -> Option<serde_json::Value> {
        docs.iter().filter(|d| dims.iter().all(|(k, v)| d[*k] == *v)).find_map(|d| {
            let declared = d["_aws"]["CloudWatchMetrics"].as_array()?.iter().any(|directive| {
                directive["Namespace"] == "campbridge"
                    && directive["Metrics"][0]["Name"] == metric
                    && directive["Dimensions"][0].as_array().map(Vec::len) == Some(dims.len())
            });
            declared.then(|| d[metric].clone())
        })
    }

    #[tokio::test]
    async fn an_invocation_prints_its_counts_as_cloudwatch_emf() {
        let w = World::start(RecordingQueue::default()).await;
        let jira_before = w.jira.calls().total();
        let (response, lines) = campbridge_lambda::measured(handle(&w.state, event("todo-burst.json"))).await;
        assert_eq!(reported(&response), Vec::<String>::new());
        let docs: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!docs.is_empty());
        for d in &docs {
            let stamp = d["_aws"]["Timestamp"].as_i64().unwrap();
            assert!((chrono::Utc::now().timestamp_millis() - stamp).abs() < 600_000, "a current timestamp: {d}");
        }
        assert_eq!(emf_value(&docs, "changes", &[("kind", "created")]), Some(2.into()), "{lines:?}");
        let jira_calls = w.jira.calls().total() - jira_before;
        assert_eq!(emf_value(&docs, "upstream_calls", &[("service", "jira")]), Some(jira_calls.into()), "{lines:?}");
        let bc_calls = w.bc.calls().count("GET", "/todos/{id}.json");
        assert!(emf_value(&docs, "upstream_calls", &[("service", "basecamp")]).unwrap().as_u64().unwrap() >= bc_calls);
        // One latency per message synced (three messages, two records), in milliseconds.
        let latencies = emf_value(&docs, "sync_latency", &[]).unwrap();
        assert_eq!(latencies.as_array().unwrap().len(), 3, "{lines:?}");
        assert_eq!(emf_value(&docs, "failed", &[]), None, "nothing failed, nothing printed for it");

        // A poison message: counted as failed, on its own invocation's lines.
        let (_, lines) = campbridge_lambda::measured(handle(&w.state, event("batch-with-poison.json"))).await;
        let docs: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(emf_value(&docs, "failed", &[]), Some(1.into()), "the poison message: {lines:?}");
        assert_eq!(emf_value(&docs, "changes", &[("kind", "created")]), None, "{lines:?}");
    }

    #[tokio::test]
    async fn an_invocation_meeting_a_429_prints_the_throttling_and_the_postponed_messages() {
        let w = World::start(RecordingQueue::default()).await;
        w.bc.set_faults(Faults {
            force_429: Some(Forced429 { retry_after: 7, ..Forced429::default() }),
            ..Faults::default()
        });
        let (_, lines) = campbridge_lambda::measured(handle(&w.state, event("todo-burst.json"))).await;
        let docs: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let throttled = w.bc.calls().total();
        assert_eq!(emf_value(&docs, "upstream_throttled", &[("service", "basecamp")]), Some(throttled.into()));
        assert_eq!(emf_value(&docs, "postponed", &[]), Some(3.into()), "every message of the burst: {lines:?}");
        assert_eq!(emf_value(&docs, "failed", &[]), None, "{lines:?}");
    }

    #[tokio::test]
    async fn a_poison_message_is_the_only_one_reported() {
        let w = World::start(RecordingQueue::default()).await;
        let batch = event("batch-with-poison.json");
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), ids(&batch, &[1]));
        assert_eq!(w.issues().await, 2, "the messages around it are synced");
        assert!(w.queue.delays.lock().unwrap().is_empty(), "poison waits out the queue's visibility timeout");
        assert!(w.queue.dead.lock().unwrap().is_empty(), "its third receive is not its last");
    }

    #[tokio::test]
    async fn a_poison_message_on_its_last_receive_is_filed_as_a_dead_letter_with_its_error() {
        let w = World::start(RecordingQueue::default()).await;
        let mut batch = event("batch-with-poison.json");
        batch.records[1].attributes.insert("ApproximateReceiveCount".into(), "5".into());
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), Vec::<String>::new(), "filed, so not left to the redrive policy");
        let dead = w.queue.dead.lock().unwrap().clone();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, ids(&batch, &[1])[0]);
        assert!(dead[0].1.starts_with("unreadable job"), "{}", dead[0].1);
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_filed_is_reported_for_the_redrive_policy() {
        let w = World::start(RecordingQueue { refuse: true, ..RecordingQueue::default() }).await;
        let mut batch = event("batch-with-poison.json");
        batch.records[1].attributes.insert("ApproximateReceiveCount".into(), "5".into());
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), ids(&batch, &[1]));
    }

    #[tokio::test]
    async fn a_failing_record_puts_the_later_messages_of_its_group_back_behind_it_and_no_other() {
        let w = World::start(RecordingQueue::default()).await;
        let batch = event("failing-group.json");
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), ids(&batch, &[0]), "the failing job comes back first");
        let requeued = w.queue.requeued.lock().unwrap().clone();
        assert_eq!(requeued.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids(&batch, &[1]), "the later job waits");
        let copy = shared::domain::Queued::from_wire(&requeued[0].1).unwrap();
        assert_eq!(copy.job.delivery().as_str(), "basecamp:1052473012");
        assert_eq!(w.issues().await, 1, "the other to-do's group went ahead");
    }

    #[tokio::test]
    async fn a_429_replaces_each_message_by_a_copy_due_after_the_retry_after_and_reports_none() {
        let w = World::start(RecordingQueue::default()).await;
        w.bc.set_faults(Faults {
            force_429: Some(Forced429 { retry_after: 7, ..Forced429::default() }),
            ..Faults::default()
        });
        let batch = event("todo-burst.json");
        let before = chrono::Utc::now();
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), Vec::<String>::new(), "a delay never counts as a receive");
        let requeued = w.queue.requeued.lock().unwrap().clone();
        assert_eq!(requeued.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids(&batch, &[0, 1, 2]));
        for (_, body, delay) in &requeued {
            assert!(*delay >= Duration::from_secs(7), "at least the Retry-After: {delay:?}");
            let retry = shared::domain::Queued::from_wire(body).unwrap().retry.unwrap();
            assert_eq!(retry.attempt, 1);
            assert!(retry.not_before >= before + chrono::Duration::seconds(7), "{retry:?}");
            assert!(retry.reason.contains("rate limit"), "{}", retry.reason);
        }
        assert!(w.queue.delays.lock().unwrap().is_empty());
        assert_eq!(w.issues().await, 0);
    }

    #[tokio::test]
    async fn a_message_whose_copy_could_not_be_sent_is_delayed_and_reported() {
        let w = World::start(RecordingQueue { refuse: true, ..RecordingQueue::default() }).await;
        w.bc.set_faults(Faults {
            force_429: Some(Forced429 { retry_after: 7, ..Forced429::default() }),
            ..Faults::default()
        });
        let batch = event("todo-burst.json");
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), ids(&batch, &[0, 1, 2]));
    }

    #[tokio::test]
    async fn a_copy_received_before_its_due_time_is_hidden_until_then_and_not_synced() {
        let w = World::start(RecordingQueue::default()).await;
        let mut batch = event("todo-burst.json");
        let due = chrono::Utc::now() + chrono::Duration::seconds(30);
        let body = batch.records[0].body.clone().unwrap();
        let copy =
            shared::domain::Queued::from_wire(&body).unwrap().postponed(due, "Basecamp rate limit", true).unwrap();
        batch.records[0].body = Some(copy);
        let response = handle(&w.state, batch.clone()).await;
        assert_eq!(reported(&response), ids(&batch, &[0]));
        let delays = w.queue.delays.lock().unwrap().clone();
        assert_eq!(delays.len(), 1);
        assert!(delays[0].1 > Duration::from_secs(25) && delays[0].1 <= Duration::from_secs(30), "{delays:?}");
        let behind = w.queue.requeued.lock().unwrap().clone();
        assert_eq!(behind.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids(&batch, &[1]), "its group waits");
        assert_eq!(w.issues().await, 1, "only the other to-do was synced");
    }

    #[test]
    fn a_record_carries_its_group_and_receive_count_into_the_port() {
        let batch = event("batch-with-poison.json");
        let poison = received(&batch.records[1]);
        assert_eq!((poison.group.as_str(), poison.receive_count), ("bc-todo-1069490099", 3));
        assert_eq!(poison.message_id, batch.records[1].message_id.clone().unwrap());
        assert_eq!(Some(poison.receipt), batch.records[1].receipt_handle.clone());
    }
}
