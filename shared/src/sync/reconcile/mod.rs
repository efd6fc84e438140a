//! The reconciler use case: what the webhooks missed, found by polling, on a schedule.
//!
//! One [`Reconciler::run`]:
//! 1. **Basecamp**: lists the routed projects' active to-dos updated since the `reconcile:basecamp` cursor
//!    (recordings, newest first, down to the cursor) and enqueues a `TodoChanged` for each (route, to-do)
//!    whose pair has not already seen that version.
//! 2. **Jira**: searches the routed projects' issues updated since the `reconcile:jira` cursor (oldest
//!    first, cursor paging) and enqueues an `IssueChanged` for each paired issue the pair has not seen.
//! 3. **Webhooks**: re-enables every deactivated Basecamp webhook of a routed project whose URL ends in
//!    a route's `/basecamp/<token>` (ours); other hooks are left alone.
//! 4. **Stuck creates**: enqueues a retry for every PENDING pair whose lease has run out; the engine takes
//!    the claim over and finds the item by its marker before creating one.
//!
//! A source's cursor advances only after every job of its poll was enqueued, so a failed run repeats
//! rather than skips. Each poll re-reads [`ReconcileSettings::overlap`] before its cursor (clock skew, late
//! visibility, Jira's minute-grained dates); the overlap costs nothing twice, because job delivery ids are
//! deterministic — `reconcile:<route>:<todo>:<updated µs>`, `reconcile:jira:<issue>:<updated µs>` — so a
//! repeat is dropped by the queue's deduplication or skipped by the delivery log, and a job for a change
//! already applied is a no-op in the engine (the pair's snapshot equals the fresh read).
//!
//! Bounded work per run, so a backlog never times the function out:
//! - Jira reads at most [`ReconcileSettings::jira_max_pages`] pages, oldest change first; a longer backlog
//!   moves the cursor to the last change read and the next run goes on from there.
//! - Basecamp lists newest first, so a run cannot stop part-way and resume: it never looks further back
//!   than [`ReconcileSettings::max_lookback`], reads at most [`ReconcileSettings::basecamp_max_pages`] pages,
//!   and enqueues at most [`ReconcileSettings::max_todo_jobs`] jobs, oldest change first, moving its cursor
//!   only as far as it got. A cursor older than the lookback (the reconciler was down for longer than that)
//!   or a listing the page limit stopped short of its start (more changes than the pages hold) is reported
//!   as a gap and logged as an error: changes in the gap that webhooks also missed need
//!   `campbridge backfill`.
//! - At most [`ReconcileSettings::pending_limit`] PENDING pairs are looked at.
//!
//! The first run (no cursor yet) only records "now": pairing what existed before is `backfill`'s job.
//! Every step runs even when another failed; failures are collected in the report, never secrets or
//! webhook URLs (they carry the route token).

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::domain::{
    DeliveryId, DevItemRef, JiraProjectKey, Job, PairKey, PairState, ProjectId, Route, RouteId, TrackerTarget,
};
use crate::ports::{
    ApiError, BasecampPolling, Clock, CursorStore, IssueUpdate, JobQueue, PairStore, ProjectWebhook, StoreError,
    TrackerPolling,
};
use crate::webhook::verify::route_token;

/// The cursor names in the [`CursorStore`].
pub const BASECAMP_CURSOR: &str = "reconcile:basecamp";
pub const JIRA_CURSOR: &str = "reconcile:jira";

/// The `event` the reconciler's jobs carry (informational; the engine always re-reads).
pub const POLL_EVENT: &str = "poll";
pub const PENDING_EVENT: &str = "pending_retry";

