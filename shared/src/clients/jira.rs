//! Jira Cloud REST v3 client.
//!
//! The base URL is either the site (`https://<site>.atlassian.net`, Basic `email:api-token`) or the
//! gateway (`https://api.atlassian.com/ex/jira/{cloudId}`, for scoped tokens and OAuth Bearer); paths
//! are the same below both. Rich text goes out as ADF ([`crate::richtext`]); statuses change only
//! through transitions chosen by `statusCategory.key`; search is `/rest/api/3/search/jql` with
//! cursor paging. Errors: 429 → `RateLimited` (the body may be an HTML page and is never parsed),
//! an `ErrorCollection` naming one field → `FieldRejected`, 401 → `AuthRequired`, 403 → `Forbidden`,
//! 404 → `None`/`NotFound`, 5xx → `Transient`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::http::{self, BaseUrl, Credentials, HttpSettings, Reply, clip, nullable};
use super::{ClientError, found};
use crate::domain::JiraCommentId;
use crate::domain::TrackerTarget;
use crate::domain::{
    DevItem, DevItemRef, JiraAccountId, JiraIssueId, JiraKey, NewDevItem, Priority, StatusCategory, SyncMarker,
};
use crate::ports::{ApiError, DevItemPatch, RemoteLink, TrackerApi, TrackerComment};
use crate::richtext;

/// The issue property holding the sync marker (`{route, todo}`) on items campbridge created.
pub const MARKER_PROPERTY: &str = "campbridge";

/// The fields a [`DevItem`] is read from.
pub const ITEM_FIELDS: &[&str] = &[
    "summary",
    "description",
    "status",
    "assignee",
    "priority",
    "labels",
    "components",
    "duedate",
    "updated",
    "customfield_10021",
];

/// How the Jira client is set up.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    /// The site URL or the gateway URL `https://api.atlassian.com/ex/jira/{cloudId}`.
    pub base_url: BaseUrl,
    /// Basic `email:api-token` on the site; Basic (scoped token) or Bearer (OAuth) on the gateway.
    pub auth: Credentials,
    /// Where people open issues (`{browse_url}/browse/KEY`); defaults to `base_url`. Set it to the
    /// site URL when `base_url` is the gateway.
    pub browse_url: Option<BaseUrl>,
    pub http: HttpSettings,
    /// The delay reported for a 429 that came without `Retry-After`.
    pub default_retry_after: Duration,
}

impl JiraConfig {
    pub fn new(base_url: BaseUrl, auth: Credentials, http: HttpSettings) -> Self {
        Self { base_url, auth, browse_url: None, http, default_retry_after: Duration::from_secs(10) }
    }
}

/// A Jira Cloud REST v3 client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: http::Http,
    config: JiraConfig,
}

// ---------------------------------------------------------------------------------------------
// Wire types (lenient: Jira omits or nulls fields freely, and docs examples are partial).

/// An issue as `GET /issue/{id}` or search returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub id: String,
    pub key: String,
    #[serde(rename = "self", default)]
    pub self_url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: IssueFields,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueFields {
    #[serde(default)]
    pub summary: Option<String>,
    /// ADF on v3; a plain string on v2 and in webhooks.
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub assignee: Option<User>,
    #[serde(default)]
    pub priority: Option<NamedRef>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub components: Vec<NamedRef>,
    #[serde(default)]
    pub duedate: Option<String>,
    /// `2018-06-28T14:12:29.014-0700` on real sites (a docs example has a number here).
    #[serde(default)]
    pub updated: Option<Value>,
    #[serde(default)]
    pub project: Option<NamedRef>,
    #[serde(default)]
    pub issuetype: Option<NamedRef>,
    /// Jira Cloud's "Flagged" field ([`FLAGGED_FIELD`]): `[{"value": "Impediment"}]` when flagged.
    #[serde(rename = "customfield_10021", default)]
    pub flagged: Option<Value>,
}

/// The id of Jira Cloud's default "Flagged" field. Sites that recreated the field use another id; those
/// still get blocker signals from a Blocked status or a `blocked` label.
pub const FLAGGED_FIELD: &str = "customfield_10021";

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "statusCategory", default)]
    pub status_category: Option<StatusCategoryRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusCategoryRef {
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `{id?, key?, name?}`: priorities, components, projects, issue types.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NamedRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    #[serde(rename = "accountId", default)]
    pub account_id: Option<String>,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
    /// Often absent or null (profile privacy).
    #[serde(rename = "emailAddress", default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Transition {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Missing in some real responses.
    #[serde(default)]
    pub to: Option<Status>,
    #[serde(rename = "hasScreen", default)]
    pub has_screen: bool,
    #[serde(rename = "isGlobal", default)]
    pub is_global: bool,
    #[serde(rename = "isAvailable", default)]
    pub is_available: Option<bool>,
}

