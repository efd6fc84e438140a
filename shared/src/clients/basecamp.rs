//! Basecamp (bc3 API) client.
//!
//! Auth is OAuth 2 through Launchpad: the access and refresh tokens live in the [`SecretStore`];
//! on a 401 the client refreshes once (writing the new tokens back) and retries once, and a refused
//! refresh is `AuthRequired` (`PROVIDER_AUTH_REQUIRED`). Every request carries the User-Agent with
//! a contact that Basecamp requires. Collections page by the `Link: rel="next"` header (followed
//! only on our own origin). A to-do PUT replaces the whole to-do, so updates are read → merge →
//! full PUT. 429 → `RateLimited` with `Retry-After`; 404 reads as `None` ("gone or no access").

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::http::{self, BaseUrl, HttpSettings, Reply, clip, nullable};
use super::{ClientError, found};
use crate::domain::{Artifact, BasecampCommentId, PersonId, ProjectId, RecordingStatus, Todo, TodoId, TodolistId};
use crate::ports::{ApiError, BasecampApi, SecretError, SecretStore, TodoComment, TodoPatch};

/// Launchpad's token endpoint (exchange and refresh).
pub const LAUNCHPAD_TOKEN_URL: &str = "https://launchpad.37signals.com/authorization/token";

/// The webhook types campbridge subscribes to. Always explicit: a webhook created without types
/// has been seen to store `[]` and never fire.
pub const SYNC_WEBHOOK_TYPES: &[&str] = &["Todo", "Todolist", "Comment"];

/// How the Basecamp client is set up.
#[derive(Debug, Clone)]
pub struct BasecampConfig {
    /// The account's API root, `https://3.basecampapi.com/{account_id}/`.
    pub base_url: BaseUrl,
    /// Launchpad's token endpoint ([`LAUNCHPAD_TOKEN_URL`]); configurable for tests.
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Secret names under which the access and refresh tokens are stored.
    pub access_token_secret: String,
    pub refresh_token_secret: String,
    /// `user_agent` must name the app and a contact, e.g. `campbridge (ops@example.com)`.
    pub http: HttpSettings,
    /// The delay reported for a 429 without `Retry-After`.
    pub default_retry_after: Duration,
}

/// A Basecamp client for one account. Requests share one cached access token.
pub struct BasecampClient {
    http: http::Http,
    config: BasecampConfig,
    secrets: Arc<dyn SecretStore>,
    access: tokio::sync::Mutex<Option<SecretString>>,
}

impl std::fmt::Debug for BasecampClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasecampClient").field("config", &self.config).finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types (lenient: older payloads lack fields, and unknown fields are ignored).

