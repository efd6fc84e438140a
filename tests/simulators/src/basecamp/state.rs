//! Basecamp's records and the rules for changing them. Every change returns the webhook events it
//! fires; the caller renders and delivers them.
//!
//! Ids are 64-bit and handed out past 2^53, odd, so none of them survives a trip through an `f64`
//! (reference/basecamp-api.md §1: ids already exceed 2^53). Publication status (`active`, `archived`,
//! `trashed`) is separate from completion, and a to-do list's status propagates to its to-dos without
//! events of their own (webhooks.md, "Status propagation to children recordings").

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
    /// `active`, `archived` or `trashed`; inherited by the list's to-dos.
    pub status: String,
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
    /// The to-do's own status; [`State::todo_status`] adds what it inherits from its list.
    pub status: String,
    /// Order within its list (1 = top).
    pub position: usize,
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
    pub status: String,
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
    /// `*_copied` events: the new recording and its project.
    pub copy: Option<(i64, i64)>,
    /// The recording as it was, for events about a recording that no longer exists (`*_deleted`).
    pub rendered: Option<Value>,
}

/// The first id the simulator hands out: past 2^53 (9_007_199_254_740_992) and odd, so an id read
/// through an `f64` comes back different.
pub const FIRST_ID: i64 = 9_007_199_254_750_001;
/// The first webhook event id (odd, past 2^53 too).
pub const FIRST_EVENT_ID: i64 = 9_007_199_254_980_001;

/// Publication statuses (README.md: status is separate from completion).
pub const STATUSES: [&str; 3] = ["active", "archived", "trashed"];

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

/// A recording kind that has a publication status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Todo,
    Todolist,
    Comment,
}

