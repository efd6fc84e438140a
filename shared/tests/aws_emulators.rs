//! The AWS adapters against Amazon DynamoDB Local (pairs, deliveries, audit, conflicts) and moto
//! (SQS FIFO, Secrets Manager): the same port contract suite the memory and SQLite adapters pass, plus
//! what only the real services' behaviour shows. Every test gets a fresh table, queue or secret prefix.
//!
//! `make test-aws` (scripts/emulators.sh) starts the emulators on loopback inside a private network
//! namespace and sets `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` and `CAMPBRIDGE_REQUIRE_EMULATORS=1`. Without the endpoints (a
//! plain `cargo test`), each test prints that it did not run and returns, so no test ever reaches a
//! real AWS endpoint; with `CAMPBRIDGE_REQUIRE_EMULATORS=1` a missing endpoint fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shared::adapters::dynamo::{DynamoStore, EXPIRES_AT};
use shared::adapters::secrets_manager::SecretsManagerSecrets;
use shared::adapters::sqs::SqsFifoQueue;
use shared::domain::DeliveryId;
use shared::ports::{
    AuditLog, ConflictLog, CursorStore, DeliveryClaim, DeliveryLog, JobConsumer, JobProducer, PairStore, QueueOperator,
    SecretError, SecretStore,
};
use shared::testkit::contract::{self, Fixture, QueueFixture, clock};

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

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn table() -> Option<Arc<DynamoStore>> {
    let config = emulators("DYNAMODB").await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let name = unique("campbridge");
    DynamoStore::create_table(&client, &name).await.unwrap();
    Some(Arc::new(DynamoStore::new(client, name)))
}

async fn sqs() -> Option<aws_sdk_sqs::Client> {
    Some(aws_sdk_sqs::Client::new(&emulators("SQS").await?))
}

async fn fifo_queue(client: &aws_sdk_sqs::Client, name: &str, redrive: Option<(&str, u32)>) -> String {
    let mut create = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30");
    if let Some((dlq_arn, max)) = redrive {
        let policy = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max }).to_string();
        create = create.attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, policy);
    }
    create.send().await.unwrap().queue_url.unwrap()
}

async fn queue_fixture() -> Option<QueueFixture> {
    let client = sqs().await?;
    let url = fifo_queue(&client, &unique("jobs"), None).await;
    // SQS keeps its own time: the fixture's clock is not read, so no property here moves it.
    Some(QueueFixture { queue: Arc::new(SqsFifoQueue::new(client, url)), clock: clock(), max_receives: 5 })
}

async fn secrets() -> Option<Arc<SecretsManagerSecrets>> {
    let config = emulators("SECRETS_MANAGER").await?;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    Some(Arc::new(SecretsManagerSecrets::new(client, format!("{}/", unique("campbridge")))))
}

/// `let Some(x) = … else { return }`: a test without its emulator did not run (see the module doc).
macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

mod dynamo_pairs {
    use super::*;
    shared::pair_store_contract_tests!(Fixture::<dyn PairStore>::new(or_return!(table().await), clock()));
}

mod dynamo_deliveries {
    use super::*;
    shared::delivery_log_contract_tests!(Fixture::<dyn DeliveryLog>::new(or_return!(table().await), clock()));
}

mod dynamo_audit {
    use super::*;
    shared::audit_log_contract_tests!(Fixture::<dyn AuditLog>::new(or_return!(table().await), clock()));
}

mod dynamo_conflicts {
    use super::*;
    shared::conflict_log_contract_tests!(Fixture::<dyn ConflictLog>::new(or_return!(table().await), clock()));
}

mod dynamo_cursors {
    use super::*;
    shared::cursor_store_contract_tests!(Fixture::<dyn CursorStore>::new(or_return!(table().await), clock()));
}

mod secrets_manager {
    use super::*;
    shared::secret_store_contract_tests!(Fixture::<dyn SecretStore>::new(or_return!(secrets().await), clock()));

    #[tokio::test]
    async fn a_secret_created_empty_reads_as_missing() {
        let config = or_return!(emulators("SECRETS_MANAGER").await);
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let prefix = format!("{}/", unique("campbridge"));
        client.create_secret().name(format!("{prefix}basecamp-token")).send().await.unwrap();
        let store = SecretsManagerSecrets::new(client, prefix);
        assert!(matches!(store.get("basecamp-token").await, Err(SecretError::Missing(n)) if n == "basecamp-token"));
    }