impl Transition {
    fn target_category(&self) -> Option<&str> {
        self.to.as_ref()?.status_category.as_ref().map(|c| c.key.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Transitions {
    #[serde(default, deserialize_with = "nullable")]
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: String,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct CommentsPage {
    #[serde(rename = "startAt", default)]
    start_at: u64,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    comments: Vec<Comment>,
}

/// One page of `/rest/api/3/search/jql`. The last page has no `nextPageToken` (absent, not null).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchPage {
    #[serde(default, deserialize_with = "nullable")]
    pub issues: Vec<Issue>,
    #[serde(rename = "nextPageToken", default)]
    pub next_page_token: Option<String>,
    #[serde(rename = "isLast", default)]
    pub is_last: Option<bool>,
}

/// An issue type of a project's create metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateMetaIssueType {
    pub id: String,
    pub name: String,
}

/// One field of a create screen (`FieldCreateMetadata`).
#[derive(Debug, Clone, Deserialize)]
pub struct CreateMetaField {
    #[serde(rename = "fieldId")]
    pub field_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(rename = "hasDefaultValue", default)]
    pub has_default_value: bool,
}

/// `201` from issue create.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
    #[serde(rename = "self", default)]
    pub self_url: Option<String>,
}

/// Jira's `ErrorCollection`, or the gateway's `{code, message}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorMessages", default, deserialize_with = "nullable")]
    error_messages: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    errors: BTreeMap<String, Value>,
    #[serde(default)]
    message: Option<String>,
}

// ---------------------------------------------------------------------------------------------

impl JiraClient {
    pub fn new(config: JiraConfig) -> Result<Self, ClientError> {
        Ok(Self { http: http::Http::new(&config.http, "jira")?, config })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.config.base_url.join(path)
    }

    async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, ClientError> {
        // Writes to one issue also count against its own budget (Jira's per-issue write limit).
        let issue = (method != Method::GET).then(|| written_issue(&url)).flatten();
        self.config.http.pace(issue.as_deref()).await?;
        let mut rb = self.http.request(method, url).header(reqwest::header::ACCEPT, "application/json");
        rb = self.config.auth.apply(rb);
        if let Some(body) = body {
            rb = rb.json(body);
        }
        let reply = self.http.send(rb).await?;
        if reply.status.is_success() { Ok(reply) } else { Err(error_from(&reply, self.config.default_retry_after)) }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        self.call(Method::GET, url, None).await?.json()
    }

    /// `GET /rest/api/3/myself`: who the credentials act as.
    pub async fn myself(&self) -> Result<User, ClientError> {
        self.get_json(self.url("rest/api/3/myself")?).await
    }

    /// `GET /rest/api/3/user/search?query=`: active users whose name or e-mail starts with `query`.
    pub async fn search_users(&self, query: &str) -> Result<Vec<User>, ClientError> {
        let mut url = self.url("rest/api/3/user/search")?;
        url.query_pairs_mut().append_pair("query", query);
        self.get_json(url).await
    }

    /// `POST /rest/api/3/issue` with a full create body (`{"fields":…, "update"?, "properties"?}`).
    pub async fn create_issue(&self, body: &Value) -> Result<CreatedIssue, ClientError> {
        self.call(Method::POST, self.url("rest/api/3/issue")?, Some(body)).await?.json()
    }

    /// `GET /rest/api/3/issue/{idOrKey}?fields=…`. `Ok(None)` when it is gone or not visible.
    pub async fn get_issue(&self, id_or_key: &str, fields: &[&str]) -> Result<Option<Issue>, ClientError> {
        let mut url = self.url(&format!("rest/api/3/issue/{}", segment(id_or_key)))?;
        if !fields.is_empty() {
            url.query_pairs_mut().append_pair("fields", &fields.join(","));
        }
        found(self.get_json(url).await)
    }

