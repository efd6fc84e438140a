//! Basecamp simulator: the bc3 API under `/{account_id}`, the Launchpad OAuth endpoints, unsigned
//! thin webhooks per project, the 50-requests-per-10-s rate limit, full-replacement to-do PUTs, moves
//! without webhooks, trash and archive, rich text sanitised as Basecamp stores it, ids past 2^53, and
//! per-event delivery retries (10 over about 4–5 hours, on a clock tests move) ending in silent
//! deactivation.

mod control;
pub mod launchpad;
mod render;
mod routes;
pub mod sanitize;
mod state;
mod webhooks;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

pub use render::Ctx;
pub use state::{FIRST_ID, TodoWrite};
pub use webhooks::{ATTEMPTS_PER_EVENT, retry_wait};

use crate::common::webhooks::DeliveryObserver;
use crate::common::{
    CallCounter, Calls, DeliveryRecord, Dispatcher, Faults, RetryPolicy, Server, SharedFaults, SimError,
};
use state::{State, Token};

/// Account id of the documented examples, used by default.
pub const ACCOUNT_ID: i64 = 195_539_477;
/// Seeded project "The Leto Laptop": the documented examples' project, so the vendor's real webhook bodies
/// (`tests/fixtures/basecamp`, `events/`) route to it.
pub const PROJECT_ID: i64 = 2_085_958_505;
// Every other id below, and every id the simulator hands out, is past 2^53 (9_007_199_254_740_992) and odd:
// real Basecamp ids already exceed 2^53 (reference/basecamp-api.md §1), and an odd id there does not
// survive a trip through an `f64`, so every test exercises integer precision.
/// The seeded project's to-do set.
pub const TODOSET_ID: i64 = 9_007_199_254_740_995;
/// Victor Cooper, the account owner; the default actor of control-API actions.
pub const VICTOR: i64 = 9_007_199_254_741_013;
/// Annie Bryan.
pub const ANNIE: i64 = 9_007_199_254_741_015;
/// Cheryl Walters.
pub const CHERYL: i64 = 9_007_199_254_741_017;
/// Jared Davis.
pub const JARED: i64 = 9_007_199_254_741_019;
/// The integration's own person, owner of the default access token.
pub const SYNC_BOT: i64 = 9_007_199_254_741_027;
/// Default access token (owned by [`SYNC_BOT`]).
pub const ACCESS_TOKEN: &str = "bc-sim-access-token";
/// Default refresh token.
pub const REFRESH_TOKEN: &str = "bc-sim-refresh-token";
/// Default OAuth client id.
pub const CLIENT_ID: &str = "bc-sim-client";
/// Default OAuth client secret.
pub const CLIENT_SECRET: &str = "bc-sim-client-secret";
/// The redirect URI the simulator's OAuth app is registered with at start (`campbridge auth basecamp`'s
/// default).
pub const REDIRECT_URI: &str = "http://127.0.0.1:8915/callback";
/// The seeded to-do lists.
pub const SEEDED_LISTS: [&str; 3] = ["Sprint 1", "Bugs", "Backlog"];

/// A fixed-window-free rate limit: at most `requests` within any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: usize,
    /// Window length.
    pub window: Duration,
}

/// Start-up options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Account id in every API path.
    pub account_id: i64,
    /// Access tokens accepted at start (all owned by [`SYNC_BOT`]).
    pub access_tokens: Vec<String>,
    /// Refresh token accepted by `/authorization/token`.
    pub refresh_token: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// The OAuth app's registered redirect URIs (Launchpad refuses any other).
    pub redirect_uris: Vec<String>,
    /// How long an authorization code can be exchanged (Launchpad's codes are "time-limited"; the
    /// limit is not documented, 10 minutes is OAuth 2's recommended maximum).
    pub oauth_code_ttl: Duration,
    /// Page size of paginated collections (Basecamp's first page holds 15).
    pub page_size: usize,
    /// Rate limit across all API requests (Basecamp: 50 per 10 s per IP); `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Receiver timeout per delivery (Basecamp: about 10 s; a slow answer is a failed attempt).
    pub webhook_timeout: Duration,
    /// How fast the delivery-retry clock runs against real time (1.0 = real time: a failed delivery is
    /// retried 3 s later, the tenth attempt comes after about 4–5 hours). Tests jump it with
    /// [`Simulator::advance_clock`].
    pub clock_scale: f64,
    /// Origin used for `app_url` values.
    pub app_origin: String,
    /// Seed the default people, project and lists.
    pub seed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            account_id: ACCOUNT_ID,
            access_tokens: vec![ACCESS_TOKEN.to_owned()],
            refresh_token: REFRESH_TOKEN.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uris: vec![REDIRECT_URI.to_owned()],
            oauth_code_ttl: Duration::from_secs(10 * 60),
            page_size: 15,
            rate_limit: Some(RateLimit { requests: 50, window: Duration::from_secs(10) }),
            webhook_timeout: Duration::from_secs(10),
            clock_scale: 1.0,
            app_origin: "https://3.basecamp.com".to_owned(),
            seed: true,
        }
    }
}

