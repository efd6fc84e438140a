//! `campbridge backfill --route R [--dry-run] [--since DATE]`: pairs the to-dos that existed before the
//! route was set up.
//!
//! It lists the route project's to-do set → lists → active to-dos and classifies each one (already
//! paired, not routed and why, to create). `--dry-run` stops there and writes nothing. A real run syncs
//! each to-do through [`Engine::sync_record`] with a `Job::TodoChanged` whose delivery id is
//! `backfill:<route>:<todo>`, claimed in the delivery log first — so a re-run (after Ctrl-C, a crash or
//! a `--limit`) skips what is done and never duplicates: the pair's conditional insert and the marker
//! search after a takeover guarantee one issue per to-do. Every Basecamp request goes through a
//! client-side limiter below Basecamp's 50 requests / 10 s, so a long backfill does not cause 429s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use shared::clients::ClientError;
use shared::clients::basecamp::{BasecampClient, BasecampTodo};
use shared::domain::{
    BasecampCommentId, DeliveryId, Job, PairKey, PairState, ProjectId, Route, RouteId, Todo, TodoId, TodolistId,
};
use shared::ports::{ApiError, BasecampApi, DeliveryClaim, PairStore, TodoComment, TodoPatch};
use shared::sync::{Engine, Outcome, SyncError};
use tokio::sync::Mutex;

use super::OpsError;

/// A sliding-window limiter: at most `max` permits in any `window`.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self { max: max.max(1), window, sent: Mutex::new(VecDeque::new()) }
    }

    /// Basecamp allows 50 requests per 10 s per token; leave room for the running workers.
    pub fn basecamp() -> Self {
        Self::new(40, Duration::from_secs(10))
    }

    /// Waits until `n` more requests fit in the window, then counts them.
    pub async fn acquire(&self, n: usize) {
        for _ in 0..n {
            loop {
                let wait = {
                    let mut sent = self.sent.lock().await;
                    let now = Instant::now();
                    while sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                        sent.pop_front();
                    }
                    if sent.len() < self.max {
                        sent.push_back(now);
                        None
                    } else {
                        sent.front().map(|t| self.window.saturating_sub(now.duration_since(*t)))
                    }
                };
                match wait {
                    None => break,
                    Some(d) => tokio::time::sleep(d + Duration::from_millis(5)).await,
                }
            }
        }
    }
}

/// The engine's Basecamp port behind the limiter (an update is a read plus a write).
struct Limited {
    inner: Arc<dyn BasecampApi>,
    limiter: Arc<RateLimiter>,
}

#[async_trait]
impl BasecampApi for Limited {
    async fn get_todo(&self, project: ProjectId, todo: TodoId) -> Result<Option<Todo>, ApiError> {
        self.limiter.acquire(1).await;
        self.inner.get_todo(project, todo).await
    }
    async fn update_todo(&self, project: ProjectId, todo: TodoId, patch: &TodoPatch) -> Result<Todo, ApiError> {
        self.limiter.acquire(3).await;
        self.inner.update_todo(project, todo, patch).await
    }
    async fn post_comment(&self, project: ProjectId, todo: TodoId, html: &str) -> Result<BasecampCommentId, ApiError> {
        self.limiter.acquire(1).await;
        self.inner.post_comment(project, todo, html).await
    }
    async fn list_comments(&self, project: ProjectId, todo: TodoId) -> Result<Vec<TodoComment>, ApiError> {
        self.limiter.acquire(2).await;
        self.inner.list_comments(project, todo).await
    }
    async fn get_comment(
        &self,
        project: ProjectId,
        comment: BasecampCommentId,
    ) -> Result<Option<TodoComment>, ApiError> {
        self.limiter.acquire(1).await;
        self.inner.get_comment(project, comment).await
    }
    async fn update_comment(&self, project: ProjectId, comment: BasecampCommentId, html: &str) -> Result<(), ApiError> {
        self.limiter.acquire(1).await;
        self.inner.update_comment(project, comment, html).await
    }
    async fn list_todos(&self, project: ProjectId, list: TodolistId) -> Result<Option<Vec<Todo>>, ApiError> {
        self.limiter.acquire(4).await;
        self.inner.list_todos(project, list).await
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub route: RouteId,
    pub dry_run: bool,
    /// Only to-dos updated on or after this day.
    pub since: Option<NaiveDate>,
    /// Stop after syncing this many to-dos (a partial run; re-run to continue).
    pub limit: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What backfill does (or, on a dry run, would do) with one to-do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// A create stopped midway (PENDING pair): finish it — link the issue found by its marker, or create.
    Finish,
    Skip,
}

/// One to-do in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub todo: i64,
    pub list: String,
    pub title: String,
    pub action: Action,
    pub reason: String,
    /// After a real run: what happened.
    pub result: Option<String>,
}