    /// `PUT /rest/api/3/issue/{idOrKey}`: one partial edit (`fields` set values, `update` holds
    /// add/remove operations; a field may be in one of them only).
    pub async fn edit_issue(&self, id_or_key: &str, body: &Value) -> Result<(), ClientError> {
        self.call(Method::PUT, self.url(&format!("rest/api/3/issue/{}", segment(id_or_key)))?, Some(body)).await?;
        Ok(())
    }

    /// `GET /rest/api/3/issue/{idOrKey}/transitions`.
    pub async fn transitions(&self, id_or_key: &str) -> Result<Vec<Transition>, ClientError> {
        let url = self.url(&format!("rest/api/3/issue/{}/transitions", segment(id_or_key)))?;
        Ok(self.get_json::<Transitions>(url).await?.transitions)
    }

    /// `POST /rest/api/3/issue/{idOrKey}/transitions` with `{"transition":{"id"}, "fields"?}`.
    pub async fn do_transition(&self, id_or_key: &str, id: &str, fields: Option<&Value>) -> Result<(), ClientError> {
        let mut body = json!({"transition": {"id": id}});
        if let Some(fields) = fields {
            body["fields"] = fields.clone();
        }
        let url = self.url(&format!("rest/api/3/issue/{}/transitions", segment(id_or_key)))?;
        self.call(Method::POST, url, Some(&body)).await?;
        Ok(())
    }

    /// Moves the issue into a status of `category`, through the transition [`choose_transition`]
    /// picks. When the transition screen requires a resolution (a 400 naming `resolution`), retries
    /// once with `resolution = Done`. When no transition reaches the category but the issue is
    /// already in it, does nothing; otherwise `NoTransition`. Returns the transition taken, if any.
    pub async fn transition_to(
        &self,
        id_or_key: &str,
        category: StatusCategory,
    ) -> Result<Option<Transition>, ClientError> {
        let transitions = self.transitions(id_or_key).await?;
        let Some(chosen) = choose_transition(&transitions, category).cloned() else {
            let current = self.get_issue(id_or_key, &["status"]).await?;
            let already = current
                .and_then(|i| i.fields.status)
                .and_then(|s| s.status_category)
                .is_some_and(|c| StatusCategory::from_jira_key(&c.key) == category);
            return if already { Ok(None) } else { Err(ClientError::NoTransition(category)) };
        };
        match self.do_transition(id_or_key, &chosen.id, None).await {
            Err(e) if names_resolution(&e) => {
                let fields = json!({"resolution": {"name": "Done"}});
                self.do_transition(id_or_key, &chosen.id, Some(&fields)).await?;
            }
            other => other?,
        }
        Ok(Some(chosen))
    }

    /// `POST /rest/api/3/issue/{idOrKey}/comment` with an ADF body.
    pub async fn add_comment(&self, id_or_key: &str, adf: &Value) -> Result<Comment, ClientError> {
        let url = self.url(&format!("rest/api/3/issue/{}/comment", segment(id_or_key)))?;
        self.call(Method::POST, url, Some(&json!({"body": adf}))).await?.json()
    }

    /// `PUT /rest/api/3/issue/{idOrKey}/comment/{id}` with an ADF body.
    pub async fn update_comment(&self, id_or_key: &str, comment_id: &str, adf: &Value) -> Result<Comment, ClientError> {
        let url = self.url(&format!("rest/api/3/issue/{}/comment/{}", segment(id_or_key), segment(comment_id)))?;
        self.call(Method::PUT, url, Some(&json!({"body": adf}))).await?.json()
    }

    /// All comments, oldest first (offset paging over `startAt`/`total`).
    pub async fn comments(&self, id_or_key: &str) -> Result<Vec<Comment>, ClientError> {
        let mut all = Vec::new();
        for _ in 0..http::MAX_PAGES {
            let mut url = self.url(&format!("rest/api/3/issue/{}/comment", segment(id_or_key)))?;
            url.query_pairs_mut()
                .append_pair("startAt", &all.len().to_string())
                .append_pair("maxResults", "100")
                .append_pair("orderBy", "created");
            let page: CommentsPage = self.get_json(url).await?;
            let got = page.comments.len() as u64;
            all.extend(page.comments);
            let total = page.total.unwrap_or(0);
            if got == 0 || page.start_at + got >= total {
                return Ok(all);
            }
        }
        Err(ClientError::Decode("comment paging did not end".into()))
    }

