//! Launchpad, Basecamp's OAuth 2 server: the authorization page a person opens (`GET /authorization/new`),
//! their answer (`POST /authorization`, what the page's buttons send), the token endpoint
//! (`POST /authorization/token`: the authorization-code exchange and the refresh) and
//! `GET /authorization.json`.
//!
//! What it enforces, as Launchpad does (reference/basecamp-api.md §2 and the issues it cites):
//! - the app is registered with a client id, a client secret and its redirect URIs; a `redirect_uri` that
//!   is not one of them gets the page "Provided redirect_uri is not approved" (400; basecamp-cli issue
//!   183), an unknown client id a 400 page, and nothing is redirected;
//! - `response_type=code` (or the legacy `type=web_server`); the person approves on the page, and is sent to
//!   `redirect_uri?code=…&state=…` with `state` exactly as the app sent it, or, on "no",
//!   `?error=access_denied&state=…`; each page is answered once;
//! - a code has 8 characters (bcx-api issue 226), is single use and expires ([`super::Options`]
//!   `oauth_code_ttl`); an unknown, used or expired code is `400 {"error": "expired_verification_code"}`;
//! - the exchange takes `grant_type=authorization_code` (or `type=web_server`) with `client_id`,
//!   `client_secret` (else `401 {"error": "invalid_client"}`), `code`, and the authorization's own
//!   `redirect_uri` (else `400 {"error": "redirect_uri_mismatch"}`, bc-api issue 283); parameters come as a
//!   form body or in the query string; the answer is the documented token response;
//! - the refresh (`grant_type=refresh_token` or `type=refresh`) answers a new access token; an unknown
//!   refresh token is `400 authorization_expired`.
//!
//! The person "at the browser" is [`super::SYNC_BOT`] unless a control call approves as someone else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::ApiError;
use super::state::Token;
use super::{Inner, SYNC_BOT, Simulator, render};
use crate::common::SimError;
use crate::common::json::{fixture, obj};

type Sim = State<Arc<Inner>>;
type Params = Query<BTreeMap<String, String>>;

/// Launchpad's answer to a `redirect_uri` the app did not register.
pub const REDIRECT_NOT_APPROVED: &str = "Provided redirect_uri is not approved";

/// One authorization page shown and not answered yet.
#[derive(Debug, Clone)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
}

/// One code handed out through a redirect.
#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    person_id: i64,
    issued: Instant,
    used: bool,
}

/// The OAuth side of the simulator's state: the app's redirect URIs, open pages and issued codes.
#[derive(Debug, Default)]
pub struct Grants {
    redirect_uris: Vec<String>,
    pending: BTreeMap<String, Pending>,
    /// Authorization ids in the order their pages were shown (the latest is answered by default).
    order: Vec<String>,
    codes: BTreeMap<String, Code>,
}

impl Grants {
    /// The app as registered at start.
    pub fn new(redirect_uris: &[String]) -> Self {
        Self { redirect_uris: redirect_uris.to_vec(), ..Self::default() }
    }
}

fn grants(sim: &Inner) -> std::sync::MutexGuard<'_, Grants> {
    sim.launchpad.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `len` random letters and digits.
fn random_code(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())])).collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The Launchpad routes and their control API.
pub(crate) fn router(sim: Arc<Inner>) -> Router {
    Router::new()
        .route("/authorization/new", get(authorization_new))
        .route("/authorization", post(answer))
        .route("/authorization/token", post(token))
        .route("/authorization.json", get(authorization))
        .route("/_control/oauth/approve", post(control_approve))
        .route("/_control/oauth/redirect_uris", post(control_redirect_uri))
        .route("/_control/oauth/codes/expire", post(control_expire_codes))
        .with_state(sim)
}

/// `GET /authorization/new`: checks the app and shows the page that asks the person.
async fn authorization_new(State(sim): Sim, Query(params): Params) -> Response {
    sim.calls.record("GET", "/authorization/new");
    let response_type = params.get("response_type").or_else(|| params.get("type")).map(String::as_str);
    if !matches!(response_type, Some("code" | "web_server")) {
        return page(
            StatusCode::BAD_REQUEST,
            "Unsupported response type",
            "<p>Ask for response_type=code (or the legacy type=web_server).</p>",
        );
    }
    let client_id = params.get("client_id").cloned().unwrap_or_default();
    if client_id != sim.opts.client_id {
        return page(StatusCode::BAD_REQUEST, "Unknown client", "<p>No integration has this client_id.</p>");
    }
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    let id = random_code(20);
    {
        let mut g = grants(&sim);
        if !g.redirect_uris.contains(&redirect_uri) {
            return page(StatusCode::BAD_REQUEST, REDIRECT_NOT_APPROVED, "");
        }
        g.pending.insert(id.clone(), Pending { client_id, redirect_uri, state: params.get("state").cloned() });
        g.order.push(id.clone());
    }
    let person = sim.state.lock().await.people.get(&SYNC_BOT).cloned().unwrap_or(Value::Null);
    let who = format!(
        "{} ({})",
        person["name"].as_str().unwrap_or("a Basecamp person"),
        person["email_address"].as_str().unwrap_or("")
    );
    page(
        StatusCode::OK,
        "An app would like to access your Basecamp account",
        &format!(
            "<p>Signed in as {who}.</p>\n<form method=\"post\" action=\"/authorization\">\n\
             <input type=\"hidden\" name=\"authorization\" value=\"{id}\">\n\
             <button type=\"submit\" name=\"decision\" value=\"allow\">Yes, I'll allow access</button>\n\
             <button type=\"submit\" name=\"decision\" value=\"deny\">No, don't allow access</button>\n</form>",
            who = escape(&who),
        ),
    )
}

