//! Basecamp control API (`/_control/…`): act as a person, inspect records, manage tokens. The
//! Rust methods on [`super::Simulator`] call the same functions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{TodoWrite, Token};
use super::{Inner, TodoEdit, VICTOR, render};
use crate::common::control::Controllable;
use crate::common::{CallCounter, Dispatcher, SharedFaults, SimError};

impl Controllable for Inner {
    fn counter(&self) -> &CallCounter {
        &self.calls
    }
    fn fault_switch(&self) -> &SharedFaults {
        &self.faults
    }
    fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

type Sim = State<Arc<Inner>>;

fn answer(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(SimError::NotFound(what)) => (StatusCode::NOT_FOUND, Json(json!({"error": what}))).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({"error": error.to_string()}))).into_response(),
    }
}

/// The control routes.
pub fn router(sim: Arc<Inner>) -> Router {
    let own = Router::new()
        .route("/_control/info", get(info))
        .route("/_control/state", get(dump))
        .route("/_control/records/{kind}/{id}", get(get_record))
        .route("/_control/projects", post(post_project))
        .route("/_control/todolists", post(post_todolist))
        .route("/_control/todos", post(post_todo))
        .route("/_control/todos/{id}", axum::routing::patch(patch_todo))
        .route("/_control/todos/{id}/complete", post(post_complete))
        .route("/_control/todos/{id}/uncomplete", post(post_uncomplete))
        .route("/_control/todos/{id}/assign", post(post_assign))
        .route("/_control/recordings/{id}/comments", post(post_comment))
        .route("/_control/recordings/{id}/status", post(post_status))
        .route("/_control/recordings/{id}/delete", post(post_delete))
        .route("/_control/todos/{id}/move", post(post_move))
        .route("/_control/todos/{id}/copy", post(post_copy))
        .route("/_control/clock/advance", post(post_advance))
        .route("/_control/tokens", post(post_token))
        .route("/_control/tokens/{token}/expire", post(expire_token))
        .with_state(sim.clone());
    own.merge(crate::common::control::router(sim))
}

/// Renders any record by kind.
pub async fn record(sim: &Inner, kind: &str, id: i64) -> Option<Value> {
    let state = sim.state.lock().await;
    let ctx = &sim.ctx;
    match kind {
        "projects" => state.projects.get(&id).map(|p| render::project(ctx, &state, p)),
        "todosets" => state.project_of_todoset(id).map(|p| render::todoset(ctx, &state, p)),
        "todolists" => state.todolists.get(&id).map(|l| render::todolist(ctx, &state, l)),
        "todos" => state.todos.get(&id).map(|t| render::todo(ctx, &state, t, false)),
        "comments" => state.comments.get(&id).map(|c| render::comment(ctx, &state, c)),
        "webhooks" => state.webhooks.get(&id).map(|h| render::webhook(ctx, h, true)),
        "people" => state.people.get(&id).cloned(),
        _ => None,
    }
}

/// Creates a to-do list as `actor`.
pub async fn create_todolist(sim: &Inner, project_id: i64, name: &str, actor: i64) -> Result<i64, SimError> {
    let mut state = sim.state.lock().await;
    let (id, events) = state.create_todolist(project_id, name, "", actor)?;
    sim.emit(&mut state, events);
    Ok(id)
}

/// Creates a to-do as `actor`.
pub async fn create_todo(sim: &Inner, list_id: i64, write: TodoWrite, actor: i64) -> Result<i64, SimError> {
    let mut state = sim.state.lock().await;
    let (id, events) = state.create_todo(list_id, write, actor)?;
    sim.emit(&mut state, events);
    Ok(id)
}

/// Read → merge → replace, as the web UI effectively does for a person's edit.
pub async fn edit_todo(sim: &Inner, id: i64, edit: TodoEdit, actor: i64) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let todo = state.todos.get(&id).ok_or_else(|| SimError::NotFound(format!("todo {id}")))?;
    let due_on = if edit.clear_due_on { None } else { edit.due_on.or_else(|| todo.due_on.clone()) };
    let write = TodoWrite {
        content: Some(edit.content.unwrap_or_else(|| todo.content.clone())),
        description: Some(edit.description.unwrap_or_else(|| todo.description.clone())),
        assignee_ids: Some(edit.assignee_ids.unwrap_or_else(|| todo.assignee_ids.clone())),
        completion_subscriber_ids: Some(todo.completion_subscriber_ids.clone()),
        due_on,
        starts_on: todo.starts_on.clone(),
        notify: None,
    };
    let events = state.replace_todo(id, write, actor)?;
    sim.emit(&mut state, events);
    Ok(())
}

