//! Basecamp's records and the rules for changing them. Every change returns the webhook events it
//! fires; the caller renders and delivers them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::SimError;
use crate::common::json::now_utc_millis;

/// A project (bucket) with its single to-do set.
#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub todoset_id: i64,
    pub people: Vec<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// A to-do list.
#[derive(Clone, Debug, Serialize)]
pub struct Todolist {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub description: String,
    pub position: usize,
    pub creator_id: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A to-do.
#[derive(Clone, Debug, Serialize)]
pub struct Todo {
    pub id: i64,
    pub project_id: i64,
    pub list_id: i64,
    pub content: String,
    pub description: String,
    pub assignee_ids: Vec<i64>,
    pub completion_subscriber_ids: Vec<i64>,
    pub due_on: Option<String>,
    pub starts_on: Option<String>,
    pub completed: bool,
    pub completion: Option<(String, i64)>,
    pub status: String,
    pub creator_id: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A comment on any recording.
#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    pub id: i64,
    pub project_id: i64,
    pub parent_id: i64,
    pub content: String,
    pub creator_id: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A project webhook.
#[derive(Clone, Debug, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub project_id: i64,
    pub payload_url: String,
    pub types: Vec<String>,
    pub active: bool,
    pub consecutive_failures: u32,
    pub recent_deliveries: Vec<Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// An OAuth access token.
#[derive(Clone, Debug, Serialize)]
pub struct Token {
    pub person_id: i64,
    pub expired: bool,
}

/// A webhook-worthy change.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: String,
    pub recording_id: i64,
    pub project_id: i64,
    pub creator_id: i64,
    pub details: Value,
}

/// The fields a to-do write carries (a PUT replaces all of them).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TodoWrite {
    pub content: Option<String>,
    pub description: Option<String>,
    pub assignee_ids: Option<Vec<i64>>,
    pub completion_subscriber_ids: Option<Vec<i64>>,
    pub due_on: Option<String>,
    pub starts_on: Option<String>,
    pub notify: Option<bool>,
}

/// All of one simulator's records.
#[derive(Debug, Default)]
pub struct State {
    next_id: i64,
    next_event_id: i64,
    pub people: BTreeMap<i64, Value>,
    pub projects: BTreeMap<i64, Project>,
    pub todolists: BTreeMap<i64, Todolist>,
    pub todos: BTreeMap<i64, Todo>,
    pub comments: BTreeMap<i64, Comment>,
    pub webhooks: BTreeMap<i64, Webhook>,
    pub tokens: BTreeMap<String, Token>,
    pub refresh_tokens: BTreeMap<String, i64>,
}

fn bad(message: &str) -> SimError {
    SimError::Invalid(message.to_owned())
}

fn valid_date(date: &Option<String>) -> Result<(), SimError> {
    match date {
        Some(text) if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() => {
            Err(bad("date must be YYYY-MM-DD"))
        }
        _ => Ok(()),
    }
}

impl State {
    /// An empty state whose generated ids start at `first_id`.
    pub fn new(first_id: i64) -> Self {
        Self { next_id: first_id, next_event_id: 1_052_480_000, ..Self::default() }
    }

    /// A fresh record id.
    pub fn fresh_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh webhook event id.
    pub fn fresh_event_id(&mut self) -> i64 {
        self.next_event_id += 1;
        self.next_event_id
    }

    fn event(kind: &str, recording_id: i64, project_id: i64, creator_id: i64, details: Value) -> Event {
        Event { kind: kind.to_owned(), recording_id, project_id, creator_id, details }
    }

    fn known_people(&self, ids: &[i64]) -> Vec<i64> {
        let mut seen = BTreeSet::new();
        ids.iter().copied().filter(|id| self.people.contains_key(id) && seen.insert(*id)).collect()
    }

    /// Creates a project with an empty to-do set.
    pub fn create_project(&mut self, name: &str, description: &str, id: Option<i64>, todoset_id: Option<i64>) -> i64 {
        let id = id.unwrap_or_else(|| self.fresh_id());
        let todoset_id = todoset_id.unwrap_or_else(|| self.fresh_id());
        let now = now_utc_millis();
        let people = self.people.keys().copied().collect();
        self.projects.insert(
            id,
            Project {
                id,
                name: name.to_owned(),
                description: description.to_owned(),
                todoset_id,
                people,
                created_at: now.clone(),
                updated_at: now,
            },
        );
        id
    }

    /// The project owning to-do set `todoset_id`.
    pub fn project_of_todoset(&self, todoset_id: i64) -> Option<&Project> {
        self.projects.values().find(|project| project.todoset_id == todoset_id)
    }

