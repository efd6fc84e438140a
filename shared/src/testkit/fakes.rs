//! In-memory stand-ins for the Basecamp and tracker APIs, for engine unit and property tests. They keep
//! the behaviour the engine relies on (full-replace to-do updates, differential labels, marker search,
//! refused assignees, gone records, 429s) and count every call. The HTTP simulators under `tests/` are
//! the faithful versions; these exist so the engine's rules can be tested thousands of times a second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    BasecampCommentId, DevItem, DevItemRef, JiraAccountId, JiraCommentId, JiraIssueId, JiraKey, NewDevItem, ProjectId,
    StatusCategory, SyncMarker, Todo, TodoId, TodolistId, TrackerTarget,
};
use crate::ports::{
    ApiError, BasecampApi, DevItemPatch, RemoteLink, TodoComment, TodoPatch, TrackerApi, TrackerComment,
};

use super::at;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts calls by name.
#[derive(Debug, Default)]
pub struct Calls(Mutex<BTreeMap<&'static str, usize>>);

impl Calls {
    fn hit(&self, name: &'static str) {
        *lock(&self.0).entry(name).or_default() += 1;
    }
    pub fn get(&self, name: &str) -> usize {
        lock(&self.0).get(name).copied().unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        lock(&self.0).values().sum()
    }
    /// Calls that change upstream state.
    pub fn writes(&self) -> usize {
        lock(&self.0)
            .iter()
            .filter(|(k, _)| !k.starts_with("get") && !k.starts_with("list") && !k.starts_with("find"))
            .map(|(_, v)| v)
            .sum()
    }
    pub fn reset(&self) {
        lock(&self.0).clear();
    }
}

#[derive(Debug, Default)]
struct BasecampState {
    todos: BTreeMap<TodoId, Todo>,
    comments: BTreeMap<TodoId, Vec<TodoComment>>,
    next_comment: i64,
    tick: i64,
    rate_limited: Option<Duration>,
    unavailable: bool,
    fail_next_comment_listing: bool,
}

/// An in-memory Basecamp.
#[derive(Debug, Default)]
pub struct FakeBasecamp {
    state: Mutex<BasecampState>,
    pub calls: Calls,
}

impl FakeBasecamp {
    /// Adds or replaces a to-do as a person would (bumps `updated_at`).
    pub fn put(&self, mut todo: Todo) {
        let mut s = lock(&self.state);
        s.tick += 1;
        todo.updated_at = at(s.tick);
        s.todos.insert(todo.id, todo);
    }
    /// Edits a to-do as a person would (bumps `updated_at`). Unknown ids are ignored.
    pub fn edit(&self, id: TodoId, f: impl FnOnce(&mut Todo)) {
        let mut s = lock(&self.state);
        s.tick += 1;
        let now = at(s.tick);
        if let Some(t) = s.todos.get_mut(&id) {
            f(t);
            t.updated_at = now;
        }
    }
    pub fn todo(&self, id: TodoId) -> Option<Todo> {
        lock(&self.state).todos.get(&id).cloned()
    }
    pub fn remove(&self, id: TodoId) {
        lock(&self.state).todos.remove(&id);
    }
    pub fn comments(&self, id: TodoId) -> Vec<TodoComment> {
        lock(&self.state).comments.get(&id).cloned().unwrap_or_default()
    }
    /// A person comments on a to-do; returns the comment id.
    pub fn comment_as(&self, todo: TodoId, author: &str, html: &str) -> BasecampCommentId {
        let mut s = lock(&self.state);
        s.next_comment += 1;
        let id = BasecampCommentId(s.next_comment);
        s.comments.entry(todo).or_default().push(TodoComment {
            id,
            author_name: author.into(),
            content: html.into(),
            app_url: format!("https://3.basecamp.com/c/{}", id.0),
        });
        id
    }

    /// A person edits a comment.
    pub fn edit_comment(&self, todo: TodoId, comment: BasecampCommentId, html: &str) {
        let mut s = lock(&self.state);
        if let Some(c) = s.comments.get_mut(&todo).and_then(|l| l.iter_mut().find(|c| c.id == comment)) {
            c.content = html.into();
        }
    }

    /// Every call answers 429 with this Retry-After until cleared with `None`.
    pub fn set_rate_limited(&self, retry_after: Option<Duration>) {
        lock(&self.state).rate_limited = retry_after;
    }
    /// The next listing of a to-do's comments fails as an outage would.
    pub fn fail_next_comment_listing(&self) {
        lock(&self.state).fail_next_comment_listing = true;
    }
    /// Every call fails as an outage would (a 503) until cleared with `false`.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).unavailable = unavailable;
    }
    fn limited(&self) -> Result<(), ApiError> {
        let s = lock(&self.state);
        if s.unavailable {
            return Err(ApiError::Transient("HTTP 503 Service Unavailable".into()));
        }
        match s.rate_limited {
            Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }
    /// The logical clock the fakes share, so last-writer-wins can compare times across sides.
    pub fn tick(&self) -> i64 {
        lock(&self.state).tick
    }
}

#[async_trait]
impl BasecampApi for FakeBasecamp {
    async fn get_todo(&self, _project: ProjectId, todo: TodoId) -> Result<Option<Todo>, ApiError> {
        self.calls.hit("get_todo");
        self.limited()?;
        Ok(lock(&self.state).todos.get(&todo).cloned())
    }

    async fn update_todo(&self, _project: ProjectId, todo: TodoId, patch: &TodoPatch) -> Result<Todo, ApiError> {
        self.calls.hit("update_todo");
        self.limited()?;
        let mut s = lock(&self.state);
        s.tick += 1;
        let now = at(s.tick);
        let t = s.todos.get_mut(&todo).ok_or_else(|| ApiError::Invalid("no such to-do".into()))?;
        let merged = crate::sync::patched_todo(t, patch);
        *t = Todo { updated_at: now, ..merged };
        Ok(t.clone())
    }

    async fn post_comment(&self, _project: ProjectId, todo: TodoId, html: &str) -> Result<BasecampCommentId, ApiError> {
        self.calls.hit("post_comment");
        self.limited()?;
        let mut s = lock(&self.state);
        s.next_comment += 1;
        let id = BasecampCommentId(s.next_comment);
        s.comments.entry(todo).or_default().push(TodoComment {
            id,
            author_name: "campbridge".into(),
            content: html.into(),
            app_url: format!("https://3.basecamp.com/c/{}", id.0),
        });
        Ok(id)
    }

    async fn list_comments(&self, _project: ProjectId, todo: TodoId) -> Result<Vec<TodoComment>, ApiError> {
        self.calls.hit("list_comments");
        self.limited()?;
        if std::mem::take(&mut lock(&self.state).fail_next_comment_listing) {
            return Err(ApiError::Transient("HTTP 503 Service Unavailable".into()));
        }
        Ok(self.comments(todo))
    }

    async fn list_todos(&self, _project: ProjectId, list: TodolistId) -> Result<Option<Vec<Todo>>, ApiError> {
        self.calls.hit("list_todos");
        self.limited()?;
        let s = lock(&self.state);
        let todos: Vec<Todo> = s.todos.values().filter(|t| t.todolist == list).cloned().collect();
        Ok(Some(todos))
    }

    async fn update_comment(
        &self,
        _project: ProjectId,
        comment: BasecampCommentId,
        html: &str,
    ) -> Result<(), ApiError> {
        self.calls.hit("update_comment");
        self.limited()?;
        let mut s = lock(&self.state);
        let c = s
            .comments
            .values_mut()
            .flatten()
            .find(|c| c.id == comment)
            .ok_or_else(|| ApiError::Invalid("no such comment".into()))?;
        c.content = html.into();
        Ok(())
    }

    async fn get_comment(
        &self,
        _project: ProjectId,
        comment: BasecampCommentId,
    ) -> Result<Option<TodoComment>, ApiError> {
        self.calls.hit("get_comment");
        self.limited()?;
        Ok(lock(&self.state).comments.values().flatten().find(|c| c.id == comment).cloned())
    }
}

#[derive(Debug, Default)]
struct TrackerState {
    items: BTreeMap<String, DevItem>,
    markers: BTreeMap<String, String>,
    links: BTreeMap<String, BTreeMap<String, RemoteLink>>,
    comments: BTreeMap<String, Vec<TrackerComment>>,
    next_id: u64,
    refused_assignees: BTreeSet<JiraAccountId>,
    fail_creates_after_success: bool,
}

/// An in-memory Jira.
#[derive(Debug, Default)]
pub struct FakeTracker {
    state: Mutex<TrackerState>,
    pub calls: Calls,
    /// Shares Basecamp's logical clock so `updated_at` compares across sides.
    clock: Mutex<i64>,
}

impl FakeTracker {
    /// A tracker whose `updated_at` values interleave with `basecamp`'s clock.
    pub fn new() -> Self {
        Self::default()
    }
    fn now(&self, basecamp_tick: i64) -> DateTime<Utc> {
        let mut c = lock(&self.clock);
        *c = (*c).max(basecamp_tick) + 1;
        at(*c)
    }
    /// Ticks the shared logical clock forward to at least `t` (tests call this with Basecamp's tick).
    pub fn sync_clock(&self, t: i64) {
        let mut c = lock(&self.clock);
        *c = (*c).max(t);
    }
    pub fn items(&self) -> Vec<DevItem> {
        lock(&self.state).items.values().cloned().collect()
    }
    pub fn item(&self, r: &DevItemRef) -> Option<DevItem> {
        lock(&self.state).items.get(&r.index_key()).cloned()
    }
    /// Edits an item as a developer would (bumps `updated_at`).
    pub fn edit(&self, r: &DevItemRef, basecamp_tick: i64, f: impl FnOnce(&mut DevItem)) {
        let now = self.now(basecamp_tick);
        if let Some(i) = lock(&self.state).items.get_mut(&r.index_key()) {
            f(i);
            i.updated_at = now;
        }
    }
    pub fn refuse_assignee(&self, account: &JiraAccountId) {
        lock(&self.state).refused_assignees.insert(account.clone());
    }
    /// A developer edits a comment.
    pub fn edit_comment(&self, r: &DevItemRef, comment: &JiraCommentId, html: &str) {
        let mut s = lock(&self.state);
        if let Some(c) = s.comments.get_mut(&r.index_key()).and_then(|l| l.iter_mut().find(|c| &c.id == comment)) {
            c.html = html.into();
        }
    }

    /// A developer comments on an item; returns the comment id.
    pub fn comment_as(&self, r: &DevItemRef, author: &str, html: &str) -> JiraCommentId {
        let mut s = lock(&self.state);
        let list = s.comments.entry(r.index_key()).or_default();
        let id = JiraCommentId(format!("{}", 100 + list.len()));
        list.push(TrackerComment { id: id.clone(), author_name: author.into(), html: html.into() });
        id
    }

    pub fn comments(&self, r: &DevItemRef) -> Vec<TrackerComment> {
        lock(&self.state).comments.get(&r.index_key()).cloned().unwrap_or_default()
    }
    pub fn remote_links(&self, r: &DevItemRef) -> Vec<RemoteLink> {
        lock(&self.state).links.get(&r.index_key()).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
    /// The next create stores the item and then fails as if the process died before recording it.
    pub fn crash_after_next_create(&self) {
        lock(&self.state).fail_creates_after_success = true;
    }
}

#[async_trait]
impl TrackerApi for FakeTracker {
    async fn get_item(&self, item: &DevItemRef) -> Result<Option<DevItem>, ApiError> {
        self.calls.hit("get_item");
        Ok(self.item(item))
    }

    async fn find_item(&self, key: &JiraKey) -> Result<Option<DevItemRef>, ApiError> {
        self.calls.hit("find_item");
        Ok(lock(&self.state).items.values().find(|i| i.item.display_name() == key.as_str()).map(|i| i.item.clone()))
    }

    async fn find_by_marker(&self, _target: &TrackerTarget, marker: &SyncMarker) -> Result<Option<DevItem>, ApiError> {
        self.calls.hit("find_by_marker");
        let s = lock(&self.state);
        Ok(s.markers.get(&marker.label()).and_then(|k| s.items.get(k)).cloned())
    }

    async fn create_item(&self, target: &TrackerTarget, draft: &NewDevItem) -> Result<DevItem, ApiError> {
        self.calls.hit("create_item");
        let now = self.now(0);
        let mut s = lock(&self.state);
        if let Some(a) = draft.assignee.as_ref().filter(|a| s.refused_assignees.contains(*a)) {
            return Err(ApiError::FieldRejected {
                field: "assignee".into(),
                message: format!("user {a} cannot be assigned"),
            });
        }
        s.next_id += 1;
        let TrackerTarget::Jira { project, .. } = target;
        let id = JiraIssueId::parse(&(10_000 + s.next_id).to_string()).map_err(|e| ApiError::Unexpected(e.into()))?;
        let key = JiraKey::parse(&format!("{}-{}", project, s.next_id)).map_err(|e| ApiError::Unexpected(e.into()))?;
        let item_ref = DevItemRef::Jira { id, key: key.clone() };
        let mut labels = draft.labels.clone();
        labels.insert(draft.marker.label());
        let item = DevItem {
            item: item_ref.clone(),
            summary: draft.summary.clone(),
            description: draft.description.clone(),
            status: StatusCategory::New,
            status_name: "To Do".into(),
            assignee: draft.assignee.clone(),
            priority: draft.priority,
            labels,
            components: draft.components.clone(),
            due: draft.due,
            url: format!("https://example.atlassian.net/browse/{key}"),
            updated_at: now,
            flagged: false,
        };
        s.items.insert(item_ref.index_key(), item.clone());
        s.markers.insert(draft.marker.label(), item_ref.index_key());
        if std::mem::take(&mut s.fail_creates_after_success) {
            return Err(ApiError::Transient("connection reset after create".into()));
        }
        Ok(item)
    }

    async fn update_item(&self, item: &DevItemRef, patch: &DevItemPatch) -> Result<(), ApiError> {
        if patch.has_field_edits() {
            self.calls.hit("update_item");
        }
        if patch.status.is_some() {
            self.calls.hit("transition");
        }
        let now = self.now(0);
        let mut s = lock(&self.state);
        if let Some(Some(a)) =
            patch.assignee.as_ref().filter(|a| a.as_ref().is_some_and(|a| s.refused_assignees.contains(a)))
        {
            return Err(ApiError::FieldRejected {
                field: "assignee".into(),
                message: format!("user {a} cannot be assigned"),
            });
        }
        let i = s.items.get_mut(&item.index_key()).ok_or_else(|| ApiError::Invalid("no such issue".into()))?;
        if let Some(v) = &patch.summary {
            i.summary.clone_from(v);
        }
        if let Some(v) = &patch.description {
            i.description.clone_from(v);
        }
        if let Some(v) = &patch.assignee {
            i.assignee.clone_from(v);
        }
        if let Some(v) = patch.due {
            i.due = v;
        }
        if let Some(v) = patch.priority {
            i.priority = Some(v);
        }
        i.labels.extend(patch.labels_add.iter().cloned());
        i.labels.retain(|l| !patch.labels_remove.contains(l));
        i.components.extend(patch.components_add.iter().cloned());
        i.components.retain(|c| !patch.components_remove.contains(c));
        if let Some(cat) = patch.status {
            i.status = cat;
            i.status_name = match cat {
                StatusCategory::New => "To Do",
                StatusCategory::Indeterminate => "In Progress",
                StatusCategory::Done => "Done",
            }
            .into();
        }
        i.updated_at = now;
        Ok(())
    }

    async fn upsert_remote_link(&self, item: &DevItemRef, link: &RemoteLink) -> Result<(), ApiError> {
        self.calls.hit("upsert_remote_link");
        lock(&self.state).links.entry(item.index_key()).or_default().insert(link.global_id.clone(), link.clone());
        Ok(())
    }

    async fn add_comment(&self, item: &DevItemRef, html: &str) -> Result<JiraCommentId, ApiError> {
        self.calls.hit("add_comment");
        let mut s = lock(&self.state);
        let list = s.comments.entry(item.index_key()).or_default();
        let id = JiraCommentId(format!("{}", 100 + list.len()));
        list.push(TrackerComment { id: id.clone(), author_name: "campbridge".into(), html: html.into() });
        Ok(id)
    }

    async fn update_comment(&self, item: &DevItemRef, comment: &JiraCommentId, html: &str) -> Result<(), ApiError> {
        self.calls.hit("update_comment");
        let mut s = lock(&self.state);
        let c = s
            .comments
            .get_mut(&item.index_key())
            .and_then(|l| l.iter_mut().find(|c| &c.id == comment))
            .ok_or_else(|| ApiError::Invalid("no such comment".into()))?;
        c.html = html.into();
        Ok(())
    }

    async fn list_comments(&self, item: &DevItemRef) -> Result<Vec<TrackerComment>, ApiError> {
        self.calls.hit("list_comments");
        Ok(self.comments(item))
    }
}
