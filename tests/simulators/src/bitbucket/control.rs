//! Bitbucket control API (`/_control/…`): open, update, merge and decline pull requests, post
//! build statuses, push, register hooks. The Rust methods on [`super::Simulator`] call the same
//! functions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{BuildStatus, Hook, PullRequest, now};
use super::{Inner, JARED, render, webhooks};
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
    Router::new()
        .route("/_control/info", get(info))
        .route("/_control/webhooks", post(post_hook))
        .route("/_control/pullrequests", post(post_pr))
        .route("/_control/pullrequests/{id}", get(get_pr).patch(patch_pr))
        .route("/_control/pullrequests/{id}/merge", post(merge_pr))
        .route("/_control/pullrequests/{id}/decline", post(decline_pr))
        .route("/_control/statuses", post(post_status_route))
        .route("/_control/push", post(push_route))
        .with_state(sim.clone())
        .merge(crate::common::control::router(sim))
}

/// Registers a hook; returns its `{uuid}`.
pub async fn register(sim: &Inner, url: &str, secret: Option<&str>, events: Vec<String>) -> String {
    let uuid = format!("{{{}}}", uuid::Uuid::new_v4());
    let hook = Hook {
        uuid: uuid.clone(),
        url: url.to_owned(),
        description: "campbridge".to_owned(),
        active: true,
        events,
        secret: secret.filter(|s| !s.is_empty()).map(str::to_owned),
        created_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
    };
    sim.state.lock().await.hooks.insert(uuid.clone(), hook);
    uuid
}

/// Renders a pull request.
pub async fn pullrequest(sim: &Inner, id: u64) -> Option<Value> {
    let state = sim.state.lock().await;
    let pr = state.pullrequests.get(&id)?;
    let author = state.user(&pr.author)?;
    let closed_by = pr.closed_by.as_deref().and_then(|c| state.user(c));
    Some(render::pullrequest(&sim.ctx, pr, author, closed_by))
}

fn actor_of(state: &super::state::State, who: &str) -> Result<super::state::User, SimError> {
    state.user(who).cloned().ok_or_else(|| SimError::NotFound(format!("user {who}")))
}

/// Opens a pull request into `main`.
pub async fn open(sim: &Inner, title: &str, description: &str, source: &str, author: &str) -> Result<u64, SimError> {
    let mut state = sim.state.lock().await;
    let actor = actor_of(&state, author)?;
    if title.trim().is_empty() {
        return Err(SimError::Invalid("title is required".to_owned()));
    }
    let source_hash = state.fresh_hash();
    state.set_head(source, &source_hash);
    let destination_hash = state.head("main");
    let id = state.pullrequests.keys().next_back().copied().unwrap_or(0) + 1;
    let stamp = now();
    state.pullrequests.insert(
        id,
        PullRequest {
            id,
            title: title.to_owned(),
            description: description.to_owned(),
            state: "OPEN".to_owned(),
            source_branch: source.to_owned(),
            source_hash,
            destination_branch: "main".to_owned(),
            destination_hash,
            author: actor.uuid.clone(),
            created_on: stamp.clone(),
            updated_on: stamp,
            merge_commit: None,
            closed_by: None,
            reason: String::new(),
        },
    );
    if let Some(body) = webhooks::pullrequest_body(sim, &state, "pullrequest:created", id, &actor) {
        webhooks::emit(sim, &state, "pullrequest:created", &body);
    }
    Ok(id)
}

/// Edits title/description or pushes a commit to the source branch.
pub async fn update(
    sim: &Inner,
    id: u64,
    title: Option<&str>,
    description: Option<&str>,
    push: bool,
    who: &str,
) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let actor = actor_of(&state, who)?;
    let hash = if push { Some(state.fresh_hash()) } else { None };
    let pr = state.pullrequests.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("pull request {id}")))?;
    if pr.state != "OPEN" {
        return Err(SimError::Invalid("pull request is closed".to_owned()));
    }
    if let Some(title) = title {
        pr.title = title.to_owned();
    }
    if let Some(description) = description {
        pr.description = description.to_owned();
    }
    let mut pushed = None;
    if let Some(hash) = hash {
        pushed = Some((pr.source_branch.clone(), pr.source_hash.clone(), hash.clone()));
        pr.source_hash = hash;
    }
    pr.updated_on = now();
    if let Some((branch, old, new)) = pushed {
        state.set_head(&branch, &new);
        let body = webhooks::push_body(sim, &state, &branch, Some(&old), &new, &actor);
        webhooks::emit(sim, &state, "repo:push", &body);
    }
    if let Some(body) = webhooks::pullrequest_body(sim, &state, "pullrequest:updated", id, &actor) {
        webhooks::emit(sim, &state, "pullrequest:updated", &body);
    }
    Ok(())
}

/// Merges (`merged = true`) or declines a pull request.
pub async fn close(sim: &Inner, id: u64, merged: bool, reason: &str, who: &str) -> Result<(), SimError> {
    let mut state = sim.state.lock().await;
    let actor = actor_of(&state, who)?;
    let merge_hash = if merged { Some(state.fresh_hash()) } else { None };
    let pr = state.pullrequests.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("pull request {id}")))?;
    if pr.state != "OPEN" {
        return Err(SimError::Invalid("pull request is already closed".to_owned()));
    }
    pr.state = if merged { "MERGED" } else { "DECLINED" }.to_owned();
    pr.closed_by = Some(actor.uuid.clone());
    pr.reason = reason.to_owned();
    pr.merge_commit = merge_hash.clone();
    pr.updated_on = now();
    if let Some(hash) = merge_hash {
        state.branches.insert("main".to_owned(), hash);
    }
    let key = if merged { "pullrequest:fulfilled" } else { "pullrequest:rejected" };
    if let Some(body) = webhooks::pullrequest_body(sim, &state, key, id, &actor) {
        webhooks::emit(sim, &state, key, &body);
    }
    Ok(())
}

