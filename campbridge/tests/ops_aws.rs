//! The operator commands on the AWS backend (`[store] kind = "dynamodb"`): a fresh DynamoDB table on
//! DynamoDB Local, an SQS FIFO job queue with a dead-letter queue (a real redrive policy) and Secrets
//! Manager on moto, the upstream simulators on 127.0.0.1. `status`, `conflicts list|show|resolve`,
//! `dead-letters list|redrive`, `replay`, `backfill`, `selftest` and `doctor`'s token renewal, opened
//! exactly as the command opens them ([`Backend::open`], [`SecretSource`]), plus the binary itself on
//! the same config.
//!
//! `make test-aws` (scripts/emulators.sh) starts the emulators inside a private network namespace and
//! sets `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` and
//! `CAMPBRIDGE_REQUIRE_EMULATORS=1`. Without the endpoints (a plain `cargo test`) each test prints that it
//! did not run and returns, so no test ever reaches a real AWS endpoint; with
//! `CAMPBRIDGE_REQUIRE_EMULATORS=1` a missing endpoint fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use campbridge::demo::{self, Stack, StackOptions};
use campbridge::ops::{self, Backend, BackendKind, PublicUrls, SecretSource};
use campbridge_simulators::basecamp as bc;
use campbridge_simulators::common::faults::Faults;
use campbridge_simulators::jira as jira_sim;
use secrecy::ExposeSecret;
use shared::adapters::dynamo::DynamoStore;
use shared::config::Config;
use shared::domain::{DeliveryId, Job, PairKey, ProjectId, TodoId};
use shared::ports::Resolution;
use shared::sync::{Engine, Side};

/// The SDK configuration pointing at the emulators, or `None` (after saying so) when they are not
/// running.
async fn emulators(service: &str) -> Option<aws_config::SdkConfig> {
    let var = format!("AWS_ENDPOINT_URL_{service}");
    match std::env::var(&var) {
        Ok(url) if url.starts_with("http://127.0.0.1:") => {}
        Ok(url) => panic!("{var}={url}: the emulator tests only talk to 127.0.0.1"),
        Err(_) if std::env::var("CAMPBRIDGE_REQUIRE_EMULATORS").is_ok() => {
            panic!("{var} is not set but CAMPBRIDGE_REQUIRE_EMULATORS is: start the emulators (make test-aws)")
        }
        Err(_) => {
            eprintln!("not run: {var} is not set (make test-aws runs this against the emulators)");
            return None;
        }
    }
    Some(shared::adapters::aws_sdk::load().await)
}

/// `let Some(x) = … else { return }`: a test without its emulators did not run (see the module doc).
macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

/// `Some` when all three emulators are up; checked before a test starts its simulators.
async fn emulators_running() -> Option<()> {
    for service in ["DYNAMODB", "SQS", "SECRETS_MANAGER"] {
        emulators(service).await?;
    }
    Some(())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, redrive: Option<(&str, u32)>) -> String {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let mut create = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::VisibilityTimeout, "30");
    if let Some((dlq_arn, max)) = redrive {
        let policy = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max }).to_string();
        create = create.attributes(A::RedrivePolicy, policy);
    }
    create.send().await.unwrap().queue_url.unwrap()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs.get_queue_attributes().queue_url(url).attribute_names(A::QueueArn).send().await.unwrap();
    out.attributes.unwrap().remove(&A::QueueArn).unwrap()
}

/// The stack's config with `[store]` pointing at `table` and `queue_url` instead of its SQLite file.
fn on_aws(text: &str, table: &str, queue_url: &str) -> String {
    let mut out = Vec::new();
    let mut in_store = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_store = line == "[store]";
            if in_store {
                out.push(format!("[store]\nkind = \"dynamodb\"\ntable = {table:?}\nqueue_url = {queue_url:?}\n"));
                continue;
            }
        }
        if !in_store {
            out.push(line.to_owned());
        }
    }
    out.join("\n")
}

/// A deployed stack's storage, as `campbridge` opens it from a config.
struct Deployment {
    config: Config,
    config_text: String,
    backend: Backend,
    dlq_url: String,
}

