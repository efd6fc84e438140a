//! The port contract suite: every adapter of a port passes the same tests.
//!
//! Each property is a public async function taking a fresh [`Fixture`] (the adapter behind the port's
//! trait object, plus the [`ManualClock`] the adapter reads), so the memory, SQLite and cloud adapters all
//! run the very same checks. The `*_contract_tests!` macros expand to one `#[tokio::test]` per property,
//! named as a sentence; an adapter's test module invokes them with an expression that builds a fresh
//! fixture (it is evaluated once per test and may contain `.await`):
//!
//! ```text
//! mod memory_pairs {
//!     shared::pair_store_contract_tests!(shared::testkit::contract::Fixture::new(
//!         std::sync::Arc::new(MemoryPairStore::new()),
//!         clock(),
//!     ));
//! }
//! ```
//!
//! Properties that move time ([`ManualClock::advance`]) need an adapter that reads the fixture's clock;
//! `DeliveryLog` properties pass times explicitly, as its trait does. Failures panic with a message that
//! says which expectation broke.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::memory::ManualClock;
use crate::domain::{
    DeliveryId, DevItemRef, Field, JiraIssueId, JiraKey, Lease, Pair, PairKey, PairState, ProjectId, RouteId, TodoId,
};
use crate::ports::{
    AuditEntry, AuditLog, Clock, Conflict, ConflictLog, CursorStore, DeliveryClaim, DeliveryLog, Inserted, JobQueue,
    PairStore, Received, Replaced, Resolution, SecretError, SecretStore, Sent,
};

/// A fresh adapter behind its port, and the clock it reads.
pub struct Fixture<P: ?Sized> {
    pub port: Arc<P>,
    pub clock: Arc<ManualClock>,
}

impl<P: ?Sized> Fixture<P> {
    pub fn new(port: Arc<P>, clock: Arc<ManualClock>) -> Self {
        Self { port, clock }
    }
}

/// A fresh queue, its clock, and the max-receive count it was built with.
pub struct QueueFixture {
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<ManualClock>,
    pub max_receives: u32,
}

/// A clock at [`super::at`]`(0)`, the instant every contract starts from.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(super::at(0)))
}

// ---- helpers -------------------------------------------------------------------------------------------

/// Unwraps a result in a contract check, panicking with what was being done.
fn ok<T, E: Debug>(r: Result<T, E>, doing: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{doing} failed: {e:?}"),
    }
}

const LEASE: Duration = Duration::from_secs(30);

fn route(id: &str) -> RouteId {
    RouteId(id.to_owned())
}

/// A PENDING pair for `todo` on `route`, leased to `owner` for 30 s from `now`.
pub fn pending_pair(route_id: &str, todo: i64, owner: &str, now: DateTime<Utc>) -> Pair {
    let until = now + chrono::Duration::seconds(30);
    Pair::pending(route(route_id), ProjectId(2_085_958_505), TodoId(todo), owner, now, until)
}

/// Jira issue `id` with key `WEB-<id - 10000>`.
pub fn jira_item(id: u32) -> DevItemRef {
    let issue = ok(JiraIssueId::parse(&id.to_string()), "parse a Jira issue id");
    let key = ok(JiraKey::parse(&format!("WEB-{}", id.saturating_sub(10_000).max(1))), "parse a Jira key");
    DevItemRef::Jira { id: issue, key }
}

/// `pair` linked to `item`, lease dropped.
fn linked(pair: &Pair, item: DevItemRef) -> Pair {
    Pair { item: Some(item), state: PairState::Linked, lease: None, ..pair.clone() }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn insert_ok(store: &dyn PairStore, pair: &Pair) {
    match ok(store.insert(pair).await, "insert") {
        Inserted::Inserted => {}
        other => panic!("a fresh insert should succeed, got {other:?}"),
    }
}

async fn replace_ok(store: &dyn PairStore, pair: &Pair) -> u64 {
    match ok(store.replace(pair).await, "replace") {
        Replaced::Replaced(v) => v,
        other => panic!("a replace at the current version should succeed, got {other:?}"),
    }
}

async fn stored(store: &dyn PairStore, key: &PairKey) -> Pair {
    match ok(store.get(key).await, "get") {
        Some(p) => p,
        None => panic!("pair {key} should be stored"),
    }
}

// ---- PairStore -----------------------------------------------------------------------------------------

/// An inserted pair reads back unchanged; unknown keys and items read as `None`.
pub async fn pair_insert_then_get(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let pair = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    assert_eq!(ok(store.get(&pair.key()).await, "get before insert"), None);
    insert_ok(store, &pair).await;
    assert_eq!(stored(store, &pair.key()).await, pair);
    let other = PairKey { route: route("web"), todo: TodoId(1) };
    assert_eq!(ok(store.get(&other).await, "get unknown"), None);
    assert_eq!(ok(store.find_by_item(&jira_item(10_002)).await, "find unknown item"), None);
}

/// A second insert for the same (route, to-do) changes nothing and hands back the stored pair.
pub async fn pair_duplicate_insert_returns_the_stored_pair(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let first = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    insert_ok(store, &first).await;
    let second = pending_pair("web", 1_069_480_015, "worker-b", f.clock.now());
    assert_eq!(ok(store.insert(&second).await, "second insert"), Inserted::AlreadyExists(first.clone()));
    assert_eq!(stored(store, &first.key()).await, first);
    // The same to-do on another route is another pair.
    insert_ok(store, &pending_pair("api", 1_069_480_015, "worker-b", f.clock.now())).await;
}

/// Eight concurrent inserts of one pair: exactly one `Inserted`. Then eight concurrent replaces at the
/// same version: exactly one `Replaced`, every loser `Stale` with the winner's pair.
pub async fn pair_racing_writers_have_exactly_one_winner(f: Fixture<dyn PairStore>) {
    const WRITERS: usize = 8;
    let now = f.clock.now();
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, barrier) = (Arc::clone(&f.port), Arc::clone(&barrier));
        let pair = pending_pair("web", 1_069_480_015, &format!("worker-{i}"), now);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.insert(&pair).await
        }));
    }
    let mut inserted = 0;
    let mut losers = Vec::new();
    for t in tasks {
        match ok(ok(t.await, "join insert task"), "racing insert") {
            Inserted::Inserted => inserted += 1,
            Inserted::AlreadyExists(p) => losers.push(p),
        }
    }
    assert_eq!(inserted, 1, "exactly one racing insert wins");
    let key = PairKey { route: route("web"), todo: TodoId(1_069_480_015) };
    let winner = stored(&*f.port, &key).await;
    assert!(losers.iter().all(|p| *p == winner), "every losing insert sees the winner's pair");

    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, barrier) = (Arc::clone(&f.port), Arc::clone(&barrier));
        let mut pair = winner.clone();
        pair.lease = Some(Lease { owner: format!("replacer-{i}"), until: now + chrono::Duration::seconds(60) });
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.replace(&pair).await
        }));
    }
    let mut replaced = 0;
    let mut stale = Vec::new();
    for t in tasks {
        match ok(ok(t.await, "join replace task"), "racing replace") {
            Replaced::Replaced(v) => {
                assert_eq!(v, winner.version + 1);
                replaced += 1;
            }
            Replaced::Stale(p) => stale.push(p),
        }
    }
    assert_eq!(replaced, 1, "exactly one racing replace wins");
    let after = stored(&*f.port, &key).await;
    assert_eq!(after.version, winner.version + 1);
    assert!(stale.iter().all(|p| p.as_ref() == Some(&after)), "every losing replace sees the winner's pair");
}

