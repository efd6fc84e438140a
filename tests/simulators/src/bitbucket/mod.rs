//! Bitbucket Cloud simulator (REST 2.0): user and workspace discovery, one repository (issue
//! tracker removed: 410), pull requests paged by `next`, commit build statuses, repository
//! webhooks with secrets, and signed deliveries with a 10 s receiver timeout and two retries.

mod control;
mod render;
mod routes;
mod state;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

pub use state::BuildStatus;

use crate::common::webhooks::DeliveryObserver;
use crate::common::{
    CallCounter, Calls, DeliveryRecord, Dispatcher, Faults, RetryPolicy, Server, SharedFaults, SimError,
};
use state::{State, User};

/// Default workspace slug.
pub const WORKSPACE: &str = "honcho";
/// Default repository slug.
pub const REPO: &str = "leto-web";
/// The integration's own account id (Basic-auth owner of the default API token).
pub const SYNC_BOT: &str = "712020:bb000000-0000-4000-8000-00000000c0de";
/// E-mail used with the default API token.
pub const BOT_EMAIL: &str = "campbridge@example.com";
/// Default Atlassian API token.
pub const API_TOKEN: &str = "bb-sim-api-token";
/// Default repository access token (Bearer).
pub const ACCESS_TOKEN: &str = "bb-sim-access-token";
/// A developer who opens pull requests.
pub const JARED: &str = "712020:bb000000-0000-4000-8000-000000000002";

/// Start-up options.
#[derive(Clone, Debug)]
pub struct Options {
    /// `(email, API token)` pairs accepted by Basic auth.
    pub accounts: Vec<(String, String)>,
    /// Bearer access tokens accepted.
    pub access_tokens: Vec<String>,
    /// Workspace slug.
    pub workspace: String,
    /// Repository slug.
    pub repo: String,
    /// The repository's `has_issues` flag (the tracker is gone either way).
    pub has_issues: bool,
    /// Default `pagelen`.
    pub pagelen: usize,
    /// Receiver timeout per delivery attempt (Bitbucket: 10 s).
    pub webhook_timeout: Duration,
    /// Retries after a failed attempt (Bitbucket: 2).
    pub webhook_retries: u32,
    /// Requests per identity (API token's user, or access token) per rolling hour; past it, 429 in plain
    /// text without `Retry-After`. Bitbucket's budget for `/2.0/repositories/*` is 1,000/h (the default);
    /// `None` lifts it.
    pub hourly_budget: Option<u32>,
}

/// Bitbucket Cloud's hourly request budget per user or access token for the repositories API.
pub const HOURLY_BUDGET: u32 = 1_000;

impl Default for Options {
    fn default() -> Self {
        Self {
            accounts: vec![(BOT_EMAIL.to_owned(), API_TOKEN.to_owned())],
            access_tokens: vec![ACCESS_TOKEN.to_owned()],
            workspace: WORKSPACE.to_owned(),
            repo: REPO.to_owned(),
            has_issues: false,
            pagelen: 10,
            webhook_timeout: Duration::from_secs(10),
            webhook_retries: 2,
            hourly_budget: Some(HOURLY_BUDGET),
        }
    }
}

/// Where URLs point and which repository is served.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub origin: String,
    pub web: String,
    pub workspace: String,
    pub workspace_uuid: String,
    pub workspace_name: String,
    pub repo: String,
    pub repo_uuid: String,
    pub has_issues: bool,
}

impl Ctx {
    /// API URL for `path` under `/2.0`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/2.0{path}", self.origin)
    }
    /// `workspace/repo`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.workspace, self.repo)
    }
}

