//! The pure heart of the sync: given a route, the pair and fresh reads, decide what to write.
//!
//! Rules, per synced field (a 3-way merge against the pair's snapshot):
//! - a side *changed* when its fresh value differs from its snapshot; neither changed → nothing to do,
//!   which is how our own writes coming back are recognised (no echo, whoever the actor is);
//! - the owner's value is enforced on both sides (a non-owner change is put back), so the sides converge;
//! - with `both`, a change on one side crosses over; a change on both sides to different values is a
//!   conflict, settled by the route's policy and always logged;
//! - a value is only written after it was freshly read: when the deciding value lives on the side that
//!   was not read, or a `both` field needs the other side for conflict detection, the plan asks to fetch;
//! - a tracker summary cut down to the bare template (`[BC][WEB]`) holds no title: whoever owns the title,
//!   it never becomes the to-do's title; the to-do's title is written back to the summary.

use chrono::{DateTime, Utc};

use crate::domain::{
    ConflictPolicy, DevItem, Field, Fields, NewDevItem, Owner, Pair, Route, SyncMarker, Todo, UserTable,
};
use crate::ports::{DevItemPatch, Resolution, TodoPatch};

use super::plan::{Apply, ConflictFound, Plan, Side, Skip};

/// A read of one side: not done, done and found nothing, or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh<T> {
    NotFetched,
    Gone,
    Found(T),
}

impl<T> Fresh<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Self::Found(t) => Some(t),
            _ => None,
        }
    }
    pub fn is_fetched(&self) -> bool {
        !matches!(self, Self::NotFetched)
    }
}

/// Everything `decide` looks at.
#[derive(Debug, Clone, Copy)]
pub struct DecideInput<'a> {
    pub route: &'a Route,
    pub users: &'a UserTable,
    /// The side the job came from.
    pub changed: Side,
    pub pair: Option<&'a Pair>,
    pub todo: Fresh<&'a Todo>,
    pub item: Fresh<&'a DevItem>,
}

