//! The executor through the ports: queue → mapper → engine → fakes, with the memory adapters.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::domain::{
    Backlink, DevItemRef, JiraAccountId, PairKey, PairState, PersonId, RouteId, StatusCategory, Todo, TodoId,
};
use crate::ports::{AuditLog, ConflictLog, JobConsumer, JobProducer, PairStore, QueueOperator};
use crate::testkit::todo;
use crate::testkit::world::World;

use super::{MessageFate, Outcome, Skip, backoff, process_batch, settle};
use crate::domain::{Job, Queued};

async fn paired(world: &World, id: i64, title: &str) -> DevItemRef {
    world.create_todo(todo(id, title)).await;
    world.drain().await;
    world.item_of(TodoId(id)).await.expect("paired")
}

#[tokio::test]
async fn a_new_todo_creates_one_item_links_both_ways_and_comments_once() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let issue = world.tracker.item(&item).unwrap();
    assert_eq!(issue.summary, "[BC][WEB] Fix login");
    assert!(issue.labels.contains("bc-1"), "the marker label: {:?}", issue.labels);
    let links = world.tracker.remote_links(&item);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].url, todo(1, "").app_url);
    let comments = world.basecamp.comments(TodoId(1));
    assert_eq!(comments.len(), 1);
    assert!(comments[0].content.contains("WEB-1") && comments[0].content.contains(&issue.url));
    let pair = world.pairs.get(&PairKey { route: RouteId("web".into()), todo: TodoId(1) }).await.unwrap().unwrap();
    assert_eq!(pair.state, PairState::Linked);
    assert!(pair.remote_linked);
    assert!(matches!(pair.backlink, Backlink::Posted(_)));
}

#[tokio::test]
async fn a_duplicate_delivery_creates_one_issue() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    let job = world.todo_job(TodoId(1));
    for _ in 0..3 {
        world.enqueue(&job).await;
        world.drain().await;
    }
    // And once more straight through the mapper, bypassing the queue's own dedupe.
    let body = job.to_wire().unwrap();
    world.queue.send("other-group", "other-dedup", &body).await.unwrap();
    world.drain().await;
    assert_eq!(world.tracker.items().len(), 1);
    assert_eq!(world.tracker.calls.get("create_item"), 1);
    assert_eq!(world.basecamp.comments(TodoId(1)).len(), 1);
}

#[tokio::test]
async fn two_workers_racing_on_one_new_todo_create_exactly_one_item() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    let (a, b) = (world.worker("a"), world.worker("b"));
    let (ja, jb) = (world.todo_job(TodoId(1)), world.todo_job(TodoId(1)));
    let (ra, rb) = tokio::join!(a.sync_record(std::slice::from_ref(&ja)), b.sync_record(std::slice::from_ref(&jb)));
    let created = [&ra, &rb].iter().filter(|r| matches!(r, Ok(Outcome::Created { .. }))).count();
    assert_eq!(created, 1, "{ra:?} {rb:?}");
    assert_eq!(world.tracker.items().len(), 1);
}

#[tokio::test]
async fn a_crash_between_creating_the_item_and_linking_it_still_yields_exactly_one_item() {
    let world = World::new();
    world.tracker.crash_after_next_create();
    world.create_todo(todo(1, "Fix login")).await;
    world.drain().await;
    assert_eq!(world.tracker.items().len(), 1, "created upstream");
    let key = PairKey { route: RouteId("web".into()), todo: TodoId(1) };
    assert_eq!(world.pairs.get(&key).await.unwrap().unwrap().state, PairState::Pending, "not recorded");

    // Another worker picks the retried job up after the first worker's lease ran out.
    world.clock.advance(Duration::from_secs(120));
    let other = world.worker("worker-2");
    let outcome = other.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
    assert!(matches!(outcome, Outcome::Created { recovered: true, .. }), "{outcome:?}");
    assert_eq!(world.tracker.items().len(), 1, "found by its marker, not created again");
    assert_eq!(world.tracker.calls.get("create_item"), 1);
    let pair = world.pairs.get(&key).await.unwrap().unwrap();
    assert_eq!(pair.state, PairState::Linked);
    let audit = world.audit.recent(Some("web/1"), 10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "recovered"), "{audit:?}");
}

