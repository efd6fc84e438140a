//! Local mode over HTTP: `campbridge::demo::Stack` (the simulators, a real `serve` on SQLite, webhooks
//! registered) on 127.0.0.1, driven like people would drive it.
//!
//! - Ack latency and sustained ingest: a bounded, closed-loop load generator posting Basecamp webhook
//!   bodies (the real fixture, one new event id each, about to-dos that are paired) to the route's URL.
//!   Basecamp's rate limit is off in the simulator, so the mapper's reads never wait on 429s.
//! - End-to-end sync latency: to-do created → issue exists; issue done → to-do completed.
//! - Upstream calls per synced change, by change type, next to the minimum the APIs allow; echo writes.
//! - Burst coalescing: 20 edits to one to-do, spread over 10 s and back to back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use campbridge::demo::{Stack, StackOptions};
use campbridge_simulators::common::calls::Calls;
use campbridge_simulators::common::faults::{Faults, WebhookFaults};
use campbridge_simulators::{basecamp as bc, bitbucket as bb, jira};
use serde::Serialize;
use serde_json::Value;
use shared::ports::QueueOperator;

use crate::stats::{LatencySpread, Spread};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub load_runs: usize,
    pub load_requests: usize,
    pub load_concurrency: usize,
    pub e2e_runs: usize,
    pub e2e_samples: usize,
    pub burst_spread: Duration,
}

/// Starts a stack under `dir` with `edit` applied to the defaults.
async fn start_stack(dir: &Path, name: &str, edit: impl FnOnce(&mut StackOptions)) -> anyhow::Result<Stack> {
    let mut opts = StackOptions::new(campbridge::demo::fresh_dir(dir, name));
    opts.basecamp_rate_limit = false;
    edit(&mut opts);
    Stack::start(opts).await
}

/// A client that never uses a proxy (the load stays on loopback).
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build()?)
}

fn loopback(url: &str) -> anyhow::Result<()> {
    let host = reqwest::Url::parse(url)?.host_str().map(str::to_owned).unwrap_or_default();
    if host != "127.0.0.1" {
        bail!("refusing to send load to {host}: loopback only");
    }
    Ok(())
}

/// Creates a to-do in "Sprint 1" and waits until it is paired and everything settled. Returns (to-do, key).
async fn paired_todo(stack: &Stack, title: &str) -> anyhow::Result<(i64, String)> {
    let sprint = stack.list("Sprint 1").await?;
    let write = bc::TodoWrite {
        content: Some(title.to_owned()),
        description: Some("<div>Steps to reproduce are in the ticket.</div>".to_owned()),
        assignee_ids: Some(vec![bc::JARED]),
        due_on: Some("2026-12-01".to_owned()),
        ..Default::default()
    };
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await?;
    let issue = stack.wait_issue(todo).await?;
    stack.settle().await?;
    let key = issue["key"].as_str().context("the issue has a key")?.to_owned();
    Ok((todo, key))
}

// ---- ack latency and ingest throughput ------------------------------------------------------------------

/// Load figures.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub ack_ms: Option<LatencySpread>,
    /// Accepted webhooks per second while the generator ran.
    pub ingest_events_per_s: Option<Spread>,
    /// Jobs synced per second, from the first request until the queue was empty again.
    pub processed_events_per_s: Option<Spread>,
    pub requests_per_run: usize,
    pub concurrency: usize,
    /// Requests not answered 202 (should be 0).
    pub failed: usize,
}

pub async fn load(dir: &Path, plan: &Plan) -> anyhow::Result<Load> {
    let stack = start_stack(dir, "load", |_| {}).await?;
    let result = load_on(&stack, plan).await;
    stack.stop().await?;
    result
}

