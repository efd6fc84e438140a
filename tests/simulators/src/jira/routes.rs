//! Jira REST routes and the request gate (counting, faults, Basic auth).

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::basic_auth::decode_basic;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::state::{Issue, JiraError, State as JiraState};
use super::{Inner, control, jql, render};
use crate::common::faults::Style;
use crate::common::json::{fixture, obj};

type Sim = State<Arc<Inner>>;
type ApiResult = Result<Response, JiraError>;

/// The authenticated account id.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

impl IntoResponse for JiraError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

/// The simulator router: REST API plus control API.
pub fn router(sim: Arc<Inner>) -> Router {
    let api = Router::new()
        .route("/rest/api/3/issue", post(create_issue))
        .route("/rest/api/3/issue/{key}", get(get_issue).put(edit_issue).delete(delete_issue))
        .route("/rest/api/3/issue/{key}/assignee", put(assign))
        .route("/rest/api/3/issue/{key}/transitions", get(get_transitions).post(post_transition))
        .route("/rest/api/3/issue/{key}/comment", get(list_comments).post(add_comment))
        .route("/rest/api/3/issue/{key}/comment/{id}", get(get_comment).put(update_comment))
        .route("/rest/api/3/issue/{key}/remotelink", get(list_links).post(upsert_link).delete(delete_link))
        .route("/rest/api/3/issue/{key}/properties", get(list_properties))
        .route("/rest/api/3/issue/{key}/properties/{prop}", get(get_property).put(put_property).delete(delete_property))
        .route("/rest/api/3/user/search", get(user_search))
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/api/3/search/jql", get(search_get).post(search_post))
        .route("/rest/api/3/search", any(search_removed))
        .route("/rest/api/2/search", any(search_removed))
        .route("/rest/api/3/project/{key}", get(get_project))
        .route("/rest/api/3/issue/createmeta/{project}/issuetypes", get(createmeta_types))
        .route("/rest/api/3/issue/createmeta/{project}/issuetypes/{type_id}", get(createmeta_fields))
        .route_layer(from_fn_with_state(sim.clone(), gate))
        .with_state(sim.clone());
    api.merge(control::router(sim))
        .fallback(|| async { JiraError::messages(StatusCode::NOT_FOUND, "The requested resource could not be found.") })
}

async fn gate(State(sim): Sim, mut request: Request, next: Next) -> Response {
    let pattern = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    sim.calls.record(request.method().as_str(), &pattern);
    if let Some(response) = sim.faults.intercept(Style::Jira).await {
        return response;
    }
    let credentials = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(decode_basic);
    let account = match credentials {
        Some((email, token)) if sim.opts.accounts.iter().any(|(e, t)| *e == email && *t == token) => {
            sim.state.lock().await.users.iter().find(|u| u.email == email).map(|u| u.account_id.clone())
        }
        _ => None,
    };
    let Some(account) = account else {
        let mut response = JiraError::messages(
            StatusCode::UNAUTHORIZED,
            "You are not authenticated. Authentication required to perform this operation.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"protected-by-api-token\""));
        return response;
    };
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    if let Some(refused) = rate_limited(&sim, &method, &path, &pattern).await {
        return refused;
    }
    request.extensions_mut().insert(Caller(account));
    next.run(request).await
}

/// Jira's burst limit (per endpoint and method) and per-issue write limit, when configured: 429 with
/// `Retry-After` and the `RateLimit-Reason` Atlassian documents.
async fn rate_limited(sim: &Inner, method: &axum::http::Method, path: &str, pattern: &str) -> Option<Response> {
    let (burst, per_issue) = {
        let state = sim.state.lock().await;
        (state.config.burst, state.config.per_issue_writes)
    };
    let refuse = |reason: &'static str, limit: super::state::RateWindow| {
        let mut response = JiraError::messages(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.").into_response();
        let headers = response.headers_mut();
        headers.insert("RateLimit-Reason", HeaderValue::from_static(reason));
        if let Ok(v) = HeaderValue::from_str(&limit.retry_after_secs.to_string()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    };
    if let Some(limit) = burst
        && !sim.admit(&format!("burst:{method} {pattern}"), limit)
    {
        return Some(refuse("jira-burst-based", limit));
    }
    if let Some(limit) = per_issue.filter(|_| method != axum::http::Method::GET) {
        // The issue is the path segment where the route pattern has `{key}`.
        let at = pattern.split('/').position(|s| s == "{key}")?;
        let key = path.split('/').nth(at)?;
        // One bucket per issue, whether it is addressed by key or by id.
        let issue = sim.state.lock().await.find(key).map_or_else(|| key.to_ascii_uppercase(), |id| id.to_string());
        if !sim.admit(&format!("issue:{issue}"), limit) {
            return Some(refuse("jira-per-issue-on-write", limit));
        }
    }
    None
}

fn parse(body: &Bytes) -> Result<Value, JiraError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| {
        JiraError::messages(StatusCode::BAD_REQUEST, "Unexpected character: the request body is not valid JSON")
    })
}

