//! The reconciler's bookkeeping with in-memory sources: cursors, limits, gaps and skips. The end-to-end
//! behaviour against the simulators is in `shared/tests/against_simulators/reconcile.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::*;
use crate::adapters::memory::{ManualClock, MemoryCursorStore, MemoryJobQueue, MemoryPairStore};
use crate::domain::{JiraIssueId, JiraKey, Pair, TodoId};
use crate::ports::{
    CursorStore, IssuePage, IssueUpdate, JobConsumer, PairStore, ProjectWebhook, TodoUpdate, TodoUpdates,
    TrackerPolling,
};
use crate::testkit::{PROJECT, at, route};

#[derive(Default)]
struct FakeBasecamp {
    todos: Mutex<Vec<TodoUpdate>>,
    /// To-dos per listing page (0: one page holds them all).
    page_size: usize,
}

#[async_trait]
impl BasecampPolling for FakeBasecamp {
    async fn todos_updated_since(
        &self,
        projects: &[ProjectId],
        since: DateTime<Utc>,
        max_pages: usize,
    ) -> Result<TodoUpdates, ApiError> {
        let mut found: Vec<TodoUpdate> = self
            .todos
            .lock()
            .map_err(|_| ApiError::Transient("poisoned".into()))?
            .iter()
            .filter(|t| projects.contains(&t.project) && t.updated_at >= since)
            .cloned()
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse(t.updated_at));
        let fits = if self.page_size == 0 { found.len() } else { self.page_size * max_pages };
        let complete = found.len() <= fits;
        found.truncate(fits);
        Ok(TodoUpdates { updates: found, complete })
    }
    async fn webhooks(&self, _: ProjectId) -> Result<Vec<ProjectWebhook>, ApiError> {
        Ok(Vec::new())
    }
    async fn reactivate(&self, _: &ProjectWebhook) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Issues paged `page_size` at a time (the token is the offset), filtered by the fake's own clock.
struct FakeJira {
    issues: Vec<IssueUpdate>,
    clock: Arc<ManualClock>,
    /// Answer every page with this token instead of the real next one.
    stuck_token: Option<String>,
}

#[async_trait]
impl TrackerPolling for FakeJira {
    async fn issues_updated_within(
        &self,
        _: &[JiraProjectKey],
        within: Duration,
        page_size: u32,
        page: Option<&str>,
    ) -> Result<IssuePage, ApiError> {
        let from = self.clock.now() - chrono::Duration::from_std(within).unwrap_or_default();
        let mut hits: Vec<&IssueUpdate> = self.issues.iter().filter(|i| i.updated_at >= from).collect();
        hits.sort_by_key(|i| i.updated_at);
        let offset: usize = page.and_then(|p| p.parse().ok()).unwrap_or(0);
        let size = page_size as usize;
        let issues: Vec<IssueUpdate> = hits.iter().skip(offset).take(size).map(|i| (*i).clone()).collect();
        let next = (offset + size < hits.len()).then(|| (offset + size).to_string());
        Ok(IssuePage { issues, next: self.stuck_token.clone().or(next) })
    }
}

fn issue(n: u32, updated_at: DateTime<Utc>) -> IssueUpdate {
    let item = DevItemRef::Jira {
        id: JiraIssueId::parse(&(10_000 + n).to_string()).unwrap(),
        key: JiraKey::parse(&format!("WEB-{n}")).unwrap(),
    };
    IssueUpdate { item, updated_at }
}

fn todo_update(id: i64, updated_at: DateTime<Utc>) -> TodoUpdate {
    TodoUpdate { project: PROJECT, todo: TodoId(id), updated_at }
}

struct Rig {
    clock: Arc<ManualClock>,
    basecamp: Arc<FakeBasecamp>,
    pairs: Arc<MemoryPairStore>,
    cursors: Arc<MemoryCursorStore>,
    queue: Arc<MemoryJobQueue>,
}

impl Rig {
    fn new() -> Self {
        Self::with_basecamp(FakeBasecamp::default())
    }

