//! Counters for store and queue work per event: decorators over the storage ports (operations per port
//! method, on any adapter), and SDK interceptors that count the requests the DynamoDB and SQS clients
//! actually send, with the read/write capacity DynamoDB reports for each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};
use shared::domain::{DeliveryId, DevItemRef, Pair, PairKey, PairState, RouteId};
use shared::ports::{
    AuditEntry, AuditLog, Conflict, ConflictLog, DeadLetter, DeliveryClaim, DeliveryLog, Inserted, JobConsumer,
    JobProducer, JobQueue, PairStore, QueueOperator, Received, Replaced, Resolution, Sent, StoreError,
};

/// Named counts, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<String, f64>>>);

impl Counts {
    pub fn add(&self, name: &str, n: f64) {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *map.entry(name.to_owned()).or_default() += n;
    }

    pub fn snapshot(&self) -> BTreeMap<String, f64> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn get(&self, name: &str) -> f64 {
        self.snapshot().get(name).copied().unwrap_or(0.0)
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

/// A [`JobQueue`] that counts its calls (`queue.send`, `queue.receive`, `queue.receive_empty`, …).
pub struct CountingQueue<Q> {
    pub inner: Q,
    pub counts: Counts,
}

#[async_trait]
impl<Q: JobQueue> JobProducer for CountingQueue<Q> {
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
        let sent = self.inner.send(group, dedup_id, body).await?;
        self.counts.add("queue.send", 1.0);
        if sent == Sent::Duplicate {
            self.counts.add("queue.send_duplicate", 1.0);
        }
        Ok(sent)
    }
}

#[async_trait]
impl<Q: JobQueue> JobConsumer for CountingQueue<Q> {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        let got = self.inner.receive(max, visibility).await?;
        self.counts.add(if got.is_empty() { "queue.receive_empty" } else { "queue.receive" }, 1.0);
        self.counts.add("queue.received_messages", got.len() as f64);
        Ok(got)
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.counts.add("queue.delete", 1.0);
        self.inner.delete(receipt).await
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.counts.add("queue.change_visibility", 1.0);
        self.inner.change_visibility(receipt, delay).await
    }

    async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError> {
        self.counts.add("queue.requeue", 1.0);
        self.inner.requeue(message, body, delay).await
    }

    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
        self.counts.add("queue.dead_letter", 1.0);
        self.inner.dead_letter(message, error).await
    }
}

#[async_trait]
impl<Q: JobQueue> QueueOperator for CountingQueue<Q> {
    async fn depth(&self) -> Result<u64, StoreError> {
        self.counts.add("queue.depth", 1.0);
        self.inner.depth().await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.counts.add("queue.dead_letters", 1.0);
        self.inner.dead_letters().await
    }

    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError> {
        self.counts.add("queue.redrive", 1.0);
        self.inner.redrive(message_id).await
    }
}

/// A store serving every storage port but the queue, counting each call (`pairs.get`, `deliveries.claim`, …).
pub struct CountingStore<S> {
    pub inner: Arc<S>,
    pub counts: Counts,
}

#[async_trait]
impl<S: PairStore> PairStore for CountingStore<S> {
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        self.counts.add("pairs.insert", 1.0);
        self.inner.insert(pair).await
    }
    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        self.counts.add("pairs.replace", 1.0);
        self.inner.replace(pair).await
    }
    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        self.counts.add("pairs.get", 1.0);
        self.inner.get(key).await
    }
    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        self.counts.add("pairs.find_by_item", 1.0);
        self.inner.find_by_item(item).await
    }
    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        self.counts.add("pairs.remove", 1.0);
        self.inner.remove(key, version).await
    }
    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        self.counts.add("pairs.list", 1.0);
        self.inner.list(route, state, limit).await
    }
}

#[async_trait]
impl<S: DeliveryLog> DeliveryLog for CountingStore<S> {
    async fn claim(&self, id: &DeliveryId, now: DateTime<Utc>, lease: Duration) -> Result<DeliveryClaim, StoreError> {
        self.counts.add("deliveries.claim", 1.0);
        self.inner.claim(id, now, lease).await
    }
    async fn complete(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError> {
        self.counts.add("deliveries.complete", 1.0);
        self.inner.complete(id, now, retention).await
    }
    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError> {
        self.counts.add("deliveries.release", 1.0);
        self.inner.release(id).await
    }
}

#[async_trait]
impl<S: AuditLog> AuditLog for CountingStore<S> {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.counts.add("audit.record", 1.0);
        self.inner.record(entry).await
    }
    async fn recent(&self, subject: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.counts.add("audit.recent", 1.0);
        self.inner.recent(subject, limit).await
    }
}

