//! Basecamp API routes (flat and `/buckets/{bucket}/…` forms), the request gate (counting, rate
//! limit, faults, User-Agent, Content-Type, bearer auth) and the Launchpad OAuth endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{TodoWrite, Webhook};
use super::{Inner, control, render};
use crate::common::SimError;
use crate::common::faults::Style;
use crate::common::json::now_utc_millis;
use crate::common::webhooks::is_loopback;

type Sim = State<Arc<Inner>>;
type Params = Path<HashMap<String, String>>;

/// The authenticated person.
#[derive(Clone, Copy, Debug)]
pub struct Actor(pub i64);

/// A Basecamp error answer.
pub struct ApiError(pub StatusCode, pub Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        match error {
            SimError::NotFound(_) => not_found(),
            SimError::Invalid(message) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, json!({"status": 422, "error": message}))
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, json!({"status": 500, "error": other.to_string()})),
        }
    }
}

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, json!({"status": 404, "error": "Not Found"}))
}

fn bad_request(message: &str) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, json!({"status": 400, "error": message}))
}

/// A Rails validation answer as a bare field map, `{"payload_url": ["is not a valid URL"]}` (what the
/// webhooks controller renders at 400; the SDK's conformance suite, error-mapping.json).
fn field_errors(status: StatusCode, field: &str, message: &str) -> ApiError {
    ApiError(status, json!({field: [message]}))
}

type ApiResult = Result<Response, ApiError>;

/// Paths served both flat and under `/buckets/{bucket}`; calls to either count as the flat one.
const FLAT: [&str; 11] = [
    "/todosets/{id}",
    "/todosets/{id}/todolists.json",
    "/todolists/{id}",
    "/todolists/{id}/todos.json",
    "/todos/{id}",
    "/todos/{id}/completion.json",
    "/todos/{id}/position.json",
    "/recordings/{id}/comments.json",
    "/recordings/{id}/status/{status}",
    "/comments/{id}",
    "/webhooks/{id}",
];

/// The whole simulator router: API, Launchpad and control API.
pub fn router(sim: Arc<Inner>) -> Router {
    let flat: [MethodRouter<Arc<Inner>>; 11] = [
        get(get_todoset),
        get(list_todolists).post(create_todolist),
        get(get_todolist).put(put_todolist),
        get(list_todos).post(create_todo),
        get(get_todo).put(put_todo),
        post(complete).delete(uncomplete),
        put(reposition),
        get(list_comments).post(create_comment),
        put(set_status),
        get(get_comment).put(put_comment),
        get(get_webhook).put(put_webhook).delete(delete_webhook),
    ];
    let mut api = Router::new()
        .route("/projects.json", get(list_projects))
        .route("/projects/recordings.json", get(list_recordings))
        .route("/projects/{id}", get(get_project))
        .route("/projects/{id}/people.json", get(project_people))
        .route("/people.json", get(list_people))
        .route("/people/{id}", get(get_person))
        .route("/my/profile.json", get(my_profile))
        .route("/buckets/{bucket}/webhooks.json", get(list_webhooks).post(create_webhook));
    for (path, route) in FLAT.iter().zip(flat) {
        api = api.route(path, route.clone()).route(&format!("/buckets/{{bucket}}{path}"), route);
    }
    let api = api.route_layer(from_fn_with_state(sim.clone(), gate)).with_state(sim.clone());
    Router::new()
        .nest(&format!("/{}", sim.opts.account_id), api)
        .with_state(sim.clone())
        .merge(super::launchpad::router(sim.clone()))
        .merge(control::router(sim))
        .fallback(|| async { not_found() })
}

/// `METHOD pattern` key for counting: account prefix dropped, bucket prefix folded into the flat
/// form, `.json` restored on trailing id segments.
fn endpoint_key(account_id: i64, pattern: &str) -> String {
    let prefix = format!("/{account_id}");
    let mut path = pattern.strip_prefix(&prefix).unwrap_or(pattern).to_owned();
    if let Some(rest) = path.strip_prefix("/buckets/{bucket}")
        && FLAT.contains(&rest)
    {
        path = rest.to_owned();
    }
    if path.ends_with('}') {
        path.push_str(".json");
    }
    path
}