    /// `POST /rest/api/3/issue/{idOrKey}/remotelink`: creates, or updates the link with the same
    /// `globalId` (fields left out of an update are cleared, so always send the whole link).
    pub async fn upsert_remote_link(&self, id_or_key: &str, link: &RemoteLink) -> Result<(), ClientError> {
        let body = json!({
            "globalId": link.global_id,
            "application": {"type": "com.basecamp", "name": "Basecamp"},
            "object": {"url": link.url, "title": link.title},
        });
        let url = self.url(&format!("rest/api/3/issue/{}/remotelink", segment(id_or_key)))?;
        self.call(Method::POST, url, Some(&body)).await?;
        Ok(())
    }

    /// `GET /rest/api/3/issue/{idOrKey}/properties/{key}` → the value, or `None` when unset.
    pub async fn get_property(&self, id_or_key: &str, key: &str) -> Result<Option<Value>, ClientError> {
        let url = self.url(&format!("rest/api/3/issue/{}/properties/{}", segment(id_or_key), segment(key)))?;
        let body: Option<Value> = found(self.get_json(url).await)?;
        Ok(body.and_then(|mut b| b.get_mut("value").map(Value::take)))
    }

    /// `PUT /rest/api/3/issue/{idOrKey}/properties/{key}` (create or replace; ≤ 32 768 chars of JSON).
    pub async fn put_property(&self, id_or_key: &str, key: &str, value: &Value) -> Result<(), ClientError> {
        let url = self.url(&format!("rest/api/3/issue/{}/properties/{}", segment(id_or_key), segment(key)))?;
        self.call(Method::PUT, url, Some(value)).await?;
        Ok(())
    }

    /// Every item under `key` of a `startAt`/`maxResults`/`total` paged create-metadata list at `path`.
    async fn meta_pages<T: serde::de::DeserializeOwned>(&self, path: &str, key: &str) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        for _ in 0..http::MAX_PAGES {
            let mut url = self.url(path)?;
            url.query_pairs_mut().append_pair("startAt", &all.len().to_string()).append_pair("maxResults", "50");
            let page: Value = self.get_json(url).await?;
            let items: Vec<T> = serde_json::from_value(page.get(key).cloned().unwrap_or(Value::Array(Vec::new())))
                .map_err(|e| ClientError::Decode(format!("create metadata: {e}")))?;
            let got = items.len();
            all.extend(items);
            let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
            if got == 0 || all.len() >= total {
                return Ok(all);
            }
        }
        Err(ClientError::Decode("create metadata paging did not end".into()))
    }

    /// `GET /rest/api/3/issue/createmeta/{project}/issuetypes`: the issue types one can create there.
    pub async fn create_meta_issue_types(&self, project: &str) -> Result<Vec<CreateMetaIssueType>, ClientError> {
        self.meta_pages(&format!("rest/api/3/issue/createmeta/{}/issuetypes", segment(project)), "issueTypes").await
    }

    /// `GET /rest/api/3/issue/createmeta/{project}/issuetypes/{id}`: the create screen's fields.
    pub async fn create_meta_fields(
        &self,
        project: &str,
        issue_type: &str,
    ) -> Result<Vec<CreateMetaField>, ClientError> {
        let path = format!("rest/api/3/issue/createmeta/{}/issuetypes/{}", segment(project), segment(issue_type));
        self.meta_pages(&path, "fields").await
    }

    /// One page of `POST /rest/api/3/search/jql`.
    pub async fn search_page(
        &self,
        jql: &str,
        fields: &[&str],
        max_results: u32,
        next_page_token: Option<&str>,
    ) -> Result<SearchPage, ClientError> {
        let mut body = json!({"jql": jql, "fields": fields, "maxResults": max_results});
        if let Some(token) = next_page_token {
            body["nextPageToken"] = json!(token);
        }
        self.call(Method::POST, self.url("rest/api/3/search/jql")?, Some(&body)).await?.json()
    }

    /// Every issue `jql` matches, following `nextPageToken` until `isLast` (or no token). A server
    /// that repeats a token is an error rather than a loop.
    pub async fn search(&self, jql: &str, fields: &[&str], page_size: u32) -> Result<Vec<Issue>, ClientError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..http::MAX_PAGES {
            let page = self.search_page(jql, fields, page_size, token.as_deref()).await?;
            all.extend(page.issues);
            match page.next_page_token {
                Some(next) if page.is_last != Some(true) => {
                    if token.as_deref() == Some(next.as_str()) {
                        return Err(ClientError::Decode("search repeated its nextPageToken".into()));
                    }
                    token = Some(next);
                }
                _ => return Ok(all),
            }
        }
        Err(ClientError::Decode("search paging did not end".into()))
    }

    /// Maps an issue to the engine's [`DevItem`] (description ADF → canonical HTML).
    pub fn to_dev_item(&self, issue: &Issue) -> Result<DevItem, ClientError> {
        let browse = self.config.browse_url.as_ref().unwrap_or(&self.config.base_url);
        let url = browse.join(&format!("browse/{}", issue.key))?.to_string();
        dev_item(issue, url)
    }
}

