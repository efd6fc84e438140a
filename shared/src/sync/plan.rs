//! What [`super::decide`] returns: a [`Plan`] the executor carries out through the ports.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::domain::{DetachReason, Field, FilteredOut, NewDevItem, Snapshot};
use crate::ports::{DevItemPatch, Resolution, TodoPatch};

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Basecamp,
    Tracker,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basecamp => "basecamp",
            Self::Tracker => "tracker",
        }
    }
    pub fn other(self) -> Self {
        match self {
            Self::Basecamp => Self::Tracker,
            Self::Tracker => Self::Basecamp,
        }
    }
}

/// Why a plan does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The to-do does not match the route: nothing is created.
    Filtered(FilteredOut),
    /// A tracker item nobody paired: not ours.
    NotPaired,
    /// The pair is being created by another worker; its result will include this change.
    Pending,
    /// The record is gone or we lost access to it.
    Gone(Side),
    /// The fresh read is older than one already applied (a late or out-of-order delivery).
    Stale(Side),
    /// Fresh values equal the snapshot: our own write coming back, or a change to nothing we sync.
    Unchanged,
    /// The pair is detached (a side trashed, archived, deleted or out of the route): nothing syncs.
    Detached(DetachReason),
}

impl Skip {
    /// A short action name for the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Filtered(_) => "filtered",
            Self::NotPaired => "not_paired",
            Self::Pending => "pending",
            Self::Gone(_) => "gone",
            Self::Stale(_) => "stale",
            Self::Unchanged => "unchanged",
            Self::Detached(_) => "detached",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Filtered(why) => format!("not routed: {why}"),
            Self::NotPaired => "the tracker item is not paired with a to-do".to_owned(),
            Self::Pending => "the pair is still being created".to_owned(),
            Self::Gone(side) => format!("the {} record is gone or not accessible", side.as_str()),
            Self::Stale(side) => format!("the {} read is older than one already applied", side.as_str()),
            Self::Unchanged => {
                "nothing changed since the last sync (an echo of our own write, or an unsynced field)".to_owned()
            }
            Self::Detached(reason) => format!("not synced while detached: {}", reason.describe()),
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A conflict found while deciding: both sides changed `field` since the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictFound {
    pub field: Field,
    pub basecamp_value: String,
    pub tracker_value: String,
    pub resolution: Resolution,
}

/// Writes to make and the pair's next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub todo: TodoPatch,
    pub item: DevItemPatch,
    /// The snapshot once the writes are done.
    pub snapshot: Snapshot,
    pub conflicts: Vec<ConflictFound>,
    pub open_conflicts: BTreeSet<Field>,
    pub todo_seen_at: Option<DateTime<Utc>>,
    pub item_seen_at: Option<DateTime<Utc>>,
    /// Sentences for the audit log (reverts, fallbacks, skipped writes).
    pub notes: Vec<String>,
}

impl Apply {
    pub fn writes(&self) -> usize {
        usize::from(!self.todo.is_empty())
            + usize::from(self.item.has_field_edits())
            + usize::from(self.item.status.is_some())
    }
}

/// The decision for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Skip(Skip),
    /// Read this side too, then decide again (conflict detection, or a value that must be fresh).
    Fetch(Side),
    /// No dev item yet: create this one (the executor claims the pair first).
    Create(Box<NewDevItem>),
    Apply(Box<Apply>),
}