    #[tokio::test]
    async fn a_value_is_fetched_once_and_then_served_from_the_cache() {
        let config = or_return!(emulators("SECRETS_MANAGER").await);
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let prefix = format!("{}/", unique("campbridge"));
        let id = format!("{prefix}jira-token");
        client.create_secret().name(&id).secret_string("first-value").send().await.unwrap();
        let store = SecretsManagerSecrets::new(client.clone(), prefix);
        assert_eq!(store.get("jira-token").await.unwrap().expose_secret(), "first-value");
        client.put_secret_value().secret_id(&id).secret_string("changed-elsewhere").send().await.unwrap();
        assert_eq!(store.get("jira-token").await.unwrap().expose_secret(), "first-value", "cached per cold start");
        store.put("jira-token", &SecretString::from("written-here"), "refresh-1").await.unwrap();
        assert_eq!(store.get("jira-token").await.unwrap().expose_secret(), "written-here", "a put updates the cache");
    }

    #[tokio::test]
    async fn two_refreshers_writing_the_same_token_leave_one_new_version() {
        let config = or_return!(emulators("SECRETS_MANAGER").await);
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let prefix = format!("{}/", unique("campbridge"));
        let id = format!("{prefix}basecamp-refresh-token");
        client.create_secret().name(&id).secret_string("old-refresh").send().await.unwrap();
        let a = SecretsManagerSecrets::new(client.clone(), prefix.clone());
        let b = SecretsManagerSecrets::new(client.clone(), prefix);
        let value = SecretString::from("new-refresh");
        a.put("basecamp-refresh-token", &value, "same-refresh").await.unwrap();
        b.put("basecamp-refresh-token", &value, "same-refresh").await.unwrap();
        let versions = client.list_secret_version_ids().secret_id(&id).send().await.unwrap();
        assert_eq!(versions.versions().len(), 2, "the original and one refreshed version");
    }
}

mod stored_config {
    use shared::adapters::stored_config::{StoredConfig, StoredConfigError};
    use shared::deploy::{MAX_CONFIG_BYTES, config_version_id};

    use super::*;

    async fn stored() -> Option<(StoredConfig, aws_sdk_secretsmanager::Client, String)> {
        let config = emulators("SECRETS_MANAGER").await?;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let prefix = format!("{}/", unique("campbridge"));
        Some((StoredConfig::new(client.clone(), &prefix), client, prefix))
    }

    /// A valid config of exactly `bytes` bytes: a comment block with quotes, shell syntax, tabs and
    /// characters outside ASCII, padded to size.
    fn config_of(bytes: usize) -> String {
        let mut text = String::from("[server]\nlisten = \"127.0.0.1:8080\"\n");
        let line = "# \"quoted\" 'single' $(not run) `ticks` ünïcødé — tab:\there; a=b&c\n";
        while text.len() + line.len() <= bytes {
            text.push_str(line);
        }
        while text.len() < bytes {
            text.push('#');
        }
        text.truncate(bytes);
        text
    }