/// A replace bumps the version by one; a replace at an older version is `Stale` with the current pair,
/// and retrying it unchanged stays `Stale`. Replacing a pair that does not exist is `Stale(None)`.
pub async fn pair_replace_bumps_the_version_and_rejects_stale_versions(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let pair = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    insert_ok(store, &pair).await;
    let mut v1 = pair.clone();
    v1.snapshot.todo.title = "Fix the login page".into();
    assert_eq!(replace_ok(store, &v1).await, 1);
    let current = stored(store, &pair.key()).await;
    assert_eq!(current, Pair { version: 1, ..v1.clone() });

    let mut old = pair.clone();
    old.snapshot.todo.title = "Something else".into();
    assert_eq!(ok(store.replace(&old).await, "stale replace"), Replaced::Stale(Some(current.clone())));
    assert_eq!(ok(store.replace(&old).await, "stale retry"), Replaced::Stale(Some(current.clone())));
    assert_eq!(stored(store, &pair.key()).await, current);

    let mut next = current.clone();
    next.snapshot.todo.title = "Fix the login page, again".into();
    assert_eq!(replace_ok(store, &next).await, 2);

    let missing = pending_pair("web", 42, "worker-a", f.clock.now());
    assert_eq!(ok(store.replace(&missing).await, "replace missing"), Replaced::Stale(None));
    assert_eq!(ok(store.get(&missing.key()).await, "get missing"), None);
}

/// Linking a pair to an item makes it findable by the item; pairs are listed with their items.
pub async fn pair_a_linked_pair_is_found_by_its_item(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let pair = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    insert_ok(store, &pair).await;
    let item = jira_item(10_002);
    assert_eq!(ok(store.find_by_item(&item).await, "find before link"), None);
    replace_ok(store, &linked(&pair, item.clone())).await;
    let found = ok(store.find_by_item(&item).await, "find after link");
    assert_eq!(found.as_ref().map(Pair::key), Some(pair.key()));
    assert_eq!(found.map(|p| p.version), Some(1));
    // A later replace keeps the lookup pointing at the pair's newest version.
    let current = stored(store, &pair.key()).await;
    replace_ok(store, &Pair { snapshot: Default::default(), ..current }).await;
    assert_eq!(ok(store.find_by_item(&item).await, "find after update").map(|p| p.version), Some(2));
}

/// An item linked to one pair cannot be linked to a second: that replace is `Stale` with the second
/// pair's current state, writes nothing, and the lookup keeps pointing at the first pair.
pub async fn pair_an_item_cannot_be_linked_to_two_pairs(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let now = f.clock.now();
    let first = pending_pair("web", 1_069_480_015, "worker-a", now);
    let second = pending_pair("web", 1_069_480_016, "worker-b", now);
    insert_ok(store, &first).await;
    insert_ok(store, &second).await;
    let item = jira_item(10_002);
    replace_ok(store, &linked(&first, item.clone())).await;

    assert_eq!(
        ok(store.replace(&linked(&second, item.clone())).await, "steal the item"),
        Replaced::Stale(Some(second.clone()))
    );
    assert_eq!(stored(store, &second.key()).await, second, "the losing pair is unchanged");
    let owner = ok(store.find_by_item(&item).await, "find the item");
    assert_eq!(owner.map(|p| p.key()), Some(first.key()));

    // A pair with a different item links fine.
    replace_ok(store, &linked(&second, jira_item(10_003))).await;
}

/// A PENDING pair whose lease has run out is taken over by a second owner at the current version; the
/// first owner's late replace at the old version is `Stale` with the new owner's pair.
pub async fn pair_an_expired_lease_is_taken_over(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let pair = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    insert_ok(store, &pair).await;

    f.clock.advance(LEASE + secs(1));
    let now = f.clock.now();
    let seen = stored(store, &pair.key()).await;
    assert!(seen.lease_expired(now), "the first owner's lease has run out");
    let takeover =
        Pair { lease: Some(Lease { owner: "worker-b".into(), until: now + chrono::Duration::seconds(30) }), ..seen };
    assert_eq!(replace_ok(store, &takeover).await, 1);

    // worker-a wakes up and records the item it created, at the version it last saw.
    let late = linked(&pair, jira_item(10_002));
    let current = stored(store, &pair.key()).await;
    assert_eq!(current.lease.as_ref().map(|l| l.owner.as_str()), Some("worker-b"));
    assert_eq!(ok(store.replace(&late).await, "late replace"), Replaced::Stale(Some(current.clone())));
    assert_eq!(ok(store.find_by_item(&jira_item(10_002)).await, "find late item"), None);
    assert_eq!(stored(store, &pair.key()).await, current);
}

