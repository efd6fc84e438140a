//! Local mode against the built-in simulators: the [`Stack`] (three simulators, a config pointing at
//! them, the real server and workers on SQLite, webhooks registered) and the demo story `make run` plays.
//! The end-to-end tests drive the same stack.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};
use secrecy::SecretString;
use serde_json::Value;
use shared::adapters::memory::MemorySecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::clients::basecamp::SYNC_WEBHOOK_TYPES;
use shared::config::Config;
use shared::domain::{BuildState, DevItemRef, PairKey, RouteId, TodoId};
use shared::ports::{Clock, PairStore, SecretStore, SystemClock};
use shared::sync::ReconcileReport;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::server::{self, ReconcileHandle, Stats};
use crate::wiring;

/// Secrets the demo hands its simulators and itself (they only exist on loopback, in memory).
const WEBHOOK_KEY: &str = "demo-webhook-key";
const JIRA_WEBHOOK_SECRET: &str = "demo-jira-webhook-secret";
const BITBUCKET_WEBHOOK_SECRET: &str = "demo-bitbucket-webhook-secret";

/// What the stack's route looks like.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where the SQLite file goes (a fresh directory per stack).
    pub dir: PathBuf,
    pub conflict_policy: &'static str,
    pub status_strategy: &'static str,
    pub title_owner: &'static str,
    pub assignee_owner: &'static str,
    /// An opt-in marker for the route's filter.
    pub marker: Option<&'static str>,
    /// Values for the route's `[routes.create_fields]` (TOML `key = value` lines).
    pub create_fields: Option<&'static str>,
    /// Basecamp's 50 requests / 10 s limit (on by default, as upstream).
    pub basecamp_rate_limit: bool,
    pub jira: jira_sim::Config,
    /// Mapper workers.
    pub workers: usize,
    /// Seconds a PENDING claim is leased for.
    pub lease_secs: u64,
    /// How long the engine lets Jira's search catch up before trusting a marker search: twice the Jira
    /// simulator's index lag (`jira.search_lag_ms`), as a deployment sets it above Jira's.
    pub search_settle_ms: Option<u64>,
    /// `[server] reconcile_every`: the server's reconcile interval (a pass also runs at start, and
    /// [`Stack::reconcile`] asks for one).
    pub reconcile_every: &'static str,
    /// The server's timeouts and connection limit.
    pub limits: server::Limits,
}

impl StackOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            conflict_policy: "last-writer-wins",
            status_strategy: "dev-owned",
            title_owner: "both",
            assignee_owner: "basecamp",
            marker: None,
            create_fields: None,
            basecamp_rate_limit: true,
            jira: jira_sim::Config::default(),
            workers: 2,
            lease_secs: 60,
            search_settle_ms: None,
            reconcile_every: "5m",
            limits: server::Limits::default(),
        }
    }
}