impl Kind {
    /// The snake-case prefix of its webhook kinds (`todo_trashed`).
    pub fn event_prefix(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::Todolist => "todolist",
            Self::Comment => "comment",
        }
    }
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
        Self { next_id: first_id - 2, next_event_id: FIRST_EVENT_ID - 2, ..Self::default() }
    }

    /// A fresh record id (odd, so never exact as an `f64` past 2^53).
    pub fn fresh_id(&mut self) -> i64 {
        self.next_id += 2;
        self.next_id
    }

    /// A fresh webhook event id.
    pub fn fresh_event_id(&mut self) -> i64 {
        self.next_event_id += 2;
        self.next_event_id
    }

    fn event(kind: &str, recording_id: i64, project_id: i64, creator_id: i64, details: Value) -> Event {
        Event { kind: kind.to_owned(), recording_id, project_id, creator_id, details, copy: None, rendered: None }
    }

    /// A to-do's status as the API shows it: its own, unless it is active and its list is not (a list's
    /// archive or trash reaches its to-dos without events of their own).
    pub fn todo_status<'a>(&'a self, todo: &'a Todo) -> &'a str {
        match self.todolists.get(&todo.list_id) {
            Some(list) if todo.status == "active" && list.status != "active" => &list.status,
            _ => &todo.status,
        }
    }

    /// A comment's status as the API shows it (inherited from the to-do or list it is on).
    pub fn comment_status<'a>(&'a self, comment: &'a Comment) -> &'a str {
        if comment.status != "active" {
            return &comment.status;
        }
        if let Some(todo) = self.todos.get(&comment.parent_id) {
            return self.todo_status(todo);
        }
        self.todolists.get(&comment.parent_id).map_or("active", |list| list.status.as_str())
    }

    /// The to-dos of a list in their order (positions 1, 2, …).
    pub fn todos_in(&self, list_id: i64) -> Vec<&Todo> {
        let mut todos: Vec<&Todo> = self.todos.values().filter(|t| t.list_id == list_id).collect();
        todos.sort_by_key(|t| (t.position, t.id));
        todos
    }

    fn renumber(&mut self, list_id: i64) {
        let order: Vec<i64> = self.todos_in(list_id).iter().map(|t| t.id).collect();
        for (n, id) in order.into_iter().enumerate() {
            if let Some(todo) = self.todos.get_mut(&id) {
                todo.position = n + 1;
            }
        }
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
                description: super::sanitize::rich_text(description),
                position,
                status: "active".to_owned(),
                creator_id: actor,
                created_at: now.clone(),
                updated_at: now,
            },
        );
        let details = json!({"notified_recipient_ids": []});
        Ok((id, vec![Self::event("todolist_created", id, project_id, actor, details)]))
    }

    /// Replaces a to-do list's name and description (PUT semantics: an omitted description is cleared).
    /// Fires `todolist_title_updated` and `todolist_content_updated` (webhooks.md's lifecycle kinds) for
    /// what changed; the list's to-dos get no events of their own.
    pub fn replace_todolist(
        &mut self,
        id: i64,
        name: &str,
        description: &str,
        actor: i64,
    ) -> Result<Vec<Event>, SimError> {
        if name.trim().is_empty() {
            return Err(bad("Name can't be blank"));
        }
        let description = super::sanitize::rich_text(description);
        let list = self.todolists.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("todolist {id}")))?;
        let project_id = list.project_id;
        let mut events = Vec::new();
        if list.name != name {
            list.name = name.to_owned();
            events.push(Self::event("todolist_title_updated", id, project_id, actor, json!({})));
        }
        if list.description != description {
            list.description = description;
            events.push(Self::event("todolist_content_updated", id, project_id, actor, json!({})));
        }
        if !events.is_empty() {
            list.updated_at = now_utc_millis();
        }
        Ok(events)
    }

    /// Creates a to-do (POST semantics: omitted fields start empty).
    pub fn create_todo(&mut self, list_id: i64, write: TodoWrite, actor: i64) -> Result<(i64, Vec<Event>), SimError> {
        let list = self.todolists.get(&list_id).ok_or_else(|| SimError::NotFound(format!("todolist {list_id}")))?;
        if list.status != "active" {
            return Err(SimError::NotFound(format!("todolist {list_id} is {}", list.status)));
        }
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
        // New to-dos go to the bottom of their list.
        let position = self.todos.values().filter(|t| t.list_id == list_id).map(|t| t.position).max().unwrap_or(0) + 1;
        let todo = Todo {
            id,
            project_id,
            list_id,
            content,
            description: super::sanitize::rich_text(&write.description.clone().unwrap_or_default()),
            assignee_ids: assignee_ids.clone(),
            completion_subscriber_ids: self.known_people(&write.completion_subscriber_ids.unwrap_or_default()),
            due_on: write.due_on,
            starts_on: write.starts_on,
            completed: false,
            completion: None,
            status: "active".to_owned(),
            position,
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
        todo.description = super::sanitize::rich_text(&write.description.unwrap_or_default());
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
        let content = super::sanitize::rich_text(content);
        if super::sanitize::is_blank(&content) {
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
                content,
                status: "active".to_owned(),
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
        let content = super::sanitize::rich_text(content);
        if super::sanitize::is_blank(&content) {
            return Err(bad("Content can't be blank"));
        }
        let comment = self.comments.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("comment {id}")))?;
        if comment.content == content {
            return Ok(Vec::new());
        }
        comment.content = content;
        comment.updated_at = now_utc_millis();
        let details = json!({"notified_recipient_ids": []});
        Ok(vec![Self::event("comment_content_changed", id, comment.project_id, actor, details)])
    }

    /// Active comments on a recording, oldest first.
    pub fn comments_on(&self, parent_id: i64) -> Vec<&Comment> {
        self.comments.values().filter(|c| c.parent_id == parent_id && self.comment_status(c) == "active").collect()
    }

    /// The kind of a recording that has a status.
    pub fn kind_of(&self, id: i64) -> Option<Kind> {
        if self.todos.contains_key(&id) {
            Some(Kind::Todo)
        } else if self.todolists.contains_key(&id) {
            Some(Kind::Todolist)
        } else if self.comments.contains_key(&id) {
            Some(Kind::Comment)
        } else {
            None
        }
    }

    /// `PUT /recordings/{id}/status/{status}.json`: trash, archive or make active. Fires
    /// `X_trashed`, `X_archived`, `X_untrashed` or `X_unarchived` for the recording itself only; what
    /// it contains follows silently. Setting the status a recording already has changes nothing.
    pub fn set_status(&mut self, id: i64, status: &str, actor: i64) -> Result<Vec<Event>, SimError> {
        if !STATUSES.contains(&status) {
            return Err(SimError::NotFound(format!("status {status}")));
        }
        let kind = self.kind_of(id).ok_or_else(|| SimError::NotFound(format!("recording {id}")))?;
        let now = now_utc_millis();
        let (before, project_id) = match kind {
            Kind::Todo => self.todos.get_mut(&id).map(|t| {
                let before = std::mem::replace(&mut t.status, status.to_owned());
                t.updated_at = now;
                (before, t.project_id)
            }),
            Kind::Todolist => self.todolists.get_mut(&id).map(|l| {
                let before = std::mem::replace(&mut l.status, status.to_owned());
                l.updated_at = now;
                (before, l.project_id)
            }),
            Kind::Comment => self.comments.get_mut(&id).map(|c| {
                let before = std::mem::replace(&mut c.status, status.to_owned());
                c.updated_at = now;
                (before, c.project_id)
            }),
        }
        .ok_or_else(|| SimError::NotFound(format!("recording {id}")))?;
        let action = match (before.as_str(), status) {
            (b, s) if b == s => return Ok(Vec::new()),
            (_, "trashed") => "trashed",
            (_, "archived") => "archived",
            ("trashed", _) => "untrashed",
            _ => "unarchived",
        };
        let kind_name = format!("{}_{action}", kind.event_prefix());
        Ok(vec![Self::event(&kind_name, id, project_id, actor, json!({}))])
    }

    /// `PUT /todos/{id}/position.json`: moves a to-do to `position` (1 = top) in its list, or in the list
    /// `parent_id` of the same project. Fires no webhook (reference §10, "Known gaps": moves between
    /// lists are not notified), but the to-do's `updated_at` moves, as its parent changed.
    pub fn reposition_todo(&mut self, id: i64, position: i64, parent_id: Option<i64>) -> Result<(), SimError> {
        if position < 1 {
            return Err(bad("position must be greater than or equal to 1"));
        }
        let todo = self.todos.get(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?;
        let (project_id, from_list) = (todo.project_id, todo.list_id);
        let to_list = parent_id.unwrap_or(from_list);
        match self.todolists.get(&to_list) {
            Some(list) if list.project_id == project_id => {
                if list.status != "active" {
                    return Err(SimError::Invalid(format!("todolist {to_list} is {}", list.status)));
                }
            }
            _ => return Err(SimError::NotFound(format!("todolist {to_list}"))),
        }
        let ahead: Vec<i64> = self.todos_in(to_list).iter().filter(|t| t.id != id).map(|t| t.id).collect();
        let slot = usize::try_from(position).unwrap_or(usize::MAX).min(ahead.len() + 1);
        let mut order = ahead;
        order.insert(slot - 1, id);
        for (n, todo_id) in order.iter().enumerate() {
            if let Some(t) = self.todos.get_mut(todo_id) {
                t.position = n + 1;
            }
        }
        if let Some(todo) = self.todos.get_mut(&id) {
            if todo.list_id != to_list {
                todo.list_id = to_list;
                todo.updated_at = now_utc_millis();
            }
            todo.position = slot;
        }
        if from_list != to_list {
            self.renumber(from_list);
        }
        Ok(())
    }

    /// Copies a to-do into `list_id` (any project) as `actor`: a new to-do with the same content,
    /// description, assignees and dates. Fires `todo_copied` on the original, with the copy in
    /// `details.copy_id` and `copy` (webhooks.md, the copy/move payload).
    pub fn copy_todo(&mut self, id: i64, list_id: i64, actor: i64) -> Result<(i64, Vec<Event>), SimError> {
        let original = self.todos.get(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?.clone();
        let write = TodoWrite {
            content: Some(original.content.clone()),
            description: Some(original.description.clone()),
            assignee_ids: Some(original.assignee_ids.clone()),
            completion_subscriber_ids: Some(original.completion_subscriber_ids.clone()),
            due_on: original.due_on.clone(),
            starts_on: original.starts_on.clone(),
            notify: None,
        };
        let (copy_id, _) = self.create_todo(list_id, write, actor)?;
        let copy_project = self.todos.get(&copy_id).map_or(original.project_id, |t| t.project_id);
        let mut event = Self::event("todo_copied", id, original.project_id, actor, json!({"copy_id": copy_id}));
        event.copy = Some((copy_id, copy_project));
        Ok((copy_id, vec![event]))
    }

    /// Deletes a trashed recording for good (Basecamp purges the trash after 30 days). Fires
    /// `X_deleted` with the recording as it was; afterwards every read is a 404.
    pub fn delete_recording(&mut self, id: i64, actor: i64, rendered: Value) -> Result<Vec<Event>, SimError> {
        let kind = self.kind_of(id).ok_or_else(|| SimError::NotFound(format!("recording {id}")))?;
        let (status, project_id) = match kind {
            Kind::Todo => self.todos.get(&id).map(|t| (self.todo_status(t).to_owned(), t.project_id)),
            Kind::Todolist => self.todolists.get(&id).map(|l| (l.status.clone(), l.project_id)),
            Kind::Comment => self.comments.get(&id).map(|c| (self.comment_status(c).to_owned(), c.project_id)),
        }
        .ok_or_else(|| SimError::NotFound(format!("recording {id}")))?;
        if status != "trashed" {
            return Err(SimError::Invalid(format!("recording {id} is {status}; only trashed recordings are deleted")));
        }
        match kind {
            Kind::Todo => {
                self.todos.remove(&id);
            }
            Kind::Todolist => {
                self.todolists.remove(&id);
                self.todos.retain(|_, t| t.list_id != id);
            }
            Kind::Comment => {
                self.comments.remove(&id);
            }
        }
        let todos = &self.todos;
        let lists = &self.todolists;
        self.comments.retain(|_, c| todos.contains_key(&c.parent_id) || lists.contains_key(&c.parent_id));
        let mut event = Self::event(&format!("{}_deleted", kind.event_prefix()), id, project_id, actor, json!({}));
        event.rendered = Some(rendered);
        Ok(vec![event])
    }
}