/// A fresh table, a job queue whose redrive policy moves a message to a fresh DLQ after `max_receives`
/// receives, and the stack's config pointing at them, opened through [`Backend::open`].
async fn deployment(stack: &Stack, max_receives: u32) -> Option<Deployment> {
    let sdk = emulators("DYNAMODB").await?;
    emulators("SQS").await?;
    let table = unique("campbridge");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq_url = fifo_queue(&sqs, &unique("jobs-dlq"), None).await;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let queue_url = fifo_queue(&sqs, &unique("jobs"), Some((&dlq_arn, max_receives))).await;
    let config_text = on_aws(&stack.config_text, &table, &queue_url);
    let config = Config::parse(&config_text, "campbridge.toml").expect("the AWS config parses");
    let backend = Backend::open(&config).await.unwrap();
    assert_eq!(backend.kind, BackendKind::Aws);
    assert!(backend.describe.contains(&table), "{}", backend.describe);
    assert!(backend.describe.contains(&format!("dead letters in {dlq_url}")), "{}", backend.describe);
    Some(Deployment { config, config_text, backend, dlq_url })
}

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-ops-aws", name, edit).await.expect("stack starts")
}

/// Removes the stack's Basecamp webhook: the stack's own server (on SQLite) then hears nothing, and
/// jobs reach the AWS backend only when a test sends them.
async fn without_basecamp_webhooks(stack: &Stack) {
    let report = ops::webhooks::run(
        &stack.config,
        stack.secrets(),
        &PublicUrls::base(&stack.server_url),
        ops::webhooks::Action::Remove,
    )
    .await
    .unwrap();
    assert!(report.changes >= 1, "{}", ops::webhooks::render(&report));
}

async fn create_todos(stack: &Stack, list: &str, prefix: &str, n: usize) -> Vec<i64> {
    let list = stack.list(list).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let write = bc::TodoWrite { content: Some(format!("{prefix} {i}")), ..Default::default() };
        ids.push(stack.basecamp.create_todo(list, write, bc::ANNIE).await.unwrap());
    }
    ids
}

fn todo_job(stack: &Stack, delivery: i64, todo: i64) -> Job {
    Job::TodoChanged {
        delivery: DeliveryId::basecamp(delivery),
        route: stack.route.clone(),
        project: ProjectId(bc::PROJECT_ID),
        todo: TodoId(todo),
        event: "todo_changed".into(),
        received_at: chrono::Utc::now(),
    }
}

/// Sends `job` as a receiver would (group = record, deduplication id `dedup`).
async fn enqueue(backend: &Backend, job: &Job, dedup: &str) {
    backend.queue.send(&job.record().group_id(), dedup, &job.to_wire().unwrap()).await.unwrap();
}

/// Works the queue as the sync-mapper would, `rounds` times, with every failed message visible again at
/// once (so the redrive policy is reached without waiting out a visibility timeout).
async fn work(engine: &Engine, backend: &Backend, rounds: usize) {
    for _ in 0..rounds {
        shared::sync::run_queue_once(engine, backend.queue.as_ref(), 10, Duration::ZERO).await.unwrap();
    }
}