async fn gate(State(sim): Sim, mut request: Request, next: Next) -> Response {
    let pattern = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    sim.calls.record(request.method().as_str(), &endpoint_key(sim.opts.account_id, &pattern));
    if let Some(retry_after) = sim.rate_limited() {
        let mut response =
            (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": "API rate limit exceeded"}))).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    if let Some(response) = sim.faults.intercept(Style::Basecamp).await {
        return response;
    }
    let headers = request.headers();
    if headers.get(header::USER_AGENT).is_none_or(|ua| ua.as_bytes().is_empty()) {
        return bad_request("Bad Request: a User-Agent header with your app name and contact is required")
            .into_response();
    }
    if matches!(*request.method(), Method::POST | Method::PUT) && has_body(headers) && !is_json(headers) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({"status": 415, "error": "Unsupported Media Type"})))
            .into_response();
    }
    match authenticate(&sim, headers).await {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(response) => response,
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"))
}

async fn authenticate(sim: &Inner, headers: &HeaderMap) -> Result<Actor, Response> {
    let unauthorized = |message: &str| {
        let mut response = (StatusCode::UNAUTHORIZED, Json(json!({"error": message}))).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"Basecamp\""));
        response
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else { return Err(unauthorized("OAuth token required")) };
    let state = sim.state.lock().await;
    match state.tokens.get(token) {
        Some(found) if found.expired => {
            Err(unauthorized("OAuth token expired (old age). Refresh your token or reauthorize."))
        }
        Some(found) => Ok(Actor(found.person_id)),
        None => Err(unauthorized("OAuth token could not be verified")),
    }
}

fn param_id(params: &HashMap<String, String>, key: &str) -> Result<i64, ApiError> {
    params
        .get(key)
        .map(|raw| raw.strip_suffix(".json").unwrap_or(raw))
        .and_then(|raw| raw.parse().ok())
        .ok_or_else(not_found)
}