#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub attachable_sgid: Option<String>,
    /// Redacted (`j••••@…`) unless we are an admin/owner or the person.
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub personable_type: Option<String>,
    #[serde(default)]
    pub client: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BucketRef {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParentRef {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    /// `Todolist` (a list or a group) or `Todoset` (a loose to-do).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub app_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DockEntry {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    pub name: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub app_url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub dock: Vec<DockEntry>,
}

impl Project {
    /// Every enabled to-do set in the dock (real projects can carry several, some disabled).
    pub fn todoset_ids(&self) -> Vec<i64> {
        self.dock.iter().filter(|d| d.name == "todoset" && d.enabled).map(|d| d.id).collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Todoset {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub todolists_count: Option<i64>,
    #[serde(default)]
    pub bucket: Option<BucketRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Todolist {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub parent: Option<ParentRef>,
    #[serde(default)]
    pub bucket: Option<BucketRef>,
    #[serde(default)]
    pub app_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileAttachment {
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// A to-do as `GET /todos/{id}.json` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct BasecampTodo {
    pub id: i64,
    #[serde(default)]
    pub status: String,
    /// The plain-text title (`title` carries the same).
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Rich text (HTML); `""` when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description_attachments: Vec<FileAttachment>,
    #[serde(default)]
    pub completed: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub assignees: Vec<Person>,
    #[serde(default, deserialize_with = "nullable")]
    pub completion_subscribers: Vec<Person>,
    #[serde(default)]
    pub due_on: Option<NaiveDate>,
    #[serde(default)]
    pub starts_on: Option<NaiveDate>,
    #[serde(default)]
    pub parent: ParentRef,
    #[serde(default)]
    pub bucket: BucketRef,
    #[serde(default)]
    pub creator: Option<Person>,
    #[serde(default)]
    pub app_url: String,
    pub updated_at: DateTime<Utc>,
}

impl BasecampTodo {
    /// The domain view of this to-do.
    pub fn to_todo(&self) -> Todo {
        let title = if self.content.is_empty() { self.title.clone().unwrap_or_default() } else { self.content.clone() };
        Todo {
            id: TodoId(self.id),
            project: ProjectId(self.bucket.id),
            project_name: self.bucket.name.clone(),
            todolist: TodolistId(self.parent.id),
            todolist_name: self.parent.title.clone(),
            title,
            description: self.description.clone(),
            completed: self.completed,
            assignees: self.assignees.iter().map(|p| PersonId(p.id)).collect(),
            due_on: self.due_on,
            creator_name: self.creator.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            app_url: self.app_url.clone(),
            updated_at: self.updated_at,
            artifacts: self
                .description_attachments
                .iter()
                .filter_map(|a| Some(Artifact { name: a.filename.clone()?, url: a.download_url.clone()? }))
                .collect(),
            status: RecordingStatus::from_basecamp(&self.status),
        }
    }
}

/// A comment on a recording.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: i64,
    #[serde(default)]
    pub status: Option<String>,
    /// Rich text (HTML).
    #[serde(default, deserialize_with = "nullable")]
    pub content: String,
    #[serde(default)]
    pub creator: Option<Person>,
    #[serde(default)]
    pub parent: Option<ParentRef>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "nullable")]
    pub app_url: String,
}

impl Comment {
    fn to_port(&self) -> TodoComment {
        TodoComment {
            id: BasecampCommentId(self.id),
            author_name: self.creator.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            content: self.content.clone(),
            app_url: self.app_url.clone(),
        }
    }
}

/// A generic recording, as `/projects/recordings.json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Recording {
    pub id: i64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub bucket: Option<BucketRef>,
    #[serde(default)]
    pub parent: Option<ParentRef>,
    #[serde(default)]
    pub app_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub id: i64,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub payload_url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub types: Vec<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Up to 25 newest deliveries (only on `GET /webhooks/{id}.json`).
    #[serde(default, deserialize_with = "nullable")]
    pub recent_deliveries: Vec<Value>,
}

/// A new to-do (`POST /todolists/{id}/todos.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewTodo {
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assignee_ids: Vec<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub completion_subscriber_ids: Vec<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub notify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_on: Option<NaiveDate>,
}

/// Changes to a to-do; `None` keeps the current value. Applied by read → merge → full PUT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoChanges {
    pub content: Option<String>,
    pub description: Option<String>,
    pub assignee_ids: Option<Vec<i64>>,
    pub completion_subscriber_ids: Option<Vec<i64>>,
    pub due_on: Option<Option<NaiveDate>>,
    pub starts_on: Option<Option<NaiveDate>>,
    /// Notify the assignees (a one-shot directive, not stored).
    pub notify: bool,
}

/// Which recordings to poll (`/projects/recordings.json`), newest change first.
#[derive(Debug, Clone)]
pub struct RecordingsQuery {
    /// `Todo`, `Comment`, `Todolist`, …
    pub kind: String,
    /// Only these projects (all visible projects when empty).
    pub buckets: Vec<ProjectId>,
    /// `active` (the default), `archived` or `trashed`.
    pub status: Option<String>,
    /// Stop at the first recording updated before this cursor.
    pub since: Option<DateTime<Utc>>,
    /// Read at most this many pages (Basecamp's pages grow: 15, 30, 50, then 100 recordings); `None` reads
    /// on to `since` or the last page.
    pub max_pages: Option<usize>,
}