async fn item_of(backend: &Backend, stack: &Stack, todo: i64) -> Option<shared::domain::DevItemRef> {
    let key = PairKey { route: stack.route.clone(), todo: TodoId(todo) };
    backend.stores.pairs.get(&key).await.unwrap().and_then(|p| p.item)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_conflicts_read_dynamodb_and_a_conflict_is_settled_there() {
    or_return!(emulators_running().await);
    let stack = start("conflicts", |o| o.conflict_policy = "manual").await;
    let aws = or_return!(deployment(&stack, 5).await);
    without_basecamp_webhooks(&stack).await;
    let (backend, engine) = ops::open_engine(&aws.config, stack.secrets(), "ops-aws-test").await.unwrap();
    let todo = create_todos(&stack, "Sprint 1", "Fix login", 1).await[0];
    enqueue(&backend, &todo_job(&stack, 1, todo), "basecamp:1").await;
    assert_eq!(ops::replay::drain(&engine, backend.queue.as_ref(), 10).await.unwrap(), 1);
    let item = item_of(&backend, &stack, todo).await.expect("paired");

    // Both sides retitle before the sync sees either: a conflict, left open by the manual policy.
    let edit = bc::TodoEdit { content: Some("PM title".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let summary = serde_json::json!({"fields": {"summary": "[BC][WEB] Dev title"}});
    stack.jira.edit_issue(item.display_name(), summary, jira_sim::JARED).await.unwrap();
    enqueue(&backend, &todo_job(&stack, 2, todo), "basecamp:2").await;
    assert_eq!(ops::replay::drain(&engine, backend.queue.as_ref(), 10).await.unwrap(), 1);

    let status = ops::status::run(&backend, &aws.config, None, &PublicUrls::default()).await.unwrap();
    let text = ops::status::render(&status);
    assert!(text.contains("DynamoDB table"), "{text}");
    assert_eq!((status.pairs_linked, status.pairs_pending, status.conflicts_open), (1, 0, 1), "{text}");
    assert_eq!(status.dead_letters, 0, "{text}");
    assert!(status.last_delivery.iter().any(|d| d.source == "basecamp"), "{text}");
    assert!(text.contains("conflicts list"), "{text}");

    let open = ops::conflicts::list(backend.stores.conflicts.as_ref(), false).await.unwrap();
    assert_eq!(open.len(), 1);
    let shown = ops::conflicts::show(backend.stores.conflicts.as_ref(), &open[0].id).await.unwrap();
    assert_eq!((shown.basecamp_value.as_str(), shown.tracker_value.as_str()), ("PM title", "Dev title"));
    assert!(ops::conflicts::render_one(&shown).contains("--take basecamp|tracker"));
    let resolved = ops::conflicts::resolve(&engine, &open[0].id, Side::Tracker).await.unwrap();
    assert!(resolved.wrote);
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "Dev title");
    assert!(ops::conflicts::list(backend.stores.conflicts.as_ref(), false).await.unwrap().is_empty());
    let all = ops::conflicts::list(backend.stores.conflicts.as_ref(), true).await.unwrap();
    assert_eq!(all[0].resolution, Resolution::TookTracker);
    assert!(ops::conflicts::resolve(&engine, &open[0].id, Side::Tracker).await.is_err(), "settling twice is refused");
    let status = ops::status::run(&backend, &aws.config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(status.conflicts_open, 0, "{}", ops::status::render(&status));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_on_sqs_are_listed_replayed_and_redriven_and_a_replay_changes_nothing_twice() {
    or_return!(emulators_running().await);
    let stack = start("dead-letters", |_| {}).await;
    let aws = or_return!(deployment(&stack, 5).await);
    without_basecamp_webhooks(&stack).await;
    let (backend, engine) = ops::open_engine(&aws.config, stack.secrets(), "ops-aws-test").await.unwrap();
    let todos = create_todos(&stack, "Sprint 1", "Dead letter", 2).await;
    let (a, b) = (todo_job(&stack, 990_001, todos[0]), todo_job(&stack, 990_002, todos[1]));
    enqueue(&backend, &a, "basecamp:990001").await;
    enqueue(&backend, &b, "basecamp:990002").await;
    backend.queue.send("poison", "poison-1", "{ not a job").await.unwrap();

    // Jira refuses everything until the mapper files all three in the DLQ on their fifth receive.
    stack.jira.set_faults(Faults { error_rate: 1.0, error_status: 400, ..Default::default() });
    work(&engine, &backend, 5).await;
    let dead = ops::replay::list(backend.queue.as_ref()).await.unwrap();
    assert_eq!(dead.len(), 3, "{}", ops::replay::render_list(&dead));
    let poison = dead.iter().find(|d| d.delivery.is_none()).expect("the poison message is listed");
    assert!(poison.about.contains("unreadable"), "{}", poison.about);
    assert!(poison.last_error.as_deref().unwrap_or_default().starts_with("unreadable job"), "{poison:?}");
    for d in dead.iter().filter(|d| d.delivery.is_some()) {
        assert!(d.last_error.as_deref().unwrap_or_default().contains("rejected"), "{d:?}");
        assert_eq!(d.receive_count, 5, "{d:?}");
    }
    let b_letter = dead.iter().find(|d| d.delivery.as_deref() == Some("basecamp:990002")).unwrap().message_id.clone();
    let status = ops::status::run(&backend, &aws.config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!((status.dead_letters, status.queue_depth), (3, 0), "{}", ops::status::render(&status));
    assert!(stack.jira.issue("WEB-1").await.is_none(), "every create was refused");

    // After the fix: one replayed by delivery id, one redriven by message id.
    stack.jira.set_faults(Faults::default());
    assert_eq!(ops::replay::replay(backend.queue.as_ref(), "basecamp:990001").await.unwrap().len(), 1);
    assert_eq!(ops::replay::redrive(backend.queue.as_ref(), &[b_letter]).await.unwrap().len(), 1);
    assert!(ops::replay::drain(&engine, backend.queue.as_ref(), 10).await.unwrap() >= 2);
    let item_a = item_of(&backend, &stack, todos[0]).await.expect("a paired after the replay");
    assert!(item_of(&backend, &stack, todos[1]).await.is_some(), "b paired after the redrive");
    let left = ops::replay::list(backend.queue.as_ref()).await.unwrap();
    assert_eq!(left.len(), 1, "only the poison message is left: {}", ops::replay::render_list(&left));

    // Replaying again finds nothing, and the same delivery arriving once more is a no-op.
    assert!(ops::replay::replay(backend.queue.as_ref(), "basecamp:990001").await.is_err());
    let item_b = item_of(&backend, &stack, todos[1]).await.unwrap();
    assert_ne!(item_a, item_b);
    assert!(stack.jira.issue("WEB-3").await.is_none(), "one issue each");
    let creates = stack.jira.calls().count("POST", "/rest/api/3/issue");
    enqueue(&backend, &a, "basecamp:990001-again").await;
    ops::replay::drain(&engine, backend.queue.as_ref(), 10).await.unwrap();
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), creates);
    assert_eq!(item_of(&backend, &stack, todos[0]).await, Some(item_a));

    // `redrive --all` puts the poison message back; it fails again and returns to the DLQ, changing nothing.
    assert_eq!(ops::replay::redrive(backend.queue.as_ref(), &[]).await.unwrap().len(), 1);
    assert!(ops::replay::list(backend.queue.as_ref()).await.unwrap().is_empty());
    work(&engine, &backend, 5).await;
    assert_eq!(ops::replay::list(backend.queue.as_ref()).await.unwrap().len(), 1);
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), creates);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_cut_off_midway_resumes_on_dynamodb_without_duplicates_or_429s() {
    or_return!(emulators_running().await);
    let stack = start("backfill", |_| {}).await; // Basecamp's 50 requests / 10 s is on
    let aws = or_return!(deployment(&stack, 5).await);
    without_basecamp_webhooks(&stack).await;
    let todos = create_todos(&stack, "Sprint 1", "Legacy", 8).await;
    let (backend, mut engine) = ops::open_engine(&aws.config, stack.secrets(), "ops-aws-test").await.unwrap();
    // A short lease, so the claims the cut-off run leaves behind expire within the test.
    let mut settings = (*engine.settings).clone();
    settings.lease = Duration::from_secs(2);
    // Above the Jira simulator's index lag, as a deployment sets it above Jira's.
    settings.search_settle = Duration::from_millis(2 * campbridge_simulators::jira::DEFAULT_SEARCH_LAG_MS);
    engine.settings = Arc::new(settings);
    let client = ops::basecamp_client(&aws.config, stack.secrets()).await.unwrap();
    let limiter = Arc::new(ops::backfill::RateLimiter::basecamp());
    let opts = ops::backfill::Options {
        route: stack.route.clone(),
        dry_run: false,
        since: None,
        limit: None,
        progress: false,
    };

    // The first run is cut off (as Ctrl-C would) right after Jira created its third issue.
    let creates = || stack.jira.calls().count("POST", "/rest/api/3/issue");
    let run = ops::backfill::run(&engine, &client, limiter.clone(), &opts);
    let third_issue = async {
        while creates() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the backfill finished before the cut: {r:?}"),
        () = third_issue => {}
    }
    let cut_at = creates();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let plan = ops::backfill::run(
        &engine,
        &client,
        limiter.clone(),
        &ops::backfill::Options { dry_run: true, ..opts.clone() },
    )
    .await
    .unwrap();
    let ours = |a| plan.lines.iter().filter(|l| l.title.starts_with("Legacy") && l.action == a).count();
    let (skip, finish, create) =
        (ours(ops::backfill::Action::Skip), ours(ops::backfill::Action::Finish), ours(ops::backfill::Action::Create));
    assert_eq!(skip + finish + create, todos.len(), "{}", ops::backfill::render(&plan));
    // Cut right after the third create: that to-do is paired or still pending, the fourth at most claimed.
    assert!(finish <= 1 && (2..=3).contains(&skip), "{}", ops::backfill::render(&plan));
    assert_eq!(creates(), cut_at, "the dry run writes nothing");

    let second = ops::backfill::run(&engine, &client, limiter.clone(), &opts).await.unwrap();
    let text = ops::backfill::render(&second);
    assert_eq!((second.failed, second.rate_limited), (0, 0), "{text}");
    // A create cut off after Jira answered is finished by finding its issue by marker, not created again.
    assert_eq!(second.created + second.linked, finish + create, "{text}");
    assert!(second.linked <= finish, "{text}");
    let pairs = backend.stores.pairs.list(None, None, 1000).await.unwrap();
    for todo in &todos {
        assert!(pairs.iter().any(|p| p.todo.0 == *todo && p.is_linked()), "to-do {todo} paired: {text}");
    }
    assert_eq!(creates() as usize, pairs.len(), "one issue per paired to-do, none twice: {text}");

    let third = ops::backfill::run(&engine, &client, limiter, &opts).await.unwrap();
    assert_eq!(third.created + third.linked + third.failed, 0, "{}", ops::backfill::render(&third));
    assert_eq!(creates() as usize, pairs.len());
    let status = ops::status::run(&backend, &aws.config, None, &PublicUrls::default()).await.unwrap();
    assert_eq!(status.pairs_linked, pairs.len(), "{}", ops::status::render(&status));
    assert_eq!(status.claims_live + status.claims_stale, 0);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selftest_runs_its_loop_on_dynamodb_and_cleans_up() {
    or_return!(emulators_running().await);
    let stack = start("selftest", |_| {}).await;
    let aws = or_return!(deployment(&stack, 5).await);
    without_basecamp_webhooks(&stack).await;
    let (backend, engine) = ops::open_engine(&aws.config, stack.secrets(), "ops-aws-test").await.unwrap();
    let report = ops::selftest::run(&aws.config, stack.secrets(), &engine, &stack.route).await.unwrap();
    let text = ops::selftest::render(&report);
    assert!(report.ok(), "{text}");
    assert_eq!(report.steps.iter().filter(|s| s.ok == Some(true)).count(), 5, "{text}");
    let step = report.steps.iter().find(|s| s.name == "create → one issue").unwrap();
    let item = step.detail.split(" → ").nth(1).unwrap();
    assert!(stack.jira.issue(item).await.is_none(), "the sandbox issue is deleted: {text}");
    assert!(backend.stores.pairs.list(None, None, 10).await.unwrap().is_empty(), "no sandbox pair is left: {text}");
    let conflicts = backend.stores.conflicts.list(false, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1, "the conflict step is logged in the table");
    assert_ne!(conflicts[0].resolution, Resolution::Open);
    stack.stop().await.unwrap();
}

/// The stack's secrets copied into Secrets Manager under a fresh prefix, as an operator stores them
/// for a deployed stack.
async fn secrets_in_secrets_manager(stack: &Stack) -> Option<(String, aws_sdk_secretsmanager::Client)> {
    let sdk = emulators("SECRETS_MANAGER").await?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let prefix = format!("{}/", unique("stack"));
    let from = stack.secrets();
    for name in [
        "webhook-key",
        "basecamp-access-token",
        "basecamp-client-secret",
        "basecamp-refresh-token",
        "jira-api-token",
        "jira-webhook-secret",
        "bitbucket-api-token",
        "bitbucket-webhook-secret",
    ] {
        let value = from.get(name).await.unwrap();
        client
            .create_secret()
            .name(format!("{prefix}{name}"))
            .secret_string(value.expose_secret())
            .send()
            .await
            .unwrap();
    }
    Some((prefix, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_renews_an_expired_basecamp_token_into_secrets_manager() {
    or_return!(emulators_running().await);
    let stack = start("doctor-renew", |_| {}).await;
    let aws = or_return!(deployment(&stack, 5).await);
    let (prefix, client) = or_return!(secrets_in_secrets_manager(&stack).await);
    let source = SecretSource::for_store(&aws.config, &prefix);
    assert_eq!(source, SecretSource::SecretsManager { prefix: prefix.clone() }, "secrets follow the DynamoDB store");
    stack.basecamp.expire_token(bc::ACCESS_TOKEN).await;

    let report = ops::doctor::run(&aws.config, source.open(&aws.config).await, &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    assert!(report.ok(), "{text}");
    let line = report.checks.iter().find(|c| c.provider == "basecamp" && c.name == "credentials").unwrap();
    assert!(line.detail.contains("renewed"), "{text}");
    let stored = client
        .get_secret_value()
        .secret_id(format!("{prefix}basecamp-access-token"))
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    assert_ne!(stored, bc::ACCESS_TOKEN, "the renewed token is written back where the functions read it");
    let store: Vec<_> = report.checks.iter().filter(|c| c.provider == "store").collect();
    assert_eq!(store.len(), 3, "table, queue and dead-letter queue: {text}");
    assert!(store.iter().all(|c| c.ok == Some(true)), "{text}");
    assert!(text.contains(&aws.dlq_url), "{text}");
    assert!(!text.contains(&stored), "tokens are never printed");

    // Another process (a fresh secret store) finds the renewed token and refreshes nothing.
    let again = ops::doctor::run(&aws.config, source.open(&aws.config).await, &PublicUrls::default()).await;
    assert!(again.ok(), "{}", ops::doctor::render(&again));
    assert_eq!(stack.basecamp.calls().count("POST", "/authorization/token"), 1);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_a_missing_table_and_a_queue_without_a_dead_letter_queue() {
    or_return!(emulators_running().await);
    let stack = start("doctor-store", |_| {}).await;
    let sdk = or_return!(emulators("SQS").await);
    let bare_queue = fifo_queue(&aws_sdk_sqs::Client::new(&sdk), &unique("jobs-bare"), None).await;
    let text = on_aws(&stack.config_text, &unique("no-such-table"), &bare_queue);
    let config = Config::parse(&text, "campbridge.toml").unwrap();
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let text = ops::doctor::render(&report);
    assert!(!report.ok(), "{text}");
    let bad: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.provider == "store" && c.ok == Some(false))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(bad.len(), 2, "{text}");
    assert!(bad[0].starts_with("DynamoDB table no-such-table-"), "{text}");
    assert_eq!(bad[1], "dead-letter queue", "{text}");
    assert!(text.contains("redrive policy"), "{text}");
    assert!(
        report.checks.iter().any(|c| c.provider == "store" && c.ok == Some(true) && c.name.starts_with("SQS queue"))
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campbridge_command_reads_status_conflicts_and_dead_letters_from_the_stack() {
    or_return!(emulators_running().await);
    let stack = start("cli", |_| {}).await;
    let aws = or_return!(deployment(&stack, 1).await);
    let (prefix, _) = or_return!(secrets_in_secrets_manager(&stack).await);
    let path = std::env::temp_dir().join(format!("{}.toml", unique("campbridge-ops-aws-cli")));
    std::fs::write(&path, &aws.config_text).unwrap();
    aws.backend.queue.send("poison", "poison-1", "{ not a job").await.unwrap();
    // One receive reaches the redrive policy's count of 1; the next moves it to the DLQ.
    for _ in 0..2 {
        for m in aws.backend.queue.receive(10, Duration::ZERO).await.unwrap() {
            assert_eq!(m.body, "{ not a job");
        }
    }
    let campbridge = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_campbridge"))
            .args(args)
            .args(["--config", path.to_str().unwrap(), "--secret-prefix", &prefix])
            // moto and the simulators live on 127.0.0.1: the test opt-in for the config's loopback allowance.
            .env(shared::config::LOOPBACK_OPT_IN_VAR, "1")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = campbridge(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(status["backend"].as_str().unwrap().contains(&aws.dlq_url), "{out}");
    assert_eq!((status["dead_letters"].as_u64(), status["pairs_linked"].as_u64()), (Some(1), Some(0)), "{out}");

    let (ok, out, err) = campbridge(&["dead-letters", "list"]);
    assert!(ok && out.contains("unreadable body"), "{out}{err}");
    let (ok, out, err) = campbridge(&["conflicts", "list"]);
    assert!(ok && out.contains("No conflicts"), "{out}{err}");
    let (ok, _, err) = campbridge(&["replay", "basecamp:404"]);
    assert!(!ok && err.contains("no dead letter for delivery"), "{err}");
    let (ok, out, err) = campbridge(&["dead-letters", "redrive", "--all"]);
    assert!(ok && out.contains("Requeued 1") && out.contains("sync-mapper"), "{out}{err}");
    let (ok, out, err) = campbridge(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status["dead_letters"].as_u64(), status["queue_depth"].as_u64()), (Some(0), Some(1)), "{out}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_basecamp_stores_the_new_tokens_as_versions_of_the_stacks_secrets() {
    use ops::auth::{Options, TokenSink};
    or_return!(emulators_running().await);
    let stack = start("auth", |_| {}).await;
    let aws = or_return!(deployment(&stack, 5).await);
    let (prefix, client) = or_return!(secrets_in_secrets_manager(&stack).await);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    stack.basecamp.register_redirect_uri(&redirect);
    let line = "refresh_token = { secret = \"basecamp-refresh-token\" }";
    let text = aws.config_text.replace(line, &format!("{line}\nredirect_uri = {redirect:?}"));
    let config = Config::parse(&text, "campbridge.toml").unwrap();
    let source = SecretSource::for_store(&config, &prefix);
    let secrets = source.open(&config).await;
    let client_secret = ops::auth::client_secret(&config, secrets.as_ref()).await.unwrap();
    let pending = ops::auth::start(&config, Options { timeout: Duration::from_secs(60), client_secret }).await.unwrap();
    let url = pending.url.clone();
    let sink = TokenSink::Store { secrets, prefix: prefix.clone() };
    let finishing = {
        let config = config.clone();
        tokio::spawn(async move { pending.finish(&config, &sink).await })
    };

    // The browser: Launchpad's page, the person approves, Launchpad sends the browser back.
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let location = stack.basecamp.answer_authorization(None, bc::SYNC_BOT, true).unwrap();
    assert_eq!(reqwest::get(&location).await.unwrap().status(), 200);
    let done = finishing.await.unwrap().unwrap();

    let read = |name: &'static str| {
        let client = client.clone();
        let id = format!("{prefix}{name}");
        async move { client.get_secret_value().secret_id(id).send().await.unwrap().secret_string.unwrap() }
    };
    let access = read("basecamp-access-token").await;
    let refresh = read("basecamp-refresh-token").await;
    assert_ne!(access, bc::ACCESS_TOKEN);
    assert_ne!(refresh, bc::REFRESH_TOKEN);
    let me = reqwest::Client::new()
        .get(format!("{}/authorization.json", stack.basecamp.launchpad_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the stored access token works");
    let text = ops::auth::render(&done);
    assert!(text.contains(&format!("Secrets Manager {prefix}basecamp-access-token")), "{text}");
    assert!(!text.contains(&access) && !text.contains(&refresh), "tokens are never printed: {text}");
    stack.stop().await.unwrap();
}