/// The plan, and after a real run the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub route: String,
    pub dry_run: bool,
    pub lines: Vec<Line>,
    pub created: usize,
    /// Issues found by their marker after an interrupted create, and linked.
    pub linked: usize,
    pub skipped: usize,
    pub failed: usize,
    /// 429s seen (each waited out and retried).
    pub rate_limited: usize,
    /// To-dos left for a later run (`--limit`).
    pub remaining: usize,
    pub elapsed_secs: f64,
}

fn route_of<'a>(engine_routes: &'a [Route], id: &RouteId) -> Result<&'a Route, OpsError> {
    engine_routes.iter().find(|r| &r.id == id).ok_or_else(|| {
        let known: Vec<String> = engine_routes.iter().map(|r| r.id.to_string()).collect();
        OpsError::Usage(format!("no route {id:?} (configured: {})", known.join(", ")))
    })
}

/// Retries `call` after a 429 (counting it), waiting the server's `Retry-After`.
async fn patient<T, F, Fut>(limiter: &RateLimiter, cost: usize, report: &mut Report, mut call: F) -> Result<T, OpsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    for _ in 0..5 {
        limiter.acquire(cost).await;
        match call().await {
            Err(ClientError::RateLimited { retry_after }) => {
                report.rate_limited += 1;
                tokio::time::sleep(retry_after).await;
            }
            other => return other.map_err(OpsError::from),
        }
    }
    Err(OpsError::Usage("Basecamp kept answering 429; try again later".to_owned()))
}

/// Every active to-do of the route's project, in to-do list order.
async fn todos(
    client: &BasecampClient,
    limiter: &RateLimiter,
    route: &Route,
    report: &mut Report,
) -> Result<Vec<BasecampTodo>, OpsError> {
    let project = patient(limiter, 1, report, || client.project(route.project)).await?.ok_or_else(|| {
        OpsError::Usage(format!("Basecamp project {} is not visible (run `campbridge doctor`)", route.project))
    })?;
    let mut all = Vec::new();
    for set in project.todoset_ids() {
        for list in patient(limiter, 2, report, || client.todolists(set)).await? {
            let page = patient(limiter, 2, report, || client.todos(TodolistId(list.id), false)).await?;
            // Basecamp pages by 15: count the pages beyond the two paid for, so later calls wait.
            limiter.acquire(page.len().div_ceil(15).saturating_sub(2)).await;
            all.extend(page);
        }
    }
    Ok(all)
}

/// Classifies one to-do without writing anything.
async fn classify(pairs: &dyn PairStore, route: &Route, todo: &Todo) -> Result<(Action, String), OpsError> {
    let key = PairKey { route: route.id.clone(), todo: todo.id };
    if let Some(pair) = pairs.get(&key).await? {
        return Ok(match (pair.state, &pair.item) {
            (PairState::Linked, Some(item)) => (Action::Skip, format!("already paired with {item}")),
            _ => {
                (Action::Finish, "a create stopped midway: link the issue found by its marker, or create it".to_owned())
            }
        });
    }
    Ok(match route.admits(todo) {
        Err(why) => (Action::Skip, format!("not routed: {why}")),
        Ok(()) => {
            let shared::domain::TrackerTarget::Jira { project, .. } = &route.target;
            (Action::Create, format!("create a {project} issue {:?}", route.summary_for(&todo.title)))
        }
    })
}

