//! The normalized records the engine reasons about: a Basecamp [`Todo`], a tracker [`DevItem`], and the
//! [`Fields`] both are projected into so they can be compared.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{
    JiraAccountId, JiraIssueId, JiraKey, PersonId, ProjectId, PullRequestRef, RepoRef, TodoId, TodolistId,
};

/// Jira's status categories (`statusCategory.key`). Statuses are mapped by category, never by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCategory {
    New,
    Indeterminate,
    Done,
}

impl StatusCategory {
    /// Parses Jira's `statusCategory.key`. `undefined` (and anything unknown) is treated as `new`:
    /// it is not done, and nothing but done-ness crosses to Basecamp.
    pub fn from_jira_key(key: &str) -> Self {
        match key {
            "done" => Self::Done,
            "indeterminate" => Self::Indeterminate,
            _ => Self::New,
        }
    }
    pub fn as_jira_key(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Indeterminate => "indeterminate",
            Self::Done => "done",
        }
    }
    pub fn is_done(self) -> bool {
        self == Self::Done
    }
}

/// Jira's default priority scheme, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Highest,
    High,
    Medium,
    Low,
    Lowest,
}

impl Priority {
    /// The priority's name in Jira's default scheme.
    pub fn jira_name(self) -> &'static str {
        match self {
            Self::Highest => "Highest",
            Self::High => "High",
            Self::Medium => "Medium",
            Self::Low => "Low",
            Self::Lowest => "Lowest",
        }
    }
    pub fn from_jira_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "highest" | "blocker" => Some(Self::Highest),
            "high" | "critical" | "major" => Some(Self::High),
            "medium" => Some(Self::Medium),
            "low" | "minor" => Some(Self::Low),
            "lowest" | "trivial" => Some(Self::Lowest),
            _ => None,
        }
    }
}

/// A file or link attached to a to-do, listed under "Artifacts" in the tracker description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub url: String,
}

/// A Basecamp to-do as the engine sees it, after a fresh GET (webhooks are thin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    pub id: TodoId,
    pub project: ProjectId,
    pub project_name: String,
    pub todolist: TodolistId,
    pub todolist_name: String,
    pub title: String,
    /// Basecamp rich text (HTML).
    pub description: String,
    pub completed: bool,
    /// Basecamp allows several assignees; the tracker takes the first one the user table maps.
    pub assignees: Vec<PersonId>,
    pub due_on: Option<NaiveDate>,
    pub creator_name: String,
    pub app_url: String,
    pub updated_at: DateTime<Utc>,
    pub artifacts: Vec<Artifact>,
    /// Trashed or archived to-dos are not synced (docs/lifecycle.md).
    pub status: RecordingStatus,
}

impl Todo {
    /// Neither trashed nor archived (completion is separate).
    pub fn is_active(&self) -> bool {
        self.status == RecordingStatus::Active
    }
}

/// A Basecamp recording's publication status, separate from completion (reference/basecamp-api.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    #[default]
    Active,
    Archived,
    Trashed,
}

impl RecordingStatus {
    /// Basecamp's `status` value; anything unknown reads as active (it is not trash or archive).
    pub fn from_basecamp(status: &str) -> Self {
        match status {
            "archived" => Self::Archived,
            "trashed" => Self::Trashed,
            _ => Self::Active,
        }
    }
}

/// What a to-do pairs with on the dev side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DevItemRef {
    /// A Jira issue, by its stable id and its (movable) key.
    Jira { id: JiraIssueId, key: JiraKey },
}

impl DevItemRef {
    /// The key under which the store indexes the item (stable across key changes).
    pub fn index_key(&self) -> String {
        match self {
            Self::Jira { id, .. } => format!("jira:{id}"),
        }
    }
    /// What people call it (`WEB-12`).
    pub fn display_name(&self) -> &str {
        match self {
            Self::Jira { key, .. } => key.as_str(),
        }
    }
}

impl fmt::Display for DevItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// A tracker issue as the engine sees it, after a fresh GET (webhook bodies can be late or stale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevItem {
    pub item: DevItemRef,
    pub summary: String,
    /// Rich text rendered to Basecamp-style HTML by the client (ADF → HTML), so both sides compare
    /// in one representation.
    pub description: String,
    pub status: StatusCategory,
    pub status_name: String,
    pub assignee: Option<JiraAccountId>,
    pub priority: Option<Priority>,
    pub labels: BTreeSet<String>,
    pub components: BTreeSet<String>,
    pub due: Option<NaiveDate>,
    pub url: String,
    pub updated_at: DateTime<Utc>,
    /// Flagged as an impediment (Jira's "Flagged" field); a blocker signal, not a synced field.
    #[serde(default)]
    pub flagged: bool,
}

