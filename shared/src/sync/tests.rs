//! Unit tests for `decide`, one rule each, named as the rule.
#![allow(clippy::unwrap_used)]

use crate::domain::{
    ConflictPolicy, DevItem, DevItemRef, Field, JiraAccountId, JiraIssueId, JiraKey, Owner, Pair, PairState, PersonId,
    Priority, StatusCategory, StatusStrategy, Todo,
};
use crate::ports::Resolution;
use crate::testkit::{at, route, todo, users};

use super::decide::{DecideInput, Fresh, decide, new_item, snapshot_after_create};
use super::plan::{Plan, Side, Skip};

fn item_ref() -> DevItemRef {
    DevItemRef::Jira { id: JiraIssueId::parse("10001").unwrap(), key: JiraKey::parse("WEB-1").unwrap() }
}

/// The item campbridge would create for `t`, as the tracker returns it.
fn created(t: &Todo) -> DevItem {
    let draft = new_item(&route(), &users(), t);
    DevItem {
        item: item_ref(),
        summary: draft.summary,
        description: draft.description,
        status: StatusCategory::New,
        status_name: "To Do".into(),
        assignee: draft.assignee,
        priority: draft.priority,
        labels: draft.labels,
        components: draft.components,
        due: draft.due,
        url: "https://example.atlassian.net/browse/WEB-1".into(),
        updated_at: at(1),
        flagged: false,
    }
}

/// A linked pair for `t` ⇄ `i`, as right after creation.
fn linked(t: &Todo, i: &DevItem) -> Pair {
    let mut p = Pair::pending(route().id, t.project, t.id, "w", at(0), at(60));
    p.state = PairState::Linked;
    p.item = Some(i.item.clone());
    p.lease = None;
    p.snapshot = snapshot_after_create(&route(), &users(), t, i);
    p
}

fn run(r: &crate::domain::Route, changed: Side, pair: Option<&Pair>, t: Fresh<&Todo>, i: Fresh<&DevItem>) -> Plan {
    let users = users();
    decide(&DecideInput { route: r, users: &users, changed, pair, todo: t, item: i })
}

fn apply(plan: Plan) -> Box<super::plan::Apply> {
    match plan {
        Plan::Apply(a) => a,
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[test]
fn a_todo_in_an_unrouted_list_creates_nothing() {
    let t = Todo { todolist_name: "Marketing".into(), ..todo(1, "Write copy") };
    let plan = run(&route(), Side::Basecamp, None, Fresh::Found(&t), Fresh::NotFetched);
    assert!(matches!(plan, Plan::Skip(Skip::Filtered(_))), "{plan:?}");
}

#[test]
fn a_todo_without_the_opt_in_marker_creates_nothing() {
    let mut r = route();
    r.filter.marker = Some("#dev".into());
    let plain = todo(1, "Fix login");
    assert!(matches!(
        run(&r, Side::Basecamp, None, Fresh::Found(&plain), Fresh::NotFetched),
        Plan::Skip(Skip::Filtered(_))
    ));
    let marked = todo(2, "Fix login #dev");
    assert!(matches!(run(&r, Side::Basecamp, None, Fresh::Found(&marked), Fresh::NotFetched), Plan::Create(_)));
}

#[test]
fn a_trashed_todo_creates_nothing() {
    let t = Todo { status: crate::domain::RecordingStatus::Archived, ..todo(1, "Old") };
    assert!(matches!(
        run(&route(), Side::Basecamp, None, Fresh::Found(&t), Fresh::NotFetched),
        Plan::Skip(Skip::Filtered(_))
    ));
}

#[test]
fn a_new_todo_is_read_before_anything_is_decided() {
    assert_eq!(run(&route(), Side::Basecamp, None, Fresh::NotFetched, Fresh::NotFetched), Plan::Fetch(Side::Basecamp));
}

#[test]
fn a_routed_todo_becomes_one_item_with_template_priority_labels_and_triage() {
    let t =
        Todo { todolist_name: "Bugs".into(), description: "<p>It breaks</p>".into(), ..todo(1, "Login loops URGENT") };
    let Plan::Create(draft) = run(&route(), Side::Basecamp, None, Fresh::Found(&t), Fresh::NotFetched) else {
        panic!("expected Create")
    };
    assert_eq!(draft.summary, "[BC][WEB] Login loops URGENT");
    assert_eq!(draft.priority, Some(Priority::Highest));
    assert_eq!(draft.labels.iter().map(String::as_str).collect::<Vec<_>>(), ["bug", "escalated"]);
    assert_eq!(draft.components.iter().map(String::as_str).collect::<Vec<_>>(), ["Web"]);
    assert_eq!(draft.assignee, Some(JiraAccountId("acc-triage".into())), "no assignee → triage");
    assert!(draft.description.contains("It breaks") && draft.description.contains(&t.app_url), "{}", draft.description);
    assert_eq!(draft.marker.label(), "bc-1");
}

#[test]
fn a_mapped_assignee_is_used_instead_of_triage() {
    let t = Todo { assignees: vec![PersonId(42), PersonId(1_049_715_930)], ..todo(1, "Fix") };
    let Plan::Create(draft) = run(&route(), Side::Basecamp, None, Fresh::Found(&t), Fresh::NotFetched) else {
        panic!("expected Create")
    };
    assert_eq!(draft.assignee, Some(JiraAccountId("acc-jane".into())), "first mapped assignee wins");
}

#[test]
fn a_tracker_event_for_an_unpaired_item_is_not_ours() {
    let i = created(&todo(1, "x"));
    assert_eq!(run(&route(), Side::Tracker, None, Fresh::NotFetched, Fresh::Found(&i)), Plan::Skip(Skip::NotPaired));
}

#[test]
fn a_tracker_event_while_the_pair_is_pending_waits_for_the_creator() {
    let t = todo(1, "x");
    let pending = Pair::pending(route().id, t.project, t.id, "w", at(0), at(60));
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pending), Fresh::NotFetched, Fresh::NotFetched),
        Plan::Skip(Skip::Pending)
    );
}