/// Completes or uncompletes a to-do as `actor`.
pub async fn set_completed(sim: &Inner, id: i64, done: bool, actor: i64) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let events = if done { state.complete_todo(id, actor)? } else { state.uncomplete_todo(id, actor)? };
    sim.emit(&mut state, events);
    Ok(())
}

/// Sets a recording's status as `actor` (fires `X_trashed`, `X_archived`, `X_untrashed`, `X_unarchived`).
pub async fn set_status(sim: &Inner, id: i64, status: &str, actor: i64) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let events = state.set_status(id, status, actor)?;
    sim.emit(&mut state, events);
    Ok(())
}

/// Copies a to-do as `actor`.
pub async fn copy_todo(sim: &Inner, id: i64, list_id: i64, actor: i64) -> Result<i64, SimError> {
    let mut state = sim.state.lock().await;
    let (copy, events) = state.copy_todo(id, list_id, actor)?;
    sim.emit(&mut state, events);
    Ok(copy)
}

/// Deletes a trashed recording for good as `actor`.
pub async fn delete_recording(sim: &Inner, id: i64, actor: i64) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let (rendered, _) =
        render::recording(&sim.ctx, &state, id).ok_or_else(|| SimError::NotFound(format!("recording {id}")))?;
    let events = state.delete_recording(id, actor, rendered)?;
    sim.emit(&mut state, events);
    Ok(())
}

/// Comments as `actor`.
pub async fn comment(sim: &Inner, recording_id: i64, content: &str, actor: i64) -> Result<i64, SimError> {
    let mut state = sim.state.lock().await;
    let (id, events) = state.create_comment(recording_id, content, actor)?;
    sim.emit(&mut state, events);
    Ok(id)
}

async fn info(State(sim): Sim) -> Json<Value> {
    let state = sim.state.lock().await;
    let lists: serde_json::Map<String, Value> =
        state.todolists.values().map(|l| (l.name.clone(), Value::from(l.id))).collect();
    Json(json!({
        "base_url": sim.ctx.base_url(),
        "launchpad_url": sim.ctx.origin,
        "control_url": format!("{}/_control", sim.ctx.origin),
        "account_id": sim.opts.account_id,
        "project_id": super::PROJECT_ID,
        "todoset_id": super::TODOSET_ID,
        "todolists": lists,
        "access_tokens": sim.opts.access_tokens,
        "refresh_token": sim.opts.refresh_token,
        "client_id": sim.opts.client_id,
        "client_secret": sim.opts.client_secret,
        "people": state.people.values().map(|p| json!({"id": p["id"], "name": p["name"]})).collect::<Vec<_>>(),
    }))
}

async fn dump(State(sim): Sim) -> Json<Value> {
    let state = sim.state.lock().await;
    Json(json!({
        "projects": state.projects,
        "todolists": state.todolists,
        "todos": state.todos,
        "comments": state.comments,
        "webhooks": state.webhooks,
    }))
}

async fn get_record(State(sim): Sim, Path((kind, id)): Path<(String, i64)>) -> Response {
    match record(&sim, &kind, id).await {
        Some(value) => Json(value).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such record"}))).into_response(),
    }
}

#[derive(Deserialize)]
struct ProjectInput {
    name: String,
    #[serde(default)]
    description: String,
}

async fn post_project(State(sim): Sim, Json(input): Json<ProjectInput>) -> Response {
    let id = sim.state.lock().await.create_project(&input.name, &input.description, None, None);
    answer(Ok(json!({"id": id})))
}