/// What a recordings walk listed, and whether it got as far as it was asked to.
#[derive(Debug, Clone, Default)]
pub struct RecordingsListing {
    /// Newest change first; none older than the query's `since`.
    pub recordings: Vec<Recording>,
    /// The walk reached `since` or the last page. `false` when `max_pages` stopped it first: recordings
    /// older than the last one listed (and not older than `since`) were not read.
    pub complete: bool,
}

/// The full writable state of a to-do: what the PUT must carry so nothing is cleared.
pub fn full_put_body(current: &BasecampTodo, changes: &TodoChanges) -> Value {
    let ids = |people: &[Person]| people.iter().map(|p| p.id).collect::<Vec<_>>();
    let mut body = json!({
        "content": changes.content.clone().unwrap_or_else(|| current.content.clone()),
        "description": changes.description.clone().unwrap_or_else(|| current.description.clone()),
        "assignee_ids": changes.assignee_ids.clone().unwrap_or_else(|| ids(&current.assignees)),
        "completion_subscriber_ids":
            changes.completion_subscriber_ids.clone().unwrap_or_else(|| ids(&current.completion_subscribers)),
    });
    // `notify` is a one-shot directive, not state: sent only when true (the SDK's merge-safe update,
    // conformance `todos_write.json`).
    if changes.notify {
        body["notify"] = json!(true);
    }
    // Dates go out only when set: omitting one clears it, and `""` is a format error.
    let due_on = changes.due_on.unwrap_or(current.due_on);
    let starts_on = changes.starts_on.unwrap_or(current.starts_on);
    if let Some(d) = due_on {
        body["due_on"] = json!(d);
    }
    if let Some(d) = starts_on {
        body["starts_on"] = json!(d);
    }
    body
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
}

impl BasecampClient {
    pub fn new(config: BasecampConfig, secrets: Arc<dyn SecretStore>) -> Result<Self, ClientError> {
        let ua = &config.http.user_agent;
        if !(ua.contains('@') || ua.contains("http")) {
            return Err(ClientError::Config(
                "Basecamp requires a User-Agent naming the app and a contact, e.g. `campbridge (ops@example.com)`"
                    .into(),
            ));
        }
        Ok(Self {
            http: http::Http::new(&config.http, "basecamp")?,
            config,
            secrets,
            access: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.config.base_url.join(path)
    }

    async fn access_token(&self) -> Result<SecretString, ClientError> {
        let mut cached = self.access.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = self.secrets.get(&self.config.access_token_secret).await.map_err(secret_error)?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Refreshes the access token after `failed` got a 401, unless another request already did.
    async fn refresh(&self, failed: &SecretString) -> Result<SecretString, ClientError> {
        let mut cached = self.access.lock().await;
        if let Some(current) = cached.as_ref()
            && current.expose_secret() != failed.expose_secret()
        {
            return Ok(current.clone());
        }
        let refresh = self.secrets.get(&self.config.refresh_token_secret).await.map_err(secret_error)?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose_secret()),
        ];
        let reply = self.http.send(self.http.post(self.config.token_url.clone()).form(&form)).await?;
        if !reply.status.is_success() {
            let status = reply.status.as_u16();
            return Err(match status {
                429 => ClientError::RateLimited {
                    retry_after: reply.retry_after().unwrap_or(self.config.default_retry_after),
                },
                s if s >= 500 => ClientError::Transient(format!("Basecamp token refresh failed with HTTP {s}")),
                s => {
                    let reason = error_field(&reply).map(|r| format!(" ({r})")).unwrap_or_default();
                    ClientError::AuthRequired(format!(
                        "Basecamp refused the token refresh with HTTP {s}{reason}; re-authorize the integration"
                    ))
                }
            });
        }
        let tokens: TokenResponse = reply.json()?;
        self.store(&self.config.access_token_secret, &tokens.access_token).await?;
        if let Some(refresh) = &tokens.refresh_token {
            self.store(&self.config.refresh_token_secret, refresh).await?;
        }
        tracing::info!("refreshed the Basecamp access token");
        *cached = Some(tokens.access_token.clone());
        Ok(tokens.access_token)
    }

    async fn store(&self, name: &str, value: &SecretString) -> Result<(), ClientError> {
        // Same value → same request token, so concurrent writers of one refresh produce one version.
        let digest = Sha256::digest(value.expose_secret().as_bytes());
        let request_token = hex::encode(&digest[..16]);
        self.secrets.put(name, value, &request_token).await.map_err(secret_error)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        token: &SecretString,
    ) -> Result<Reply, ClientError> {
        // Basecamp's limit is per IP and counts every request.
        self.config.http.pace(None).await?;
        let mut rb = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(serde_json::to_vec(body).map_err(|e| ClientError::Unexpected(e.into()))?);
        }
        self.http.send(rb).await
    }

