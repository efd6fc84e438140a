//! DynamoDB adapters (AWS mode): pairs, deliveries, audit entries, conflicts and the reconciler's cursors in
//! one table.
//!
//! Single-table layout (attribute names are the consts below):
//!
//! | item            | `pk`                       | `sk`       | `gsi1pk`            | `gsi1sk`                  |
//! |-----------------|----------------------------|------------|---------------------|---------------------------|
//! | pair            | `PAIR#<route>#<todo>`      | `PAIR`     | `PAIRS#<STATE>`     | `<created>#<route>#<todo>` |
//! | item → pair     | `ITEM#<item index key>`    | `ITEM`     |                     |                           |
//! | delivery claim  | `DELIVERY#<delivery id>`   | `DELIVERY` |                     |                           |
//! | audit entry     | `AUDIT#<subject>`          | `<at>#<n>` | `AUDIT`             | `<at>#<n>`                |
//! | conflict        | `CONFLICT#<id>`            | `CONFLICT` | `CONFLICTS`         | `<at>#<n>`                |
//! | cursor          | `CURSOR#<name>`            | `CURSOR`   |                     |                           |
//!
//! Records are stored as JSON in [`BODY`] beside the attributes that conditions and queries read.
//!
//! Conditional writes, as the ports require:
//! - a pair and its reverse-lookup item are written together with `TransactWriteItems`, each with
//!   `attribute_not_exists` (insert) or a version condition (replace); a replace that keeps its item
//!   is a single conditional `PutItem`;
//! - deliveries are claimed with the Powertools idempotency condition (absent, or expired, or in
//!   progress past its lease) and carry an [`EXPIRES_AT`] TTL attribute in epoch seconds;
//! - a cursor moves with a conditional `PutItem` (absent, or stored [`AT_US`] earlier), so it never
//!   moves back;
//! - every conditional write asks for `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a loser learns
//!   the winner's record without a second read.
//!
//! `list` (pairs by state) and the audit/conflict listings read the `gsi1` index, which DynamoDB keeps
//! eventually consistent: a record written a moment ago may be missing from a listing, never from `get`.
//! Endpoints come from the SDK configuration (`AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
};
use chrono::{DateTime, SecondsFormat, Utc};

use super::later;
use crate::domain::{DeliveryId, DevItemRef, Pair, PairKey, PairState, RouteId, TodoId};
use crate::ports::{
    AuditEntry, AuditLog, Conflict, ConflictLog, CursorStore, DeliveryClaim, DeliveryLog, Inserted, PairStore,
    Replaced, Resolution, StoreError,
};

/// Partition key.
pub const PK: &str = "pk";
/// Sort key.
pub const SK: &str = "sk";
/// The overloaded global secondary index's partition and sort keys, and its name.
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI1: &str = "gsi1";
/// The record as JSON.
pub const BODY: &str = "body";
/// A pair's version; every replace is conditioned on it.
pub const VERSION: &str = "version";
/// A pair's state (`PENDING`, `LINKED`).
pub const STATE: &str = "state";
/// On a reverse-lookup item: the owning pair's route and to-do.
pub const ROUTE: &str = "route";
pub const TODO: &str = "todo";
/// On a delivery: `IN_PROGRESS` or `COMPLETED`.
pub const STATUS: &str = "status";
/// On a delivery: the lease end of an in-progress claim, epoch microseconds.
pub const IN_PROGRESS_UNTIL: &str = "in_progress_until_us";
/// On a delivery: when the record stops counting, epoch microseconds (exact, used in conditions).
pub const EXPIRES_AT_US: &str = "expires_at_us";
/// On a delivery: the table's TTL attribute, epoch seconds (rounded up from [`EXPIRES_AT_US`]).
pub const EXPIRES_AT: &str = "expires_at";
/// On a conflict: whether it is still open, and its current resolution (overrides the body's).
pub const OPEN: &str = "open";
pub const RESOLUTION: &str = "resolution";
/// On a cursor: its instant, epoch microseconds.
pub const AT_US: &str = "at_us";

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
const PAIR_SK: &str = "PAIR";
const ITEM_SK: &str = "ITEM";
const DELIVERY_SK: &str = "DELIVERY";
const CONFLICT_SK: &str = "CONFLICT";
const CURSOR_SK: &str = "CURSOR";
const AUDIT_ALL: &str = "AUDIT";
const CONFLICTS_ALL: &str = "CONFLICTS";