/// Picks the transition to take to reach `category`: only transitions whose target status is in
/// that category (by `statusCategory.key`, never by name) and not marked unavailable; among several,
/// one without a screen first, then a global one, then the first listed.
pub fn choose_transition(transitions: &[Transition], category: StatusCategory) -> Option<&Transition> {
    let mut candidates: Vec<&Transition> = transitions
        .iter()
        .filter(|t| t.is_available != Some(false))
        .filter(|t| t.target_category() == Some(category.as_jira_key()))
        .collect();
    candidates.sort_by_key(|t| (t.has_screen, !t.is_global));
    candidates.first().copied()
}

fn names_resolution(e: &ClientError) -> bool {
    match e {
        ClientError::FieldRejected { field, message } => {
            field == "resolution" || message.to_ascii_lowercase().contains("resolution")
        }
        ClientError::Invalid(m) => m.to_ascii_lowercase().contains("resolution"),
        _ => false,
    }
}

/// The issue a request under `…/issue/{idOrKey}/…` writes to, for the per-issue budget. The engine always
/// names issues by id, so one issue has one key here.
fn written_issue(url: &Url) -> Option<String> {
    let mut segments = url.path_segments()?;
    segments.find(|s| *s == "issue")?;
    segments.next().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Escapes one path segment (keys and ids are safe, but property keys are caller-chosen).
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A JQL string literal.
pub fn jql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn error_from(reply: &Reply, default_retry_after: Duration) -> ClientError {
    let status = reply.status.as_u16();
    if status == 429 {
        return ClientError::RateLimited { retry_after: reply.retry_after().unwrap_or(default_retry_after) };
    }
    let body: ErrorBody = reply.json_value().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let mut parts: Vec<String> = body.error_messages.clone();
    parts.extend(body.errors.iter().map(|(f, m)| format!("{f}: {}", value_text(m))));
    parts.extend(body.message.clone());
    let message = if parts.is_empty() {
        format!("HTTP {status} {}", reply.status.canonical_reason().unwrap_or(""))
    } else {
        clip(&parts.join("; "))
    };
    match status {
        401 => ClientError::AuthRequired(format!("Jira rejected the credentials: {message}")),
        403 => ClientError::Forbidden(message),
        404 => ClientError::NotFound(message),
        410 => ClientError::Gone(message),
        409 => ClientError::Transient(message),
        400 | 422 => match body.errors.iter().next() {
            Some((field, m)) if body.errors.len() == 1 => {
                ClientError::FieldRejected { field: field.clone(), message: clip(&value_text(m)) }
            }
            // Several fields the screen lacks (Jira names them all at once): the first, so a caller that
            // can do without each one leaves them out one by one.
            Some((field, m)) if body.errors.values().all(|m| value_text(m).contains(NOT_ON_SCREEN)) => {
                ClientError::FieldRejected { field: field.clone(), message: clip(&value_text(m)) }
            }
            _ => ClientError::Invalid(message),
        },
        s if s >= 500 => ClientError::Transient(message),
        _ => ClientError::Invalid(message),
    }
}

/// What Jira says of a field that is not on the create or edit screen (or does not exist).
const NOT_ON_SCREEN: &str = "It is not on the appropriate screen";

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_jira_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn description_html(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => richtext::text_to_html(s),
        Some(adf) => richtext::adf_to_html(adf),
    }
}

