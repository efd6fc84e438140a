//! Jira Cloud simulator (REST v3): issues with a real workflow and transition screens, ADF-only
//! rich text, cursor-paged `/search/jql` (the old search answers 410), comments, remote links,
//! entity properties, Basic `email:token` auth, and signed v2-shaped admin webhooks with retries
//! and delivery faults.

pub mod adf;
mod control;
pub mod jql;
mod render;
mod routes;
mod state;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

pub use state::{AdminHook, Config, DEFAULT_SEARCH_LAG_MS, RateWindow, User};

use crate::common::webhooks::DeliveryObserver;
use crate::common::{
    CallCounter, Calls, DeliveryRecord, Dispatcher, Faults, RetryPolicy, Server, SharedFaults, SimError,
};
use state::{Project, State};

/// The integration's own account (owner of the default API token).
pub const SYNC_BOT: &str = "712020:7b9b4c5e-0000-4000-8000-00000000c0de";
/// E-mail of [`SYNC_BOT`], the Basic-auth user name.
pub const BOT_EMAIL: &str = "campbridge@example.com";
/// The default API token.
pub const API_TOKEN: &str = "jira-sim-api-token";
/// Mia Krystof (from the documented examples).
pub const MIA: &str = "5b10a2844c20165700ede21g";
/// Emma Richards (from the documented examples).
pub const EMMA: &str = "5b10ac8d82e05b22cc7d4ef5";
/// Annie Bryan (same e-mail as in the Basecamp simulator).
pub const ANNIE: &str = "712020:a11e0000-0000-4000-8000-000000000001";
/// Jared Davis (e-mail hidden by his profile settings).
pub const JARED: &str = "712020:a11e0000-0000-4000-8000-000000000002";
/// The seeded project key.
pub const PROJECT_KEY: &str = "WEB";
/// Components of the seeded project.
pub const COMPONENTS: [&str; 5] = ["Sprint 1", "Bugs", "Backlog", "Frontend", "Backend"];

/// Start-up options.
#[derive(Clone, Debug)]
pub struct Options {
    /// `(email, api token)` pairs accepted by Basic auth; the e-mail selects the user.
    pub accounts: Vec<(String, String)>,
    /// Behaviour switches (transition screens, unassignable users).
    pub config: Config,
    /// Retries per webhook delivery (Jira retries 408/409/425/429/5xx and transport failures).
    pub webhook_retries: u32,
    /// Pause between webhook attempts.
    pub webhook_backoff: Duration,
    /// Receiver timeout per attempt.
    pub webhook_timeout: Duration,
    /// Seed the users and the `WEB` project.
    pub seed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            accounts: vec![(BOT_EMAIL.to_owned(), API_TOKEN.to_owned())],
            config: Config::default(),
            webhook_retries: 2,
            webhook_backoff: Duration::from_millis(50),
            webhook_timeout: Duration::from_secs(20),
            seed: true,
        }
    }
}

