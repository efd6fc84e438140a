//! [`SqsFifoQueue`]: the job queue on SQS FIFO (AWS mode).
//!
//! Message group = the record (`Job::record().group_id()`), deduplication id = the delivery id, so
//! each record's events apply in order and a webhook retried within SQS's five-minute window is dropped
//! by the queue itself. A delay (a 429's Retry-After) is a visibility change on the received message.
//!
//! What SQS decides rather than this adapter, and where the port contract is therefore looser:
//! - the max-receive count and the move to the dead-letter queue are the queue's redrive policy (the SAM
//!   template sets it), not a parameter here;
//! - SQS does not say whether a send was a duplicate, so `send` reports [`Sent::Enqueued`] for both and
//!   the queue drops the duplicate;
//! - `depth` is SQS's approximate count (waiting + in flight + delayed).
//!
//! The dead letters are read from the DLQ named at construction: `dead_letters` receives them with a
//! short visibility timeout and makes them visible again at once, and `redrive` re-sends one to the main
//! queue (same group, a fresh deduplication id) and deletes it from the DLQ. `dead_letter` files a message
//! there itself, with its last error, receive count and time as message attributes (a message the
//! queue's redrive policy moved has none of them).
//!
//! `requeue` sends the fresh copy to the back of its group (a new deduplication id, derived from the
//! message id and receive count so a repeated requeue of one receive is dropped by SQS) and then deletes
//! the received message. SQS FIFO has no per-message delay: the copy is visible at once, and the mapper
//! holds it by the due time in its body.
//! Endpoints come from the SDK configuration (`AWS_ENDPOINT_URL_SQS` for an emulator).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};

use crate::ports::{DeadLetter, JobConsumer, JobProducer, QueueOperator, Received, Sent, StoreError};

/// SQS hands out at most ten messages per receive.
pub const MAX_BATCH: usize = 10;

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// How long `dead_letters` and `redrive` hold the DLQ's messages while looking through them.
const PEEK_VISIBILITY: Duration = Duration::from_secs(30);

/// Message attributes `dead_letter` sets on the DLQ copy.
const ATTR_LAST_ERROR: &str = "LastError";
const ATTR_RECEIVE_COUNT: &str = "ReceiveCount";
const ATTR_DEAD_AT: &str = "DeadAt";

/// SQS allows 256 KiB per message with its attributes; an error message never needs more than this.
const MAX_ERROR_CHARS: usize = 2000;

/// A FIFO queue and, optionally, its dead-letter queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsFifoQueue {
    client: Client,
    queue_url: String,
    dlq_url: Option<String>,
    /// The received messages are deleted by Lambda's event source mapping (the handler reports them as
    /// done), so `requeue` and `dead_letter` only send their copy.
    deleted_by_event_source: bool,
}

impl SqsFifoQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), dlq_url: None, deleted_by_event_source: false }
    }

    /// For a consumer fed by Lambda's SQS event source mapping: a message the handler does not report as
    /// failed is deleted by the mapping, so `requeue` and `dead_letter` send their copy and leave the
    /// original to it (deleting it here too would be a second DeleteMessage on the same receipt).
    pub fn deleted_by_event_source(mut self) -> Self {
        self.deleted_by_event_source = true;
        self
    }

    /// Deletes a received message whose copy was sent, unless the event source mapping deletes it.
    async fn settle_original(&self, message: &Received) -> Result<(), StoreError> {
        if self.deleted_by_event_source { Ok(()) } else { self.delete(&message.receipt).await }
    }

    /// Names the dead-letter queue that `dead_letters` and `redrive` read.
    pub fn with_dead_letter_queue(mut self, dlq_url: impl Into<String>) -> Self {
        self.dlq_url = Some(dlq_url.into());
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    async fn receive_from(&self, url: &str, max: usize, visibility: Duration) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(10))
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .context("failed to receive messages")?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Every message of the DLQ (received, so in flight), then made visible again by the caller.
    async fn peek_dead(&self, dlq: &str) -> Result<Vec<Message>, StoreError> {
        let mut all = Vec::new();
        // A FIFO queue hands out a group's next message only after the previous one is settled, and
        // several receives may be needed to see every group: keep receiving until nothing comes back.
        for _ in 0..100 {
            let got = self.receive_from(dlq, MAX_BATCH, PEEK_VISIBILITY).await?;
            if got.is_empty() {
                break;
            }
            all.extend(got);
        }
        Ok(all)
    }

    async fn make_visible(&self, url: &str, messages: &[Message]) {
        for m in messages {
            if let Some(receipt) = m.receipt_handle() {
                let result = self
                    .client
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
                if let Err(e) = result {
                    // It becomes visible anyway when the peek's timeout ends.
                    tracing::warn!(error = %e, "could not make a dead letter visible again");
                }
            }
        }
    }
}

