//! Bitbucket Cloud REST 2.0 client, for the pull-request, build-status and webhook side.
//!
//! Auth is an Atlassian API token (Basic `email:token`) or an access token (Bearer); app passwords
//! stopped working on 2026-06-09. Collections page by the `next` URL in the body, followed only on
//! our own origin. A 429 is plain text without `Retry-After` and means an hourly budget (1,000 requests
//! per user or access token) is spent: the client never sleeps in a request; it reports `RateLimited`
//! with [`BitbucketConfig::rate_limit_delay`] (minutes), a retry decision for the caller. Error bodies are
//! `{type:"error", error:{message, detail?, fields?}}`. Bitbucket Cloud issues (and their API) were
//! removed on 2026-08-20: a 410 from an issue endpoint is [`ClientError::IssuesRemoved`].

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::http::{self, BaseUrl, Credentials, HttpSettings, Reply, clip, nullable};
use super::{ClientError, found};
use crate::domain::{BuildState, PullRequestState, RepoRef};

/// Bitbucket Cloud's API root.
pub const API_BASE: &str = "https://api.bitbucket.org/2.0/";

/// The delay reported for a 429. Bitbucket's budgets are rolling one-hour windows and its 429 carries no
/// `Retry-After`; retrying within seconds only spends the next window sooner (short retry loops amplified
/// throttling in other integrations), so the job comes back in minutes.
pub const RATE_LIMIT_DELAY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct BitbucketConfig {
    /// [`API_BASE`], or a simulator's root.
    pub base_url: BaseUrl,
    /// Basic `email:api-token`, or Bearer with a repository/project/workspace access token.
    pub auth: Credentials,
    pub http: HttpSettings,
    /// The `retry_after` of a 429 ([`RATE_LIMIT_DELAY`] unless a caller knows better).
    pub rate_limit_delay: Duration,
}

/// A Bitbucket Cloud client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BitbucketClient {
    http: http::Http,
    config: BitbucketConfig,
}

// ---------------------------------------------------------------------------------------------
// Wire types.

/// An account (`GET /2.0/user`, PR authors). Identify people by `uuid`/`account_id`, never `username`.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub nickname: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    pub href: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Links {
    #[serde(default)]
    pub html: Option<Link>,
    #[serde(rename = "self", default)]
    pub self_link: Option<Link>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub is_private: Option<bool>,
    /// Whether the (now removed) issue tracker was enabled.
    #[serde(default)]
    pub has_issues: Option<bool>,
    #[serde(default)]
    pub mainbranch: Option<Branch>,
    #[serde(default, deserialize_with = "nullable")]
    pub links: Links,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    pub hash: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEnd {
    #[serde(default)]
    pub branch: Option<Branch>,
    #[serde(default)]
    pub commit: Option<Commit>,
}

/// A pull request (`state` ∈ `OPEN | MERGED | DECLINED | SUPERSEDED`).
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub id: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    /// Absent in some partial representations.
    #[serde(default)]
    pub state: Option<PullRequestState>,
    #[serde(default)]
    pub author: Option<Account>,
    #[serde(default)]
    pub source: Option<PullRequestEnd>,
    #[serde(default)]
    pub destination: Option<PullRequestEnd>,
    #[serde(default)]
    pub merge_commit: Option<Commit>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub updated_on: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub links: Links,
}

impl PullRequest {
    pub fn source_branch(&self) -> Option<&str> {
        self.source.as_ref()?.branch.as_ref().map(|b| b.name.as_str())
    }
    pub fn html_url(&self) -> Option<&str> {
        self.links.html.as_ref().map(|l| l.href.as_str())
    }
}

/// A commit (build) status.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitStatus {
    pub key: String,
    pub state: BuildState,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub refname: Option<String>,
    #[serde(default)]
    pub updated_on: Option<String>,
}

/// A repository webhook. The secret is never returned; `secret_set` says whether one exists.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSubscription {
    pub uuid: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub events: Vec<String>,
    #[serde(default)]
    pub secret_set: Option<bool>,
}

/// A webhook to create or update. `Debug` redacts the secret.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub description: String,
    pub url: String,
    pub events: Vec<String>,
    /// Signs deliveries (`X-Hub-Signature: sha256=…`); ≤ 128 characters.
    pub secret: SecretString,
    pub active: bool,
}

/// A workspace the credentials can reach (`GET /2.0/user/workspaces`).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkspaceAccess {
    #[serde(default)]
    pub administrator: Option<bool>,
    #[serde(default)]
    pub workspace: Option<Value>,
}