    /// One request with the stored token; on 401 one refresh and one retry.
    async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, ClientError> {
        let token = self.access_token().await?;
        let mut reply = self.send_once(&method, &url, body, &token).await?;
        if reply.status.as_u16() == 401 {
            let fresh = self.refresh(&token).await?;
            reply = self.send_once(&method, &url, body, &fresh).await?;
            if reply.status.as_u16() == 401 {
                return Err(ClientError::AuthRequired(
                    "Basecamp rejected a freshly refreshed token; re-authorize the integration".into(),
                ));
            }
        }
        if reply.status.is_success() { Ok(reply) } else { Err(self.error_from(&reply)) }
    }

    fn error_from(&self, reply: &Reply) -> ClientError {
        let status = reply.status.as_u16();
        let message = error_field(reply)
            .unwrap_or_else(|| format!("HTTP {status} {}", reply.status.canonical_reason().unwrap_or("")));
        match status {
            // A `Retry-After` of zero or a date already past is no wait at all: the standard delay applies
            // (the SDK's conformance `retry.json`, "Retry-After HTTP-date format respected").
            429 => ClientError::RateLimited {
                retry_after: reply
                    .retry_after()
                    .filter(|wait| !wait.is_zero())
                    .unwrap_or(self.config.default_retry_after),
            },
            401 => ClientError::AuthRequired(format!("Basecamp rejected the token: {message}")),
            403 => ClientError::Forbidden(message),
            404 if reply.headers.get("reason").and_then(|v| v.to_str().ok()) == Some("Account Inactive") => {
                ClientError::Forbidden("the Basecamp account is inactive (expired trial or suspended)".into())
            }
            404 => ClientError::NotFound(message),
            s if s >= 500 && s != 507 => ClientError::Transient(message),
            _ => ClientError::Invalid(message),
        }
    }