    fn with_basecamp(basecamp: FakeBasecamp) -> Self {
        let clock = Arc::new(ManualClock::new(at(0)));
        Self {
            basecamp: Arc::new(basecamp),
            pairs: Arc::new(MemoryPairStore::new()),
            cursors: Arc::new(MemoryCursorStore::new()),
            queue: Arc::new(MemoryJobQueue::new(clock.clone())),
            clock,
        }
    }

    fn reconciler(&self, settings: ReconcileSettings, jira: FakeJira) -> Reconciler {
        Reconciler::new(
            vec![route()],
            &SecretString::from("campbridge-test-webhook-key"),
            settings,
            self.basecamp.clone(),
            Arc::new(jira),
            ReconcileStores { pairs: self.pairs.clone(), cursors: self.cursors.clone(), queue: self.queue.clone() },
            self.clock.clone(),
        )
    }

    fn jira(&self, issues: Vec<IssueUpdate>) -> FakeJira {
        FakeJira { issues, clock: self.clock.clone(), stuck_token: None }
    }

    fn no_overlap() -> ReconcileSettings {
        ReconcileSettings { overlap: Duration::ZERO, ..ReconcileSettings::default() }
    }

    /// The delivery ids waiting in the queue, taken out of it.
    async fn queued_deliveries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.queue.receive(100, Duration::from_secs(60)).await.unwrap() {
            out.push(Job::from_wire(&m.body).unwrap().delivery().as_str().to_owned());
            self.queue.delete(&m.receipt).await.unwrap();
        }
        out
    }

    /// A linked pair for to-do `todo` and issue `n`, having seen both sides at `seen`.
    async fn linked(&self, todo: i64, n: u32, seen: DateTime<Utc>) {
        let mut pair = Pair::pending(route().id, PROJECT, TodoId(todo), "w", at(-3600), at(-3600));
        assert!(matches!(self.pairs.insert(&pair).await, Ok(crate::ports::Inserted::Inserted)));
        pair.state = PairState::Linked;
        pair.lease = None;
        pair.item = Some(issue(n, seen).item);
        pair.todo_seen_at = Some(seen);
        pair.item_seen_at = Some(seen);
        assert!(matches!(self.pairs.replace(&pair).await, Ok(crate::ports::Replaced::Replaced(1))));
    }
}

#[tokio::test]
async fn the_first_run_records_where_to_start_and_polls_nothing() {
    let rig = Rig::new();
    rig.basecamp.todos.lock().unwrap().push(todo_update(1, at(-60)));
    let report = rig.reconciler(ReconcileSettings::default(), rig.jira(vec![issue(1, at(-60))])).run().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert!(report.basecamp.initialized && report.jira.initialized);
    assert_eq!((report.basecamp.enqueued, report.jira.enqueued), (0, 0));
    assert_eq!(rig.cursors.cursor(BASECAMP_CURSOR).await.unwrap(), Some(at(0)));
    assert_eq!(rig.cursors.cursor(JIRA_CURSOR).await.unwrap(), Some(at(0)));
}

#[tokio::test]
async fn a_basecamp_backlog_past_the_job_limit_is_taken_oldest_first_over_several_runs() {
    let rig = Rig::new();
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    rig.basecamp.todos.lock().unwrap().extend([todo_update(3, at(30)), todo_update(1, at(10)), todo_update(2, at(20))]);
    rig.clock.set(at(60));
    let settings = ReconcileSettings { max_todo_jobs: 2, ..Rig::no_overlap() };
    let reconciler = rig.reconciler(settings, rig.jira(Vec::new()));

    let first = reconciler.run().await;
    assert!(first.basecamp.truncated);
    assert_eq!((first.basecamp.seen, first.basecamp.enqueued), (3, 2));
    assert_eq!(first.basecamp.cursor, Some(at(30)), "up to the first change not taken");
    let micros = |s: i64| at(s).timestamp_micros();
    assert_eq!(
        rig.queued_deliveries().await,
        [format!("reconcile:web:1:{}", micros(10)), format!("reconcile:web:2:{}", micros(20))]
    );

    rig.clock.set(at(120));
    let second = reconciler.run().await;
    assert!(!second.basecamp.truncated);
    assert_eq!((second.basecamp.seen, second.basecamp.enqueued), (1, 1));
    assert_eq!(second.basecamp.cursor, Some(at(120)), "a complete poll moves to its start");
    assert_eq!(rig.queued_deliveries().await, [format!("reconcile:web:3:{}", micros(30))]);
}