/// Decides what to do about one record. Pure: same input, same plan.
pub fn decide(input: &DecideInput<'_>) -> Plan {
    let DecideInput { route, users, changed, pair, todo, item } = *input;
    let linked = pair.filter(|p| p.is_linked());
    let Some(pair) = linked else {
        return match (changed, pair, todo) {
            (Side::Tracker, None, _) => Plan::Skip(Skip::NotPaired),
            (Side::Tracker, Some(_), _) => Plan::Skip(Skip::Pending),
            (Side::Basecamp, _, Fresh::NotFetched) => Plan::Fetch(Side::Basecamp),
            (Side::Basecamp, _, Fresh::Gone) => Plan::Skip(Skip::Gone(Side::Basecamp)),
            (Side::Basecamp, _, Fresh::Found(todo)) => match route.admits(todo) {
                Err(why) => Plan::Skip(Skip::Filtered(why)),
                Ok(()) => Plan::Create(Box::new(new_item(route, users, todo))),
            },
        };
    };

    // The side the job came from must be read first.
    match (changed, todo, item) {
        (Side::Basecamp, Fresh::NotFetched, _) => return Plan::Fetch(Side::Basecamp),
        (Side::Tracker, _, Fresh::NotFetched) => return Plan::Fetch(Side::Tracker),
        _ => {}
    }
    if matches!(todo, Fresh::Gone) {
        return Plan::Skip(Skip::Gone(Side::Basecamp));
    }
    if matches!(item, Fresh::Gone) {
        return Plan::Skip(Skip::Gone(Side::Tracker));
    }
    if todo.found().zip(pair.todo_seen_at).is_some_and(|(t, seen)| t.updated_at < seen) {
        return Plan::Skip(Skip::Stale(Side::Basecamp));
    }
    if item.found().zip(pair.item_seen_at).is_some_and(|(i, seen)| i.updated_at < seen) {
        return Plan::Skip(Skip::Stale(Side::Tracker));
    }

    let base = &pair.snapshot;
    let b_now = todo.found().map_or_else(|| base.todo.clone(), |t| route.project_todo(users, t));
    let t_now = item.found().map_or_else(|| base.tracker.clone(), |i| route.project_item(i));

    // Which fields moved, and is every value we would act on fresh?
    let mut moved = Vec::new();
    for field in Field::ALL {
        if pair.open_conflicts.contains(&field) {
            continue;
        }
        let b_changed = !b_now.same(&base.todo, field);
        let t_changed = !t_now.same(&base.tracker, field);
        if b_changed || t_changed {
            moved.push((field, b_changed, t_changed));
        }
    }
    if moved.is_empty() {
        return Plan::Skip(Skip::Unchanged);
    }
    for &(field, b_changed, t_changed) in &moved {
        let owner = route.owner(field);
        // A summary cut down to the bare template holds no title: Basecamp's title is written back.
        if field == Field::Title && t_changed && t_now.title.is_empty() && !todo.is_fetched() {
            return Plan::Fetch(Side::Basecamp);
        }
        let need_basecamp = match owner {
            // A tracker-side change to a Basecamp-owned field is put back from a fresh to-do.
            Owner::Basecamp => t_changed,
            // Writing assignees needs the to-do's current list (other assignees are kept).
            Owner::Tracker => b_changed || (field == Field::Assignee && t_changed),
            Owner::Both => true,
        };
        let need_tracker = match owner {
            Owner::Basecamp => false,
            Owner::Tracker => b_changed,
            Owner::Both => true,
        };
        if need_basecamp && !todo.is_fetched() {
            return Plan::Fetch(Side::Basecamp);
        }
        if need_tracker && !item.is_fetched() {
            return Plan::Fetch(Side::Tracker);
        }
    }

    let mut apply = Apply {
        todo: TodoPatch::default(),
        item: DevItemPatch::default(),
        snapshot: base.clone(),
        conflicts: Vec::new(),
        open_conflicts: pair.open_conflicts.clone(),
        todo_seen_at: max_time(pair.todo_seen_at, todo.found().map(|t| t.updated_at)),
        item_seen_at: max_time(pair.item_seen_at, item.found().map(|i| i.updated_at)),
        notes: Vec::new(),
    };
    // Start from what each side holds now; writes below move these to the target values.
    let mut next_b = b_now.clone();
    let mut next_t = t_now.clone();

    for (field, b_changed, t_changed) in moved {
        let bare_title = field == Field::Title && t_now.title.is_empty();
        let target = match route.owner(field) {
            _ if bare_title => {
                apply.notes.push(
                    "the tracker's summary was cut down to the bare template, which holds no title: the to-do's \
                     title was written back"
                        .to_owned(),
                );
                Side::Basecamp
            }
            Owner::Basecamp => {
                if t_changed && !b_now.same(&t_now, field) {
                    apply.notes.push(format!("{field} is owned by Basecamp: the tracker's change was put back"));
                }
                Side::Basecamp
            }
            Owner::Tracker => {
                if b_changed && !b_now.same(&t_now, field) {
                    apply.notes.push(format!("{field} is owned by the tracker: the Basecamp change was put back"));
                }
                Side::Tracker
            }
            Owner::Both if b_changed && t_changed && !b_now.same(&t_now, field) => {
                let (winner, resolution) = settle(route.conflict_policy, todo.found().copied(), item.found().copied());
                apply.conflicts.push(ConflictFound {
                    field,
                    basecamp_value: b_now.show(field),
                    tracker_value: t_now.show(field),
                    resolution: resolution.clone(),
                });
                match winner {
                    Some(side) => side,
                    None => {
                        apply.open_conflicts.insert(field);
                        apply.notes.push(format!("{field} changed on both sides: left for a person to resolve"));
                        continue;
                    }
                }
            }
            Owner::Both if b_changed => Side::Basecamp,
            Owner::Both => Side::Tracker,
        };
        match target {
            Side::Basecamp => {
                if !t_now.same(&b_now, field) {
                    write_tracker(&mut apply.item, route, field, &b_now, &t_now);
                }
                next_t.take(&b_now, field);
                next_t.title = route.tracker_title(&next_t.title);
            }
            Side::Tracker => {
                if !b_now.same(&t_now, field) {
                    match write_basecamp(&mut apply.todo, users, field, &t_now, todo.found().copied()) {
                        Ok(()) => next_b.take(&t_now, field),
                        Err(note) => apply.notes.push(note),
                    }
                } else {
                    next_b.take(&t_now, field);
                }
            }
        }
    }

    // The to-do as it will stand after the patch, re-projected, so derived values (the description
    // that embeds the title, the triage fallback) are recorded exactly as the next read will see them.
    if let Some(t) = todo.found().filter(|_| !apply.todo.is_empty()) {
        let projected = route.project_todo(users, &patched_todo(t, &apply.todo));
        // Not the description: it embeds to-do values, and the tracker still holds the old rendering,
        // so the next read must see it as changed.
        for field in [Field::Title, Field::Status, Field::Assignee] {
            next_b.take(&projected, field);
        }
    }
    apply.snapshot.todo = next_b;
    apply.snapshot.tracker = next_t;

    if apply.todo.is_empty() && apply.item.is_empty() && apply.conflicts.is_empty() && apply.snapshot == *base {
        return Plan::Skip(Skip::Unchanged);
    }
    Plan::Apply(Box::new(apply))
}

/// The item a new to-do becomes.
pub fn new_item(route: &Route, users: &UserTable, todo: &Todo) -> NewDevItem {
    let fields = route.project_todo(users, todo);
    NewDevItem {
        summary: route.summary_for(&fields.title),
        description: fields.description,
        assignee: route.assignee_for(users, todo),
        priority: fields.priority,
        labels: fields.labels,
        components: fields.components,
        due: fields.due,
        fields: route.create_fields.clone(),
        marker: SyncMarker { route: route.id.clone(), todo: todo.id },
    }
}