fn find(state: &JiraState, key: &str) -> Result<u64, JiraError> {
    state.find(key).ok_or_else(JiraError::no_issue)
}

fn field_list(raw: Option<&String>) -> Option<Vec<String>> {
    raw.map(|f| f.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

async fn create_issue(State(sim): Sim, Extension(caller): Extension<Caller>, body: Bytes) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let (id, events) = state.create_issue(&body, &caller.0)?;
    sim.emit(&mut state, events);
    if state.config.lose_create_responses > 0 {
        state.config.lose_create_responses -= 1;
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"errorMessages": ["connection reset"], "errors": {}})),
        )
            .into_response());
    }
    let issue = state.issues.get(&id).ok_or_else(JiraError::no_issue)?;
    let mut response = obj(fixture(render::CREATE_RESPONSE));
    response.insert("id".into(), id.to_string().into());
    response.insert("key".into(), issue.key.clone().into());
    response.insert("self".into(), format!("{}/rest/api/3/issue/{id}", sim.origin).into());
    if body.get("transition").is_none() {
        response.remove("transition");
    }
    Ok((StatusCode::CREATED, Json(Value::Object(response))).into_response())
}

async fn get_issue(
    State(sim): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let selected = field_list(query.get("fields"));
    let mut rendered = render::issue_v3(&sim.origin, &state, issue, selected.as_deref());
    if let Some(props) = query.get("properties") {
        let all = props.split(',').any(|p| p == "*all");
        let wanted: serde_json::Map<String, Value> = issue
            .properties
            .iter()
            .filter(|(k, _)| all || props.split(',').any(|p| p == k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        rendered["properties"] = Value::Object(wanted);
    }
    Ok(Json(rendered).into_response())
}

async fn edit_issue(
    State(sim): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let events = state.edit_issue(id, &body, &caller.0)?;
    sim.emit(&mut state, events);
    if query.get("returnIssue").is_some_and(|v| v == "true") {
        let issue = state.issues.get(&id).ok_or_else(JiraError::no_issue)?;
        return Ok(Json(render::issue_v3(&sim.origin, &state, issue, None)).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_issue(State(sim): Sim, Path(key): Path<String>, Extension(caller): Extension<Caller>) -> ApiResult {
    control::delete(&sim, &key, &caller.0).await.map_err(|_| JiraError::no_issue())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn assign(
    State(sim): Sim,
    Path(key): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = parse(&body)?;
    let edit = json!({"fields": {"assignee": if body.get("accountId").is_some_and(|a| !a.is_null()) { body } else { Value::Null }}});
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let events = state.edit_issue(id, &edit, &caller.0)?;
    sim.emit(&mut state, events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_transitions(
    State(sim): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let with_fields = query.get("expand").is_some_and(|e| e.contains("transitions.fields"));
    let edges = state.available(id);
    Ok(Json(render::transitions(&sim.origin, &edges, state.config.require_resolution, with_fields)).into_response())
}

async fn post_transition(
    State(sim): Sim,
    Path(key): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let events = state.transition(id, &body, &caller.0)?;
    sim.emit(&mut state, events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_comments(State(sim): Sim, Path(key): Path<String>) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let comments: Vec<Value> =
        issue.comments.iter().map(|c| render::comment(&sim.origin, &state, issue, c, 3)).collect();
    let total = comments.len();
    Ok(Json(json!({"startAt": 0, "maxResults": 100, "total": total, "comments": comments})).into_response())
}

async fn add_comment(
    State(sim): Sim,
    Path(key): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let (comment_id, events) = state.add_comment(id, body.get("body").unwrap_or(&Value::Null), &caller.0)?;
    sim.emit(&mut state, events);
    let issue = state.issues.get(&id).ok_or_else(JiraError::no_issue)?;
    let comment = issue.comments.iter().find(|c| c.id == comment_id).ok_or_else(JiraError::no_issue)?;
    Ok((StatusCode::CREATED, Json(render::comment(&sim.origin, &state, issue, comment, 3))).into_response())
}

async fn get_comment(State(sim): Sim, Path((key, comment_id)): Path<(String, u64)>) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let comment = issue
        .comments
        .iter()
        .find(|c| c.id == comment_id)
        .ok_or_else(|| JiraError::messages(StatusCode::NOT_FOUND, "Can not find a comment for the id."))?;
    Ok(Json(render::comment(&sim.origin, &state, issue, comment, 3)).into_response())
}

async fn update_comment(
    State(sim): Sim,
    Path((key, comment_id)): Path<(String, u64)>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let events = state.update_comment(id, comment_id, body.get("body").unwrap_or(&Value::Null), &caller.0)?;
    sim.emit(&mut state, events);
    let issue = state.issues.get(&id).ok_or_else(JiraError::no_issue)?;
    let comment = issue.comments.iter().find(|c| c.id == comment_id).ok_or_else(JiraError::no_issue)?;
    Ok(Json(render::comment(&sim.origin, &state, issue, comment, 3)).into_response())
}

async fn list_links(
    State(sim): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let links: Vec<Value> = issue
        .remote_links
        .iter()
        .filter(|l| query.get("globalId").is_none_or(|g| l.body["globalId"].as_str() == Some(g)))
        .map(|l| {
            let mut map = obj(l.body.clone());
            map.insert("id".into(), l.id.into());
            map.insert(
                "self".into(),
                format!("{}/rest/api/3/issue/{}/remotelink/{}", sim.origin, issue.key, l.id).into(),
            );
            Value::Object(map)
        })
        .collect();
    Ok(Json(links).into_response())
}

async fn upsert_link(State(sim): Sim, Path(key): Path<String>, body: Bytes) -> ApiResult {
    let body = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let (link_id, created) = state.upsert_remote_link(id, &body)?;
    let issue_key = state.issues.get(&id).map(|i| i.key.clone()).unwrap_or_default();
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let self_url = format!("{}/rest/api/3/issue/{issue_key}/remotelink/{link_id}", sim.origin);
    Ok((status, Json(json!({"id": link_id, "self": self_url}))).into_response())
}

async fn delete_link(
    State(sim): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let Some(global_id) = query.get("globalId") else {
        return Err(JiraError::messages(StatusCode::BAD_REQUEST, "globalId is required"));
    };
    let issue = state.issues.get_mut(&id).ok_or_else(JiraError::no_issue)?;
    let before = issue.remote_links.len();
    issue.remote_links.retain(|l| l.body["globalId"].as_str() != Some(global_id));
    if issue.remote_links.len() == before {
        return Err(JiraError::messages(StatusCode::NOT_FOUND, "No remote link with the given globalId."));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_properties(State(sim): Sim, Path(key): Path<String>) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let keys: Vec<Value> = issue
        .properties
        .keys()
        .map(|k| json!({"self": format!("{}/rest/api/3/issue/{}/properties/{k}", sim.origin, issue.id), "key": k}))
        .collect();
    Ok(Json(json!({"keys": keys})).into_response())
}

fn no_property(prop: &str) -> JiraError {
    JiraError::messages(StatusCode::NOT_FOUND, &format!("The property with key '{prop}' does not exist."))
}

async fn get_property(State(sim): Sim, Path((key, prop)): Path<(String, String)>) -> ApiResult {
    let state = sim.state.lock().await;
    let issue = state.issues.get(&find(&state, &key)?).ok_or_else(JiraError::no_issue)?;
    let value = issue.properties.get(&prop).ok_or_else(|| no_property(&prop))?;
    Ok(Json(json!({"key": prop, "value": value})).into_response())
}

async fn put_property(State(sim): Sim, Path((key, prop)): Path<(String, String)>, body: Bytes) -> ApiResult {
    if body.is_empty() || body.len() > 32_768 {
        return Err(JiraError::messages(
            StatusCode::BAD_REQUEST,
            "The property value must be non-empty JSON of at most 32768 characters.",
        ));
    }
    if prop.len() > 255 {
        return Err(JiraError::messages(StatusCode::BAD_REQUEST, "The property key must be at most 255 characters."));
    }
    let value = parse(&body)?;
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let issue = state.issues.get_mut(&id).ok_or_else(JiraError::no_issue)?;
    let created = issue.properties.insert(prop, value).is_none();
    Ok(if created { StatusCode::CREATED } else { StatusCode::OK }.into_response())
}

async fn delete_property(State(sim): Sim, Path((key, prop)): Path<(String, String)>) -> ApiResult {
    let mut state = sim.state.lock().await;
    let id = find(&state, &key)?;
    let issue = state.issues.get_mut(&id).ok_or_else(JiraError::no_issue)?;
    issue.properties.remove(&prop).ok_or_else(|| no_property(&prop))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user_search(State(sim): Sim, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let Some(needle) = query.get("query").map(|q| q.to_lowercase()) else {
        return Err(JiraError::messages(StatusCode::BAD_REQUEST, "The query parameter 'query' is required."));
    };
    let state = sim.state.lock().await;
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| {
            let name = u.display_name.to_lowercase();
            name.starts_with(&needle)
                || name.split(' ').any(|w| w.starts_with(&needle))
                || u.email.to_lowercase().starts_with(&needle)
        })
        .map(|u| render::user(&sim.origin, u, 3))
        .collect();
    Ok(Json(users).into_response())
}

async fn myself(State(sim): Sim, Extension(caller): Extension<Caller>) -> ApiResult {
    let state = sim.state.lock().await;
    let user = state.user(&caller.0).ok_or_else(JiraError::no_issue)?;
    let mut rendered = render::user(&sim.origin, user, 3);
    rendered["emailAddress"] = user.email.clone().into();
    rendered["timeZone"] = user.time_zone.clone().into();
    rendered["locale"] = "en_US".into();
    Ok(Json(rendered).into_response())
}

async fn search_removed() -> Response {
    (StatusCode::GONE, Json(fixture(render::SEARCH_REMOVED))).into_response()
}

async fn search_get(State(sim): Sim, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let fields = field_list(query.get("fields"));
    let max = query.get("maxResults").and_then(|m| m.parse().ok());
    search(&sim, query.get("jql").cloned().unwrap_or_default(), query.get("nextPageToken").cloned(), max, fields).await
}

async fn search_post(State(sim): Sim, body: Bytes) -> ApiResult {
    let body = parse(&body)?;
    let fields = body
        .get("fields")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
    let jql = body.get("jql").and_then(Value::as_str).unwrap_or_default().to_owned();
    let token = body.get("nextPageToken").and_then(Value::as_str).map(str::to_owned);
    let max = body.get("maxResults").and_then(Value::as_u64).map(|m| m as usize);
    search(&sim, jql, token, max, fields).await
}

/// Cursor-paged search: `{issues, nextPageToken?, isLast}`; `nextPageToken` is absent on the last
/// page and there is no `total`. Without `fields` only ids come back.
async fn search(
    sim: &Inner,
    jql_text: String,
    token: Option<String>,
    max: Option<usize>,
    fields: Option<Vec<String>>,
) -> ApiResult {
    let query = jql::parse(&jql_text)
        .map_err(|e| JiraError::messages(StatusCode::BAD_REQUEST, &format!("Error in the JQL Query: {e}")))?;
    if !query.is_bounded() {
        return Err(JiraError::messages(
            StatusCode::BAD_REQUEST,
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        ));
    }
    let offset = match token {
        None => 0,
        Some(t) => decode_token(&t).ok_or_else(|| {
            JiraError::messages(StatusCode::BAD_REQUEST, "The provided next page token is invalid or expired.")
        })?,
    };
    let max = max.unwrap_or(50).clamp(1, 5000);
    let mut state = sim.state.lock().await;
    // Matching and ordering use the index, which lags behind writes; the fields returned are read fresh.
    state.refresh_index(false);
    let now = chrono::Utc::now();
    let mut hits = Vec::new();
    for indexed in state.index.values() {
        if query.matches(indexed, now).map_err(|e| JiraError::messages(StatusCode::BAD_REQUEST, &e))? {
            hits.push(indexed);
        }
    }
    query.sort(&mut hits);
    let hits: Vec<&Issue> = hits.iter().filter_map(|i| state.issues.get(&i.id)).collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(max)
        .map(|issue| match &fields {
            None => json!({"id": issue.id.to_string()}),
            Some(names) => {
                let mut rendered = render::issue_v3(&sim.origin, &state, issue, Some(names));
                rendered["expand"] = "".into();
                rendered
            }
        })
        .collect();
    let is_last = offset + max >= hits.len();
    let mut response = json!({"issues": page, "isLast": is_last});
    if !is_last {
        response["nextPageToken"] = encode_token(offset + max).into();
    }
    Ok(Json(response).into_response())
}

fn encode_token(offset: usize) -> String {
    hex::encode(format!("sim-page:{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let bytes = hex::decode(token).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("sim-page:")?.parse().ok()
}

/// The seeded issue types: (id, name).
const ISSUE_TYPES: [(&str, &str); 3] = [("10001", "Task"), ("10002", "Bug"), ("10003", "Story")];

fn project_of<'a>(state: &'a JiraState, key: &str) -> Result<&'a super::state::Project, JiraError> {
    state.projects.values().find(|p| p.key.eq_ignore_ascii_case(key) || p.id == key).ok_or_else(|| {
        JiraError::messages(StatusCode::NOT_FOUND, &format!("No project could be found with key '{key}'."))
    })
}

/// `startAt`/`maxResults` paging of a create-metadata list (`PageOf…`: `{<key>, maxResults, startAt, total}`).
fn meta_page(key: &str, all: Vec<Value>, query: &HashMap<String, String>) -> Value {
    let start: usize = query.get("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
    let max: usize = query.get("maxResults").and_then(|s| s.parse().ok()).unwrap_or(50).clamp(1, 200);
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(start).take(max).collect();
    json!({key: page, "maxResults": max, "startAt": start, "total": total})
}

/// `GET /rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes` (`PageOfCreateMetaIssueTypes`).
async fn createmeta_types(
    State(sim): Sim,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let state = sim.state.lock().await;
    project_of(&state, &project)?;
    let types = ISSUE_TYPES
        .iter()
        .map(|(id, name)| {
            json!({"self": format!("{}/rest/api/3/issuetype/{id}", sim.origin), "id": id, "name": name,
                   "description": "", "iconUrl": format!("{}/images/icons/issuetypes/{id}.png", sim.origin),
                   "subtask": false, "hierarchyLevel": 0})
        })
        .collect();
    Ok(Json(meta_page("issueTypes", types, &query)).into_response())
}

/// `GET /rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}`
/// (`PageOfCreateMetaIssueTypeWithField`): the create screen's fields, required ones flagged.
async fn createmeta_fields(
    State(sim): Sim,
    Path((project, type_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let state = sim.state.lock().await;
    project_of(&state, &project)?;
    if !ISSUE_TYPES.iter().any(|(id, _)| *id == type_id) {
        return Err(JiraError::messages(
            StatusCode::NOT_FOUND,
            "Issue type with given ID does not exist or you do not have permission to see it.",
        ));
    }
    let field = |id: &str, name: &str, required: bool, custom: bool| {
        let schema = if custom {
            json!({"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select", "customId": id.trim_start_matches("customfield_").parse::<u64>().unwrap_or(0)})
        } else {
            json!({"type": "string", "system": id})
        };
        json!({"required": required, "schema": schema, "name": name, "key": id, "fieldId": id,
               "hasDefaultValue": id == "priority", "operations": ["set"]})
    };
    let mut fields: Vec<Value> = super::state::CREATE_SCREEN
        .iter()
        .filter(|(id, _, _)| !state.config.create_absent.contains(*id))
        .map(|(id, name, required)| field(id, name, *required, false))
        .collect();
    fields.extend(state.config.create_required.iter().map(|(id, name)| field(id, name, true, true)));
    Ok(Json(meta_page("fields", fields, &query)).into_response())
}

async fn get_project(State(sim): Sim, Path(key): Path<String>) -> ApiResult {
    let state = sim.state.lock().await;
    let project =
        state.projects.values().find(|p| p.key.eq_ignore_ascii_case(&key) || p.id == key).ok_or_else(|| {
            JiraError::messages(StatusCode::NOT_FOUND, &format!("No project could be found with key '{key}'."))
        })?;
    let mut rendered = render::project_ref(&sim.origin, project, 3);
    rendered["components"] = project
        .components
        .iter()
        .map(|(id, name)| json!({"self": format!("{}/rest/api/3/component/{id}", sim.origin), "id": id, "name": name}))
        .collect::<Vec<_>>()
        .into();
    rendered["issueTypes"] = ["Task", "Bug", "Story"]
        .iter()
        .zip(["10001", "10002", "10003"])
        .map(|(name, id)| json!({"self": format!("{}/rest/api/3/issuetype/{id}", sim.origin), "id": id, "name": name, "subtask": false}))
        .collect::<Vec<_>>()
        .into();
    rendered["lead"] = state.users.first().map(|u| render::user(&sim.origin, u, 3)).unwrap_or(Value::Null);
    rendered["assigneeType"] = "UNASSIGNED".into();
    Ok(Json(rendered).into_response())
}
