//! Webhook payloads (thin, unsigned, shaped like `webhook-event-*.json`) and the delivery bookkeeping:
//! `recent_deliveries` (25, newest first), per-event retries and silent deactivation.
//!
//! Retries follow reference/basecamp-api.md §10 ("Delivery behaviour"): each event is attempted up to 10
//! times, the wait after attempt n being ActiveJob's `polynomially_longer` (n⁴ + 2 s, plus up to 15 %
//! jitter: about 4–5 hours in all), and the webhook is deactivated silently when one event has failed
//! all 10 — not after some number of different events failed once each. A non-2xx answer and a timeout
//! are failures; a delivery that never connects is recorded with code 0 and lost, neither retried nor
//! counted (connector PR #45). Waits run on the simulator's [`SimClock`], which tests move forward.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::Inner;
use super::render;
use super::state::{Event, State};
use crate::common::json::{fixture, now_utc_millis, obj};
use crate::common::webhooks::DeliveryObserver;
use crate::common::{DeliveryRecord, Outgoing};

/// Attempts per event before Basecamp gives up and deactivates the webhook.
pub const ATTEMPTS_PER_EVENT: u32 = 10;

/// The wait after the `attempt`-th failed attempt: `attempt⁴ + 2` seconds plus `jitter` (0.0–1.0) of
/// 15 % of `attempt⁴` — ActiveJob's `wait: :polynomially_longer`.
pub fn retry_wait(attempt: u32, jitter: f64) -> Duration {
    let base = f64::from(attempt).powi(4);
    Duration::from_secs_f64(base + 2.0 + base * 0.15 * jitter.clamp(0.0, 1.0))
}

/// Simulated time for delivery retries: real time since start, times `scale`, plus whatever tests
/// added with [`SimClock::advance_to`].
#[derive(Debug)]
pub struct SimClock {
    start: Instant,
    scale: f64,
    offset: Mutex<Duration>,
}

impl SimClock {
    pub fn new(scale: f64) -> Self {
        Self { start: Instant::now(), scale: scale.max(0.0), offset: Mutex::new(Duration::ZERO) }
    }

    /// Simulated time since the simulator started.
    pub fn now(&self) -> Duration {
        let offset = *self.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.start.elapsed().mul_f64(self.scale) + offset
    }

    /// Moves the clock forward to at least `at`.
    pub fn advance_to(&self, at: Duration) {
        let now = self.now();
        if at > now {
            *self.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += at - now;
        }
    }
}

/// A retry waiting for its time.
#[derive(Debug)]
struct Pending {
    due: Duration,
    outgoing: Outgoing,
}

/// Retries scheduled, and how many attempts each delivery (hook, `X-Request-Id`) has had.
#[derive(Debug, Default)]
pub struct Retries {
    pending: Mutex<Vec<Pending>>,
    attempts: Mutex<HashMap<(String, String), u32>>,
}

impl Retries {
    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When the next retry is due, if any is waiting.
    pub fn next_due(&self) -> Option<Duration> {
        self.pending().iter().map(|p| p.due).min()
    }

    /// Takes every retry due by `now`, oldest due first.
    pub fn take_due(&self, now: Duration) -> Vec<Outgoing> {
        let mut pending = self.pending();
        let (mut due, later): (Vec<Pending>, Vec<Pending>) = pending.drain(..).partition(|p| p.due <= now);
        *pending = later;
        due.sort_by_key(|p| p.due);
        due.into_iter().map(|p| p.outgoing).collect()
    }

    /// How many retries are waiting.
    pub fn waiting(&self) -> usize {
        self.pending().len()
    }

    fn forget_hook(&self, hook_id: &str) {
        self.pending().retain(|p| p.outgoing.hook_id != hook_id);
        self.attempts().retain(|(hook, _), _| hook != hook_id);
    }
}

fn request_id(outgoing: &Outgoing) -> String {
    outgoing.headers.iter().find(|(name, _)| name == "X-Request-Id").map(|(_, v)| v.clone()).unwrap_or_default()
}