#[test]
fn our_own_write_coming_back_is_a_no_op_whoever_the_actor_is() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&t), Fresh::NotFetched),
        Plan::Skip(Skip::Unchanged)
    );
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&i)),
        Plan::Skip(Skip::Unchanged)
    );
}

#[test]
fn a_basecamp_title_edit_reads_the_tracker_then_updates_the_summary() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let edited = Todo { title: "Fix login redirect".into(), updated_at: at(5), ..t };
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&edited), Fresh::NotFetched),
        Plan::Fetch(Side::Tracker),
        "title is owned by both: the tracker is read to detect a conflict"
    );
    let a = apply(run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&edited), Fresh::Found(&i)));
    assert_eq!(a.item.summary.as_deref(), Some("[BC][WEB] Fix login redirect"));
    assert!(a.todo.is_empty());
    assert_eq!(a.snapshot.tracker.title, "Fix login redirect");
    assert!(a.conflicts.is_empty());
}

#[test]
fn a_description_edit_crosses_without_reading_the_tracker() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let edited = Todo { description: "<p>Now with steps</p>".into(), ..t };
    let a = apply(run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&edited), Fresh::NotFetched));
    assert!(a.item.description.as_deref().is_some_and(|d| d.contains("Now with steps")));
    assert_eq!(a.writes(), 1);
}

#[test]
fn a_tracker_edit_of_a_basecamp_owned_field_is_put_back() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let edited = DevItem { description: "<p>dev rewrote it</p>".into(), updated_at: at(9), ..i.clone() };
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&edited)),
        Plan::Fetch(Side::Basecamp)
    );
    let a = apply(run(&route(), Side::Tracker, Some(&pair), Fresh::Found(&t), Fresh::Found(&edited)));
    assert_eq!(a.item.description, Some(i.description.clone()));
    assert!(a.notes.iter().any(|n| n.contains("owned by Basecamp")), "{:?}", a.notes);
}

#[test]
fn under_dev_owned_tracker_done_completes_the_todo_and_reopening_uncompletes_it() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let done = DevItem { status: StatusCategory::Done, updated_at: at(9), ..i.clone() };
    let a = apply(run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&done)));
    assert_eq!(a.todo.completed, Some(true));
    assert!(a.item.is_empty());

    let mut after = pair.clone();
    after.snapshot = a.snapshot.clone();
    let reopened = DevItem { status: StatusCategory::Indeterminate, updated_at: at(10), ..done };
    let a = apply(run(&route(), Side::Tracker, Some(&after), Fresh::NotFetched, Fresh::Found(&reopened)));
    assert_eq!(a.todo.completed, Some(false));
}

#[test]
fn moving_between_open_statuses_changes_nothing_in_basecamp() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let started = DevItem { status: StatusCategory::Indeterminate, updated_at: at(9), ..i };
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&started)),
        Plan::Skip(Skip::Unchanged)
    );
}