    async fn get_one<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        found(async { self.call(Method::GET, self.url(path)?, None).await?.json() }.await)
    }

    async fn send_json<T: DeserializeOwned>(&self, method: Method, path: &str, body: &Value) -> Result<T, ClientError> {
        self.call(method, self.url(path)?, Some(body)).await?.json()
    }

    async fn send_empty(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(), ClientError> {
        self.call(method, self.url(path)?, body).await.map(drop)
    }

    /// Every item of a paged collection, following `Link: rel="next"` on our own origin.
    /// `keep_going` sees each page and may stop the walk early.
    /// Every page from `first` on, following `Link: rel="next"` while `keep_going(page)` says so; paging
    /// that never ends is an error.
    async fn get_pages<T: DeserializeOwned>(
        &self,
        first: Url,
        keep_going: impl FnMut(&[T]) -> bool,
    ) -> Result<Vec<T>, ClientError> {
        match self.walk_pages(first, http::MAX_PAGES, keep_going).await? {
            (all, true) => Ok(all),
            (_, false) => Err(ClientError::Decode("paging did not end".into())),
        }
    }

    /// Like [`Self::get_pages`], reading at most `max_pages` pages (at least one): the items, and `true`
    /// when the walk ended by itself (no next page, or `keep_going` said stop) rather than at the limit.
    async fn walk_pages<T: DeserializeOwned>(
        &self,
        first: Url,
        max_pages: usize,
        mut keep_going: impl FnMut(&[T]) -> bool,
    ) -> Result<(Vec<T>, bool), ClientError> {
        let mut all = Vec::new();
        let mut url = first;
        let mut pages = 0;
        loop {
            let reply = self.call(Method::GET, url.clone(), None).await?;
            let page: Vec<T> = reply.json()?;
            let more = keep_going(&page);
            all.extend(page);
            pages += 1;
            let Some(next) = http::link_next(&reply.headers).filter(|_| more) else { return Ok((all, true)) };
            if pages >= max_pages {
                return Ok((all, false));
            }
            let next = self.config.base_url.follow(&next)?;
            if next == url {
                return Err(ClientError::Decode("a Link header pointed at the same page".into()));
            }
            url = next;
        }
    }

    async fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ClientError> {
        self.get_pages(self.url(path)?, |_: &[T]| true).await
    }

    /// `GET /projects.json`: active projects (all pages).
    pub async fn projects(&self) -> Result<Vec<Project>, ClientError> {
        self.get_all("projects.json").await
    }

    /// `GET /projects/{id}.json`, with the dock that names the to-do set(s).
    pub async fn project(&self, id: ProjectId) -> Result<Option<Project>, ClientError> {
        self.get_one(&format!("projects/{id}.json")).await
    }

    /// `GET /todosets/{id}.json`.
    pub async fn todoset(&self, id: i64) -> Result<Option<Todoset>, ClientError> {
        self.get_one(&format!("todosets/{id}.json")).await
    }

    /// `GET /todosets/{id}/todolists.json` (all pages).
    pub async fn todolists(&self, todoset: i64) -> Result<Vec<Todolist>, ClientError> {
        self.get_all(&format!("todosets/{todoset}/todolists.json")).await
    }

    /// `GET /todolists/{id}.json`.
    pub async fn todolist(&self, id: TodolistId) -> Result<Option<Todolist>, ClientError> {
        self.get_one(&format!("todolists/{id}.json")).await
    }

    /// `GET /todolists/{id}/todos.json`: pending to-dos, or completed ones with `completed` (all pages).
    pub async fn todos(&self, list: TodolistId, completed: bool) -> Result<Vec<BasecampTodo>, ClientError> {
        let suffix = if completed { "?completed=true" } else { "" };
        self.get_all(&format!("todolists/{list}/todos.json{suffix}")).await
    }

    /// `GET /todolists/{id}/todos.json?status=archived|trashed`: those to-dos, pending and completed.
    pub async fn todos_with_status(&self, list: TodolistId, status: &str) -> Result<Vec<BasecampTodo>, ClientError> {
        self.get_all(&format!("todolists/{list}/todos.json?status={status}")).await
    }

    /// `PUT /recordings/{id}/status/{trashed|archived|active}.json`: trash, archive or restore a recording.
    pub async fn set_status(&self, recording: i64, status: RecordingStatus) -> Result<(), ClientError> {
        let status = match status {
            RecordingStatus::Active => "active",
            RecordingStatus::Archived => "archived",
            RecordingStatus::Trashed => "trashed",
        };
        self.send_empty(Method::PUT, &format!("recordings/{recording}/status/{status}.json"), None).await
    }

    /// `GET /todos/{id}.json`. `None` when gone or not visible.
    pub async fn todo(&self, id: TodoId) -> Result<Option<BasecampTodo>, ClientError> {
        self.get_one(&format!("todos/{id}.json")).await
    }

    /// `POST /todolists/{id}/todos.json`. Not idempotent: a retried create makes a second to-do.
    pub async fn create_todo(&self, list: TodolistId, todo: &NewTodo) -> Result<BasecampTodo, ClientError> {
        let body = serde_json::to_value(todo).map_err(|e| ClientError::Unexpected(e.into()))?;
        self.send_json(Method::POST, &format!("todolists/{list}/todos.json"), &body).await
    }

    /// Reads the to-do, merges `changes` in and PUTs the whole to-do back (Basecamp clears whatever
    /// a PUT omits). `None` when the to-do is gone. Last writer wins: there is no If-Match.
    pub async fn update_todo(&self, id: TodoId, changes: &TodoChanges) -> Result<Option<BasecampTodo>, ClientError> {
        let Some(current) = self.todo(id).await? else { return Ok(None) };
        let body = full_put_body(&current, changes);
        found(self.send_json(Method::PUT, &format!("todos/{id}.json"), &body).await)
    }

    /// `POST /todos/{id}/completion.json` (idempotent).
    pub async fn complete(&self, id: TodoId) -> Result<(), ClientError> {
        self.send_empty(Method::POST, &format!("todos/{id}/completion.json"), None).await
    }

    /// `DELETE /todos/{id}/completion.json` (idempotent).
    pub async fn uncomplete(&self, id: TodoId) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &format!("todos/{id}/completion.json"), None).await
    }

    /// `GET /recordings/{id}/comments.json`: active comments, oldest first (all pages).
    pub async fn comments(&self, recording: i64) -> Result<Vec<Comment>, ClientError> {
        self.get_all(&format!("recordings/{recording}/comments.json")).await
    }

    /// `POST /recordings/{id}/comments.json`. Not idempotent; notifies the recording's subscribers.
    pub async fn create_comment(&self, recording: i64, html: &str) -> Result<Comment, ClientError> {
        self.send_json(Method::POST, &format!("recordings/{recording}/comments.json"), &json!({"content": html})).await
    }

    /// `PUT /comments/{id}.json` (`content` is the only field).
    pub async fn update_comment(&self, id: BasecampCommentId, html: &str) -> Result<Comment, ClientError> {
        self.send_json(Method::PUT, &format!("comments/{id}.json"), &json!({"content": html})).await
    }

    /// `GET /people.json`, or `GET /projects/{id}/people.json` for one project (all pages).
    pub async fn people(&self, project: Option<ProjectId>) -> Result<Vec<Person>, ClientError> {
        match project {
            Some(p) => self.get_all(&format!("projects/{p}/people.json")).await,
            None => self.get_all("people.json").await,
        }
    }

    /// `GET /my/profile.json`: the person the token acts as (to recognise our own writes).
    pub async fn my_profile(&self) -> Result<Person, ClientError> {
        self.call(Method::GET, self.url("my/profile.json")?, None).await?.json()
    }

    /// `GET /projects/recordings.json?type=…&sort=updated_at&direction=desc`, walking pages until a
    /// recording older than `query.since` (the reconciler's cursor), the last page, or `query.max_pages`;
    /// recordings older than `since` are dropped. Stopping at `max_pages` is not an error: the listing
    /// says it is incomplete, and holds the newest recordings.
    pub async fn recordings(&self, query: &RecordingsQuery) -> Result<RecordingsListing, ClientError> {
        let mut url = self.url("projects/recordings.json")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("type", &query.kind);
            if !query.buckets.is_empty() {
                let buckets: Vec<String> = query.buckets.iter().map(ToString::to_string).collect();
                q.append_pair("bucket", &buckets.join(","));
            }
            if let Some(status) = &query.status {
                q.append_pair("status", status);
            }
            q.append_pair("sort", "updated_at").append_pair("direction", "desc");
        }
        let since = query.since;
        let older = |r: &Recording| since.is_some_and(|s| r.updated_at < s);
        let keep_going = |page: &[Recording]| !page.iter().any(older);
        let (mut recordings, complete) = match query.max_pages {
            Some(max) => self.walk_pages(url, max.clamp(1, http::MAX_PAGES), keep_going).await?,
            None => (self.get_pages(url, keep_going).await?, true),
        };
        recordings.retain(|r| !older(r));
        Ok(RecordingsListing { recordings, complete })
    }

    /// `GET /buckets/{project}/webhooks.json`.
    pub async fn webhooks(&self, project: ProjectId) -> Result<Vec<Webhook>, ClientError> {
        self.get_all(&format!("buckets/{project}/webhooks.json")).await
    }

    /// `GET /webhooks/{id}.json`, with `recent_deliveries`.
    pub async fn webhook(&self, id: i64) -> Result<Option<Webhook>, ClientError> {
        self.get_one(&format!("webhooks/{id}.json")).await
    }

    /// `POST /buckets/{project}/webhooks.json` with explicit `types` (never empty).
    pub async fn create_webhook(
        &self,
        project: ProjectId,
        payload_url: &str,
        types: &[&str],
    ) -> Result<Webhook, ClientError> {
        require_types(types)?;
        let body = json!({"payload_url": payload_url, "types": types});
        self.send_json(Method::POST, &format!("buckets/{project}/webhooks.json"), &body).await
    }

    /// `PUT /webhooks/{id}.json`; `active: true` re-enables a webhook Basecamp deactivated.
    pub async fn update_webhook(
        &self,
        id: i64,
        payload_url: &str,
        types: &[&str],
        active: bool,
    ) -> Result<Webhook, ClientError> {
        require_types(types)?;
        let body = json!({"payload_url": payload_url, "types": types, "active": active});
        self.send_json(Method::PUT, &format!("webhooks/{id}.json"), &body).await
    }

    /// `DELETE /webhooks/{id}.json`.
    pub async fn delete_webhook(&self, id: i64) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &format!("webhooks/{id}.json"), None).await
    }
}