/// A partial edit made "as a person" through the control API: only the given fields change
/// (the simulator does the read-merge-replace a client would have to do).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TodoEdit {
    pub content: Option<String>,
    pub description: Option<String>,
    pub due_on: Option<String>,
    pub clear_due_on: bool,
    pub assignee_ids: Option<Vec<i64>>,
}

pub(crate) struct Inner {
    pub ctx: Ctx,
    pub opts: Options,
    pub state: Mutex<State>,
    pub calls: CallCounter,
    pub faults: SharedFaults,
    pub dispatcher: Dispatcher,
    /// The clock delivery retries wait on.
    pub clock: webhooks::SimClock,
    /// Deliveries waiting to be retried.
    pub retries: webhooks::Retries,
    /// Launchpad's side: the app's redirect URIs, open authorization pages and issued codes.
    pub launchpad: StdMutex<launchpad::Grants>,
    rate: StdMutex<VecDeque<Instant>>,
    /// Requests the rate limit refused with 429.
    refused: std::sync::atomic::AtomicU64,
}

/// A running Basecamp simulator. Dropping it stops the server.
pub struct Simulator {
    inner: Arc<Inner>,
    server: Server,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("basecamp::Simulator").field("base_url", &self.base_url()).finish()
    }
}

impl Inner {
    /// Counts this request against the rate limit; `Some(retry_after_secs)` when refused.
    pub fn rate_limited(&self) -> Option<u64> {
        let limit = self.opts.rate_limit?;
        let now = Instant::now();
        let mut window = self.rate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while window.front().is_some_and(|at| now.duration_since(*at) >= limit.window) {
            window.pop_front();
        }
        if window.len() >= limit.requests {
            let oldest = window.front().copied().unwrap_or(now);
            let wait = limit.window.saturating_sub(now.duration_since(oldest));
            self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).map(|s| s.max(1));
        }
        window.push_back(now);
        None
    }

    /// Renders and queues webhook deliveries for `events`.
    pub fn emit(&self, state: &mut State, events: Vec<state::Event>) {
        for event in events {
            webhooks::emit(self, state, event);
        }
    }
}