/// Found by the chaos harness: the item a stopped worker created came from an older to-do, and the
/// recovering worker recorded the to-do in hand as synced, so the edits in between never reached Jira.
#[tokio::test]
async fn an_item_recovered_after_a_crash_gets_the_edits_the_todo_had_since_that_create() {
    let world = World::new();
    world.tracker.crash_after_next_create();
    world.create_todo(todo(1, "Fix login")).await;
    world.drain().await;
    assert_eq!(world.tracker.items().len(), 1, "created upstream, not recorded");
    world.basecamp.edit(TodoId(1), |t| {
        t.title = "Fix login on Safari".into();
        t.description = "<p>Only Safari 17.</p>".into();
        t.due_on = chrono::NaiveDate::from_ymd_opt(2027, 3, 1);
    });
    world.clock.advance(Duration::from_secs(120));
    let outcome = world.worker("worker-2").sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
    assert!(matches!(outcome, Outcome::Created { recovered: true, .. }), "{outcome:?}");
    let item = world.tracker.items().remove(0);
    assert_eq!(item.summary, "[BC][WEB] Fix login on Safari");
    assert!(item.description.contains("Only Safari 17."), "{}", item.description);
    assert_eq!(item.due, chrono::NaiveDate::from_ymd_opt(2027, 3, 1));
    assert_eq!(world.tracker.calls.get("create_item"), 1, "found, not created again");
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    assert_eq!(world.tracker.calls.get("update_item"), 1, "written once; the next event finds nothing to do");
}

#[tokio::test]
async fn a_live_claim_held_by_another_worker_is_left_alone() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    let pending = crate::domain::Pair::pending(
        RouteId("web".into()),
        todo(1, "").project,
        TodoId(1),
        "someone-else",
        crate::testkit::at(0),
        crate::testkit::at(60),
    );
    world.pairs.insert(&pending).await.unwrap();
    let err = world.engine.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap_err();
    assert!(matches!(err, super::SyncError::Busy(_)), "{err:?}");
    assert!(world.tracker.items().is_empty());
}

#[tokio::test]
async fn an_edit_updates_the_linked_issue_and_creates_nothing_new() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    world.basecamp.edit(TodoId(1), |t| t.title = "Fix login redirect".into());
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] Fix login redirect");
    assert_eq!(world.tracker.items().len(), 1);
    assert_eq!(world.tracker.calls.get("update_item"), 1);
}

#[tokio::test]
async fn the_tracker_refusing_an_assignee_falls_back_to_triage_and_the_audit_says_why() {
    let world = World::new();
    world.tracker.refuse_assignee(&JiraAccountId("acc-jane".into()));
    world.create_todo(Todo { assignees: vec![PersonId(1_049_715_930)], ..todo(1, "Fix login") }).await;
    world.drain().await;
    let item = world.item_of(TodoId(1)).await.unwrap();
    assert_eq!(world.tracker.item(&item).unwrap().assignee, Some(JiraAccountId("acc-triage".into())));
    let audit = world.audit.recent(None, 20).await.unwrap();
    let why = audit.iter().find(|e| e.action == "assignee_fallback").expect("audited");
    assert!(why.detail.contains("acc-jane") && why.detail.contains("triage"), "{}", why.detail);
}

#[tokio::test]
async fn a_rate_limited_basecamp_postpones_the_job_by_at_least_retry_after_instead_of_failing_it() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    world.basecamp.set_rate_limited(Some(Duration::from_secs(7)));
    world.enqueue(&world.todo_job(TodoId(1))).await;
    let messages = world.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    let report = process_batch(&world.engine, &messages).await;
    let MessageFate::Postpone { delay, body } = &report.fates[0].1 else { panic!("{:?}", report.fates) };
    assert!(*delay >= Duration::from_secs(7) && *delay <= Duration::from_millis(10_500), "{delay:?}");
    let retry = Queued::from_wire(body).unwrap().retry.unwrap();
    assert_eq!(retry.attempt, 1);
    assert!(retry.reason.contains("rate limit"), "{}", retry.reason);
    settle(world.queue.as_ref(), &messages, &report).await.unwrap();
    assert!(world.queue.receive(10, Duration::from_secs(30)).await.unwrap().is_empty(), "hidden until due");
    world.basecamp.set_rate_limited(None);
    world.clock.advance(Duration::from_secs(11));
    world.drain().await;
    assert_eq!(world.tracker.items().len(), 1, "synced once the limit passed");
}

/// Runs worker batches, moving the clock past every delay, for `rounds` rounds; returns the postponement
/// delays seen, in order.
async fn ride_out(world: &World, rounds: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..rounds {
        for report in world.drain().await {
            for (_, fate) in report.fates {
                if let MessageFate::Postpone { delay, .. } = fate {
                    delays.push(delay);
                }
            }
        }
        world.clock.advance(Duration::from_secs(16 * 60));
    }
    delays
}