fn require_types(types: &[&str]) -> Result<(), ClientError> {
    if types.is_empty() { Err(ClientError::Invalid("a Basecamp webhook needs explicit types".into())) } else { Ok(()) }
}

fn secret_error(e: SecretError) -> ClientError {
    match e {
        SecretError::Missing(name) => {
            ClientError::AuthRequired(format!("no Basecamp token stored under {name:?}; authorize the integration"))
        }
        SecretError::Unexpected(e) => ClientError::Unexpected(e.context("secret store failed")),
    }
}

/// The message of an error body, when it is JSON: Basecamp's and Launchpad's `{"error": "…"}` (or
/// `{"message": "…"}`), with Rails field errors flattened after it in parentheses — `{"errors": {field:
/// [messages]}}`, or the webhooks controller's bare `{field: [messages]}` at 400 — as
/// "field: message; message, field: message" with the fields sorted (the SDK's conformance suite,
/// `error-mapping.json`). Entries that are not lists of strings are skipped.
fn error_field(reply: &Reply) -> Option<String> {
    let v = reply.json_value()?;
    let top = v.get("error").and_then(Value::as_str).or_else(|| v.get("message").and_then(Value::as_str));
    let fields = match v.get("errors") {
        Some(Value::Object(map)) => flatten_field_errors(map),
        _ if top.is_none() && v.get("error").is_none() => v.as_object().map(flatten_field_errors).unwrap_or_default(),
        _ => String::new(),
    };
    let message = match (top, fields.is_empty()) {
        (Some(top), true) => top.to_owned(),
        (Some(top), false) => format!("{top} ({fields})"),
        (None, false) => fields,
        (None, true) => return None,
    };
    Some(clip(&message))
}