fn seed(ctx: &Ctx, state: &mut State, opts: &Options) {
    let people: [(i64, &str, &str, &str, bool); 8] = [
        (VICTOR, "Victor Cooper", "victor@honchodesign.com", "Chief Strategist", true),
        (ANNIE, "Annie Bryan", "annie@honchodesign.com", "Central Markets Manager", false),
        (CHERYL, "Cheryl Walters", "cheryl@honchodesign.com", "Senior Designer", false),
        (JARED, "Jared Davis", "jared@honchodesign.com", "Developer", false),
        (9_007_199_254_741_021, "Josh Fiske", "josh@honchodesign.com", "Developer", false),
        (9_007_199_254_741_023, "Nicole Katz", "nicole@honchodesign.com", "Producer", false),
        (9_007_199_254_741_025, "Steve Marsh", "steve@honchodesign.com", "QA Lead", false),
        (SYNC_BOT, "Campbridge Sync", "campbridge@honchodesign.com", "Integration", false),
    ];
    let fixture_victor = render::person_from_fixture();
    for (id, name, email, title, admin) in people {
        let person = if id == VICTOR && fixture_victor.is_object() {
            let mut victor = fixture_victor.clone();
            victor["id"] = id.into();
            victor
        } else {
            render::new_person(ctx, id, name, email, title, admin)
        };
        state.people.insert(id, person);
    }
    for token in &opts.access_tokens {
        state.tokens.insert(token.clone(), Token { person_id: SYNC_BOT, expired: false });
    }
    state.refresh_tokens.insert(opts.refresh_token.clone(), SYNC_BOT);
    if !opts.seed {
        return;
    }
    let project = state.create_project("The Leto Laptop", "Laptop product launch.", Some(PROJECT_ID), Some(TODOSET_ID));
    for name in SEEDED_LISTS {
        // Seeding cannot fail: the project exists and the names are not blank.
        state.create_todolist(project, name, "", VICTOR).ok();
    }
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:0`.
    pub async fn start(opts: Options) -> Result<Self, SimError> {
        let listener = Server::bind().await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let ctx = Ctx { origin, account_id: opts.account_id, app_origin: opts.app_origin.clone() };
        let mut state = State::new(FIRST_ID);
        seed(&ctx, &mut state, &opts);
        let client = Dispatcher::client()?;
        let faults = SharedFaults::default();
        let policy = RetryPolicy {
            max_retries: 0,
            retry_statuses: Vec::new(),
            retry_5xx: false,
            timeout: opts.webhook_timeout,
            backoff: Duration::ZERO,
            attempt_header: None,
        };
        let grants = launchpad::Grants::new(&opts.redirect_uris);
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let observer: Arc<dyn DeliveryObserver> = Arc::new(webhooks::Observer(weak.clone()));
            Inner {
                ctx,
                state: Mutex::new(state),
                calls: CallCounter::default(),
                faults: faults.clone(),
                dispatcher: Dispatcher::start(client, policy, faults, observer),
                clock: webhooks::SimClock::new(opts.clock_scale),
                retries: webhooks::Retries::default(),
                opts,
                launchpad: StdMutex::new(grants),
                rate: StdMutex::new(VecDeque::new()),
                refused: std::sync::atomic::AtomicU64::new(0),
            }
        });
        let server = Server::serve(listener, routes::router(inner.clone()))?;
        // Sends retries as they fall due; ends when the simulator is gone.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(sim) = weak.upgrade() else { return };
                webhooks::send_due(&sim);
            }
        });
        Ok(Self { inner, server })
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }

    /// `http://127.0.0.1:<port>/{account_id}`: the API base URL.
    pub fn base_url(&self) -> String {
        self.inner.ctx.base_url()
    }

    /// `http://127.0.0.1:<port>`: where `/authorization/token` and `/authorization.json` live.
    pub fn launchpad_url(&self) -> String {
        self.inner.ctx.origin.clone()
    }

    /// `http://127.0.0.1:<port>/_control`.
    pub fn control_url(&self) -> String {
        format!("{}/_control", self.inner.ctx.origin)
    }

    /// The account id.
    pub fn account_id(&self) -> i64 {
        self.inner.opts.account_id
    }

    /// The first configured access token.
    pub fn access_token(&self) -> String {
        self.inner.opts.access_tokens.first().cloned().unwrap_or_default()
    }

    /// Request counts per endpoint.
    pub fn calls(&self) -> Calls {
        self.inner.calls.snapshot()
    }

    /// Forgets the request counts.
    pub fn reset_calls(&self) {
        self.inner.calls.reset();
    }

    /// How many requests the rate limit (50 per 10 s) answered with 429 so far.
    pub fn rate_limit_refusals(&self) -> u64 {
        self.inner.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.faults.set(faults);
    }

    /// The faults injected so far, per kind.
    pub fn fault_counts(&self) -> crate::common::faults::FaultCounts {
        self.inner.faults.counts()
    }

    /// The injected faults.
    pub fn faults(&self) -> Faults {
        self.inner.faults.get()
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.dispatcher.log()
    }

    /// Waits until every queued webhook delivery has been attempted.
    pub async fn settle(&self) {
        self.inner.dispatcher.settle().await;
    }

    /// Sends deliveries held by a reorder fault, newest first.
    pub fn release_held(&self) {
        self.inner.dispatcher.release_held();
    }

    /// Id of the seeded (or any named) to-do list.
    pub async fn list_id(&self, name: &str) -> Option<i64> {
        self.inner.state.lock().await.todolists.values().find(|list| list.name == name).map(|list| list.id)
    }

    /// Any record rendered as the API would (`kind`: projects, todosets, todolists, todos,
    /// comments, webhooks, people).
    pub async fn record(&self, kind: &str, id: i64) -> Option<Value> {
        control::record(&self.inner, kind, id).await
    }

    /// Creates a project with a to-do set; returns its id.
    pub async fn create_project(&self, name: &str) -> i64 {
        self.inner.state.lock().await.create_project(name, "", None, None)
    }

    /// Creates a to-do list as `actor`.
    pub async fn create_todolist(&self, project_id: i64, name: &str, actor: i64) -> Result<i64, SimError> {
        control::create_todolist(&self.inner, project_id, name, actor).await
    }

    /// Creates a to-do as `actor` (fires `todo_created`, and `todo_assignment_changed` when assigned).
    pub async fn create_todo(&self, list_id: i64, write: TodoWrite, actor: i64) -> Result<i64, SimError> {
        control::create_todo(&self.inner, list_id, write, actor).await
    }

    /// Edits only the given fields of a to-do as `actor`.
    pub async fn edit_todo(&self, id: i64, edit: TodoEdit, actor: i64) -> Result<(), SimError> {
        control::edit_todo(&self.inner, id, edit, actor).await
    }

    /// Completes a to-do as `actor`.
    pub async fn complete_todo(&self, id: i64, actor: i64) -> Result<(), SimError> {
        control::set_completed(&self.inner, id, true, actor).await
    }

    /// Uncompletes a to-do as `actor`.
    pub async fn uncomplete_todo(&self, id: i64, actor: i64) -> Result<(), SimError> {
        control::set_completed(&self.inner, id, false, actor).await
    }

    /// Replaces a to-do's assignees as `actor`.
    pub async fn assign_todo(&self, id: i64, assignee_ids: Vec<i64>, actor: i64) -> Result<(), SimError> {
        let edit = TodoEdit { assignee_ids: Some(assignee_ids), ..TodoEdit::default() };
        control::edit_todo(&self.inner, id, edit, actor).await
    }

    /// Comments on a recording as `actor`; returns the comment id.
    pub async fn comment(&self, recording_id: i64, content: &str, actor: i64) -> Result<i64, SimError> {
        control::comment(&self.inner, recording_id, content, actor).await
    }

    /// Renames a to-do list as `actor` (fires `todolist_title_updated`; its to-dos get no events).
    pub async fn rename_todolist(&self, id: i64, name: &str, actor: i64) -> Result<(), SimError> {
        let mut state = self.inner.state.lock().await;
        let description = state.todolists.get(&id).map(|l| l.description.clone()).unwrap_or_default();
        let events = state.replace_todolist(id, name, &description, actor)?;
        self.inner.emit(&mut state, events);
        Ok(())
    }

    /// Trashes, archives or restores (`active`) a recording as `actor`, as
    /// `PUT /recordings/{id}/status/{status}.json` does.
    pub async fn set_status(&self, id: i64, status: &str, actor: i64) -> Result<(), SimError> {
        control::set_status(&self.inner, id, status, actor).await
    }

    /// Moves a to-do to `position` in list `parent_id` (or its own list), as
    /// `PUT /todos/{id}/position.json` does: no webhook.
    pub async fn move_todo(&self, id: i64, parent_id: Option<i64>, position: i64) -> Result<(), SimError> {
        self.inner.state.lock().await.reposition_todo(id, position, parent_id)
    }

    /// Copies a to-do into `list_id` as `actor`; returns the copy's id (fires `todo_copied`).
    pub async fn copy_todo(&self, id: i64, list_id: i64, actor: i64) -> Result<i64, SimError> {
        control::copy_todo(&self.inner, id, list_id, actor).await
    }

    /// Deletes a trashed recording for good, as Basecamp's trash purge does (fires `X_deleted`).
    pub async fn delete_recording(&self, id: i64, actor: i64) -> Result<(), SimError> {
        control::delete_recording(&self.inner, id, actor).await
    }

    /// Moves the delivery-retry clock forward by `by`, sending every retry that falls due on the way
    /// in order (each failed retry schedules the next), and waits for those deliveries.
    pub async fn advance_clock(&self, by: Duration) {
        let target = self.inner.clock.now() + by;
        loop {
            self.settle().await;
            match self.inner.retries.next_due() {
                Some(due) if due <= target => {
                    self.inner.clock.advance_to(due);
                    webhooks::send_due(&self.inner);
                }
                _ => break,
            }
        }
        self.inner.clock.advance_to(target);
    }

    /// Deliveries waiting for a retry.
    pub fn retries_waiting(&self) -> usize {
        self.inner.retries.waiting()
    }

    /// Marks an access token expired (requests with it get 401 until refreshed).
    pub async fn expire_token(&self, token: &str) {
        if let Some(found) = self.inner.state.lock().await.tokens.get_mut(token) {
            found.expired = true;
        }
    }
}
