//! Basecamp JSON, built from the documented examples in `tests/fixtures/basecamp/` as templates
//! with ids, URLs and values replaced by the simulator's state.

use serde_json::{Map, Value, json};

use super::state::{Comment, Project, State, Todo, Todolist, Webhook};
use crate::common::json::{first, fixture, obj, only_keys_of};

pub const PROJECT_GET: &str = include_str!("../../../fixtures/basecamp/project-get.json");
pub const TODOSET_GET: &str = include_str!("../../../fixtures/basecamp/todoset-get.json");
pub const TODOLIST_GET: &str = include_str!("../../../fixtures/basecamp/todolist-get.json");
pub const TODO_GET: &str = include_str!("../../../fixtures/basecamp/todo-get.json");
pub const COMMENT_GET: &str = include_str!("../../../fixtures/basecamp/comment-get.json");
pub const PEOPLE_LIST: &str = include_str!("../../../fixtures/basecamp/people-list.json");
pub const OAUTH_TOKEN: &str = include_str!("../../../fixtures/basecamp/oauth-token-response.json");
pub const OAUTH_AUTHORIZATION: &str = include_str!("../../../fixtures/basecamp/oauth-authorization.json");
pub const WEBHOOK_EVENT: &str = include_str!("../../../fixtures/basecamp/webhook-event-todo-completed.json");
pub const WEBHOOK_LIST: &str = include_str!("../../../fixtures/basecamp/webhook-list.json");

/// Where URLs in payloads point.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    /// The account id in every API path.
    pub account_id: i64,
    /// Web-app origin used for `app_url` values.
    pub app_origin: String,
}

impl Ctx {
    /// API URL for `path` (which starts with `/`).
    pub fn api(&self, path: &str) -> String {
        format!("{}/{}{}", self.origin, self.account_id, path)
    }

    /// Web-app URL for `path`.
    pub fn app(&self, path: &str) -> String {
        format!("{}/{}{}", self.app_origin, self.account_id, path)
    }

    /// The API base URL clients use (`https://3.basecampapi.com/{account}` equivalent).
    pub fn base_url(&self) -> String {
        format!("{}/{}", self.origin, self.account_id)
    }
}

fn set(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_owned(), value.into());
}

/// A person by id (`null` for unknown people).
pub fn person(state: &State, id: i64) -> Value {
    state.people.get(&id).cloned().unwrap_or(Value::Null)
}

/// Victor Cooper exactly as the people-list example shows him.
pub fn person_from_fixture() -> Value {
    first(fixture(PEOPLE_LIST))
}

/// A person record derived from the people-list example.
pub fn new_person(ctx: &Ctx, id: i64, name: &str, email: &str, title: &str, admin: bool) -> Value {
    let mut map = obj(first(fixture(PEOPLE_LIST)));
    set(&mut map, "id", id);
    set(&mut map, "name", name);
    set(&mut map, "email_address", email);
    set(&mut map, "title", title);
    set(&mut map, "admin", admin);
    set(&mut map, "owner", admin);
    set(&mut map, "attachable_sgid", format!("sim-sgid-person-{id}"));
    set(&mut map, "avatar_url", ctx.api(&format!("/people/{id}/avatar")));
    Value::Object(map)
}

fn bucket(project: Option<&Project>, id: i64) -> Value {
    json!({"id": id, "name": project.map(|p| p.name.clone()).unwrap_or_default(), "type": "Project"})
}

fn recording_urls(ctx: &Ctx, map: &mut Map<String, Value>, project_id: i64, id: i64, kind_path: &str) {
    set(map, "url", ctx.api(&format!("/buckets/{project_id}/{kind_path}/{id}.json")));
    set(map, "app_url", ctx.app(&format!("/buckets/{project_id}/{kind_path}/{id}")));
    set(map, "bookmark_url", ctx.api(&format!("/my/bookmarks/sim-{id}.json")));
    set(map, "subscription_url", ctx.api(&format!("/buckets/{project_id}/recordings/{id}/subscription.json")));
    if map.contains_key("comments_url") {
        set(map, "comments_url", ctx.api(&format!("/buckets/{project_id}/recordings/{id}/comments.json")));
    }
    if map.contains_key("boosts_url") {
        set(map, "boosts_url", ctx.api(&format!("/buckets/{project_id}/recordings/{id}/boosts.json")));
    }
}

fn parent_ref(id: i64, title: &str, kind: &str, url: String, app_url: String) -> Value {
    json!({"id": id, "title": title, "type": kind, "url": url, "app_url": app_url})
}

