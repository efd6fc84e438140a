//! Property tests of the engine through the queue, the mapper and the ports (memory adapters and fakes):
//! any interleaving of edits converges as ownership says, the sync's own writes coming back cause no
//! writes, and delivering any job twice changes nothing.

use std::time::Duration;

use proptest::prelude::*;

use crate::domain::{
    ConflictPolicy, DevItem, DevItemRef, Field, JiraAccountId, Job, Owner, PersonId, Route, StatusCategory,
    StatusStrategy, Todo, TodoId,
};
use crate::ports::JobProducer;
use crate::testkit::world::World;
use crate::testkit::{route, todo, users};

const PEOPLE: [(i64, &str); 3] =
    [(1_049_715_930, "acc-jane"), (1_049_715_913, "acc-ana"), (1_049_715_999, "acc-triage")];
const TITLES: [&str; 4] = ["Fix login", "Fix login redirect", "Ship it !P1", "Tidy up !p3"];
const LISTS: [&str; 3] = ["Sprint 1", "Bugs", "Sprint 2"];

#[derive(Debug, Clone)]
enum Op {
    PmTitle(usize),
    PmDescription(u8),
    PmComplete(bool),
    PmAssign(Option<usize>),
    PmList(usize),
    PmDue(Option<u8>),
    DevTitle(usize),
    DevStatus(u8),
    DevAssign(Option<usize>),
    DevHandLabel,
    /// A worker runs one batch now (otherwise events pile up and coalesce).
    Process,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..TITLES.len()).prop_map(Op::PmTitle),
        any::<u8>().prop_map(Op::PmDescription),
        any::<bool>().prop_map(Op::PmComplete),
        proptest::option::of(0..PEOPLE.len()).prop_map(Op::PmAssign),
        (0..LISTS.len()).prop_map(Op::PmList),
        proptest::option::of(1u8..28).prop_map(Op::PmDue),
        (0..TITLES.len()).prop_map(Op::DevTitle),
        (0u8..3).prop_map(Op::DevStatus),
        proptest::option::of(0..PEOPLE.len()).prop_map(Op::DevAssign),
        Just(Op::DevHandLabel),
        Just(Op::Process),
        Just(Op::Process),
    ]
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![Just(Owner::Basecamp), Just(Owner::Tracker), Just(Owner::Both)]
}

fn routes() -> impl Strategy<Value = Route> {
    (
        owner(),
        owner(),
        prop_oneof![Just(StatusStrategy::DevOwned), Just(StatusStrategy::PmOwned), Just(StatusStrategy::Bidirectional)],
        prop_oneof![
            Just(ConflictPolicy::LastWriterWins),
            Just(ConflictPolicy::BasecampWins),
            Just(ConflictPolicy::TrackerWins)
        ],
    )
        .prop_map(|(title, assignee, status, conflict_policy)| {
            let mut r = route();
            r.ownership.title = title;
            r.ownership.assignee = assignee;
            r.status = status;
            r.conflict_policy = conflict_policy;
            r
        })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => panic!("runtime: {e}"),
    }
}

const ID: TodoId = TodoId(1);

async fn item_ref(world: &World) -> DevItemRef {
    match world.item_of(ID).await {
        Some(i) => i,
        None => panic!("the to-do was not paired"),
    }
}

/// Applies one person's edit upstream and enqueues the webhook it would cause.
async fn perform(world: &World, item: &DevItemRef, op: &Op) {
    let person = |i: usize| PersonId(PEOPLE[i].0);
    let account = |i: usize| JiraAccountId(PEOPLE[i].1.to_owned());
    let pm = |f: &dyn Fn(&mut Todo)| world.basecamp.edit(ID, f);
    let dev = |f: &dyn Fn(&mut DevItem)| world.tracker.edit(item, world.basecamp.tick(), f);
    match op {
        Op::PmTitle(i) => pm(&|t| t.title = TITLES[*i].to_owned()),
        Op::PmDescription(n) => pm(&|t| t.description = format!("<p>note {n}</p>")),
        Op::PmComplete(done) => pm(&|t| t.completed = *done),
        Op::PmAssign(who) => pm(&|t| t.assignees = who.map(person).into_iter().collect()),
        Op::PmList(i) => pm(&|t| t.todolist_name = LISTS[*i].to_owned()),
        Op::PmDue(day) => pm(&|t| t.due_on = day.and_then(|d| chrono::NaiveDate::from_ymd_opt(2026, 12, u32::from(d)))),
        Op::DevTitle(i) => {
            let summary = world.engine.settings.routes[0].summary_for(TITLES[*i]);
            dev(&|d| d.summary.clone_from(&summary));
        }
        Op::DevStatus(c) => dev(&|d| {
            d.status = [StatusCategory::New, StatusCategory::Indeterminate, StatusCategory::Done][usize::from(*c)];
        }),
        Op::DevAssign(who) => dev(&|d| d.assignee = who.map(account)),
        Op::DevHandLabel => dev(&|d| {
            d.labels.insert("backend".to_owned());
        }),
        Op::Process => {
            world.drain_once().await;
            return;
        }
    }
    let job = if matches!(op, Op::DevTitle(_) | Op::DevStatus(_) | Op::DevAssign(_) | Op::DevHandLabel) {
        world.item_job(item)
    } else {
        world.todo_job(ID)
    };
    world.enqueue(&job).await;
}

