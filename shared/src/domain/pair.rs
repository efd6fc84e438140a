//! A [`Pair`]: one to-do ⇄ one dev item on one route, with what the sync last wrote or saw on each side.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BasecampCommentId, JiraKey, ProjectId, RouteId, TodoId, TodolistId};
use super::model::{DevItemRef, Field, Fields};

/// PENDING while a worker holds the lease to create the dev item; LINKED once the item is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PairState {
    Pending,
    Linked,
}

impl PairState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Linked => "LINKED",
        }
    }
}

/// Who may act on a PENDING pair, and until when. Past `until`, another worker may take it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// Each side's synced field values as the sync last wrote or saw them. An event whose fresh values equal
/// its side's snapshot is our own write coming back (or nothing new): a no-op, whoever the actor is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub todo: Fields,
    pub tracker: Fields,
}

/// The one-time Basecamp comment that links the to-do to its dev item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "state", content = "comment", rename_all = "snake_case")]
pub enum Backlink {
    #[default]
    NotPosted,
    /// A post was started; if this is still the state on a retry, the comment may exist already and the
    /// to-do's comments are searched before posting again.
    Attempting,
    Posted(BasecampCommentId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub route: RouteId,
    pub project: ProjectId,
    pub todo: TodoId,
    pub item: Option<DevItemRef>,
    pub state: PairState,
    pub lease: Option<Lease>,
    /// Incremented by every successful write; every update is conditional on it.
    pub version: u64,
    pub snapshot: Snapshot,
    pub backlink: Backlink,
    /// Whether the tracker item carries its link back to the to-do (an idempotent upsert, repeated
    /// until it succeeded once).
    pub remote_linked: bool,
    /// Comments mirrored between the two sides (a selective `DEV:`/`PM:` sync), so duplicates and echoes
    /// create nothing and an edit updates its twin.
    #[serde(default)]
    pub comments: Vec<CommentLink>,
    /// Signals posted to the to-do (pull requests, builds), by key: each is posted once.
    #[serde(default)]
    pub signals: std::collections::BTreeMap<super::signal_key::SignalKey, Signal>,
    /// Fields whose conflict waits for a person (`manual` policy): skipped until resolved.
    pub open_conflicts: BTreeSet<Field>,
    /// The newest `updated_at` seen on each side; a fresh read older than this is stale and ignored.
    pub todo_seen_at: Option<DateTime<Utc>>,
    pub item_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while one side is gone, trashed, archived or out of the route: nothing is synced, and
    /// `status` shows it (docs/lifecycle.md).
    #[serde(default)]
    pub detached: Option<Detachment>,
    /// A lifecycle comment to post on one side. Saved with the change it reports, cleared once posted; a
    /// retry that finds it set looks for the comment before posting, so each is posted once.
    #[serde(default)]
    pub notice: Option<Notice>,
    /// The to-do list the to-do was last seen in (a deleted list's to-dos are found by it).
    #[serde(default)]
    pub todolist: Option<TodolistId>,
}

/// Why a linked pair stopped syncing, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detachment {
    pub reason: DetachReason,
    pub since: DateTime<Utc>,
}

/// What happened to one side of a pair (docs/lifecycle.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DetachReason {
    /// The to-do is in Basecamp's trash; restoring it resumes the sync.
    TodoTrashed,
    /// The to-do (or its list) is archived; unarchiving resumes the sync.
    TodoArchived,
    /// The to-do is gone from Basecamp (deleted, or no longer visible to the integration). Final.
    TodoDeleted,
    /// The to-do is active but the route no longer takes it (moved to a list the route does not sync, its
    /// opt-in marker removed); moving it back resumes the sync.
    TodoUnrouted { why: String },
    /// The tracker item was deleted. Final: nothing is recreated.
    IssueDeleted,
    /// The tracker item was moved out of the route's project (it now has `key`); moving it back resumes.
    IssueMoved { key: JiraKey },
}