/// `GET /projects/{id}.json`.
pub fn project(ctx: &Ctx, state: &State, project: &Project) -> Value {
    let mut map = obj(fixture(PROJECT_GET));
    let id = project.id;
    set(&mut map, "id", id);
    set(&mut map, "name", project.name.clone());
    set(&mut map, "description", project.description.clone());
    set(&mut map, "created_at", project.created_at.clone());
    set(&mut map, "updated_at", project.updated_at.clone());
    set(&mut map, "url", ctx.api(&format!("/projects/{id}.json")));
    set(&mut map, "app_url", ctx.app(&format!("/projects/{id}")));
    set(&mut map, "bookmark_url", ctx.api(&format!("/my/bookmarks/sim-{id}.json")));
    set(&mut map, "star_url", ctx.api(&format!("/buckets/{id}/stars.json")));
    if let Some(Value::Array(dock)) = map.get_mut("dock") {
        for tool in dock.iter_mut() {
            let Value::Object(tool) = tool else { continue };
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let tool_id = if name == "todoset" {
                project.todoset_id
            } else {
                tool.get("id").and_then(Value::as_i64).unwrap_or_default() + (id - 2_085_958_505)
            };
            let path = match name.as_str() {
                "message_board" => "message_boards",
                "todoset" => "todosets",
                "vault" => "vaults",
                "schedule" => "schedules",
                "chat" => "chats",
                "kanban_board" => "card_tables",
                "questionnaire" => "questionnaires",
                "inbox" => "inboxes",
                _ => "tools",
            };
            set(tool, "id", tool_id);
            set(tool, "url", ctx.api(&format!("/buckets/{id}/{path}/{tool_id}.json")));
            set(tool, "app_url", ctx.app(&format!("/buckets/{id}/{path}/{tool_id}")));
        }
    }
    let sample: Vec<Value> = project
        .people
        .iter()
        .filter_map(|pid| state.people.get(pid))
        .map(|p| json!({"id": p["id"], "name": p["name"], "avatar_url": p["avatar_url"]}))
        .collect();
    set(&mut map, "people", json!({"team": {"count": sample.len(), "sample": sample}}));
    Value::Object(map)
}

/// A `GET /projects.json` item: the project plus the list-only `bookmarked` flag.
pub fn project_list_item(ctx: &Ctx, state: &State, item: &Project) -> Value {
    let mut value = project(ctx, state, item);
    if let Value::Object(map) = &mut value {
        map.insert("bookmarked".into(), Value::Bool(false));
    }
    value
}

fn list_ratio(state: &State, list_id: i64) -> (usize, usize) {
    let todos: Vec<&Todo> = state.todos.values().filter(|t| t.list_id == list_id && t.status == "active").collect();
    (todos.iter().filter(|t| t.completed).count(), todos.len())
}

/// `GET /todosets/{id}.json`.
pub fn todoset(ctx: &Ctx, state: &State, project: &Project) -> Value {
    let mut map = obj(fixture(TODOSET_GET));
    let (pid, id) = (project.id, project.todoset_id);
    set(&mut map, "id", id);
    set(&mut map, "created_at", project.created_at.clone());
    set(&mut map, "updated_at", project.updated_at.clone());
    recording_urls(ctx, &mut map, pid, id, "todosets");
    set(&mut map, "bucket", bucket(Some(project), pid));
    set(&mut map, "creator", person(state, *project.people.first().unwrap_or(&0)));
    let lists: Vec<&Todolist> = state.todolists.values().filter(|l| l.project_id == pid).collect();
    let mut done = 0;
    let mut total = 0;
    let summaries: Vec<Value> = lists
        .iter()
        .map(|list| {
            let (d, t) = list_ratio(state, list.id);
            done += d;
            total += t;
            json!({
                "id": list.id, "title": list.name,
                "description": if list.description.is_empty() { Value::Null } else { Value::from(list.description.clone()) },
                "completed": t > 0 && d == t, "completed_ratio": format!("{d}/{t}"),
                "url": ctx.api(&format!("/buckets/{pid}/todolists/{}.json", list.id)),
                "app_url": ctx.app(&format!("/buckets/{pid}/todolists/{}", list.id)),
            })
        })
        .collect();
    set(&mut map, "completed", total > 0 && done == total);
    set(&mut map, "completed_ratio", format!("{done}/{total}"));
    set(&mut map, "todos_count", 0);
    set(&mut map, "todolists_count", lists.len());
    set(&mut map, "completed_loose_todos_count", 0);
    set(&mut map, "todolists", summaries);
    set(&mut map, "todos_url", ctx.api(&format!("/buckets/{pid}/todosets/{id}/todos.json")));
    set(&mut map, "app_todos_url", ctx.app(&format!("/buckets/{pid}/todosets/{id}/todos")));
    set(&mut map, "hill_chart_url", ctx.api(&format!("/buckets/{pid}/todosets/{id}/hill.json")));
    set(&mut map, "todolists_url", ctx.api(&format!("/buckets/{pid}/todosets/{id}/todolists.json")));
    set(&mut map, "app_todoslists_url", ctx.app(&format!("/buckets/{pid}/todosets/{id}/todolists")));
    Value::Object(map)
}

