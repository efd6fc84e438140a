//! The queue message a receiver (or the reconciler) enqueues: a versioned, serde-tagged [`Job`].
//!
//! Jobs are small: they name the record that changed and the delivery that said so. The mapper always
//! re-reads the record, because Basecamp webhooks are thin and Jira deliveries can be late or out of order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{
    BasecampCommentId, DeliveryId, JiraIssueId, JiraKey, ProjectId, PullRequestRef, RepoRef, RouteId, TodoId,
    TodolistId,
};
use super::model::PullRequest;
use super::states::{BuildState, PullRequestState};

/// The wire form on the queue: `{"v":"1","job":{...}}`, plus `"retry":{...}` on a job the mapper put back
/// after a delay. A new incompatible shape gets a new version, and the mapper keeps reading the old one
/// until the queue has drained. `retry` is optional both ways: a message without it is a first attempt,
/// and a reader that does not know it ignores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum JobEnvelope {
    #[serde(rename = "1")]
    V1 {
        job: Job,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<Retry>,
    },
}

/// How often a job was postponed (a 429, an outage, a busy record) and when it is due again. Carried by
/// the fresh copy the mapper enqueues in place of a postponed message, so a delay never uses up the
/// queue's receive count (see `shared/src/sync/mapper.rs` and docs/decisions/0013).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// The upstream's postponements so far (429s, outages): the backoff grows with it. Waits for another
    /// worker do not count.
    pub attempt: u32,
    /// Not to be processed before this time. SQS FIFO has no per-message delay, so the copy can be
    /// received early; the mapper then only makes it visible again at this time.
    pub not_before: DateTime<Utc>,
    /// Why it was last postponed (an error message; never a secret or a body).
    pub reason: String,
}

/// A job as read from the queue, with its retry state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub job: Job,
    pub retry: Option<Retry>,
}

impl Queued {
    /// Reads any supported wire version. A message that fails here is poison: see the mapper's policy.
    pub fn from_wire(body: &str) -> Result<Self, serde_json::Error> {
        let JobEnvelope::V1 { job, retry } = serde_json::from_str(body)?;
        Ok(Self { job, retry })
    }

    /// The wire form of this job postponed once more. `counted`: the postponement was the upstream's (a
    /// 429, an outage), so the attempt count, which the backoff grows with, goes up; waiting for another
    /// worker or for an earlier message leaves it as it is.
    pub fn postponed(
        &self,
        not_before: DateTime<Utc>,
        reason: &str,
        counted: bool,
    ) -> Result<String, serde_json::Error> {
        let attempt = self.attempts() + u32::from(counted);
        let retry = Retry { attempt, not_before, reason: reason.to_owned() };
        serde_json::to_string(&JobEnvelope::V1 { job: self.job.clone(), retry: Some(retry) })
    }

    /// Postponements so far.
    pub fn attempts(&self) -> u32 {
        self.retry.as_ref().map_or(0, |r| r.attempt)
    }
}

/// Something changed on one side; the mapper should look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// A Basecamp to-do was created, changed, completed, moved… (any `todo_*` kind).
    TodoChanged {
        delivery: DeliveryId,
        route: RouteId,
        project: ProjectId,
        todo: TodoId,
        /// The webhook `kind` (`todo_created`, …) or `poll` for the reconciler; informational only.
        event: String,
        received_at: DateTime<Utc>,
    },
    /// A Basecamp to-do list was renamed, archived, trashed, restored, copied, deleted… (any `todolist_*`
    /// kind but `todolist_created`): its to-dos are re-scanned, since Basecamp does not notify the to-dos a
    /// list's change reaches (webhooks.md, "Status propagation to children recordings").
    TodolistChanged {
        delivery: DeliveryId,
        route: RouteId,
        project: ProjectId,
        list: TodolistId,
        event: String,
        received_at: DateTime<Utc>,
    },
    /// A comment on a Basecamp to-do was created or changed.
    TodoCommentChanged {
        delivery: DeliveryId,
        route: RouteId,
        project: ProjectId,
        todo: TodoId,
        comment: BasecampCommentId,
        event: String,
        received_at: DateTime<Utc>,
    },
    /// A Bitbucket pull request was opened, updated, merged, declined or superseded. Bitbucket's
    /// bodies are complete, so the job carries what the signal needs.
    PullRequestChanged {
        delivery: DeliveryId,
        pull_request: PullRequest,
        state: PullRequestState,
        received_at: DateTime<Utc>,
    },
    /// A build status on a commit was created or updated.
    BuildChanged { delivery: DeliveryId, build: Build, received_at: DateTime<Utc> },
    /// A comment on a Jira issue was created or updated.
    IssueCommentChanged {
        delivery: DeliveryId,
        issue: JiraIssueId,
        key: JiraKey,
        comment: super::ids::JiraCommentId,
        received_at: DateTime<Utc>,
    },
    /// A Jira issue was created, updated or deleted.
    IssueChanged { delivery: DeliveryId, issue: JiraIssueId, key: JiraKey, event: String, received_at: DateTime<Utc> },
}

