//! Upstream ports: the Basecamp to-do side and the tracker side, as the engine uses them. The real
//! clients live in [`crate::clients`]; in-memory fakes for unit tests in `testkit` (feature `testkit`).

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::domain::{
    BasecampCommentId, DevItem, DevItemRef, JiraAccountId, JiraCommentId, JiraKey, NewDevItem, PersonId, Priority,
    ProjectId, StatusCategory, SyncMarker, Todo, TodoId, TodolistId, TrackerTarget,
};

/// Errors from any upstream API, shaped for the decisions callers make on them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 429: try again after `retry_after` (the server's Retry-After, or our backoff when it gave none).
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Credentials are missing, expired or revoked and could not be refreshed (`PROVIDER_AUTH_REQUIRED`).
    #[error("PROVIDER_AUTH_REQUIRED: {0}")]
    AuthRequired(String),
    /// The credentials work but may not do this (403, or a scope the token lacks).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The server rejected one field of the request (e.g. an assignee who cannot be assigned).
    #[error("field {field} rejected: {message}")]
    FieldRejected { field: String, message: String },
    /// The request was invalid for another reason (400/422): retrying will not help.
    #[error("rejected: {0}")]
    Invalid(String),
    /// 5xx, timeouts, connection errors: retrying may help.
    #[error("transient upstream failure: {0}")]
    Transient(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }
}

/// The changes the engine asks of a to-do. `None` leaves a field alone; the client reads the to-do,
/// merges these in and PUTs the whole to-do back (Basecamp clears what a PUT omits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TodoPatch {
    pub title: Option<String>,
    pub completed: Option<bool>,
    pub assignees: Option<Vec<PersonId>>,
}

impl TodoPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.completed.is_none() && self.assignees.is_none()
    }
}

/// A comment on a to-do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoComment {
    pub id: BasecampCommentId,
    pub author_name: String,
    /// Basecamp rich text (HTML).
    pub content: String,
    /// Where people open it (empty when unknown).
    pub app_url: String,
}

/// A comment on a tracker item, with its body rendered to HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerComment {
    pub id: JiraCommentId,
    pub author_name: String,
    pub html: String,
}

/// The Basecamp side, as the engine uses it.
#[async_trait]
pub trait BasecampApi: Send + Sync {
    /// A fresh read of one to-do. `Ok(None)` when it is gone or we lost access (404).
    async fn get_todo(&self, project: ProjectId, todo: TodoId) -> Result<Option<Todo>, ApiError>;

    /// Applies `patch` by read → merge → full PUT (and the completion endpoints for `completed`), and
    /// returns the to-do as it stands afterwards. Fields the patch leaves `None` keep their values.
    async fn update_todo(&self, project: ProjectId, todo: TodoId, patch: &TodoPatch) -> Result<Todo, ApiError>;

    /// Posts a comment (HTML) on the to-do. Not idempotent: callers record what they posted.
    async fn post_comment(&self, project: ProjectId, todo: TodoId, html: &str) -> Result<BasecampCommentId, ApiError>;

    /// The to-do's comments, oldest first (all pages).
    async fn list_comments(&self, project: ProjectId, todo: TodoId) -> Result<Vec<TodoComment>, ApiError>;

    /// Replaces a comment's content (HTML).
    async fn update_comment(&self, project: ProjectId, comment: BasecampCommentId, html: &str) -> Result<(), ApiError>;

    /// A fresh read of one comment. `Ok(None)` when it is gone or we lost access.
    async fn get_comment(
        &self,
        project: ProjectId,
        comment: BasecampCommentId,
    ) -> Result<Option<TodoComment>, ApiError>;

    /// Every to-do of a list in every state — pending and completed, active, archived and trashed — as
    /// fresh reads. `Ok(None)` when the list is gone or we lost access (404).
    async fn list_todos(&self, project: ProjectId, list: TodolistId) -> Result<Option<Vec<Todo>>, ApiError>;
}