/// Three simulators and a running campbridge server wired to them.
pub struct Stack {
    pub basecamp: bc_sim::Simulator,
    pub jira: jira_sim::Simulator,
    pub bitbucket: bb_sim::Simulator,
    pub config: Config,
    pub config_text: String,
    pub store: SqliteStore,
    /// `http://127.0.0.1:<port>` of the server.
    pub server_url: String,
    pub urls: Vec<(String, String)>,
    pub stats: Arc<Stats>,
    pub route: RouteId,
    opts: StackOptions,
    secrets: Arc<dyn SecretStore>,
    addr: std::net::SocketAddr,
    reconcile: Option<ReconcileHandle>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The config the demo writes, pointing at the simulators.
/// The `campbridge.toml` of a deployment against these simulators: route `web` (the simulators' project and
/// Jira project WEB) with `opts`' rules, `store` as the `[store]` section's body. The demo, the tests and the
/// bench all configure themselves through this one text.
pub fn simulator_config(
    opts: &StackOptions,
    store: &str,
    bc: &bc_sim::Simulator,
    jira: &jira_sim::Simulator,
    bb: &bb_sim::Simulator,
) -> String {
    let bc_host = bc.base_url().trim_end_matches(&format!("/{}", bc.account_id())).to_owned();
    let (ws, repo) = bb.repository();
    let marker = opts.marker.map(|m| format!("marker = {m:?}\n")).unwrap_or_default();
    format!(
        r#"# campbridge against the built-in simulators on 127.0.0.1.
[server]
listen = "127.0.0.1:0"
webhook_key = {{ secret = "webhook-key" }}
allow_insecure_loopback_upstreams = true
reconcile_every = {reconcile_every:?}

[store]
{store}

[basecamp]
account_id = {account}
base_url = {bc_host:?}
launchpad_url = {launchpad:?}
user_agent = "campbridge demo (demo@campbridge.invalid)"
access_token = {{ secret = "basecamp-access-token" }}
client_id = {client_id:?}
client_secret = {{ secret = "basecamp-client-secret" }}
refresh_token = {{ secret = "basecamp-refresh-token" }}

[jira]
site = {jira_url:?}
email = {jira_email:?}
api_token = {{ secret = "jira-api-token" }}
webhook_secret = {{ secret = "jira-webhook-secret" }}

[bitbucket]
workspace = {ws:?}
base_url = "{bb_url}/2.0"
email = {bb_email:?}
api_token = {{ secret = "bitbucket-api-token" }}
webhook_secret = {{ secret = "bitbucket-webhook-secret" }}
repos = ["{ws}/{repo}"]

# The simulators' limits: Basecamp's 50 requests / 10 s when on (the default pace stays below it); the
# Jira and Bitbucket simulators enforce none.
[pacing]
basecamp = {bc_pacing:?}
jira = "off"
jira_issue_writes = "off"
bitbucket = "off"

[[users]]
name = "Annie Bryan"
basecamp = {annie}
jira = {jira_annie:?}

[[users]]
name = "Jared Davis"
basecamp = {jared}
jira = {jira_jared:?}

[[users]]
name = "Victor Cooper"
basecamp = {victor}
jira = {jira_emma:?}

[[routes]]
id = "web"
basecamp_project = {project}
jira_project = "WEB"
code = "WEB"
todolists = ["Sprint *", "Bugs"]
{marker}triage = {{ jira = {jira_mia:?} }}
status_strategy = {status:?}
conflict_policy = {policy:?}

[routes.ownership]
title = {title_owner:?}
assignee = {assignee_owner:?}

[[routes.lists]]
list = "Bugs"
labels = ["bug"]
{create_fields}"#,
        create_fields = opts.create_fields.map(|f| format!("\n[routes.create_fields]\n{f}\n")).unwrap_or_default(),
        reconcile_every = opts.reconcile_every,
        bc_pacing = if opts.basecamp_rate_limit { "45/10s" } else { "off" },
        account = bc.account_id(),
        launchpad = bc.launchpad_url(),
        client_id = bc_sim::CLIENT_ID,
        jira_url = jira.base_url(),
        jira_email = jira_sim::BOT_EMAIL,
        bb_url = bb.base_url().trim_end_matches('/').trim_end_matches("/2.0"),
        bb_email = bb.credentials().0,
        annie = bc_sim::ANNIE,
        jira_annie = jira_sim::ANNIE,
        jared = bc_sim::JARED,
        jira_jared = jira_sim::JARED,
        victor = bc_sim::VICTOR,
        jira_emma = jira_sim::EMMA,
        jira_mia = jira_sim::MIA,
        project = bc_sim::PROJECT_ID,
        status = opts.status_strategy,
        policy = opts.conflict_policy,
        title_owner = opts.title_owner,
        assignee_owner = opts.assignee_owner,
    )
}

/// The secrets the demo hands its simulators and itself (they only exist on loopback, in memory).
fn demo_secrets(bitbucket: &bb_sim::Simulator) -> MemorySecrets {
    MemorySecrets::with([
        ("webhook-key", WEBHOOK_KEY),
        ("basecamp-access-token", bc_sim::ACCESS_TOKEN),
        ("basecamp-client-secret", bc_sim::CLIENT_SECRET),
        ("basecamp-refresh-token", bc_sim::REFRESH_TOKEN),
        ("jira-api-token", jira_sim::API_TOKEN),
        ("jira-webhook-secret", JIRA_WEBHOOK_SECRET),
        ("bitbucket-api-token", bitbucket.credentials().1.as_str()),
        // For configs that switch [bitbucket] to a repository access token.
        ("bitbucket-access-token", bb_sim::ACCESS_TOKEN),
        ("bitbucket-webhook-secret", BITBUCKET_WEBHOOK_SECRET),
    ])
}

/// Starts a stack in a fresh directory under the system temp dir (`<suite>/<name>-…`), for tests.
pub async fn start_in_temp(suite: &str, name: &str, edit: impl FnOnce(&mut StackOptions)) -> anyhow::Result<Stack> {
    let mut opts = StackOptions::new(fresh_dir(&std::env::temp_dir().join(suite), name));
    edit(&mut opts);
    Stack::start(opts).await
}

impl Stack {
    /// A fresh copy of the stack's secret store (same names and values), for commands run beside it.
    pub fn secrets(&self) -> Arc<dyn SecretStore> {
        Arc::new(demo_secrets(&self.bitbucket))
    }