async fn load_on(stack: &Stack, plan: &Plan) -> anyhow::Result<Load> {
    let url = stack
        .urls
        .iter()
        .find(|(label, _)| label.starts_with("Basecamp"))
        .map(|(_, u)| u.clone())
        .context("the stack has a Basecamp route URL")?;
    loopback(&url)?;
    let sprint = stack.list("Sprint 1").await?;
    let mut todos = Vec::new();
    for i in 0..10 {
        todos.push(paired_todo(stack, &format!("Load target {i}")).await?.0);
    }
    let fixture = webhook_fixture()?;
    let client = client()?;
    let (mut acks, mut ingest, mut processed, mut failed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut next_id = 8_000_000_000_i64;
    for _ in 0..plan.load_runs {
        let bodies = webhook_bodies(&fixture, plan.load_requests, &mut next_id, &todos, sprint)?;
        let started = Instant::now();
        let (run, f) = drive(&client, &url, bodies, plan.load_concurrency).await?;
        failed += f;
        let acked = started.elapsed().as_secs_f64();
        ingest.push(run.len() as f64 / acked);
        stack
            .wait_for("the queue to drain after the load", 180, || async {
                (stack.store.depth().await.ok()? == 0).then_some(())
            })
            .await?;
        processed.push(run.len() as f64 / started.elapsed().as_secs_f64());
        acks.push(run);
        stack.settle().await?;
    }
    Ok(Load {
        ack_ms: LatencySpread::of(&acks),
        ingest_events_per_s: Spread::of(&ingest),
        processed_events_per_s: Spread::of(&processed),
        requests_per_run: plan.load_requests,
        concurrency: plan.load_concurrency,
        failed,
    })
}

/// The Basecamp webhook fixture the load posts (a `todo_changed` event once adjusted).
pub fn webhook_fixture() -> anyhow::Result<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/basecamp/webhook-event-todo-completed.json"))
            .context("reading the Basecamp webhook fixture")?,
    )
    .context("parsing the Basecamp webhook fixture")
}

/// `n` webhook bodies about `todos` (in list `sprint`), each with a new event id from `next_id`.
pub fn webhook_bodies(
    fixture: &Value,
    n: usize,
    next_id: &mut i64,
    todos: &[i64],
    sprint: i64,
) -> anyhow::Result<Arc<Vec<Vec<u8>>>> {
    let bodies = (0..n)
        .map(|i| {
            let mut v = fixture.clone();
            *next_id += 1;
            v["id"] = Value::from(*next_id);
            v["kind"] = Value::from("todo_changed");
            v["recording"]["id"] = Value::from(todos.get(i % todos.len().max(1)).copied().unwrap_or(1));
            v["recording"]["bucket"]["id"] = Value::from(bc::PROJECT_ID);
            v["recording"]["parent"]["id"] = Value::from(sprint);
            serde_json::to_vec(&v)
        })
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(bodies))
}

/// The closed-loop load generator: `concurrency` senders post `bodies` to `url` (each sender waits for its
/// answer and reads it before the next), for at most 60 s. Returns the ms of every 202 and how many
/// requests were answered otherwise.
pub async fn drive(
    client: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> anyhow::Result<(Vec<f64>, usize)> {
    loopback(url)?;
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) = (client.clone(), url.to_owned(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() > deadline {
                    return (samples, failed);
                }
                let t0 = Instant::now();
                let sent =
                    client.post(&url).header("content-type", "application/json").body(bodies[i].clone()).send().await;
                let ok = matches!(&sent, Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED);
                if let Ok(r) = sent {
                    // Read the body, as a sender does before reusing the connection.
                    r.bytes().await.ok();
                }
                if ok {
                    samples.push(t0.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed += 1;
                }
            }
        }));
    }
    let (mut run, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (samples, f) = t.await?;
        run.extend(samples);
        failed += f;
    }
    Ok((run, failed))
}

// ---- end-to-end latency -------------------------------------------------------------------------------

/// Polls `check` every 2 ms (bounded at 30 s); returns the ms from `t0` to the first `true`.
async fn until<F, Fut>(t0: Instant, what: &str, mut check: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Ok(t0.elapsed().as_secs_f64() * 1000.0);
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not happen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// End-to-end latencies by path.
pub async fn e2e(dir: &Path, plan: &Plan) -> anyhow::Result<BTreeMap<String, LatencySpread>> {
    let stack = start_stack(dir, "e2e", |_| {}).await?;
    let result = e2e_on(&stack, plan).await;
    stack.stop().await?;
    result
}

async fn e2e_on(stack: &Stack, plan: &Plan) -> anyhow::Result<BTreeMap<String, LatencySpread>> {
    let sprint = stack.list("Sprint 1").await?;
    let (mut created, mut completed) = (Vec::new(), Vec::new());
    for run in 0..plan.e2e_runs {
        let (mut c, mut d) = (Vec::new(), Vec::new());
        for i in 0..plan.e2e_samples {
            let write = bc::TodoWrite {
                content: Some(format!("Latency sample {run}.{i}")),
                assignee_ids: Some(vec![bc::JARED]),
                ..Default::default()
            };
            let t0 = Instant::now();
            let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await?;
            c.push(until(t0, "the issue", || async { stack.issue_of(todo).await.is_some() }).await?);
            stack.settle().await?;
            let key = stack.item_of(todo).await.context("the to-do is paired")?.display_name().to_owned();

            let t0 = Instant::now();
            stack.jira.transition_issue(&key, "Done", jira::JARED).await?;
            d.push(
                until(t0, "the completion", || async {
                    stack.basecamp.record("todos", todo).await.is_some_and(|t| t["completed"] == true)
                })
                .await?,
            );
            stack.settle().await?;
        }
        created.push(c);
        completed.push(d);
    }
    let mut out = BTreeMap::new();
    if let Some(s) = LatencySpread::of(&created) {
        out.insert("todo_created_to_issue".to_owned(), s);
    }
    if let Some(s) = LatencySpread::of(&completed) {
        out.insert("issue_done_to_todo_completed".to_owned(), s);
    }
    Ok(out)
}

// ---- calls per change ------------------------------------------------------------------------------------

/// Where a change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Basecamp,
    Jira,
    Bitbucket,
}

