//! The reconciler's polling ports: what it reads from each side to find what the webhooks missed, and
//! the one write it makes (re-enabling a Basecamp webhook). The real clients implement them in
//! [`crate::clients::polling`]; the reconciler's tests use fakes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::upstream::ApiError;
use crate::domain::{DevItemRef, JiraProjectKey, ProjectId, TodoId};

/// What a Basecamp poll listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoUpdates {
    /// Newest change first.
    pub updates: Vec<TodoUpdate>,
    /// `false` when the page limit stopped the listing before it reached `since`: changes older than the
    /// oldest one listed were not read.
    pub complete: bool,
}

/// A to-do as the recordings listing shows it: enough to decide whether it needs a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoUpdate {
    pub project: ProjectId,
    pub todo: TodoId,
    pub updated_at: DateTime<Utc>,
}

/// A project webhook as Basecamp lists it. `payload_url` carries a route token: never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProjectWebhook {
    pub id: i64,
    pub payload_url: String,
    pub active: bool,
}

impl std::fmt::Debug for ProjectWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectWebhook").field("id", &self.id).field("active", &self.active).finish_non_exhaustive()
    }
}

/// An issue as a search lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueUpdate {
    pub item: DevItemRef,
    pub updated_at: DateTime<Utc>,
}

/// One search page, and the token of the next one (`None` on the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuePage {
    pub issues: Vec<IssueUpdate>,
    pub next: Option<String>,
}

/// The Basecamp reads and the one write the reconciler makes (the real client implements it).
#[async_trait]
pub trait BasecampPolling: Send + Sync {
    /// To-dos of `projects` updated at or after `since` — active ones from at most `max_pages` pages of the
    /// listing, and the first page of those trashed and archived since — newest change first (the listing
    /// says whether it reached `since`).
    async fn todos_updated_since(
        &self,
        projects: &[ProjectId],
        since: DateTime<Utc>,
        max_pages: usize,
    ) -> Result<TodoUpdates, ApiError>;

    /// The project's webhooks, active or not.
    async fn webhooks(&self, project: ProjectId) -> Result<Vec<ProjectWebhook>, ApiError>;

    /// Turns a deactivated webhook back on with the same URL and the types the sync needs. Idempotent.
    async fn reactivate(&self, hook: &ProjectWebhook) -> Result<(), ApiError>;
}

/// The tracker search the reconciler makes (the real Jira client implements it).
#[async_trait]
pub trait TrackerPolling: Send + Sync {
    /// One page of the issues of `projects` updated within the last `within` (by the tracker's clock),
    /// oldest change first; `page` is the previous page's [`IssuePage::next`].
    async fn issues_updated_within(
        &self,
        projects: &[JiraProjectKey],
        within: Duration,
        page_size: u32,
        page: Option<&str>,
    ) -> Result<IssuePage, ApiError>;
}