/// A build status as the signals see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub repo: RepoRef,
    pub commit: String,
    /// The build's key; a later status with the same key replaces the earlier one.
    pub key: String,
    pub state: BuildState,
    pub name: String,
    pub url: String,
    /// The branch the status is for, when the build tool says.
    pub branch: Option<String>,
}

/// The record a job is about: the FIFO message group, and what a batch coalesces on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordRef {
    Todo {
        route: RouteId,
        project: ProjectId,
        todo: TodoId,
    },
    Issue {
        issue: JiraIssueId,
        key: JiraKey,
    },
    PullRequest {
        pr: PullRequestRef,
    },
    Build {
        repo: RepoRef,
        key: String,
    },
    /// An issue's comment: the same message group as its issue.
    IssueComment {
        issue: JiraIssueId,
        key: JiraKey,
        comment: super::ids::JiraCommentId,
    },
    /// A to-do list, whose to-dos a list event re-scans.
    Todolist {
        route: RouteId,
        project: ProjectId,
        list: TodolistId,
    },
    /// A to-do's comment: the same message group as its to-do, so they apply in order.
    TodoComment {
        route: RouteId,
        project: ProjectId,
        todo: TodoId,
        comment: BasecampCommentId,
    },
}

impl RecordRef {
    /// The SQS FIFO message group id: one group per source record, so each record's events apply in order.
    pub fn group_id(&self) -> String {
        match self {
            Self::Todo { todo, .. } | Self::TodoComment { todo, .. } => format!("bc-todo-{todo}"),
            Self::Todolist { list, .. } => format!("bc-list-{list}"),
            Self::Issue { issue, .. } | Self::IssueComment { issue, .. } => format!("jira-issue-{issue}"),
            Self::PullRequest { pr } => format!("bb-pr-{}-{}-{}", pr.repo.workspace, pr.repo.repo_slug, pr.id),
            Self::Build { repo, key } => {
                format!("bb-build-{}-{}-{}", repo.workspace, repo.repo_slug, super::digest::digest(key))
            }
        }
    }
}