/// Margins and limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// How far before each cursor a poll starts again: clock skew, changes that become visible to search
    /// late, and Jira's minute-grained relative dates.
    pub overlap: Duration,
    /// The furthest back a Basecamp poll reaches; an older cursor is reported as a gap. (Jira is read oldest
    /// change first and pages on from wherever its cursor is.)
    pub max_lookback: Duration,
    /// Basecamp recordings pages per run (newest first; pages hold 15, 30, 50, then 100). A poll that
    /// does not reach back to its start within them is reported as a gap.
    pub basecamp_max_pages: usize,
    /// Jira search pages per run, and issues per page.
    pub jira_max_pages: usize,
    pub jira_page_size: u32,
    /// `TodoChanged` jobs per run.
    pub max_todo_jobs: usize,
    /// PENDING pairs looked at per run.
    pub pending_limit: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(5 * 60),
            max_lookback: Duration::from_secs(24 * 60 * 60),
            // 795 recordings: more than `max_todo_jobs`, in 10 of Basecamp's 50 requests per 10 s.
            basecamp_max_pages: 10,
            jira_max_pages: 10,
            jira_page_size: 100,
            max_todo_jobs: 500,
            pending_limit: 100,
        }
    }
}

/// What one source's poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    /// No cursor was stored: this run recorded one and polled nothing.
    pub initialized: bool,
    /// Where the poll started (the cursor minus the overlap, or the lookback limit).
    pub since: Option<DateTime<Utc>>,
    /// Changes listed.
    pub seen: usize,
    /// Jobs enqueued (a repeat the queue dropped as a duplicate counts too).
    pub enqueued: usize,
    /// Changes the pair had already seen: nothing to do.
    pub up_to_date: usize,
    /// Issues that belong to no pair: nothing flows back from them.
    pub not_paired: usize,
    /// More changes than one run takes; the cursor moved only as far as this run got.
    pub truncated: bool,
    /// Basecamp: changes since the cursor were left unpolled: the cursor was older than the lookback
    /// (changes before `since`), or the page limit stopped the listing (changes before `reached_back_to`).
    pub gap: bool,
    /// Basecamp: the oldest change listed, when the page limit stopped the listing before `since`.
    pub reached_back_to: Option<DateTime<Utc>>,
    /// Where the cursor stands after the run (unchanged when the poll failed).
    pub cursor: Option<DateTime<Utc>>,
}

/// What the webhook check did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookReport {
    /// Our webhooks found (one per route, normally).
    pub ours: usize,
    /// Of those, deactivated ones turned back on.
    pub reenabled: usize,
    /// Routes with no webhook of ours in their project (`campbridge webhooks register` fixes that).
    pub missing: usize,
}

/// What one run did, for the log and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub started_at: Option<DateTime<Utc>>,
    pub basecamp: PollReport,
    pub jira: PollReport,
    pub webhooks: WebhookReport,
    /// PENDING pairs past their lease, retried.
    pub pending_retried: usize,
    /// Steps that failed, in words (no secrets, no URLs); their cursors did not move.
    pub failures: Vec<String>,
}

impl ReconcileReport {
    /// Every step ran and no poll left a gap.
    pub fn is_ok(&self) -> bool {
        self.problems().is_empty()
    }

    /// What needs a person: failed steps, and gaps a poll could not reach (in words, no secrets).
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for (source, poll) in [("Basecamp", &self.basecamp), ("Jira", &self.jira)] {
            if poll.gap {
                let since = poll.since.map(|s| s.to_rfc3339()).unwrap_or_default();
                let what = match poll.reached_back_to {
                    Some(reached) => format!(
                        "more changes than the poll's page limit; changes before {} were not polled",
                        reached.to_rfc3339()
                    ),
                    None => format!("the cursor was older than the lookback; changes before {since} were not polled"),
                };
                out.push(format!("{source}: {what} (run `campbridge backfill` for what the webhooks missed then)"));
            }
        }
        out
    }
}

/// Why one step failed. Only its message reaches the report.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Each route's Basecamp webhook token: the secret last path segment of its webhook URL.
struct RouteToken {
    route: RouteId,
    project: ProjectId,
    token: SecretString,
}

/// The reconciler for one deployment. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Reconciler {
    pub routes: Arc<Vec<Route>>,
    pub settings: ReconcileSettings,
    pub basecamp: Arc<dyn BasecampPolling>,
    pub tracker: Arc<dyn TrackerPolling>,
    pub pairs: Arc<dyn PairStore>,
    pub cursors: Arc<dyn CursorStore>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    tokens: Arc<Vec<RouteToken>>,
}