/// Plans, and unless `dry_run`, runs the backfill.
pub async fn run(
    engine: &Engine,
    client: &BasecampClient,
    limiter: Arc<RateLimiter>,
    opts: &Options,
) -> Result<Report, OpsError> {
    let started = Instant::now();
    let route = route_of(&engine.settings.routes, &opts.route)?.clone();
    let mut report = Report { route: route.id.to_string(), dry_run: opts.dry_run, ..Report::default() };
    let listed = todos(client, &limiter, &route, &mut report).await?;
    let mut plan = Vec::new();
    for t in listed {
        if opts.since.is_some_and(|since| t.updated_at.date_naive() < since) {
            continue;
        }
        let todo = t.to_todo();
        let (action, reason) = classify(engine.pairs.as_ref(), &route, &todo).await?;
        plan.push((
            todo.clone(),
            Line {
                todo: todo.id.0,
                list: todo.todolist_name.clone(),
                title: todo.title.clone(),
                action,
                reason,
                result: None,
            },
        ));
    }
    if opts.dry_run {
        report.skipped = plan.iter().filter(|(_, l)| l.action == Action::Skip).count();
        report.lines = plan.into_iter().map(|(_, l)| l).collect();
        report.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let mut engine = engine.clone();
    engine.basecamp = Arc::new(Limited { inner: engine.basecamp.clone(), limiter: limiter.clone() });
    let work = plan.iter().filter(|(_, l)| l.action != Action::Skip).count() as u64;
    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new(work);
        let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} to-dos  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut synced = 0;
    for (todo, line) in &mut plan {
        if line.action == Action::Skip {
            report.skipped += 1;
            continue;
        }
        if opts.limit.is_some_and(|n| synced >= n) {
            report.remaining += 1;
            line.result = Some("left for the next run".to_owned());
            continue;
        }
        synced += 1;
        bar.set_message(format!("#{}", todo.id));
        line.result = Some(sync_one(&engine, &route, todo, &mut report).await);
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.lines = plan.into_iter().map(|(_, l)| l).collect();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Claims the backfill delivery, syncs the to-do, completes (or releases) the claim. Returns what
/// happened, in words.
async fn sync_one(engine: &Engine, route: &Route, todo: &Todo, report: &mut Report) -> String {
    let delivery = DeliveryId(format!("backfill:{}:{}", route.id, todo.id));
    let now = engine.clock.now();
    match engine.deliveries.claim(&delivery, now, engine.settings.lease).await {
        Ok(DeliveryClaim::Claimed) => {}
        Ok(DeliveryClaim::Completed) => {
            report.skipped += 1;
            return "already backfilled".to_owned();
        }
        Ok(DeliveryClaim::InProgress { .. }) => {
            report.skipped += 1;
            return "another backfill is on it".to_owned();
        }
        Err(e) => {
            report.failed += 1;
            return format!("failed: {e}");
        }
    }
    let job = Job::TodoChanged {
        delivery: delivery.clone(),
        route: route.id.clone(),
        project: todo.project,
        todo: todo.id,
        event: "backfill".to_owned(),
        received_at: Utc::now(),
    };
    let mut result = Err(SyncError::Busy("not run".to_owned()));
    for attempt in 1..=6 {
        result = engine.sync_record(std::slice::from_ref(&job)).await;
        match &result {
            Err(e @ SyncError::RateLimited { .. }) => {
                report.rate_limited += 1;
                let wait = e.retry_delay(attempt, rand::random::<f64>()).unwrap_or(Duration::from_secs(10));
                tokio::time::sleep(wait).await;
            }
            Err(SyncError::Busy(_)) => tokio::time::sleep(Duration::from_secs(1)).await,
            // A create cut off earlier may have made the issue: wait until Jira's search can show it.
            Err(e @ SyncError::Settling { .. }) => {
                tokio::time::sleep(e.retry_delay(attempt, 0.0).unwrap_or(Duration::from_secs(10))).await;
            }
            _ => break,
        }
    }
    match result {
        Ok(outcome) => {
            let settled =
                engine.deliveries.complete(&delivery, engine.clock.now(), engine.settings.delivery_retention).await;
            if let Err(e) = settled {
                tracing::warn!(delivery = %delivery, error = %e, "could not mark the backfill delivery completed");
            }
            match outcome {
                Outcome::Created { item, recovered: false } => {
                    report.created += 1;
                    format!("created {item}")
                }
                Outcome::Created { item, recovered: true } => {
                    report.linked += 1;
                    format!("linked {item} (found by its marker)")
                }
                Outcome::Skipped(skip) => {
                    report.skipped += 1;
                    skip.describe()
                }
                Outcome::Detached { reason } => {
                    report.skipped += 1;
                    format!("already paired; stopped syncing: {}", reason.describe())
                }
                Outcome::Updated { .. } | Outcome::Recorded { .. } => {
                    report.skipped += 1;
                    "already paired; brought in sync".to_owned()
                }
            }
        }
        Err(e) => {
            if let Err(release) = engine.deliveries.release(&delivery).await {
                tracing::warn!(delivery = %delivery, error = %release, "could not release the backfill claim");
            }
            report.failed += 1;
            format!("failed: {e}")
        }
    }
}

/// The plan (dry run) or the summary (real run).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    if r.dry_run {
        out.push_str(&format!("Backfill plan for route {} (dry run: nothing written)\n", r.route));
        for l in &r.lines {
            let what = match l.action {
                Action::Create => "create",
                Action::Finish => "finish",
                Action::Skip => "skip  ",
            };
            out.push_str(&format!("  {what} #{} [{}] {:?}: {}\n", l.todo, l.list, l.title, l.reason));
        }
        let count = |a: Action| r.lines.iter().filter(|l| l.action == a).count();
        out.push_str(&format!(
            "{} to create, {} to finish, {} to skip. Run without --dry-run to apply.\n",
            count(Action::Create),
            count(Action::Finish),
            count(Action::Skip)
        ));
        return out;
    }
    out.push_str(&format!("Backfill of route {} done in {:.1} s\n", r.route, r.elapsed_secs));
    for l in r.lines.iter().filter(|l| l.result.as_deref().is_some_and(|s| s.starts_with("failed"))) {
        out.push_str(&format!("  ✗ #{} {:?}: {}\n", l.todo, l.title, l.result.as_deref().unwrap_or_default()));
    }
    out.push_str(&format!("  created        {}\n", r.created));
    out.push_str(&format!("  linked         {}\n", r.linked));
    out.push_str(&format!("  skipped        {}\n", r.skipped));
    out.push_str(&format!("  failed         {}\n", r.failed));
    out.push_str(&format!("  rate limited   {}\n", r.rate_limited));
    if r.remaining > 0 {
        out.push_str(&format!("  remaining      {} (run the same command again to continue)\n", r.remaining));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limiter_spreads_requests_over_the_window() {
        let limiter = RateLimiter::new(3, Duration::from_millis(300));
        let start = Instant::now();
        limiter.acquire(3).await;
        assert!(start.elapsed() < Duration::from_millis(150), "the first window's permits are immediate");
        limiter.acquire(4).await;
        // 7 permits at 3 per 300 ms need two more windows.
        assert!(start.elapsed() >= Duration::from_millis(600), "{:?}", start.elapsed());
    }
}
