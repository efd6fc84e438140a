//! The executor: runs [`decide`] for one record, performs the reads it asks for, and carries out its plan
//! through the ports — claiming before creating, recording conflicts, and updating the pair on its version.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::domain::{
    Backlink, DeliveryId, DetachReason, Detachment, DevItem, DevItemRef, Field, Fields, Job, NewDevItem, NoticeSide,
    Pair, PairState, RecordRef, Route, RouteId, Todo, UserTable, escape_html,
};
use crate::ports::{
    ApiError, AuditEntry, AuditLog, BasecampApi, Clock, Conflict, ConflictLog, DeliveryLog, DevItemPatch, PairStore,
    RemoteLink, Replaced, StoreError, TrackerApi,
};

use super::decide::{DecideInput, Fresh, decide, snapshot_after_create, snapshot_after_recovery};
use super::lifecycle::{self, Step};
use super::plan::{Apply, Plan, Side, Skip};

/// What the engine needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub routes: Vec<Route>,
    pub users: UserTable,
    /// Names this worker in leases (a Lambda request id, or `host:pid:n` locally).
    pub worker: String,
    /// How long a PENDING claim is ours before another worker may take it over. Longer than the
    /// slowest create (Jira's create + property + indexing), shorter than the queue's visibility.
    pub lease: Duration,
    /// How long completed deliveries are remembered (webhook retries arrive within ~30 minutes).
    pub delivery_retention: Duration,
    /// How long the tracker's search may lag behind a create (Jira's index: "recent updates might not be
    /// immediately visible"). A claim whose create may have happened is searched for its marker only this
    /// long after its lease ended, so an item made just before is found, not made again.
    pub search_settle: Duration,
    /// The queue's max-receive count: a job whose sync fails on this receive (a real failure, never a
    /// delay) is moved to the dead letters with its error. Equal to the queue's own count (SQS
    /// `maxReceiveCount`, [`crate::adapters::DEFAULT_MAX_RECEIVES`]).
    pub max_receives: u32,
}

impl SyncSettings {
    pub fn new(routes: Vec<Route>, users: UserTable, worker: &str) -> Self {
        Self {
            routes,
            users,
            worker: worker.to_owned(),
            lease: Duration::from_secs(60),
            delivery_retention: Duration::from_secs(2 * 60 * 60),
            search_settle: Duration::from_secs(30),
            max_receives: crate::adapters::DEFAULT_MAX_RECEIVES,
        }
    }
}

/// How long a worker may hold a linked pair while writing its changes upstream. Released as soon as the
/// writes are saved; the bound matters only when a worker dies mid-write. A held job is postponed for
/// [`HELD_RETRY`] at most each time (a postponement never counts towards the dead letters). A worker
/// slower than the lease finds it taken at its final save and starts over.
const WRITE_LEASE: Duration = Duration::from_secs(20);
const HELD_RETRY: Duration = Duration::from_secs(5);

/// The first retry delay after an outage (5xx, timeout, refused connection) and how far it grows.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);

/// The delay before attempt `attempt + 1` after `attempt` postponements: `BACKOFF_BASE · 2^(attempt-1)`,
/// capped at [`BACKOFF_CAP`], with equal jitter (`jitter` in `[0, 1)` picks a point in its upper half), so
/// a 60-second outage costs about seven attempts and workers that failed together do not retry together.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_CAP);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.5 };
    full / 2 + full.mul_f64(jitter / 2.0)
}

/// Why a record could not be synced now. [`SyncError::retry_delay`] is the one place that maps an error
/// to a retry decision.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{} rate limit; retry after {retry_after:?}", side.as_str())]
    RateLimited { side: Side, retry_after: Duration },
    /// Another worker holds the record (a live lease or a newer pair version): try again shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// Another worker is writing this pair's changes upstream under its lease: come back when the lease
    /// ends (it is released as soon as the writes are saved, so usually much sooner).
    #[error("busy: {subject} is being written by another worker")]
    Held { subject: String, wait: Duration },
    #[error("{} API: {source}", side.as_str())]
    Upstream {
        side: Side,
        #[source]
        source: ApiError,
    },
    /// A create may have happened under an earlier claim and the tracker's search may not show it yet:
    /// look for it once the index has caught up.
    #[error("waiting {wait:?} for the tracker's search to show what the earlier claim on {subject} may have created")]
    Settling { subject: String, wait: Duration },
    /// The code host (Bitbucket, read for signals) failed; a 429 there is a delay of minutes.
    #[error("code host API: {source}")]
    CodeHost {
        #[source]
        source: ApiError,
    },
    #[error("route {0:?} is not configured")]
    UnknownRoute(RouteId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    pub(super) fn upstream(side: Side) -> impl Fn(ApiError) -> SyncError {
        move |source| match source {
            ApiError::RateLimited { retry_after } => SyncError::RateLimited { side, retry_after },
            source => SyncError::Upstream { side, source },
        }
    }

    /// Whether this is a delay (a 429, an outage, a busy record) and, if so, how long to wait before
    /// attempt `attempt + 1` (`jitter` in `[0, 1)` spreads workers out). `None` = a real failure: the
    /// queue's visibility timeout, and after its max receive count the dead letters.
    ///
    /// A 429 waits at least its `Retry-After`, and longer when 429s keep coming (the backoff); an outage
    /// backs off exponentially ([`backoff`]); a busy record is retried within seconds.
    pub fn retry_delay(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        let spread = |d: Duration| d + d.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::CodeHost { source: ApiError::RateLimited { retry_after } } => {
                Some(spread((*retry_after).max(backoff(attempt, jitter))))
            }
            Self::Busy(_) => Some(spread(Duration::from_secs(2))),
            Self::Held { wait, .. } => Some(spread((*wait).clamp(Duration::from_secs(1), HELD_RETRY))),
            Self::Settling { wait, .. } => Some((*wait).max(Duration::from_secs(1))),
            Self::Upstream { source, .. } | Self::CodeHost { source } if source.is_retryable() => {
                Some(backoff(attempt, jitter))
            }
            _ => None,
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Skipped(Skip),
    /// A dev item was created (or, after a takeover, found by its marker) and the pair linked.
    Created {
        item: DevItemRef,
        recovered: bool,
    },
    /// Writes were made (`writes` requests' worth) and the pair updated.
    Updated {
        writes: usize,
        conflicts: usize,
    },
    /// Only the pair's snapshot moved (both sides already agreed), or a conflict was left open.
    Recorded {
        conflicts: usize,
    },
    /// One side went away: the pair stopped syncing and the other side was told (docs/lifecycle.md).
    Detached {
        reason: DetachReason,
    },
}

/// What happened, in words (`campbridge selftest` and logs print it).
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conflicts = |n: usize| match n {
            0 => String::new(),
            1 => ", 1 conflict".to_owned(),
            n => format!(", {n} conflicts"),
        };
        match self {
            Self::Skipped(skip) => write!(f, "skipped: {skip}"),
            Self::Created { item, recovered: false } => write!(f, "created {item} and paired it"),
            Self::Created { item, recovered: true } => {
                write!(f, "found {item} (created by an earlier, interrupted attempt) and paired it")
            }
            Self::Updated { writes, conflicts: n } => write!(f, "updated: {writes} write(s){}", conflicts(*n)),
            Self::Recorded { conflicts: 0 } => f.write_str("recorded: both sides already agree"),
            Self::Recorded { conflicts: n } => write!(f, "recorded without writing{}", conflicts(*n)),
            Self::Detached { reason } => write!(f, "detached: {}", reason.describe()),
        }
    }
}