/// `remove` deletes a pair only at its current version, with its item lookup; the to-do can be paired
/// afresh and the item linked to another pair afterwards.
pub async fn pair_remove_deletes_at_the_current_version_only(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let pair = pending_pair("web", 1_069_480_015, "worker-a", f.clock.now());
    insert_ok(store, &pair).await;
    let item = jira_item(10_002);
    replace_ok(store, &linked(&pair, item.clone())).await;
    assert!(!ok(store.remove(&pair.key(), 0).await, "remove at an old version"), "a stale version removes nothing");
    assert_eq!(stored(store, &pair.key()).await.version, 1);
    assert!(ok(store.remove(&pair.key(), 1).await, "remove at the current version"));
    assert_eq!(ok(store.get(&pair.key()).await, "get removed"), None);
    assert_eq!(ok(store.find_by_item(&item).await, "find removed"), None, "the item lookup went with it");
    assert!(!ok(store.remove(&pair.key(), 1).await, "remove twice"), "nothing left to remove");
    // The item can belong to another pair now, and the to-do can be paired again.
    let other = pending_pair("web", 1_069_480_016, "worker-b", f.clock.now());
    insert_ok(store, &other).await;
    replace_ok(store, &linked(&other, item.clone())).await;
    assert_eq!(ok(store.find_by_item(&item).await, "find relinked").map(|p| p.key()), Some(other.key()));
    insert_ok(store, &pair).await;
}