    async fn versions(client: &aws_sdk_secretsmanager::Client, id: &str) -> Vec<(String, Vec<String>)> {
        let out = client.describe_secret().secret_id(id).send().await.unwrap();
        let mut v: Vec<(String, Vec<String>)> = out.version_ids_to_stages.unwrap_or_default().into_iter().collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_64_kib_config_with_any_characters_is_stored_once_and_read_back_by_its_version() {
        let (stored, client, _) = or_return!(stored().await);
        let text = config_of(MAX_CONFIG_BYTES);
        assert_eq!(text.len(), 65_536);
        let pushed = stored.push(&text, "campbridge.toml").await.unwrap();
        assert!(pushed.created && pushed.new_version);
        assert_eq!(pushed.version, config_version_id(&text));
        let again = stored.push(&text, "campbridge.toml").await.unwrap();
        assert!(!again.new_version && !again.made_current, "the same text is the same version: {again:?}");
        let read = stored.read(Some(&pushed.version)).await.unwrap();
        assert_eq!(read.text, text);
        assert_eq!(versions(&client, stored.secret_id()).await.len(), 1);
    }

    #[tokio::test]
    async fn an_oversize_or_invalid_config_is_refused_and_nothing_is_stored() {
        let (stored, _, _) = or_return!(stored().await);
        let err = stored.push(&config_of(MAX_CONFIG_BYTES + 1), "campbridge.toml").await.unwrap_err();
        assert!(matches!(err, StoredConfigError::TooLarge { bytes: 65_537 }), "{err}");
        let err = stored.push("[server]\nlisten = 8080\n", "campbridge.toml").await.unwrap_err();
        assert!(err.to_string().contains("campbridge.toml:2:"), "problems keep their lines: {err}");
        assert!(matches!(stored.read(None).await, Err(StoredConfigError::NotPushed { .. })), "nothing stored");
    }

    #[tokio::test]
    async fn pushing_an_earlier_text_makes_its_version_current_again_and_other_versions_stay_readable() {
        let (stored, client, _) = or_return!(stored().await);
        let (a, b) = (config_of(200), config_of(300));
        let first = stored.push(&a, "a.toml").await.unwrap();
        let second = stored.push(&b, "b.toml").await.unwrap();
        assert!(second.new_version && second.made_current);
        assert_eq!(stored.read(None).await.unwrap().text, b);
        let back = stored.push(&a, "a.toml").await.unwrap();
        assert!(!back.new_version && back.made_current, "{back:?}");
        assert_eq!(stored.read(None).await.unwrap().text, a, "the earlier text is current again");
        assert_eq!(stored.read(Some(&second.version)).await.unwrap().text, b, "a deployed version stays readable");
        let current: Vec<String> = versions(&client, stored.secret_id())
            .await
            .into_iter()
            .filter(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v)
            .collect();
        assert_eq!(current, [first.version]);
        let missing = stored.read(Some(&config_version_id("never pushed"))).await.unwrap_err();
        assert!(matches!(missing, StoredConfigError::NoSuchVersion { .. }), "{missing}");
    }
}

mod sqs_fifo {
    use super::*;

    // The queue contract properties that need no clock movement run against moto. The others move the
    // fixture's ManualClock to expire visibility timeouts, the dedupe window or receive counts, which
    // SQS keeps on its own clock: `an_unacknowledged_message_becomes_visible_again`,
    // `change_visibility_delays_a_message` (covered below with real, short delays),
    // `a_stale_receipt_is_a_no_op`, `duplicate_sends_are_dropped` (dedupe after delete differs in moto
    // anyway), `a_message_received_too_often_is_dead_lettered` and `a_redriven_dead_letter…` (covered
    // below through a real redrive policy).

    #[tokio::test]
    async fn messages_come_out_oldest_first_and_in_order_per_group() {
        contract::queue_messages_come_out_oldest_first(or_return!(queue_fixture().await)).await;
    }

    #[tokio::test]
    async fn a_group_with_a_message_in_flight_blocks_only_itself() {
        contract::queue_a_group_in_flight_blocks_only_itself(or_return!(queue_fixture().await)).await;
    }

    #[tokio::test]
    async fn a_deleted_message_is_gone_and_depth_counts_the_rest() {
        contract::queue_delete_removes_a_message_and_depth_counts_the_rest(or_return!(queue_fixture().await)).await;
    }

    #[tokio::test]
    async fn a_send_with_a_queued_deduplication_id_adds_nothing() {
        let f = or_return!(queue_fixture().await);
        f.queue.send("bc-todo-1", "basecamp:1", "first").await.unwrap();
        f.queue.send("bc-todo-1", "basecamp:1", "second").await.unwrap();
        assert_eq!(f.queue.depth().await.unwrap(), 1);
        let got = f.queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(), vec!["first"]);
        assert_eq!(got[0].group, "bc-todo-1");
        assert_eq!(got[0].receive_count, 1);
    }

    #[tokio::test]
    async fn a_visibility_change_delays_or_releases_a_received_message() {
        let f = or_return!(queue_fixture().await);
        f.queue.send("bc-todo-1", "d1", "a1").await.unwrap();
        let got = f.queue.receive(1, Duration::from_secs(30)).await.unwrap();
        f.queue.change_visibility(&got[0].receipt, Duration::ZERO).await.unwrap();
        let again = f.queue.receive(1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again.len(), 1, "visible at once");
        assert_eq!(again[0].receive_count, 2);
        f.queue.change_visibility(&again[0].receipt, Duration::from_secs(2)).await.unwrap();
        assert!(f.queue.receive(1, Duration::from_secs(30)).await.unwrap().is_empty(), "delayed");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(f.queue.receive(1, Duration::from_secs(30)).await.unwrap().len(), 1, "visible after the delay");
        f.queue.delete("not-a-receipt").await.unwrap();
    }