/// The result of one [`Apply`]: the saved pair and what Basecamp returned after a write.
struct Applied {
    pair: Pair,
    writes: usize,
    conflicts: usize,
    written_todo: Option<Todo>,
}

impl Outcome {
    fn applied(writes: usize, conflicts: usize) -> Self {
        if writes > 0 { Self::Updated { writes, conflicts } } else { Self::Recorded { conflicts } }
    }

    /// Our own write came back (or nothing we sync changed) and was dropped.
    pub fn is_echo(&self) -> bool {
        matches!(self, Self::Skipped(Skip::Unchanged))
    }
}

/// The sync engine for one deployment. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    pub settings: Arc<SyncSettings>,
    pub pairs: Arc<dyn PairStore>,
    pub deliveries: Arc<dyn DeliveryLog>,
    pub audit: Arc<dyn AuditLog>,
    pub conflicts: Arc<dyn ConflictLog>,
    pub basecamp: Arc<dyn BasecampApi>,
    pub tracker: Arc<dyn TrackerApi>,
    /// The code host (Bitbucket), when configured: finds the branch of a build status that names none.
    pub code_host: Option<Arc<dyn crate::ports::CodeHostApi>>,
    pub clock: Arc<dyn Clock>,
}

/// What one decide → act round learnt beyond its outcome.
#[derive(Default)]
struct Seen {
    /// The tracker item as read, for the blocker check.
    item: Option<DevItem>,
    /// A create left the sides apart in a way the next decision settles (an item recovered from a stopped
    /// worker, or a to-do completed before its item existed): run one more round at once.
    follow_up: bool,
}

/// Reads of both sides made so far for one record.
struct Reads {
    todo: Fresh<Todo>,
    item: Fresh<DevItem>,
}

fn as_ref<T>(f: &Fresh<T>) -> Fresh<&T> {
    match f {
        Fresh::NotFetched => Fresh::NotFetched,
        Fresh::Gone => Fresh::Gone,
        Fresh::Found(t) => Fresh::Found(t),
    }
}

impl Engine {
    fn route(&self, id: &RouteId) -> Result<&Route, SyncError> {
        self.settings.routes.iter().find(|r| &r.id == id).ok_or_else(|| SyncError::UnknownRoute(id.clone()))
    }

    /// Syncs one record for all of `jobs` (which must share a record): one fresh read per side at most,
    /// one write per side at most — a burst of events coalesces here.
    #[tracing::instrument(skip_all, fields(record = %jobs.first().map(|j| j.record().group_id()).unwrap_or_default()))]
    pub async fn sync_record(&self, jobs: &[Job]) -> Result<Outcome, SyncError> {
        let Some(first) = jobs.first() else { return Ok(Outcome::Skipped(Skip::Unchanged)) };
        let delivery = Some(first.delivery().clone());
        match first.record() {
            RecordRef::TodoComment { route, project, todo, comment } => {
                return self.sync_comment(&route, project, todo, comment, delivery.as_ref()).await;
            }
            // Each signal event is its own news (a state, a build result): handled one by one.
            RecordRef::PullRequest { .. } | RecordRef::Build { .. } => {
                let mut last = Outcome::Skipped(Skip::Unchanged);
                for job in jobs {
                    last = self.sync_signal(job).await?;
                }
                return Ok(last);
            }
            RecordRef::IssueComment { .. } => {
                let mut last = Outcome::Skipped(Skip::Unchanged);
                for job in jobs {
                    last = self.sync_tracker_comment(job).await?;
                }
                return Ok(last);
            }
            RecordRef::Todolist { route, project, list } => {
                return self.rescan_list(&route, project, list, delivery.as_ref()).await;
            }
            RecordRef::Todo { .. } | RecordRef::Issue { .. } => {}
        }
        // A pair can change under us (another worker linked it, or took a lease over): re-read and
        // decide again, a bounded number of times. A create that left the sides apart (see [`Seen`]) gets
        // one more round at once.
        let mut created: Option<Outcome> = None;
        for _ in 0..5 {
            let (route_id, changed, pair, project, todo_id) = match first.record() {
                RecordRef::Todo { route, project, todo } => {
                    let pair = self.pairs.get(&crate::domain::PairKey { route: route.clone(), todo }).await?;
                    (route, Side::Basecamp, pair, project, todo)
                }
                RecordRef::Issue { issue, key } => {
                    let item = DevItemRef::Jira { id: issue, key };
                    let Some(pair) = self.pairs.find_by_item(&item).await? else {
                        self.note(None, &item.index_key(), delivery.as_ref(), &Skip::NotPaired).await?;
                        return Ok(Outcome::Skipped(Skip::NotPaired));
                    };
                    (pair.route.clone(), Side::Tracker, Some(pair.clone()), pair.project, pair.todo)
                }
                RecordRef::TodoComment { .. }
                | RecordRef::Todolist { .. }
                | RecordRef::IssueComment { .. }
                | RecordRef::PullRequest { .. }
                | RecordRef::Build { .. } => {
                    return Ok(Outcome::Skipped(Skip::Unchanged));
                }
            };
            let route = self.route(&route_id)?;
            let mut seen = Seen::default();
            match self.run(route, changed, pair, (project, todo_id, None), delivery.as_ref(), &mut seen).await? {
                Some(outcome @ Outcome::Created { .. }) if seen.follow_up && created.is_none() => {
                    created = Some(outcome);
                }
                Some(outcome) => {
                    if let Some(item) = seen.item.filter(|_| changed == Side::Tracker) {
                        let key = crate::domain::PairKey { route: route_id.clone(), todo: todo_id };
                        self.check_blocker(&key, &item, first).await?;
                    }
                    return Ok(created.unwrap_or(outcome));
                }
                None => continue,
            }
        }
        Err(SyncError::Busy("the pair kept changing while syncing".to_owned()))
    }

    /// A to-do list changed (renamed, archived, trashed, restored, copied, deleted): re-scans its to-dos,
    /// each as if it had changed itself, from the listing (no read per to-do). Unpaired to-dos the route
    /// does not take are passed over quietly; a list that is gone is walked through its pairs, each of
    /// which then finds its to-do gone. A rate limit stops the scan; the job's retry scans again, and the
    /// to-dos already handled are unchanged by then.
    async fn rescan_list(
        &self,
        route_id: &RouteId,
        project: crate::domain::ProjectId,
        list: crate::domain::TodolistId,
        delivery: Option<&DeliveryId>,
    ) -> Result<Outcome, SyncError> {
        let route = self.route(route_id)?;
        let subject = format!("{route_id}/list-{list}");
        let listed = self.basecamp.list_todos(project, list).await.map_err(SyncError::upstream(Side::Basecamp))?;
        let mut work: Vec<(crate::domain::TodoId, Option<Todo>)> = Vec::new();
        match listed {
            Some(todos) => {
                for todo in todos {
                    let key = crate::domain::PairKey { route: route_id.clone(), todo: todo.id };
                    if self.pairs.get(&key).await?.is_none() && route.admits(&todo).is_err() {
                        continue;
                    }
                    work.push((todo.id, Some(todo)));
                }
            }
            None => {
                const ALL: usize = 100_000;
                let pairs = self.pairs.list(Some(route_id), Some(PairState::Linked), ALL).await?;
                work.extend(pairs.into_iter().filter(|p| p.todolist == Some(list)).map(|p| (p.todo, None)));
            }
        }
        let detail = format!("re-scanning {} to-do(s) of list {list}", work.len());
        self.record(Some(route_id), &subject, delivery, "list_rescan", &detail).await?;
        let (mut writes, mut conflicts) = (0, 0);
        for (todo_id, todo) in work {
            let outcome = self.sync_todo(route, project, todo_id, todo, delivery).await?;
            if let Outcome::Updated { writes: w, conflicts: c } = outcome {
                writes += w;
                conflicts += c;
            }
        }
        Ok(Outcome::applied(writes, conflicts))
    }