fn flatten_field_errors(map: &serde_json::Map<String, Value>) -> String {
    let mut fields: Vec<(&String, Vec<&str>)> = map
        .iter()
        .filter_map(|(field, messages)| {
            let messages: Vec<&str> = messages.as_array()?.iter().filter_map(Value::as_str).collect();
            (!messages.is_empty()).then_some((field, messages))
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    fields.iter().map(|(field, messages)| format!("{field}: {}", messages.join("; "))).collect::<Vec<_>>().join(", ")
}

fn same_people(a: &[i64], b: &[PersonId]) -> bool {
    let mut a = a.to_vec();
    let mut b: Vec<i64> = b.iter().map(|p| p.0).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

#[async_trait]
impl BasecampApi for BasecampClient {
    async fn get_todo(&self, _project: ProjectId, todo: TodoId) -> Result<Option<Todo>, ApiError> {
        Ok(self.todo(todo).await?.map(|t| t.to_todo()))
    }

    async fn update_todo(&self, _project: ProjectId, todo: TodoId, patch: &TodoPatch) -> Result<Todo, ApiError> {
        let gone = || ApiError::Invalid(format!("to-do {todo} is gone or no longer visible"));
        let current = self.todo(todo).await?.ok_or_else(gone)?;
        let current_ids: Vec<i64> = current.assignees.iter().map(|p| p.id).collect();
        let changes = TodoChanges {
            content: patch.title.clone().filter(|t| *t != current.content),
            assignee_ids: patch
                .assignees
                .as_ref()
                .filter(|a| !same_people(&current_ids, a))
                .map(|a| a.iter().map(|p| p.0).collect()),
            ..TodoChanges::default()
        };
        let mut result = current;
        if changes.content.is_some() || changes.assignee_ids.is_some() {
            let body = full_put_body(&result, &changes);
            result =
                found(self.send_json(Method::PUT, &format!("todos/{todo}.json"), &body).await)?.ok_or_else(gone)?;
        }
        if let Some(done) = patch.completed.filter(|d| *d != result.completed) {
            if done {
                self.complete(todo).await?;
            } else {
                self.uncomplete(todo).await?;
            }
            // The completion endpoints answer 204; spare a re-read (the rate limit is per IP).
            result.completed = done;
        }
        Ok(result.to_todo())
    }

    async fn post_comment(&self, _project: ProjectId, todo: TodoId, html: &str) -> Result<BasecampCommentId, ApiError> {
        Ok(BasecampCommentId(self.create_comment(todo.0, html).await?.id))
    }

    async fn list_todos(&self, _project: ProjectId, list: TodolistId) -> Result<Option<Vec<Todo>>, ApiError> {
        // The four listings that together hold every to-do: pending, completed, archived, trashed.
        let Some(mut all) = found(self.todos(list, false).await)? else { return Ok(None) };
        all.extend(self.todos(list, true).await?);
        all.extend(self.todos_with_status(list, "archived").await?);
        all.extend(self.todos_with_status(list, "trashed").await?);
        let mut seen = std::collections::BTreeSet::new();
        all.retain(|t| seen.insert(t.id));
        Ok(Some(all.iter().map(BasecampTodo::to_todo).collect()))
    }

    async fn list_comments(&self, _project: ProjectId, todo: TodoId) -> Result<Vec<TodoComment>, ApiError> {
        Ok(self.comments(todo.0).await?.iter().map(Comment::to_port).collect())
    }

    async fn update_comment(
        &self,
        _project: ProjectId,
        comment: BasecampCommentId,
        html: &str,
    ) -> Result<(), ApiError> {
        BasecampClient::update_comment(self, comment, html).await?;
        Ok(())
    }

    async fn get_comment(
        &self,
        _project: ProjectId,
        comment: BasecampCommentId,
    ) -> Result<Option<TodoComment>, ApiError> {
        let c: Option<Comment> = self.get_one(&format!("comments/{comment}.json")).await?;
        Ok(c.as_ref().map(Comment::to_port))
    }
}