pub(crate) struct Inner {
    pub origin: String,
    pub opts: Options,
    pub state: Mutex<State>,
    pub calls: CallCounter,
    pub faults: SharedFaults,
    pub dispatcher: Dispatcher,
    /// Recent request times per rate-limit bucket (`issue:<key>` writes, `burst:<METHOD> <pattern>`).
    pub windows: std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

impl Inner {
    /// Counts a request in `bucket` against `limit`; false when the window is full.
    pub fn admit(&self, bucket: &str, limit: state::RateWindow) -> bool {
        let now = std::time::Instant::now();
        let window = Duration::from_millis(limit.window_ms);
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let times = windows.entry(bucket.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
            times.pop_front();
        }
        if times.len() >= limit.requests as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Renders and queues webhook deliveries for `events`.
    /// Every write goes through here: the issues it touched head for the search index.
    pub fn emit(&self, state: &mut State, events: Vec<state::Event>) {
        for event in events {
            state.reindex(event.issue_id);
            webhooks::emit(self, state, &event);
        }
    }
}

/// A running Jira simulator. Dropping it stops the server.
pub struct Simulator {
    inner: Arc<Inner>,
    server: Server,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("jira::Simulator").field("base_url", &self.base_url()).finish()
    }
}

fn seed(state: &mut State, opts: &Options) {
    let users = [
        (SYNC_BOT, "Campbridge Sync", BOT_EMAIL, true),
        (MIA, "Mia Krystof", "mia@example.com", true),
        (EMMA, "Emma Richards", "emma@example.com", true),
        (ANNIE, "Annie Bryan", "annie@honchodesign.com", true),
        (JARED, "Jared Davis", "jared@honchodesign.com", false),
    ];
    for (account_id, name, email, visible) in users {
        state.users.push(User {
            account_id: account_id.to_owned(),
            display_name: name.to_owned(),
            email: email.to_owned(),
            email_visible: visible,
            time_zone: "Europe/Berlin".to_owned(),
        });
    }
    for (email, _) in &opts.accounts {
        if !state.users.iter().any(|u| &u.email == email) {
            let n = state.users.len();
            state.users.push(User {
                account_id: format!("712020:a11e0000-0000-4000-8000-0000000001{n:02}"),
                display_name: email.split('@').next().unwrap_or(email).to_owned(),
                email: email.clone(),
                email_visible: true,
                time_zone: "Europe/Berlin".to_owned(),
            });
        }
    }
    let components =
        COMPONENTS.iter().enumerate().map(|(n, name)| ((10_000 + n).to_string(), (*name).to_owned())).collect();
    state.projects.insert(
        PROJECT_KEY.to_owned(),
        Project {
            id: "10000".to_owned(),
            key: PROJECT_KEY.to_owned(),
            name: "Website".to_owned(),
            components,
            next_number: 0,
        },
    );
    state.config = opts.config.clone();
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:0`.
    pub async fn start(opts: Options) -> Result<Self, SimError> {
        let listener = Server::bind().await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let mut state = State::new();
        if opts.seed {
            seed(&mut state, &opts);
        }
        let client = Dispatcher::client()?;
        let faults = SharedFaults::default();
        let policy = RetryPolicy {
            max_retries: opts.webhook_retries,
            retry_statuses: vec![408, 409, 425, 429],
            retry_5xx: true,
            timeout: opts.webhook_timeout,
            backoff: opts.webhook_backoff,
            attempt_header: Some(("X-Atlassian-Webhook-Retry", false)),
        };
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let observer: Arc<dyn DeliveryObserver> = Arc::new(webhooks::Observer(weak.clone()));
            Inner {
                origin,
                opts,
                state: Mutex::new(state),
                calls: CallCounter::default(),
                faults: faults.clone(),
                dispatcher: Dispatcher::start(client, policy, faults, observer),
                windows: Default::default(),
            }
        });
        let server = Server::serve(listener, routes::router(inner.clone()))?;
        Ok(Self { inner, server })
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }

    /// `http://127.0.0.1:<port>` (the site URL; paths start with `/rest/api/3`).
    pub fn base_url(&self) -> String {
        self.inner.origin.clone()
    }

    /// `http://127.0.0.1:<port>/_control`.
    pub fn control_url(&self) -> String {
        format!("{}/_control", self.inner.origin)
    }

    /// The first configured `(email, token)`.
    pub fn credentials(&self) -> (String, String) {
        self.inner.opts.accounts.first().cloned().unwrap_or_default()
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

    /// Makes every write so far visible to `/search/jql` now, as if the index lag had passed.
    pub async fn refresh_index(&self) {
        self.inner.state.lock().await.refresh_index(true);
    }

    /// Replaces the behaviour switches.
    pub async fn set_config(&self, config: Config) {
        self.inner.state.lock().await.config = config;
    }

    /// Registers an admin webhook; returns its id.
    pub async fn register_webhook(&self, hook: AdminHook) -> u64 {
        control::register(&self.inner, hook).await
    }

    /// An issue as `GET /rest/api/3/issue/{key}` renders it.
    pub async fn issue(&self, key: &str) -> Option<Value> {
        control::issue(&self.inner, key).await
    }

    /// Creates an issue as `actor` from a REST create body; returns the key.
    pub async fn create_issue(&self, body: Value, actor: &str) -> Result<String, SimError> {
        control::create(&self.inner, &body, actor).await
    }

    /// Edits an issue as `actor` from a REST edit body (`fields` / `update`).
    pub async fn edit_issue(&self, key: &str, body: Value, actor: &str) -> Result<(), SimError> {
        control::edit(&self.inner, key, &body, actor).await
    }

    /// Moves an issue to the status named `to` (or with that category key) as `actor`.
    pub async fn transition_issue(&self, key: &str, to: &str, actor: &str) -> Result<(), SimError> {
        control::transition_to(&self.inner, key, to, None, actor).await
    }

    /// Moves an issue to another project as `actor`; returns its new key (fires `jira:issue_updated`).
    pub async fn move_issue(&self, key: &str, project: &str, actor: &str) -> Result<String, SimError> {
        control::move_issue(&self.inner, key, project, actor).await
    }

    /// Deletes an issue as `actor` (fires `jira:issue_deleted`).
    pub async fn delete_issue(&self, key: &str, actor: &str) -> Result<(), SimError> {
        control::delete(&self.inner, key, actor).await
    }

    /// Assigns (or with `None` unassigns) an issue as `actor`.
    pub async fn assign_issue(&self, key: &str, account: Option<&str>, actor: &str) -> Result<(), SimError> {
        let body = serde_json::json!({"fields": {"assignee": account.map(|a| serde_json::json!({"accountId": a}))}});
        control::edit(&self.inner, key, &body, actor).await
    }

    /// Comments (plain text, stored as ADF) as `actor`; returns the comment id.
    pub async fn comment_issue(&self, key: &str, text: &str, actor: &str) -> Result<u64, SimError> {
        control::comment(&self.inner, key, &adf::from_text(text), actor).await
    }

    /// Sets or clears the "Flagged" impediment as `actor`.
    pub async fn flag_issue(&self, key: &str, flagged: bool, actor: &str) -> Result<(), SimError> {
        let value = if flagged { serde_json::json!([{"value": "Impediment"}]) } else { Value::Null };
        control::edit(&self.inner, key, &serde_json::json!({"fields": {"customfield_10021": value}}), actor).await
    }
}