    /// Starts the simulators, writes the config into `opts.dir`, starts the server and its workers on
    /// 127.0.0.1, and registers the webhooks in the simulators.
    pub async fn start(opts: StackOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
        let basecamp = bc_sim::Simulator::start(bc_sim::Options {
            rate_limit: if opts.basecamp_rate_limit { bc_sim::Options::default().rate_limit } else { None },
            ..bc_sim::Options::default()
        })
        .await?;
        let jira =
            jira_sim::Simulator::start(jira_sim::Options { config: opts.jira.clone(), ..jira_sim::Options::default() })
                .await?;
        let bitbucket = bb_sim::Simulator::start(bb_sim::Options::default()).await?;

        let store = format!("kind = \"sqlite\"\npath = {:?}", opts.dir.join("campbridge.db").display().to_string());
        let text = simulator_config(&opts, &store, &basecamp, &jira, &bitbucket);
        let config_path = opts.dir.join("campbridge.toml");
        std::fs::write(&config_path, &text).with_context(|| format!("writing {}", config_path.display()))?;
        let config = Config::parse(&text, "campbridge.toml").map_err(|e| anyhow::anyhow!("demo config: {e}"))?;

        let secrets: Arc<dyn SecretStore> = Arc::new(demo_secrets(&bitbucket));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = wiring::open_store(&config, clock)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server_url = format!("http://{addr}");
        let stats = Arc::new(Stats::default());
        let route = config.routes.first().map(|r| r.id.clone()).context("the demo config has a route")?;
        let mut stack = Self {
            basecamp,
            jira,
            bitbucket,
            config,
            config_text: text,
            store,
            server_url,
            urls: Vec::new(),
            stats,
            route,
            opts,
            secrets,
            addr,
            reconcile: None,
            shutdown: None,
            server: None,
        };
        stack.launch(listener, "local-1", true).await?;
        Ok(stack)
    }

    /// Wires a server over the stack's store, registers the webhooks in the simulators when `register`
    /// (before the server's first reconcile pass looks for them), starts the server with its workers on
    /// `listener`, and waits for that first pass, so what a test does next never races it.
    async fn launch(&mut self, listener: tokio::net::TcpListener, worker: &str, register: bool) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut wired = wiring::wire(&self.config, self.store.clone(), self.secrets.clone(), clock, worker).await?;
        if register {
            self.urls = wiring::webhook_urls(&self.config, &wired.receivers, &self.server_url);
            self.register_webhooks(&wired.receivers).await?;
        }
        let mut settings = (*wired.engine.settings).clone();
        settings.lease = Duration::from_secs(self.opts.lease_secs);
        settings.search_settle =
            Duration::from_millis(self.opts.search_settle_ms.unwrap_or(2 * self.opts.jira.search_lag_ms));
        wired.engine.settings = Arc::new(settings);
        let (tx, rx) = oneshot::channel::<()>();
        let stop = async {
            // Stop when told, or when the stack is dropped (the sender goes away).
            let _stopped = rx.await;
        };
        let (reconciling, handle) = wired.reconcile.unzip();
        let reconciles = reconciling.is_some();
        self.reconcile = handle;
        let passes = self.stats.reconcile_passes.load(Relaxed);
        let workers = self.opts.workers;
        let (stats, limits) = (self.stats.clone(), self.opts.limits);
        let run = server::run_with(listener, wired.app, wired.engine, workers, stats, reconciling, limits, stop);
        self.server = Some(tokio::spawn(run));
        self.shutdown = Some(tx);
        if reconciles {
            let stats = self.stats.clone();
            self.wait_for("the reconcile pass at start", 20, || {
                let done = stats.reconcile_passes.load(Relaxed) > passes;
                async move { done.then_some(()) }
            })
            .await?;
        }
        Ok(())
    }