/// Creates or overwrites (same commit and key) a build status.
pub async fn post_status(sim: &Inner, mut status: BuildStatus, who: &str) -> Result<(), SimError> {
    if !["SUCCESSFUL", "FAILED", "INPROGRESS", "STOPPED"].contains(&status.state.as_str()) {
        return Err(SimError::Invalid(format!(
            "state '{}' is not one of SUCCESSFUL, FAILED, INPROGRESS, STOPPED",
            status.state
        )));
    }
    if status.key.is_empty() || status.commit.is_empty() {
        return Err(SimError::Invalid("key and commit are required".to_owned()));
    }
    let mut state = sim.state.lock().await;
    let actor = actor_of(&state, who)?;
    let stamp = now();
    let existing = state.statuses.iter_mut().find(|s| s.commit == status.commit && s.key == status.key);
    let created = existing.is_none();
    status.updated_on = stamp.clone();
    match existing {
        Some(found) => {
            status.created_on = found.created_on.clone();
            *found = status.clone();
        }
        None => {
            status.created_on = stamp;
            state.statuses.push(status.clone());
        }
    }
    let key = if created { "repo:commit_status_created" } else { "repo:commit_status_updated" };
    let body = webhooks::status_body(sim, &state, created, &status, &actor);
    webhooks::emit(sim, &state, key, &body);
    Ok(())
}

async fn info(State(sim): Sim) -> Json<Value> {
    let state = sim.state.lock().await;
    Json(json!({
        "base_url": sim.ctx.origin,
        "control_url": format!("{}/_control", sim.ctx.origin),
        "workspace": sim.ctx.workspace,
        "repo": sim.ctx.repo,
        "accounts": sim.opts.accounts.iter().map(|(email, token)| json!({"email": email, "token": token})).collect::<Vec<_>>(),
        "access_tokens": sim.opts.access_tokens,
        "users": state.users,
    }))
}

#[derive(Deserialize)]
struct HookInput {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
}

async fn post_hook(State(sim): Sim, Json(input): Json<HookInput>) -> Response {
    let uuid = register(&sim, &input.url, input.secret.as_deref(), input.events).await;
    (StatusCode::CREATED, Json(json!({"uuid": uuid}))).into_response()
}

#[derive(Deserialize)]
struct PrInput {
    title: String,
    #[serde(default)]
    description: String,
    source_branch: String,
    #[serde(default)]
    author: Option<String>,
}

async fn post_pr(State(sim): Sim, Json(input): Json<PrInput>) -> Response {
    let author = input.author.unwrap_or_else(|| JARED.to_owned());
    answer(
        open(&sim, &input.title, &input.description, &input.source_branch, &author).await.map(|id| json!({"id": id})),
    )
}

async fn get_pr(State(sim): Sim, Path(id): Path<u64>) -> Response {
    match pullrequest(&sim, id).await {
        Some(value) => Json(value).into_response(),
        None => answer(Err(SimError::NotFound(format!("pull request {id}")))),
    }
}

#[derive(Deserialize, Default)]
struct PrPatch {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    push: bool,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn patch_pr(State(sim): Sim, Path(id): Path<u64>, Json(input): Json<PrPatch>) -> Response {
    let actor = input.actor.unwrap_or_else(|| JARED.to_owned());
    let result = update(&sim, id, input.title.as_deref(), input.description.as_deref(), input.push, &actor).await;
    answer(result.map(|()| json!({"id": id})))
}

async fn merge_pr(State(sim): Sim, Path(id): Path<u64>, input: Option<Json<PrPatch>>) -> Response {
    let actor = input.and_then(|Json(i)| i.actor).unwrap_or_else(|| JARED.to_owned());
    answer(close(&sim, id, true, "", &actor).await.map(|()| json!({"id": id})))
}

async fn decline_pr(State(sim): Sim, Path(id): Path<u64>, input: Option<Json<PrPatch>>) -> Response {
    let input = input.map(|Json(i)| i).unwrap_or_default();
    let actor = input.actor.unwrap_or_else(|| JARED.to_owned());
    answer(close(&sim, id, false, input.reason.as_deref().unwrap_or(""), &actor).await.map(|()| json!({"id": id})))
}

#[derive(Deserialize)]
struct StatusInput {
    #[serde(flatten)]
    status: BuildStatus,
    #[serde(default)]
    actor: Option<String>,
}

async fn post_status_route(State(sim): Sim, Json(input): Json<StatusInput>) -> Response {
    let actor = input.actor.unwrap_or_else(|| super::SYNC_BOT.to_owned());
    answer(post_status(&sim, input.status, &actor).await.map(|()| json!({})))
}

#[derive(Deserialize)]
struct PushInput {
    branch: String,
    #[serde(default)]
    actor: Option<String>,
}

async fn push_route(State(sim): Sim, Json(input): Json<PushInput>) -> Response {
    let mut state = sim.state.lock().await;
    let actor = match actor_of(&state, input.actor.as_deref().unwrap_or(JARED)) {
        Ok(actor) => actor,
        Err(error) => return answer(Err(error)),
    };
    let old = state.branches.get(&input.branch).cloned();
    let new = state.fresh_hash();
    state.set_head(&input.branch, &new);
    for pr in state.pullrequests.values_mut().filter(|p| p.source_branch == input.branch && p.state == "OPEN") {
        pr.source_hash = new.clone();
    }
    let body = webhooks::push_body(&sim, &state, &input.branch, old.as_deref(), &new, &actor);
    webhooks::emit(&sim, &state, "repo:push", &body);
    answer(Ok(json!({"hash": new})))
}