#[derive(Deserialize)]
struct ListInput {
    #[serde(default)]
    project_id: Option<i64>,
    name: String,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_todolist(State(sim): Sim, Json(input): Json<ListInput>) -> Response {
    let project = input.project_id.unwrap_or(super::PROJECT_ID);
    let result = create_todolist(&sim, project, &input.name, input.as_person.unwrap_or(VICTOR)).await;
    answer(result.map(|id| json!({"id": id})))
}

#[derive(Deserialize)]
struct TodoInput {
    todolist_id: i64,
    #[serde(flatten)]
    write: TodoWrite,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_todo(State(sim): Sim, Json(input): Json<TodoInput>) -> Response {
    let result = create_todo(&sim, input.todolist_id, input.write, input.as_person.unwrap_or(VICTOR)).await;
    answer(result.map(|id| json!({"id": id})))
}

#[derive(Deserialize)]
struct EditInput {
    #[serde(flatten)]
    edit: TodoEdit,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn patch_todo(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<EditInput>) -> Response {
    answer(edit_todo(&sim, id, input.edit, input.as_person.unwrap_or(VICTOR)).await.map(|()| json!({"id": id})))
}

#[derive(Deserialize, Default)]
struct ActorInput {
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_complete(State(sim): Sim, Path(id): Path<i64>, input: Option<Json<ActorInput>>) -> Response {
    let actor = input.and_then(|Json(i)| i.as_person).unwrap_or(VICTOR);
    answer(set_completed(&sim, id, true, actor).await.map(|()| json!({"id": id})))
}

async fn post_uncomplete(State(sim): Sim, Path(id): Path<i64>, input: Option<Json<ActorInput>>) -> Response {
    let actor = input.and_then(|Json(i)| i.as_person).unwrap_or(VICTOR);
    answer(set_completed(&sim, id, false, actor).await.map(|()| json!({"id": id})))
}

#[derive(Deserialize)]
struct AssignInput {
    assignee_ids: Vec<i64>,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_assign(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<AssignInput>) -> Response {
    let edit = TodoEdit { assignee_ids: Some(input.assignee_ids), ..TodoEdit::default() };
    answer(edit_todo(&sim, id, edit, input.as_person.unwrap_or(VICTOR)).await.map(|()| json!({"id": id})))
}

#[derive(Deserialize)]
struct CommentInput {
    content: String,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_comment(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<CommentInput>) -> Response {
    let result = comment(&sim, id, &input.content, input.as_person.unwrap_or(VICTOR)).await;
    answer(result.map(|id| json!({"id": id})))
}

#[derive(Deserialize)]
struct StatusInput {
    status: String,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_status(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<StatusInput>) -> Response {
    let result = set_status(&sim, id, &input.status, input.as_person.unwrap_or(VICTOR)).await;
    answer(result.map(|()| json!({"id": id, "status": input.status})))
}

async fn post_delete(State(sim): Sim, Path(id): Path<i64>, input: Option<Json<ActorInput>>) -> Response {
    let actor = input.and_then(|Json(i)| i.as_person).unwrap_or(VICTOR);
    answer(delete_recording(&sim, id, actor).await.map(|()| json!({"id": id})))
}

#[derive(Deserialize)]
struct MoveInput {
    #[serde(default)]
    todolist_id: Option<i64>,
    #[serde(default = "first_position")]
    position: i64,
}

fn first_position() -> i64 {
    1
}

async fn post_move(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<MoveInput>) -> Response {
    let result = sim.state.lock().await.reposition_todo(id, input.position, input.todolist_id);
    answer(result.map(|()| json!({"id": id})))
}

#[derive(Deserialize)]
struct CopyInput {
    todolist_id: i64,
    #[serde(default)]
    as_person: Option<i64>,
}

async fn post_copy(State(sim): Sim, Path(id): Path<i64>, Json(input): Json<CopyInput>) -> Response {
    let result = copy_todo(&sim, id, input.todolist_id, input.as_person.unwrap_or(VICTOR)).await;
    answer(result.map(|copy| json!({"id": copy})))
}

#[derive(Deserialize)]
struct AdvanceInput {
    seconds: u64,
}

/// Moves the delivery-retry clock (the same as [`super::Simulator::advance_clock`], without waiting for
/// the deliveries it sends).
async fn post_advance(State(sim): Sim, Json(input): Json<AdvanceInput>) -> Response {
    let target = sim.clock.now() + std::time::Duration::from_secs(input.seconds);
    sim.clock.advance_to(target);
    super::webhooks::send_due(&sim);
    answer(Ok(json!({"retries_waiting": sim.retries.waiting()})))
}

#[derive(Deserialize)]
struct TokenInput {
    token: String,
    person_id: i64,
}

async fn post_token(State(sim): Sim, Json(input): Json<TokenInput>) -> Response {
    let mut state = sim.state.lock().await;
    if !state.people.contains_key(&input.person_id) {
        return answer(Err(SimError::NotFound(format!("person {}", input.person_id))));
    }
    state.tokens.insert(input.token, Token { person_id: input.person_id, expired: false });
    StatusCode::NO_CONTENT.into_response()
}

async fn expire_token(State(sim): Sim, Path(token): Path<String>) -> Response {
    match sim.state.lock().await.tokens.get_mut(&token) {
        Some(found) => {
            found.expired = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => answer(Err(SimError::NotFound("token".to_owned()))),
    }
}