#[tokio::test]
async fn a_429_storm_longer_than_the_max_receive_count_never_dead_letters_and_converges() {
    let world = World::new();
    world.create_todo(todo(1, "Fix login")).await;
    world.basecamp.set_rate_limited(Some(Duration::from_secs(5)));
    let delays = ride_out(&world, 12).await;
    assert_eq!(delays.len(), 12, "one postponement per attempt: {delays:?}");
    assert!(delays.iter().all(|d| *d >= Duration::from_secs(5)), "never before Retry-After: {delays:?}");
    assert!(delays[11] > Duration::from_secs(60), "consecutive 429s back off further: {delays:?}");
    assert_eq!(world.queue.dead_letters().await.unwrap(), Vec::new());
    assert_eq!(world.queue.depth().await.unwrap(), 1, "still waiting, not lost");
    world.basecamp.set_rate_limited(None);
    ride_out(&world, 1).await;
    assert_eq!(world.tracker.items().len(), 1, "converged once the storm passed");
    assert_eq!(world.queue.depth().await.unwrap(), 0);
    assert_eq!(world.queue.dead_letters().await.unwrap(), Vec::new());
}

#[tokio::test]
async fn an_outage_backs_off_with_the_attempt_count_never_dead_letters_and_converges() {
    let world = World::new();
    world.create_todo(todo(1, "Fix login")).await;
    world.basecamp.set_unavailable(true);
    let delays = ride_out(&world, 9).await;
    assert_eq!(delays.len(), 9, "{delays:?}");
    for (n, d) in delays.iter().enumerate() {
        let attempt = u32::try_from(n + 1).unwrap();
        assert!(*d >= backoff(attempt, 0.0) && *d <= backoff(attempt, 1.0), "attempt {attempt}: {d:?}");
    }
    assert_eq!(world.queue.dead_letters().await.unwrap(), Vec::new());
    world.basecamp.set_unavailable(false);
    ride_out(&world, 1).await;
    assert_eq!(world.tracker.items().len(), 1);
    assert_eq!(world.queue.dead_letters().await.unwrap(), Vec::new());
}

#[test]
fn the_backoff_doubles_from_two_seconds_up_to_ten_minutes_with_jitter_in_its_upper_half() {
    assert_eq!((backoff(1, 0.0), backoff(1, 1.0)), (Duration::from_secs(1), Duration::from_secs(2)));
    assert_eq!((backoff(4, 0.0), backoff(4, 1.0)), (Duration::from_secs(8), Duration::from_secs(16)));
    assert_eq!(backoff(30, 1.0), Duration::from_secs(600), "capped");
    assert_eq!(backoff(u32::MAX, 0.0), Duration::from_secs(300));
    let spread = backoff(5, 0.25);
    assert!(spread > backoff(5, 0.0) && spread < backoff(5, 1.0));
    assert_eq!(backoff(3, f64::NAN), backoff(3, 0.5), "a broken random source still gives a sane delay");
}

