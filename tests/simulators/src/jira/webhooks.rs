//! Jira admin-webhook deliveries: v2-shaped bodies like `cloud-webhook-*.json`, one
//! `X-Atlassian-Webhook-Identifier` per event and hook (kept across retries and duplicates), and
//! `X-Hub-Signature: sha256=…` when the hook has a secret.

use std::sync::Weak;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::Inner;
use super::render;
use super::state::{Event, State};
use crate::common::json::{fixture, obj};
use crate::common::signing::hub_signature;
use crate::common::webhooks::DeliveryObserver;
use crate::common::{DeliveryRecord, Outgoing};

/// Events a hook with no explicit list receives.
const DEFAULT_EVENTS: [&str; 6] = [
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
];

fn webhook_user(origin: &str, state: &State, account: &str, template: &Value) -> Value {
    let Some(user) = state.user(account) else { return Value::Null };
    let mut map = obj(template.clone());
    map.insert("self".into(), format!("{origin}/rest/api/2/user?accountId={}", user.account_id).into());
    map.insert("accountId".into(), user.account_id.clone().into());
    map.insert("displayName".into(), user.display_name.clone().into());
    map.insert("timeZone".into(), user.time_zone.clone().into());
    map.insert("active".into(), true.into());
    Value::Object(map)
}

/// The body for `event`.
pub fn body(sim: &Inner, state: &mut State, event: &Event) -> Option<Value> {
    let origin = sim.origin.as_str();
    let changelog_id = state.fresh_id();
    let issue = state.issues.get(&event.issue_id)?;
    let timestamp = chrono::Utc::now().timestamp_millis();
    if event.webhook_event.starts_with("comment_") {
        let comment = issue.comments.iter().find(|c| Some(c.id) == event.comment_id)?;
        let mut map = obj(fixture(render::WEBHOOK_COMMENT));
        map.insert("timestamp".into(), timestamp.into());
        map.insert("webhookEvent".into(), event.webhook_event.into());
        map.insert("comment".into(), render::comment(origin, state, issue, comment, 2));
        map.insert("issue".into(), render::trimmed_issue(origin, state, issue));
        return Some(Value::Object(map));
    }
    let template = fixture(render::WEBHOOK_ISSUE);
    let mut map: Map<String, Value> = obj(template.clone());
    map.insert("timestamp".into(), timestamp.into());
    map.insert("webhookEvent".into(), event.webhook_event.into());
    match event.type_name {
        Some(name) => map.insert("issue_event_type_name".into(), name.into()),
        None => map.remove("issue_event_type_name"),
    };
    map.insert("user".into(), webhook_user(origin, state, &event.actor, &template["user"]));
    map.insert("issue".into(), render::issue_v2_webhook(origin, state, issue, &template["issue"]));
    if event.changelog.is_empty() {
        map.remove("changelog");
    } else {
        map.insert("changelog".into(), json!({"id": changelog_id.to_string(), "items": event.changelog}));
    }
    if let Some(comment) = event.comment_id.and_then(|id| issue.comments.iter().find(|c| c.id == id)) {
        map.insert("comment".into(), render::comment(origin, state, issue, comment, 2));
    }
    Some(Value::Object(map))
}

/// Queues one delivery per subscribed hook whose JQL filter (if any) matches the issue.
pub fn emit(sim: &Inner, state: &mut State, event: &Event) {
    let Some(body) = body(sim, state, event) else { return };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let now = chrono::Utc::now();
    let hooks: Vec<_> = state.hooks.values().cloned().collect();
    for hook in hooks {
        let subscribed = if hook.events.is_empty() {
            DEFAULT_EVENTS.contains(&event.webhook_event)
        } else {
            hook.events.iter().any(|e| e == event.webhook_event)
        };
        let matches = match (&hook.jql, state.issues.get(&event.issue_id)) {
            (Some(jql), Some(issue)) => {
                super::jql::parse(jql).ok().and_then(|q| q.matches(issue, now).ok()).unwrap_or(false)
            }
            _ => true,
        };
        if !subscribed || !matches {
            continue;
        }
        let identifier = state.fresh_id();
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned()),
            ("User-Agent".to_owned(), "Atlassian Webhook HTTP Client".to_owned()),
            ("X-Atlassian-Webhook-Identifier".to_owned(), identifier.to_string()),
            ("X-Atlassian-Webhook-Flow".to_owned(), "Primary".to_owned()),
        ];
        if let Some(secret) = hook.secret.as_deref().filter(|s| !s.is_empty()) {
            headers.push(("X-Hub-Signature".to_owned(), hub_signature(secret, &bytes)));
        }
        sim.dispatcher.enqueue(Outgoing {
            hook_id: hook.id.to_string(),
            event: event.webhook_event.to_owned(),
            url: hook.url.clone(),
            headers,
            body: bytes.clone(),
        });
    }
}

/// Jira keeps no per-hook delivery state the API exposes.
pub struct Observer(pub Weak<Inner>);

#[async_trait]
impl DeliveryObserver for Observer {
    async fn should_send(&self, outgoing: &Outgoing) -> bool {
        let Some(sim) = self.0.upgrade() else { return false };
        let Ok(id) = outgoing.hook_id.parse::<u64>() else { return false };
        sim.state.lock().await.hooks.contains_key(&id)
    }

    async fn delivered(&self, _outgoing: &Outgoing, _last: &DeliveryRecord) {}
}
