//! Ingest: what every receiver does with one inbound request, in the local server and the Lambda
//! functions alike — verify, parse, route, enqueue one small job. No upstream API calls and no table
//! writes happen here, so a receiver acks in milliseconds; the mapper does the work.
//!
//! Bad input changes nothing: every rejection happens before the queue is touched.
//!
//! One receiver per source ([`BasecampReceiver`], [`JiraReceiver`], [`BitbucketReceiver`]), each built
//! from its own source's settings and holding only its own secret: a Lambda receiver function reads
//! exactly the secret its IAM role allows. [`Receivers`] bundles the three for local mode.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tracing::info;

use crate::domain::{Build, DeliveryId, JiraProjectKey, Job, ProjectId, Route, RouteId};
use crate::ports::{JobProducer, Sent, StoreError};
use crate::webhook::basecamp::BasecampTarget;
use crate::webhook::bitbucket::BitbucketEvent;
use crate::webhook::jira::JiraEvent;
use crate::webhook::verify::{check_route_token, route_token};
use crate::webhook::{self, Headers, WebhookError};

/// The Basecamp receiver: the routes' projects and the server key their URL tokens derive from. It
/// holds no other source's secret, so the `basecamp-webhook` function reads only the webhook key.
pub struct BasecampReceiver {
    routes: Vec<RouteEntry>,
    webhook_key: SecretString,
}

/// The Jira receiver: the routed Jira projects and the admin webhook's signing secret, nothing else.
pub struct JiraReceiver {
    projects: Vec<JiraProjectKey>,
    secret: SecretString,
}

/// The Bitbucket receiver: the repository webhooks' signing secret, nothing else.
pub struct BitbucketReceiver {
    secret: SecretString,
}

/// Local mode's three receivers in one process (`campbridge serve`); Jira or Bitbucket without a receiver
/// is not configured and answers 404. Each Lambda function builds only its own source's receiver.
pub struct Receivers {
    pub basecamp: BasecampReceiver,
    pub jira: Option<JiraReceiver>,
    pub bitbucket: Option<BitbucketReceiver>,
}

struct RouteEntry {
    id: RouteId,
    project: ProjectId,
}

/// A request that was accepted (answer 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A job was queued (or the same delivery already was: `duplicate`).
    Enqueued { delivery: DeliveryId, duplicate: bool },
    /// Genuine, but nothing we sync: an unrouted project, an event kind we do not follow.
    Ignored { reason: String },
}

/// Why a request was not accepted. [`IngestError::status`] is the one place mapping it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rejected(#[from] WebhookError),
    /// This deployment has no secret for the source (it is not configured): 404, like an unknown route.
    #[error("{0} webhooks are not configured")]
    NotConfigured(&'static str),
    /// The queue could not take the job: the source should retry (5xx).
    #[error("could not enqueue: {0}")]
    Queue(#[from] StoreError),
}

impl IngestError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Rejected(e) => e.status(),
            Self::NotConfigured(_) => 404,
            Self::Queue(_) => 503,
        }
    }
    /// A short reason safe for a response body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected(e) => e.reason(),
            Self::NotConfigured(_) => "not found",
            Self::Queue(_) => "temporarily unavailable",
        }
    }
}

impl BasecampReceiver {
    pub fn new(routes: &[Route], webhook_key: SecretString) -> Self {
        let routes = routes.iter().map(|r| RouteEntry { id: r.id.clone(), project: r.project }).collect();
        Self { routes, webhook_key }
    }

    /// The token in route `id`'s Basecamp webhook URL (`…/basecamp/<token>`).
    pub fn route_token(&self, id: &RouteId) -> String {
        route_token(&self.webhook_key, id)
    }

    /// `POST /basecamp/{token}`: Basecamp webhooks are unsigned, so the URL's secret token names the route.
    /// Counted in [`crate::metrics::DELIVERIES`].
    #[tracing::instrument(skip_all, fields(source = "basecamp"))]
    pub async fn receive(
        &self,
        queue: &dyn JobProducer,
        token: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        counted("basecamp", self.accept(queue, token, body, now).await)
    }