/// A new tracker item, as the engine asks the tracker client to create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevItem {
    pub summary: String,
    pub description: String,
    pub assignee: Option<JiraAccountId>,
    pub priority: Option<Priority>,
    pub labels: BTreeSet<String>,
    pub components: BTreeSet<String>,
    pub due: Option<NaiveDate>,
    /// Values for other create fields (a route's `create_fields`), sent as written.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// The invisible-but-searchable marker that lets a retry find this item instead of creating
    /// another (see [`SyncMarker`]).
    pub marker: SyncMarker,
}

/// Marks a tracker item as created by campbridge for one to-do on one route.
///
/// Jira can only search entity properties when an app indexes them, so the searchable part is a label
/// (`bc-<todo id>`); the client also stores the full marker as an issue property for humans and audits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SyncMarker {
    pub route: super::ids::RouteId,
    pub todo: TodoId,
}

impl SyncMarker {
    pub fn label(&self) -> String {
        format!("bc-{}", self.todo)
    }
}

/// A Bitbucket repository target for the branch workflow and for signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoTarget {
    pub repo: RepoRef,
}

/// A pull request as the signals see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub pr: PullRequestRef,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub author: String,
    pub url: String,
}

/// The fields the sync keeps equal, each in one representation both sides are projected into:
/// titles without the template, descriptions as the tracker should show them, done-ness, the Jira
/// account the item should be assigned to, and only the labels/components the route manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fields {
    pub title: String,
    pub description: String,
    pub done: bool,
    pub assignee: Option<JiraAccountId>,
    pub due: Option<NaiveDate>,
    pub priority: Option<Priority>,
    pub labels: BTreeSet<String>,
    pub components: BTreeSet<String>,
}

/// One synced field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Title,
    Description,
    Status,
    Assignee,
    DueDate,
    Priority,
    Labels,
    Components,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Title,
        Field::Description,
        Field::Status,
        Field::Assignee,
        Field::DueDate,
        Field::Priority,
        Field::Labels,
        Field::Components,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Description => "description",
            Self::Status => "status",
            Self::Assignee => "assignee",
            Self::DueDate => "due_date",
            Self::Priority => "priority",
            Self::Labels => "labels",
            Self::Components => "components",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Fields {
    /// Whether `field` holds the same value in `self` and `other`.
    pub fn same(&self, other: &Fields, field: Field) -> bool {
        match field {
            Field::Title => self.title == other.title,
            Field::Description => self.description == other.description,
            Field::Status => self.done == other.done,
            Field::Assignee => self.assignee == other.assignee,
            Field::DueDate => self.due == other.due,
            Field::Priority => self.priority == other.priority,
            Field::Labels => self.labels == other.labels,
            Field::Components => self.components == other.components,
        }
    }

    /// Copies `field` from `from` into `self`.
    pub fn take(&mut self, from: &Fields, field: Field) {
        match field {
            Field::Title => self.title.clone_from(&from.title),
            Field::Description => self.description.clone_from(&from.description),
            Field::Status => self.done = from.done,
            Field::Assignee => self.assignee.clone_from(&from.assignee),
            Field::DueDate => self.due = from.due,
            Field::Priority => self.priority = from.priority,
            Field::Labels => self.labels.clone_from(&from.labels),
            Field::Components => self.components.clone_from(&from.components),
        }
    }

    /// A short, secret-free rendering of one field's value for audit and conflict entries.
    pub fn show(&self, field: Field) -> String {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match field {
            Field::Title => self.title.clone(),
            Field::Description => format!("{} chars", self.description.chars().count()),
            Field::Status => if self.done { "done" } else { "open" }.to_owned(),
            Field::Assignee => self.assignee.as_ref().map_or_else(|| "unassigned".to_owned(), |a| a.0.clone()),
            Field::DueDate => self.due.map_or_else(|| "none".to_owned(), |d| d.to_string()),
            Field::Priority => self.priority.map_or_else(|| "none".to_owned(), |p| p.jira_name().to_owned()),
            Field::Labels => join(&self.labels),
            Field::Components => join(&self.components),
        }
    }
}