    /// Syncs one to-do as a Basecamp-side change, starting from `todo` when it was just read.
    async fn sync_todo(
        &self,
        route: &Route,
        project: crate::domain::ProjectId,
        todo_id: crate::domain::TodoId,
        todo: Option<Todo>,
        delivery: Option<&DeliveryId>,
    ) -> Result<Outcome, SyncError> {
        let mut created: Option<Outcome> = None;
        for _ in 0..5 {
            let pair = self.pairs.get(&crate::domain::PairKey { route: route.id.clone(), todo: todo_id }).await?;
            let mut seen = Seen::default();
            let run = self.run(route, Side::Basecamp, pair, (project, todo_id, todo.clone()), delivery, &mut seen);
            match run.await? {
                Some(outcome @ Outcome::Created { .. }) if seen.follow_up && created.is_none() => {
                    created = Some(outcome);
                }
                Some(outcome) => return Ok(created.unwrap_or(outcome)),
                None => {}
            }
        }
        Err(SyncError::Busy(format!("pair {}/{todo_id} kept changing while syncing", route.id)))
    }

    /// One decide → act round. `Ok(None)` means the pair changed under us: start again.
    async fn run(
        &self,
        route: &Route,
        mut changed: Side,
        pair: Option<Pair>,
        (project, todo_id, prefetched): (crate::domain::ProjectId, crate::domain::TodoId, Option<Todo>),
        delivery: Option<&DeliveryId>,
        seen: &mut Seen,
    ) -> Result<Option<Outcome>, SyncError> {
        let users = &self.settings.users;
        let mut reads = Reads { todo: prefetched.map_or(Fresh::NotFetched, Fresh::Found), item: Fresh::NotFetched };
        let subject = format!("{}/{}", route.id, todo_id);
        let mut pair = pair;
        // A linked pair under a live lease is having its changes written by another worker (see
        // `apply`): deciding now would compare fresh reads against a snapshot about to change.
        if let Some(lease) = pair.as_ref().filter(|p| p.is_linked()).and_then(|p| p.lease.as_ref()) {
            let now = self.clock.now();
            if lease.until > now {
                let wait = (lease.until - now).to_std().unwrap_or(Duration::from_secs(1));
                return Err(SyncError::Held { subject, wait });
            }
        }
        // A pair linked by a worker that stopped before both links were made: finish them first.
        if let Some(p) = pair.as_mut().filter(|p| {
            p.is_linked() && p.detached.is_none() && (!p.remote_linked || !matches!(p.backlink, Backlink::Posted(_)))
        }) {
            let todo = self.basecamp.get_todo(project, todo_id).await.map_err(SyncError::upstream(Side::Basecamp))?;
            let item = match &p.item {
                Some(r) => self.tracker.get_item(r).await.map_err(SyncError::upstream(Side::Tracker))?,
                None => None,
            };
            if let (Some(todo), Some(item)) = (&todo, &item) {
                self.finish_links(route, p, todo, item, delivery).await?;
            }
            reads.todo = todo.map_or(Fresh::Gone, Fresh::Found);
            reads.item = item.map_or(Fresh::Gone, Fresh::Found);
        }
        let mut done: Option<(usize, usize)> = None;
        // decide asks for at most one read per side, plus one follow-up round after a Basecamp write; the
        // lifecycle may add a read, a posted notice and a resume: eight rounds always reach a verdict.
        for _ in 0..8 {
            if let Some(p) = pair.clone().filter(|p| p.is_linked()) {
                if p.notice.is_some() {
                    // A lifecycle comment saved but maybe not posted (a crash, a rate limit): post it first.
                    let Some(posted) = self.post_notice(route, p, delivery).await? else { return Ok(None) };
                    pair = Some(posted);
                    continue;
                }
                match lifecycle::assess(route, &p, changed, as_ref(&reads.todo), as_ref(&reads.item)) {
                    Step::Attached => {}
                    Step::Fetch(side) => {
                        self.read(side, &p, (project, todo_id), &mut reads, &mut seen.item).await?;
                        continue;
                    }
                    Step::Stay => {
                        if let Some((writes, conflicts)) = done {
                            return Ok(Some(Outcome::applied(writes, conflicts)));
                        }
                        let reason = p.detached.map(|d| d.reason).unwrap_or(DetachReason::TodoDeleted);
                        let skip = Skip::Detached(reason);
                        self.note(Some(&route.id), &subject, delivery, &skip).await?;
                        return Ok(Some(Outcome::Skipped(skip)));
                    }
                    Step::Detach(reason) => return self.detach(route, p, reason, &reads, delivery).await,
                    Step::Resume => {
                        let Some(resumed) = self.resume(route, p, &reads, delivery).await? else { return Ok(None) };
                        // Either side may have changed while detached: read both, so decide sees every change.
                        if !reads.todo.is_fetched() {
                            self.read(Side::Basecamp, &resumed, (project, todo_id), &mut reads, &mut seen.item).await?;
                        }
                        if !reads.item.is_fetched() {
                            self.read(Side::Tracker, &resumed, (project, todo_id), &mut reads, &mut seen.item).await?;
                        }
                        pair = Some(resumed);
                        continue;
                    }
                }
            }
            let plan = decide(&DecideInput {
                route,
                users,
                changed,
                pair: pair.as_ref(),
                todo: as_ref(&reads.todo),
                item: as_ref(&reads.item),
            });
            match plan {
                Plan::Fetch(Side::Basecamp) => {
                    let t =
                        self.basecamp.get_todo(project, todo_id).await.map_err(SyncError::upstream(Side::Basecamp))?;
                    reads.todo = t.map_or(Fresh::Gone, Fresh::Found);
                }
                Plan::Fetch(Side::Tracker) => {
                    let Some(p) = pair.as_ref().filter(|p| p.item.is_some()) else {
                        return Ok(Some(Outcome::Skipped(Skip::NotPaired)));
                    };
                    self.read(Side::Tracker, p, (project, todo_id), &mut reads, &mut seen.item).await?;
                }
                Plan::Skip(skip) => {
                    if let Some((writes, conflicts)) = done {
                        return Ok(Some(Outcome::applied(writes, conflicts)));
                    }
                    self.note(Some(&route.id), &subject, delivery, &skip).await?;
                    return Ok(Some(Outcome::Skipped(skip)));
                }
                Plan::Create(draft) => {
                    let Fresh::Found(todo) = &reads.todo else {
                        return Err(SyncError::Busy("create planned without a fresh to-do".to_owned()));
                    };
                    let (outcome, follow_up) = self.create(route, pair, todo, *draft, delivery).await?;
                    seen.follow_up = follow_up;
                    return Ok(outcome);
                }
                Plan::Apply(apply) => {
                    let Some(mut p) = pair.take() else { return Ok(None) };
                    if let Some(t) = reads.todo.found() {
                        p.todolist = Some(t.todolist);
                    }
                    // Another worker saved the pair first (its event is for the same pair, from the
                    // other side): start over from the stored pair. Writes already made are equal to
                    // what the fresh reads will show, so the new round does not repeat them.
                    let Some(applied) = self.apply(route, p, *apply, delivery).await? else { return Ok(None) };
                    let (writes, conflicts) = done.unwrap_or((0, 0));
                    done = Some((writes + applied.writes, conflicts + applied.conflicts));
                    let follow_up =
                        applied.written_todo.filter(|t| route.project_todo(users, t) != applied.pair.snapshot.todo);
                    pair = Some(applied.pair);
                    match follow_up {
                        // What we wrote to Basecamp changed values derived from the to-do (a title's
                        // priority marker, the description that embeds it): carry them across now
                        // rather than on the webhook our own write will cause.
                        Some(todo) => {
                            reads.todo = Fresh::Found(todo);
                            reads.item = Fresh::NotFetched;
                            changed = Side::Basecamp;
                        }
                        None => {
                            let (writes, conflicts) = done.unwrap_or((0, 0));
                            return Ok(Some(Outcome::applied(writes, conflicts)));
                        }
                    }
                }
            }
        }
        Err(SyncError::Busy("decide kept asking for reads".to_owned()))
    }