/// `GET /todolists/{id}.json` (with `position`, as lists carry it).
pub fn todolist(ctx: &Ctx, state: &State, list: &Todolist) -> Value {
    let mut map = obj(fixture(TODOLIST_GET));
    let (pid, id) = (list.project_id, list.id);
    let project = state.projects.get(&pid);
    set(&mut map, "id", id);
    set(&mut map, "created_at", list.created_at.clone());
    set(&mut map, "updated_at", list.updated_at.clone());
    set(&mut map, "status", list.status.clone());
    set(&mut map, "title", list.name.clone());
    set(&mut map, "name", list.name.clone());
    set(&mut map, "description", list.description.clone());
    set(&mut map, "position", list.position);
    recording_urls(ctx, &mut map, pid, id, "todolists");
    set(&mut map, "comments_count", state.comments_on(id).len());
    let todoset_id = project.map(|p| p.todoset_id).unwrap_or_default();
    let parent = parent_ref(
        todoset_id,
        "To-dos",
        "Todoset",
        ctx.api(&format!("/buckets/{pid}/todosets/{todoset_id}.json")),
        ctx.app(&format!("/buckets/{pid}/todosets/{todoset_id}")),
    );
    set(&mut map, "parent", parent);
    set(&mut map, "bucket", bucket(project, pid));
    set(&mut map, "creator", person(state, list.creator_id));
    let (done, total) = list_ratio(state, id);
    set(&mut map, "completed", total > 0 && done == total);
    set(&mut map, "completed_ratio", format!("{done}/{total}"));
    set(&mut map, "groups_url", ctx.api(&format!("/buckets/{pid}/todolists/{id}/groups.json")));
    set(&mut map, "todos_url", ctx.api(&format!("/buckets/{pid}/todolists/{id}/todos.json")));
    set(&mut map, "app_todos_url", ctx.app(&format!("/buckets/{pid}/todolists/{id}/todos")));
    set(&mut map, "comments_app_url", ctx.app(&format!("/buckets/{pid}/recordings/{id}/comments")));
    Value::Object(map)
}

/// `GET /todos/{id}.json`. `position` is added for list endpoints.
pub fn todo(ctx: &Ctx, state: &State, todo: &Todo, with_position: bool) -> Value {
    let mut map = obj(fixture(TODO_GET));
    let (pid, id) = (todo.project_id, todo.id);
    let project = state.projects.get(&pid);
    set(&mut map, "id", id);
    set(&mut map, "status", state.todo_status(todo));
    set(&mut map, "created_at", todo.created_at.clone());
    set(&mut map, "updated_at", todo.updated_at.clone());
    set(&mut map, "title", todo.content.clone());
    recording_urls(ctx, &mut map, pid, id, "todos");
    set(&mut map, "comments_count", state.comments_on(id).len());
    if let Some(list) = state.todolists.get(&todo.list_id) {
        let parent = parent_ref(
            list.id,
            &list.name,
            "Todolist",
            ctx.api(&format!("/buckets/{pid}/todolists/{}.json", list.id)),
            ctx.app(&format!("/buckets/{pid}/todolists/{}", list.id)),
        );
        set(&mut map, "parent", parent);
    }
    set(&mut map, "bucket", bucket(project, pid));
    set(&mut map, "creator", person(state, todo.creator_id));
    set(&mut map, "description", todo.description.clone());
    set(&mut map, "completed", todo.completed);
    match &todo.completion {
        Some((at, by)) => set(&mut map, "completion", json!({"created_at": at, "creator": person(state, *by)})),
        None => {
            map.remove("completion");
        }
    }
    set(&mut map, "content", todo.content.clone());
    set(&mut map, "starts_on", todo.starts_on.clone());
    set(&mut map, "due_on", todo.due_on.clone());
    let people = |ids: &[i64]| Value::Array(ids.iter().map(|p| person(state, *p)).collect());
    set(&mut map, "assignees", people(&todo.assignee_ids));
    set(&mut map, "completion_subscribers", people(&todo.completion_subscriber_ids));
    set(&mut map, "completion_url", ctx.api(&format!("/todos/{id}/completion.json")));
    if with_position {
        set(&mut map, "position", todo.position);
    }
    Value::Object(map)
}