    async fn accept(
        &self,
        queue: &dyn JobProducer,
        token: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        webhook::check_size(body)?;
        // Compare against every route (constant time each), so timing does not tell which route is near.
        let mut found = None;
        for r in &self.routes {
            if check_route_token(&self.webhook_key, &r.id, token) {
                found = Some(r);
            }
        }
        let route = found.ok_or(WebhookError::UnknownRoute)?;
        let d = webhook::basecamp::ingest(body)?;
        if d.event.bucket != route.project {
            return Ok(ignored(format!("project {} is not route {}'s project", d.event.bucket, route.id)));
        }
        let (route_id, project, event) = (route.id.clone(), route.project, d.event.kind.clone());
        // A copy (`todo_copied`, `todolist_copied`) is announced on the original only: the copy is what is new,
        // so it is the copy that is synced — when it landed in this route's project. A copy into another
        // project is found by that project's next reconcile pass (docs/lifecycle.md).
        let copy_here = d.event.copy.filter(|c| c.bucket.is_none_or(|b| b == project)).map(|c| c.id);
        if d.event.copy.is_some() && copy_here.is_none() {
            return Ok(ignored(format!("{} into another project: its reconcile pass picks the copy up", event)));
        }
        let job = match d.event.target {
            BasecampTarget::Todo { todo } => {
                let todo = copy_here.map_or(todo, crate::domain::TodoId);
                Job::TodoChanged { delivery: d.delivery, route: route_id, project, todo, event, received_at: now }
            }
            BasecampTarget::Todolist { .. } if event == "todolist_created" => {
                return Ok(ignored("a new to-do list holds no to-dos yet".to_owned()));
            }
            BasecampTarget::Todolist { list } => Job::TodolistChanged {
                delivery: d.delivery,
                route: route_id,
                project,
                list: copy_here.map_or(list, crate::domain::TodolistId),
                event,
                received_at: now,
            },
            BasecampTarget::TodoComment { todo, comment } => Job::TodoCommentChanged {
                delivery: d.delivery,
                route: route_id,
                project,
                todo,
                comment,
                event,
                received_at: now,
            },
            BasecampTarget::Ignored { .. } => {
                return Ok(ignored(format!("Basecamp {} events are not synced", d.event.kind)));
            }
        };
        enqueue(queue, &job).await
    }
}

impl JiraReceiver {
    pub fn new(routes: &[Route], secret: SecretString) -> Self {
        let projects = routes
            .iter()
            .map(|r| {
                let crate::domain::TrackerTarget::Jira { project, .. } = &r.target;
                project.clone()
            })
            .collect();
        Self { projects, secret }
    }

    /// Whether a route syncs the Jira project `key` belongs to.
    fn routes_project(&self, key: &crate::domain::JiraKey) -> bool {
        self.projects.iter().any(|p| p.as_str() == key.project())
    }

    /// `POST /jira`: signed admin webhooks.
    /// Counted in [`crate::metrics::DELIVERIES`].
    #[tracing::instrument(skip_all, fields(source = "jira"))]
    pub async fn receive(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        counted("jira", self.accept(queue, headers, body, now).await)
    }