    /// Reads one side of `pair` into `reads`.
    async fn read(
        &self,
        side: Side,
        pair: &Pair,
        (project, todo_id): (crate::domain::ProjectId, crate::domain::TodoId),
        reads: &mut Reads,
        seen_item: &mut Option<DevItem>,
    ) -> Result<(), SyncError> {
        match side {
            Side::Basecamp => {
                let t = self.basecamp.get_todo(project, todo_id).await.map_err(SyncError::upstream(Side::Basecamp))?;
                reads.todo = t.map_or(Fresh::Gone, Fresh::Found);
            }
            Side::Tracker => {
                let Some(item_ref) = &pair.item else { return Ok(()) };
                let i = self.tracker.get_item(item_ref).await.map_err(SyncError::upstream(Side::Tracker))?;
                seen_item.clone_from(&i);
                reads.item = i.map_or(Fresh::Gone, Fresh::Found);
            }
        }
        Ok(())
    }

    /// Stops syncing `pair` for `reason` (docs/lifecycle.md): saves the detachment together with the comment
    /// the other side gets, then posts that comment. `Ok(None)`: the pair changed under us, start over.
    async fn detach(
        &self,
        route: &Route,
        mut pair: Pair,
        reason: DetachReason,
        reads: &Reads,
        delivery: Option<&DeliveryId>,
    ) -> Result<Option<Outcome>, SyncError> {
        let subject = pair.key().to_string();
        let detachment = Detachment { reason: reason.clone(), since: self.clock.now() };
        let (title, todo_url) = match reads.todo.found() {
            Some(t) => (t.title.clone(), t.app_url.clone()),
            None => (pair.snapshot.todo.title.clone(), String::new()),
        };
        // The item as the pair knew it (a moved issue is named by the key people knew), with its URL when read.
        let key = pair.item.as_ref().map(|i| i.display_name().to_owned()).unwrap_or_default();
        let item_url = reads.item.found().map(|i| i.url.clone()).unwrap_or_default();
        if let (DetachReason::IssueMoved { key }, Some(DevItemRef::Jira { id, .. })) = (&reason, &pair.item) {
            pair.item = Some(DevItemRef::Jira { id: id.clone(), key: key.clone() });
        }
        pair.notice = Some(lifecycle::detach_notice(route, &detachment, (&title, &todo_url), (&key, &item_url)));
        pair.detached = Some(detachment);
        if let Some(t) = reads.todo.found() {
            pair.todolist = Some(t.todolist);
        }
        if !self.save_or_restart(&mut pair).await? {
            return Ok(None);
        }
        info!(pair = %subject, reason = reason.code(), "to-do {} stopped syncing: {}", pair.todo, reason.describe());
        self.record(Some(&route.id), &subject, delivery, "detached", &reason.describe()).await?;
        if self.post_notice(route, pair, delivery).await?.is_none() {
            // The pair moved on after the save; its next job posts the notice (it stays saved on the pair).
            warn!(pair = %subject, "the detach notice waits for the next job");
        }
        Ok(Some(Outcome::Detached { reason }))
    }

    /// Syncs a detached pair again: saves that, with the comment saying so, then posts it.
    async fn resume(
        &self,
        route: &Route,
        mut pair: Pair,
        reads: &Reads,
        delivery: Option<&DeliveryId>,
    ) -> Result<Option<Pair>, SyncError> {
        let subject = pair.key().to_string();
        let Some(detachment) = pair.detached.take() else { return Ok(Some(pair)) };
        if let Some(i) = reads.item.found() {
            pair.item = Some(i.item.clone());
        }
        if let Some(t) = reads.todo.found() {
            pair.todolist = Some(t.todolist);
        }
        let key = pair.item.as_ref().map(|i| i.display_name().to_owned()).unwrap_or_default();
        pair.notice = Some(lifecycle::resume_notice(&detachment, self.clock.now(), &key));
        if !self.save_or_restart(&mut pair).await? {
            return Ok(None);
        }
        info!(pair = %subject, was = detachment.reason.code(), "to-do {} syncs again", pair.todo);
        let detail = format!("syncing again; it was detached because {}", detachment.reason.describe());
        self.record(Some(&route.id), &subject, delivery, "resumed", &detail).await?;
        self.post_notice(route, pair, delivery).await
    }

    /// Posts the pair's pending lifecycle comment once: it looks for the comment first (an earlier attempt
    /// may have posted it), and a side that is gone too gets nothing (audited). `Ok(None)`: the pair changed.
    async fn post_notice(
        &self,
        route: &Route,
        mut pair: Pair,
        delivery: Option<&DeliveryId>,
    ) -> Result<Option<Pair>, SyncError> {
        let Some(notice) = pair.notice.clone() else { return Ok(Some(pair)) };
        let subject = pair.key().to_string();
        let seen = |html: &str| crate::richtext::html_to_text(html).contains(&notice.marker);
        let (side, result) = match (notice.side, &pair.item) {
            (NoticeSide::Tracker, Some(item)) => {
                let posted = match self.tracker.list_comments(item).await {
                    Ok(comments) if comments.iter().any(|c| seen(&c.html)) => Ok(()),
                    Ok(_) => self.tracker.add_comment(item, &notice.html).await.map(drop),
                    Err(e) => Err(e),
                };
                (Side::Tracker, posted)
            }
            (NoticeSide::Tracker, None) => (Side::Tracker, Err(ApiError::Invalid("no tracker item".into()))),
            (NoticeSide::Basecamp, _) => {
                let posted = match self.basecamp.list_comments(pair.project, pair.todo).await {
                    Ok(comments) if comments.iter().any(|c| seen(&c.content)) => Ok(()),
                    Ok(_) => self.basecamp.post_comment(pair.project, pair.todo, &notice.html).await.map(drop),
                    Err(e) => Err(e),
                };
                (Side::Basecamp, posted)
            }
        };
        match result {
            Ok(()) => {}
            // The side that should hear about it is gone (or closed to us) too: there is no one to tell.
            Err(e @ (ApiError::Invalid(_) | ApiError::Forbidden(_))) => {
                let detail = format!("the {} side could not take the notice ({e}): {}", side.as_str(), notice.marker);
                self.record(Some(&route.id), &subject, delivery, "notice_undeliverable", &detail).await?;
            }
            Err(e) => return Err(SyncError::upstream(side)(e)),
        }
        pair.notice = None;
        if !self.save_or_restart(&mut pair).await? {
            return Ok(None);
        }
        Ok(Some(pair))
    }