    /// Stops the server (as a crash or a deploy would) and starts a fresh one, as worker `worker`, on the
    /// same address and SQLite file.
    pub async fn restart(&mut self, worker: &str) -> anyhow::Result<()> {
        self.stop_server().await?;
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.launch(listener, worker, false).await?;
        Ok(())
    }

    async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _already_stopped = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await??;
        }
        Ok(())
    }

    async fn register_webhooks(&self, receivers: &shared::ingest::Receivers) -> anyhow::Result<()> {
        // Basecamp: through the real client, per routed project, with explicit types.
        let client = basecamp_client(self)?;
        for r in &self.config.routes {
            let url = format!("{}/basecamp/{}", self.server_url, receivers.route_token(&r.id));
            client.create_webhook(r.project, &url, SYNC_WEBHOOK_TYPES).await?;
        }
        // Jira admin webhooks and Bitbucket repository hooks: as an admin would, with the secrets.
        self.jira
            .register_webhook(jira_sim::AdminHook {
                id: 0,
                url: format!("{}/jira", self.server_url),
                secret: Some(JIRA_WEBHOOK_SECRET.to_owned()),
                events: Vec::new(),
                jql: None,
            })
            .await;
        self.bitbucket
            .register_webhook(
                &format!("{}/bitbucket", self.server_url),
                Some(BITBUCKET_WEBHOOK_SECRET),
                &[
                    "pullrequest:created",
                    "pullrequest:updated",
                    "pullrequest:fulfilled",
                    "pullrequest:rejected",
                    "repo:commit_status_created",
                    "repo:commit_status_updated",
                ],
            )
            .await;
        Ok(())
    }

    /// Has the server run a reconcile pass now (after the one in hand, if any) and returns its report.
    pub async fn reconcile(&self) -> anyhow::Result<ReconcileReport> {
        let handle = self.reconcile.as_ref().context("the stack's reconciler is off (reconcile_every)")?;
        handle.pass().await.context("the server stopped before the reconcile pass")
    }

    /// Stops the server gracefully (workers finish their batch) and the simulators.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_server().await
    }

    /// Polls `check` until it yields a value, for at most `secs` seconds (webhooks and workers are
    /// asynchronous). Not a timing assertion: the bound only stops a broken test from hanging.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, secs: u64, mut check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A PM retitles to-do `todo` and a developer retitles its issue `key` before the sync sees either
    /// change (both sides' webhooks are held, then released together): a conflict on the title.
    pub async fn edit_title_on_both_sides(
        &self,
        todo: i64,
        key: &str,
        pm_title: &str,
        dev_title: &str,
    ) -> anyhow::Result<()> {
        use campbridge_simulators::common::faults::{Faults, WebhookFaults};
        let hold = Faults { webhook: WebhookFaults { reorder_hold: 1000, ..Default::default() }, ..Default::default() };
        self.basecamp.set_faults(hold.clone());
        self.jira.set_faults(hold);
        let edit = bc_sim::TodoEdit { content: Some(pm_title.into()), ..Default::default() };
        self.basecamp.edit_todo(todo, edit, bc_sim::ANNIE).await?;
        // The developer's edit comes later, so last-writer-wins has a winner.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let summary = serde_json::json!({"fields": {"summary": format!("[BC][WEB] {dev_title}")}});
        self.jira.edit_issue(key, summary, jira_sim::JARED).await?;
        self.basecamp.set_faults(Faults::default());
        self.jira.set_faults(Faults::default());
        self.basecamp.release_held();
        self.jira.release_held();
        self.settle().await
    }

    /// Waits until every webhook was delivered and the queue is empty with nothing in flight.
    pub async fn settle(&self) -> anyhow::Result<()> {
        use shared::ports::QueueOperator;
        for _ in 0..3 {
            self.basecamp.settle().await;
            self.jira.settle().await;
            self.bitbucket.settle().await;
            let store = self.store.clone();
            self.wait_for("the queue to drain", 30, || {
                let store = store.clone();
                async move { (store.depth().await.ok()? == 0).then_some(()) }
            })
            .await?;
        }
        Ok(())
    }

    /// The dev item paired with to-do `todo`, if any.
    pub async fn item_of(&self, todo: i64) -> Option<DevItemRef> {
        let key = PairKey { route: self.route.clone(), todo: TodoId(todo) };
        self.store.get(&key).await.ok().flatten().and_then(|p| p.item)
    }

    /// The Jira issue paired with `todo`, as the simulator holds it.
    pub async fn issue_of(&self, todo: i64) -> Option<Value> {
        let item = self.item_of(todo).await?;
        self.jira.issue(item.display_name()).await
    }

    /// Waits for `todo`'s issue to exist and returns it.
    pub async fn wait_issue(&self, todo: i64) -> anyhow::Result<Value> {
        self.wait_for(&format!("the issue for to-do {todo}"), 20, || self.issue_of(todo)).await
    }

    /// The plain text of every comment on Jira issue `key`.
    pub async fn jira_comments(&self, key: &str) -> anyhow::Result<Vec<String>> {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/rest/api/3/issue/{key}/comment", self.jira.base_url()))
            .basic_auth(jira_sim::BOT_EMAIL, Some(jira_sim::API_TOKEN))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let comments = page["comments"].as_array().cloned().unwrap_or_default();
        Ok(comments.iter().map(|c| shared::richtext::adf_to_text(&c["body"])).collect())
    }

    /// The HTML of every comment on Basecamp to-do `todo`, oldest first.
    pub async fn basecamp_comments(&self, todo: i64) -> anyhow::Result<Vec<String>> {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/recordings/{todo}/comments.json", self.basecamp.base_url()))
            .bearer_auth(bc_sim::ACCESS_TOKEN)
            .header("User-Agent", "campbridge demo (demo@campbridge.invalid)")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let comments = page.as_array().cloned().unwrap_or_default();
        Ok(comments.iter().filter_map(|c| c["content"].as_str().map(str::to_owned)).collect())
    }

    /// The id of the seeded to-do list `name`.
    pub async fn list(&self, name: &str) -> anyhow::Result<i64> {
        self.basecamp.list_id(name).await.with_context(|| format!("no list {name:?} in the simulator"))
    }

    /// Writes to the simulators (non-GET API calls), per side.
    pub fn upstream_writes(&self) -> (u64, u64) {
        let writes = |calls: campbridge_simulators::common::calls::Calls| {
            calls.0.iter().filter(|(k, _)| !k.starts_with("GET ")).map(|(_, n)| n).sum::<u64>()
        };
        (writes(self.basecamp.calls()), writes(self.jira.calls()))
    }
}

