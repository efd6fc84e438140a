//! Bitbucket Cloud REST 2.0 routes and the request gate (counting, faults, Basic or Bearer auth).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{BuildStatus, Hook, User};
use super::{Inner, control, render};
use crate::common::SimError;
use crate::common::basic_auth::decode_basic;
use crate::common::faults::Style;
use crate::common::json::fixture;

type Sim = State<Arc<Inner>>;
type Params = Path<HashMap<String, String>>;

/// A Bitbucket error answer.
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError(status, json!({"type": "error", "error": {"message": message}}))
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::NotFound(what) => error(StatusCode::NOT_FOUND, &what),
            other => error(StatusCode::BAD_REQUEST, &other.to_string()),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// The authenticated identity: an account, or a repository access token (which acts as its own bot on
/// the repository but is no user: `/2.0/user` refuses it).
#[derive(Clone, Debug)]
pub struct Caller(pub User, pub bool);

impl Caller {
    fn is_access_token(&self) -> bool {
        self.1
    }
}

/// Bitbucket's answer to a user-level call made with a repository access token.
fn not_a_user() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, Json(fixture(render::ERROR_401))).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"Bitbucket.org HTTP\""));
    response
}

const REPO: &str = "/2.0/repositories/{workspace}/{repo}";

/// The simulator router: REST API plus control API.
pub fn router(sim: Arc<Inner>) -> Router {
    let api = Router::new()
        .route("/2.0/user", get(get_user))
        .route("/2.0/user/workspaces", get(user_workspaces))
        .route(REPO, get(get_repo))
        .route(&format!("{REPO}/pullrequests"), get(list_prs))
        .route(&format!("{REPO}/pullrequests/{{id}}"), get(get_pr))
        .route(&format!("{REPO}/commit/{{hash}}/statuses"), get(list_statuses))
        .route(&format!("{REPO}/commit/{{hash}}/pullrequests"), get(commit_prs))
        .route(&format!("{REPO}/commit/{{hash}}/statuses/build"), post(post_status))
        .route(&format!("{REPO}/hooks"), get(list_hooks).post(create_hook))
        .route(&format!("{REPO}/hooks/{{uid}}"), get(get_hook).put(put_hook).delete(delete_hook))
        .route(&format!("{REPO}/issues"), any(issues_removed))
        .route(&format!("{REPO}/issues/{{*rest}}"), any(issues_removed))
        .route_layer(from_fn_with_state(sim.clone(), gate))
        .with_state(sim.clone());
    api.merge(control::router(sim)).fallback(|| async { error(StatusCode::NOT_FOUND, "Resource not found") })
}

async fn gate(State(sim): Sim, mut request: Request, next: Next) -> Response {
    let pattern = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    sim.calls.record(request.method().as_str(), &pattern);
    if let Some(response) = sim.faults.intercept(Style::Bitbucket).await {
        return response;
    }
    let header_value = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let state = sim.state.lock().await;
    let caller = if let Some(token) = header_value.strip_prefix("Bearer ") {
        // Repository access tokens act as the repository's bot identity, and are not users.
        sim.opts
            .access_tokens
            .iter()
            .any(|t| t == token.trim())
            .then(|| state.users.first().cloned().map(|u| Caller(u, true)))
            .flatten()
    } else {
        match decode_basic(header_value) {
            Some((email, token)) if sim.opts.accounts.iter().any(|(e, t)| *e == email && *t == token) => {
                state.users.first().cloned().map(|u| Caller(u, false))
            }
            _ => None,
        }
    };
    drop(state);
    let identity = header_value.to_owned();
    let Some(caller) = caller else {
        let mut response = (StatusCode::UNAUTHORIZED, Json(fixture(render::ERROR_401))).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Bitbucket.org HTTP\""));
        return response;
    };
    if let Some(limit) = sim.opts.hourly_budget
        && !sim.spend(&identity, limit)
    {
        // As observed: plain text, no Retry-After, no JSON envelope.
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain")],
            "Rate limit for this resource has been exceeded",
        )
            .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn check_repo(sim: &Inner, params: &HashMap<String, String>) -> Result<(), ApiError> {
    let workspace = params.get("workspace").map(String::as_str).unwrap_or_default();
    let repo = params.get("repo").map(String::as_str).unwrap_or_default();
    if workspace == sim.ctx.workspace && repo == sim.ctx.repo {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, &format!("Repository {workspace}/{repo} not found")))
    }
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Pages `values` by `page`/`pagelen`, with `next` built from the request's own query.
fn paged(sim: &Inner, path: &str, pairs: &[(String, String)], values: Vec<Value>) -> Value {
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let pagelen = get("pagelen").and_then(|p| p.parse().ok()).unwrap_or(sim.opts.pagelen).clamp(1, 100);
    let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let size = values.len();
    let slice: Vec<Value> = values.into_iter().skip((page - 1) * pagelen).take(pagelen).collect();
    let next = (page * pagelen < size).then(|| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs.iter().filter(|(k, _)| k != "page") {
            serializer.append_pair(key, value);
        }
        serializer.append_pair("page", &(page + 1).to_string());
        format!("{}{path}?{}", sim.ctx.origin, serializer.finish())
    });
    render::page(slice, pagelen, page, size, next)
}