#[async_trait]
impl<S: ConflictLog> ConflictLog for CountingStore<S> {
    async fn record(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError> {
        self.counts.add("conflicts.record", 1.0);
        self.inner.record(conflict).await
    }
    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Conflict>, StoreError> {
        self.counts.add("conflicts.list", 1.0);
        self.inner.list(open_only, limit).await
    }
    async fn resolve(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError> {
        self.counts.add("conflicts.resolve", 1.0);
        self.inner.resolve(id, resolution).await
    }
}

/// Counts every request an AWS SDK client sends, by operation (`<service>.<Operation>`, from the JSON
/// protocols' `X-Amz-Target` header; retries count, as AWS bills them). On DynamoDB clients it also asks
/// each call for its consumed capacity (`ReturnConsumedCapacity = TOTAL`, table and indexes) and adds
/// it up as `dynamodb.rru` / `dynamodb.wru`. A failed conditional write reports no capacity, though
/// DynamoDB bills it: each is counted as `dynamodb.failed_writes` and estimated at one WRU.
///
/// Units are also filed by the kind of record (`dynamodb.wru.PAIR`, `….DELIVERY`, `….AUDIT`: the partition
/// key's prefix), remembered between a request and its response; that assumes one DynamoDB call at a time,
/// which holds in the bench's harness (one task drains the queue; the receivers never touch the table).
#[derive(Debug, Clone)]
pub struct SdkCounter {
    service: &'static str,
    counts: Counts,
    kind: Arc<Mutex<String>>,
}

impl SdkCounter {
    pub fn new(service: &'static str, counts: Counts) -> Self {
        Self { service, counts, kind: Arc::default() }
    }

    fn add_units(&self, name: &str, units: f64) {
        let kind = self.kind.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.counts.add(name, units);
        self.counts.add(&format!("{name}.{kind}"), units);
    }
}

/// The record kind of a DynamoDB key or item: its partition key's prefix (`PAIR#web#1` → `PAIR`).
fn kind_of(attributes: Option<&std::collections::HashMap<String, AttributeValue>>) -> String {
    attributes
        .and_then(|a| a.get(shared::adapters::dynamo::PK))
        .and_then(|v| v.as_s().ok())
        .map_or_else(|| "OTHER".to_owned(), |pk| pk.split('#').next().unwrap_or_default().to_owned())
}

impl Intercept for SdkCounter {
    fn name(&self) -> &'static str {
        "campbridge-bench request counter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation as op;
        if self.service != "dynamodb" {
            return Ok(());
        }
        let input = context.input_mut();
        let kind = if let Some(i) = input.downcast_ref::<op::get_item::GetItemInput>() {
            kind_of(i.key.as_ref())
        } else if let Some(i) = input.downcast_ref::<op::put_item::PutItemInput>() {
            kind_of(i.item.as_ref())
        } else if let Some(i) = input.downcast_ref::<op::update_item::UpdateItemInput>() {
            kind_of(i.key.as_ref())
        } else if let Some(i) = input.downcast_ref::<op::delete_item::DeleteItemInput>() {
            kind_of(i.key.as_ref())
        } else if let Some(i) = input.downcast_ref::<op::query::QueryInput>() {
            i.index_name.clone().map_or_else(|| "QUERY".to_owned(), |index| format!("QUERY_{index}"))
        } else if input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>().is_some() {
            "TRANSACTION".to_owned()
        } else {
            "OTHER".to_owned()
        };
        *self.kind.lock().unwrap_or_else(|p| p.into_inner()) = kind;
        macro_rules! ask {
            ($($t:ty),*) => {
                $(if let Some(i) = input.downcast_mut::<$t>() {
                    i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
                })*
            };
        }
        ask!(
            op::get_item::GetItemInput,
            op::put_item::PutItemInput,
            op::update_item::UpdateItemInput,
            op::delete_item::DeleteItemInput,
            op::query::QueryInput,
            op::scan::ScanInput,
            op::transact_write_items::TransactWriteItemsInput,
            op::transact_get_items::TransactGetItemsInput,
            op::batch_get_item::BatchGetItemInput,
            op::batch_write_item::BatchWriteItemInput
        );
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target);
        self.counts.add(&format!("{}.{operation}", self.service), 1.0);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation as op;
        if self.service != "dynamodb" {
            return Ok(());
        }
        let one = |c: Option<&ConsumedCapacity>| c.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0);
        let many = |c: Option<&Vec<ConsumedCapacity>>| -> f64 {
            c.map(|v| v.iter().filter_map(ConsumedCapacity::capacity_units).sum()).unwrap_or(0.0)
        };
        match context.output_or_error() {
            Ok(out) => {
                macro_rules! units {
                    ($name:literal, $read:expr, $($t:ty),*) => {
                        $(if let Some(o) = out.downcast_ref::<$t>() {
                            self.add_units($name, $read(o.consumed_capacity.as_ref()));
                            return Ok(());
                        })*
                    };
                }
                units!("dynamodb.rru", one, op::get_item::GetItemOutput, op::query::QueryOutput, op::scan::ScanOutput);
                units!(
                    "dynamodb.wru",
                    one,
                    op::put_item::PutItemOutput,
                    op::update_item::UpdateItemOutput,
                    op::delete_item::DeleteItemOutput
                );
                units!(
                    "dynamodb.wru",
                    many,
                    op::transact_write_items::TransactWriteItemsOutput,
                    op::batch_write_item::BatchWriteItemOutput
                );
                units!(
                    "dynamodb.rru",
                    many,
                    op::transact_get_items::TransactGetItemsOutput,
                    op::batch_get_item::BatchGetItemOutput
                );
            }
            Err(e) => {
                let Some(err) = e.as_operation_error() else { return Ok(()) };
                let write = err.downcast_ref::<op::put_item::PutItemError>().is_some()
                    || err.downcast_ref::<op::update_item::UpdateItemError>().is_some()
                    || err.downcast_ref::<op::delete_item::DeleteItemError>().is_some()
                    || err.downcast_ref::<op::transact_write_items::TransactWriteItemsError>().is_some();
                if write {
                    self.add_units("dynamodb.failed_writes", 1.0);
                    self.add_units("dynamodb.wru", 1.0);
                }
            }
        }
        Ok(())
    }
}