fn seconds(d: Duration) -> i32 {
    let capped = d.min(MAX_VISIBILITY);
    // Round up: a Retry-After of 1.5 s must not be retried after 1 s.
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn attribute(m: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    m.attributes().and_then(|a| a.get(&name)).map(String::as_str)
}

fn received(m: Message) -> Result<Received, StoreError> {
    let receive_count =
        attribute(&m, MessageSystemAttributeName::ApproximateReceiveCount).and_then(|v| v.parse().ok()).unwrap_or(1);
    let group = attribute(&m, MessageSystemAttributeName::MessageGroupId).unwrap_or_default().to_owned();
    Ok(Received {
        receipt: m.receipt_handle.ok_or_else(|| StoreError::Corrupt("a received message has no receipt".into()))?,
        message_id: m.message_id.unwrap_or_default(),
        group,
        body: m.body.unwrap_or_default(),
        receive_count,
    })
}

/// A string message attribute (the ones `dead_letter` sets).
fn user_attribute<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message_attributes().and_then(|a| a.get(name)).and_then(|v| v.string_value())
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("failed to build a message attribute")))
}

fn dead_letter(m: &Message) -> DeadLetter {
    let sent = attribute(m, MessageSystemAttributeName::SentTimestamp)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    DeadLetter {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        group: attribute(m, MessageSystemAttributeName::MessageGroupId).unwrap_or_default().to_owned(),
        dedup_id: attribute(m, MessageSystemAttributeName::MessageDeduplicationId).unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        receive_count: user_attribute(m, ATTR_RECEIVE_COUNT)
            .or_else(|| attribute(m, MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        // Filed by the mapper: when it gave up. Moved by the redrive policy: SQS keeps no "dead since", and
        // the send time is the closest it records.
        dead_at: user_attribute(m, ATTR_DEAD_AT)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map_or(sent, |t| t.with_timezone(&Utc)),
        last_error: user_attribute(m, ATTR_LAST_ERROR).map(str::to_owned),
    }
}

/// `doing` with what the service said: its error code and message, or the HTTP status when it sent no
/// code (an access denial, a throttle), so a log line tells an operator what to fix. Queue requests
/// carry no secret.
fn service_error<E>(
    doing: &str,
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> StoreError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let meta = aws_sdk_sqs::error::ProvideErrorMetadata::meta(e);
    let detail = match (meta.code(), meta.message(), e.raw_response()) {
        (Some(c), Some(m), _) => format!("{c}: {m}"),
        (Some(c), None, _) => c.to_owned(),
        (None, _, Some(r)) => {
            let body = r.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect();
            format!("HTTP {} without an error code the SDK reads: {body}", r.status().as_u16())
        }
        (None, _, None) => e.to_string(),
    };
    StoreError::Unexpected(anyhow::anyhow!("{doing} ({detail})"))
}

/// A deduplication id (at most 128 characters) unique to one receive of one message.
fn requeue_dedup(message: &Received) -> String {
    format!("{}-r{}", message.message_id, message.receive_count).chars().take(128).collect()
}

/// A receipt SQS no longer accepts (deleted, re-received, or never valid): the port makes that a no-op.
fn stale_receipt(code: Option<&str>) -> bool {
    matches!(code, Some("ReceiptHandleIsInvalid" | "InvalidParameterValue" | "MessageNotInflight"))
        || code.is_some_and(|c| c.contains("ReceiptHandleIsInvalid") || c.contains("MessageNotInflight"))
}

#[async_trait]
impl JobProducer for SqsFifoQueue {
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(group)
            .message_deduplication_id(dedup_id)
            .message_body(body)
            .send()
            .await
            .map_err(|e| service_error("failed to send a message", &e))?;
        Ok(Sent::Enqueued)
    }
}

#[async_trait]
impl JobConsumer for SqsFifoQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        self.receive_from(&self.queue_url, max, visibility).await?.into_iter().map(received).collect()
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        let result = self.client.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if stale_receipt(aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context("failed to delete a message").into()),
        }
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(delay))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if stale_receipt(aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context("failed to change a message's visibility").into()),
        }
    }

    async fn requeue(&self, message: &Received, body: &str, _delay: Duration) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&message.group)
            .message_deduplication_id(requeue_dedup(message))
            .message_body(body)
            .send()
            .await
            .map_err(|e| service_error("failed to requeue a message", &e))?;
        self.settle_original(message).await
    }

    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
        let Some(dlq) = &self.dlq_url else {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "no dead-letter queue is configured, so a message cannot be dead-lettered"
            )));
        };
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        self.client
            .send_message()
            .queue_url(dlq)
            .message_group_id(&message.group)
            .message_deduplication_id(requeue_dedup(message))
            .message_body(&message.body)
            .message_attributes(ATTR_LAST_ERROR, string_attribute(&error)?)
            .message_attributes(ATTR_RECEIVE_COUNT, string_attribute(&message.receive_count.to_string())?)
            .message_attributes(ATTR_DEAD_AT, string_attribute(&Utc::now().to_rfc3339())?)
            .send()
            .await
            .map_err(|e| service_error("failed to send a message to the dead-letter queue", &e))?;
        self.settle_original(message).await
    }
}

