//! The chaos convergence harness (`tests/harness`) on the AWS adapters: pairs, deliveries, audit and
//! conflicts in DynamoDB Local, the job queue and its dead-letter queue on SQS FIFO (moto), everything
//! else as in `tests/chaos.rs`. SQS keeps real time, so the workers' queue converts the delays the mapper
//! sets from the scaled clock; SQS FIFO has no per-message delay, so postponed copies arrive early and are
//! held until due (the "held until due" figure).
//!
//! `make test-aws` (scripts/emulators.sh) starts the emulators in a private network namespace and sets
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS` and `CAMPBRIDGE_REQUIRE_EMULATORS=1`; without the
//! endpoints each test says it did not run and returns, so nothing ever reaches a real AWS endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test set-up panics on failure by design

mod harness;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use harness::world::{Backend, ScaledClock};
use harness::{Scale, assert_holds, chaos, outage, storm, weather};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::sqs::SqsFifoQueue;
use shared::setup::Stores;

/// The SDK configuration for the emulators, or `None` (after saying so) when they are not running.
async fn emulators() -> Option<aws_config::SdkConfig> {
    for service in ["DYNAMODB", "SQS"] {
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
    }
    Some(shared::adapters::aws_sdk::load().await)
}

async fn fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, redrive: Option<&str>) -> String {
    let mut create = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "30");
    if let Some(dlq_arn) = redrive {
        // The template's redrive policy: the backstop for a worker that stops mid-job five times.
        let policy = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5 }).to_string();
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    create.send().await.unwrap().queue_url.unwrap()
}

/// A fresh table, a job queue and its dead-letter queue, as the stack has them.
async fn aws(factor: f64) -> Option<impl FnOnce(Arc<ScaledClock>) -> Backend> {
    let sdk = emulators().await?;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("campbridge-chaos-{unique}");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq_url = fifo_queue(&sqs, &format!("chaos-dlq-{unique}"), None).await;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    let queue_url = fifo_queue(&sqs, &format!("chaos-{unique}"), Some(&dlq_arn)).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone()));
    let queue = Arc::new(SqsFifoQueue::new(sqs, queue_url.clone()).with_dead_letter_queue(dlq_url));
    Some(move |_clock: Arc<ScaledClock>| Backend {
        name: "DynamoDB + SQS",
        stores: Stores::all(store.clone()),
        queue,
        conflicts: store,
        store_section: format!("kind = \"dynamodb\"\ntable = {table:?}\nqueue_url = {queue_url:?}"),
        queue_time_factor: factor,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_record_converges_with_nothing_duplicated_lost_echoed_or_dead_lettered_on_aws() {
    let scale = Scale::from_env(300, 24);
    let Some(backend) = aws(scale.factor).await else { return };
    let report = chaos(&scale, backend).await;
    assert_holds(&report);
    for step in harness::crash::Step::ALL {
        let n = report.crashes_by_step.get(step.name()).copied().unwrap_or(0);
        assert!(n > 0, "the process was never killed at {}:\n{}", step.name(), report.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_429_storm_leaves_no_dead_letter_on_sqs_and_converges() {
    let scale = Scale::from_env(120, 12);
    let Some(backend) = aws(scale.factor).await else { return };
    let report = weather("429 storm", &scale, storm(), Duration::from_secs(180), backend).await;
    assert_holds(&report);
    assert!(report.max_attempt >= 5, "a job met five 429s in a row (dead-lettered before 0008):\n{}", report.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_upstream_outage_leaves_no_dead_letter_on_sqs_and_converges() {
    let scale = Scale::from_env(120, 12);
    let Some(backend) = aws(scale.factor).await else { return };
    let report = weather("60-second outage", &scale, outage(), Duration::from_secs(60), backend).await;
    assert_holds(&report);
    assert!(
        report.max_attempt >= 5,
        "a job was postponed five times in a row (dead-lettered before 0008):\n{}",
        report.text
    );
}
