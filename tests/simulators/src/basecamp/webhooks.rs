//! Basecamp webhook payloads (thin, unsigned, shaped like `webhook-event-*.json`) and the delivery
//! bookkeeping: `recent_deliveries` (25, newest first) and silent deactivation after repeated
//! failed answers. A delivery that never connects is recorded with code 0 and silently lost.

use std::sync::Weak;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::Inner;
use super::render;
use super::state::{Event, State};
use crate::common::json::{fixture, now_utc_millis, obj};
use crate::common::webhooks::DeliveryObserver;
use crate::common::{DeliveryRecord, Outgoing};

/// Renders `event` and queues one delivery per active project webhook subscribed to the
/// recording's type.
pub fn emit(sim: &Inner, state: &mut State, event: Event) {
    let Some((full, kind)) = render::recording(&sim.ctx, state, event.recording_id) else { return };
    let event_id = state.fresh_event_id();
    let mut payload = obj(fixture(render::WEBHOOK_EVENT));
    payload.insert("id".into(), event_id.into());
    payload.insert("kind".into(), event.kind.clone().into());
    payload.insert("details".into(), event.details.clone());
    payload.insert("created_at".into(), now_utc_millis().into());
    payload.insert("recording".into(), render::thin_recording(&full));
    payload.insert("creator".into(), render::person(state, event.creator_id));
    let body = serde_json::to_vec(&Value::Object(payload)).unwrap_or_default();
    for hook in state.webhooks.values() {
        let subscribed = hook.types.iter().any(|t| t == kind || t == "all");
        if hook.project_id != event.project_id || !hook.active || !subscribed {
            continue;
        }
        sim.dispatcher.enqueue(Outgoing {
            hook_id: hook.id.to_string(),
            event: event.kind.clone(),
            url: hook.payload_url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("User-Agent".into(), "Basecamp3 Webhook".into()),
                ("X-Request-Id".into(), uuid::Uuid::new_v4().to_string()),
            ],
            body: body.clone(),
        });
    }
}

/// Keeps webhook records in step with delivery outcomes.
pub struct Observer(pub Weak<Inner>);

#[async_trait]
impl DeliveryObserver for Observer {
    async fn should_send(&self, outgoing: &Outgoing) -> bool {
        let Some(sim) = self.0.upgrade() else { return false };
        let Ok(id) = outgoing.hook_id.parse::<i64>() else { return false };
        sim.state.lock().await.webhooks.get(&id).is_some_and(|hook| hook.active)
    }

    async fn delivered(&self, outgoing: &Outgoing, last: &DeliveryRecord) {
        let Some(sim) = self.0.upgrade() else { return };
        let Ok(id) = outgoing.hook_id.parse::<i64>() else { return };
        let mut state = sim.state.lock().await;
        let delivery_id = state.fresh_event_id();
        let Some(hook) = state.webhooks.get_mut(&id) else { return };
        let response = match (last.status, &last.error) {
            (Some(code), _) => json!({
                "headers": {"Content-Type": "application/json"},
                "code": code,
                "message": http_reason(code),
                "body": last.response_body.clone().unwrap_or_default(),
            }),
            (None, error) => json!({"code": 0, "error": error.clone().unwrap_or_default()}),
        };
        let entry = json!({
            "id": delivery_id,
            "created_at": last.at,
            "request": {"headers": last.headers, "body": last.body},
            "response": response,
        });
        hook.recent_deliveries.insert(0, entry);
        hook.recent_deliveries.truncate(25);
        if last.succeeded() {
            hook.consecutive_failures = 0;
        } else if last.status.is_none() {
            // A delivery that never connected is recorded with code 0 and lost: not retried, and it does
            // not count towards deactivation (reference/basecamp-api.md §10, "Delivery behaviour").
        } else {
            hook.consecutive_failures += 1;
            if hook.consecutive_failures >= sim.opts.deactivate_after_failures {
                // Basecamp deactivates silently: no notification, the hook just stops firing.
                hook.active = false;
            }
        }
    }
}

fn http_reason(code: u16) -> &'static str {
    axum::http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}