fn basecamp_client(stack: &Stack) -> anyhow::Result<shared::clients::basecamp::BasecampClient> {
    use shared::clients::basecamp::{BasecampClient, BasecampConfig};
    use shared::clients::http::{BaseUrl, HttpSettings};
    use shared::outbound::{OutboundGuard, OutboundPolicy};
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecrets::with([("access", bc_sim::ACCESS_TOKEN)]));
    Ok(BasecampClient::new(
        BasecampConfig {
            base_url: BaseUrl::parse(&format!("{}/", stack.basecamp.base_url()))?,
            token_url: url::Url::parse(&format!("{}/authorization/token", stack.basecamp.launchpad_url()))?,
            client_id: String::new(),
            client_secret: SecretString::from(String::new()),
            access_token_secret: "access".to_owned(),
            refresh_token_secret: String::new(),
            // The demo's own client for the simulators on 127.0.0.1: the test allowance, by design.
            http: HttpSettings::new("campbridge demo (demo@campbridge.invalid)")
                .with_guard(OutboundGuard::new(OutboundPolicy::insecure_loopback_for_tests())),
            default_retry_after: Duration::from_secs(10),
        },
        secrets,
    )?)
}

/// A fresh directory for a stack's files under `base`.
pub fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    base.join(format!("{name}-{}-{nanos}", std::process::id()))
}