/// How often a transaction that lost to a concurrent transaction on the same items is retried.
const TRANSACTION_ATTEMPTS: u32 = 5;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB table behind every storage port but the queue and secrets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// Pairs live in the same table as everything else; the alias names the port it is used for.
pub type DynamoPairStore = DynamoStore;
/// Delivery claims, in the same table.
pub type DynamoDeliveryLog = DynamoStore;

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with the key schema, index and TTL this adapter expects (tests and
    /// `campbridge` against DynamoDB Local; in AWS the SAM template creates it with the same schema).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(GSI1PK, KeyType::Hash).context("gsi1 hash key")?)
            .key_schema(key(GSI1SK, KeyType::Range).context("gsi1 range key")?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .context("failed to describe the gsi1 index")?;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(PK).context("pk attribute")?)
            .attribute_definitions(attr(SK).context("sk attribute")?)
            .attribute_definitions(attr(GSI1PK).context("gsi1pk attribute")?)
            .attribute_definitions(attr(GSI1SK).context("gsi1sk attribute")?)
            .key_schema(key(PK, KeyType::Hash).context("hash key")?)
            .key_schema(key(SK, KeyType::Range).context("range key")?)
            .global_secondary_indexes(gsi)
            .send()
            .await
            .with_context(|| format!("failed to create table {table}"))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(EXPIRES_AT)
                    .enabled(true)
                    .build()
                    .context("failed to describe the TTL")?,
            )
            .send()
            .await
            .with_context(|| format!("failed to enable TTL on table {table}"))?;
        Ok(())
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .context("failed to read an item")?;
        Ok(out.item)
    }

    async fn pair_at(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        self.get_item(pair_pk(&key.route, key.todo), PAIR_SK).await?.map(|i| decode(&i, "pair")).transpose()
    }

    /// Queries `gsi1` partition `partition`, oldest (`forward`) or newest first, keeping items that pass
    /// `keep`, until `limit` are found or the partition ends.
    async fn query_index(
        &self,
        partition: &str,
        forward: bool,
        limit: usize,
        keep: impl Fn(&Item) -> bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", GSI1PK)
                .expression_attribute_values(":p", s(partition))
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .with_context(|| format!("failed to query {partition}"))?;
            out.extend(page.items.unwrap_or_default().into_iter().filter(|i| keep(i)));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Runs a transaction, retrying while it loses to a concurrent transaction on the same items.
    /// `Ok(Err(reasons))` is a condition failure, with one reason per action in order.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<CancellationReason>>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().to_vec(),
                _ => return Err(anyhow::Error::new(err).context("failed to write a transaction").into()),
            };
            let conflicted = reasons.is_empty() || reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
            if !conflicted {
                return Ok(Err(reasons));
            }
            if attempt >= TRANSACTION_ATTEMPTS {
                return Err(StoreError::Unexpected(anyhow::anyhow!(
                    "a transaction kept conflicting with concurrent writers ({attempt} attempts)"
                )));
            }
            // Back off a little more each time, with jitter, so racing writers spread out.
            let jitter = u64::from(rand_u8()) % 20;
            tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 20 + jitter)).await;
        }
    }

    fn pair_put(&self, pair: &Pair, condition: PairCondition) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(pair_item(pair)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = match condition {
            PairCondition::Absent => {
                put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
            }
            PairCondition::Version(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(v)),
        };
        Ok(put.build().context("failed to describe a pair write")?)
    }

    /// Deletes `item`'s lookup only while it is absent or still names `owner` (never another pair's).
    fn lookup_delete(&self, item: &DevItemRef, owner: &PairKey) -> Result<Delete, StoreError> {
        Ok(Delete::builder()
            .table_name(&self.table)
            .key(PK, s(item_pk(item)))
            .key(SK, s(ITEM_SK))
            .condition_expression("attribute_not_exists(#pk) OR (#r = :r AND #t = :t)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#r", ROUTE)
            .expression_attribute_names("#t", TODO)
            .expression_attribute_values(":r", s(owner.route.as_str()))
            .expression_attribute_values(":t", n(owner.todo.0))
            .build()
            .context("failed to describe an item lookup delete")?)
    }

    fn lookup_put(&self, item: &DevItemRef, owner: &PairKey) -> Result<Put, StoreError> {
        let record = HashMap::from([
            (PK.to_owned(), s(item_pk(item))),
            (SK.to_owned(), s(ITEM_SK)),
            (ROUTE.to_owned(), s(owner.route.as_str())),
            (TODO.to_owned(), n(owner.todo.0)),
        ]);
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            // Absent, or already ours (a replace that re-links the same item).
            .condition_expression("attribute_not_exists(#pk) OR (#r = :r AND #t = :t)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#r", ROUTE)
            .expression_attribute_names("#t", TODO)
            .expression_attribute_values(":r", s(owner.route.as_str()))
            .expression_attribute_values(":t", n(owner.todo.0))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .context("failed to describe an item lookup write")?)
    }

    /// The pair a lookup item names, read after a failed condition told us the item is taken.
    async fn owner_of(&self, lookup: Option<&Item>, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        let lookup = match lookup {
            Some(l) => Some(l.clone()),
            None => self.get_item(item_pk(item), ITEM_SK).await?,
        };
        let Some(lookup) = lookup else { return Ok(None) };
        let key = PairKey { route: RouteId(string(&lookup, ROUTE)?), todo: TodoId(number(&lookup, TODO)?) };
        self.pair_at(&key).await
    }
}