    /// Creates a to-do list in a project's to-do set.
    pub fn create_todolist(
        &mut self,
        project_id: i64,
        name: &str,
        description: &str,
        actor: i64,
    ) -> Result<(i64, Vec<Event>), SimError> {
        if name.trim().is_empty() {
            return Err(bad("Name can't be blank"));
        }
        if !self.projects.contains_key(&project_id) {
            return Err(SimError::NotFound(format!("project {project_id}")));
        }
        let id = self.fresh_id();
        let position = self.todolists.values().filter(|list| list.project_id == project_id).count() + 1;
        let now = now_utc_millis();
        self.todolists.insert(
            id,
            Todolist {
                id,
                project_id,
                name: name.to_owned(),
                description: description.to_owned(),
                position,
                creator_id: actor,
                created_at: now.clone(),
                updated_at: now,
            },
        );
        let details = json!({"notified_recipient_ids": []});
        Ok((id, vec![Self::event("todolist_created", id, project_id, actor, details)]))
    }

    /// Creates a to-do (POST semantics: omitted fields start empty).
    pub fn create_todo(&mut self, list_id: i64, write: TodoWrite, actor: i64) -> Result<(i64, Vec<Event>), SimError> {
        let list = self.todolists.get(&list_id).ok_or_else(|| SimError::NotFound(format!("todolist {list_id}")))?;
        let project_id = list.project_id;
        let content = write.content.clone().unwrap_or_default();
        if content.trim().is_empty() {
            return Err(bad("Content can't be blank"));
        }
        valid_date(&write.due_on)?;
        valid_date(&write.starts_on)?;
        let id = self.fresh_id();
        let now = now_utc_millis();
        let assignee_ids = self.known_people(&write.assignee_ids.clone().unwrap_or_default());
        let todo = Todo {
            id,
            project_id,
            list_id,
            content,
            description: write.description.clone().unwrap_or_default(),
            assignee_ids: assignee_ids.clone(),
            completion_subscriber_ids: self.known_people(&write.completion_subscriber_ids.unwrap_or_default()),
            due_on: write.due_on,
            starts_on: write.starts_on,
            completed: false,
            completion: None,
            status: "active".to_owned(),
            creator_id: actor,
            created_at: now.clone(),
            updated_at: now,
        };
        self.todos.insert(id, todo);
        let mut events =
            vec![Self::event("todo_created", id, project_id, actor, json!({"notified_recipient_ids": []}))];
        if !assignee_ids.is_empty() {
            let details = json!({"added_person_ids": assignee_ids, "removed_person_ids": []});
            events.push(Self::event("todo_assignment_changed", id, project_id, actor, details));
        }
        Ok((id, events))
    }

    /// Replaces a to-do's writable fields (PUT semantics: omitted fields are cleared).
    pub fn replace_todo(&mut self, id: i64, write: TodoWrite, actor: i64) -> Result<Vec<Event>, SimError> {
        let content = write.content.clone().unwrap_or_default();
        if content.trim().is_empty() {
            return Err(bad("Content can't be blank"));
        }
        if write.due_on.as_deref() == Some("") || write.starts_on.as_deref() == Some("") {
            return Err(bad("date must be YYYY-MM-DD"));
        }
        valid_date(&write.due_on)?;
        valid_date(&write.starts_on)?;
        let assignee_ids = self.known_people(&write.assignee_ids.clone().unwrap_or_default());
        let subscribers = self.known_people(&write.completion_subscriber_ids.clone().unwrap_or_default());
        let todo = self.todos.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?;
        let before = todo.clone();
        todo.content = content;
        todo.description = write.description.unwrap_or_default();
        todo.assignee_ids = assignee_ids;
        todo.completion_subscriber_ids = subscribers;
        todo.due_on = write.due_on;
        todo.starts_on = write.starts_on;
        let after = todo.clone();
        let events = Self::diff_events(&before, &after, actor);
        if (!events.is_empty() || before.completion_subscriber_ids != after.completion_subscriber_ids)
            && let Some(todo) = self.todos.get_mut(&id)
        {
            todo.updated_at = now_utc_millis();
        }
        Ok(events)
    }