/// A job for a route the deployment no longer has fails on every receive.
fn retired_job(world: &World, todo: i64) -> Job {
    let Job::TodoChanged { delivery, project, event, received_at, .. } = world.todo_job(TodoId(todo)) else {
        unreachable!()
    };
    Job::TodoChanged { delivery, route: RouteId("retired".into()), project, todo: TodoId(todo), event, received_at }
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_lettered_on_its_last_receive_with_its_error_and_its_group_goes_on() {
    let world = World::new();
    world.enqueue(&retired_job(&world, 1)).await;
    world.create_todo(todo(1, "Fix login")).await;
    for round in 1..=5 {
        let reports = world.drain().await;
        let fates: Vec<&MessageFate> = reports.iter().flat_map(|r| r.fates.iter().map(|(_, f)| f)).collect();
        if round < 5 {
            assert!(
                matches!(fates.as_slice(), [MessageFate::Failed { .. }, MessageFate::Postpone { .. }]),
                "{fates:?}"
            );
            assert!(world.tracker.items().is_empty(), "the later job of the group waits behind it");
        }
        world.clock.advance(Duration::from_secs(31));
    }
    let dead = world.queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].receive_count, 5);
    let error = dead[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("route") && error.contains("retired"), "{error}");
    world.drain().await;
    assert_eq!(world.tracker.items().len(), 1, "the job behind it was never counted down and now syncs");
    assert_eq!(world.queue.dead_letters().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_on_its_last_receive_saying_it_is_unreadable() {
    let world = World::new();
    world.queue.send("bc-todo-9", "poison-1", r#"{"v":"9","job":{}}"#).await.unwrap();
    for _ in 0..5 {
        world.drain().await;
        world.clock.advance(Duration::from_secs(31));
    }
    let dead = world.queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap_or_default().starts_with("unreadable job"), "{dead:?}");
    assert_eq!(world.queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn a_burst_of_edits_to_one_todo_coalesces_into_one_read_and_one_write() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let (gets, updates) = (world.basecamp.calls.get("get_todo"), world.tracker.calls.get("update_item"));
    for n in 0..20 {
        world.basecamp.edit(TodoId(1), |t| t.description = format!("<p>draft {n}</p>"));
        world.enqueue(&world.todo_job(TodoId(1))).await;
    }
    world.drain().await;
    assert_eq!(world.basecamp.calls.get("get_todo") - gets, 2, "one read per batch of 10");
    assert!(world.tracker.calls.get("update_item") - updates <= 2);
    assert!(world.tracker.item(&item).unwrap().description.contains("draft 19"));
}

#[tokio::test]
async fn a_conflict_is_logged_once_even_when_the_job_is_retried() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    world.basecamp.edit(TodoId(1), |t| t.title = "PM title".into());
    world.tracker.edit(&item, world.basecamp.tick(), |i| i.summary = "[BC][WEB] Dev title".into());
    let job = world.todo_job(TodoId(1));
    world.engine.sync_record(std::slice::from_ref(&job)).await.unwrap();
    world.engine.sync_record(std::slice::from_ref(&job)).await.unwrap();
    let conflicts = world.conflicts.list(false, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    // Last writer (the tracker edit) wins on both sides.
    assert_eq!(world.basecamp.todo(TodoId(1)).unwrap().title, "Dev title");
}

#[tokio::test]
async fn a_poison_message_fails_until_it_is_dead_lettered_and_does_not_block_its_group() {
    let world = World::new();
    world.queue.send("bc-todo-1", "poison", "{not a job").await.unwrap();
    world.basecamp.put(todo(1, "Fix login"));
    world.enqueue(&world.todo_job(TodoId(1))).await;
    for _ in 0..6 {
        world.drain().await;
        world.clock.advance(Duration::from_secs(31));
    }
    let dead = world.queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "{not a job");
    assert_eq!(world.tracker.items().len(), 1, "the group moved on");
}

#[tokio::test]
async fn the_story_settles_with_no_echo_writes() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    // Title edit in Basecamp, then the issue done in Jira; each side's webhook fires for our writes too.
    world.basecamp.edit(TodoId(1), |t| t.title = "Fix login redirect".into());
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    world.enqueue(&world.item_job(&item)).await; // the echo of our summary write
    world.tracker.edit(&item, world.basecamp.tick(), |i| i.status = StatusCategory::Done);
    world.enqueue(&world.item_job(&item)).await;
    world.drain().await;
    assert!(world.basecamp.todo(TodoId(1)).unwrap().completed);
    world.enqueue(&world.todo_job(TodoId(1))).await; // the echo of our completion write

    let writes = world.basecamp.calls.writes() + world.tracker.calls.writes();
    let outcomes = world.drain_outcomes().await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Skipped(Skip::Unchanged))), "{outcomes:?}");
    assert_eq!(world.basecamp.calls.writes() + world.tracker.calls.writes(), writes, "no echo writes");
}

#[tokio::test]
async fn the_engine_runs_the_same_on_the_sqlite_store() {
    use std::sync::Arc;
    let world = World::new();
    let store = crate::adapters::sqlite::SqliteStore::open_in_memory(world.clock.clone()).unwrap();
    let engine = super::Engine {
        pairs: Arc::new(store.clone()),
        deliveries: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        conflicts: Arc::new(store.clone()),
        ..world.engine.clone()
    };
    world.basecamp.put(todo(1, "Fix login"));
    let job = world.todo_job(TodoId(1));
    engine.sync_record(std::slice::from_ref(&job)).await.unwrap();
    engine.sync_record(std::slice::from_ref(&job)).await.unwrap();
    assert_eq!(world.tracker.items().len(), 1);
    let pair = store.get(&PairKey { route: RouteId("web".into()), todo: TodoId(1) }).await.unwrap().unwrap();
    assert!(pair.is_linked());
}

#[tokio::test]
async fn a_dev_comment_reaches_the_tracker_once_and_an_edit_updates_its_twin() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let c = world.basecamp.comment_as(TodoId(1), "Jane Cole", "<div>DEV: logs attached</div>");
    let job = world.comment_job(TodoId(1), c);
    world.enqueue(&job).await;
    world.enqueue(&world.comment_job(TodoId(1), c)).await; // a second delivery of the same comment
    world.drain().await;
    world.engine.sync_record(std::slice::from_ref(&job)).await.unwrap(); // and straight in again
    let twins = world.tracker.comments(&item);
    assert_eq!(twins.len(), 1, "{twins:?}");
    assert!(twins[0].html.contains("logs attached") && twins[0].html.contains("Jane Cole via"));
    assert!(!twins[0].html.contains("DEV:"));

    world.basecamp.edit_comment(TodoId(1), c, "<div>DEV: logs and a screenshot attached</div>");
    world.enqueue(&world.comment_job(TodoId(1), c)).await;
    world.drain().await;
    let twins = world.tracker.comments(&item);
    assert_eq!(twins.len(), 1);
    assert!(twins[0].html.contains("screenshot"), "the twin was updated");
}