#[async_trait]
impl QueueOperator for SqsFifoQueue {
    async fn depth(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .context("failed to read the queue's depth")?;
        let attrs: HashMap<QueueAttributeName, String> = out.attributes.unwrap_or_default();
        Ok(attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let Some(dlq) = &self.dlq_url else { return Ok(Vec::new()) };
        let peeked = self.peek_dead(dlq).await?;
        let letters = peeked.iter().map(dead_letter).collect();
        self.make_visible(dlq, &peeked).await;
        Ok(letters)
    }

    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError> {
        let Some(dlq) = &self.dlq_url else { return Ok(false) };
        let peeked = self.peek_dead(dlq).await?;
        let (found, others): (Vec<Message>, Vec<Message>) =
            peeked.into_iter().partition(|m| m.message_id() == Some(message_id));
        self.make_visible(dlq, &others).await;
        let Some(m) = found.into_iter().next() else { return Ok(false) };
        let letter = dead_letter(&m);
        // A fresh deduplication id: the original may still be inside SQS's window.
        let dedup = format!("{}-redrive-{}", letter.dedup_id, uuid::Uuid::new_v4().simple());
        let dedup: String = dedup.chars().take(128).collect();
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&letter.group)
            .message_deduplication_id(dedup)
            .message_body(&letter.body)
            .send()
            .await
            .context("failed to re-send a dead letter")?;
        if let Some(receipt) = m.receipt_handle() {
            self.client
                .delete_message()
                .queue_url(dlq)
                .receipt_handle(receipt)
                .send()
                .await
                .context("failed to delete a redriven dead letter")?;
        }
        Ok(true)
    }
}