#[test]
fn under_dev_owned_a_basecamp_completion_is_put_back_after_reading_the_tracker() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let completed = Todo { completed: true, updated_at: at(9), ..t };
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&completed), Fresh::NotFetched),
        Plan::Fetch(Side::Tracker)
    );
    let a = apply(run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&completed), Fresh::Found(&i)));
    assert_eq!(a.todo.completed, Some(false));
    assert_eq!(a.item.status, None);
}

#[test]
fn under_pm_owned_completion_transitions_the_item_to_done() {
    let mut r = route();
    r.status = StatusStrategy::PmOwned;
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let completed = Todo { completed: true, updated_at: at(9), ..t };
    let a = apply(run(&r, Side::Basecamp, Some(&pair), Fresh::Found(&completed), Fresh::NotFetched));
    assert_eq!(a.item.status, Some(StatusCategory::Done));
    assert!(!a.item.has_field_edits(), "a transition only");
}

#[test]
fn under_bidirectional_status_crosses_both_ways() {
    let mut r = route();
    r.status = StatusStrategy::Bidirectional;
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let completed = Todo { completed: true, updated_at: at(9), ..t.clone() };
    let a = apply(run(&r, Side::Basecamp, Some(&pair), Fresh::Found(&completed), Fresh::Found(&i)));
    assert_eq!(a.item.status, Some(StatusCategory::Done));
    let done = DevItem { status: StatusCategory::Done, updated_at: at(9), ..i };
    let a = apply(run(&r, Side::Tracker, Some(&pair), Fresh::Found(&t), Fresh::Found(&done)));
    assert_eq!(a.todo.completed, Some(true));
}

fn both_edit_title(policy: ConflictPolicy, todo_at: i64, item_at: i64) -> Box<super::plan::Apply> {
    let mut r = route();
    r.conflict_policy = policy;
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let pm = Todo { title: "Fix login (PM)".into(), updated_at: at(todo_at), ..t };
    let dev = DevItem { summary: "[BC][WEB] Fix login (dev)".into(), updated_at: at(item_at), ..i };
    apply(run(&r, Side::Basecamp, Some(&pair), Fresh::Found(&pm), Fresh::Found(&dev)))
}

#[test]
fn a_title_changed_on_both_sides_is_a_conflict_settled_by_last_writer_wins() {
    let a = both_edit_title(ConflictPolicy::LastWriterWins, 10, 20);
    assert_eq!(a.conflicts.len(), 1);
    assert_eq!(a.conflicts[0].field, Field::Title);
    assert_eq!(a.conflicts[0].resolution, Resolution::TookTracker);
    assert_eq!(a.todo.title.as_deref(), Some("Fix login (dev)"));
    assert!(a.item.summary.is_none());

    let a = both_edit_title(ConflictPolicy::LastWriterWins, 30, 20);
    assert_eq!(a.conflicts[0].resolution, Resolution::TookBasecamp);
    assert_eq!(a.item.summary.as_deref(), Some("[BC][WEB] Fix login (PM)"));
}

#[test]
fn basecamp_wins_and_tracker_wins_ignore_timestamps() {
    let a = both_edit_title(ConflictPolicy::BasecampWins, 10, 20);
    assert_eq!(a.item.summary.as_deref(), Some("[BC][WEB] Fix login (PM)"));
    let a = both_edit_title(ConflictPolicy::TrackerWins, 30, 20);
    assert_eq!(a.todo.title.as_deref(), Some("Fix login (dev)"));
}

#[test]
fn a_manual_conflict_overwrites_neither_side_and_stays_open() {
    let a = both_edit_title(ConflictPolicy::Manual, 10, 20);
    assert_eq!(a.conflicts.len(), 1);
    assert_eq!(a.conflicts[0].resolution, Resolution::Open);
    assert!(a.todo.is_empty() && a.item.is_empty(), "neither side is written");
    assert!(a.open_conflicts.contains(&Field::Title));
}

#[test]
fn a_field_with_an_open_conflict_is_not_synced_until_resolved() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let mut pair = linked(&t, &i);
    pair.open_conflicts.insert(Field::Title);
    let edited = Todo { title: "Another title".into(), updated_at: at(9), ..t };
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&edited), Fresh::Found(&i)),
        Plan::Skip(Skip::Unchanged)
    );
}

