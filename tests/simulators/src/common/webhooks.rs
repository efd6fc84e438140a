//! Outgoing webhook delivery shared by the simulators: one ordered worker per simulator that
//! applies delivery faults, sends with a per-service retry policy and records every attempt.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::faults::SharedFaults;

/// One webhook request to send.
#[derive(Clone, Debug, Serialize)]
pub struct Outgoing {
    /// The simulator's id of the webhook (subscription) this delivery belongs to.
    pub hook_id: String,
    /// The event name (`todo_created`, `jira:issue_updated`, `pullrequest:fulfilled`, …).
    pub event: String,
    /// Target URL.
    pub url: String,
    /// Request headers (signature included when the hook has a secret).
    pub headers: Vec<(String, String)>,
    /// The raw body bytes, exactly as signed.
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// What happened to one delivery attempt.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    /// Sequence number across the simulator.
    pub seq: u64,
    /// The webhook id.
    pub hook_id: String,
    /// The event name.
    pub event: String,
    /// Target URL.
    pub url: String,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// Request headers as sent.
    pub headers: BTreeMap<String, String>,
    /// The body, parsed back to JSON for inspection.
    pub body: serde_json::Value,
    /// Response status, when the receiver answered.
    pub status: Option<u16>,
    /// Response body (truncated), when the receiver answered.
    pub response_body: Option<String>,
    /// Transport error (connection refused, timeout), when it did not.
    pub error: Option<String>,
    /// True when a `drop` fault swallowed the delivery.
    pub dropped: bool,
    /// When the attempt finished.
    pub at: String,
}

impl DeliveryRecord {
    /// True for a 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }
}

/// How a service retries and times out deliveries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Statuses that trigger a retry (transport errors and timeouts always do when retries remain).
    pub retry_statuses: Vec<u16>,
    /// Retry 5xx answers.
    pub retry_5xx: bool,
    /// Receiver timeout per attempt.
    pub timeout: Duration,
    /// Pause between attempts.
    pub backoff: Duration,
    /// Header carrying the attempt number and whether it is sent on the first attempt.
    pub attempt_header: Option<(&'static str, bool)>,
}

impl RetryPolicy {
    fn should_retry(&self, status: Option<u16>) -> bool {
        match status {
            None => true,
            Some(code) => (self.retry_5xx && code >= 500) || self.retry_statuses.contains(&code),
        }
    }
}

/// Per-service hooks into the delivery worker.
#[async_trait]
pub trait DeliveryObserver: Send + Sync + 'static {
    /// Called just before the first attempt; return false to skip (e.g. the hook was deactivated).
    async fn should_send(&self, outgoing: &Outgoing) -> bool;
    /// Called once per delivery with its final attempt.
    async fn delivered(&self, outgoing: &Outgoing, last: &DeliveryRecord);
}

enum Command {
    Send(Box<Outgoing>),
    ReleaseHeld,
}

/// Queue + worker. Deliveries go out one at a time in enqueue order (unless faults say otherwise).
pub struct Dispatcher {
    tx: mpsc::UnboundedSender<Command>,
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    log: Arc<Mutex<Vec<DeliveryRecord>>>,
    worker: JoinHandle<()>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("pending", &self.pending.load(Ordering::SeqCst)).finish()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

struct Worker {
    client: reqwest::Client,
    policy: RetryPolicy,
    faults: SharedFaults,
    observer: Arc<dyn DeliveryObserver>,
    log: Arc<Mutex<Vec<DeliveryRecord>>>,
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    held: Vec<Outgoing>,
    seq: u64,
}

impl Dispatcher {
    /// The HTTP client deliveries use: no proxies, no redirects (3xx counts as a failure).
    pub fn client() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()
    }

    /// Starts the worker (needs a tokio runtime).
    pub fn start(
        client: reqwest::Client,
        policy: RetryPolicy,
        faults: SharedFaults,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        let log = Arc::new(Mutex::new(Vec::new()));
        let worker = Worker {
            client,
            policy,
            faults,
            observer,
            log: log.clone(),
            pending: pending.clone(),
            idle: idle.clone(),
            held: Vec::new(),
            seq: 0,
        };
        let worker = tokio::spawn(worker.run(rx));
        Self { tx, pending, idle, log, worker }
    }

