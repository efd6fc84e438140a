//! The sync engine: [`decide`] (pure) and the [`Engine`] that carries plans out through the ports, plus
//! the mapper use case that turns a batch of queue messages into per-record syncs, and the [`reconcile`]
//! use case that polls for what the webhooks missed.

mod comments;
mod decide;
mod engine;
pub mod lifecycle;
mod mapper;
mod plan;
pub mod reconcile;
mod references;
mod resolve;
mod signals;
mod story;

pub use comments::{CommentPlan, ToTodo, decide_comment, decide_tracker_comment};
pub use decide::{DecideInput, Fresh, decide, new_item, patched_todo, snapshot_after_create, snapshot_after_recovery};
pub use engine::{Engine, Outcome, SyncError, SyncSettings, backoff};
pub use mapper::{BatchReport, MessageFate, audit_subject, log_dead_letter, process_batch, run_queue_once, settle};
pub use plan::{Apply, ConflictFound, Plan, Side, Skip};
pub use reconcile::{ReconcileReport, ReconcileSettings, ReconcileStores, Reconciler};
pub use references::{Reference, find_references};
pub use resolve::{ResolveError, Resolved};

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