enum PairCondition {
    Absent,
    Version(u64),
}

#[async_trait]
impl PairStore for DynamoStore {
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        let put = self.pair_put(pair, PairCondition::Absent)?;
        let Some(item) = &pair.item else {
            // No lookup to keep in step: one conditional put, and the loser gets the winner back.
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Inserted::Inserted),
                Err(e) => match conditional_put_old(e)? {
                    Some(old) => Ok(Inserted::AlreadyExists(decode(&old, "pair")?)),
                    None => self.pair_at(&pair.key()).await?.map(Inserted::AlreadyExists).ok_or_else(vanished),
                },
            };
        };
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().put(self.lookup_put(item, &pair.key())?).build(),
        ];
        match self.transact(actions).await? {
            Ok(()) => Ok(Inserted::Inserted),
            Err(reasons) => {
                if let Some(old) = failed(&reasons, 0) {
                    let existing = match old {
                        Some(i) => Some(decode(i, "pair")?),
                        None => self.pair_at(&pair.key()).await?,
                    };
                    return existing.map(Inserted::AlreadyExists).ok_or_else(vanished);
                }
                let lookup = failed(&reasons, 1).flatten();
                self.owner_of(lookup, item).await?.map(Inserted::AlreadyExists).ok_or_else(vanished)
            }
        }
    }

    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        let key = pair.key();
        // One read tells which lookup item the stored version owns; the version condition below makes
        // sure nothing changed between this read and the write.
        let Some(current) = self.pair_at(&key).await? else {
            return Ok(Replaced::Stale(None));
        };
        if current.version != pair.version {
            return Ok(Replaced::Stale(Some(current)));
        }
        let mut next = pair.clone();
        next.version = pair.version + 1;
        let put = self.pair_put(&next, PairCondition::Version(pair.version))?;
        let old_index = current.item.as_ref().map(DevItemRef::index_key);
        let new_index = pair.item.as_ref().map(DevItemRef::index_key);

        if old_index == new_index {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(pair.version))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Replaced::Replaced(next.version)),
                Err(e) => match conditional_put_old(e)? {
                    Some(old) => Ok(Replaced::Stale(Some(decode(&old, "pair")?))),
                    None => Ok(Replaced::Stale(self.pair_at(&key).await?)),
                },
            };
        }

        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        if let Some(item) = &pair.item {
            actions.push(TransactWriteItem::builder().put(self.lookup_put(item, &key)?).build());
        }
        if let Some(old) = &current.item {
            // The item changed or was dropped: the old lookup must not keep pointing here.
            actions.push(TransactWriteItem::builder().delete(self.lookup_delete(old, &key)?).build());
        }
        match self.transact(actions).await? {
            Ok(()) => Ok(Replaced::Replaced(next.version)),
            Err(reasons) => match failed(&reasons, 0) {
                Some(Some(old)) => Ok(Replaced::Stale(Some(decode(old, "pair")?))),
                Some(None) => Ok(Replaced::Stale(self.pair_at(&key).await?)),
                // The version held, so the pair we read is current; the item belongs to another pair.
                None => Ok(Replaced::Stale(Some(current))),
            },
        }
    }

    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        self.pair_at(key).await
    }

    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        let Some(current) = self.pair_at(key).await? else { return Ok(false) };
        if current.version != version {
            return Ok(false);
        }
        let pair_delete = || {
            Delete::builder()
                .table_name(&self.table)
                .key(PK, s(pair_pk(&key.route, key.todo)))
                .key(SK, s(PAIR_SK))
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(version))
                .build()
                .context("failed to describe a pair delete")
        };
        let mut actions = vec![TransactWriteItem::builder().delete(pair_delete()?).build()];
        if let Some(item) = &current.item {
            // Only a lookup that still names this pair goes with it.
            actions.push(TransactWriteItem::builder().delete(self.lookup_delete(item, key)?).build());
        }
        match self.transact(actions).await? {
            Ok(()) => Ok(true),
            Err(reasons) if failed(&reasons, 0).is_some() => Ok(false),
            // The lookup belongs to another pair now: delete the pair alone.
            Err(_) => match self.transact(vec![TransactWriteItem::builder().delete(pair_delete()?).build()]).await? {
                Ok(()) => Ok(true),
                Err(_) => Ok(false),
            },
        }
    }

    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        let found = self.owner_of(None, item).await?;
        // A lookup is only trusted while its pair still names the item.
        Ok(found.filter(|p| p.item.as_ref().map(DevItemRef::index_key) == Some(item.index_key())))
    }

    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let states = match state {
            Some(s) => vec![s],
            None => vec![PairState::Pending, PairState::Linked],
        };
        let keep = |i: &Item| route.is_none_or(|r| i.get(ROUTE).and_then(|v| v.as_s().ok()) == Some(&r.0));
        let mut found = Vec::new();
        for st in states {
            for item in self.query_index(&pairs_partition(st), true, limit, keep).await? {
                let sort = string(&item, GSI1SK)?;
                found.push((sort, decode::<Pair>(&item, "pair")?));
            }
        }
        // Each state's partition is sorted by creation time; merge them the same way.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().take(limit).map(|(_, p)| p).collect())
    }
}