    /// Queues a delivery.
    pub fn enqueue(&self, outgoing: Outgoing) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Command::Send(Box::new(outgoing))).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Sends every delivery held by a `reorder_hold` fault now, newest first.
    pub fn release_held(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Command::ReleaseHeld).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits until every queued delivery has been attempted (held deliveries excepted).
    pub async fn settle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Every attempt so far, oldest first.
    pub fn log(&self) -> Vec<DeliveryRecord> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Forgets the attempt log.
    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = rx.recv().await {
            match command {
                Command::Send(outgoing) => self.accept(*outgoing).await,
                Command::ReleaseHeld => {
                    let held = std::mem::take(&mut self.held);
                    self.faults.count_reordered(held.len().saturating_sub(1));
                    for outgoing in held.into_iter().rev() {
                        self.deliver(outgoing).await;
                    }
                }
            }
            if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.idle.notify_waiters();
            }
        }
    }

    async fn accept(&mut self, outgoing: Outgoing) {
        if !self.observer.should_send(&outgoing).await {
            return;
        }
        let mut dropped = false;
        let mut hold = 0;
        self.faults.update(|faults| {
            if faults.webhook.drop_next > 0 {
                faults.webhook.drop_next -= 1;
                dropped = true;
            }
            hold = faults.webhook.reorder_hold;
        });
        if dropped {
            let record = self.record(&outgoing, 1, None, None, None, true);
            self.push_log(record);
            return;
        }
        if hold > 0 {
            self.held.push(outgoing);
            if self.held.len() >= hold {
                let held = std::mem::take(&mut self.held);
                self.faults.count_reordered(held.len().saturating_sub(1));
                for outgoing in held.into_iter().rev() {
                    self.deliver(outgoing).await;
                }
            }
            return;
        }
        self.deliver(outgoing).await;
    }

    async fn deliver(&mut self, outgoing: Outgoing) {
        let faults = self.faults.get().webhook;
        if faults.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
        }
        let twice = faults.duplicate || (faults.duplicate_rate > 0.0 && rand::random::<f64>() < faults.duplicate_rate);
        if twice {
            self.faults.count_duplicate();
        }
        for _ in 0..if twice { 2 } else { 1 } {
            let last = self.attempts(&outgoing).await;
            self.observer.delivered(&outgoing, &last).await;
        }
    }

    async fn attempts(&mut self, outgoing: &Outgoing) -> DeliveryRecord {
        let mut attempt = 1;
        loop {
            let record = self.attempt(outgoing, attempt).await;
            self.push_log(record.clone());
            if record.succeeded() || attempt > self.policy.max_retries || !self.policy.should_retry(record.status) {
                return record;
            }
            attempt += 1;
            tokio::time::sleep(self.policy.backoff).await;
        }
    }

    async fn attempt(&mut self, outgoing: &Outgoing, attempt: u32) -> DeliveryRecord {
        let mut headers = outgoing.headers.clone();
        if let Some((name, on_first)) = self.policy.attempt_header
            && (attempt > 1 || on_first)
        {
            let value = if on_first { attempt } else { attempt - 1 };
            headers.push((name.to_owned(), value.to_string()));
        }
        let mut request = self.client.post(&outgoing.url).timeout(self.policy.timeout).body(outgoing.body.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let sent = Worker::with_headers(outgoing, headers);
        if !is_loopback(&outgoing.url) {
            // The simulators never contact anything but loopback, whatever a test registers.
            return self.record(&sent, attempt, None, None, Some("non-loopback target refused".to_owned()), false);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let mut text = response.text().await.unwrap_or_default();
                text.truncate(2000);
                self.record(&sent, attempt, Some(status), Some(text), None, false)
            }
            Err(error) => {
                let kind = if error.is_timeout() { "timeout" } else { "connection failed" };
                self.record(&sent, attempt, None, None, Some(kind.to_owned()), false)
            }
        }
    }

    fn with_headers(outgoing: &Outgoing, headers: Vec<(String, String)>) -> Outgoing {
        Outgoing { headers, ..outgoing.clone() }
    }

    fn record(
        &mut self,
        outgoing: &Outgoing,
        attempt: u32,
        status: Option<u16>,
        response_body: Option<String>,
        error: Option<String>,
        dropped: bool,
    ) -> DeliveryRecord {
        self.seq += 1;
        DeliveryRecord {
            seq: self.seq,
            hook_id: outgoing.hook_id.clone(),
            event: outgoing.event.clone(),
            url: outgoing.url.clone(),
            attempt,
            headers: outgoing.headers.iter().cloned().collect(),
            body: serde_json::from_slice(&outgoing.body).unwrap_or(serde_json::Value::Null),
            status,
            response_body,
            error,
            dropped,
            at: super::json::now_utc_millis(),
        }
    }

    fn push_log(&self, record: DeliveryRecord) {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(record);
    }
}

/// True when `url` targets this machine (the only place simulators deliver to).
pub fn is_loopback(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        },
        Err(_) => false,
    }
}