/// Renders `event` and queues one delivery per active project webhook subscribed to the
/// recording's type.
pub fn emit(sim: &Inner, state: &mut State, event: Event) {
    let rendered = match &event.rendered {
        Some(value) => value.get("type").and_then(Value::as_str).map(|t| (value.clone(), t.to_owned())),
        None => render::recording(&sim.ctx, state, event.recording_id).map(|(v, t)| (v, t.to_owned())),
    };
    let Some((full, kind)) = rendered else { return };
    let event_id = state.fresh_event_id();
    let mut payload = obj(fixture(render::WEBHOOK_EVENT));
    payload.insert("id".into(), event_id.into());
    payload.insert("kind".into(), event.kind.clone().into());
    payload.insert("details".into(), event.details.clone());
    payload.insert("created_at".into(), now_utc_millis().into());
    if let Some((copy_id, copy_project)) = event.copy {
        payload.insert(
            "copy".into(),
            json!({
                "id": copy_id,
                "url": sim.ctx.api(&format!("/buckets/{copy_project}/todos/{copy_id}.json")),
                "app_url": sim.ctx.app(&format!("/buckets/{copy_project}/todos/{copy_id}")),
                "bucket": {"id": copy_project},
            }),
        );
    }
    payload.insert("recording".into(), render::thin_recording(&full));
    payload.insert("creator".into(), render::person(state, event.creator_id));
    let body = serde_json::to_vec(&Value::Object(payload)).unwrap_or_default();
    for hook in state.webhooks.values() {
        let subscribed = hook.types.iter().any(|t| *t == kind || t == "all");
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

/// Queues every retry that is due on the simulator's clock.
pub fn send_due(sim: &Inner) {
    for outgoing in sim.retries.take_due(sim.clock.now()) {
        sim.dispatcher.enqueue(outgoing);
    }
}

/// Keeps webhook records in step with delivery outcomes, and schedules retries.
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
        let key = (outgoing.hook_id.clone(), request_id(outgoing));
        let attempt = sim.retries.attempts().get(&key).copied().unwrap_or(1);
        let timed_out = last.error.as_deref() == Some("timeout");
        if last.succeeded() || (last.status.is_none() && !timed_out) {
            // Delivered, or never connected: recorded with code 0 and lost, not retried, not counted
            // (reference/basecamp-api.md §10, "Connection failures can be lost silently").
            sim.retries.attempts().remove(&key);
        } else if attempt >= ATTEMPTS_PER_EVENT {
            // Basecamp deactivates silently: no notification, the hook just stops firing.
            hook.active = false;
            hook.updated_at = now_utc_millis();
            sim.retries.forget_hook(&outgoing.hook_id);
        } else {
            sim.retries.attempts().insert(key, attempt + 1);
            let due = sim.clock.now() + retry_wait(attempt, rand::random::<f64>());
            sim.retries.pending().push(Pending { due, outgoing: outgoing.clone() });
        }
    }
}

fn http_reason(code: u16) -> &'static str {
    axum::http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_attempts_span_about_four_to_five_hours() {
        let shortest: Duration = (1..ATTEMPTS_PER_EVENT).map(|n| retry_wait(n, 0.0)).sum();
        let longest: Duration = (1..ATTEMPTS_PER_EVENT).map(|n| retry_wait(n, 1.0)).sum();
        assert_eq!(shortest, Duration::from_secs(15_351), "Σ n⁴ + 2 for n = 1..9");
        assert!(shortest > Duration::from_secs(4 * 3600) && longest < Duration::from_secs(5 * 3600));
        assert_eq!(retry_wait(1, 0.0), Duration::from_secs(3));
    }

    #[test]
    fn the_clock_only_moves_forward() {
        let clock = SimClock::new(0.0);
        clock.advance_to(Duration::from_secs(10));
        clock.advance_to(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(10));
    }
}