#[tokio::test]
async fn a_comment_without_the_prefix_stays_in_basecamp() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let c = world.basecamp.comment_as(TodoId(1), "Jane Cole", "<div>Thanks, all</div>");
    world.enqueue(&world.comment_job(TodoId(1), c)).await;
    world.drain().await;
    assert!(world.tracker.comments(&item).is_empty());
    assert_eq!(world.tracker.calls.get("add_comment"), 0);
}

/// Found by the chaos harness: with deliveries reordered, a `DEV:` comment's job ran before its to-do had
/// a pair, was skipped as not paired, and its twin never appeared.
#[tokio::test]
async fn a_dev_comment_made_before_its_todo_was_paired_is_mirrored_when_it_is_and_only_once() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    let c = world.basecamp.comment_as(TodoId(1), "Jane Cole", "<div>DEV: seen on Safari</div>");
    world.basecamp.comment_as(TodoId(1), "Jane Cole", "<div>thanks</div>");
    let comment_job = world.comment_job(TodoId(1), c);
    world.enqueue(&comment_job).await;
    world.drain().await;
    assert!(world.tracker.items().is_empty(), "the comment's job came first and found no pair");
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    let item = world.item_of(TodoId(1)).await.expect("paired");
    let twins = world.tracker.comments(&item);
    assert_eq!(twins.len(), 1, "the DEV: comment, not the other one: {twins:?}");
    assert!(twins[0].html.contains("seen on Safari"), "{}", twins[0].html);
    world.engine.sync_record(std::slice::from_ref(&comment_job)).await.unwrap();
    assert_eq!(world.tracker.comments(&item).len(), 1, "its own job, run again, finds the twin");
}

/// Found by the chaos harness (on SQS, during an outage): the catch-up of earlier comments failed once
/// after the pair was linked, and no later job ever ran it again.
#[tokio::test]
async fn an_outage_while_mirroring_earlier_comments_at_pairing_only_delays_them() {
    let world = World::new();
    world.basecamp.put(todo(1, "Fix login"));
    let c = world.basecamp.comment_as(TodoId(1), "Jane Cole", "<div>DEV: seen on Safari</div>");
    world.enqueue(&world.comment_job(TodoId(1), c)).await;
    world.drain().await;
    world.basecamp.fail_next_comment_listing();
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    let item = world.item_of(TodoId(1)).await.expect("paired");
    assert!(world.tracker.comments(&item).is_empty(), "the listing failed: the job was postponed");
    world.clock.advance(Duration::from_secs(60));
    world.drain().await;
    assert_eq!(world.tracker.comments(&item).len(), 1, "the postponed job mirrored it");
    assert_eq!(texts(&world, 1).iter().filter(|t| t.contains("Linked to")).count(), 1);
}

/// Found by the chaos harness: the retry of an interrupted link comment took a `PM:` twin (which links to
/// the issue too) for the link comment, and never posted it.
#[tokio::test]
async fn an_interrupted_link_comment_is_not_mistaken_for_another_comment_that_links_the_issue() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let url = world.tracker.item(&item).unwrap().url;
    let key = PairKey { route: RouteId("web".into()), todo: TodoId(1) };
    // An attempt that stopped before posting, and a comment elsewhere that links the issue.
    world.basecamp.comment_as(
        TodoId(1),
        "Jared",
        &format!("<p>Done — Jared via <a href=\"{url}?focusedCommentId=7\">Jira</a></p>"),
    );
    for c in world.basecamp.comments(TodoId(1)).iter().filter(|c| c.content.contains("Linked to")) {
        world.basecamp.edit_comment(TodoId(1), c.id, "<p>(deleted)</p>");
    }
    let mut pair = world.pairs.get(&key).await.unwrap().unwrap();
    pair.backlink = Backlink::Attempting;
    assert!(matches!(world.pairs.replace(&pair).await.unwrap(), crate::ports::Replaced::Replaced(_)));
    world.clock.advance(Duration::from_secs(120)); // the stopped attempt is more than a lease old
    world.enqueue(&world.item_job(&item)).await;
    world.drain().await;
    let links = texts(&world, 1).into_iter().filter(|t| t.contains("Linked to Jira issue")).count();
    assert_eq!(links, 1, "{:?}", texts(&world, 1));
}