    #[tokio::test]
    async fn a_requeued_message_comes_back_as_a_fresh_copy() {
        contract::queue_requeue_replaces_a_message_with_a_fresh_copy(or_return!(queue_fixture().await)).await;
    }

    #[tokio::test]
    async fn a_requeued_copy_goes_to_the_back_of_its_group_and_is_visible_at_once() {
        let f = or_return!(queue_fixture().await);
        f.queue.send("bc-todo-1", "d1", "a1").await.unwrap();
        f.queue.send("bc-todo-1", "d2", "a2").await.unwrap();
        let got = f.queue.receive(1, Duration::from_secs(30)).await.unwrap();
        f.queue.requeue(&got[0], "a1 again", Duration::from_secs(120)).await.unwrap();
        let bodies = |r: Vec<shared::ports::Received>| r.into_iter().map(|m| m.body).collect::<Vec<_>>();
        let next = f.queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(bodies(next), vec!["a2", "a1 again"], "SQS FIFO has no per-message delay; the mapper holds it");
    }

    #[tokio::test]
    async fn a_dead_lettered_message_keeps_its_error_in_the_dead_letter_queue() {
        let client = or_return!(sqs().await);
        let dlq_url = fifo_queue(&client, &unique("jobs-dlq"), None).await;
        let url = fifo_queue(&client, &unique("jobs"), None).await;
        let q = SqsFifoQueue::new(client, url).with_dead_letter_queue(dlq_url);
        let f = QueueFixture { queue: Arc::new(q), clock: clock(), max_receives: 5 };
        contract::queue_dead_letter_files_a_message_with_its_error(f).await;
    }

    #[tokio::test]
    async fn a_message_past_the_max_receive_count_is_dead_lettered_and_can_be_redriven() {
        let client = or_return!(sqs().await);
        let dlq_url = fifo_queue(&client, &unique("jobs-dlq"), None).await;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .unwrap();
        let url = fifo_queue(&client, &unique("jobs"), Some((&dlq_arn, 2))).await;
        let q = SqsFifoQueue::new(client, url).with_dead_letter_queue(dlq_url);
        q.send("bc-todo-1", "d1", "poison").await.unwrap();
        for n in 1..=2 {
            let got = q.receive(1, Duration::ZERO).await.unwrap();
            assert_eq!(got.first().map(|r| r.receive_count), Some(n));
        }
        assert!(q.receive(1, Duration::ZERO).await.unwrap().is_empty(), "the third receive dead-letters it");
        let dead = q.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].group.as_str(), dead[0].dedup_id.as_str(), dead[0].body.as_str()),
            ("bc-todo-1", "d1", "poison")
        );
        assert_eq!(dead[0].last_error, None, "moved by the redrive policy: no error recorded");
        assert_eq!(q.dead_letters().await.unwrap().len(), 1, "listing leaves them in the DLQ");
        assert!(!q.redrive("no-such-message").await.unwrap());
        assert!(q.redrive(&dead[0].message_id).await.unwrap());
        assert!(q.dead_letters().await.unwrap().is_empty());
        let back = q.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(back.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(), vec!["poison"]);
        assert_eq!(back[0].receive_count, 1);
    }
}

#[tokio::test]
async fn a_delivery_claim_carries_the_ttl_attribute_in_epoch_seconds() {
    let store = or_return!(table().await);
    let config = or_return!(emulators("DYNAMODB").await);
    let client = aws_sdk_dynamodb::Client::new(&config);
    let now = shared::testkit::at(0);
    let id = DeliveryId::basecamp(7);
    assert_eq!(store.claim(&id, now, Duration::from_secs(30)).await.unwrap(), DeliveryClaim::Claimed);
    store.complete(&id, now, Duration::from_secs(3600)).await.unwrap();
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("DELIVERY#{id}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("DELIVERY".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl = item.get(EXPIRES_AT).and_then(|v| v.as_n().ok()).unwrap();
    assert_eq!(ttl, &(now.timestamp() + 3600).to_string());
}