#[async_trait]
impl DeliveryLog for DynamoStore {
    async fn claim(&self, id: &DeliveryId, now: DateTime<Utc>, lease: Duration) -> Result<DeliveryClaim, StoreError> {
        let until = later(now, lease)?;
        let record = HashMap::from([
            (PK.to_owned(), s(delivery_pk(id))),
            (SK.to_owned(), s(DELIVERY_SK)),
            (STATUS.to_owned(), s(IN_PROGRESS)),
            (IN_PROGRESS_UNTIL.to_owned(), n(until.timestamp_micros())),
            // An abandoned claim is worth keeping only until its lease ends.
            (EXPIRES_AT_US.to_owned(), n(until.timestamp_micros())),
            (EXPIRES_AT.to_owned(), n(ttl_seconds(until))),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            // The Powertools idempotency condition: absent, expired, or in progress past its lease.
            .condition_expression(
                "attribute_not_exists(#pk) OR #exp <= :now OR (#status = :in_progress AND #until <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_AT_US)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#until", IN_PROGRESS_UNTIL)
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(DeliveryClaim::Claimed),
            Err(e) => match conditional_put_old(e)? {
                Some(old) => old,
                None => self.get_item(delivery_pk(id), DELIVERY_SK).await?.ok_or_else(vanished)?,
            },
        };
        if string(&old, STATUS)? == COMPLETED {
            return Ok(DeliveryClaim::Completed);
        }
        Ok(DeliveryClaim::InProgress { until: micros_to_time(number(&old, IN_PROGRESS_UNTIL)?)? })
    }

    async fn complete(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError> {
        let expires_at = later(now, retention)?;
        let record = HashMap::from([
            (PK.to_owned(), s(delivery_pk(id))),
            (SK.to_owned(), s(DELIVERY_SK)),
            (STATUS.to_owned(), s(COMPLETED)),
            (EXPIRES_AT_US.to_owned(), n(expires_at.timestamp_micros())),
            (EXPIRES_AT.to_owned(), n(ttl_seconds(expires_at))),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            // Completing a live completed record again must not extend its retention.
            .condition_expression("attribute_not_exists(#pk) OR #status <> :completed OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#exp", EXPIRES_AT_US)
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => conditional_put_old(e).map(|_| ()),
        }
    }

    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(delivery_pk(id)))
            .key(SK, s(DELIVERY_SK))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context("failed to release a delivery claim").into()),
        }
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let sort = order_key(entry.at);
        let record = HashMap::from([
            (PK.to_owned(), s(format!("AUDIT#{}", entry.subject))),
            (SK.to_owned(), s(sort.clone())),
            (GSI1PK.to_owned(), s(AUDIT_ALL)),
            (GSI1SK.to_owned(), s(sort)),
            (BODY.to_owned(), s(to_json(entry, "audit entry")?)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .send()
            .await
            .context("failed to record an audit entry")?;
        Ok(())
    }

    async fn recent(&self, subject: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let items = match subject {
            None => self.query_index(AUDIT_ALL, false, limit, |_| true).await?,
            Some(subject) => {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_values(":pk", s(format!("AUDIT#{subject}")))
                    .scan_index_forward(false)
                    .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
                    .consistent_read(true)
                    .send()
                    .await
                    .context("failed to list audit entries")?;
                out.items.unwrap_or_default()
            }
        };
        items.iter().take(limit).map(|i| decode(i, "audit entry")).collect()
    }
}

#[async_trait]
impl ConflictLog for DynamoStore {
    async fn record(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError> {
        let record = HashMap::from([
            (PK.to_owned(), s(format!("CONFLICT#{}", conflict.id))),
            (SK.to_owned(), s(CONFLICT_SK)),
            (GSI1PK.to_owned(), s(CONFLICTS_ALL)),
            (GSI1SK.to_owned(), s(order_key(conflict.at))),
            (OPEN.to_owned(), AttributeValue::Bool(conflict.resolution == Resolution::Open)),
            (RESOLUTION.to_owned(), s(to_json(&conflict.resolution, "resolution")?)),
            (BODY.to_owned(), s(to_json(conflict, "conflict")?)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Inserted::Inserted),
            Err(e) => {
                let old = match conditional_put_old(e)? {
                    Some(old) => old,
                    None => {
                        self.get_item(format!("CONFLICT#{}", conflict.id), CONFLICT_SK).await?.ok_or_else(vanished)?
                    }
                };
                Ok(Inserted::AlreadyExists(decode_conflict(&old)?))
            }
        }
    }

    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Conflict>, StoreError> {
        let keep = |i: &Item| !open_only || i.get(OPEN).and_then(|v| v.as_bool().ok()) == Some(&true);
        let items = self.query_index(CONFLICTS_ALL, false, limit, keep).await?;
        items.iter().map(decode_conflict).collect()
    }

    async fn resolve(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("CONFLICT#{id}")))
            .key(SK, s(CONFLICT_SK))
            .update_expression("SET #open = :open, #res = :res")
            .condition_expression("#open = :true")
            .expression_attribute_names("#open", OPEN)
            .expression_attribute_names("#res", RESOLUTION)
            .expression_attribute_values(":open", AttributeValue::Bool(resolution == Resolution::Open))
            .expression_attribute_values(":res", s(to_json(&resolution, "resolution")?))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context("failed to resolve a conflict").into()),
        }
    }
}

