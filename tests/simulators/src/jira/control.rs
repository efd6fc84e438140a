//! Jira control API (`/_control/…`): act as a user, register admin webhooks, switch behaviour,
//! inspect issues. The Rust methods on [`super::Simulator`] call the same functions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::state::{AdminHook, Config, JiraError, STATUSES};
use super::{Inner, MIA, adf, render};
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

fn sim_error(error: JiraError) -> SimError {
    if error.0 == StatusCode::NOT_FOUND {
        SimError::NotFound(error.1.to_string())
    } else {
        SimError::Invalid(error.1.to_string())
    }
}

fn answer(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(SimError::NotFound(what)) => (StatusCode::NOT_FOUND, Json(json!({"error": what}))).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({"error": error.to_string()}))).into_response(),
    }
}

/// The control routes.
pub fn router(sim: Arc<Inner>) -> Router {
    Router::new()
        .route("/_control/info", get(info))
        .route("/_control/config", get(get_config).put(put_config))
        .route("/_control/webhooks", get(list_hooks).post(post_hook))
        .route("/_control/webhooks/{id}", axum::routing::delete(delete_hook))
        .route("/_control/index/refresh", post(refresh_index))
        .route("/_control/issues", post(post_issue))
        .route("/_control/issues/{key}", get(get_issue).patch(patch_issue).delete(delete_issue))
        .route("/_control/issues/{key}/move", post(post_move))
        .route("/_control/issues/{key}/transition", post(post_transition))
        .route("/_control/issues/{key}/assign", post(post_assign))
        .route("/_control/issues/{key}/comments", post(post_comment))
        .route("/_control/issues/{key}/flag", post(post_flag))
        .with_state(sim.clone())
        .merge(crate::common::control::router(sim))
}

/// Registers an admin webhook.
pub async fn register(sim: &Inner, mut hook: AdminHook) -> u64 {
    let mut state = sim.state.lock().await;
    hook.id = state.fresh_id();
    let id = hook.id;
    state.hooks.insert(id, hook);
    id
}

/// Renders an issue (v3).
pub async fn issue(sim: &Inner, key: &str) -> Option<Value> {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&state.find(key)?)?;
    Some(render::issue_v3(&sim.origin, &state, issue, None))
}

/// Creates an issue from a REST body; returns the key.
pub async fn create(sim: &Inner, body: &Value, actor: &str) -> Result<String, SimError> {
    let mut state = sim.state.lock().await;
    let (id, events) = state.create_issue(body, actor).map_err(sim_error)?;
    sim.emit(&mut state, events);
    Ok(state.issues.get(&id).map(|i| i.key.clone()).unwrap_or_default())
}

/// Edits an issue from a REST body.
pub async fn edit(sim: &Inner, key: &str, body: &Value, actor: &str) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let id = state.find(key).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    let events = state.edit_issue(id, body, actor).map_err(sim_error)?;
    sim.emit(&mut state, events);
    Ok(())
}

/// Moves an issue along the workflow edge leading to status (or category) `to`.
pub async fn transition_to(
    sim: &Inner,
    key: &str,
    to: &str,
    resolution: Option<&str>,
    actor: &str,
) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let id = state.find(key).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    let target = STATUSES
        .iter()
        .position(|(_, name, category, _, _)| name.eq_ignore_ascii_case(to) || category.eq_ignore_ascii_case(to))
        .ok_or_else(|| SimError::Invalid(format!("unknown status '{to}'")))?;
    let edge = state
        .available(id)
        .into_iter()
        .find(|e| e.to == target)
        .ok_or_else(|| SimError::Invalid(format!("no transition to '{to}' from the current status")))?;
    let mut body = json!({"transition": {"id": edge.id}});
    if state.config.require_resolution && target == super::state::DONE {
        body["fields"] = json!({"resolution": {"name": resolution.unwrap_or("Done")}});
    }
    let events = state.transition(id, &body, actor).map_err(sim_error)?;
    sim.emit(&mut state, events);
    Ok(())
}

/// Adds an ADF comment.
pub async fn comment(sim: &Inner, key: &str, body: &Value, actor: &str) -> Result<u64, SimError> {
    let mut state = sim.state.lock().await;
    let id = state.find(key).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    let (comment_id, events) = state.add_comment(id, body, actor).map_err(sim_error)?;
    sim.emit(&mut state, events);
    Ok(comment_id)
}