/// The snapshot right after creating `item` for `todo` from `draft`. A create carries no status, so the
/// to-do's completion is recorded as the item's: a to-do completed before its item existed reads as a
/// Basecamp change next time, and the status rule settles it.
pub fn snapshot_after_create(route: &Route, users: &UserTable, todo: &Todo, item: &DevItem) -> crate::domain::Snapshot {
    let mut seen = route.project_todo(users, todo);
    let tracker = route.project_item(item);
    seen.done = tracker.done;
    crate::domain::Snapshot { todo: seen, tracker }
}

/// The snapshot after linking an item that a stopped worker created, from a version of the to-do nobody
/// recorded (it may be older than the one in hand): both sides as the item stands. The next decision then
/// sees every way the to-do differs from the item as a Basecamp change and applies the owner rules to it,
/// instead of taking the to-do in hand as already synced.
///
/// Priority is the exception: a to-do without a marker leaves the item at Jira's default, which is not a
/// value the to-do side holds, so only a marker counts as a change.
pub fn snapshot_after_recovery(
    route: &Route,
    users: &UserTable,
    todo: &Todo,
    item: &DevItem,
) -> crate::domain::Snapshot {
    let found = route.project_item(item);
    let mut seen = found.clone();
    if route.project_todo(users, todo).priority.is_none() {
        seen.priority = None;
    }
    crate::domain::Snapshot { todo: seen, tracker: found }
}

/// Who wins a conflict under `policy`; `None` leaves it open.
fn settle(policy: ConflictPolicy, todo: Option<&Todo>, item: Option<&DevItem>) -> (Option<Side>, Resolution) {
    let side = match policy {
        ConflictPolicy::BasecampWins => Some(Side::Basecamp),
        ConflictPolicy::TrackerWins => Some(Side::Tracker),
        ConflictPolicy::Manual => None,
        ConflictPolicy::LastWriterWins => match (todo, item) {
            (Some(t), Some(i)) if i.updated_at > t.updated_at => Some(Side::Tracker),
            _ => Some(Side::Basecamp),
        },
    };
    let resolution = match side {
        Some(Side::Basecamp) => Resolution::TookBasecamp,
        Some(Side::Tracker) => Resolution::TookTracker,
        None => Resolution::Open,
    };
    (side, resolution)
}

pub(super) fn write_tracker(patch: &mut DevItemPatch, route: &Route, field: Field, to: &Fields, now: &Fields) {
    match field {
        Field::Title => patch.summary = Some(route.summary_for(&to.title)),
        Field::Description => patch.description = Some(to.description.clone()),
        Field::Status => {
            patch.status =
                Some(if to.done { crate::domain::StatusCategory::Done } else { crate::domain::StatusCategory::New });
        }
        // Unassigned means "with triage" on the tracker.
        Field::Assignee => patch.assignee = Some(to.assignee.clone().or_else(|| route.triage.clone())),
        Field::DueDate => patch.due = Some(to.due),
        // A removed marker means the route's default priority: Jira has no "no priority" (null is refused).
        Field::Priority => patch.priority = Some(to.priority.unwrap_or(route.default_priority)),
        Field::Labels => {
            patch.labels_add = to.labels.difference(&now.labels).cloned().collect();
            patch.labels_remove = now.labels.difference(&to.labels).cloned().collect();
        }
        Field::Components => {
            patch.components_add = to.components.difference(&now.components).cloned().collect();
            patch.components_remove = now.components.difference(&to.components).cloned().collect();
        }
    }
}

/// Adds `field`'s value from `to` to the Basecamp patch, or says why it cannot be written there.
pub(super) fn write_basecamp(
    patch: &mut TodoPatch,
    users: &UserTable,
    field: Field,
    to: &Fields,
    todo: Option<&Todo>,
) -> Result<(), String> {
    match field {
        Field::Title => patch.title = Some(to.title.clone()),
        Field::Status => patch.completed = Some(to.done),
        Field::Assignee => {
            let Some(todo) = todo else {
                return Err("assignee not written to Basecamp: the to-do was not read".to_owned());
            };
            // Keep assignees the tracker cannot see (no Jira mapping); replace the mapped ones.
            let mut assignees: Vec<_> =
                todo.assignees.iter().copied().filter(|p| users.jira_for(*p).is_none()).collect();
            match &to.assignee {
                None => {}
                Some(account) => match users.basecamp_for(account) {
                    Some(person) => assignees.insert(0, person),
                    None => {
                        return Err(format!(
                            "assignee not written to Basecamp: Jira account {account} is not in the user table"
                        ));
                    }
                },
            }
            patch.assignees = Some(assignees);
        }
        Field::Description | Field::DueDate | Field::Priority | Field::Labels | Field::Components => {
            return Err(format!("{field} flows Basecamp → tracker only; not written to Basecamp"));
        }
    }
    Ok(())
}

/// `todo` with `patch` applied, as Basecamp will hold it.
pub fn patched_todo(todo: &Todo, patch: &TodoPatch) -> Todo {
    let mut t = todo.clone();
    if let Some(title) = &patch.title {
        t.title.clone_from(title);
    }
    if let Some(done) = patch.completed {
        t.completed = done;
    }
    if let Some(a) = &patch.assignees {
        t.assignees.clone_from(a);
    }
    t
}

fn max_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