#[tokio::test]
async fn a_basecamp_cursor_older_than_the_lookback_is_a_gap_and_the_poll_starts_at_the_lookback() {
    let rig = Rig::new();
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    rig.clock.set(at(3 * 24 * 3600));
    let report = rig.reconciler(ReconcileSettings::default(), rig.jira(Vec::new())).run().await;
    assert!(report.basecamp.gap);
    assert!(report.failures.is_empty() && !report.is_ok(), "a gap is a problem for a person, not a failed step");
    assert!(report.problems()[0].contains("campbridge backfill"), "{:?}", report.problems());
    assert_eq!(report.basecamp.since, Some(at(2 * 24 * 3600)), "one day back, no further");
    assert_eq!(report.basecamp.cursor, Some(at(3 * 24 * 3600)));
    assert!(!report.jira.gap, "Jira pages on from its cursor however old it is");
    assert_eq!(report.jira.since, Some(at(-300)), "the cursor minus the overlap");
}

#[tokio::test]
async fn a_basecamp_listing_stopped_by_the_page_limit_is_a_gap_and_its_newest_changes_are_taken() {
    let rig = Rig::with_basecamp(FakeBasecamp { page_size: 2, ..FakeBasecamp::default() });
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    rig.basecamp.todos.lock().unwrap().extend((1..=5).map(|n| todo_update(n, at(n * 10))));
    rig.clock.set(at(60));
    let settings = ReconcileSettings { basecamp_max_pages: 2, ..Rig::no_overlap() };
    let reconciler = rig.reconciler(settings, rig.jira(Vec::new()));

    let report = reconciler.run().await;
    assert!(report.basecamp.gap && !report.is_ok(), "{report:?}");
    assert!(report.failures.is_empty(), "a gap is a problem for a person, not a failed step");
    assert_eq!(report.basecamp.since, Some(at(0)), "the poll started at the cursor");
    assert_eq!(report.basecamp.reached_back_to, Some(at(20)), "two pages of two, newest first");
    let problem = &report.problems()[0];
    assert!(problem.contains("page limit") && problem.contains("campbridge backfill"), "{problem}");
    assert!(problem.contains(&at(20).to_rfc3339()), "{problem}");
    assert_eq!((report.basecamp.seen, report.basecamp.enqueued), (4, 4));
    assert_eq!(report.basecamp.cursor, Some(at(60)), "a newest-first walk cannot resume: the cursor moves on");
    let micros = |s: i64| at(s).timestamp_micros();
    let expected: Vec<String> = (2..=5).map(|n| format!("reconcile:web:{n}:{}", micros(n * 10))).collect();
    assert_eq!(rig.queued_deliveries().await, expected, "oldest change first, to-do 1 not read");

    // Within the limit again: no gap.
    rig.basecamp.todos.lock().unwrap().push(todo_update(6, at(90)));
    rig.clock.set(at(120));
    let next = reconciler.run().await;
    assert!(next.is_ok() && !next.basecamp.gap, "{next:?}");
    assert_eq!((next.basecamp.seen, next.basecamp.reached_back_to), (1, None));
}