/// What the demo prints at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub paired: usize,
    pub basecamp_calls: u64,
    pub jira_calls: u64,
    pub echoes_suppressed: usize,
    pub conflicts: usize,
}

fn step(n: usize, text: &str) {
    println!("\n[{n}] {text}");
}

fn result(text: &str) {
    println!("    → {text}");
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

/// Plays the demo story against `stack`, printing a timeline, and returns the summary.
pub async fn play(stack: &Stack) -> anyhow::Result<Summary> {
    use std::sync::atomic::Ordering::Relaxed;
    let sprint = stack.list("Sprint 1").await?;
    let backlog = stack.list("Backlog").await?;

    step(1, "Annie (PM) creates a to-do in Basecamp › Sprint 1: \"Fix login redirect\", for Jared, due 2026-12-01");
    let todo = stack
        .basecamp
        .create_todo(
            sprint,
            bc_sim::TodoWrite {
                content: Some("Fix login redirect".into()),
                description: Some(
                    "<div>After login, users land on the home page instead of where they were.</div>".into(),
                ),
                assignee_ids: Some(vec![bc_sim::JARED]),
                due_on: Some("2026-12-01".into()),
                ..Default::default()
            },
            bc_sim::ANNIE,
        )
        .await?;
    let issue = stack.wait_issue(todo).await?;
    let key = issue["key"].as_str().unwrap_or_default().to_owned();
    result(&format!(
        "Jira {key} \"{}\" — assignee {}, due {}",
        field(&issue, &["fields", "summary"]).as_str().unwrap_or_default(),
        field(&issue, &["fields", "assignee", "displayName"]).as_str().unwrap_or("nobody"),
        field(&issue, &["fields", "duedate"]).as_str().unwrap_or("none"),
    ));
    stack.settle().await?;
    let comments =
        stack.basecamp.record("todos", todo).await.map(|t| t["comments_count"].as_u64().unwrap_or(0)).unwrap_or(0);
    result(&format!("remote link on {key} back to the to-do; {comments} link comment on the to-do"));

    step(2, "Annie renames the to-do to \"Fix login redirect on Safari\"");
    stack
        .basecamp
        .edit_todo(
            todo,
            bc_sim::TodoEdit { content: Some("Fix login redirect on Safari".into()), ..Default::default() },
            bc_sim::ANNIE,
        )
        .await?;
    let summary = stack
        .wait_for("the summary to follow", 20, || async {
            let issue = stack.issue_of(todo).await?;
            let s = field(&issue, &["fields", "summary"]).as_str()?.to_owned();
            s.ends_with("on Safari").then_some(s)
        })
        .await?;
    result(&format!("{key} summary is now \"{summary}\""));
    stack.settle().await?;

    step(3, "Annie comments on the to-do: \"DEV: it only happens on Safari 17\" (and \"Thanks!\", which stays put)");
    stack.basecamp.comment(todo, "<div>DEV: it only happens on Safari 17</div>", bc_sim::ANNIE).await?;
    stack.basecamp.comment(todo, "<div>Thanks!</div>", bc_sim::ANNIE).await?;
    let mirrored = stack
        .wait_for("the DEV: comment in Jira", 20, || async {
            let comments = stack.jira_comments(&key).await.ok()?;
            comments.into_iter().find(|c| c.contains("Safari 17"))
        })
        .await?;
    result(&format!("{key} has the comment: \"{}\"", mirrored.replace('\n', " ")));
    stack.settle().await?;

    let branch = format!("feature/{}-login-redirect", key.to_lowercase());
    step(4, &format!("Jared opens a pull request from {branch}: \"Fix login redirect ({key})\""));
    let pr = stack
        .bitbucket
        .open_pullrequest(&format!("Fix login redirect ({key})"), "Sends users back.", &branch, "jared")
        .await?;
    let opened = wait_comment(stack, todo, "opened by").await?;
    result(&format!("the to-do got: \"{opened}\""));

    step(5, "CI fails on the branch, then passes after a fix");
    let head = stack.bitbucket.head_of(pr).await.unwrap_or_default();
    let status = |state: BuildState| bb_sim::BuildStatus {
        commit: head.clone(),
        key: "ci".into(),
        state: state.as_str().into(),
        name: "CI".into(),
        url: "https://ci.example.invalid/build/42".into(),
        refname: Some(branch.clone()),
        ..Default::default()
    };
    stack.bitbucket.post_build_status(status(BuildState::Failed), "jared").await?;
    result(&format!("the to-do got: \"{}\"", wait_comment(stack, todo, "Build failed").await?));
    stack.bitbucket.post_build_status(status(BuildState::Successful), "jared").await?;
    result(&format!("the to-do got: \"{}\"", wait_comment(stack, todo, "Build fixed").await?));

    step(6, "The pull request is merged");
    stack.bitbucket.merge_pullrequest(pr, "jared").await?;
    result(&format!("the to-do got: \"{}\"", wait_comment(stack, todo, "merged by").await?));
    stack.settle().await?;

    step(7, &format!("Jared moves {key} to Done in Jira"));
    stack.jira.transition_issue(&key, "Done", jira_sim::JARED).await?;
    stack
        .wait_for("the to-do to be completed", 20, || async {
            let t = stack.basecamp.record("todos", todo).await?;
            t["completed"].as_bool().filter(|done| *done)
        })
        .await?;
    result("the Basecamp to-do is completed");
    stack.settle().await?;

    step(8, "Annie adds \"Update the brochure\" to Backlog, a list this route does not take");
    let other = stack
        .basecamp
        .create_todo(
            backlog,
            bc_sim::TodoWrite { content: Some("Update the brochure".into()), ..Default::default() },
            bc_sim::ANNIE,
        )
        .await?;
    stack.settle().await?;
    match stack.item_of(other).await {
        None => result("filtered: nothing created in Jira"),
        Some(item) => bail!("a to-do outside the route created {item}"),
    }

    let paired = PairStore::list(&stack.store, None, None, 1000).await?.into_iter().filter(|p| p.is_linked()).count();
    let conflicts = shared::ports::ConflictLog::list(&stack.store, false, 1000).await?.len();
    Ok(Summary {
        paired,
        basecamp_calls: stack.basecamp.calls().total(),
        jira_calls: stack.jira.calls().total(),
        echoes_suppressed: stack.stats.echoes.load(Relaxed),
        conflicts,
    })
}

/// Waits for a comment containing `needle` on to-do `todo` and returns its text.
async fn wait_comment(stack: &Stack, todo: i64, needle: &str) -> anyhow::Result<String> {
    stack
        .wait_for(&format!("a comment with {needle:?}"), 20, || async {
            let comments = stack.basecamp_comments(todo).await.ok()?;
            comments.into_iter().map(|c| shared::richtext::html_to_text(&c)).find(|c| c.contains(needle))
        })
        .await
}

/// Prints the summary table.
pub fn print_summary(s: &Summary) {
    println!("\nSummary");
    println!("  items paired            {}", s.paired);
    println!("  API calls to Basecamp   {}", s.basecamp_calls);
    println!("  API calls to Jira       {}", s.jira_calls);
    println!("  echoes suppressed       {}", s.echoes_suppressed);
    println!("  conflicts               {}", s.conflicts);
}