#[async_trait]
impl CursorStore for DynamoStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.get_item(cursor_pk(name), CURSOR_SK).await? {
            Some(item) => Ok(Some(micros_to_time(number(&item, AT_US)?)?)),
            None => Ok(None),
        }
    }

    async fn advance(&self, name: &str, to: DateTime<Utc>) -> Result<bool, StoreError> {
        let record = HashMap::from([
            (PK.to_owned(), s(cursor_pk(name))),
            (SK.to_owned(), s(CURSOR_SK)),
            (AT_US.to_owned(), n(to.timestamp_micros())),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(#pk) OR #at < :to")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#at", AT_US)
            .expression_attribute_values(":to", n(to.timestamp_micros()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context("failed to advance a cursor").into()),
        }
    }
}

// ---- encoding ------------------------------------------------------------------------------------------

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn pair_pk(route: &RouteId, todo: TodoId) -> String {
    format!("PAIR#{route}#{}", todo.0)
}

fn item_pk(item: &DevItemRef) -> String {
    format!("ITEM#{}", item.index_key())
}

fn delivery_pk(id: &DeliveryId) -> String {
    format!("DELIVERY#{id}")
}

fn cursor_pk(name: &str) -> String {
    format!("CURSOR#{name}")
}

fn pairs_partition(state: PairState) -> String {
    format!("PAIRS#{}", state.as_str())
}

/// RFC 3339 with fixed microsecond precision sorts as text in time order (years 0000–9999).
fn sortable_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A sort key for time-ordered listings: the record's time, then when it was written, so that among
/// equal times the later-recorded record sorts later (as the ports' "newest first" asks).
fn order_key(at: DateTime<Utc>) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let written = Utc::now().timestamp_micros();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}#{written:020}#{n:06}", sortable_time(at))
}