    /// Find-or-create: claim the pair PENDING with a lease, create the item (or, after taking over a
    /// stale claim, find the one a crashed worker created), then link (mirroring the `DEV:` comments the
    /// to-do got before it was paired). `true` beside the outcome: the sides still differ in a way the next
    /// decision settles (see [`snapshot_after_create`]).
    async fn create(
        &self,
        route: &Route,
        existing: Option<Pair>,
        todo: &Todo,
        mut draft: NewDevItem,
        delivery: Option<&DeliveryId>,
    ) -> Result<(Option<Outcome>, bool), SyncError> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(60));
        let worker = self.settings.worker.as_str();
        let (mut pair, took_over) = match existing {
            None => {
                let fresh = Pair::pending(route.id.clone(), todo.project, todo.id, worker, now, until);
                match self.pairs.insert(&fresh).await? {
                    crate::ports::Inserted::Inserted => (fresh, false),
                    crate::ports::Inserted::AlreadyExists(_) => return Ok((None, false)),
                }
            }
            Some(p) if p.is_linked() => return Ok((None, false)),
            Some(p) => {
                let mine = p.lease.as_ref().is_some_and(|l| l.owner == worker);
                if !mine && !p.lease_expired(now) {
                    return Err(SyncError::Busy(format!("pair {} is being created by another worker", p.key())));
                }
                // A claim that still has a lease may have created the item before the lease ended (a crash,
                // or an answer lost after Jira committed); the marker search shows it only once the index
                // has caught up, so it is trusted only then. A claim without a lease created nothing.
                let may_have_created = p.lease.is_some();
                if let Some(lease) = &p.lease {
                    let settle = chrono::Duration::from_std(self.settings.search_settle)
                        .unwrap_or(chrono::Duration::seconds(30));
                    let settled = lease.until + settle;
                    if now < settled {
                        let wait = (settled - now).to_std().unwrap_or(self.settings.search_settle);
                        return Err(SyncError::Settling { subject: p.key().to_string(), wait });
                    }
                }
                let mut taken = p.clone();
                taken.lease = Some(crate::domain::Lease { owner: worker.to_owned(), until });
                taken.updated_at = now;
                match self.pairs.replace(&taken).await? {
                    Replaced::Replaced(v) => {
                        taken.version = v;
                        (taken, may_have_created)
                    }
                    Replaced::Stale(_) => return Ok((None, false)),
                }
            }
        };
        let subject = pair.key().to_string();

        // A claim we took over may hide an item a crashed worker created: find it by its marker.
        let found = if took_over {
            self.tracker
                .find_by_marker(&route.target, &draft.marker)
                .await
                .map_err(SyncError::upstream(Side::Tracker))?
        } else {
            None
        };
        let recovered = found.is_some();
        let (item, deferred) = match found {
            Some(item) => (item, Vec::new()),
            None => match self.create_with_fallback(route, &mut draft, &subject, delivery).await {
                Ok(made) => made,
                Err(e) => {
                    self.release_claim(&mut pair, &e).await;
                    return Err(e);
                }
            },
        };

        pair.state = PairState::Linked;
        pair.item = Some(item.item.clone());
        // The claim stays on until the links are made: a job from the tracker side meanwhile (the echo of
        // the create) waits instead of making them too, which could post the link comment twice.
        pair.todolist = Some(todo.todolist);
        pair.snapshot = if recovered {
            snapshot_after_recovery(route, &self.settings.users, todo, &item)
        } else {
            snapshot_after_create(route, &self.settings.users, todo, &item)
        };
        // A field left out of the create is recorded as not yet synced (the item's value on both sides of
        // the snapshot), so the follow-up pass sees the to-do's value as a change and writes it by an edit.
        for field in &deferred {
            let synced = &mut pair.snapshot;
            match field {
                Field::DueDate => synced.todo.due = synced.tracker.due,
                Field::Priority => synced.todo.priority = synced.tracker.priority,
                Field::Components => synced.todo.components = synced.tracker.components.clone(),
                _ => {}
            }
        }
        pair.todo_seen_at = Some(todo.updated_at);
        pair.item_seen_at = Some(item.updated_at);
        pair.updated_at = self.clock.now();
        match self.pairs.replace(&pair).await? {
            Replaced::Replaced(v) => pair.version = v,
            Replaced::Stale(_) => {
                // Our lease ran out mid-create and another worker took over; it finds this item by marker.
                warn!(pair = %subject, item = %item.item, "lease lost while creating; the new owner will link the item");
                return Err(SyncError::Busy(format!("lease on {subject} was taken over while creating")));
            }
        }
        let action = if recovered { "recovered" } else { "created" };
        let title = super::story::clip(&todo.title);
        if recovered {
            info!(pair = %subject, "{} found for to-do {} (an earlier attempt created it): \"{title}\"", item.item, todo.id);
        } else {
            info!(pair = %subject, "{} created from to-do {}: \"{title}\"", item.item, todo.id);
        }
        self.record(
            Some(&route.id),
            &subject,
            delivery,
            action,
            &format!(
                "{} {} for to-do {:?}",
                if recovered { "found existing" } else { "created" },
                item.item,
                todo.title
            ),
        )
        .await?;
        let linked = self.finish_links(route, &mut pair, todo, &item, delivery).await;
        self.release_link_claim(&pair.key()).await;
        linked?;
        let follow_up = recovered || !deferred.is_empty() || todo.completed != item.status.is_done();
        Ok((Some(Outcome::Created { item: item.item, recovered }), follow_up))
    }

    /// After a failed create: a refusal (4xx, 429) created nothing, so the claim drops its lease and the next
    /// attempt creates at once. Any other failure (5xx, a lost answer) may have created the item: the claim
    /// keeps its lease, and the next attempt searches for the item once the lease has ended and the index
    /// has caught up. Best effort: a claim left as it was only costs that wait.
    async fn release_claim(&self, pair: &mut Pair, error: &SyncError) {
        let created_nothing = match error {
            SyncError::RateLimited { .. } => true,
            SyncError::Upstream { source, .. } => matches!(
                source,
                ApiError::AuthRequired(_)
                    | ApiError::Forbidden(_)
                    | ApiError::FieldRejected { .. }
                    | ApiError::Invalid(_)
                    | ApiError::RateLimited { .. }
            ),
            _ => false,
        };
        if !created_nothing || pair.lease.is_none() {
            return;
        }
        pair.lease = None;
        if let Err(e) = self.save_or_restart(pair).await {
            warn!(pair = %pair.key(), error = %e, "could not release the create claim");
        }
    }

    /// Clears this worker's claim on a pair it has just linked (best effort: it also runs out by itself).
    async fn release_link_claim(&self, key: &crate::domain::PairKey) {
        let worker = self.settings.worker.as_str();
        for _ in 0..3 {
            let mut pair = match self.pairs.get(key).await {
                Ok(Some(p)) if p.lease.as_ref().is_some_and(|l| l.owner == worker) => p,
                Ok(_) => return,
                Err(e) => {
                    warn!(pair = %key, error = %e, "could not read the pair to release its claim");
                    return;
                }
            };
            pair.lease = None;
            match self.save_or_restart(&mut pair).await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    warn!(pair = %key, error = %e, "could not release the claim on a linked pair");
                    return;
                }
            }
        }
    }

    /// Comments made on the to-do before it was paired were skipped (there was nothing to mirror them to):
    /// mirror its `DEV:` ones now, through the same claim-then-post steps as a comment's own job, so a
    /// concurrent one of those posts nothing twice.
    async fn mirror_earlier_comments(
        &self,
        route: &Route,
        pair: &Pair,
        delivery: Option<&DeliveryId>,
    ) -> Result<(), SyncError> {
        if route.dev_comment_prefix.is_none() {
            return Ok(());
        }
        let comments =
            self.basecamp.list_comments(pair.project, pair.todo).await.map_err(SyncError::upstream(Side::Basecamp))?;
        for c in comments {
            if matches!(super::comments::decide_comment(route, pair, &c), super::comments::CommentPlan::Skip(_)) {
                continue;
            }
            self.sync_comment(&route.id, pair.project, pair.todo, c.id, delivery).await?;
        }
        Ok(())
    }

    /// Creates the item; when the tracker refuses the assignee, falls back to triage, then to unassigned. A
    /// due date, priority or components the project's create screen lacks (Jira refuses the whole create,
    /// naming the field) is left out of the create and returned, to be set by an edit afterwards.
    async fn create_with_fallback(
        &self,
        route: &Route,
        draft: &mut NewDevItem,
        subject: &str,
        delivery: Option<&DeliveryId>,
    ) -> Result<(DevItem, Vec<Field>), SyncError> {
        let mut deferred = Vec::new();
        loop {
            match self.tracker.create_item(&route.target, draft).await {
                Ok(item) => return Ok((item, deferred)),
                Err(ApiError::FieldRejected { field, message }) if let Some(f) = drop_from_draft(&field, draft) => {
                    let detail = format!(
                        "the tracker's create screen refused {field} ({message}); created without it, then set \
                         by an edit"
                    );
                    self.record(Some(&route.id), subject, delivery, "field_deferred", &detail).await?;
                    deferred.push(f);
                }
                Err(e) if draft.assignee.is_some() && refuses_assignee(&e) => {
                    let message = e.to_string();
                    let next = route.triage.clone().filter(|t| Some(t) != draft.assignee.as_ref());
                    let detail = format!(
                        "the tracker refused assignee {} ({message}); {}",
                        draft.assignee.as_ref().map(|a| a.0.as_str()).unwrap_or_default(),
                        next.as_ref()
                            .map_or_else(|| "left unassigned".to_owned(), |t| format!("assigned to triage {t}"))
                    );
                    self.record(Some(&route.id), subject, delivery, "assignee_fallback", &detail).await?;
                    draft.assignee = next;
                }
                Err(e) => return Err(SyncError::upstream(Side::Tracker)(e)),
            }
        }
    }

    /// The links both ways that a linked pair must have: the tracker's remote link to the to-do, and the
    /// one-time Basecamp comment naming the item — and, before that comment, the `DEV:` comments the to-do
    /// got before it was paired. Repeated on later jobs until each succeeded once.
    async fn finish_links(
        &self,
        route: &Route,
        pair: &mut Pair,
        todo: &Todo,
        item: &DevItem,
        delivery: Option<&DeliveryId>,
    ) -> Result<(), SyncError> {
        if !pair.remote_linked {
            let link = RemoteLink {
                global_id: format!("system=basecamp&id={}/{}", todo.project, todo.id),
                url: todo.app_url.clone(),
                title: format!("Basecamp: {}", todo.title),
            };
            self.tracker.upsert_remote_link(&item.item, &link).await.map_err(SyncError::upstream(Side::Tracker))?;
            pair.remote_linked = true;
            self.save(pair).await?;
        }
        if matches!(pair.backlink, Backlink::Posted(_)) {
            return Ok(());
        }
        // Comments made before the pair existed, before the link comment: a stop (or an outage) in between
        // repeats this step on the next job, and what it repeats posts nothing twice.
        self.mirror_earlier_comments(route, pair, delivery).await?;
        if let Some(fresh) = self.pairs.get(&pair.key()).await? {
            *pair = fresh;
        }
        // If an earlier attempt may have posted already, look before posting again.
        if pair.backlink == Backlink::Attempting {
            let comments = self
                .basecamp
                .list_comments(todo.project, todo.id)
                .await
                .map_err(SyncError::upstream(Side::Basecamp))?;
            // By its own words: other comments (a `PM:` twin's link, a signal) can carry the item's URL too.
            let needle = format!("Linked to {} {}:", tracker_name(&item.item), item.item.display_name());
            if let Some(c) = comments.iter().find(|c| crate::richtext::html_to_text(&c.content).contains(&needle)) {
                pair.backlink = Backlink::Posted(c.id);
                return self.save(pair).await;
            }
            self.unless_attempt_in_flight(pair)?;
        } else {
            pair.backlink = Backlink::Attempting;
            self.save(pair).await?;
        }
        let html = format!(
            "<p>Linked to {} <a href=\"{}\">{}</a>: {}</p>",
            tracker_name(&item.item),
            escape_html(&item.url),
            escape_html(item.item.display_name()),
            escape_html(route.title.extract(&item.summary))
        );
        let id = self
            .basecamp
            .post_comment(todo.project, todo.id, &html)
            .await
            .map_err(SyncError::upstream(Side::Basecamp))?;
        pair.backlink = Backlink::Posted(id);
        self.save(pair).await
    }

    /// An `Attempting` mark (a link comment or a signal note being posted) saved less than a lease ago may
    /// belong to a worker that is posting right now, whose comment the search cannot show yet: posting too
    /// would make a second one, so the job waits (`Held`) until the mark is a lease old. Older, its worker
    /// stopped, and what the search did not find is posted. The mark's age is the pair's `updated_at`,
    /// which any later save only moves forward (a longer wait, never a second post).
    pub(super) fn unless_attempt_in_flight(&self, pair: &Pair) -> Result<(), SyncError> {
        let window = chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(60));
        let age = self.clock.now() - pair.updated_at;
        if age >= window {
            return Ok(());
        }
        let wait = (window - age).to_std().unwrap_or(self.settings.lease);
        Err(SyncError::Held { subject: pair.key().to_string(), wait })
    }

    /// Saves `pair` on its version; a concurrent change is `Busy` (the job retries and re-reads).
    async fn save(&self, pair: &mut Pair) -> Result<(), SyncError> {
        if self.save_or_restart(pair).await? {
            Ok(())
        } else {
            Err(SyncError::Busy(format!("pair {} changed concurrently", pair.key())))
        }
    }

    /// Carries out an [`Apply`]: conflicts first (so a retry records the same ones once), then the writes,
    /// then the pair on its version.
    async fn apply(
        &self,
        route: &Route,
        mut pair: Pair,
        mut apply: Apply,
        delivery: Option<&DeliveryId>,
    ) -> Result<Option<Applied>, SyncError> {
        let subject = pair.key().to_string();
        let now = self.clock.now();
        let decided_on = pair.version;
        // Writes happen under a lease claimed on the version this plan was decided from. A worker that
        // decided from an older version (the other side's event for the same pair, read before our save)
        // fails its claim and starts over before writing anything, so a stale plan never reaches
        // Basecamp or the tracker; one that reads the pair meanwhile waits for the lease (`run`).
        let claim = if apply.writes() > 0 {
            let owner = format!("{}#{}", self.settings.worker, uuid::Uuid::new_v4().simple());
            let until = now + chrono::Duration::from_std(WRITE_LEASE).unwrap_or(chrono::Duration::seconds(20));
            pair.lease = Some(crate::domain::Lease { owner: owner.clone(), until });
            if !self.save_or_restart(&mut pair).await? {
                return Ok(None);
            }
            Some(owner)
        } else {
            None
        };
        let written_todo = match self.write_upstream(route, &pair, &mut apply, decided_on, now, delivery).await {
            Ok(written) => written,
            Err(e) => {
                // Give the pair back at once (best effort; the lease also runs out by itself) so the retry
                // of this job, or the next event, is not held off for the whole lease.
                if claim.is_some() {
                    pair.lease = None;
                    if let Err(release) = self.save_or_restart(&mut pair).await {
                        warn!(pair = %subject, error = %release, "could not release the write lease");
                    }
                }
                return Err(e);
            }
        };
        let writes = apply.writes();
        let conflicts = apply.conflicts.len();
        let fields = describe_writes(&apply);
        let story = {
            let (item, todo) = (super::story::item_name(&pair), pair.todo);
            let policy = route.conflict_policy.as_str();
            let mut lines: Vec<String> =
                apply.conflicts.iter().map(|c| super::story::conflict(item, todo, policy, c)).collect();
            let title = apply.item.summary.as_deref().map(|s| route.title.extract(s));
            lines.extend(super::story::tracker_write(item, todo, &apply.item, title));
            lines.extend(super::story::basecamp_write(item, todo, &apply.todo));
            lines
        };
        pair.snapshot = apply.snapshot;
        pair.open_conflicts = apply.open_conflicts;
        pair.todo_seen_at = apply.todo_seen_at;
        pair.item_seen_at = apply.item_seen_at;
        pair.lease = None;
        let mut saved = false;
        for _ in 0..5 {
            if self.save_or_restart(&mut pair).await? {
                saved = true;
                break;
            }
            // A comment or a signal saved the pair while we wrote (they keep our lease): carry our
            // results onto their version. Anything else (our lease ran out and was taken) starts over.
            let fresh = self.pairs.get(&pair.key()).await?;
            match (fresh, &claim) {
                (Some(mut fresh), Some(owner)) if fresh.lease.as_ref().is_some_and(|l| &l.owner == owner) => {
                    fresh.snapshot = pair.snapshot.clone();
                    fresh.open_conflicts = pair.open_conflicts.clone();
                    fresh.todo_seen_at = pair.todo_seen_at;
                    fresh.item_seen_at = pair.item_seen_at;
                    fresh.lease = None;
                    pair = fresh;
                }
                _ => return Ok(None),
            }
        }
        if !saved {
            return Err(SyncError::Busy(format!("pair {subject} kept changing while saving its writes")));
        }
        for line in &story {
            info!(pair = %subject, "{line}");
        }
        let mut detail = if fields.is_empty() { "snapshot updated; no writes needed".to_owned() } else { fields };
        for note in &apply.notes {
            detail.push_str("; ");
            detail.push_str(note);
        }
        if conflicts > 0 {
            detail.push_str(&format!("; {conflicts} conflict(s) logged"));
        }
        let action = if writes > 0 { "updated" } else { "recorded" };
        self.record(Some(&route.id), &subject, delivery, action, &detail).await?;
        Ok(Some(Applied { pair, writes, conflicts, written_todo }))
    }

    /// The plan's conflicts logged, then its writes to the tracker and to Basecamp; the to-do as Basecamp
    /// returned it when it was written.
    async fn write_upstream(
        &self,
        route: &Route,
        pair: &Pair,
        apply: &mut Apply,
        decided_on: u64,
        now: chrono::DateTime<chrono::Utc>,
        delivery: Option<&DeliveryId>,
    ) -> Result<Option<Todo>, SyncError> {
        let subject = pair.key().to_string();
        for c in &apply.conflicts {
            let conflict = Conflict {
                id: format!("{}:{}:v{}", subject, c.field, decided_on),
                pair: pair.key(),
                item: pair.item.clone(),
                field: c.field,
                basecamp_value: c.basecamp_value.clone(),
                tracker_value: c.tracker_value.clone(),
                policy: route.conflict_policy.as_str().to_owned(),
                resolution: c.resolution.clone(),
                at: now,
            };
            self.conflicts.record(&conflict).await?;
        }
        if let Some(item_ref) = pair.item.clone().filter(|_| !apply.item.is_empty()) {
            self.update_item_with_fallback(route, &item_ref, apply, &pair.snapshot.tracker, &subject, delivery).await?;
        }
        let written_todo = if apply.todo.is_empty() {
            None
        } else {
            Some(
                self.basecamp
                    .update_todo(pair.project, pair.todo, &apply.todo)
                    .await
                    .map_err(SyncError::upstream(Side::Basecamp))?,
            )
        };
        Ok(written_todo)
    }

    /// Updates the item; a refused assignee falls back to triage (then unassigned), noted in the audit. A
    /// due date, priority or components the item's edit screen refuses is left out (audited): the
    /// snapshot keeps the item's value for it (`before`, as last seen) and the to-do's new value, so the
    /// same refused write is not sent again until the to-do changes it.
    async fn update_item_with_fallback(
        &self,
        route: &Route,
        item: &DevItemRef,
        apply: &mut Apply,
        before: &Fields,
        subject: &str,
        delivery: Option<&DeliveryId>,
    ) -> Result<(), SyncError> {
        loop {
            match self.tracker.update_item(item, &apply.item).await {
                Ok(()) => return Ok(()),
                Err(ApiError::FieldRejected { field, message }) if drop_from_patch(&field, apply, before) => {
                    let detail = format!(
                        "the tracker's edit screen refused {field} ({message}); it is left out of this write \
                         (add the field to the project's edit screen to sync it)"
                    );
                    self.record(Some(&route.id), subject, delivery, "field_refused", &detail).await?;
                    if !apply.item.has_field_edits() && apply.item.status.is_none() {
                        return Ok(());
                    }
                }
                Err(e) if matches!(apply.item.assignee, Some(Some(_))) && refuses_assignee(&e) => {
                    let message = e.to_string();
                    let refused = apply.item.assignee.clone().flatten();
                    let next = route.triage.clone().filter(|t| Some(t) != refused.as_ref());
                    let detail = format!(
                        "the tracker refused assignee {} ({message}); {}",
                        refused.map(|a| a.0).unwrap_or_default(),
                        next.as_ref()
                            .map_or_else(|| "left unassigned".to_owned(), |t| format!("assigned to triage {t}"))
                    );
                    self.record(Some(&route.id), subject, delivery, "assignee_fallback", &detail).await?;
                    apply.item.assignee = Some(next.clone());
                    apply.snapshot.tracker.assignee = route.synced_assignee(next);
                }
                Err(e) => return Err(SyncError::upstream(Side::Tracker)(e)),
            }
        }
    }

    /// Skips are traced; the ones a person may ask about ("why was my to-do not synced?") are audited too.
    /// Echoes and stale reads are not: they are the normal, frequent case, and auditing each would double
    /// the store writes per event.
    async fn note(
        &self,
        route: Option<&RouteId>,
        subject: &str,
        delivery: Option<&DeliveryId>,
        skip: &Skip,
    ) -> Result<(), SyncError> {
        tracing::debug!(subject, action = skip.action(), "{}", skip.describe());
        match skip {
            Skip::Filtered(_) | Skip::Gone(_) | Skip::Detached(_) => {
                self.record(route, subject, delivery, skip.action(), &skip.describe()).await
            }
            Skip::NotPaired | Skip::Pending | Skip::Stale(_) | Skip::Unchanged => Ok(()),
        }
    }

    pub(super) async fn record(
        &self,
        route: Option<&RouteId>,
        subject: &str,
        delivery: Option<&DeliveryId>,
        action: &str,
        detail: &str,
    ) -> Result<(), SyncError> {
        let entry = AuditEntry {
            at: self.clock.now(),
            route: route.cloned(),
            subject: subject.to_owned(),
            delivery: delivery.cloned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        self.audit.record(&entry).await?;
        Ok(())
    }

    /// Mirrors one Basecamp comment to the tracker when the route's prefix says so (see
    /// [`super::comments`]). The link is recorded on the pair before posting, so a retry after a crash
    /// looks for the twin (by the link back to the comment) instead of posting a second one.
    async fn sync_comment(
        &self,
        route_id: &RouteId,
        project: crate::domain::ProjectId,
        todo: crate::domain::TodoId,
        comment: crate::domain::BasecampCommentId,
        delivery: Option<&DeliveryId>,
    ) -> Result<Outcome, SyncError> {
        let route = self.route(route_id)?;
        let subject = format!("{route_id}/{todo}");
        for _ in 0..3 {
            let Some(mut pair) = self.pairs.get(&crate::domain::PairKey { route: route_id.clone(), todo }).await?
            else {
                return Ok(Outcome::Skipped(Skip::NotPaired));
            };
            let Some(item) = pair.item.clone().filter(|_| pair.is_linked()) else {
                return Err(SyncError::Busy(format!("pair {subject} is still being created")));
            };
            let Some(c) =
                self.basecamp.get_comment(project, comment).await.map_err(SyncError::upstream(Side::Basecamp))?
            else {
                return Ok(Outcome::Skipped(Skip::Gone(Side::Basecamp)));
            };
            match super::comments::decide_comment(route, &pair, &c) {
                super::comments::CommentPlan::Skip(why) => {
                    tracing::debug!(subject, comment = %c.id, why, "comment not mirrored");
                    return Ok(Outcome::Skipped(Skip::Unchanged));
                }
                super::comments::CommentPlan::Update { link, html, digest } => {
                    let Some(twin) = &link.tracker else { continue };
                    self.tracker
                        .update_comment(&item, twin, &html)
                        .await
                        .map_err(SyncError::upstream(Side::Tracker))?;
                    if let Some(l) = pair.comments.iter_mut().find(|l| l.basecamp == c.id) {
                        l.digest = digest;
                    }
                    if !self.save_or_restart(&mut pair).await? {
                        continue;
                    }
                    info!(pair = %subject, "{item} ← to-do {todo}: comment {} edited", c.id);
                    self.record(
                        Some(route_id),
                        &subject,
                        delivery,
                        "comment_updated",
                        &format!("updated the tracker twin of comment {}", c.id),
                    )
                    .await?;
                    return Ok(Outcome::Updated { writes: 1, conflicts: 0 });
                }
                super::comments::CommentPlan::Create { html, digest } => {
                    let started = pair.comments.iter().any(|l| l.basecamp == c.id);
                    let mut found = None;
                    if started && !c.app_url.is_empty() {
                        let twins =
                            self.tracker.list_comments(&item).await.map_err(SyncError::upstream(Side::Tracker))?;
                        found = twins.into_iter().find(|t| t.html.contains(&c.app_url)).map(|t| t.id);
                    } else if !started {
                        pair.comments.push(crate::domain::CommentLink {
                            basecamp: c.id,
                            tracker: None,
                            digest: String::new(),
                        });
                        if !self.save_or_restart(&mut pair).await? {
                            continue;
                        }
                    }
                    let twin = match found {
                        Some(id) => id,
                        None => {
                            self.tracker.add_comment(&item, &html).await.map_err(SyncError::upstream(Side::Tracker))?
                        }
                    };
                    if let Some(l) = pair.comments.iter_mut().find(|l| l.basecamp == c.id) {
                        l.tracker = Some(twin);
                        l.digest = digest;
                    }
                    if !self.save_or_restart(&mut pair).await? {
                        continue;
                    }
                    info!(pair = %subject, "{item} ← to-do {todo}: comment {} mirrored", c.id);
                    self.record(
                        Some(route_id),
                        &subject,
                        delivery,
                        "comment_mirrored",
                        &format!("comment {} mirrored to {item}", c.id),
                    )
                    .await?;
                    return Ok(Outcome::Updated { writes: 1, conflicts: 0 });
                }
            }
        }
        Err(SyncError::Busy(format!("pair {subject} kept changing while mirroring a comment")))
    }

    /// Saves `pair` on its version; `false` when another worker saved it first (re-read and retry).
    pub(super) async fn save_or_restart(&self, pair: &mut Pair) -> Result<bool, SyncError> {
        pair.updated_at = self.clock.now();
        match self.pairs.replace(pair).await? {
            Replaced::Replaced(v) => {
                pair.version = v;
                Ok(true)
            }
            Replaced::Stale(_) => Ok(false),
        }
    }
}