/// A link comment another worker is posting right now (its `Attempting` mark is fresh, its comment not
/// visible yet) is waited for, not posted a second time; once the mark is a lease old, its worker has
/// stopped and the comment is posted once.
#[tokio::test]
async fn a_link_comment_another_worker_is_posting_is_waited_for_not_posted_twice() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let key = PairKey { route: RouteId("web".into()), todo: TodoId(1) };
    for c in world.basecamp.comments(TodoId(1)).iter().filter(|c| c.content.contains("Linked to")) {
        world.basecamp.edit_comment(TodoId(1), c.id, "<p>(deleted)</p>");
    }
    let mut pair = world.pairs.get(&key).await.unwrap().unwrap();
    pair.backlink = Backlink::Attempting;
    pair.updated_at = crate::ports::Clock::now(world.clock.as_ref());
    assert!(matches!(world.pairs.replace(&pair).await.unwrap(), crate::ports::Replaced::Replaced(_)));
    world.enqueue(&world.item_job(&item)).await;
    world.drain().await;
    let links = || texts(&world, 1).into_iter().filter(|t| t.contains("Linked to Jira issue")).count();
    assert_eq!(links(), 0, "held while the other worker may be posting");
    world.clock.advance(Duration::from_secs(120));
    world.drain().await;
    assert_eq!(links(), 1, "{:?}", texts(&world, 1));
}

/// Found by the chaos harness: a to-do completed before its item existed was recorded as synced while
/// the new issue stayed open. The status rule now settles it at once (here dev-owned: the tracker's
/// status wins and the to-do is reopened, as for any completion made in Basecamp).
#[tokio::test]
async fn a_todo_completed_before_its_item_existed_ends_with_both_sides_agreeing_on_status() {
    let world = World::new();
    world.create_todo(Todo { completed: true, ..todo(1, "Fix login") }).await;
    world.drain().await;
    let item = world.item_of(TodoId(1)).await.expect("paired");
    let issue = world.tracker.item(&item).unwrap();
    assert_eq!(world.basecamp.todo(TodoId(1)).unwrap().completed, issue.status.is_done());
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.enqueue(&world.item_job(&item)).await;
    let writes = (world.basecamp.calls.writes(), world.tracker.calls.writes());
    world.drain().await;
    assert_eq!((world.basecamp.calls.writes(), world.tracker.calls.writes()), writes, "settled: nothing more to write");
}

fn texts(world: &World, todo: i64) -> Vec<String> {
    world.basecamp.comments(TodoId(todo)).into_iter().map(|c| c.content).collect()
}

#[tokio::test]
async fn a_pull_request_naming_two_todos_posts_one_comment_per_state_on_each() {
    let world = World::new();
    let one = paired(&world, 1, "Fix login").await;
    paired(&world, 2, "Fix logout").await;
    let (k1, k2) = (one.display_name().to_owned(), "WEB-2".to_owned());
    for state in ["OPEN", "OPEN", "MERGED"] {
        let job = world.pr_job(12, &format!("Fix auth ({k1})"), &format!("Also {k2}"), "feature/auth", state);
        world.enqueue(&job).await;
        world.enqueue(&job).await; // the same delivery again
        world.drain().await;
        world.engine.sync_record(std::slice::from_ref(&job)).await.unwrap(); // and once more, directly
    }
    for todo in [1, 2] {
        let t = texts(&world, todo);
        assert_eq!(t.len(), 3, "link comment + opened + merged: {t:?}");
        assert!(t[1].contains("PR #12") && t[1].contains("opened by Ana Diaz"), "{}", t[1]);
        assert!(t[2].contains("merged by Ana Diaz"), "{}", t[2]);
    }
    let links = world.tracker.remote_links(&one);
    assert!(links.iter().any(|l| l.url.ends_with("/pull-requests/12")), "{links:?}");
}

/// Found by the chaos harness: a worker stopped between claiming a PR's "opened" note and posting it; the
/// retry looked for any "opened by" comment, found another PR's, and never posted this one.
#[tokio::test]
async fn a_retried_signal_is_posted_even_when_another_pull_requests_note_is_on_the_todo() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let key = item.display_name().to_owned();
    world.enqueue(&world.pr_job(1, &format!("Fix ({key})"), "", "fix-1", "OPEN")).await;
    world.drain().await;
    // The claim a stopped worker left for PR #2's note.
    let pair_key = PairKey { route: RouteId("web".into()), todo: TodoId(1) };
    let mut pair = world.pairs.get(&pair_key).await.unwrap().unwrap();
    pair.signals.insert(crate::domain::SignalKey::parse("pr:team/web#2:OPEN"), crate::domain::Signal::Attempting);
    assert!(matches!(world.pairs.replace(&pair).await.unwrap(), crate::ports::Replaced::Replaced(_)));
    world.clock.advance(Duration::from_secs(120)); // the stopped attempt is more than a lease old
    world.enqueue(&world.pr_job(2, &format!("Refactor ({key})"), "", "fix-2", "OPEN")).await;
    world.drain().await;
    // The job's own save of the PR link made the mark look fresh: it waits one lease, then posts.
    world.clock.advance(Duration::from_secs(120));
    world.drain().await;
    let t = texts(&world, 1);
    assert!(t.iter().any(|c| c.contains("PR #2") && c.contains("opened by")), "{t:?}");
    assert_eq!(t.iter().filter(|c| c.contains("opened by")).count(), 2, "{t:?}");
}