    async fn accept(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        webhook::check_size(body)?;
        let d = webhook::jira::ingest(headers, body, &self.secret)?;
        let issue = match d.event {
            JiraEvent::Issue(issue) => issue,
            JiraEvent::Comment(c) => {
                if !self.routes_project(&c.key) {
                    return Ok(ignored(format!("Jira project {} is not routed", c.key.project())));
                }
                let job = Job::IssueCommentChanged {
                    delivery: d.delivery,
                    issue: c.issue_id,
                    key: c.key,
                    comment: c.comment.comment_id,
                    received_at: now,
                };
                return enqueue(queue, &job).await;
            }
            JiraEvent::Ignored { webhook_event } => {
                return Ok(ignored(format!("Jira {webhook_event} events are not synced")));
            }
        };
        // An issue moved out of a routed project carries its old key in the changelog: its pair must hear of it.
        let moved_out = issue.previous_key.as_ref().is_some_and(|k| self.routes_project(k));
        if !self.routes_project(&issue.key) && !moved_out {
            return Ok(ignored(format!("Jira project {} is not routed", issue.key.project())));
        }
        let job = Job::IssueChanged {
            delivery: d.delivery,
            issue: issue.issue_id,
            key: issue.key,
            event: issue.webhook_event,
            received_at: now,
        };
        enqueue(queue, &job).await
    }
}

impl BitbucketReceiver {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// `POST /bitbucket`: signed repository webhooks. Pull requests and build statuses become signal
    /// jobs; pushes and other events are acknowledged and ignored.
    /// Counted in [`crate::metrics::DELIVERIES`].
    #[tracing::instrument(skip_all, fields(source = "bitbucket"))]
    pub async fn receive(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        counted("bitbucket", self.accept(queue, headers, body, now).await)
    }

    async fn accept(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        webhook::check_size(body)?;
        let d = webhook::bitbucket::ingest(headers, body, &self.secret)?;
        let job = match d.event {
            BitbucketEvent::PullRequest(e) => Job::PullRequestChanged {
                delivery: d.delivery,
                state: e.state,
                pull_request: e.pull_request,
                received_at: now,
            },
            BitbucketEvent::BuildStatus(b) => {
                let build = Build {
                    repo: b.repo,
                    name: b.name.unwrap_or_else(|| b.key.clone()),
                    state: b.state,
                    commit: b.commit,
                    key: b.key,
                    url: b.url.unwrap_or_default(),
                    branch: b.refname,
                };
                Job::BuildChanged { delivery: d.delivery, build, received_at: now }
            }
            BitbucketEvent::Push(_) => return Ok(ignored("Bitbucket pushes are not synced".to_owned())),
            BitbucketEvent::Ignored { event_key } => {
                return Ok(ignored(format!("Bitbucket {event_key} events are not synced")));
            }
        };
        enqueue(queue, &job).await
    }
}

impl Receivers {
    /// All three sources from their secrets (a source without its secret is not configured).
    pub fn new(
        routes: &[Route],
        webhook_key: SecretString,
        jira_secret: Option<SecretString>,
        bitbucket_secret: Option<SecretString>,
    ) -> Self {
        Self {
            basecamp: BasecampReceiver::new(routes, webhook_key),
            jira: jira_secret.map(|s| JiraReceiver::new(routes, s)),
            bitbucket: bitbucket_secret.map(BitbucketReceiver::new),
        }
    }

    /// The token in route `id`'s Basecamp webhook URL.
    pub fn route_token(&self, id: &RouteId) -> String {
        self.basecamp.route_token(id)
    }

    /// `POST /basecamp/{token}`.
    pub async fn basecamp(
        &self,
        queue: &dyn JobProducer,
        token: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        self.basecamp.receive(queue, token, body, now).await
    }

    /// `POST /jira` (404 when not configured).
    pub async fn jira(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        let r = self.jira.as_ref().ok_or(IngestError::NotConfigured("Jira"))?;
        r.receive(queue, headers, body, now).await
    }

    /// `POST /bitbucket` (404 when not configured).
    pub async fn bitbucket(
        &self,
        queue: &dyn JobProducer,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        let r = self.bitbucket.as_ref().ok_or(IngestError::NotConfigured("Bitbucket"))?;
        r.receive(queue, headers, body, now).await
    }
}