impl DetachReason {
    /// Whether the to-do's side is the one that went away (so the tracker side hears about it).
    pub fn on_todo_side(&self) -> bool {
        matches!(self, Self::TodoTrashed | Self::TodoArchived | Self::TodoDeleted | Self::TodoUnrouted { .. })
    }

    /// Deleted on either side: the pair never syncs again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::TodoDeleted | Self::IssueDeleted)
    }

    /// A short code for audit entries and `status`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TodoTrashed => "todo_trashed",
            Self::TodoArchived => "todo_archived",
            Self::TodoDeleted => "todo_deleted",
            Self::TodoUnrouted { .. } => "todo_unrouted",
            Self::IssueDeleted => "issue_deleted",
            Self::IssueMoved { .. } => "issue_moved",
        }
    }

    /// What happened, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::TodoTrashed => "the to-do is in Basecamp's trash".to_owned(),
            Self::TodoArchived => "the to-do is archived in Basecamp".to_owned(),
            Self::TodoDeleted => "the to-do was deleted from Basecamp".to_owned(),
            Self::TodoUnrouted { why } => format!("the route no longer takes the to-do ({why})"),
            Self::IssueDeleted => "the tracker issue was deleted".to_owned(),
            Self::IssueMoved { key } => format!("the tracker issue moved out of the route's project (now {key})"),
        }
    }
}

/// Which side a notice is posted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeSide {
    Basecamp,
    Tracker,
}

/// A comment telling one side what happened to the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub side: NoticeSide,
    /// The comment, as Basecamp rich text (the tracker client converts it).
    pub html: String,
    /// Plain text unique to this notice (it carries the time of the change), searched for before posting
    /// again after a crash.
    pub marker: String,
}

impl Pair {
    /// A new PENDING claim, version 0, leased to `owner` until `until`.
    pub fn pending(
        route: RouteId,
        project: ProjectId,
        todo: TodoId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        Self {
            route,
            project,
            todo,
            item: None,
            state: PairState::Pending,
            lease: Some(Lease { owner: owner.to_owned(), until }),
            version: 0,
            snapshot: Snapshot::default(),
            backlink: Backlink::NotPosted,
            remote_linked: false,
            comments: Vec::new(),
            signals: std::collections::BTreeMap::new(),
            open_conflicts: BTreeSet::new(),
            todo_seen_at: None,
            item_seen_at: None,
            created_at: now,
            updated_at: now,
            detached: None,
            notice: None,
            todolist: None,
        }
    }

    /// The key the store files this pair under: one per (route, to-do).
    pub fn key(&self) -> PairKey {
        PairKey { route: self.route.clone(), todo: self.todo }
    }

    /// A PENDING pair whose lease has run out (or that has none) may be taken over.
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_none_or(|l| l.until <= now)
    }

    pub fn is_linked(&self) -> bool {
        self.state == PairState::Linked && self.item.is_some()
    }
}

/// A signal's progress on one to-do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Signal {
    /// Claimed; the post may or may not have happened (a retry looks before posting).
    Attempting,
    /// Posted as this Basecamp comment.
    Posted(BasecampCommentId),
    /// A build key that is currently failing, at this commit (so a later success posts "fixed").
    Failing(String),
    /// Done without a comment (e.g. the remote link on the tracker item).
    Done,
}

/// A Basecamp comment and its tracker twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentLink {
    pub basecamp: BasecampCommentId,
    /// `None` while the twin is being posted: a retry that finds this looks for the twin before posting.
    pub tracker: Option<super::ids::JiraCommentId>,
    /// A digest of the source text last mirrored; an event with the same text is a no-op.
    pub digest: String,
}

/// The identity of a pair: one to-do on one route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PairKey {
    pub route: RouteId,
    pub todo: TodoId,
}

impl std::fmt::Display for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.route, self.todo)
    }
}