fn dev_item(issue: &Issue, url: String) -> Result<DevItem, ClientError> {
    let id = JiraIssueId::parse(&issue.id).map_err(|e| ClientError::Decode(e.to_string()))?;
    let key = JiraKey::parse(&issue.key).map_err(|e| ClientError::Decode(e.to_string()))?;
    let f = &issue.fields;
    let updated_at = f
        .updated
        .as_ref()
        .and_then(parse_jira_time)
        .ok_or_else(|| ClientError::Decode(format!("issue {} has no readable `updated`", issue.key)))?;
    let status = f.status.as_ref();
    Ok(DevItem {
        item: DevItemRef::Jira { id, key },
        summary: f.summary.clone().unwrap_or_default(),
        description: description_html(f.description.as_ref()),
        status: status
            .and_then(|s| s.status_category.as_ref())
            .map_or(StatusCategory::New, |c| StatusCategory::from_jira_key(&c.key)),
        status_name: status.and_then(|s| s.name.clone()).unwrap_or_default(),
        assignee: f.assignee.as_ref().and_then(|a| a.account_id.clone()).map(JiraAccountId),
        priority: f.priority.as_ref().and_then(|p| p.name.as_deref()).and_then(Priority::from_jira_name),
        labels: f.labels.iter().cloned().collect(),
        components: f.components.iter().filter_map(|c| c.name.clone()).collect(),
        due: f.duedate.as_deref().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        url,
        updated_at,
        flagged: f.flagged.as_ref().and_then(Value::as_array).is_some_and(|a| !a.is_empty()),
    })
}

/// The ADF for a description, or `null` when it is empty (Jira shows no description then).
fn description_adf(html: &str) -> Value {
    let adf = richtext::html_to_adf(html);
    let empty = adf.get("content").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if empty { Value::Null } else { adf }
}

/// The create body for `draft` on `project`/`issue_type`: the marker label joins the draft's labels
/// and the marker is stored as the `campbridge` issue property in the same request.
pub fn create_body(project: &str, issue_type: &str, draft: &NewDevItem) -> Value {
    let mut labels = draft.labels.clone();
    labels.insert(draft.marker.label());
    let mut fields = json!({
        "project": {"key": project},
        "issuetype": {"name": issue_type},
        "summary": draft.summary,
        "labels": labels,
    });
    let description = description_adf(&draft.description);
    if !description.is_null() {
        fields["description"] = description;
    }
    if let Some(a) = &draft.assignee {
        fields["assignee"] = json!({"accountId": a.0});
    }
    if let Some(p) = draft.priority {
        fields["priority"] = json!({"name": p.jira_name()});
    }
    if let Some(d) = draft.due {
        fields["duedate"] = json!(d.format("%Y-%m-%d").to_string());
    }
    if !draft.components.is_empty() {
        fields["components"] = json!(draft.components.iter().map(|c| json!({"name": c})).collect::<Vec<_>>());
    }
    for (id, value) in &draft.fields {
        fields[id.as_str()] = value.clone();
    }
    json!({
        "fields": fields,
        "properties": [{"key": MARKER_PROPERTY, "value": marker_value(&draft.marker)}],
    })
}

fn marker_value(marker: &SyncMarker) -> Value {
    json!({"route": marker.route.as_str(), "todo": marker.todo.0})
}

/// The single edit request for every field change in `patch` (`None` when there is none).
pub fn edit_body(patch: &DevItemPatch) -> Option<Value> {
    if !patch.has_field_edits() {
        return None;
    }
    let mut fields = serde_json::Map::new();
    if let Some(s) = &patch.summary {
        fields.insert("summary".into(), json!(s));
    }
    if let Some(d) = &patch.description {
        fields.insert("description".into(), description_adf(d));
    }
    if let Some(a) = &patch.assignee {
        fields.insert("assignee".into(), a.as_ref().map_or(Value::Null, |a| json!({"accountId": a.0})));
    }
    if let Some(d) = &patch.due {
        fields.insert("duedate".into(), d.map_or(Value::Null, |d| json!(d.format("%Y-%m-%d").to_string())));
    }
    if let Some(p) = &patch.priority {
        fields.insert("priority".into(), json!({"name": p.jira_name()}));
    }
    let mut update = serde_json::Map::new();
    let labels: Vec<Value> = patch
        .labels_add
        .iter()
        .map(|l| json!({"add": l}))
        .chain(patch.labels_remove.iter().map(|l| json!({"remove": l})))
        .collect();
    if !labels.is_empty() {
        update.insert("labels".into(), Value::Array(labels));
    }
    let components: Vec<Value> = patch
        .components_add
        .iter()
        .map(|c| json!({"add": {"name": c}}))
        .chain(patch.components_remove.iter().map(|c| json!({"remove": {"name": c}})))
        .collect();
    if !components.is_empty() {
        update.insert("components".into(), Value::Array(components));
    }
    let mut body = serde_json::Map::new();
    if !fields.is_empty() {
        body.insert("fields".into(), Value::Object(fields));
    }
    if !update.is_empty() {
        body.insert("update".into(), Value::Object(update));
    }
    Some(Value::Object(body))
}