/// Counts a delivery by its outcome: `accepted`, `duplicate` (already queued), `ignored`, `rejected`.
fn counted(source: &str, result: Result<Accepted, IngestError>) -> Result<Accepted, IngestError> {
    let outcome = match &result {
        Ok(Accepted::Enqueued { duplicate: false, .. }) => "accepted",
        Ok(Accepted::Enqueued { duplicate: true, .. }) => "duplicate",
        Ok(Accepted::Ignored { .. }) => "ignored",
        Err(_) => "rejected",
    };
    crate::metrics::delivery(source, outcome);
    result
}

fn ignored(reason: String) -> Accepted {
    info!(reason = %reason, "webhook ignored");
    Accepted::Ignored { reason }
}

async fn enqueue(queue: &dyn JobProducer, job: &Job) -> Result<Accepted, IngestError> {
    let sent = queue.enqueue(job).await?;
    info!(delivery = %job.delivery(), group = %job.record().group_id(), duplicate = sent == Sent::Duplicate, "webhook enqueued");
    Ok(Accepted::Enqueued { delivery: job.delivery().clone(), duplicate: sent == Sent::Duplicate })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::*;
    use crate::adapters::memory::{ManualClock, MemoryJobQueue};
    use crate::ports::{JobConsumer, QueueOperator};
    use crate::testkit::{at, route};
    use crate::webhook::verify::sign;

    fn fixture(service: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/{service}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The fixture to-do webhook (its project is the test route's).
    fn basecamp_body() -> Vec<u8> {
        let body = fixture("basecamp", "webhook-event-todo-completed.json");
        assert!(String::from_utf8_lossy(&body).contains(&route().project.to_string()));
        body
    }

    fn setup() -> (Receivers, MemoryJobQueue) {
        let receivers = Receivers::new(
            &[route()],
            SecretString::from("server-key"),
            Some(SecretString::from("jira-secret")),
            Some(SecretString::from("bb-secret")),
        );
        (receivers, MemoryJobQueue::new(Arc::new(ManualClock::new(at(0)))))
    }

    async fn depth(q: &MemoryJobQueue) -> u64 {
        q.depth().await.unwrap()
    }

    #[tokio::test]
    async fn a_basecamp_todo_event_on_the_routes_url_enqueues_one_job() {
        let (r, q) = setup();
        let token = r.route_token(&route().id);
        let accepted = r.basecamp(&q, &token, &basecamp_body(), at(0)).await.unwrap();
        assert!(matches!(accepted, Accepted::Enqueued { duplicate: false, .. }), "{accepted:?}");
        let again = r.basecamp(&q, &token, &basecamp_body(), at(0)).await.unwrap();
        assert!(matches!(again, Accepted::Enqueued { duplicate: true, .. }));
        assert_eq!(depth(&q).await, 1);
        let msg = q.receive(1, std::time::Duration::from_secs(30)).await.unwrap();
        let job = Job::from_wire(&msg[0].body).unwrap();
        assert!(matches!(job, Job::TodoChanged { todo, .. } if todo.0 == 1_069_480_405));
    }

    #[tokio::test]
    async fn a_wrong_route_token_is_404_and_enqueues_nothing() {
        let (r, q) = setup();
        let err = r.basecamp(&q, "not-the-token", &basecamp_body(), at(0)).await.unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(depth(&q).await, 0);
    }

    #[tokio::test]
    async fn an_event_from_an_unrouted_project_is_accepted_and_ignored() {
        let (r, q) = setup();
        let token = r.route_token(&route().id);
        let body = String::from_utf8(basecamp_body()).unwrap().replace(&route().project.to_string(), "1111111111");
        let accepted = r.basecamp(&q, &token, body.as_bytes(), at(0)).await.unwrap();
        assert!(matches!(accepted, Accepted::Ignored { .. }), "{accepted:?}");
        assert_eq!(depth(&q).await, 0);
    }

    #[tokio::test]
    async fn malformed_and_oversize_bodies_are_rejected_before_the_queue() {
        let (r, q) = setup();
        let token = r.route_token(&route().id);
        assert_eq!(r.basecamp(&q, &token, b"{not json", at(0)).await.unwrap_err().status(), 400);
        let huge = vec![b' '; crate::webhook::MAX_BODY_BYTES + 1];
        assert_eq!(r.basecamp(&q, &token, &huge, at(0)).await.unwrap_err().status(), 413);
        assert_eq!(depth(&q).await, 0);
    }

    fn jira_body() -> Vec<u8> {
        let text = String::from_utf8(fixture("jira", "cloud-webhook-issue-updated-status.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let key = v["issue"]["key"].as_str().unwrap().to_owned();
        let project = key.split('-').next().unwrap().to_owned();
        text.replace(&key, "WEB-7").replace(&format!("\"{project}\""), "\"WEB\"").into_bytes()
    }

    #[tokio::test]
    async fn a_signed_jira_issue_event_for_a_routed_project_enqueues_one_job() {
        let (r, q) = setup();
        let body = jira_body();
        let sig = sign(&SecretString::from("jira-secret"), &body);
        let headers = [("X-Hub-Signature", sig.as_str()), ("X-Atlassian-Webhook-Identifier", "abc-1")];
        let accepted = r.jira(&q, &headers[..], &body, at(0)).await.unwrap();
        assert!(matches!(accepted, Accepted::Enqueued { .. }), "{accepted:?}");
        assert_eq!(depth(&q).await, 1);
    }

    #[tokio::test]
    async fn a_jira_event_with_a_bad_or_missing_signature_is_401_and_enqueues_nothing() {
        let (r, q) = setup();
        let body = jira_body();
        let sig = sign(&SecretString::from("another-secret"), &body);
        let bad = [("X-Hub-Signature", sig.as_str()), ("X-Atlassian-Webhook-Identifier", "abc-1")];
        assert_eq!(r.jira(&q, &bad[..], &body, at(0)).await.unwrap_err().status(), 401);
        let missing = [("X-Atlassian-Webhook-Identifier", "abc-1")];
        assert_eq!(r.jira(&q, &missing[..], &body, at(0)).await.unwrap_err().status(), 401);
        assert_eq!(depth(&q).await, 0);
    }

    #[tokio::test]
    async fn a_source_without_its_receiver_is_404_and_enqueues_nothing() {
        let receivers = Receivers::new(&[route()], SecretString::from("server-key"), None, None);
        let q = MemoryJobQueue::new(Arc::new(ManualClock::new(at(0))));
        let body = jira_body();
        let sig = sign(&SecretString::from("jira-secret"), &body);
        let headers = [("X-Hub-Signature", sig.as_str()), ("X-Atlassian-Webhook-Identifier", "abc-1")];
        assert_eq!(receivers.jira(&q, &headers[..], &body, at(0)).await.unwrap_err().status(), 404);
        assert_eq!(receivers.bitbucket(&q, &headers[..], &body, at(0)).await.unwrap_err().status(), 404);
        assert_eq!(depth(&q).await, 0);
    }

    #[tokio::test]
    async fn each_source_receiver_works_on_its_own() {
        let q = MemoryJobQueue::new(Arc::new(ManualClock::new(at(0))));
        let jira = JiraReceiver::new(&[route()], SecretString::from("jira-secret"));
        let body = jira_body();
        let sig = sign(&SecretString::from("jira-secret"), &body);
        let headers = [("X-Hub-Signature", sig.as_str()), ("X-Atlassian-Webhook-Identifier", "abc-2")];
        assert!(matches!(jira.receive(&q, &headers[..], &body, at(0)).await.unwrap(), Accepted::Enqueued { .. }));
        let basecamp = BasecampReceiver::new(&[route()], SecretString::from("server-key"));
        let token = basecamp.route_token(&route().id);
        let accepted = basecamp.receive(&q, &token, &basecamp_body(), at(0)).await.unwrap();
        assert!(matches!(accepted, Accepted::Enqueued { .. }));
        assert_eq!(depth(&q).await, 2);
    }
}