impl Job {
    /// The job's kind as its wire form names it (`todo_changed`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TodoChanged { .. } => "todo_changed",
            Self::TodolistChanged { .. } => "todolist_changed",
            Self::TodoCommentChanged { .. } => "todo_comment_changed",
            Self::PullRequestChanged { .. } => "pull_request_changed",
            Self::BuildChanged { .. } => "build_changed",
            Self::IssueCommentChanged { .. } => "issue_comment_changed",
            Self::IssueChanged { .. } => "issue_changed",
        }
    }

    pub fn delivery(&self) -> &DeliveryId {
        match self {
            Self::TodoChanged { delivery, .. }
            | Self::TodolistChanged { delivery, .. }
            | Self::TodoCommentChanged { delivery, .. }
            | Self::PullRequestChanged { delivery, .. }
            | Self::BuildChanged { delivery, .. }
            | Self::IssueCommentChanged { delivery, .. }
            | Self::IssueChanged { delivery, .. } => delivery,
        }
    }

    pub fn record(&self) -> RecordRef {
        match self {
            Self::TodoChanged { route, project, todo, .. } => {
                RecordRef::Todo { route: route.clone(), project: *project, todo: *todo }
            }
            Self::TodolistChanged { route, project, list, .. } => {
                RecordRef::Todolist { route: route.clone(), project: *project, list: *list }
            }
            Self::IssueChanged { issue, key, .. } => RecordRef::Issue { issue: issue.clone(), key: key.clone() },
            Self::TodoCommentChanged { route, project, todo, comment, .. } => {
                RecordRef::TodoComment { route: route.clone(), project: *project, todo: *todo, comment: *comment }
            }
            Self::PullRequestChanged { pull_request, .. } => RecordRef::PullRequest { pr: pull_request.pr.clone() },
            Self::BuildChanged { build, .. } => RecordRef::Build { repo: build.repo.clone(), key: build.key.clone() },
            Self::IssueCommentChanged { issue, key, comment, .. } => {
                RecordRef::IssueComment { issue: issue.clone(), key: key.clone(), comment: comment.clone() }
            }
        }
    }

    pub fn received_at(&self) -> DateTime<Utc> {
        match self {
            Self::TodoChanged { received_at, .. }
            | Self::TodolistChanged { received_at, .. }
            | Self::TodoCommentChanged { received_at, .. }
            | Self::PullRequestChanged { received_at, .. }
            | Self::BuildChanged { received_at, .. }
            | Self::IssueCommentChanged { received_at, .. }
            | Self::IssueChanged { received_at, .. } => *received_at,
        }
    }

    /// Serializes into the versioned wire form.
    pub fn to_wire(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&JobEnvelope::V1 { job: self.clone(), retry: None })
    }

    /// Reads any supported wire version, ignoring its retry state (see [`Queued::from_wire`]).
    pub fn from_wire(body: &str) -> Result<Self, serde_json::Error> {
        Ok(Queued::from_wire(body)?.job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn todo_job() -> Job {
        Job::TodoChanged {
            delivery: DeliveryId::basecamp(1_052_473_966),
            route: RouteId("web".into()),
            project: ProjectId(2_085_958_505),
            todo: TodoId(9_007_199_254_741_210),
            event: "todo_completed".into(),
            received_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_job_round_trips_through_the_versioned_wire_form() {
        let job = todo_job();
        let wire = job.to_wire().unwrap_or_default();
        assert!(wire.starts_with(r#"{"v":"1","job":{"kind":"todo_changed""#), "{wire}");
        assert_eq!(Job::from_wire(&wire).ok(), Some(job));
    }

    #[test]
    fn an_unknown_wire_version_is_rejected() {
        let wire = todo_job().to_wire().unwrap_or_default().replace(r#""v":"1""#, r#""v":"9""#);
        assert!(Job::from_wire(&wire).is_err());
    }

    #[test]
    fn a_postponed_job_carries_its_attempt_and_due_time_and_still_reads_as_the_job() {
        let first = Queued::from_wire(&todo_job().to_wire().unwrap_or_default()).ok();
        assert_eq!(first.as_ref().map(Queued::attempts), Some(0));
        let due = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(30);
        let once = first.and_then(|q| q.postponed(due, "Jira rate limit", true).ok()).unwrap_or_default();
        let held = Queued::from_wire(&once).ok().and_then(|q| q.postponed(due, "busy", false).ok()).unwrap_or_default();
        let twice =
            Queued::from_wire(&held).ok().and_then(|q| q.postponed(due, "again", true).ok()).unwrap_or_default();
        let read = Queued::from_wire(&twice).ok();
        assert_eq!(read.as_ref().map(Queued::attempts), Some(2), "the wait for a busy record did not count");
        assert_eq!(
            read.as_ref().and_then(|q| q.retry.as_ref()).map(|r| (r.not_before, r.reason.as_str())),
            Some((due, "again"))
        );
        assert_eq!(Job::from_wire(&twice).ok(), Some(todo_job()), "a reader that ignores retries reads the job");
    }

    #[test]
    fn jobs_for_one_todo_share_a_message_group() {
        assert_eq!(todo_job().record().group_id(), "bc-todo-9007199254741210");
    }
}