    fn diff_events(before: &Todo, after: &Todo, actor: i64) -> Vec<Event> {
        let (id, project) = (after.id, after.project_id);
        let mut events = Vec::new();
        let notified = || json!({"notified_recipient_ids": []});
        if before.content != after.content {
            events.push(Self::event("todo_content_changed", id, project, actor, notified()));
        }
        if before.description != after.description {
            events.push(Self::event("todo_description_changed", id, project, actor, notified()));
        }
        match (&before.due_on, &after.due_on) {
            (None, Some(_)) => events.push(Self::event("todo_scheduled", id, project, actor, notified())),
            (Some(_), None) => events.push(Self::event("todo_unscheduled", id, project, actor, notified())),
            (Some(old), Some(new)) if old != new => {
                events.push(Self::event("todo_rescheduled", id, project, actor, notified()))
            }
            _ => {}
        }
        if before.assignee_ids != after.assignee_ids {
            let added: Vec<i64> =
                after.assignee_ids.iter().filter(|p| !before.assignee_ids.contains(p)).copied().collect();
            let removed: Vec<i64> =
                before.assignee_ids.iter().filter(|p| !after.assignee_ids.contains(p)).copied().collect();
            let details = json!({"added_person_ids": added, "removed_person_ids": removed});
            events.push(Self::event("todo_assignment_changed", id, project, actor, details));
        }
        if events.is_empty() && before.completion_subscriber_ids != after.completion_subscriber_ids {
            events.push(Self::event("todo_changed", id, project, actor, notified()));
        }
        events
    }

    /// Marks a to-do completed (idempotent: completing a completed to-do fires nothing).
    pub fn complete_todo(&mut self, id: i64, actor: i64) -> Result<Vec<Event>, SimError> {
        let todo = self.todos.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?;
        if todo.completed {
            return Ok(Vec::new());
        }
        let now = now_utc_millis();
        todo.completed = true;
        todo.completion = Some((now.clone(), actor));
        todo.updated_at = now;
        let details = json!({"notified_recipient_ids": []});
        Ok(vec![Self::event("todo_completed", id, todo.project_id, actor, details)])
    }

    /// Marks a to-do not completed (idempotent).
    pub fn uncomplete_todo(&mut self, id: i64, actor: i64) -> Result<Vec<Event>, SimError> {
        let todo = self.todos.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?;
        if !todo.completed {
            return Ok(Vec::new());
        }
        todo.completed = false;
        todo.completion = None;
        todo.updated_at = now_utc_millis();
        let details = json!({"notified_recipient_ids": []});
        Ok(vec![Self::event("todo_uncompleted", id, todo.project_id, actor, details)])
    }

    /// The project and type of any commentable recording.
    pub fn recording(&self, id: i64) -> Option<(i64, &'static str)> {
        if let Some(todo) = self.todos.get(&id) {
            return Some((todo.project_id, "Todo"));
        }
        if let Some(list) = self.todolists.get(&id) {
            return Some((list.project_id, "Todolist"));
        }
        self.comments.get(&id).map(|comment| (comment.project_id, "Comment"))
    }

    /// Adds a comment to a to-do or to-do list.
    pub fn create_comment(&mut self, parent_id: i64, content: &str, actor: i64) -> Result<(i64, Vec<Event>), SimError> {
        let (project_id, kind) =
            self.recording(parent_id).ok_or_else(|| SimError::NotFound(format!("recording {parent_id}")))?;
        if kind == "Comment" {
            return Err(SimError::NotFound(format!("recording {parent_id} takes no comments")));
        }
        if content.trim().is_empty() {
            return Err(bad("Content can't be blank"));
        }
        let id = self.fresh_id();
        let now = now_utc_millis();
        self.comments.insert(
            id,
            Comment {
                id,
                project_id,
                parent_id,
                content: content.to_owned(),
                creator_id: actor,
                created_at: now.clone(),
                updated_at: now,
            },
        );
        let details = json!({"notified_recipient_ids": []});
        Ok((id, vec![Self::event("comment_created", id, project_id, actor, details)]))
    }

    /// Replaces a comment's content.
    pub fn update_comment(&mut self, id: i64, content: &str, actor: i64) -> Result<Vec<Event>, SimError> {
        if content.trim().is_empty() {
            return Err(bad("Content can't be blank"));
        }
        let comment = self.comments.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("comment {id}")))?;
        if comment.content == content {
            return Ok(Vec::new());
        }
        comment.content = content.to_owned();
        comment.updated_at = now_utc_millis();
        let details = json!({"notified_recipient_ids": []});
        Ok(vec![Self::event("comment_content_changed", id, comment.project_id, actor, details)])
    }

    /// Comments on a recording, oldest first.
    pub fn comments_on(&self, parent_id: i64) -> Vec<&Comment> {
        self.comments.values().filter(|comment| comment.parent_id == parent_id).collect()
    }
}
