//! Local mode's story, replayed on the AWS adapters: the simulators send their real webhooks to the
//! receiver functions' URLs on the runtime emulator, the functions enqueue on SQS FIFO (moto), and the
//! mapper's use case (`shared::sync::run_queue_once`, what the sync-mapper function runs per batch:
//! receive, process, delete what is done) syncs through the simulators' APIs with pairs, deliveries
//! and audit in DynamoDB Local. Same outcomes as local mode: one issue per to-do, no echo, duplicates
//! absorbed, Jira's done completes the to-do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use campbridge_simulators::common::webhooks::DeliveryRecord;
use campbridge_simulators::{basecamp as bc_sim, jira as jira_sim};
use shared::adapters::sqs::SqsFifoQueue;
use shared::clients::basecamp::SYNC_WEBHOOK_TYPES;
use shared::domain::{PairKey, ProjectId, RouteId, TodoId};
use shared::ports::{AuditLog, Clock, PairStore, QueueOperator, SecretStore, SystemClock};
use shared::setup::{self, Stores};
use shared::sync::{Engine, Outcome, run_queue_once};

use crate::world::{BITBUCKET_WEBHOOK_SECRET, JIRA_WEBHOOK_SECRET, World};

const RECEIVERS: &[&str] = &["basecamp-webhook", "jira-webhook", "bitbucket-webhook"];

/// What the mapper did while the world settled.
#[derive(Debug, Default)]
struct Synced {
    messages: usize,
    outcomes: Vec<Outcome>,
    duplicates: usize,
}

impl Synced {
    fn wrote(&self) -> bool {
        self.outcomes.iter().any(|o| matches!(o, Outcome::Created { .. } | Outcome::Updated { .. }))
    }
}