/// Requests one simulator answered, split into reads (GET) and writes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideCalls {
    pub reads: u64,
    pub writes: u64,
    /// `METHOD pattern` → count.
    pub endpoints: BTreeMap<String, u64>,
}

impl SideCalls {
    fn of(calls: &Calls) -> Self {
        let (mut reads, mut writes) = (0, 0);
        for (k, n) in &calls.0 {
            if k.starts_with("GET ") {
                reads += n;
            } else {
                writes += n;
            }
        }
        Self { reads, writes, endpoints: calls.0.clone() }
    }
}

/// Upstream calls for one synced change.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeCalls {
    pub total: u64,
    pub minimum: u64,
    /// Why that is the minimum.
    pub minimum_calls: &'static str,
    pub basecamp: SideCalls,
    pub jira: SideCalls,
    pub bitbucket: SideCalls,
    /// Writes made while the sync's own changes came back as webhooks (goal 0).
    pub echo_writes: u64,
}

fn hold() -> Faults {
    Faults { webhook: WebhookFaults { reorder_hold: 100_000, ..Default::default() }, ..Default::default() }
}

fn writes(stack: &Stack) -> u64 {
    let (b, j) = stack.upstream_writes();
    b + j + SideCalls::of(&stack.bitbucket.calls()).writes
}

/// Runs `act` (a change made on `origin` as a person) and counts the calls the sync makes for it.
/// The other sides' webhooks are held until the change itself is synced; releasing them then lets the
/// sync's own writes come back, and every write after that point is an echo write.
async fn measure_change<Fut>(
    stack: &Stack,
    origin: Side,
    minimum: (u64, &'static str),
    act: impl FnOnce() -> Fut,
) -> anyhow::Result<ChangeCalls>
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    stack.settle().await?;
    stack.basecamp.reset_calls();
    stack.jira.reset_calls();
    stack.bitbucket.reset_calls();
    // The sync never writes to Bitbucket, so only Basecamp's and Jira's webhooks can echo.
    let held: Vec<Side> = [Side::Basecamp, Side::Jira].into_iter().filter(|s| *s != origin).collect();
    for side in &held {
        match side {
            Side::Basecamp => stack.basecamp.set_faults(hold()),
            Side::Jira | Side::Bitbucket => stack.jira.set_faults(hold()),
        }
    }
    act().await?;
    for _ in 0..3 {
        match origin {
            Side::Basecamp => stack.basecamp.settle().await,
            Side::Jira => stack.jira.settle().await,
            Side::Bitbucket => stack.bitbucket.settle().await,
        }
        stack
            .wait_for("the change to sync", 30, || async { (stack.store.depth().await.ok()? == 0).then_some(()) })
            .await?;
    }
    let synced_writes = writes(stack);
    for side in &held {
        match side {
            Side::Basecamp => {
                stack.basecamp.set_faults(Faults::default());
                stack.basecamp.release_held();
            }
            Side::Jira | Side::Bitbucket => {
                stack.jira.set_faults(Faults::default());
                stack.jira.release_held();
            }
        }
    }
    stack.settle().await?;
    let (basecamp, jira, bitbucket) = (
        SideCalls::of(&stack.basecamp.calls()),
        SideCalls::of(&stack.jira.calls()),
        SideCalls::of(&stack.bitbucket.calls()),
    );
    let total = [&basecamp, &jira, &bitbucket].iter().map(|s| s.reads + s.writes).sum();
    Ok(ChangeCalls {
        total,
        minimum: minimum.0,
        minimum_calls: minimum.1,
        echo_writes: writes(stack).saturating_sub(synced_writes),
        basecamp,
        jira,
        bitbucket,
    })
}