/// Answers page `id` (the latest when `None`) as `person`: the URL the browser is sent to.
fn decide(sim: &Inner, id: Option<&str>, person_id: i64, allow: bool) -> Result<String, SimError> {
    let mut g = grants(sim);
    let id = match id {
        Some(id) => id.to_owned(),
        None => g.order.iter().rev().find(|i| g.pending.contains_key(*i)).cloned().unwrap_or_default(),
    };
    let pending = g.pending.remove(&id).ok_or_else(|| SimError::NotFound(format!("authorization {id:?}")))?;
    let mut location = url::Url::parse(&pending.redirect_uri)
        .map_err(|e| SimError::Invalid(format!("redirect_uri {:?}: {e}", pending.redirect_uri)))?;
    {
        let mut query = location.query_pairs_mut();
        if allow {
            let code = random_code(8);
            g.codes.insert(
                code.clone(),
                Code {
                    client_id: pending.client_id.clone(),
                    redirect_uri: pending.redirect_uri.clone(),
                    person_id,
                    issued: Instant::now(),
                    used: false,
                },
            );
            query.append_pair("code", &code);
        } else {
            query.append_pair("error", "access_denied");
        }
        if let Some(state) = &pending.state {
            query.append_pair("state", state);
        }
    }
    Ok(location.to_string())
}

struct Answer {
    authorization: String,
    decision: String,
}

/// `POST /authorization`: the page's buttons. Redirects the browser back to the app.
async fn answer(State(sim): Sim, body: Bytes) -> Response {
    sim.calls.record("POST", "/authorization");
    let Ok(form) = parse_answer(&body) else {
        return page(StatusCode::BAD_REQUEST, "Bad request", "<p>Answer with the page's buttons.</p>");
    };
    match decide(&sim, Some(&form.authorization), SYNC_BOT, form.decision == "allow") {
        Ok(location) => redirect(&location),
        Err(_) => page(StatusCode::NOT_FOUND, "This authorization request is no longer valid", ""),
    }
}

fn parse_answer(body: &[u8]) -> Result<Answer, ()> {
    let fields: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    match (fields.get("authorization"), fields.get("decision")) {
        (Some(a), Some(d)) => Ok(Answer { authorization: a.clone(), decision: d.clone() }),
        _ => Err(()),
    }
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => page(StatusCode::INTERNAL_SERVER_ERROR, "Bad redirect", ""),
    }
}

fn oauth_error(status: StatusCode, error: &str) -> ApiError {
    ApiError(status, json!({"error": error}))
}