async fn get_user(State(sim): Sim, Extension(caller): Extension<Caller>) -> ApiResult {
    if caller.is_access_token() {
        return Ok(not_a_user());
    }
    Ok(Json(render::user(&sim.ctx, &caller.0)).into_response())
}

async fn user_workspaces(State(sim): Sim, Extension(caller): Extension<Caller>, RawQuery(raw): RawQuery) -> ApiResult {
    if caller.is_access_token() {
        return Ok(not_a_user());
    }
    let workspace = json!({"type": "workspace_access", "administrator": true,
        "workspace": {"type": "workspace", "uuid": sim.ctx.workspace_uuid, "name": sim.ctx.workspace_name, "slug": sim.ctx.workspace,
                      "links": {"self": {"href": sim.ctx.api(&format!("/workspaces/{}", sim.ctx.workspace))}}}});
    Ok(Json(paged(&sim, "/2.0/user/workspaces", &query_pairs(&raw), vec![workspace])).into_response())
}

async fn get_repo(State(sim): Sim, Path(params): Params) -> ApiResult {
    check_repo(&sim, &params)?;
    let state = sim.state.lock().await;
    let owner = state.users.first().cloned().ok_or_else(|| error(StatusCode::NOT_FOUND, "no owner"))?;
    Ok(Json(render::repository(&sim.ctx, &owner)).into_response())
}

async fn list_prs(State(sim): Sim, Path(params): Params, RawQuery(raw): RawQuery) -> ApiResult {
    check_repo(&sim, &params)?;
    let pairs = query_pairs(&raw);
    let mut states: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "state").map(|(_, v)| v.to_ascii_uppercase()).collect();
    if states.is_empty() {
        states.push("OPEN".to_owned());
    }
    let state = sim.state.lock().await;
    let values: Vec<Value> = state
        .pullrequests
        .values()
        .rev()
        .filter(|pr| states.contains(&pr.state))
        .filter_map(|pr| {
            let author = state.user(&pr.author)?;
            let closed_by = pr.closed_by.as_deref().and_then(|c| state.user(c));
            Some(render::pullrequest(&sim.ctx, pr, author, closed_by))
        })
        .collect();
    let path = format!("/2.0/repositories/{}/pullrequests", sim.ctx.full_name());
    Ok(Json(paged(&sim, &path, &pairs, values)).into_response())
}

async fn get_pr(State(sim): Sim, Path(params): Params) -> ApiResult {
    check_repo(&sim, &params)?;
    let id: u64 = params.get("id").and_then(|i| i.parse().ok()).unwrap_or(0);
    control::pullrequest(&sim, id)
        .await
        .map(|pr| Json(pr).into_response())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, &format!("Pull request {id} not found")))
}

/// `GET …/commit/{commit}/pullrequests`: the pull requests (any state) that contain the commit, newest
/// first, paged. An unknown commit is 404, as for any commit Bitbucket does not have.
async fn commit_prs(State(sim): Sim, Path(params): Params, RawQuery(raw): RawQuery) -> ApiResult {
    check_repo(&sim, &params)?;
    let hash = params.get("hash").cloned().unwrap_or_default();
    let state = sim.state.lock().await;
    let branch = state
        .branch_of(&hash)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, &format!("Commit not found: {hash}")))?
        .to_owned();
    let values: Vec<Value> = state
        .pullrequests
        .values()
        .rev()
        .filter(|pr| pr.source_branch == branch)
        .filter_map(|pr| {
            let author = state.user(&pr.author)?;
            let closed_by = pr.closed_by.as_deref().and_then(|c| state.user(c));
            Some(render::pullrequest(&sim.ctx, pr, author, closed_by))
        })
        .collect();
    let path = format!("/2.0/repositories/{}/commit/{hash}/pullrequests", sim.ctx.full_name());
    Ok(Json(paged(&sim, &path, &query_pairs(&raw), values)).into_response())
}

async fn list_statuses(State(sim): Sim, Path(params): Params, RawQuery(raw): RawQuery) -> ApiResult {
    check_repo(&sim, &params)?;
    let hash = params.get("hash").cloned().unwrap_or_default();
    let state = sim.state.lock().await;
    let values: Vec<Value> = state
        .statuses
        .iter()
        .filter(|s| s.commit.starts_with(&hash) || hash.starts_with(&s.commit))
        .map(|s| render::build_status(&sim.ctx, s))
        .collect();
    let path = format!("/2.0/repositories/{}/commit/{hash}/statuses", sim.ctx.full_name());
    Ok(Json(paged(&sim, &path, &query_pairs(&raw), values)).into_response())
}