/// The stores a reconciler reads and writes.
#[derive(Clone)]
pub struct ReconcileStores {
    pub pairs: Arc<dyn PairStore>,
    pub cursors: Arc<dyn CursorStore>,
    pub queue: Arc<dyn JobQueue>,
}

impl Reconciler {
    /// A reconciler over explicit parts (`setup::reconciler` wires one from a config).
    pub fn new(
        routes: Vec<Route>,
        webhook_key: &SecretString,
        settings: ReconcileSettings,
        basecamp: Arc<dyn BasecampPolling>,
        tracker: Arc<dyn TrackerPolling>,
        stores: ReconcileStores,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let tokens = routes
            .iter()
            .map(|r| RouteToken {
                route: r.id.clone(),
                project: r.project,
                token: SecretString::from(route_token(webhook_key, &r.id)),
            })
            .collect();
        Self {
            routes: Arc::new(routes),
            settings,
            basecamp,
            tracker,
            pairs: stores.pairs,
            cursors: stores.cursors,
            queue: stores.queue,
            clock,
            tokens: Arc::new(tokens),
        }
    }

    /// One reconcile pass. Never fails as a whole: a failed step is in [`ReconcileReport::failures`] and
    /// the others still run. The report is logged before it is returned.
    #[tracing::instrument(skip_all)]
    pub async fn run(&self) -> ReconcileReport {
        let now = self.clock.now();
        let mut report = ReconcileReport { started_at: Some(now), ..ReconcileReport::default() };
        if let Err(e) = self.poll_basecamp(now, &mut report.basecamp).await {
            report.failures.push(format!("Basecamp poll: {e}"));
        }
        if let Err(e) = self.poll_jira(now, &mut report.jira).await {
            report.failures.push(format!("Jira poll: {e}"));
        }
        self.check_webhooks(&mut report).await;
        if let Err(e) = self.retry_pending(now, &mut report).await {
            report.failures.push(format!("PENDING pairs: {e}"));
        }
        log(&report);
        report
    }

    /// Where a poll starts: the cursor minus the overlap and, for a source that cannot resume part-way
    /// (`bounded`), no further back than the lookback.
    fn since(&self, cursor: DateTime<Utc>, now: DateTime<Utc>, bounded: bool, poll: &mut PollReport) -> DateTime<Utc> {
        let mut since = cursor - chrono::Duration::from_std(self.settings.overlap).unwrap_or(chrono::Duration::zero());
        let floor = now - chrono::Duration::from_std(self.settings.max_lookback).unwrap_or(chrono::Duration::days(1));
        if bounded && since < floor {
            poll.gap = true;
            since = floor;
        }
        poll.since = Some(since);
        since
    }

    /// The stored cursor, or `None` after recording `now` as the first one.
    async fn cursor_or_init(
        &self,
        name: &str,
        now: DateTime<Utc>,
        poll: &mut PollReport,
    ) -> Result<Option<DateTime<Utc>>, StepError> {
        match self.cursors.cursor(name).await? {
            Some(c) => Ok(Some(c)),
            None => {
                self.cursors.advance(name, now).await?;
                poll.initialized = true;
                poll.cursor = Some(now);
                Ok(None)
            }
        }
    }

