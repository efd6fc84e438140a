//! Settling an open conflict by hand (`campbridge conflicts resolve <id> --take basecamp|tracker`): the
//! chosen side's current value is written to the other side through the ports, the field leaves the
//! pair's `open_conflicts` with the snapshot moved to the settled value (so the echo of our write is
//! recognised as unchanged), and the conflict is marked resolved.
//!
//! The field → patch mapping duplicates the engine's private `write_tracker`/`write_basecamp` in
//! `decide.rs` (kept minimal; the same rules: unassigned means triage on the tracker, assignees the tracker
//! cannot see are kept on the to-do, one-way fields are never written to Basecamp).

use crate::domain::{Field, Fields, Route, Todo, UserTable};
use crate::ports::{AuditEntry, Conflict, DevItemPatch, Replaced, Resolution, StoreError, TodoPatch};

use super::engine::{Engine, SyncError};
use super::plan::Side;

/// Why a conflict could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Unknown id, or already settled (by a policy or by a person).
    #[error("conflict {0:?} is not open (unknown, or already settled)")]
    NotOpen(String),
    /// The pair, the to-do or the dev item is gone.
    #[error("cannot settle: {0}")]
    Gone(String),
    /// The chosen value cannot be written to the other side (a one-way field, an unmapped user).
    #[error("cannot settle: {0}")]
    NotWritable(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        Self::Sync(SyncError::Store(e))
    }
}

/// What settling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub conflict: Conflict,
    /// The side whose value was kept.
    pub took: Side,
    /// The value both sides now hold, as the sync compares it.
    pub value: String,
    /// Whether a write was needed (false when the sides already agreed).
    pub wrote: bool,
}

fn tracker_patch(route: &Route, field: Field, to: &Fields, now: &Fields) -> DevItemPatch {
    let mut patch = DevItemPatch::default();
    super::decide::write_tracker(&mut patch, route, field, to, now);
    patch
}

fn basecamp_patch(users: &UserTable, field: Field, to: &Fields, todo: &Todo) -> Result<TodoPatch, ResolveError> {
    let mut patch = TodoPatch::default();
    super::decide::write_basecamp(&mut patch, users, field, to, Some(todo)).map_err(ResolveError::NotWritable)?;
    Ok(patch)
}