impl WorkspaceAccess {
    pub fn slug(&self) -> Option<&str> {
        self.workspace.as_ref()?.get("slug")?.as_str()
    }
}

/// The paginated envelope; `next` is absent on the last page.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    fields: serde_json::Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------

impl BitbucketClient {
    pub fn new(config: BitbucketConfig) -> Result<Self, ClientError> {
        Ok(Self { http: http::Http::new(&config.http, "bitbucket")?, config })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.config.base_url.join(path)
    }

    fn repo_path(repo: &RepoRef, rest: &str) -> String {
        format!("repositories/{}/{}{rest}", repo.workspace, repo.repo_slug)
    }

    /// One request. A 429 is `RateLimited` at once (never a sleep here): the caller delays the job.
    async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, ClientError> {
        // The hourly budget counts every request.
        self.config.http.pace(None).await?;
        let mut rb = self.http.request(method, url.clone()).header(reqwest::header::ACCEPT, "application/json");
        rb = self.config.auth.apply(rb);
        if let Some(body) = body {
            rb = rb.json(body);
        }
        let reply = self.http.send(rb).await?;
        if reply.status.as_u16() == 429 {
            return Err(ClientError::RateLimited { retry_after: self.config.rate_limit_delay });
        }
        if reply.status.is_success() { Ok(reply) } else { Err(error_from(url.path(), &reply)) }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, self.url(path)?, None).await?.json()
    }

    /// Every value of a paginated collection, following `next` on our own origin.
    async fn get_all<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        let mut url = first;
        for _ in 0..http::MAX_PAGES {
            let page: Page<T> = self.call(Method::GET, url.clone(), None).await?.json()?;
            all.extend(page.values);
            let Some(next) = page.next else { return Ok(all) };
            let next = self.config.base_url.follow(&next)?;
            if next == url {
                return Err(ClientError::Decode("a `next` link pointed at the same page".into()));
            }
            url = next;
        }
        Err(ClientError::Decode("paging did not end".into()))
    }

    /// `GET /2.0/user`: the account an API token belongs to (access tokens are not accounts:
    /// check them with [`Self::repository`]).
    pub async fn user(&self) -> Result<Account, ClientError> {
        self.get("user").await
    }

    /// `GET /2.0/user/workspaces` (all pages). The old `/2.0/workspaces` answers 410.
    pub async fn workspaces(&self) -> Result<Vec<WorkspaceAccess>, ClientError> {
        self.get_all(self.url("user/workspaces")?).await
    }

    /// `GET /2.0/repositories/{workspace}/{repo}`. `None` when missing or not visible.
    pub async fn repository(&self, repo: &RepoRef) -> Result<Option<Repository>, ClientError> {
        found(self.get(&Self::repo_path(repo, "")).await)
    }

    /// `GET …/pullrequests?state=…` (all pages). Bitbucket lists only `OPEN` when no state is given.
    pub async fn pull_requests(
        &self,
        repo: &RepoRef,
        states: &[PullRequestState],
    ) -> Result<Vec<PullRequest>, ClientError> {
        let mut url = self.url(&Self::repo_path(repo, "/pullrequests"))?;
        {
            let mut q = url.query_pairs_mut();
            for s in states {
                q.append_pair("state", s.as_str());
            }
            q.append_pair("pagelen", "50");
        }
        self.get_all(url).await
    }

    /// `GET …/pullrequests/{id}`.
    pub async fn pull_request(&self, repo: &RepoRef, id: u64) -> Result<Option<PullRequest>, ClientError> {
        found(self.get(&Self::repo_path(repo, &format!("/pullrequests/{id}"))).await)
    }

    /// `GET …/commit/{hash}/pullrequests` (all pages): the pull requests that contain the commit, in any
    /// state — how a build status without `refname` is traced to a branch.
    pub async fn commit_pull_requests(&self, repo: &RepoRef, commit: &str) -> Result<Vec<PullRequest>, ClientError> {
        self.get_all(self.url(&Self::repo_path(repo, &format!("/commit/{}/pullrequests", segment(commit))))?).await
    }

    /// `GET …/commit/{hash}/statuses` (all pages).
    pub async fn commit_statuses(&self, repo: &RepoRef, commit: &str) -> Result<Vec<CommitStatus>, ClientError> {
        self.get_all(self.url(&Self::repo_path(repo, &format!("/commit/{commit}/statuses")))?).await
    }

    /// `GET …/issues/{id}`. Bitbucket Cloud removed issues on 2026-08-20, so this now answers
    /// [`ClientError::IssuesRemoved`]; it exists so configuration checks can say so plainly.
    pub async fn legacy_issue(&self, repo: &RepoRef, id: u64) -> Result<Option<Value>, ClientError> {
        found(self.get(&Self::repo_path(repo, &format!("/issues/{id}"))).await)
    }

    /// `GET …/hooks` (all pages).
    pub async fn webhooks(&self, repo: &RepoRef) -> Result<Vec<WebhookSubscription>, ClientError> {
        self.get_all(self.url(&Self::repo_path(repo, "/hooks"))?).await
    }

    /// `GET …/hooks/{uid}`.
    pub async fn webhook(&self, repo: &RepoRef, uid: &str) -> Result<Option<WebhookSubscription>, ClientError> {
        found(self.get(&Self::repo_path(repo, &format!("/hooks/{}", hook_uid(uid)))).await)
    }

    /// `POST …/hooks` with a secret, so deliveries are signed.
    pub async fn create_webhook(&self, repo: &RepoRef, spec: &WebhookSpec) -> Result<WebhookSubscription, ClientError> {
        let url = self.url(&Self::repo_path(repo, "/hooks"))?;
        self.call(Method::POST, url, Some(&hook_body(spec))).await?.json()
    }

    /// `PUT …/hooks/{uid}` (the secret is replaced too).
    pub async fn update_webhook(
        &self,
        repo: &RepoRef,
        uid: &str,
        spec: &WebhookSpec,
    ) -> Result<WebhookSubscription, ClientError> {
        let url = self.url(&Self::repo_path(repo, &format!("/hooks/{}", hook_uid(uid))))?;
        self.call(Method::PUT, url, Some(&hook_body(spec))).await?.json()
    }

    /// `DELETE …/hooks/{uid}`.
    pub async fn delete_webhook(&self, repo: &RepoRef, uid: &str) -> Result<(), ClientError> {
        let url = self.url(&Self::repo_path(repo, &format!("/hooks/{}", hook_uid(uid))))?;
        self.call(Method::DELETE, url, None).await.map(drop)
    }
}