fn ttl_seconds(t: DateTime<Utc>) -> i64 {
    let secs = t.timestamp();
    if t.timestamp_subsec_nanos() > 0 { secs + 1 } else { secs }
}

fn pair_item(pair: &Pair) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(pair_pk(&pair.route, pair.todo))),
        (SK.to_owned(), s(PAIR_SK)),
        (GSI1PK.to_owned(), s(pairs_partition(pair.state))),
        (GSI1SK.to_owned(), s(format!("{}#{}#{:020}", sortable_time(pair.created_at), pair.route, pair.todo.0))),
        (ROUTE.to_owned(), s(pair.route.as_str())),
        (TODO.to_owned(), n(pair.todo.0)),
        (STATE.to_owned(), s(pair.state.as_str())),
        (VERSION.to_owned(), n(pair.version)),
        (BODY.to_owned(), s(to_json(pair, "pair")?)),
    ]);
    if let Some(i) = &pair.item {
        item.insert("item_key".to_owned(), s(i.index_key()));
    }
    Ok(item)
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value).with_context(|| format!("failed to encode {what}"))?)
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let body = string(item, BODY)?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode_conflict(item: &Item) -> Result<Conflict, StoreError> {
    let mut conflict: Conflict = decode(item, "conflict")?;
    if let Some(AttributeValue::S(r)) = item.get(RESOLUTION) {
        conflict.resolution =
            serde_json::from_str(r).map_err(|e| StoreError::Corrupt(format!("conflict resolution: {e}")))?;
    }
    Ok(conflict)
}

fn string(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!("attribute {name} is missing or not a string"))),
    }
}

fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => {
            v.parse().map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer")))
        }
        _ => Err(StoreError::Corrupt(format!("attribute {name} is missing or not a number"))),
    }
}

fn micros_to_time(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} is out of range")))
}

/// A conditional `PutItem` failure → the item that failed the check (`ALL_OLD`; `None` if the service
/// sent none back, or the item did not exist); any other error is passed on.
fn conditional_put_old(
    e: SdkError<PutItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Result<Option<Item>, StoreError> {
    match e.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(c)) => Ok(c.item().cloned()),
        _ => Err(anyhow::Error::new(e).context("failed to write an item").into()),
    }
}

/// Whether action `index` of a cancelled transaction failed its condition, and the old item if returned.
fn failed(reasons: &[CancellationReason], index: usize) -> Option<Option<&Item>> {
    reasons.get(index).filter(|r| r.code() == Some("ConditionalCheckFailed")).map(|r| r.item())
}

/// A condition failed on a record that is gone by the time we read it: only a concurrent delete does
/// that, and only `PairStore::remove` (selftest's cleanup of its own sandbox pairs) deletes a pair.
fn vanished() -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("a record that failed a write condition was gone when read back"))
}

fn rand_u8() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}