    async fn poll_basecamp(&self, now: DateTime<Utc>, poll: &mut PollReport) -> Result<(), StepError> {
        let Some(cursor) = self.cursor_or_init(BASECAMP_CURSOR, now, poll).await? else { return Ok(()) };
        // Newest first: a walk cut short cannot resume, so it never reaches back past the lookback.
        let since = self.since(cursor, now, true, poll);
        let projects: Vec<ProjectId> =
            self.routes.iter().map(|r| r.project).collect::<BTreeSet<_>>().into_iter().collect();
        if projects.is_empty() {
            self.advance(BASECAMP_CURSOR, now, poll).await?;
            return Ok(());
        }
        let listed =
            self.basecamp.todos_updated_since(&projects, since, self.settings.basecamp_max_pages.max(1)).await?;
        let mut updates = listed.updates;
        poll.seen = updates.len();
        if !listed.complete {
            // Newest first: the changes between `since` and the oldest one listed were not read, and no
            // later run reads them either (it starts from where this one gets to).
            poll.gap = true;
            poll.reached_back_to = Some(updates.iter().map(|u| u.updated_at).min().unwrap_or(now));
        }
        // Oldest change first, so a capped run has covered everything up to where it stopped.
        updates.sort_by_key(|u| (u.updated_at, u.todo));
        let mut reached = now;
        'updates: for update in &updates {
            for route in self.routes.iter().filter(|r| r.project == update.project) {
                if poll.enqueued >= self.settings.max_todo_jobs {
                    poll.truncated = true;
                    // Everything before this change is done; this one and later ones come again.
                    reached = update.updated_at;
                    break 'updates;
                }
                let key = PairKey { route: route.id.clone(), todo: update.todo };
                let seen = self.pairs.get(&key).await?.and_then(|p| p.todo_seen_at);
                if seen.is_some_and(|s| s >= update.updated_at) {
                    poll.up_to_date += 1;
                    continue;
                }
                let job = Job::TodoChanged {
                    delivery: DeliveryId(format!(
                        "reconcile:{}:{}:{}",
                        route.id,
                        update.todo,
                        update.updated_at.timestamp_micros()
                    )),
                    route: route.id.clone(),
                    project: update.project,
                    todo: update.todo,
                    event: POLL_EVENT.to_owned(),
                    received_at: now,
                };
                self.enqueue(&job).await?;
                poll.enqueued += 1;
            }
        }
        if poll.truncated {
            warn!(
                enqueued = poll.enqueued,
                "more Basecamp changes than one reconcile run takes; the next run goes on from the last one"
            );
        }
        self.advance(BASECAMP_CURSOR, reached, poll).await
    }

    async fn poll_jira(&self, now: DateTime<Utc>, poll: &mut PollReport) -> Result<(), StepError> {
        let Some(cursor) = self.cursor_or_init(JIRA_CURSOR, now, poll).await? else { return Ok(()) };
        // Oldest first: however far back the cursor is, each run goes on where the last one stopped.
        let since = self.since(cursor, now, false, poll);
        let projects: Vec<JiraProjectKey> = self
            .routes
            .iter()
            .map(|r| {
                let TrackerTarget::Jira { project, .. } = &r.target;
                project.clone()
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if projects.is_empty() {
            self.advance(JIRA_CURSOR, now, poll).await?;
            return Ok(());
        }
        let within = (now - since).to_std().unwrap_or(self.settings.overlap);
        let mut page: Option<String> = None;
        let mut last_seen: Option<DateTime<Utc>> = None;
        for n in 0..self.settings.jira_max_pages.max(1) {
            let got = self
                .tracker
                .issues_updated_within(&projects, within, self.settings.jira_page_size, page.as_deref())
                .await?;
            poll.seen += got.issues.len();
            for issue in &got.issues {
                self.issue_job(issue, now, poll).await?;
                last_seen = Some(issue.updated_at);
            }
            match got.next {
                // A server repeating its token would loop forever: stop, as if truncated.
                Some(next) if page.as_deref() != Some(next.as_str()) && !got.issues.is_empty() => {
                    if n + 1 == self.settings.jira_max_pages.max(1) {
                        poll.truncated = true;
                    }
                    page = Some(next);
                }
                Some(_) => {
                    poll.truncated = true;
                    break;
                }
                None => break,
            }
        }
        if !poll.truncated {
            return self.advance(JIRA_CURSOR, now, poll).await;
        }
        warn!(
            seen = poll.seen,
            "more Jira changes than one reconcile run takes; the next run goes on from the last one"
        );
        match last_seen {
            Some(t) => self.advance(JIRA_CURSOR, t, poll).await,
            None => {
                poll.cursor = Some(cursor);
                Ok(())
            }
        }
    }

    async fn issue_job(&self, issue: &IssueUpdate, now: DateTime<Utc>, poll: &mut PollReport) -> Result<(), StepError> {
        let Some(pair) = self.pairs.find_by_item(&issue.item).await? else {
            poll.not_paired += 1;
            return Ok(());
        };
        if pair.item_seen_at.is_some_and(|s| s >= issue.updated_at) {
            poll.up_to_date += 1;
            return Ok(());
        }
        let DevItemRef::Jira { id, key } = &issue.item;
        let job = Job::IssueChanged {
            delivery: DeliveryId(format!("reconcile:jira:{id}:{}", issue.updated_at.timestamp_micros())),
            issue: id.clone(),
            key: key.clone(),
            event: POLL_EVENT.to_owned(),
            received_at: now,
        };
        self.enqueue(&job).await?;
        poll.enqueued += 1;
        Ok(())
    }

    async fn advance(&self, name: &str, to: DateTime<Utc>, poll: &mut PollReport) -> Result<(), StepError> {
        self.cursors.advance(name, to).await?;
        poll.cursor = self.cursors.cursor(name).await?;
        Ok(())
    }

    async fn enqueue(&self, job: &Job) -> Result<(), StepError> {
        self.queue.enqueue(job).await?;
        Ok(())
    }

    /// Re-enables our deactivated webhooks, project by project; a failing project does not stop the others.
    async fn check_webhooks(&self, report: &mut ReconcileReport) {
        let projects: BTreeSet<ProjectId> = self.tokens.iter().map(|t| t.project).collect();
        for project in projects {
            if let Err(e) = self.check_project_webhooks(project, &mut report.webhooks).await {
                report.failures.push(format!("webhooks of project {project}: {e}"));
            }
        }
    }

    async fn check_project_webhooks(&self, project: ProjectId, hooks: &mut WebhookReport) -> Result<(), StepError> {
        let listed = self.basecamp.webhooks(project).await?;
        for t in self.tokens.iter().filter(|t| t.project == project) {
            let suffix = format!("/basecamp/{}", t.token.expose_secret());
            let ours: Vec<&ProjectWebhook> =
                listed.iter().filter(|h| h.payload_url.trim_end_matches('/').ends_with(&suffix)).collect();
            if ours.is_empty() {
                hooks.missing += 1;
                warn!(route = %t.route, %project, "no Basecamp webhook of this route is registered; run `campbridge webhooks register`");
            }
            for hook in ours {
                hooks.ours += 1;
                if !hook.active {
                    self.basecamp.reactivate(hook).await?;
                    hooks.reenabled += 1;
                    info!(route = %t.route, %project, webhook = hook.id, "re-enabled a deactivated Basecamp webhook");
                }
            }
        }
        Ok(())
    }

    async fn retry_pending(&self, now: DateTime<Utc>, report: &mut ReconcileReport) -> Result<(), StepError> {
        let pending = self.pairs.list(None, Some(PairState::Pending), self.settings.pending_limit).await?;
        for pair in pending.iter().filter(|p| p.lease_expired(now)) {
            if !self.routes.iter().any(|r| r.id == pair.route) {
                warn!(pair = %pair.key(), "a PENDING pair belongs to a route that is no longer configured; left alone");
                continue;
            }
            let lease_end = pair.lease.as_ref().map_or(0, |l| l.until.timestamp_micros());
            let job = Job::TodoChanged {
                delivery: DeliveryId(format!("reconcile:pending:{}:{}:{lease_end}", pair.route, pair.todo)),
                route: pair.route.clone(),
                project: pair.project,
                todo: pair.todo,
                event: PENDING_EVENT.to_owned(),
                received_at: now,
            };
            self.enqueue(&job).await?;
            report.pending_retried += 1;
        }
        Ok(())
    }
}

fn log(r: &ReconcileReport) {
    let summary = serde_json::to_string(r).unwrap_or_default();
    let problems = r.problems();
    if problems.is_empty() {
        info!(
            basecamp_enqueued = r.basecamp.enqueued,
            jira_enqueued = r.jira.enqueued,
            webhooks_reenabled = r.webhooks.reenabled,
            pending_retried = r.pending_retried,
            report = %summary,
            "reconcile finished"
        );
    } else {
        error!(problems = %problems.join("; "), report = %summary, "reconcile finished with problems");
    }
}