/// Bucket-scoped paths must name the record's own project.
fn check_bucket(params: &HashMap<String, String>, project_id: i64) -> Result<(), ApiError> {
    match params.get("bucket") {
        Some(_) if param_id(params, "bucket")? != project_id => Err(not_found()),
        _ => Ok(()),
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    let text = if body.is_empty() { &b"{}"[..] } else { &body[..] };
    serde_json::from_slice(text).map_err(|_| bad_request("Bad Request: body must be a JSON object"))
}

fn json_with(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// One page of `items`, with `Link: <…?page=N+1>; rel="next"` when more remain and `X-Total-Count`.
fn paginate(sim: &Inner, uri: &OriginalUri, query: &BTreeMap<String, String>, items: Vec<Value>) -> Response {
    let size = sim.opts.page_size.max(1);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * size).take(size).collect();
    let mut response = Json(Value::Array(slice)).into_response();
    response.headers_mut().insert("X-Total-Count", HeaderValue::from(total));
    if page * size < total {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in query.iter().filter(|(k, _)| k.as_str() != "page") {
            serializer.append_pair(key, value);
        }
        serializer.append_pair("page", &(page + 1).to_string());
        let link = format!("<{}{}?{}>; rel=\"next\"", sim.ctx.origin, uri.path(), serializer.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

type Q = Query<BTreeMap<String, String>>;

async fn list_projects(State(sim): Sim, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let state = sim.state.lock().await;
    let items = state.projects.values().rev().map(|p| render::project_list_item(&sim.ctx, &state, p)).collect();
    Ok(paginate(&sim, &uri, &query, items))
}

async fn get_project(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let project = state.projects.get(&id).ok_or_else(not_found)?;
    Ok(Json(render::project(&sim.ctx, &state, project)).into_response())
}

async fn project_people(State(sim): Sim, Path(params): Params, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let project = state.projects.get(&id).ok_or_else(not_found)?;
    let items = project.people.iter().map(|p| render::person(&state, *p)).collect();
    Ok(paginate(&sim, &uri, &query, items))
}

async fn list_people(State(sim): Sim, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let state = sim.state.lock().await;
    let items = state.people.values().cloned().collect();
    Ok(paginate(&sim, &uri, &query, items))
}

async fn get_person(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    state.people.get(&id).cloned().map(|p| Json(p).into_response()).ok_or_else(not_found)
}

async fn my_profile(State(sim): Sim, Extension(actor): Extension<Actor>) -> ApiResult {
    let state = sim.state.lock().await;
    Ok(Json(render::person(&state, actor.0)).into_response())
}

async fn get_todoset(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let project = state.project_of_todoset(id).ok_or_else(not_found)?;
    check_bucket(&params, project.id)?;
    Ok(Json(render::todoset(&sim.ctx, &state, project)).into_response())
}

async fn list_todolists(State(sim): Sim, Path(params): Params, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let project = state.project_of_todoset(id).ok_or_else(not_found)?;
    check_bucket(&params, project.id)?;
    let pid = project.id;
    let status = query.get("status").map(String::as_str).unwrap_or("active");
    let items = state
        .todolists
        .values()
        .filter(|l| l.project_id == pid && l.status == status)
        .map(|l| render::todolist(&sim.ctx, &state, l))
        .collect();
    Ok(paginate(&sim, &uri, &query, items))
}

#[derive(Deserialize)]
struct ListWrite {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_todolist(
    State(sim): Sim,
    Path(params): Params,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: ListWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let project_id = state.project_of_todoset(id).ok_or_else(not_found)?.id;
    check_bucket(&params, project_id)?;
    let (list_id, events) = state.create_todolist(project_id, &write.name, &write.description, actor.0)?;
    sim.emit(&mut state, events);
    let list = state.todolists.get(&list_id).ok_or_else(not_found)?;
    Ok(json_with(StatusCode::CREATED, render::todolist(&sim.ctx, &state, list)))
}

async fn get_todolist(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let list = state.todolists.get(&id).ok_or_else(not_found)?;
    check_bucket(&params, list.project_id)?;
    Ok(Json(render::todolist(&sim.ctx, &state, list)).into_response())
}

/// `PUT /todolists/{id}.json` `{name, description}`: a full replacement (todolists.md, "Update a to-do list").
async fn put_todolist(
    State(sim): Sim,
    Path(params): Params,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: ListWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let project_id = state.todolists.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    let events = state.replace_todolist(id, &write.name, &write.description, actor.0)?;
    sim.emit(&mut state, events);
    let list = state.todolists.get(&id).ok_or_else(not_found)?;
    Ok(Json(render::todolist(&sim.ctx, &state, list)).into_response())
}

async fn list_todos(State(sim): Sim, Path(params): Params, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let list = state.todolists.get(&id).ok_or_else(not_found)?;
    check_bucket(&params, list.project_id)?;
    // Default: active and pending. `completed=true`: completed ones. `status=archived|trashed`: those, both
    // pending and completed unless `completed` is given too (todos.md, "Get to-dos").
    let completed = query.get("completed").map(|v| v == "true");
    let status = query.get("status").map(String::as_str).unwrap_or("active");
    let items = state
        .todos_in(id)
        .into_iter()
        .filter(|t| state.todo_status(t) == status)
        .filter(|t| match (status, completed) {
            ("active", c) => t.completed == c.unwrap_or(false),
            (_, Some(c)) => t.completed == c,
            (_, None) => true,
        })
        .map(|t| render::todo(&sim.ctx, &state, t, true))
        .collect();
    Ok(paginate(&sim, &uri, &query, items))
}

async fn create_todo(
    State(sim): Sim,
    Path(params): Params,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: TodoWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let project_id = state.todolists.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    let (todo_id, events) = state.create_todo(id, write, actor.0)?;
    sim.emit(&mut state, events);
    let todo = state.todos.get(&todo_id).ok_or_else(not_found)?;
    Ok(json_with(StatusCode::CREATED, render::todo(&sim.ctx, &state, todo, false)))
}

async fn get_todo(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let todo = state.todos.get(&id).ok_or_else(not_found)?;
    check_bucket(&params, todo.project_id)?;
    Ok(Json(render::todo(&sim.ctx, &state, todo, false)).into_response())
}

async fn put_todo(State(sim): Sim, Path(params): Params, Extension(actor): Extension<Actor>, body: Bytes) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: TodoWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let project_id = state.todos.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    let events = state.replace_todo(id, write, actor.0)?;
    sim.emit(&mut state, events);
    let todo = state.todos.get(&id).ok_or_else(not_found)?;
    Ok(Json(render::todo(&sim.ctx, &state, todo, false)).into_response())
}

#[derive(Deserialize)]
struct PositionWrite {
    position: Option<i64>,
    #[serde(default)]
    parent_id: Option<i64>,
}

/// `PUT /todos/{id}/position.json` `{position ≥ 1, parent_id?}`: 204 (todos.md), and no webhook.
async fn reposition(State(sim): Sim, Path(params): Params, body: Bytes) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: PositionWrite = parse_body(&body)?;
    // A validation failure is a 422 on this operation (the SDK's OpenAPI, RepositionTodo).
    let Some(position) = write.position.filter(|p| *p >= 1) else {
        return Err(SimError::Invalid("Position must be greater than or equal to 1".into()).into());
    };
    let mut state = sim.state.lock().await;
    let project_id = state.todos.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    state.reposition_todo(id, position, write.parent_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /recordings/{id}/status/{trashed|archived|active}.json`: 204; fires `X_trashed`, `X_archived`,
/// `X_untrashed` or `X_unarchived` for the recording only (what it contains follows silently).
async fn set_status(State(sim): Sim, Path(params): Params, Extension(actor): Extension<Actor>) -> ApiResult {
    let id = param_id(&params, "id")?;
    let status = params.get("status").and_then(|s| s.strip_suffix(".json")).ok_or_else(not_found)?.to_owned();
    let mut state = sim.state.lock().await;
    let (project_id, _) = state.recording(id).ok_or_else(not_found)?;
    check_bucket(&params, project_id)?;
    let events = state.set_status(id, &status, actor.0)?;
    sim.emit(&mut state, events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn complete(State(sim): Sim, Path(params): Params, Extension(actor): Extension<Actor>) -> ApiResult {
    set_completion(&sim, &params, actor, true).await
}

async fn uncomplete(State(sim): Sim, Path(params): Params, Extension(actor): Extension<Actor>) -> ApiResult {
    set_completion(&sim, &params, actor, false).await
}

async fn set_completion(sim: &Inner, params: &HashMap<String, String>, actor: Actor, done: bool) -> ApiResult {
    let id = param_id(params, "id")?;
    let mut state = sim.state.lock().await;
    let project_id = state.todos.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(params, project_id)?;
    let events = if done { state.complete_todo(id, actor.0)? } else { state.uncomplete_todo(id, actor.0)? };
    sim.emit(&mut state, events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_comments(State(sim): Sim, Path(params): Params, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let (project_id, _) = state.recording(id).ok_or_else(not_found)?;
    check_bucket(&params, project_id)?;
    let items = state.comments_on(id).into_iter().map(|c| render::comment(&sim.ctx, &state, c)).collect();
    Ok(paginate(&sim, &uri, &query, items))
}

#[derive(Deserialize)]
struct CommentWrite {
    #[serde(default)]
    content: String,
}

async fn create_comment(
    State(sim): Sim,
    Path(params): Params,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: CommentWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let (project_id, _) = state.recording(id).ok_or_else(not_found)?;
    check_bucket(&params, project_id)?;
    let (comment_id, events) = state.create_comment(id, &write.content, actor.0)?;
    sim.emit(&mut state, events);
    let comment = state.comments.get(&comment_id).ok_or_else(not_found)?;
    let rendered = render::comment(&sim.ctx, &state, comment);
    let mut response = json_with(StatusCode::CREATED, rendered.clone());
    // Basecamp's Location header is the comment's HTML URL, not its API URL.
    if let Some(Ok(location)) = rendered["app_url"].as_str().map(HeaderValue::from_str) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_comment(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let comment = state.comments.get(&id).ok_or_else(not_found)?;
    check_bucket(&params, comment.project_id)?;
    Ok(Json(render::comment(&sim.ctx, &state, comment)).into_response())
}

async fn put_comment(
    State(sim): Sim,
    Path(params): Params,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: CommentWrite = parse_body(&body)?;
    let mut state = sim.state.lock().await;
    let project_id = state.comments.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    let events = state.update_comment(id, &write.content, actor.0)?;
    sim.emit(&mut state, events);
    let comment = state.comments.get(&id).ok_or_else(not_found)?;
    Ok(Json(render::comment(&sim.ctx, &state, comment)).into_response())
}

async fn list_recordings(State(sim): Sim, uri: OriginalUri, Query(query): Q) -> ApiResult {
    let Some(kind) = query.get("type") else { return Err(bad_request("type is required")) };
    let buckets: Option<Vec<i64>> =
        query.get("bucket").map(|b| b.split(',').filter_map(|id| id.trim().parse().ok()).collect());
    let status = query.get("status").map(String::as_str).unwrap_or("active");
    let sort_key = query.get("sort").map(String::as_str).unwrap_or("created_at");
    let ascending = query.get("direction").is_some_and(|d| d == "asc");
    let in_bucket = |pid: i64| buckets.as_ref().is_none_or(|b| b.contains(&pid));
    let state = sim.state.lock().await;
    let mut items: Vec<Value> = match kind.as_str() {
        "Todo" => state
            .todos
            .values()
            .filter(|t| in_bucket(t.project_id) && state.todo_status(t) == status)
            .map(|t| render::todo(&sim.ctx, &state, t, false))
            .collect(),
        "Todolist" => state
            .todolists
            .values()
            .filter(|l| in_bucket(l.project_id) && l.status == status)
            .map(|l| render::todolist(&sim.ctx, &state, l))
            .collect(),
        "Comment" => state
            .comments
            .values()
            .filter(|c| in_bucket(c.project_id) && state.comment_status(c) == status)
            .map(|c| render::comment(&sim.ctx, &state, c))
            .collect(),
        _ => Vec::new(),
    };
    let field = if sort_key == "updated_at" { "updated_at" } else { "created_at" };
    items.sort_by(|a, b| {
        let order = a[field].as_str().cmp(&b[field].as_str()).then(a["id"].as_i64().cmp(&b["id"].as_i64()));
        if ascending { order } else { order.reverse() }
    });
    Ok(paginate(&sim, &uri, &query, items))
}

#[derive(Deserialize)]
struct WebhookWrite {
    payload_url: Option<String>,
    types: Option<Vec<String>>,
    active: Option<bool>,
}

/// Basecamp requires HTTPS payload URLs; the simulator also accepts plain HTTP to loopback so
/// tests can receive deliveries.
fn valid_payload_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) => parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(url)),
        Err(_) => false,
    }
}

/// The recording types a webhook can subscribe to (webhooks.md).
const WEBHOOK_TYPES: [&str; 18] = [
    "Comment",
    "Client::Approval::Response",
    "Client::Forward",
    "Client::Reply",
    "CloudFile",
    "Document",
    "GoogleDocument",
    "Inbox::Forward",
    "Kanban::Card",
    "Kanban::Step",
    "Message",
    "Question",
    "Question::Answer",
    "Schedule::Entry",
    "Todo",
    "Todolist",
    "Upload",
    "Vault",
];

/// A webhook write's validation: the payload URL, and only documented types.
fn check_webhook_write(url: &str, types: Option<&[String]>) -> Result<(), ApiError> {
    if !valid_payload_url(url) {
        return Err(field_errors(StatusCode::BAD_REQUEST, "payload_url", "is not a valid URL"));
    }
    if types.is_some_and(|types| types.iter().any(|t| !WEBHOOK_TYPES.contains(&t.as_str()))) {
        return Err(field_errors(StatusCode::BAD_REQUEST, "types", "is invalid"));
    }
    Ok(())
}

async fn list_webhooks(State(sim): Sim, Path(params): Params) -> ApiResult {
    let bucket = param_id(&params, "bucket")?;
    let state = sim.state.lock().await;
    if !state.projects.contains_key(&bucket) {
        return Err(not_found());
    }
    let hooks: Vec<Value> = state
        .webhooks
        .values()
        .filter(|h| h.project_id == bucket)
        .map(|h| render::webhook(&sim.ctx, h, false))
        .collect();
    Ok(Json(hooks).into_response())
}

async fn create_webhook(State(sim): Sim, Path(params): Params, body: Bytes) -> ApiResult {
    let bucket = param_id(&params, "bucket")?;
    let write: WebhookWrite = parse_body(&body)?;
    let url = write.payload_url.unwrap_or_default();
    check_webhook_write(&url, write.types.as_deref())?;
    let mut state = sim.state.lock().await;
    if !state.projects.contains_key(&bucket) {
        return Err(not_found());
    }
    let id = state.fresh_id();
    let now = now_utc_millis();
    // A webhook created without types stores [] and never fires (the reported behaviour).
    let hook = Webhook {
        id,
        project_id: bucket,
        payload_url: url,
        types: write.types.unwrap_or_default(),
        active: true,
        recent_deliveries: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
    };
    let rendered = render::webhook(&sim.ctx, &hook, false);
    state.webhooks.insert(id, hook);
    Ok(json_with(StatusCode::CREATED, rendered))
}

async fn get_webhook(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let state = sim.state.lock().await;
    let hook = state.webhooks.get(&id).ok_or_else(not_found)?;
    check_bucket(&params, hook.project_id)?;
    Ok(Json(render::webhook(&sim.ctx, hook, true)).into_response())
}

async fn put_webhook(State(sim): Sim, Path(params): Params, body: Bytes) -> ApiResult {
    let id = param_id(&params, "id")?;
    let write: WebhookWrite = parse_body(&body)?;
    let url = write.payload_url.unwrap_or_default();
    check_webhook_write(&url, write.types.as_deref())?;
    let mut state = sim.state.lock().await;
    let hook = state.webhooks.get_mut(&id).ok_or_else(not_found)?;
    check_bucket(&params, hook.project_id)?;
    hook.payload_url = url;
    if let Some(types) = write.types {
        hook.types = types;
    }
    if let Some(active) = write.active {
        hook.active = active;
    }
    hook.updated_at = now_utc_millis();
    Ok(Json(render::webhook(&sim.ctx, hook, false)).into_response())
}

async fn delete_webhook(State(sim): Sim, Path(params): Params) -> ApiResult {
    let id = param_id(&params, "id")?;
    let mut state = sim.state.lock().await;
    let project_id = state.webhooks.get(&id).ok_or_else(not_found)?.project_id;
    check_bucket(&params, project_id)?;
    state.webhooks.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