/// Deletes an issue, firing `jira:issue_deleted` first.
pub async fn delete(sim: &Inner, key: &str, actor: &str) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let id = state.find(key).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    let event = super::state::Event {
        webhook_event: "jira:issue_deleted",
        type_name: Some("issue_deleted"),
        issue_id: id,
        actor: actor.to_owned(),
        changelog: Vec::new(),
        comment_id: None,
    };
    sim.emit(&mut state, vec![event]);
    state.delete_issue(id);
    Ok(())
}

/// Moves an issue to another project (created if the simulator has none by that key), as Jira's "Move"
/// does: the id stays, the key becomes the next one of the new project, and `jira:issue_updated` carries
/// changelog items `Key` (old → new) and `project`. Returns the new key. Old keys are not kept as aliases.
pub async fn move_issue(sim: &Inner, key: &str, project: &str, actor: &str) -> Result<String, SimError> {
    let mut state = sim.state.lock().await;
    let id = state.find(key).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    let next_project_id = format!("{}", 10_000 + state.projects.len());
    let target = state.projects.entry(project.to_owned()).or_insert_with(|| super::state::Project {
        id: next_project_id,
        key: project.to_owned(),
        name: project.to_owned(),
        components: Vec::new(),
        next_number: 0,
    });
    target.next_number += 1;
    let (to_id, new_key) = (target.id.clone(), format!("{project}-{}", target.next_number));
    let now = state.tick();
    let issue = state.issues.get_mut(&id).ok_or_else(|| SimError::NotFound(key.to_owned()))?;
    if issue.project_key == project {
        return Err(SimError::Invalid(format!("{key} is already in {project}")));
    }
    let (old_key, old_project) = (issue.key.clone(), issue.project_key.clone());
    issue.key = new_key.clone();
    issue.project_key = project.to_owned();
    issue.updated = now;
    let from_project = state.projects.get(&old_project).map(|p| p.id.clone()).unwrap_or_default();
    let changelog = vec![
        json!({"field": "Key", "fieldtype": "jira", "from": null, "fromString": old_key, "to": null, "toString": new_key}),
        json!({"field": "project", "fieldtype": "jira", "fieldId": "project", "from": from_project,
               "fromString": old_project, "to": to_id, "toString": project}),
    ];
    let event = super::state::Event {
        webhook_event: "jira:issue_updated",
        type_name: Some("issue_moved"),
        issue_id: id,
        actor: actor.to_owned(),
        changelog,
        comment_id: None,
    };
    sim.emit(&mut state, vec![event]);
    Ok(new_key)
}