/// Delivers one event per side (what the webhooks for our own writes, or the reconciler, would send)
/// and drains, until a round makes no upstream write. Returns the number of rounds that wrote.
async fn settle(world: &World, item: &DevItemRef) -> usize {
    let mut writing_rounds = 0;
    for _ in 0..6 {
        let before = world.basecamp.calls.writes() + world.tracker.calls.writes();
        world.enqueue(&world.todo_job(ID)).await;
        world.enqueue(&world.item_job(item)).await;
        world.drain().await;
        world.clock.advance(Duration::from_secs(120));
        world.drain().await;
        if world.basecamp.calls.writes() + world.tracker.calls.writes() == before {
            return writing_rounds;
        }
        writing_rounds += 1;
    }
    writing_rounds
}

/// Checks every synced field holds equal values on both sides, as ownership says.
fn converged(world: &World, item: &DevItemRef) -> Result<(), String> {
    let r = &world.engine.settings.routes[0];
    let users = users();
    let todo = world.basecamp.todo(ID).ok_or("to-do vanished")?;
    let issue = world.tracker.item(item).ok_or("item vanished")?;
    let b = r.project_todo(&users, &todo);
    let t = r.project_item(&issue);
    for field in Field::ALL {
        let ok = match field {
            Field::Title => r.tracker_title(&b.title) == t.title,
            // Unassigned in the tracker is what a to-do with no mapped assignee means.
            Field::Assignee => {
                b.assignee == t.assignee
                    || (t.assignee.is_none() && todo.assignees.iter().all(|p| users.jira_for(*p).is_none()))
            }
            _ => b.same(&t, field),
        };
        if !ok {
            return Err(format!("{field} differs: basecamp {:?} vs tracker {:?}", b.show(field), t.show(field)));
        }
    }
    if !issue.labels.contains("bc-1") {
        return Err("the marker label was removed".into());
    }
    Ok(())
}

impl World {
    async fn drain_once(&self) {
        if let Err(e) =
            crate::sync::run_queue_once(&self.engine, self.queue.as_ref(), 10, Duration::from_secs(30)).await
        {
            panic!("worker failed: {e}");
        }
    }
}

async fn paired_world(route: Route) -> (World, DevItemRef) {
    let world = World::with(route, users());
    world.create_todo(todo(ID.0, "Fix login")).await;
    world.drain().await;
    let item = item_ref(&world).await;
    (world, item)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_of_edits_converges_once_events_stop(r in routes(), ops in proptest::collection::vec(op(), 1..24)) {
        let result: Result<(), String> = block_on(async {
            let (world, item) = paired_world(r).await;
            for op in &ops {
                perform(&world, &item, op).await;
            }
            let rounds = settle(&world, &item).await;
            if rounds > 3 {
                return Err(format!("still writing after {rounds} rounds: an echo loop"));
            }
            converged(&world, &item)?;
            if world.tracker.items().len() != 1 {
                return Err("more than one item".into());
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{:?}", result);
    }

    #[test]
    fn replaying_the_syncs_own_writes_as_events_causes_no_writes(r in routes(), ops in proptest::collection::vec(op(), 1..16)) {
        let result: Result<(), String> = block_on(async {
            let (world, item) = paired_world(r).await;
            for op in &ops {
                perform(&world, &item, op).await;
            }
            settle(&world, &item).await;
            let writes = world.basecamp.calls.writes() + world.tracker.calls.writes();
            // Every write the sync made comes back as a webhook: one per side, several times.
            for _ in 0..3 {
                world.enqueue(&world.todo_job(ID)).await;
                world.enqueue(&world.item_job(&item)).await;
            }
            let outcomes = world.drain_outcomes().await;
            let after = world.basecamp.calls.writes() + world.tracker.calls.writes();
            if after != writes {
                return Err(format!("{} echo write(s); outcomes {outcomes:?}", after - writes));
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{:?}", result);
    }

    #[test]
    fn delivering_any_job_twice_changes_nothing(r in routes(), ops in proptest::collection::vec(op(), 1..12)) {
        let result: Result<(), String> = block_on(async {
            let (world, item) = paired_world(r).await;
            let mut jobs: Vec<Job> = Vec::new();
            for op in &ops {
                perform(&world, &item, op).await;
                let job = if matches!(op, Op::DevTitle(_) | Op::DevStatus(_) | Op::DevAssign(_) | Op::DevHandLabel) {
                    world.item_job(&item)
                } else {
                    world.todo_job(ID)
                };
                jobs.push(job);
            }
            for job in &jobs {
                world.enqueue(job).await;
            }
            world.drain().await;
            let state = (world.basecamp.todo(ID), world.tracker.item(&item));
            let writes = world.basecamp.calls.writes() + world.tracker.calls.writes();
            for job in &jobs {
                // Again through a fresh queue message (the delivery log must absorb it)…
                let body = job.to_wire().map_err(|e| e.to_string())?;
                world.queue.send(&job.record().group_id(), &format!("again-{}", job.delivery()), &body).await.map_err(|e| e.to_string())?;
            }
            world.drain().await;
            // …and straight into the engine (the snapshot must absorb it).
            for job in &jobs {
                world.engine.sync_record(std::slice::from_ref(job)).await.map_err(|e| e.to_string())?;
            }
            let same_state = (world.basecamp.todo(ID), world.tracker.item(&item)) == state;
            let same_writes = world.basecamp.calls.writes() + world.tracker.calls.writes() == writes;
            if !(same_state && same_writes) {
                return Err(format!("state unchanged: {same_state}, writes unchanged: {same_writes}"));
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{:?}", result);
    }

    #[test]
    fn the_title_template_round_trips_any_unicode_title(title in "\\PC*", code in "[A-Z][A-Z0-9]{0,9}") {
        let t = crate::domain::TitleTemplate::parse(crate::domain::TitleTemplate::DEFAULT, &code);
        prop_assert!(t.is_ok());
        if let Ok(t) = t {
            let rendered = t.render(&title);
            prop_assert_eq!(t.extract(&rendered), title.as_str());
        }
    }
}