#[tokio::test]
async fn a_failed_then_fixed_build_posts_one_alert_and_one_fixed_note() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let branch = format!("feature/{}-login", item.display_name().to_lowercase());
    for state in ["INPROGRESS", "FAILED", "FAILED", "SUCCESSFUL", "SUCCESSFUL"] {
        world.enqueue(&world.build_job(&branch, "abc1234def", state)).await;
        world.drain().await;
    }
    let t = texts(&world, 1);
    assert_eq!(t.len(), 3, "link comment + failed + fixed: {t:?}");
    assert!(t[1].contains("Build failed: CI") && t[1].contains("abc1234"), "{}", t[1]);
    assert!(t[2].contains("Build fixed: CI"), "{}", t[2]);
}

#[tokio::test]
async fn a_build_on_a_branch_that_names_no_paired_item_posts_nothing() {
    let world = World::new();
    paired(&world, 1, "Fix login").await;
    world.enqueue(&world.build_job("feature/unrelated", "abc1234def", "FAILED")).await;
    world.drain().await;
    assert_eq!(texts(&world, 1).len(), 1, "only the link comment");
}

#[tokio::test]
async fn pm_and_dev_comments_cross_once_each_way_and_never_echo_back() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    // Jira → Basecamp.
    let pm = world.tracker.comment_as(&item, "Jared Davis", "<p>PM: shipping Friday</p>");
    let plain = world.tracker.comment_as(&item, "Jared Davis", "<p>refactoring the session store</p>");
    for c in [&pm, &pm, &plain] {
        world.enqueue(&world.issue_comment_job(&item, c)).await;
    }
    world.drain().await;
    let t = texts(&world, 1);
    assert_eq!(t.len(), 2, "link comment + the PM: comment: {t:?}");
    assert!(t[1].contains("shipping Friday") && t[1].contains("Jared Davis via") && !t[1].contains("PM:"), "{}", t[1]);
    // Its Basecamp webhook comes back: not mirrored to Jira, even with every comment mirrored.
    let echoed = world.basecamp.comments(TodoId(1))[1].id;
    world.enqueue(&world.comment_job(TodoId(1), echoed)).await;
    world.drain().await;
    // Basecamp → Jira, and that twin's Jira webhook comes back.
    let dev = world.basecamp.comment_as(TodoId(1), "Annie Bryan", "<div>DEV: repro steps attached</div>");
    world.enqueue(&world.comment_job(TodoId(1), dev)).await;
    world.drain().await;
    let twin = world.tracker.comments(&item).last().map(|c| c.id.clone()).unwrap();
    world.enqueue(&world.issue_comment_job(&item, &twin)).await;
    world.drain().await;
    assert_eq!(world.tracker.comments(&item).len(), 3, "two developer comments + one twin");
    assert_eq!(texts(&world, 1).len(), 3, "link + PM twin + the DEV original");
}

#[tokio::test]
async fn a_blocked_issue_posts_one_blocked_comment_and_one_unblocked_note() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let tick = world.basecamp.tick();
    world.tracker.edit(&item, tick, |i| i.status_name = "Blocked".into());
    for _ in 0..2 {
        world.enqueue(&world.item_job(&item)).await;
        world.drain().await;
    }
    world.tracker.edit(&item, tick, |i| i.status_name = "In Progress".into());
    for _ in 0..2 {
        world.enqueue(&world.item_job(&item)).await;
        world.drain().await;
    }
    let t = texts(&world, 1);
    assert_eq!(t.len(), 3, "link + blocked + unblocked: {t:?}");
    assert!(t[1].contains("Blocked:") && t[1].contains("status “Blocked”"), "{}", t[1]);
    assert!(t[2].contains("Unblocked:"), "{}", t[2]);
}

#[tokio::test]
async fn with_complete_on_merge_a_merged_pull_request_completes_its_todo_once() {
    let mut r = crate::testkit::route();
    r.complete_on_merge = true;
    r.status = crate::domain::StatusStrategy::PmOwned;
    let world = World::with(r, crate::testkit::users());
    let item = paired(&world, 1, "Fix login").await;
    let job = world.pr_job(3, &format!("Fix ({})", item.display_name()), "", "fix", "MERGED");
    world.enqueue(&job).await;
    world.drain().await;
    world.engine.sync_record(std::slice::from_ref(&job)).await.unwrap();
    assert!(world.basecamp.todo(TodoId(1)).unwrap().completed);
    assert_eq!(world.basecamp.calls.get("update_todo"), 1);
    // The completion's own webhook then transitions the issue (pm-owned).
    world.enqueue(&world.todo_job(TodoId(1))).await;
    world.drain().await;
    assert_eq!(world.tracker.item(&item).unwrap().status, crate::domain::StatusCategory::Done);
}