impl Engine {
    /// Settles open conflict `id` by keeping `take`'s current value: writes it to the other side, clears
    /// the field from the pair's `open_conflicts` (on the pair's version; re-read and retried when
    /// another worker saved the pair first), marks the conflict resolved and audits it. Running it again
    /// after success is `NotOpen` and writes nothing.
    pub async fn resolve_conflict(&self, id: &str, take: Side) -> Result<Resolved, ResolveError> {
        let conflict = self
            .conflicts
            .list(true, 10_000)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ResolveError::NotOpen(id.to_owned()))?;
        let route = self
            .settings
            .routes
            .iter()
            .find(|r| r.id == conflict.pair.route)
            .ok_or_else(|| SyncError::UnknownRoute(conflict.pair.route.clone()))?;
        let users = &self.settings.users;
        let field = conflict.field;
        for _ in 0..5 {
            let pair = self
                .pairs
                .get(&conflict.pair)
                .await?
                .ok_or_else(|| ResolveError::Gone(format!("pair {} no longer exists", conflict.pair)))?;
            // A worker is writing this pair's changes (docs/decisions/0007): settle after it saved.
            if pair.is_linked() && !pair.lease_expired(self.clock.now()) {
                return Err(ResolveError::Sync(SyncError::Busy(format!(
                    "pair {} is being written by a worker; try again in a few seconds",
                    conflict.pair
                ))));
            }
            let item_ref = pair
                .item
                .clone()
                .ok_or_else(|| ResolveError::Gone(format!("pair {} has no dev item", conflict.pair)))?;
            let todo = self
                .basecamp
                .get_todo(pair.project, pair.todo)
                .await
                .map_err(SyncError::upstream(Side::Basecamp))?
                .ok_or_else(|| ResolveError::Gone("the to-do is gone or not accessible".to_owned()))?;
            let item = self
                .tracker
                .get_item(&item_ref)
                .await
                .map_err(SyncError::upstream(Side::Tracker))?
                .ok_or_else(|| ResolveError::Gone(format!("{item_ref} is gone or not accessible")))?;
            let bc = route.project_todo(users, &todo);
            let tr = route.project_item(&item);
            let chosen = if take == Side::Basecamp { bc.clone() } else { tr.clone() };
            let mut wrote = false;
            if !bc.same(&tr, field) {
                match take {
                    Side::Basecamp => {
                        let patch = tracker_patch(route, field, &bc, &tr);
                        self.tracker
                            .update_item(&item_ref, &patch)
                            .await
                            .map_err(SyncError::upstream(Side::Tracker))?;
                    }
                    Side::Tracker => {
                        let patch = basecamp_patch(users, field, &tr, &todo)?;
                        self.basecamp
                            .update_todo(pair.project, pair.todo, &patch)
                            .await
                            .map_err(SyncError::upstream(Side::Basecamp))?;
                    }
                }
                wrote = true;
            }
            let mut next = pair.clone();
            next.snapshot.todo.take(&chosen, field);
            next.snapshot.tracker.take(&chosen, field);
            next.open_conflicts.remove(&field);
            next.updated_at = self.clock.now();
            match self.pairs.replace(&next).await? {
                Replaced::Replaced(_) => {}
                // Saved by a worker meanwhile: re-read; the write made is idempotent.
                Replaced::Stale(_) => continue,
            }
            let resolution = if take == Side::Basecamp { Resolution::TookBasecamp } else { Resolution::TookTracker };
            self.conflicts.resolve(id, resolution).await?;
            let value = chosen.show(field);
            self.audit
                .record(&AuditEntry {
                    at: self.clock.now(),
                    route: Some(route.id.clone()),
                    subject: format!("{}/{}", route.id, pair.todo),
                    delivery: None,
                    action: "conflict_resolved".to_owned(),
                    detail: format!("{field} conflict {id} settled by hand: kept the {} value", take.as_str()),
                })
                .await?;
            return Ok(Resolved { conflict, took: take, value, wrote });
        }
        Err(ResolveError::Sync(SyncError::Busy("the pair kept changing while resolving".to_owned())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::domain::{ConflictPolicy, DevItemRef, PairKey, RouteId, TodoId};
    use crate::ports::{Clock, ConflictLog, PairStore, Resolution};
    use crate::testkit::world::World;
    use crate::testkit::{route, todo, users};

    use super::{ResolveError, Side};

    /// A paired to-do whose title both sides changed, under the `manual` policy: one open conflict.
    async fn open_title_conflict() -> (World, DevItemRef, String) {
        let mut r = route();
        r.conflict_policy = ConflictPolicy::Manual;
        let world = World::with(r, users());
        world.create_todo(todo(1, "Fix login")).await;
        world.drain().await;
        let item = world.item_of(TodoId(1)).await.unwrap();
        world.basecamp.edit(TodoId(1), |t| t.title = "PM title".into());
        world.tracker.edit(&item, world.basecamp.tick(), |i| i.summary = "[BC][WEB] Dev title".into());
        world.engine.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
        let open = world.conflicts.list(true, 10).await.unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        let id = open[0].id.clone();
        (world, item, id)
    }

    fn key() -> PairKey {
        PairKey { route: RouteId("web".into()), todo: TodoId(1) }
    }

    #[tokio::test]
    async fn taking_the_basecamp_side_writes_the_title_to_the_tracker_and_reopens_the_field() {
        let (world, item, id) = open_title_conflict().await;
        let done = world.engine.resolve_conflict(&id, Side::Basecamp).await.unwrap();
        assert!(done.wrote);
        assert_eq!(done.value, "PM title");
        assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] PM title");
        assert_eq!(world.basecamp.todo(TodoId(1)).unwrap().title, "PM title");
        assert!(world.pairs.get(&key()).await.unwrap().unwrap().open_conflicts.is_empty());
        let all = world.conflicts.list(false, 10).await.unwrap();
        assert_eq!(all[0].resolution, Resolution::TookBasecamp);
        // The echo of our write changes nothing.
        let updates = world.tracker.calls.get("update_item");
        world.engine.sync_record(&[world.item_job(&item)]).await.unwrap();
        assert_eq!(world.tracker.calls.get("update_item"), updates);
    }

    #[tokio::test]
    async fn taking_the_tracker_side_writes_the_title_to_basecamp_and_settling_twice_is_refused() {
        let (world, _item, id) = open_title_conflict().await;
        world.engine.resolve_conflict(&id, Side::Tracker).await.unwrap();
        assert_eq!(world.basecamp.todo(TodoId(1)).unwrap().title, "Dev title");
        let again = world.engine.resolve_conflict(&id, Side::Tracker).await;
        assert!(matches!(again, Err(ResolveError::NotOpen(_))));
        // The field syncs again: a later Basecamp rename reaches the tracker.
        world.basecamp.edit(TodoId(1), |t| t.title = "Later".into());
        world.engine.sync_record(&[world.todo_job(TodoId(1))]).await.unwrap();
        let item = world.item_of(TodoId(1)).await.unwrap();
        assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] Later");
    }

    #[tokio::test]
    async fn a_pair_under_a_worker_s_write_lease_is_not_settled_and_nothing_is_written() {
        let (world, item, id) = open_title_conflict().await;
        let mut pair = world.pairs.get(&key()).await.unwrap().unwrap();
        let now = world.clock.now();
        pair.lease = Some(crate::domain::Lease { owner: "other#1".into(), until: now + chrono::Duration::seconds(20) });
        world.pairs.replace(&pair).await.unwrap();
        let writes = world.tracker.calls.get("update_item");
        let held = world.engine.resolve_conflict(&id, Side::Basecamp).await;
        assert!(matches!(held, Err(ResolveError::Sync(_))), "{held:?}");
        assert_eq!(world.tracker.calls.get("update_item"), writes);
        assert_eq!(world.tracker.item(&item).unwrap().summary, "[BC][WEB] Dev title");
        assert_eq!(world.conflicts.list(true, 10).await.unwrap().len(), 1, "still open");
    }
}