/// Calls per change type.
pub async fn calls(dir: &Path) -> anyhow::Result<BTreeMap<String, ChangeCalls>> {
    let mut out = BTreeMap::new();

    let stack = start_stack(dir, "calls", |_| {}).await?;
    let result = dev_owned_changes(&stack, &mut out).await;
    stack.stop().await?;
    result?;

    let stack = start_stack(dir, "calls-pm", |o| o.status_strategy = "pm-owned").await?;
    let result = async {
        let (todo, _) = paired_todo(&stack, "Ship the release notes").await?;
        let min = (2, "GET the to-do (thin webhook) + POST the Done transition (ids cached per workflow)");
        out.insert(
            "completed".to_owned(),
            measure_change(&stack, Side::Basecamp, min, || async {
                Ok(stack.basecamp.complete_todo(todo, bc::ANNIE).await?)
            })
            .await?,
        );
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    result?;

    let stack = start_stack(dir, "calls-assignee", |o| o.assignee_owner = "both").await?;
    let result = async {
        let (_, key) = paired_todo(&stack, "Review the pricing page").await?;
        let min = (2, "GET the to-do + PUT it whole with the new assignee (Basecamp PUT replaces the to-do)");
        out.insert(
            "jira_assignee_changed".to_owned(),
            measure_change(&stack, Side::Jira, min, || async {
                Ok(stack.jira.assign_issue(&key, Some(jira::ANNIE), jira::JARED).await?)
            })
            .await?,
        );
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    result?;
    Ok(out)
}

async fn dev_owned_changes(stack: &Stack, out: &mut BTreeMap<String, ChangeCalls>) -> anyhow::Result<()> {
    let sprint = stack.list("Sprint 1").await?;
    let min = (4, "GET the to-do (thin webhook) + POST the issue + POST its remote link + POST the link comment");
    out.insert(
        "todo_created".to_owned(),
        measure_change(stack, Side::Basecamp, min, || async {
            let write = bc::TodoWrite {
                content: Some("Fix the checkout button".into()),
                description: Some("<div>It does nothing on Safari.</div>".into()),
                assignee_ids: Some(vec![bc::JARED]),
                due_on: Some("2026-12-01".into()),
                ..Default::default()
            };
            stack.basecamp.create_todo(sprint, write, bc::ANNIE).await?;
            Ok(())
        })
        .await?,
    );

    let (todo, key) = paired_todo(stack, "Fix login redirect").await?;
    let edit = |e: bc::TodoEdit| async move { Ok(stack.basecamp.edit_todo(todo, e, bc::ANNIE).await?) };
    let min = (2, "GET the to-do (thin webhook) + PUT the issue");
    let title = bc::TodoEdit { content: Some("Fix login redirect on Safari".into()), ..Default::default() };
    out.insert("title_edited".to_owned(), measure_change(stack, Side::Basecamp, min, || edit(title)).await?);
    let description = bc::TodoEdit { description: Some("<div>Only on Safari 17.</div>".into()), ..Default::default() };
    out.insert(
        "description_edited".to_owned(),
        measure_change(stack, Side::Basecamp, min, || edit(description)).await?,
    );
    let min = (2, "GET the to-do (thin webhook) + PUT the issue's assignee");
    out.insert(
        "assigned".to_owned(),
        measure_change(stack, Side::Basecamp, min, || async {
            Ok(stack.basecamp.assign_todo(todo, vec![bc::VICTOR], bc::ANNIE).await?)
        })
        .await?,
    );
    let min = (2, "GET the comment (thin webhook) + POST the Jira comment");
    out.insert(
        "dev_comment".to_owned(),
        measure_change(stack, Side::Basecamp, min, || async {
            stack.basecamp.comment(todo, "<div>DEV: it only happens on Safari 17</div>", bc::ANNIE).await?;
            Ok(())
        })
        .await?,
    );

    let branch = format!("feature/{}-login-redirect", key.to_lowercase());
    let min = (2, "POST the comment on the to-do + POST the remote link on the issue (the webhook carries the PR)");
    let pr = std::sync::atomic::AtomicU64::new(0);
    out.insert(
        "pr_opened".to_owned(),
        measure_change(stack, Side::Bitbucket, min, || async {
            let id = stack
                .bitbucket
                .open_pullrequest(&format!("Fix login redirect ({key})"), "Sends users back.", &branch, "jared")
                .await?;
            pr.store(id, Ordering::Relaxed);
            Ok(())
        })
        .await?,
    );
    let head = stack.bitbucket.head_of(pr.load(Ordering::Relaxed)).await.unwrap_or_default();
    let min = (1, "POST the alert comment on the to-do (the webhook carries the state and branch)");
    out.insert(
        "build_failed".to_owned(),
        measure_change(stack, Side::Bitbucket, min, || async {
            let status = bb::BuildStatus {
                commit: head.clone(),
                key: "ci".into(),
                state: shared::domain::BuildState::Failed.as_str().into(),
                name: "CI".into(),
                url: "https://ci.example.invalid/build/42".into(),
                refname: Some(branch.clone()),
                ..Default::default()
            };
            Ok(stack.bitbucket.post_build_status(status, "jared").await?)
        })
        .await?,
    );
    let min = (1, "POST the to-do's completion (the Jira webhook carries the status)");
    out.insert(
        "jira_transitioned".to_owned(),
        measure_change(stack, Side::Jira, min, || async {
            Ok(stack.jira.transition_issue(&key, "Done", jira::JARED).await?)
        })
        .await?,
    );
    Ok(())
}

// ---- bursts ---------------------------------------------------------------------------------------------

/// One burst pattern.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub edits: usize,
    /// Over how long the edits were made.
    pub window_s: f64,
    /// Writes to Jira for the whole burst.
    pub jira_writes: u64,
    /// Reads of Basecamp for it (the thin webhooks' fetches).
    pub basecamp_reads: u64,
    /// Writes to Basecamp for it (goal 0: the edits come from Basecamp).
    pub basecamp_writes: u64,
    /// The to-do's title and the issue's summary once everything settled.
    pub final_todo_title: String,
    pub final_issue_summary: String,
    /// Whether both sides ended with the last edit.
    pub converged: bool,
    /// When they did not: the pair's audit trail, oldest first, to see why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<String>,
}

pub async fn bursts(dir: &Path, plan: &Plan) -> anyhow::Result<BTreeMap<String, Burst>> {
    let stack = start_stack(dir, "burst", |_| {}).await?;
    let result = async {
        let mut out = BTreeMap::new();
        for (name, window) in [("spread_over_10s", plan.burst_spread), ("back_to_back", Duration::ZERO)] {
            let (todo, _) = paired_todo(&stack, &format!("Burst target {name}")).await?;
            stack.basecamp.reset_calls();
            stack.jira.reset_calls();
            let edits: usize = 20;
            let started = Instant::now();
            let mut last = String::new();
            for i in 1..=edits {
                last = format!("Burst target {name} edit {i}");
                let e = bc::TodoEdit { content: Some(last.clone()), ..Default::default() };
                stack.basecamp.edit_todo(todo, e, bc::ANNIE).await?;
                if i < edits {
                    tokio::time::sleep(window / u32::try_from(edits - 1).unwrap_or(1)).await;
                }
            }
            let window_s = started.elapsed().as_secs_f64();
            stack.settle().await?;
            let jira_writes = SideCalls::of(&stack.jira.calls()).writes;
            let bc_calls = SideCalls::of(&stack.basecamp.calls());
            let (basecamp_reads, basecamp_writes) = (bc_calls.reads, bc_calls.writes);
            let issue = stack.issue_of(todo).await.unwrap_or_default();
            let final_issue_summary = issue["fields"]["summary"].as_str().unwrap_or_default().to_owned();
            let record = stack.basecamp.record("todos", todo).await.unwrap_or_default();
            let final_todo_title = record["title"].as_str().unwrap_or_default().to_owned();
            let converged = final_todo_title == last && final_issue_summary == format!("[BC][WEB] {last}");
            let mut audit = Vec::new();
            if !converged {
                let subject = format!("{}/{todo}", stack.route);
                let entries = shared::ports::AuditLog::recent(&stack.store, Some(&subject), 200).await?;
                audit = entries
                    .iter()
                    .rev()
                    .map(|e| format!("{} {}: {}", e.at.format("%H:%M:%S%.3f"), e.action, e.detail))
                    .collect();
            }
            out.insert(
                name.to_owned(),
                Burst {
                    edits,
                    window_s,
                    jira_writes,
                    basecamp_reads,
                    basecamp_writes,
                    final_todo_title,
                    final_issue_summary,
                    converged,
                    audit,
                },
            );
        }
        anyhow::Ok(out)
    }
    .await;
    stack.stop().await?;
    result
}

/// A scratch directory for the stacks' files under `target/bench/`, removed afterwards.
pub fn scratch(root: &Path) -> PathBuf {
    root.join("target/bench/scratch")
}