fn issue_path(item: &DevItemRef) -> String {
    match item {
        DevItemRef::Jira { id, .. } => id.as_str().to_owned(),
    }
}

#[async_trait]
impl TrackerApi for JiraClient {
    async fn get_item(&self, item: &DevItemRef) -> Result<Option<DevItem>, ApiError> {
        match self.get_issue(&issue_path(item), ITEM_FIELDS).await? {
            Some(issue) => Ok(Some(self.to_dev_item(&issue)?)),
            None => Ok(None),
        }
    }

    async fn find_by_marker(&self, target: &TrackerTarget, marker: &SyncMarker) -> Result<Option<DevItem>, ApiError> {
        let TrackerTarget::Jira { project, .. } = target;
        let jql = format!(
            "project = {} AND labels = {} ORDER BY created ASC",
            jql_string(project.as_str()),
            jql_string(&marker.label())
        );
        let page = self.search_page(&jql, ITEM_FIELDS, 10, None).await?;
        match page.issues.first() {
            Some(issue) => Ok(Some(self.to_dev_item(issue)?)),
            None => Ok(None),
        }
    }

    async fn create_item(&self, target: &TrackerTarget, draft: &NewDevItem) -> Result<DevItem, ApiError> {
        let TrackerTarget::Jira { project, issue_type } = target;
        let created = self.create_issue(&create_body(project.as_str(), issue_type, draft)).await?;
        // The issue exists from here on: a failed read is not a refusal of the create (the engine then
        // finds the issue by its marker instead of creating another).
        let issue = match self.get_issue(&created.id, ITEM_FIELDS).await {
            Ok(Some(issue)) => issue,
            Ok(None) => {
                return Err(ClientError::Transient(format!("created issue {} is not readable yet", created.key)).into());
            }
            Err(e) => {
                return Err(ClientError::Transient(format!(
                    "created issue {} but reading it failed: {e}",
                    created.key
                ))
                .into());
            }
        };
        Ok(self.to_dev_item(&issue)?)
    }

    async fn update_item(&self, item: &DevItemRef, patch: &DevItemPatch) -> Result<(), ApiError> {
        let path = issue_path(item);
        if let Some(body) = edit_body(patch) {
            self.edit_issue(&path, &body).await?;
        }
        if let Some(category) = patch.status {
            self.transition_to(&path, category).await?;
        }
        Ok(())
    }

    async fn upsert_remote_link(&self, item: &DevItemRef, link: &RemoteLink) -> Result<(), ApiError> {
        Ok(JiraClient::upsert_remote_link(self, &issue_path(item), link).await?)
    }

    async fn find_item(&self, key: &JiraKey) -> Result<Option<DevItemRef>, ApiError> {
        let Some(issue) = self.get_issue(key.as_str(), &["summary"]).await? else { return Ok(None) };
        let id = JiraIssueId::parse(&issue.id).map_err(|e| ApiError::Unexpected(e.into()))?;
        let key = JiraKey::parse(&issue.key).map_err(|e| ApiError::Unexpected(e.into()))?;
        Ok(Some(DevItemRef::Jira { id, key }))
    }

    async fn add_comment(&self, item: &DevItemRef, html: &str) -> Result<JiraCommentId, ApiError> {
        let c = JiraClient::add_comment(self, &issue_path(item), &richtext::html_to_adf(html)).await?;
        Ok(JiraCommentId(c.id))
    }

    async fn update_comment(&self, item: &DevItemRef, comment: &JiraCommentId, html: &str) -> Result<(), ApiError> {
        JiraClient::update_comment(self, &issue_path(item), &comment.0, &richtext::html_to_adf(html)).await?;
        Ok(())
    }

    async fn list_comments(&self, item: &DevItemRef) -> Result<Vec<TrackerComment>, ApiError> {
        Ok(self
            .comments(&issue_path(item))
            .await?
            .into_iter()
            .map(|c| TrackerComment {
                html: c.body.as_ref().map(richtext::adf_to_html).unwrap_or_default(),
                author_name: c.author.and_then(|a| a.display_name).unwrap_or_default(),
                id: JiraCommentId(c.id),
            })
            .collect())
    }
}
