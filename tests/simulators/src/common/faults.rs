//! Fault injection: 5xx answers, forced or random 429s, latency, and webhook delivery faults (drop,
//! duplicate, delay, reorder). Faults are plain data so tests and the control API set them alike; the
//! simulator counts what it injected ([`FaultCounts`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A forced 429 answer for every API request until cleared (or until `remaining` runs out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Forced429 {
    /// `Retry-After` seconds (ignored by Bitbucket, which sends none).
    pub retry_after: u64,
    /// How many requests to refuse; `None` = until the fault is cleared.
    pub remaining: Option<u32>,
    /// Jira only: answer with an HTML error page instead of JSON, as some real 429s do.
    pub html: bool,
}

/// Faults applied to outgoing webhook deliveries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// Silently drop the next N deliveries (recorded as dropped, never sent).
    pub drop_next: u32,
    /// Send every delivery twice (same identifiers, as a retry would).
    pub duplicate: bool,
    /// Fraction (0.0–1.0) of deliveries sent twice, when `duplicate` is off.
    pub duplicate_rate: f64,
    /// Wait this long before each delivery.
    pub delay_ms: u64,
    /// Hold deliveries until N are queued, then send them in reverse order (0 = off).
    pub reorder_hold: usize,
}

/// Every injectable fault. `Default` = none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction (0.0–1.0) of API requests answered with `error_status` instead of being served.
    pub error_rate: f64,
    /// Status used for `error_rate` failures (default 503 when 0).
    pub error_status: u16,
    /// Answer 429 to API requests.
    pub force_429: Option<Forced429>,
    /// Fraction (0.0–1.0) of API requests answered 429 (with `Retry-After: 1` where the service sends one),
    /// as a busy upstream does now and then.
    pub rate_limit_rate: f64,
    /// Added latency for every API request.
    pub latency_ms: u64,
    /// Faults applied to outgoing webhooks.
    pub webhook: WebhookFaults,
}

/// How a service renders a forced 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// JSON body, `Retry-After`.
    Basecamp,
    /// `Retry-After`; the body is JSON or an HTML page.
    Jira,
    /// `text/plain` body, no `Retry-After`.
    Bitbucket,
}

/// How many faults were injected so far, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// API requests answered with `error_status` (`error_rate`).
    pub server_errors: u64,
    /// API requests answered 429 (`force_429` and `rate_limit_rate`).
    pub rate_limits: u64,
    /// Webhook deliveries sent a second time (`duplicate`, `duplicate_rate`).
    pub duplicated_deliveries: u64,
    /// Webhook deliveries held back and sent after later ones (`reorder_hold`).
    pub reordered_deliveries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    server_errors: AtomicU64,
    rate_limits: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

/// Shared, mutable fault configuration, and counts of what it injected.
#[derive(Clone, Debug, Default)]
pub struct SharedFaults(Arc<Mutex<Faults>>, Arc<Counters>);

impl SharedFaults {
    /// The faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.1;
        FaultCounts {
            server_errors: c.server_errors.load(Ordering::Relaxed),
            rate_limits: c.rate_limits.load(Ordering::Relaxed),
            duplicated_deliveries: c.duplicated.load(Ordering::Relaxed),
            reordered_deliveries: c.reordered.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_duplicate(&self) {
        self.1.duplicated.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_reordered(&self, n: usize) {
        self.1.reordered.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The current faults.
    pub fn get(&self) -> Faults {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces every fault.
    pub fn set(&self, faults: Faults) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = faults;
    }

    /// Edits the faults in place.
    pub fn update(&self, edit: impl FnOnce(&mut Faults)) {
        edit(&mut self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// Applies latency, then decides whether this API request is answered by a fault. Returns the
    /// fault response, or `None` to serve the request normally.
    pub async fn intercept(&self, style: Style) -> Option<Response> {
        let latency = self.get().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(forced) = guard.force_429.as_mut() {
            let response = too_many_requests(style, forced);
            match forced.remaining.as_mut() {
                Some(0) => guard.force_429 = None,
                Some(left) => {
                    *left -= 1;
                    if *left == 0 {
                        guard.force_429 = None;
                    }
                    self.1.rate_limits.fetch_add(1, Ordering::Relaxed);
                    return Some(response);
                }
                None => {
                    self.1.rate_limits.fetch_add(1, Ordering::Relaxed);
                    return Some(response);
                }
            }
        }
        if guard.rate_limit_rate > 0.0 && rand::random::<f64>() < guard.rate_limit_rate {
            self.1.rate_limits.fetch_add(1, Ordering::Relaxed);
            return Some(too_many_requests(style, &Forced429 { retry_after: 1, ..Forced429::default() }));
        }
        if guard.error_rate > 0.0 && rand::random::<f64>() < guard.error_rate {
            let status = StatusCode::from_u16(if guard.error_status == 0 { 503 } else { guard.error_status })
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            self.1.server_errors.fetch_add(1, Ordering::Relaxed);
            return Some((status, "simulated server error").into_response());
        }
        None
    }
}

/// The 429 each service really sends.
pub fn too_many_requests(style: Style, forced: &Forced429) -> Response {
    let retry_after = HeaderValue::from(forced.retry_after);
    match style {
        Style::Basecamp => {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, axum::Json(serde_json::json!({"error": "API rate limit exceeded"})))
                    .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, retry_after);
            response
        }
        Style::Jira if forced.html => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
                "<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>",
            )
                .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, retry_after);
            response
        }
        Style::Jira => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"errorMessages": ["Rate limit exceeded."], "errors": {}})),
            )
                .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, retry_after);
            response.headers_mut().insert("RateLimit-Reason", HeaderValue::from_static("jira-burst-based"));
            response
        }
        Style::Bitbucket => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain")],
            "Rate limit for this resource has been exceeded",
        )
            .into_response(),
    }
}