#[test]
fn both_sides_changed_to_the_same_value_is_no_conflict() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let pair = linked(&t, &i);
    let pm = Todo { title: "Same".into(), updated_at: at(9), ..t };
    let dev = DevItem { summary: "[BC][WEB] Same".into(), updated_at: at(9), ..i };
    let a = apply(run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&pm), Fresh::Found(&dev)));
    assert!(a.conflicts.is_empty());
    assert_eq!(a.writes(), 0);
    assert_eq!(a.snapshot.todo.title, "Same");
}

#[test]
fn a_late_tracker_read_older_than_one_already_applied_is_stale() {
    let t = todo(1, "Fix login");
    let i = created(&t);
    let mut pair = linked(&t, &i);
    pair.item_seen_at = Some(at(50));
    let old = DevItem { summary: "[BC][WEB] old".into(), updated_at: at(40), ..i };
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&old)),
        Plan::Skip(Skip::Stale(Side::Tracker))
    );
}

#[test]
fn labels_added_by_hand_on_the_tracker_survive_a_sync() {
    let t = Todo { todolist_name: "Bugs".into(), ..todo(1, "Fix login") };
    let mut i = created(&t);
    i.labels.insert("backend".into());
    let pair = linked(&t, &i);
    let moved = Todo { todolist_name: "Sprint 3".into(), updated_at: at(9), ..t };
    let a = apply(run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&moved), Fresh::NotFetched));
    assert_eq!(a.item.labels_remove.iter().map(String::as_str).collect::<Vec<_>>(), ["bug"]);
    assert!(a.item.labels_add.is_empty());
}

#[test]
fn a_tracker_reassignment_maps_back_through_the_user_table_and_keeps_other_assignees() {
    let mut r = route();
    r.ownership.assignee = Owner::Both;
    let t = Todo { assignees: vec![PersonId(1_049_715_930), PersonId(77)], ..todo(1, "Fix login") };
    let i = created(&t);
    let pair = linked(&t, &i);
    let reassigned = DevItem { assignee: Some(JiraAccountId("acc-ana".into())), updated_at: at(9), ..i };
    assert_eq!(
        run(&r, Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&reassigned)),
        Plan::Fetch(Side::Basecamp)
    );
    let a = apply(run(&r, Side::Tracker, Some(&pair), Fresh::Found(&t), Fresh::Found(&reassigned)));
    assert_eq!(
        a.todo.assignees,
        Some(vec![PersonId(1_049_715_913), PersonId(77)]),
        "Jane → Ana; the unmapped 77 stays"
    );
    assert!(a.todo.title.is_none() && a.todo.completed.is_none(), "nothing else is touched");
}

#[test]
fn an_unmapped_tracker_assignee_is_not_written_to_basecamp() {
    let mut r = route();
    r.ownership.assignee = Owner::Tracker;
    let t = Todo { assignees: vec![PersonId(1_049_715_930)], ..todo(1, "Fix login") };
    let i = created(&t);
    let pair = linked(&t, &i);
    let stranger = DevItem { assignee: Some(JiraAccountId("acc-stranger".into())), updated_at: at(9), ..i };
    let a = apply(run(&r, Side::Tracker, Some(&pair), Fresh::Found(&t), Fresh::Found(&stranger)));
    assert!(a.todo.assignees.is_none());
    assert!(a.notes.iter().any(|n| n.contains("not in the user table")), "{:?}", a.notes);
}

#[test]
fn a_title_longer_than_the_tracker_allows_is_cut_and_its_return_is_no_echo() {
    let long = "x".repeat(400);
    let t = todo(1, &long);
    let draft = new_item(&route(), &users(), &t);
    assert_eq!(draft.summary.chars().count(), crate::domain::MAX_SUMMARY_CHARS);
    let i = created(&t);
    let pair = linked(&t, &i);
    assert_eq!(
        run(&route(), Side::Tracker, Some(&pair), Fresh::NotFetched, Fresh::Found(&i)),
        Plan::Skip(Skip::Unchanged)
    );
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Found(&t), Fresh::NotFetched),
        Plan::Skip(Skip::Unchanged)
    );
}

#[test]
fn a_gone_todo_is_skipped_and_nothing_is_written() {
    let t = todo(1, "x");
    let i = created(&t);
    let pair = linked(&t, &i);
    assert_eq!(
        run(&route(), Side::Basecamp, Some(&pair), Fresh::Gone, Fresh::NotFetched),
        Plan::Skip(Skip::Gone(Side::Basecamp))
    );
}