#[tokio::test]
async fn jira_reads_at_most_its_page_limit_and_the_next_run_goes_on_from_the_last_change_read() {
    let rig = Rig::new();
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    for n in 1..=3 {
        rig.linked(i64::from(n), n, at(0)).await;
    }
    let issues = vec![issue(1, at(10)), issue(2, at(20)), issue(3, at(30))];
    rig.clock.set(at(60));
    let settings = ReconcileSettings { jira_max_pages: 2, jira_page_size: 1, ..Rig::no_overlap() };
    let reconciler = rig.reconciler(settings, rig.jira(issues));

    let first = reconciler.run().await;
    assert!(first.jira.truncated);
    assert_eq!((first.jira.seen, first.jira.enqueued), (2, 2));
    assert_eq!(first.jira.cursor, Some(at(20)));

    rig.clock.set(at(120));
    let second = reconciler.run().await;
    assert!(!second.jira.truncated);
    assert_eq!(second.jira.since, Some(at(20)));
    // The last change read comes again (its delivery id is the same, so the queue drops it).
    assert_eq!((second.jira.seen, second.jira.enqueued), (2, 2));
    assert_eq!(second.jira.cursor, Some(at(120)));
    let micros = |s: i64| at(s).timestamp_micros();
    let queued = rig.queued_deliveries().await;
    assert_eq!(
        queued,
        [
            format!("reconcile:jira:10001:{}", micros(10)),
            format!("reconcile:jira:10002:{}", micros(20)),
            format!("reconcile:jira:10003:{}", micros(30)),
        ]
    );
}

#[tokio::test]
async fn issues_without_a_pair_or_already_seen_by_theirs_get_no_job() {
    let rig = Rig::new();
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    rig.linked(1, 1, at(10)).await;
    rig.basecamp.todos.lock().unwrap().push(todo_update(1, at(10)));
    rig.clock.set(at(60));
    let jira = rig.jira(vec![issue(1, at(10)), issue(9, at(20))]);
    let report = rig.reconciler(Rig::no_overlap(), jira).run().await;
    assert_eq!((report.jira.seen, report.jira.up_to_date, report.jira.not_paired, report.jira.enqueued), (2, 1, 1, 0));
    assert_eq!((report.basecamp.up_to_date, report.basecamp.enqueued), (1, 0));
    assert!(rig.queued_deliveries().await.is_empty());
}

#[tokio::test]
async fn a_search_that_repeats_its_page_token_stops_at_the_last_change_read() {
    let rig = Rig::new();
    assert!(rig.cursors.advance(BASECAMP_CURSOR, at(0)).await.unwrap());
    assert!(rig.cursors.advance(JIRA_CURSOR, at(0)).await.unwrap());
    rig.clock.set(at(60));
    let jira = FakeJira {
        issues: vec![issue(1, at(10)), issue(2, at(20))],
        clock: rig.clock.clone(),
        stuck_token: Some("same".into()),
    };
    let settings = ReconcileSettings { jira_page_size: 1, ..Rig::no_overlap() };
    let report = rig.reconciler(settings, jira).run().await;
    assert!(report.jira.truncated);
    assert_eq!(report.jira.seen, 2, "the first page, then the page its token named, then stop");
    assert_eq!(report.jira.cursor, Some(at(10)));
}

#[tokio::test]
async fn a_pending_pair_is_retried_once_its_lease_is_over_and_one_of_an_unknown_route_never() {
    let rig = Rig::new();
    let stale = Pair::pending(route().id, PROJECT, TodoId(1), "crashed", at(-120), at(-60));
    let live = Pair::pending(route().id, PROJECT, TodoId(2), "busy", at(-10), at(50));
    let orphan = Pair::pending(RouteId("retired".into()), PROJECT, TodoId(3), "crashed", at(-120), at(-60));
    for p in [&stale, &live, &orphan] {
        assert!(matches!(rig.pairs.insert(p).await, Ok(crate::ports::Inserted::Inserted)));
    }
    let reconciler = rig.reconciler(ReconcileSettings::default(), rig.jira(Vec::new()));
    let report = reconciler.run().await;
    assert_eq!(report.pending_retried, 1);
    let lease_end = at(-60).timestamp_micros();
    assert_eq!(rig.queued_deliveries().await, [format!("reconcile:pending:web:1:{lease_end}")]);
}