/// `POST /authorization/token`: the code exchange and the refresh; parameters in the query string or a
/// form body.
async fn token(State(sim): Sim, Query(mut params): Params, body: Bytes) -> Result<Response, ApiError> {
    sim.calls.record("POST", "/authorization/token");
    for (key, value) in url::form_urlencoded::parse(&body) {
        params.insert(key.into_owned(), value.into_owned());
    }
    let grant = params.get("grant_type").or_else(|| params.get("type")).map(String::as_str).unwrap_or_default();
    let exchange = match grant {
        "authorization_code" | "web_server" => true,
        "refresh_token" | "refresh" => false,
        _ => return Err(oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type")),
    };
    let client_ok = params.get("client_id") == Some(&sim.opts.client_id)
        && params.get("client_secret") == Some(&sim.opts.client_secret);
    if !client_ok {
        return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    let (person_id, refresh) = if exchange {
        let code = params.get("code").cloned().unwrap_or_default();
        let mut g = grants(&sim);
        let ttl = sim.opts.oauth_code_ttl;
        let Some(found) = g.codes.get_mut(&code).filter(|c| !c.used && c.issued.elapsed() < ttl) else {
            return Err(oauth_error(StatusCode::BAD_REQUEST, "expired_verification_code"));
        };
        if found.client_id != sim.opts.client_id {
            return Err(oauth_error(StatusCode::BAD_REQUEST, "expired_verification_code"));
        }
        if params.get("redirect_uri") != Some(&found.redirect_uri) {
            return Err(oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch"));
        }
        found.used = true;
        (found.person_id, format!("bc-sim-refresh-{}", uuid::Uuid::new_v4().simple()))
    } else {
        let refresh = params.get("refresh_token").cloned().unwrap_or_default();
        let Some(person_id) = sim.state.lock().await.refresh_tokens.get(&refresh).copied() else {
            return Err(ApiError(StatusCode::BAD_REQUEST, json!({"status": 400, "error": "authorization_expired"})));
        };
        (person_id, refresh)
    };
    let access = format!("bc-sim-access-{}", uuid::Uuid::new_v4().simple());
    {
        let mut state = sim.state.lock().await;
        state.tokens.insert(access.clone(), Token { person_id, expired: false });
        state.refresh_tokens.insert(refresh.clone(), person_id);
    }
    let mut response = obj(fixture(render::OAUTH_TOKEN));
    response.insert("access_token".into(), access.into());
    response.insert("refresh_token".into(), refresh.into());
    Ok(Json(Value::Object(response)).into_response())
}

/// `GET /authorization.json`: identity and accounts for a bearer token.
async fn authorization(State(sim): Sim, headers: HeaderMap) -> Result<Response, ApiError> {
    sim.calls.record("GET", "/authorization.json");
    let unverified = || oauth_error(StatusCode::UNAUTHORIZED, "OAuth token could not be verified");
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unverified)?;
    let state = sim.state.lock().await;
    let person_id = match state.tokens.get(token) {
        Some(found) if !found.expired => found.person_id,
        _ => return Err(unverified()),
    };
    let person = render::person(&state, person_id);
    let name = person["name"].as_str().unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let mut response = obj(fixture(render::OAUTH_AUTHORIZATION));
    let expires = chrono::Utc::now() + chrono::Duration::days(14);
    response.insert("expires_at".into(), expires.to_rfc3339().into());
    response.insert(
        "identity".into(),
        json!({"id": person_id, "first_name": first, "last_name": last, "email_address": person["email_address"]}),
    );
    response.insert(
        "accounts".into(),
        json!([{
            "product": "bc3", "id": sim.opts.account_id, "name": "Honcho Design",
            "href": sim.ctx.base_url(), "app_href": format!("{}/{}", sim.ctx.app_origin, sim.opts.account_id),
        }]),
    );
    Ok(Json(Value::Object(response)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApproveInput {
    /// The page to answer (default: the latest shown).
    authorization: Option<String>,
    /// Who approves (default: the integration's person).
    person_id: Option<i64>,
    /// Say no instead.
    deny: bool,
}

fn control_answer(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(SimError::NotFound(what)) => (StatusCode::NOT_FOUND, Json(json!({"error": what}))).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({"error": error.to_string()}))).into_response(),
    }
}

/// `POST /_control/oauth/approve`: answers a page as a person would; returns where the browser goes.
async fn control_approve(State(sim): Sim, body: Bytes) -> Response {
    let input: ApproveInput = if body.is_empty() {
        ApproveInput::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(e) => return control_answer(Err(SimError::Invalid(e.to_string()))),
        }
    };
    let person = input.person_id.unwrap_or(SYNC_BOT);
    control_answer(
        decide(&sim, input.authorization.as_deref(), person, !input.deny).map(|location| json!({"location": location})),
    )
}

#[derive(Debug, Deserialize)]
struct RedirectInput {
    uri: String,
}

/// `POST /_control/oauth/redirect_uris`: adds a redirect URI to the app's registration.
async fn control_redirect_uri(State(sim): Sim, Json(input): Json<RedirectInput>) -> Response {
    grants(&sim).redirect_uris.push(input.uri);
    control_answer(Ok(json!({"redirect_uris": grants(&sim).redirect_uris})))
}

/// `POST /_control/oauth/codes/expire`: every code handed out so far expires.
async fn control_expire_codes(State(sim): Sim) -> Response {
    control_answer(Ok(json!({"expired": expire_codes(&sim)})))
}

fn expire_codes(sim: &Inner) -> usize {
    let mut g = grants(sim);
    let ttl = sim.opts.oauth_code_ttl;
    let mut n = 0;
    for code in g.codes.values_mut() {
        if let Some(past) = Instant::now().checked_sub(ttl) {
            code.issued = past;
            n += 1;
        }
    }
    n
}

impl Simulator {
    /// Adds `uri` to the OAuth app's registered redirect URIs (as editing the app at Launchpad does).
    pub fn register_redirect_uri(&self, uri: &str) {
        grants(&self.inner).redirect_uris.push(uri.to_owned());
    }

    /// Answers an authorization page (the latest shown when `authorization` is `None`) as `person`:
    /// approves, or denies when `allow` is false. Returns the URL the browser is sent to.
    pub fn answer_authorization(
        &self,
        authorization: Option<&str>,
        person: i64,
        allow: bool,
    ) -> Result<String, SimError> {
        decide(&self.inner, authorization, person, allow)
    }

    /// Makes every authorization code handed out so far expired.
    pub fn expire_authorization_codes(&self) -> usize {
        expire_codes(&self.inner)
    }
}