#[tokio::test]
async fn editing_a_pm_comment_updates_its_twin_on_the_todo() {
    let world = World::new();
    let item = paired(&world, 1, "Fix login").await;
    let pm = world.tracker.comment_as(&item, "Jared Davis", "<p>PM: shipping Friday</p>");
    world.enqueue(&world.issue_comment_job(&item, &pm)).await;
    world.drain().await;
    world.tracker.edit_comment(&item, &pm, "<p>PM: shipping Monday</p>");
    for _ in 0..2 {
        world.enqueue(&world.issue_comment_job(&item, &pm)).await;
        world.drain().await;
    }
    let t = texts(&world, 1);
    assert_eq!(t.len(), 2, "link + one twin: {t:?}");
    assert!(t[1].contains("shipping Monday"), "{}", t[1]);
    assert_eq!(world.basecamp.calls.get("update_comment"), 1, "the second delivery of the edit changed nothing");
}

/// The pairs as a worker that read the pair just before another worker saved it sees them: the first
/// `find_by_item` answers with the `stale` copy, everything else is the real store.
struct StaleRead {
    inner: std::sync::Arc<crate::adapters::memory::MemoryPairStore>,
    stale: std::sync::Mutex<Option<crate::domain::Pair>>,
}

#[async_trait::async_trait]
impl PairStore for StaleRead {
    async fn insert(
        &self,
        pair: &crate::domain::Pair,
    ) -> Result<crate::ports::Inserted<crate::domain::Pair>, crate::ports::StoreError> {
        self.inner.insert(pair).await
    }
    async fn replace(
        &self,
        pair: &crate::domain::Pair,
    ) -> Result<crate::ports::Replaced<crate::domain::Pair>, crate::ports::StoreError> {
        self.inner.replace(pair).await
    }
    async fn get(&self, key: &PairKey) -> Result<Option<crate::domain::Pair>, crate::ports::StoreError> {
        self.inner.get(key).await
    }
    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, crate::ports::StoreError> {
        self.inner.remove(key, version).await
    }
    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<crate::domain::Pair>, crate::ports::StoreError> {
        let stale = self.stale.lock().unwrap().take();
        match stale {
            Some(pair) => Ok(Some(pair)),
            None => self.inner.find_by_item(item).await,
        }
    }
    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit: usize,
    ) -> Result<Vec<crate::domain::Pair>, crate::ports::StoreError> {
        self.inner.list(route, state, limit).await
    }
}

#[tokio::test]
async fn a_worker_that_decided_from_a_stale_pair_writes_nothing_and_the_newest_edit_survives() {
    // The race `make bench` found in back-to-back bursts: worker A reads the to-do ("One"), the PM edits
    // it again ("Two"), A writes "One" to Jira and saves the pair. Worker B handles the Jira event of A's
    // write but read the pair before A saved it: to B both sides look changed, and last-writer-wins picks
    // Jira's newer "One" — which, written to Basecamp, would erase the PM's "Two".
    let world = World::new();
    let item = paired(&world, 1, "Draft").await;
    let key = PairKey { route: RouteId("web".into()), todo: TodoId(1) };
    let before_a = world.pairs.get(&key).await.unwrap().unwrap();
    world.basecamp.edit(TodoId(1), |t| t.title = "One".into());
    world.engine.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
    assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] One");
    world.basecamp.edit(TodoId(1), |t| t.title = "Two".into());
    // A's Jira write landed after the PM's second edit.
    world.tracker.edit(&item, world.basecamp.tick(), |_| {});
    let basecamp_writes = world.basecamp.calls.get("update_todo");

    let mut b = world.worker("b");
    b.pairs =
        std::sync::Arc::new(StaleRead { inner: world.pairs.clone(), stale: std::sync::Mutex::new(Some(before_a)) });
    b.sync_record(&[world.item_job(&item)]).await.unwrap();

    assert_eq!(world.basecamp.todo(TodoId(1)).unwrap().title, "Two", "the PM's newest edit survives");
    assert_eq!(world.basecamp.calls.get("update_todo"), basecamp_writes, "nothing written from the stale plan");
    // The PM's edit then arrives through its own webhook and reaches Jira.
    world.engine.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
    assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] Two");
    let pair = world.pairs.get(&key).await.unwrap().unwrap();
    assert!(pair.lease.is_none(), "the write lease is released: {:?}", pair.lease);
}