async fn post_status(
    State(sim): Sim,
    Path(params): Params,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    check_repo(&sim, &params)?;
    let mut status: BuildStatus =
        serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Bad request: {e}")))?;
    status.commit = params.get("hash").cloned().unwrap_or_default();
    let key = status.key.clone();
    let commit = status.commit.clone();
    control::post_status(&sim, status, &caller.0.uuid).await?;
    let state = sim.state.lock().await;
    let stored = state
        .statuses
        .iter()
        .find(|s| s.commit == commit && s.key == key)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "status"))?;
    Ok((StatusCode::CREATED, Json(render::build_status(&sim.ctx, stored))).into_response())
}

#[derive(Deserialize)]
struct HookWrite {
    url: Option<String>,
    description: Option<String>,
    active: Option<bool>,
    events: Option<Vec<String>>,
    /// Absent = unchanged (on update); `null` or `""` = removed.
    #[serde(default, deserialize_with = "double_option")]
    secret: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

fn normalise_uid(uid: &str) -> String {
    format!("{{{}}}", uid.trim_matches(|c| c == '{' || c == '}'))
}

async fn list_hooks(State(sim): Sim, Path(params): Params, RawQuery(raw): RawQuery) -> ApiResult {
    check_repo(&sim, &params)?;
    let state = sim.state.lock().await;
    let values = state.hooks.values().map(|h| render::hook(&sim.ctx, h)).collect();
    let path = format!("/2.0/repositories/{}/hooks", sim.ctx.full_name());
    Ok(Json(paged(&sim, &path, &query_pairs(&raw), values)).into_response())
}

async fn create_hook(State(sim): Sim, Path(params): Params, body: Bytes) -> ApiResult {
    check_repo(&sim, &params)?;
    let write: HookWrite =
        serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Bad request: {e}")))?;
    let url = write
        .url
        .filter(|u| url::Url::parse(u).is_ok())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "url: Enter a valid URL."))?;
    let events = write
        .events
        .filter(|e| !e.is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "events: This field is required."))?;
    let secret = write.secret.flatten().filter(|s| !s.is_empty());
    let uuid = control::register(&sim, &url, secret.as_deref(), events).await;
    let mut state = sim.state.lock().await;
    let hook = state.hooks.get_mut(&uuid).ok_or_else(|| error(StatusCode::NOT_FOUND, "hook"))?;
    hook.description = write.description.unwrap_or_default();
    hook.active = write.active.unwrap_or(true);
    let mut response = (StatusCode::CREATED, Json(render::hook(&sim.ctx, hook))).into_response();
    if let Ok(location) =
        HeaderValue::from_str(render::hook(&sim.ctx, hook)["links"]["self"]["href"].as_str().unwrap_or_default())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn hook_mut<'a>(hooks: &'a mut std::collections::BTreeMap<String, Hook>, uid: &str) -> Result<&'a mut Hook, ApiError> {
    hooks.get_mut(&normalise_uid(uid)).ok_or_else(|| error(StatusCode::NOT_FOUND, "Webhook not found"))
}

async fn get_hook(State(sim): Sim, Path(params): Params) -> ApiResult {
    check_repo(&sim, &params)?;
    let mut state = sim.state.lock().await;
    let hook = hook_mut(&mut state.hooks, params.get("uid").map(String::as_str).unwrap_or_default())?;
    Ok(Json(render::hook(&sim.ctx, hook)).into_response())
}

async fn put_hook(State(sim): Sim, Path(params): Params, body: Bytes) -> ApiResult {
    check_repo(&sim, &params)?;
    let write: HookWrite =
        serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Bad request: {e}")))?;
    let mut state = sim.state.lock().await;
    let hook = hook_mut(&mut state.hooks, params.get("uid").map(String::as_str).unwrap_or_default())?;
    if let Some(url) = write.url {
        hook.url = url;
    }
    if let Some(description) = write.description {
        hook.description = description;
    }
    if let Some(active) = write.active {
        hook.active = active;
    }
    if let Some(events) = write.events {
        hook.events = events;
    }
    if let Some(secret) = write.secret {
        hook.secret = secret.filter(|s| !s.is_empty());
    }
    Ok(Json(render::hook(&sim.ctx, hook)).into_response())
}

async fn delete_hook(State(sim): Sim, Path(params): Params) -> ApiResult {
    check_repo(&sim, &params)?;
    let uid = normalise_uid(params.get("uid").map(String::as_str).unwrap_or_default());
    let mut state = sim.state.lock().await;
    state.hooks.remove(&uid).ok_or_else(|| error(StatusCode::NOT_FOUND, "Webhook not found"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn issues_removed() -> Response {
    (StatusCode::GONE, Json(fixture(render::ERROR_410))).into_response()
}