/// Registers the receivers' function URLs in the simulators, as an admin would.
async fn register_webhooks(world: &World) {
    let secrets: Arc<dyn SecretStore> = world.secrets();
    let token = setup::basecamp_receiver(&world.config, secrets.as_ref())
        .await
        .unwrap()
        .unwrap()
        .route_token(&RouteId::parse("web").unwrap());
    let basecamp = setup::basecamp_client(&world.config, secrets).await.unwrap();
    let url = world.function_url("basecamp-webhook", &format!("/basecamp/{token}"));
    basecamp.create_webhook(ProjectId(bc_sim::PROJECT_ID), &url, SYNC_WEBHOOK_TYPES).await.unwrap();
    world
        .jira
        .register_webhook(jira_sim::AdminHook {
            id: 0,
            url: world.function_url("jira-webhook", "/"),
            secret: Some(JIRA_WEBHOOK_SECRET.to_owned()),
            events: Vec::new(),
            jql: None,
        })
        .await;
    world
        .bitbucket
        .register_webhook(
            &world.function_url("bitbucket-webhook", "/"),
            Some(BITBUCKET_WEBHOOK_SECRET),
            &["pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "repo:commit_status_created"],
        )
        .await;
}

/// Delivers every pending webhook and runs the mapper until the queue is empty, as the event source
/// mapping would call the sync-mapper function.
async fn settle(world: &mut World, engine: &Engine, queue: &SqsFifoQueue) -> Synced {
    let mut synced = Synced::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        world.basecamp.settle().await;
        world.jira.settle().await;
        world.bitbucket.settle().await;
        let (received, report) = run_queue_once(engine, queue, 10, Duration::from_secs(30)).await.unwrap();
        if received > 0 {
            synced.messages += received;
            synced.outcomes.extend(report.outcomes);
            synced.duplicates += report.duplicates;
            continue;
        }
        if queue.depth().await.unwrap() == 0 {
            return synced;
        }
        // A message waits out a delay (a busy pair): poll again shortly.
        world.assert_running();
        assert!(Instant::now() < deadline, "the queue did not drain within 60 s: {synced:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each delivery's event and answer (not its headers or body: signatures stay out of test output).
fn answers(deliveries: &[DeliveryRecord]) -> Vec<(&str, Option<u16>)> {
    deliveries.iter().map(|d| (d.event.as_str(), d.status)).collect()
}

fn issue_creates(world: &World) -> u64 {
    world.jira.calls().count("POST", "/rest/api/3/issue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_on_the_aws_adapters_makes_one_issue_suppresses_echoes_absorbs_duplicates_and_completes_the_todo() {
    let Some(mut world) = World::start(RECEIVERS).await else { return };
    register_webhooks(&world).await;
    let store = world.store();
    let secrets: Arc<dyn SecretStore> = world.secrets();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = setup::engine(&world.config, Stores::all(store.clone()), secrets, clock, "aws-story").await.unwrap();
    let queue = world.queue();

    // 1. Annie creates a to-do: its webhooks (created, assigned) reach basecamp-webhook, which enqueues a
    //    job for each; the mapper syncs the record once, creating one Jira issue and linking the pair in
    //    DynamoDB.
    let sprint = world.basecamp.list_id("Sprint 1").await.unwrap();
    let todo = world
        .basecamp
        .create_todo(
            sprint,
            bc_sim::TodoWrite {
                content: Some("Fix login redirect".into()),
                assignee_ids: Some(vec![bc_sim::JARED]),
                due_on: Some("2026-12-01".into()),
                ..Default::default()
            },
            bc_sim::ANNIE,
        )
        .await
        .unwrap();
    world.basecamp.settle().await;
    let delivered = world.basecamp.deliveries();
    let (received, created) = run_queue_once(&engine, &queue, 10, Duration::from_secs(30)).await.unwrap();
    assert!(delivered.iter().all(|d| d.status == Some(202)), "answered: {:?}", answers(&delivered));
    assert_eq!(received, delivered.len(), "each of the to-do's webhooks became one job");
    assert!(
        matches!(created.outcomes.as_slice(), [Outcome::Created { recovered: false, .. }]),
        "one sync for the record created the issue: {created:?}"
    );
    assert_eq!(issue_creates(&world), 1);
    let key = PairKey { route: RouteId::parse("web").unwrap(), todo: TodoId(todo) };
    let pair = store.get(&key).await.unwrap().expect("the pair is stored in DynamoDB");
    let issue_key = pair.item.as_ref().expect("and linked").display_name().to_owned();
    let issue = world.jira.issue(&issue_key).await.unwrap();
    assert_eq!(issue["fields"]["summary"], "[BC][WEB] Fix login redirect");
    assert_eq!(issue["fields"]["assignee"]["accountId"], jira_sim::JARED);
    assert_eq!(issue["fields"]["duedate"], "2026-12-01");

    // 2. Our writes come back as webhooks (Jira's issue_created, Basecamp's link comment): through the
    //    receivers and the queue to the mapper, where they are recognised and write nothing.
    let writes = world.upstream_writes();
    let echoes = settle(&mut world, &engine, &queue).await;
    assert!(echoes.messages > 0, "the sync's own writes came back as webhooks");
    assert!(!echoes.wrote(), "an echo wrote: {echoes:?}");
    assert_eq!(world.upstream_writes(), writes, "no write after the echo came back");
    let jira_deliveries = world.jira.deliveries();
    assert!(
        !jira_deliveries.is_empty() && jira_deliveries.iter().all(|d| d.status == Some(202)),
        "answered: {:?}",
        answers(&jira_deliveries)
    );

    // 3. Basecamp delivers the to-do's webhook once more (unsigned, so replayed as delivered): the
    //    receiver accepts it, the mapper finds the delivery completed in DynamoDB and does nothing.
    let first = world.basecamp.deliveries().into_iter().find(|d| d.event == "todo_created").unwrap();
    let resent = reqwest::Client::new().post(&first.url).json(&first.body).send().await.unwrap();
    assert_eq!(resent.status().as_u16(), 202);
    let duplicate = settle(&mut world, &engine, &queue).await;
    assert_eq!((duplicate.messages, duplicate.duplicates), (1, 1), "absorbed as a duplicate: {duplicate:?}");
    assert!(!duplicate.wrote());
    assert_eq!(world.upstream_writes(), writes);
    assert_eq!(issue_creates(&world), 1, "still exactly one issue");

    // 4. Jared moves the issue to Done: jira-webhook enqueues it, the mapper completes the to-do once,
    //    and the completion's own webhook, when it comes back, writes nothing to Jira.
    assert_eq!(world.basecamp.record("todos", todo).await.unwrap()["completed"], false);
    world.jira.transition_issue(&issue_key, "Done", jira_sim::JARED).await.unwrap();
    let jira_writes = world.upstream_writes().1;
    let done = settle(&mut world, &engine, &queue).await;
    assert!(done.wrote(), "{done:?}");
    assert_eq!(world.basecamp.record("todos", todo).await.unwrap()["completed"], true);
    assert_eq!(world.basecamp.calls().count("POST", "/todos/{id}/completion.json"), 1);
    assert_eq!(world.upstream_writes().1, jira_writes, "nothing written back to Jira");

    let audit = store.recent(None, 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "created"), "audited in DynamoDB: {audit:?}");
    assert_eq!(issue_creates(&world), 1);
}