/// Leaves a field the create screen refused out of `draft`, when it is one a create can do without (the
/// summary, the marker's labels and the route's own `create_fields` cannot be left out).
fn drop_from_draft(field: &str, draft: &mut NewDevItem) -> Option<Field> {
    match field {
        "duedate" if draft.due.is_some() => {
            draft.due = None;
            Some(Field::DueDate)
        }
        "priority" if draft.priority.is_some() => {
            draft.priority = None;
            Some(Field::Priority)
        }
        "components" if !draft.components.is_empty() => {
            draft.components.clear();
            Some(Field::Components)
        }
        _ => None,
    }
}

/// Leaves a field the edit screen refused out of `apply`'s tracker write, keeping the item's value as last
/// seen (`before`) in the snapshot; `false` when the write does not set that field.
fn drop_from_patch(field: &str, apply: &mut Apply, before: &Fields) -> bool {
    let (patch, seen) = (&mut apply.item, &mut apply.snapshot.tracker);
    match field {
        "duedate" if patch.due.is_some() => {
            patch.due = None;
            seen.due = before.due;
        }
        "priority" if patch.priority.is_some() => {
            patch.priority = None;
            seen.priority = before.priority;
        }
        "components" if !patch.components_add.is_empty() || !patch.components_remove.is_empty() => {
            patch.components_add.clear();
            patch.components_remove.clear();
            seen.components = before.components.clone();
        }
        _ => return false,
    }
    true
}