/// Escapes one path segment (commit hashes come from webhooks).
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Hook ids come as `{uuid}`; the braces must be escaped in a path.
fn hook_uid(uid: &str) -> String {
    uid.replace('{', "%7B").replace('}', "%7D")
}

fn hook_body(spec: &WebhookSpec) -> Value {
    json!({
        "description": spec.description,
        "url": spec.url,
        "active": spec.active,
        "events": spec.events,
        "secret": spec.secret.expose_secret(),
    })
}

/// Maps a non-2xx, non-429 answer for `path` to an error.
pub(crate) fn error_from(path: &str, reply: &Reply) -> ClientError {
    let status = reply.status.as_u16();
    let envelope: ErrorEnvelope = reply.json_value().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let detail = envelope.error;
    let message = match (&detail.message, &detail.detail) {
        (Some(m), Some(d)) => clip(&format!("{m}: {d}")),
        (Some(m), None) => clip(m),
        _ => format!("HTTP {status} {}", reply.status.canonical_reason().unwrap_or("")),
    };
    match status {
        401 => ClientError::AuthRequired(format!("Bitbucket rejected the credentials: {message}")),
        403 => ClientError::Forbidden(message),
        404 => ClientError::NotFound(message),
        410 if path.contains("/issues") => ClientError::IssuesRemoved,
        410 => ClientError::Gone(message),
        400 | 422 => match detail.fields.keys().next() {
            Some(field) if detail.fields.len() == 1 => ClientError::FieldRejected { field: field.clone(), message },
            _ => ClientError::Invalid(message),
        },
        s if s >= 500 => ClientError::Transient(message),
        _ => ClientError::Invalid(message),
    }
}

#[async_trait::async_trait]
impl crate::ports::CodeHostApi for BitbucketClient {
    async fn commit_pull_requests(
        &self,
        repo: &RepoRef,
        commit: &str,
    ) -> Result<Vec<crate::ports::CommitPullRequest>, crate::ports::ApiError> {
        Ok(BitbucketClient::commit_pull_requests(self, repo, commit)
            .await?
            .into_iter()
            .map(|pr| crate::ports::CommitPullRequest {
                source_branch: pr.source_branch().unwrap_or_default().to_owned(),
                title: pr.title,
                description: pr.description,
            })
            .collect())
    }
}
