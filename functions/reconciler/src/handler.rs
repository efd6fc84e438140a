//! EventBridge scheduled event → one `shared::sync::Reconciler::run`.
//!
//! The event carries nothing the run needs beyond "now": its id and time are logged to tie the run to
//! its schedule. The report (logged by the reconciler) is the function's result; a run with a problem (a
//! failed step, or a poll that could not reach back to its cursor) returns an error, so the invocation
//! counts in the function's `Errors` metric and its alarm. Cursors of failed steps did not move, so the
//! next scheduled run repeats them.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::sync::{ReconcileReport, Reconciler};
use tracing::info;

/// What every invocation shares.
pub struct State {
    pub reconciler: Reconciler,
}

/// A run finished with problems (also in the logged report).
#[derive(Debug, thiserror::Error)]
#[error("reconcile: {} problem(s): {}", .0.len(), .0.join("; "))]
pub struct Problems(Vec<String>);

pub async fn handle(state: &State, event: EventBridgeEvent) -> Result<ReconcileReport, Problems> {
    info!(event_id = event.id.as_deref().unwrap_or(""), scheduled_for = ?event.time, "reconcile run starting");
    let report = state.reconciler.run().await;
    let problems = report.problems();
    if problems.is_empty() { Ok(report) } else { Err(Problems(problems)) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use campbridge_simulators::basecamp as bc_sim;
    use campbridge_simulators::jira as jira_sim;
    use campbridge_simulators::{Faults, Forced429};
    use shared::adapters::memory::{MemoryCursorStore, MemoryJobQueue, MemoryPairStore, MemorySecrets};
    use shared::config::Config;
    use shared::ports::SystemClock;
    use shared::sync::ReconcileStores;

    use super::*;

    /// The simulators, and the reconciler wired to them over memory stores.
    struct World {
        bc: bc_sim::Simulator,
        _jira: jira_sim::Simulator,
        state: State,
    }

    fn config_text(bc: &bc_sim::Simulator, jira: &jira_sim::Simulator) -> String {
        format!(
            r#"[server]
webhook_key = {{ secret = "webhook-key" }}
allow_insecure_loopback_upstreams = true

[basecamp]
account_id = {account}
base_url = {bc_host:?}
launchpad_url = {launchpad:?}
user_agent = "campbridge tests (tests@campbridge.invalid)"
access_token = {{ secret = "basecamp-access-token" }}

[jira]
site = {jira_url:?}
email = {jira_email:?}
api_token = {{ secret = "jira-api-token" }}
webhook_secret = {{ secret = "jira-webhook-secret" }}

[[routes]]
id = "web"
basecamp_project = {project}
jira_project = "WEB"
code = "WEB"
todolists = ["Sprint *"]
"#,
            account = bc.account_id(),
            bc_host = bc.base_url().trim_end_matches(&format!("/{}", bc.account_id())),
            launchpad = bc.launchpad_url(),
            jira_url = jira.base_url(),
            jira_email = jira_sim::BOT_EMAIL,
            project = bc_sim::PROJECT_ID,
        )
    }

    async fn world() -> World {
        let bc = bc_sim::Simulator::start(bc_sim::Options::default()).await.unwrap();
        let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await.unwrap();
        let config = Config::parse(&config_text(&bc, &jira), "campbridge.toml").unwrap();
        let secrets = Arc::new(MemorySecrets::with([
            ("webhook-key", "campbridge-test-webhook-key"),
            ("basecamp-access-token", bc_sim::ACCESS_TOKEN),
            ("jira-api-token", jira_sim::API_TOKEN),
        ]));
        let stores = ReconcileStores {
            pairs: Arc::new(MemoryPairStore::new()),
            cursors: Arc::new(MemoryCursorStore::new()),
            queue: Arc::new(MemoryJobQueue::new(Arc::new(SystemClock))),
        };
        let reconciler = shared::setup::reconciler(&config, stores, secrets, Arc::new(SystemClock)).await.unwrap();
        World { bc, _jira: jira, state: State { reconciler } }
    }

    fn scheduled() -> EventBridgeEvent {
        let path = format!("{}/../../events/reconciler/scheduled.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn the_scheduled_event_is_an_eventbridge_schedule() {
        let event = scheduled();
        assert_eq!((event.source.as_str(), event.detail_type.as_str()), ("aws.events", "Scheduled Event"));
    }

    #[tokio::test]
    async fn a_scheduled_run_returns_its_report() {
        let w = world().await;
        let first = handle(&w.state, scheduled()).await.unwrap();
        assert!(first.basecamp.initialized && first.jira.initialized);
        let second = handle(&w.state, scheduled()).await.unwrap();
        assert!(!second.basecamp.initialized && second.basecamp.cursor > first.basecamp.cursor);
        assert_eq!(second.webhooks.missing, 1, "no webhook registered for route web");
    }

    #[tokio::test]
    async fn a_run_with_a_failed_step_is_an_invocation_error() {
        let w = world().await;
        handle(&w.state, scheduled()).await.unwrap();
        w.bc.set_faults(Faults {
            force_429: Some(Forced429 { retry_after: 9, ..Forced429::default() }),
            ..Faults::default()
        });
        let err = handle(&w.state, scheduled()).await.unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("reconcile: 2 problem(s): Basecamp poll: rate limited"), "{message}");
        assert!(!message.contains("basecamp/"), "no webhook URL (route token) in errors: {message}");
    }
}