/// The changes the engine asks of a dev item. `None` leaves a field alone; label and component
/// changes are differential so labels the team added by hand survive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevItemPatch {
    pub summary: Option<String>,
    pub description: Option<String>,
    pub assignee: Option<Option<JiraAccountId>>,
    pub due: Option<Option<NaiveDate>>,
    /// Jira has no "no priority": a priority is always a value (never `null`, which Jira refuses).
    pub priority: Option<Priority>,
    pub labels_add: BTreeSet<String>,
    pub labels_remove: BTreeSet<String>,
    pub components_add: BTreeSet<String>,
    pub components_remove: BTreeSet<String>,
    /// Move to a status in this category (through a transition; never by status name).
    pub status: Option<StatusCategory>,
}

impl DevItemPatch {
    /// True when nothing but (possibly) the status changes: no edit request is needed.
    pub fn has_field_edits(&self) -> bool {
        self.summary.is_some()
            || self.description.is_some()
            || self.assignee.is_some()
            || self.due.is_some()
            || self.priority.is_some()
            || !self.labels_add.is_empty()
            || !self.labels_remove.is_empty()
            || !self.components_add.is_empty()
            || !self.components_remove.is_empty()
    }
    pub fn is_empty(&self) -> bool {
        !self.has_field_edits() && self.status.is_none()
    }
}

/// A link from the dev item back to the to-do (Jira remote link; upsert by global id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLink {
    pub global_id: String,
    pub url: String,
    pub title: String,
}

/// The tracker side (Jira by default), as the engine uses it.
#[async_trait]
pub trait TrackerApi: Send + Sync {
    /// A fresh read of one item. `Ok(None)` when it is gone or we lost access.
    async fn get_item(&self, item: &DevItemRef) -> Result<Option<DevItem>, ApiError>;

    /// The item a key names today (keys change when an issue moves project), if it exists.
    async fn find_item(&self, key: &JiraKey) -> Result<Option<DevItemRef>, ApiError>;

    /// Finds the item created for `marker` on `target`, if any (used when a crashed claim is taken over).
    async fn find_by_marker(&self, target: &TrackerTarget, marker: &SyncMarker) -> Result<Option<DevItem>, ApiError>;

    /// Creates an item carrying `draft.marker`. Not idempotent by itself: callers claim the pair first and
    /// search by marker before creating again. A rejected assignee comes back as `FieldRejected`
    /// with field `assignee`, and nothing is created.
    async fn create_item(&self, target: &TrackerTarget, draft: &NewDevItem) -> Result<DevItem, ApiError>;

    /// Applies `patch`: one edit request for all field changes, then a transition if `status` is set.
    async fn update_item(&self, item: &DevItemRef, patch: &DevItemPatch) -> Result<(), ApiError>;

    /// Adds or updates (by `global_id`) a link on the item.
    async fn upsert_remote_link(&self, item: &DevItemRef, link: &RemoteLink) -> Result<(), ApiError>;

    /// Adds a comment (HTML, converted to the tracker's format). Not idempotent: callers record the id.
    async fn add_comment(&self, item: &DevItemRef, html: &str) -> Result<JiraCommentId, ApiError>;

    /// Replaces a comment's body.
    async fn update_comment(&self, item: &DevItemRef, comment: &JiraCommentId, html: &str) -> Result<(), ApiError>;

    /// The item's comments, oldest first.
    async fn list_comments(&self, item: &DevItemRef) -> Result<Vec<TrackerComment>, ApiError>;
}

/// A pull request that contains a commit, as the code host lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPullRequest {
    pub source_branch: String,
    pub title: String,
    pub description: String,
}

/// What the signals need from the code host (Bitbucket) beyond its webhooks.
#[async_trait]
pub trait CodeHostApi: Send + Sync {
    /// The pull requests (any state) that contain `commit` in `repo`, newest first; empty when none do.
    /// How a build status that names no branch (`refname` null, as Jenkins sends) is traced to one.
    async fn commit_pull_requests(
        &self,
        repo: &crate::domain::RepoRef,
        commit: &str,
    ) -> Result<Vec<CommitPullRequest>, ApiError>;
}