/// The URL and title of a comment's parent.
fn comment_parent(ctx: &Ctx, state: &State, comment: &Comment) -> (Value, String) {
    let pid = comment.project_id;
    let pid_ref = comment.parent_id;
    let (title, kind, path) = if let Some(todo) = state.todos.get(&pid_ref) {
        (todo.content.clone(), "Todo", "todos")
    } else if let Some(list) = state.todolists.get(&pid_ref) {
        (list.name.clone(), "Todolist", "todolists")
    } else {
        (String::new(), "Recording", "recordings")
    };
    let app_url = ctx.app(&format!("/buckets/{pid}/{path}/{pid_ref}"));
    let parent =
        parent_ref(pid_ref, &title, kind, ctx.api(&format!("/buckets/{pid}/{path}/{pid_ref}.json")), app_url.clone());
    (parent, app_url)
}

/// `GET /comments/{id}.json`.
pub fn comment(ctx: &Ctx, state: &State, comment: &Comment) -> Value {
    let mut map = obj(fixture(COMMENT_GET));
    let (pid, id) = (comment.project_id, comment.id);
    let (parent, parent_app_url) = comment_parent(ctx, state, comment);
    set(&mut map, "id", id);
    set(&mut map, "status", state.comment_status(comment));
    set(&mut map, "created_at", comment.created_at.clone());
    set(&mut map, "updated_at", comment.updated_at.clone());
    set(&mut map, "title", format!("Re: {}", parent["title"].as_str().unwrap_or_default()));
    set(&mut map, "url", ctx.api(&format!("/buckets/{pid}/comments/{id}.json")));
    set(&mut map, "app_url", format!("{parent_app_url}#__recording_{id}"));
    set(&mut map, "bookmark_url", ctx.api(&format!("/my/bookmarks/sim-{id}.json")));
    set(&mut map, "boosts_url", ctx.api(&format!("/buckets/{pid}/recordings/{id}/boosts.json")));
    set(&mut map, "parent", parent);
    set(&mut map, "bucket", bucket(state.projects.get(&pid), pid));
    set(&mut map, "creator", person(state, comment.creator_id));
    set(&mut map, "content", comment.content.clone());
    Value::Object(map)
}

/// A webhook; `recent_deliveries` only on the single GET.
pub fn webhook(ctx: &Ctx, hook: &Webhook, with_deliveries: bool) -> Value {
    let mut map = obj(first(fixture(WEBHOOK_LIST)));
    let (pid, id) = (hook.project_id, hook.id);
    set(&mut map, "id", id);
    set(&mut map, "active", hook.active);
    set(&mut map, "created_at", hook.created_at.clone());
    set(&mut map, "updated_at", hook.updated_at.clone());
    set(&mut map, "payload_url", hook.payload_url.clone());
    set(&mut map, "types", hook.types.clone());
    set(&mut map, "url", ctx.api(&format!("/buckets/{pid}/webhooks/{id}.json")));
    set(&mut map, "app_url", ctx.app(&format!("/buckets/{pid}/webhooks/{id}")));
    if with_deliveries {
        set(&mut map, "recent_deliveries", hook.recent_deliveries.clone());
    }
    Value::Object(map)
}

/// Any recording as JSON, with its type.
pub fn recording(ctx: &Ctx, state: &State, id: i64) -> Option<(Value, &'static str)> {
    if let Some(t) = state.todos.get(&id) {
        return Some((todo(ctx, state, t, false), "Todo"));
    }
    if let Some(l) = state.todolists.get(&id) {
        return Some((todolist(ctx, state, l), "Todolist"));
    }
    state.comments.get(&id).map(|c| (comment(ctx, state, c), "Comment"))
}

/// The thin recording a webhook carries: the generic recording keys of the documented payload,
/// plus `content` (a to-do's title, a comment's HTML, a list's name).
pub fn thin_recording(full: &Value) -> Value {
    let template = fixture(WEBHOOK_EVENT);
    let Value::Object(full_map) = full else { return Value::Null };
    let mut thin = only_keys_of(full_map, &template["recording"]);
    let content = full_map.get("content").or_else(|| full_map.get("name")).cloned().unwrap_or(Value::Null);
    thin.insert("content".to_owned(), content);
    Value::Object(thin)
}