/// The tracker refused the assignee: a field error naming it, or a 403 on a request that assigns (the
/// account lacks "Assign issues", or the user cannot be assigned). The write is retried with triage, then
/// unassigned; a 403 that persists without an assignee is a real permission problem and surfaces.
fn refuses_assignee(e: &ApiError) -> bool {
    match e {
        ApiError::FieldRejected { field, .. } => field == "assignee",
        ApiError::Forbidden(_) => true,
        _ => false,
    }
}

fn tracker_name(item: &DevItemRef) -> &'static str {
    match item {
        DevItemRef::Jira { .. } => "Jira issue",
    }
}

/// "wrote tracker summary, status; wrote Basecamp completion" — for the audit log.
fn describe_writes(apply: &Apply) -> String {
    let (p, t): (&DevItemPatch, _) = (&apply.item, &apply.todo);
    let named = |fields: &[(bool, &'static str)]| -> Vec<&'static str> {
        fields.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect()
    };
    let tracker = named(&[
        (p.summary.is_some(), "summary"),
        (p.description.is_some(), "description"),
        (p.assignee.is_some(), "assignee"),
        (p.due.is_some(), "due date"),
        (p.priority.is_some(), "priority"),
        (!p.labels_add.is_empty() || !p.labels_remove.is_empty(), "labels"),
        (!p.components_add.is_empty() || !p.components_remove.is_empty(), "components"),
        (p.status.is_some(), "status"),
    ]);
    let basecamp = named(&[
        (t.title.is_some(), "title"),
        (t.completed.is_some(), "completion"),
        (t.assignees.is_some(), "assignees"),
    ]);
    let mut parts = Vec::new();
    if !tracker.is_empty() {
        parts.push(format!("wrote tracker {}", tracker.join(", ")));
    }
    if !basecamp.is_empty() {
        parts.push(format!("wrote Basecamp {}", basecamp.join(", ")));
    }
    parts.join("; ")
}