/// Turns the control API's friendly fields into a REST `fields` object.
fn rest_fields(input: &Map<String, Value>) -> Map<String, Value> {
    let mut fields = Map::new();
    for (key, value) in input {
        let converted = match key.as_str() {
            "as_user" | "project" | "issuetype" => continue,
            "description" => match value {
                Value::String(text) => adf::from_text(text),
                other => other.clone(),
            },
            "priority" => match value {
                Value::String(name) => json!({"name": name}),
                other => other.clone(),
            },
            "assignee" => match value {
                Value::String(account) => json!({"accountId": account}),
                other => other.clone(),
            },
            "components" => match value {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|c| if let Value::String(n) = c { json!({"name": n}) } else { c.clone() })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        fields.insert(key.clone(), converted);
    }
    fields
}

fn actor_of(input: &Map<String, Value>) -> String {
    input.get("as_user").and_then(Value::as_str).unwrap_or(MIA).to_owned()
}

async fn info(State(sim): Sim) -> Json<Value> {
    let state = sim.state.lock().await;
    Json(json!({
        "base_url": sim.origin,
        "control_url": format!("{}/_control", sim.origin),
        "accounts": sim.opts.accounts.iter().map(|(email, token)| json!({"email": email, "token": token})).collect::<Vec<_>>(),
        "projects": state.projects.keys().collect::<Vec<_>>(),
        "users": state.users,
    }))
}

async fn get_config(State(sim): Sim) -> Json<Config> {
    Json(sim.state.lock().await.config.clone())
}

async fn put_config(State(sim): Sim, Json(config): Json<Config>) -> Json<Config> {
    sim.state.lock().await.config = config.clone();
    Json(config)
}

async fn list_hooks(State(sim): Sim) -> Json<Vec<AdminHook>> {
    Json(sim.state.lock().await.hooks.values().cloned().collect())
}

async fn post_hook(State(sim): Sim, Json(hook): Json<AdminHook>) -> Response {
    let id = register(&sim, hook).await;
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn refresh_index(State(sim): Sim) -> StatusCode {
    sim.state.lock().await.refresh_index(true);
    StatusCode::NO_CONTENT
}

async fn delete_hook(State(sim): Sim, Path(id): Path<u64>) -> StatusCode {
    match sim.state.lock().await.hooks.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

async fn post_issue(State(sim): Sim, Json(input): Json<Map<String, Value>>) -> Response {
    let mut fields = rest_fields(&input);
    fields.insert(
        "project".into(),
        json!({"key": input.get("project").and_then(Value::as_str).unwrap_or(super::PROJECT_KEY)}),
    );
    fields
        .insert("issuetype".into(), json!({"name": input.get("issuetype").and_then(Value::as_str).unwrap_or("Task")}));
    let result = create(&sim, &json!({"fields": fields}), &actor_of(&input)).await;
    answer(result.map(|key| json!({"key": key})))
}

async fn get_issue(State(sim): Sim, Path(key): Path<String>) -> Response {
    match issue(&sim, &key).await {
        Some(value) => Json(value).into_response(),
        None => answer(Err(SimError::NotFound(key))),
    }
}

async fn patch_issue(State(sim): Sim, Path(key): Path<String>, Json(input): Json<Map<String, Value>>) -> Response {
    let body = json!({"fields": rest_fields(&input)});
    answer(edit(&sim, &key, &body, &actor_of(&input)).await.map(|()| json!({"key": key})))
}

#[derive(Deserialize)]
struct MoveInput {
    project: String,
    #[serde(default)]
    as_user: Option<String>,
}

async fn post_move(State(sim): Sim, Path(key): Path<String>, Json(input): Json<MoveInput>) -> Response {
    let actor = input.as_user.unwrap_or_else(|| MIA.to_owned());
    answer(move_issue(&sim, &key, &input.project, &actor).await.map(|key| json!({"key": key})))
}

async fn delete_issue(State(sim): Sim, Path(key): Path<String>, input: Option<Json<Map<String, Value>>>) -> Response {
    let actor = input.map(|Json(i)| actor_of(&i)).unwrap_or_else(|| MIA.to_owned());
    answer(delete(&sim, &key, &actor).await.map(|()| json!({"key": key})))
}

#[derive(Deserialize)]
struct TransitionInput {
    to: String,
    #[serde(default)]
    resolution: Option<String>,
    #[serde(default)]
    as_user: Option<String>,
}

async fn post_transition(State(sim): Sim, Path(key): Path<String>, Json(input): Json<TransitionInput>) -> Response {
    let actor = input.as_user.unwrap_or_else(|| MIA.to_owned());
    let result = transition_to(&sim, &key, &input.to, input.resolution.as_deref(), &actor).await;
    answer(result.map(|()| json!({"key": key})))
}

async fn post_assign(State(sim): Sim, Path(key): Path<String>, Json(input): Json<Map<String, Value>>) -> Response {
    let assignee = match input.get("account_id") {
        Some(Value::String(account)) => json!({"accountId": account}),
        _ => Value::Null,
    };
    let body = json!({"fields": {"assignee": assignee}});
    answer(edit(&sim, &key, &body, &actor_of(&input)).await.map(|()| json!({"key": key})))
}

async fn post_comment(State(sim): Sim, Path(key): Path<String>, Json(input): Json<Map<String, Value>>) -> Response {
    let body = match input.get("body") {
        Some(Value::String(text)) => adf::from_text(text),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    answer(comment(&sim, &key, &body, &actor_of(&input)).await.map(|id| json!({"id": id.to_string()})))
}

async fn post_flag(State(sim): Sim, Path(key): Path<String>, Json(input): Json<Map<String, Value>>) -> Response {
    let flagged = input.get("flagged").and_then(Value::as_bool).unwrap_or(true);
    let value = if flagged { json!([{"value": "Impediment"}]) } else { Value::Null };
    let body = json!({"fields": {"customfield_10021": value}});
    answer(edit(&sim, &key, &body, &actor_of(&input)).await.map(|()| json!({"key": key})))
}