/// `list` filters by route and state, returns the oldest first and honours the limit.
pub async fn pair_list_filters_by_state_and_route_oldest_first(f: Fixture<dyn PairStore>) {
    let store = &*f.port;
    let mut expected_web_pending = Vec::new();
    let mut expected_web_linked = Vec::new();
    // Inserted newest-first on purpose so that insertion order differs from age order.
    for (i, (route_id, todo)) in [("web", 5), ("api", 4), ("web", 3), ("web", 2), ("api", 1)].into_iter().enumerate() {
        let created = f.clock.now() - chrono::Duration::seconds(i as i64 * 10);
        let pair = pending_pair(route_id, todo, "worker-a", created);
        insert_ok(store, &pair).await;
        if route_id == "web" && todo == 3 {
            replace_ok(store, &linked(&pair, jira_item(10_003))).await;
            expected_web_linked.push(stored(store, &pair.key()).await);
        } else if route_id == "web" {
            expected_web_pending.push(pair);
        }
    }
    expected_web_pending.reverse();
    let web = route("web");
    let listed = ok(store.list(Some(&web), Some(PairState::Pending), 10).await, "list web pending");
    assert_eq!(listed, expected_web_pending, "pending pairs of route web, oldest first");
    let listed = ok(store.list(Some(&web), Some(PairState::Linked), 10).await, "list web linked");
    assert_eq!(listed, expected_web_linked);
    let all = ok(store.list(None, None, 10).await, "list all");
    let todos: Vec<i64> = all.iter().map(|p| p.todo.0).collect();
    assert_eq!(todos, vec![1, 2, 3, 4, 5], "all pairs, oldest first");
    let pending = ok(store.list(None, Some(PairState::Pending), 2).await, "list pending with a limit");
    assert_eq!(pending.iter().map(|p| p.todo.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(ok(store.list(Some(&route("nope")), None, 10).await, "list unknown route"), Vec::new());
}

/// Expands to one test per [`PairStore`] property; `$make` builds a fresh `Fixture<dyn PairStore>`.
#[macro_export]
macro_rules! pair_store_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_inserted_pair_reads_back_unchanged() {
            $crate::testkit::contract::pair_insert_then_get($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_duplicate_insert_returns_the_stored_pair() {
            $crate::testkit::contract::pair_duplicate_insert_returns_the_stored_pair($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_writers_for_one_pair_have_exactly_one_winner() {
            $crate::testkit::contract::pair_racing_writers_have_exactly_one_winner($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_replace_bumps_the_version_and_a_stale_version_is_rejected() {
            $crate::testkit::contract::pair_replace_bumps_the_version_and_rejects_stale_versions($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_linked_pair_is_found_by_its_item() {
            $crate::testkit::contract::pair_a_linked_pair_is_found_by_its_item($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_item_linked_to_one_pair_cannot_be_linked_to_another() {
            $crate::testkit::contract::pair_an_item_cannot_be_linked_to_two_pairs($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_expired_lease_is_taken_over_and_the_first_owner_goes_stale() {
            $crate::testkit::contract::pair_an_expired_lease_is_taken_over($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_pair_is_removed_only_at_its_current_version_with_its_item_lookup() {
            $crate::testkit::contract::pair_remove_deletes_at_the_current_version_only($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn pairs_are_listed_by_state_and_route_oldest_first() {
            $crate::testkit::contract::pair_list_filters_by_state_and_route_oldest_first($make).await;
        }
    };
}

// ---- DeliveryLog ---------------------------------------------------------------------------------------

fn delivery(n: u32) -> DeliveryId {
    DeliveryId::jira(&format!("0a7d3e5c-{n:04}"))
}

async fn claim(log: &dyn DeliveryLog, id: &DeliveryId, now: DateTime<Utc>) -> DeliveryClaim {
    ok(log.claim(id, now, LEASE).await, "claim")
}

const RETENTION: Duration = Duration::from_secs(3600);

/// A new delivery is claimed; a second claim during the lease is `InProgress` until the lease's end.
pub async fn delivery_a_claim_is_exclusive_while_in_progress(f: Fixture<dyn DeliveryLog>) {
    let log = &*f.port;
    let now = f.clock.now();
    assert_eq!(claim(log, &delivery(1), now).await, DeliveryClaim::Claimed);
    let until = now + chrono::Duration::seconds(30);
    assert_eq!(claim(log, &delivery(1), now).await, DeliveryClaim::InProgress { until });
    assert_eq!(
        claim(log, &delivery(1), now + chrono::Duration::seconds(29)).await,
        DeliveryClaim::InProgress { until }
    );
    assert_eq!(claim(log, &delivery(2), now).await, DeliveryClaim::Claimed, "another delivery is independent");
}

/// Eight concurrent claims of one delivery: exactly one is `Claimed`.
pub async fn delivery_racing_claims_have_exactly_one_winner(f: Fixture<dyn DeliveryLog>) {
    const WORKERS: usize = 8;
    let now = f.clock.now();
    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (log, barrier) = (Arc::clone(&f.port), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            log.claim(&delivery(1), now, LEASE).await
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        match ok(ok(t.await, "join claim task"), "racing claim") {
            DeliveryClaim::Claimed => claimed += 1,
            DeliveryClaim::InProgress { .. } => {}
            DeliveryClaim::Completed => panic!("nobody completed the delivery"),
        }
    }
    assert_eq!(claimed, 1, "exactly one racing claim wins");
}

/// A completed delivery is `Completed` until its retention passes, then claimable again. Completing it a
/// second time does not extend the retention.
pub async fn delivery_a_completed_delivery_is_skipped_until_retention_passes(f: Fixture<dyn DeliveryLog>) {
    let log = &*f.port;
    let t0 = f.clock.now();
    let id = delivery(1);
    assert_eq!(claim(log, &id, t0).await, DeliveryClaim::Claimed);
    ok(log.complete(&id, t0, RETENTION).await, "complete");
    assert_eq!(claim(log, &id, t0).await, DeliveryClaim::Completed);
    let half = t0 + chrono::Duration::seconds(1800);
    ok(log.complete(&id, half, RETENTION).await, "complete again");
    ok(log.release(&id).await, "release a completed delivery");
    assert_eq!(claim(log, &id, half).await, DeliveryClaim::Completed, "release does not undo completion");
    let almost = t0 + chrono::Duration::seconds(3599);
    assert_eq!(claim(log, &id, almost).await, DeliveryClaim::Completed);
    let expired = t0 + chrono::Duration::seconds(3600);
    assert_eq!(claim(log, &id, expired).await, DeliveryClaim::Claimed, "claimable once retention has passed");
}

/// A claim abandoned in progress (its worker died) is claimable once its lease has run out.
pub async fn delivery_an_abandoned_claim_is_taken_over_after_its_lease(f: Fixture<dyn DeliveryLog>) {
    let log = &*f.port;
    let t0 = f.clock.now();
    let id = delivery(1);
    assert_eq!(claim(log, &id, t0).await, DeliveryClaim::Claimed);
    let later = t0 + chrono::Duration::seconds(30);
    assert_eq!(claim(log, &id, later).await, DeliveryClaim::Claimed);
    let until = later + chrono::Duration::seconds(30);
    assert_eq!(claim(log, &id, later).await, DeliveryClaim::InProgress { until }, "the new claim holds a new lease");
}

/// A released claim is claimable at once; releasing an unknown id is a no-op.
pub async fn delivery_a_released_claim_is_claimable_at_once(f: Fixture<dyn DeliveryLog>) {
    let log = &*f.port;
    let now = f.clock.now();
    let id = delivery(1);
    assert_eq!(claim(log, &id, now).await, DeliveryClaim::Claimed);
    ok(log.release(&id).await, "release");
    assert_eq!(claim(log, &id, now).await, DeliveryClaim::Claimed);
    ok(log.release(&delivery(99)).await, "release unknown");
    assert_eq!(claim(log, &delivery(99), now).await, DeliveryClaim::Claimed);
}

/// Expands to one test per [`DeliveryLog`] property; `$make` builds a fresh `Fixture<dyn DeliveryLog>`.
#[macro_export]
macro_rules! delivery_log_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_claimed_delivery_is_in_progress_for_everyone_else() {
            $crate::testkit::contract::delivery_a_claim_is_exclusive_while_in_progress($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_claims_of_one_delivery_have_exactly_one_winner() {
            $crate::testkit::contract::delivery_racing_claims_have_exactly_one_winner($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_completed_delivery_is_skipped_until_its_retention_passes() {
            $crate::testkit::contract::delivery_a_completed_delivery_is_skipped_until_retention_passes($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_abandoned_claim_is_taken_over_after_its_lease() {
            $crate::testkit::contract::delivery_an_abandoned_claim_is_taken_over_after_its_lease($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_released_claim_is_claimable_at_once() {
            $crate::testkit::contract::delivery_a_released_claim_is_claimable_at_once($make).await;
        }
    };
}

// ---- JobQueue ------------------------------------------------------------------------------------------

const VISIBILITY: Duration = Duration::from_secs(30);

async fn send(q: &dyn JobQueue, group: &str, dedup: &str, body: &str) -> Sent {
    ok(q.send(group, dedup, body).await, "send")
}

async fn receive(q: &dyn JobQueue, max: usize) -> Vec<Received> {
    ok(q.receive(max, VISIBILITY).await, "receive")
}

fn bodies(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.body.as_str()).collect()
}

async fn depth(q: &dyn JobQueue) -> u64 {
    ok(q.depth().await, "depth")
}

/// Messages come out oldest first, in send order within a group, and one receive may hand out several
/// messages of one group in order (as SQS FIFO does).
pub async fn queue_messages_come_out_oldest_first(f: QueueFixture) {
    let q = &*f.queue;
    assert_eq!(send(q, "bc-todo-1", "d1", "a1").await, Sent::Enqueued);
    assert_eq!(send(q, "bc-todo-2", "d2", "b1").await, Sent::Enqueued);
    assert_eq!(send(q, "bc-todo-1", "d3", "a2").await, Sent::Enqueued);
    assert_eq!(send(q, "bc-todo-1", "d4", "a3").await, Sent::Enqueued);
    let got = receive(q, 10).await;
    assert_eq!(bodies(&got), vec!["a1", "b1", "a2", "a3"]);
    assert!(got.iter().all(|r| r.receive_count == 1));
    assert_eq!(
        got.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(),
        vec!["bc-todo-1", "bc-todo-2", "bc-todo-1", "bc-todo-1"]
    );
    let mut ids: Vec<&str> = got.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "message ids are unique");
}

/// While a group has a message in flight it hands out nothing else, and other groups carry on.
pub async fn queue_a_group_in_flight_blocks_only_itself(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    send(q, "bc-todo-1", "d2", "a2").await;
    send(q, "bc-todo-2", "d3", "b1").await;
    let first = receive(q, 1).await;
    assert_eq!(bodies(&first), vec!["a1"]);
    let second = receive(q, 10).await;
    assert_eq!(bodies(&second), vec!["b1"], "group 1 is blocked while a1 is in flight; group 2 is not");
    assert_eq!(receive(q, 10).await, Vec::new(), "both groups are in flight");
    for r in first.iter().chain(&second) {
        ok(q.delete(&r.receipt).await, "delete");
    }
    assert_eq!(bodies(&receive(q, 10).await), vec!["a2"], "deleting a1 unblocks its group");
}

/// A message that is not deleted becomes visible again when its visibility timeout ends, with its
/// receive count incremented, and its group stays blocked until then.
pub async fn queue_an_unacknowledged_message_becomes_visible_again(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    send(q, "bc-todo-1", "d2", "a2").await;
    assert_eq!(bodies(&receive(q, 1).await), vec!["a1"]);
    f.clock.advance(VISIBILITY - secs(1));
    assert_eq!(receive(q, 10).await, Vec::new(), "still in flight");
    f.clock.advance(secs(1));
    let again = receive(q, 1).await;
    assert_eq!(bodies(&again), vec!["a1"], "a1 comes back before a2");
    assert_eq!(again.first().map(|r| r.receive_count), Some(2));
    assert_eq!(depth(q).await, 2);
}

/// `change_visibility` delays a received message (and its group) by the given time; zero makes it visible
/// at once.
pub async fn queue_change_visibility_delays_a_message(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    let got = receive(q, 1).await;
    let receipt = got.first().map(|r| r.receipt.clone()).unwrap_or_default();
    ok(q.change_visibility(&receipt, Duration::ZERO).await, "change visibility to now");
    let again = receive(q, 1).await;
    assert_eq!(bodies(&again), vec!["a1"], "visible at once");
    let receipt = again.first().map(|r| r.receipt.clone()).unwrap_or_default();
    ok(q.change_visibility(&receipt, secs(120)).await, "delay by 120 s (a Retry-After)");
    f.clock.advance(VISIBILITY + secs(1));
    assert_eq!(receive(q, 1).await, Vec::new(), "the delay outlasts the original visibility timeout");
    f.clock.advance(secs(90));
    let third = receive(q, 1).await;
    assert_eq!(bodies(&third), vec!["a1"]);
    assert_eq!(third.first().map(|r| r.receive_count), Some(3));
}

/// A deleted message is gone for good; depth counts waiting and in-flight messages.
pub async fn queue_delete_removes_a_message_and_depth_counts_the_rest(f: QueueFixture) {
    let q = &*f.queue;
    assert_eq!(depth(q).await, 0);
    send(q, "bc-todo-1", "d1", "a1").await;
    send(q, "bc-todo-2", "d2", "b1").await;
    send(q, "bc-todo-3", "d3", "c1").await;
    assert_eq!(depth(q).await, 3);
    let got = receive(q, 2).await;
    assert_eq!(depth(q).await, 3, "in-flight messages still count");
    for r in &got {
        ok(q.delete(&r.receipt).await, "delete");
    }
    assert_eq!(depth(q).await, 1);
    f.clock.advance(VISIBILITY + secs(1));
    assert_eq!(bodies(&receive(q, 10).await), vec!["c1"], "deleted messages never come back");
    ok(q.delete("no-such-receipt").await, "delete with an unknown receipt");
    assert_eq!(depth(q).await, 1);
}

/// Once a message has been received again, the earlier receipt is stale: deleting or delaying with it
/// does nothing.
pub async fn queue_a_stale_receipt_is_a_no_op(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    let first = receive(q, 1).await;
    let old = first.first().map(|r| r.receipt.clone()).unwrap_or_default();
    f.clock.advance(VISIBILITY);
    let second = receive(q, 1).await;
    let new = second.first().map(|r| r.receipt.clone()).unwrap_or_default();
    assert_ne!(old, new, "each receive hands out a new receipt");
    ok(q.delete(&old).await, "delete with a stale receipt");
    assert_eq!(depth(q).await, 1, "a stale receipt deletes nothing");
    ok(q.change_visibility(&old, Duration::ZERO).await, "change visibility with a stale receipt");
    assert_eq!(receive(q, 1).await, Vec::new(), "a stale receipt does not make the message visible");
    ok(q.delete(&new).await, "delete with the current receipt");
    assert_eq!(depth(q).await, 0);
}

/// A send with a deduplication id already queued, or accepted within the last five minutes, is a
/// `Duplicate`; after the window, with the first message gone, the id is accepted again.
pub async fn queue_duplicate_sends_are_dropped(f: QueueFixture) {
    let q = &*f.queue;
    assert_eq!(send(q, "bc-todo-1", "basecamp:1", "first").await, Sent::Enqueued);
    assert_eq!(send(q, "bc-todo-1", "basecamp:1", "second").await, Sent::Duplicate);
    assert_eq!(send(q, "bc-todo-9", "basecamp:1", "other group").await, Sent::Duplicate);
    assert_eq!(depth(q).await, 1);
    let got = receive(q, 10).await;
    assert_eq!(bodies(&got), vec!["first"]);
    for r in &got {
        ok(q.delete(&r.receipt).await, "delete");
    }
    f.clock.advance(secs(4 * 60));
    assert_eq!(send(q, "bc-todo-1", "basecamp:1", "within window").await, Sent::Duplicate, "still in the window");
    f.clock.advance(secs(60));
    assert_eq!(send(q, "bc-todo-1", "basecamp:1", "after window").await, Sent::Enqueued);
    // Still queued past the window: a duplicate, because the first one exists.
    f.clock.advance(secs(10 * 60));
    assert_eq!(send(q, "bc-todo-1", "basecamp:1", "while queued").await, Sent::Duplicate);
    assert_eq!(depth(q).await, 1);
}

/// `enqueue` sends a job's wire form in its record's group, deduplicated by its delivery id.
pub async fn queue_an_enqueued_job_goes_to_its_records_group_once(f: QueueFixture) {
    let q = &*f.queue;
    let job = crate::domain::Job::TodoChanged {
        delivery: DeliveryId::basecamp(1_052_473_966),
        route: route("web"),
        project: ProjectId(2_085_958_505),
        todo: TodoId(9_007_199_254_741_210),
        event: "todo_created".into(),
        received_at: f.clock.now(),
    };
    assert_eq!(ok(q.enqueue(&job).await, "enqueue"), Sent::Enqueued);
    assert_eq!(ok(q.enqueue(&job).await, "enqueue again"), Sent::Duplicate, "the same delivery twice");
    let got = receive(q, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got.first().map(|r| r.group.as_str()), Some("bc-todo-9007199254741210"));
    assert_eq!(got.first().and_then(|r| crate::domain::Job::from_wire(&r.body).ok()), Some(job));
}

/// A message received `max_receives` times is dead-lettered by the next receive instead of returned; its
/// group moves on to the next message.
pub async fn queue_a_message_received_too_often_is_dead_lettered(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "poison").await;
    send(q, "bc-todo-1", "d2", "next").await;
    for n in 1..=f.max_receives {
        let got = receive(q, 1).await;
        assert_eq!(bodies(&got), vec!["poison"]);
        assert_eq!(got.first().map(|r| r.receive_count), Some(n));
        f.clock.advance(VISIBILITY);
    }
    let after = receive(q, 10).await;
    assert_eq!(bodies(&after), vec!["next"], "the poison message is not returned again");
    let dead = ok(q.dead_letters().await, "dead letters");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.group.as_str(), d.dedup_id.as_str(), d.body.as_str()), ("bc-todo-1", "d1", "poison"));
    assert_eq!(d.receive_count, f.max_receives);
    assert_eq!(d.dead_at, f.clock.now());
    assert_eq!(d.last_error, None, "the queue moved it: no attempt finished to say why");
    assert_eq!(depth(q).await, 1, "dead letters do not count in depth");
}

/// `requeue` replaces a received message by a fresh copy: the new body, the same group, receive count 0
/// (received again as 1); the old receipt is stale.
pub async fn queue_requeue_replaces_a_message_with_a_fresh_copy(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    let first = receive(q, 1).await;
    let receipt = first.first().map(|r| r.receipt.clone()).unwrap_or_default();
    ok(q.change_visibility(&receipt, Duration::ZERO).await, "change visibility to now");
    let got = receive(q, 1).await;
    assert_eq!(got.first().map(|r| r.receive_count), Some(2));
    let m = got.first().cloned().unwrap_or_else(|| panic!("a1 is received again"));
    ok(q.requeue(&m, "a1 again", Duration::ZERO).await, "requeue");
    assert_eq!(depth(q).await, 1, "a copy, not a second message");
    let again = receive(q, 10).await;
    assert_eq!(bodies(&again), vec!["a1 again"]);
    assert_eq!(again.first().map(|r| (r.group.as_str(), r.receive_count)), Some(("bc-todo-1", 1)));
    ok(q.delete(&m.receipt).await, "delete with the receipt before the requeue");
    assert_eq!(depth(q).await, 1, "the old receipt is stale");
}

/// Where the queue has per-message delays (not SQS FIFO), a requeued copy keeps its place in its group
/// and stays invisible, blocking the group, until its delay has passed.
pub async fn queue_requeue_delays_the_copy_in_its_place(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "a1").await;
    send(q, "bc-todo-1", "d2", "a2").await;
    let got = receive(q, 1).await;
    let m = got.first().cloned().unwrap_or_else(|| panic!("a1 is received"));
    ok(q.requeue(&m, "a1 again", secs(120)).await, "requeue");
    f.clock.advance(secs(119));
    assert_eq!(receive(q, 10).await, Vec::new(), "the copy is not due and its group waits");
    f.clock.advance(secs(1));
    assert_eq!(bodies(&receive(q, 10).await), vec!["a1 again", "a2"], "due: first in its group again");
}

/// `dead_letter` moves a received message to the dead letters at once, with the error that made it fail.
pub async fn queue_dead_letter_files_a_message_with_its_error(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "poison").await;
    send(q, "bc-todo-1", "d2", "next").await;
    let got = receive(q, 1).await;
    let m = got.first().cloned().unwrap_or_else(|| panic!("poison is received"));
    ok(q.dead_letter(&m, "route \"retired\" is not configured").await, "dead letter");
    let dead = ok(q.dead_letters().await, "dead letters");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.group.as_str(), d.body.as_str(), d.receive_count), ("bc-todo-1", "poison", 1));
    assert_eq!(d.last_error.as_deref(), Some("route \"retired\" is not configured"));
    assert_eq!(bodies(&receive(q, 10).await), vec!["next"], "its group moves on");
    assert!(ok(q.redrive(&d.message_id).await, "redrive"), "a filed dead letter can be redriven");
}

/// A redriven dead letter is received again with a fresh receive count; unknown ids return false.
pub async fn queue_a_redriven_dead_letter_is_received_again(f: QueueFixture) {
    let q = &*f.queue;
    send(q, "bc-todo-1", "d1", "poison").await;
    for _ in 0..f.max_receives {
        receive(q, 1).await;
        f.clock.advance(VISIBILITY);
    }
    assert_eq!(receive(q, 10).await, Vec::new());
    let dead = ok(q.dead_letters().await, "dead letters");
    let id = dead.first().map(|d| d.message_id.clone()).unwrap_or_default();
    assert!(!ok(q.redrive("no-such-message").await, "redrive unknown"));
    assert!(ok(q.redrive(&id).await, "redrive"));
    assert_eq!(ok(q.dead_letters().await, "dead letters after redrive"), Vec::new());
    assert_eq!(depth(q).await, 1);
    let got = receive(q, 10).await;
    assert_eq!(bodies(&got), vec!["poison"]);
    assert_eq!(got.first().map(|r| r.receive_count), Some(1));
    assert!(!ok(q.redrive(&id).await, "redrive twice"), "a redriven letter is no longer dead");
}

/// Expands to one test per [`JobQueue`] property; `$make` builds a fresh [`QueueFixture`].
#[macro_export]
macro_rules! job_queue_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn messages_come_out_oldest_first_and_in_order_per_group() {
            $crate::testkit::contract::queue_messages_come_out_oldest_first($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_group_with_a_message_in_flight_blocks_only_itself() {
            $crate::testkit::contract::queue_a_group_in_flight_blocks_only_itself($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_unacknowledged_message_becomes_visible_again_after_its_timeout() {
            $crate::testkit::contract::queue_an_unacknowledged_message_becomes_visible_again($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn change_visibility_delays_a_received_message() {
            $crate::testkit::contract::queue_change_visibility_delays_a_message($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_deleted_message_is_gone_and_depth_counts_the_rest() {
            $crate::testkit::contract::queue_delete_removes_a_message_and_depth_counts_the_rest($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_stale_receipt_neither_deletes_nor_delays() {
            $crate::testkit::contract::queue_a_stale_receipt_is_a_no_op($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_enqueued_job_goes_to_its_records_group_once() {
            $crate::testkit::contract::queue_an_enqueued_job_goes_to_its_records_group_once($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_duplicate_send_within_the_window_adds_nothing() {
            $crate::testkit::contract::queue_duplicate_sends_are_dropped($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_message_received_too_often_is_dead_lettered() {
            $crate::testkit::contract::queue_a_message_received_too_often_is_dead_lettered($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_redriven_dead_letter_is_received_again_with_a_fresh_count() {
            $crate::testkit::contract::queue_a_redriven_dead_letter_is_received_again($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_requeued_message_comes_back_as_a_fresh_copy() {
            $crate::testkit::contract::queue_requeue_replaces_a_message_with_a_fresh_copy($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_requeued_copy_waits_out_its_delay_in_its_place() {
            $crate::testkit::contract::queue_requeue_delays_the_copy_in_its_place($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_dead_lettered_message_keeps_its_error() {
            $crate::testkit::contract::queue_dead_letter_files_a_message_with_its_error($make).await;
        }
    };
}

// ---- AuditLog ------------------------------------------------------------------------------------------

fn audit(at: DateTime<Utc>, subject: &str, action: &str) -> AuditEntry {
    AuditEntry {
        at,
        route: Some(route("web")),
        subject: subject.to_owned(),
        delivery: Some(DeliveryId::basecamp(1_052_473_966)),
        action: action.to_owned(),
        detail: format!("{action} {subject}"),
    }
}

/// Entries read back newest first, filtered by subject and cut at the limit; identical entries are kept.
pub async fn audit_entries_read_back_newest_first(f: Fixture<dyn AuditLog>) {
    let log = &*f.port;
    let t = f.clock.now();
    let s = chrono::Duration::seconds;
    let entries = [
        audit(t, "web/1", "created"),
        audit(t + s(2), "web/2", "created"),
        audit(t + s(1), "web/1", "updated"),
        audit(t + s(3), "web/1", "echo"),
        audit(t + s(3), "web/1", "echo"),
    ];
    for e in &entries {
        ok(log.record(e).await, "record");
    }
    let all = ok(log.recent(None, 10).await, "recent");
    let actions: Vec<(&str, &str)> = all.iter().map(|e| (e.subject.as_str(), e.action.as_str())).collect();
    assert_eq!(
        actions,
        vec![("web/1", "echo"), ("web/1", "echo"), ("web/2", "created"), ("web/1", "updated"), ("web/1", "created")]
    );
    assert_eq!(all[2], entries[1], "entries read back unchanged");
    let web1 = ok(log.recent(Some("web/1"), 3).await, "recent for one subject");
    assert_eq!(web1.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["echo", "echo", "updated"]);
    assert_eq!(ok(log.recent(Some("web/3"), 10).await, "recent for an unknown subject"), Vec::new());
}

/// Expands to the [`AuditLog`] contract tests; `$make` builds a fresh `Fixture<dyn AuditLog>`.
#[macro_export]
macro_rules! audit_log_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn audit_entries_read_back_newest_first_by_subject() {
            $crate::testkit::contract::audit_entries_read_back_newest_first($make).await;
        }
    };
}

// ---- ConflictLog ---------------------------------------------------------------------------------------

fn conflict(id: &str, at: DateTime<Utc>, resolution: Resolution) -> Conflict {
    Conflict {
        id: id.to_owned(),
        pair: PairKey { route: route("web"), todo: TodoId(1_069_480_015) },
        item: Some(jira_item(10_002)),
        field: Field::Title,
        basecamp_value: "Fix the login page".into(),
        tracker_value: "Fix login".into(),
        policy: "manual".into(),
        resolution,
        at,
    }
}

/// A conflict is recorded once per id; a duplicate is `AlreadyExists` with the stored one.
pub async fn conflict_a_duplicate_id_is_already_there(f: Fixture<dyn ConflictLog>) {
    let log = &*f.port;
    let first = conflict("web/1069480015/title/3", f.clock.now(), Resolution::Open);
    assert_eq!(ok(log.record(&first).await, "record"), Inserted::Inserted);
    let retry = Conflict { tracker_value: "changed".into(), ..first.clone() };
    assert_eq!(ok(log.record(&retry).await, "record again"), Inserted::AlreadyExists(first.clone()));
    assert_eq!(ok(log.list(false, 10).await, "list"), vec![first]);
}

/// Conflicts list newest first, optionally only open ones; `resolve` settles an open conflict once.
pub async fn conflict_list_and_resolve(f: Fixture<dyn ConflictLog>) {
    let log = &*f.port;
    let t = f.clock.now();
    let s = chrono::Duration::seconds;
    let recorded = [
        conflict("c1", t, Resolution::Open),
        conflict("c2", t + s(2), Resolution::TookBasecamp),
        conflict("c3", t + s(1), Resolution::Open),
        conflict("c4", t + s(3), Resolution::TookTracker),
    ];
    for c in &recorded {
        assert_eq!(ok(log.record(c).await, "record"), Inserted::Inserted);
    }
    let ids = |cs: Vec<Conflict>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(ok(log.list(false, 10).await, "list all")), vec!["c4", "c2", "c3", "c1"]);
    assert_eq!(ids(ok(log.list(false, 2).await, "list with a limit")), vec!["c4", "c2"]);
    assert_eq!(ids(ok(log.list(true, 10).await, "list open")), vec!["c3", "c1"]);

    assert!(ok(log.resolve("c3", Resolution::TookTracker).await, "resolve an open conflict"));
    assert!(!ok(log.resolve("c3", Resolution::TookBasecamp).await, "resolve twice"), "already settled");
    assert!(!ok(log.resolve("c2", Resolution::TookTracker).await, "resolve a settled one"));
    assert!(!ok(log.resolve("nope", Resolution::TookTracker).await, "resolve unknown"));
    assert_eq!(ids(ok(log.list(true, 10).await, "list open after resolve")), vec!["c1"]);
    let all = ok(log.list(false, 10).await, "list after resolve");
    let c3 = all.iter().find(|c| c.id == "c3").map(|c| c.resolution.clone());
    assert_eq!(c3, Some(Resolution::TookTracker));
    assert_eq!(all.iter().find(|c| c.id == "c4"), Some(&recorded[3]), "others read back unchanged");
}

/// Expands to the [`ConflictLog`] contract tests; `$make` builds a fresh `Fixture<dyn ConflictLog>`.
#[macro_export]
macro_rules! conflict_log_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_conflict_recorded_twice_is_already_there() {
            $crate::testkit::contract::conflict_a_duplicate_id_is_already_there($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conflicts_list_newest_first_and_resolve_once() {
            $crate::testkit::contract::conflict_list_and_resolve($make).await;
        }
    };
}

// ---- CursorStore ---------------------------------------------------------------------------------------

/// An unknown cursor is `None`; an advance reads back to the microsecond; names are independent.
pub async fn cursor_advance_then_read(f: Fixture<dyn CursorStore>) {
    let store = &*f.port;
    assert_eq!(ok(store.cursor("reconcile:basecamp").await, "read an unknown cursor"), None);
    let t = f.clock.now() + chrono::Duration::microseconds(123_456);
    assert!(ok(store.advance("reconcile:basecamp", t).await, "advance"), "a first advance moves the cursor");
    assert_eq!(ok(store.cursor("reconcile:basecamp").await, "read back"), Some(t));
    assert_eq!(ok(store.cursor("reconcile:jira").await, "read another name"), None, "names are independent");
}

/// A cursor never moves back: an older or equal instant is ignored and reported as not moved.
pub async fn cursor_never_moves_back(f: Fixture<dyn CursorStore>) {
    let store = &*f.port;
    let t = f.clock.now();
    let s = chrono::Duration::seconds;
    assert!(ok(store.advance("c", t).await, "advance"));
    assert!(!ok(store.advance("c", t - s(60)).await, "advance to an older instant"), "an older instant is refused");
    assert!(!ok(store.advance("c", t).await, "advance to the same instant"), "the same instant does not move it");
    assert_eq!(ok(store.cursor("c").await, "read"), Some(t));
    assert!(ok(store.advance("c", t + s(1)).await, "advance to a later instant"));
    assert_eq!(ok(store.cursor("c").await, "read after moving on"), Some(t + s(1)));
}

/// Of racing advances, the latest instant is what stays, whatever order they land in.
pub async fn cursor_racing_advances_keep_the_latest(f: Fixture<dyn CursorStore>) {
    let t = f.clock.now();
    let tasks: Vec<_> = (0..8i64)
        .map(|i| {
            let store = f.port.clone();
            tokio::spawn(async move { store.advance("race", t + chrono::Duration::seconds((i * 5) % 8)).await })
        })
        .collect();
    for task in tasks {
        ok(ok(task.await, "join an advance"), "advance");
    }
    assert_eq!(ok(f.port.cursor("race").await, "read"), Some(t + chrono::Duration::seconds(7)));
}

/// Expands to the [`CursorStore`] contract tests; `$make` builds a fresh `Fixture<dyn CursorStore>`.
#[macro_export]
macro_rules! cursor_store_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_cursor_reads_back_what_it_was_advanced_to() {
            $crate::testkit::contract::cursor_advance_then_read($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_cursor_never_moves_back() {
            $crate::testkit::contract::cursor_never_moves_back($make).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_advances_leave_the_latest_instant() {
            $crate::testkit::contract::cursor_racing_advances_keep_the_latest($make).await;
        }
    };
}

// ---- SecretStore ---------------------------------------------------------------------------------------

/// A missing secret is `Missing` naming it; a put value reads back; a second put with the same request
/// token is a no-op; a put with a new token replaces the value. No error or `Debug` shows a value.
pub async fn secret_put_then_get(f: Fixture<dyn SecretStore>) {
    let store = &*f.port;
    let name = "contract-test-token";
    match store.get(name).await {
        Err(SecretError::Missing(n)) => assert_eq!(n, name),
        Err(e) => panic!("a missing secret should be Missing, got {e:?}"),
        Ok(_) => panic!("secret {name} should not exist yet"),
    }
    let v1 = SecretString::from("s3cr3t-value-one");
    ok(store.put(name, &v1, "token-1").await, "put");
    let got = ok(store.get(name).await, "get after put");
    assert_eq!(got.expose_secret(), "s3cr3t-value-one");
    assert!(!format!("{got:?}").contains("s3cr3t"), "Debug redacts the value");
    ok(store.put(name, &v1, "token-1").await, "put again with the same token");
    assert_eq!(ok(store.get(name).await, "get after repeated put").expose_secret(), "s3cr3t-value-one");
    let v2 = SecretString::from("s3cr3t-value-two");
    ok(store.put(name, &v2, "token-2").await, "put a new version");
    assert_eq!(ok(store.get(name).await, "get the new version").expose_secret(), "s3cr3t-value-two");
    if let Err(e) = store.get("contract-test-absent").await {
        assert!(!e.to_string().contains("s3cr3t"), "errors never carry a value");
    }
}

/// Expands to the [`SecretStore`] contract tests; `$make` builds a fresh `Fixture<dyn SecretStore>` with
/// no secret named `contract-test-*`.
#[macro_export]
macro_rules! secret_store_contract_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_secret_reads_back_what_was_put_and_a_repeated_token_is_a_no_op() {
            $crate::testkit::contract::secret_put_then_get($make).await;
        }
    };
}