pub(crate) struct Inner {
    pub ctx: Ctx,
    pub opts: Options,
    pub state: Mutex<State>,
    pub calls: CallCounter,
    pub faults: SharedFaults,
    pub dispatcher: Dispatcher,
    /// Request times per identity within the last hour, for [`Options::hourly_budget`].
    pub budget: std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

impl Inner {
    /// Counts one request for `identity` against `limit` per rolling hour; false when the budget is spent.
    pub fn spend(&self, identity: &str, limit: u32) -> bool {
        let now = std::time::Instant::now();
        let hour = std::time::Duration::from_secs(3600);
        let mut budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let times = budget.entry(identity.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= hour) {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// A running Bitbucket simulator. Dropping it stops the server.
pub struct Simulator {
    inner: Arc<Inner>,
    server: Server,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("bitbucket::Simulator").field("base_url", &self.base_url()).finish()
    }
}

fn seed() -> State {
    let mut state = State::default();
    let users = [
        (SYNC_BOT, "{0b1c2d3e-0000-4000-8000-00000000c0de}", "Campbridge Sync", "campbridge"),
        (
            "712020:bb000000-0000-4000-8000-000000000001",
            "{0b1c2d3e-0000-4000-8000-000000000001}",
            "Emma Richards",
            "emma",
        ),
        (JARED, "{0b1c2d3e-0000-4000-8000-000000000002}", "Jared Davis", "jared"),
    ];
    for (account_id, uuid, name, nickname) in users {
        state.users.push(User {
            uuid: uuid.to_owned(),
            account_id: account_id.to_owned(),
            display_name: name.to_owned(),
            nickname: nickname.to_owned(),
        });
    }
    state.head("main");
    state
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:0`.
    pub async fn start(opts: Options) -> Result<Self, SimError> {
        let listener = Server::bind().await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let ctx = Ctx {
            web: format!("{origin}/web"),
            origin,
            workspace: opts.workspace.clone(),
            workspace_uuid: "{7d3a178a-a087-4756-b2da-2f9eadf50ba8}".to_owned(),
            workspace_name: "Honcho Design".to_owned(),
            repo: opts.repo.clone(),
            repo_uuid: "{3deb8c29-778a-450c-8f69-3e50a18079df}".to_owned(),
            has_issues: opts.has_issues,
        };
        let client = Dispatcher::client()?;
        let faults = SharedFaults::default();
        let policy = RetryPolicy {
            max_retries: opts.webhook_retries,
            retry_statuses: Vec::new(),
            retry_5xx: true,
            timeout: opts.webhook_timeout,
            backoff: Duration::from_millis(10),
            attempt_header: Some(("X-Attempt-Number", true)),
        };
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let observer: Arc<dyn DeliveryObserver> = Arc::new(webhooks::Observer(weak.clone()));
            Inner {
                ctx,
                opts,
                state: Mutex::new(seed()),
                calls: CallCounter::default(),
                faults: faults.clone(),
                dispatcher: Dispatcher::start(client, policy, faults, observer),
                budget: Default::default(),
            }
        });
        let server = Server::serve(listener, routes::router(inner.clone()))?;
        Ok(Self { inner, server })
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }

    /// `http://127.0.0.1:<port>` (API paths start with `/2.0`).
    pub fn base_url(&self) -> String {
        self.inner.ctx.origin.clone()
    }

    /// `http://127.0.0.1:<port>/_control`.
    pub fn control_url(&self) -> String {
        format!("{}/_control", self.inner.ctx.origin)
    }

    /// The first configured `(email, API token)`.
    pub fn credentials(&self) -> (String, String) {
        self.inner.opts.accounts.first().cloned().unwrap_or_default()
    }

    /// `(workspace, repo)`.
    pub fn repository(&self) -> (String, String) {
        (self.inner.ctx.workspace.clone(), self.inner.ctx.repo.clone())
    }

    /// Request counts per endpoint.
    pub fn calls(&self) -> Calls {
        self.inner.calls.snapshot()
    }

    /// Forgets the request counts.
    pub fn reset_calls(&self) {
        self.inner.calls.reset();
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.faults.set(faults);
    }

    /// The faults injected so far, per kind.
    pub fn fault_counts(&self) -> crate::common::faults::FaultCounts {
        self.inner.faults.counts()
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.dispatcher.log()
    }

    /// Waits until every queued delivery has been attempted.
    pub async fn settle(&self) {
        self.inner.dispatcher.settle().await;
    }

    /// Sends deliveries held by a reorder fault, newest first.
    pub fn release_held(&self) {
        self.inner.dispatcher.release_held();
    }

    /// Registers a repository webhook as an admin would; returns its `{uuid}`.
    pub async fn register_webhook(&self, url: &str, secret: Option<&str>, events: &[&str]) -> String {
        control::register(&self.inner, url, secret, events.iter().map(|e| (*e).to_owned()).collect()).await
    }

    /// Opens a pull request from `source_branch` into `main` as `author`; returns its id.
    pub async fn open_pullrequest(
        &self,
        title: &str,
        description: &str,
        source_branch: &str,
        author: &str,
    ) -> Result<u64, SimError> {
        control::open(&self.inner, title, description, source_branch, author).await
    }

    /// Updates title/description, or pushes a new commit (`push = true`), as `actor`.
    pub async fn update_pullrequest(
        &self,
        id: u64,
        title: Option<&str>,
        description: Option<&str>,
        push: bool,
        actor: &str,
    ) -> Result<(), SimError> {
        control::update(&self.inner, id, title, description, push, actor).await
    }

    /// Merges a pull request as `actor`.
    pub async fn merge_pullrequest(&self, id: u64, actor: &str) -> Result<(), SimError> {
        control::close(&self.inner, id, true, "", actor).await
    }

    /// Declines a pull request as `actor`.
    pub async fn decline_pullrequest(&self, id: u64, reason: &str, actor: &str) -> Result<(), SimError> {
        control::close(&self.inner, id, false, reason, actor).await
    }

    /// Posts (or overwrites, same key) a build status as `actor`.
    pub async fn post_build_status(&self, status: BuildStatus, actor: &str) -> Result<(), SimError> {
        control::post_status(&self.inner, status, actor).await
    }

    /// Head commit of a pull request's source branch.
    pub async fn head_of(&self, id: u64) -> Option<String> {
        self.inner.state.lock().await.pullrequests.get(&id).map(|pr| pr.source_hash.clone())
    }

    /// A pull request as the API renders it.
    pub async fn pullrequest(&self, id: u64) -> Option<Value> {
        control::pullrequest(&self.inner, id).await
    }
}
