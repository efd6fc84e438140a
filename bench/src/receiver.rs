//! Receiver cost in-process: CPU time per event for verify + parse + normalize + enqueue to the
//! in-memory queue, per source, with the real fixture bodies (and the JSON log line the functions
//! write, formatted into a byte counter). Measured on one thread (its own CPU clock), each delivery
//! with a fresh delivery id so every one is really enqueued.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use shared::adapters::memory::{ManualClock, MemoryJobQueue};
use shared::ingest::{Accepted, Receivers};
use shared::webhook::verify::sign;

use crate::logs::LogBytes;
use crate::stats::Spread;

const KEY: &str = "bench-receiver-key";
const JIRA_SECRET: &str = "bench-receiver-jira-secret";
const BITBUCKET_SECRET: &str = "bench-receiver-bitbucket-secret";

/// One source's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCost {
    /// CPU µs per event.
    pub cpu_us: Spread,
    /// The fixture body's size.
    pub body_bytes: usize,
    /// The fixture it replays.
    pub fixture: String,
    /// Bytes of JSON log lines per event (as the functions format them).
    pub log_bytes_per_event: f64,
}

/// The calling thread's CPU time so far, in ns (`/proc/thread-self/schedstat`: time on CPU).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").context("reading /proc/thread-self/schedstat")?;
    text.split_whitespace().next().and_then(|v| v.parse().ok()).context("unexpected /proc/thread-self/schedstat")
}

fn fixture(root: &Path, service: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = root.join("tests/fixtures").join(service).join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A config with one route for the fixtures' Basecamp project and Jira project WEB (nothing is called).
fn receivers() -> anyhow::Result<Receivers> {
    let text = r#"
[server]
webhook_key = { secret = "webhook-key" }
allow_insecure_loopback_upstreams = true
[basecamp]
account_id = 195539477
base_url = "http://127.0.0.1:9"
user_agent = "campbridge bench (bench@campbridge.invalid)"
access_token = { secret = "basecamp-access-token" }
[jira]
site = "http://127.0.0.1:9"
email = "bench@campbridge.invalid"
api_token = { secret = "jira-api-token" }
webhook_secret = { secret = "jira-webhook-secret" }
[bitbucket]
workspace = "honcho"
base_url = "http://127.0.0.1:9/2.0"
email = "bench@campbridge.invalid"
api_token = { secret = "bitbucket-api-token" }
webhook_secret = { secret = "bitbucket-webhook-secret" }
repos = ["honcho/leto-web"]
[[routes]]
id = "web"
basecamp_project = 2085958505
jira_project = "WEB"
"#;
    let config = crate::world::parse(text)?;
    Ok(Receivers::new(
        &config.routes,
        SecretString::from(KEY),
        Some(SecretString::from(JIRA_SECRET)),
        Some(SecretString::from(BITBUCKET_SECRET)),
    ))
}

/// One source's deliveries: a body per event (Basecamp's delivery id is in the body) or one body with a
/// header per event (Jira's and Bitbucket's are headers, outside the signature).
enum Source {
    Basecamp { token: String, bodies: Vec<Vec<u8>> },
    Signed { jira: bool, body: Vec<u8>, headers: Vec<Vec<(String, String)>> },
}

impl Source {
    fn body_bytes(&self) -> usize {
        match self {
            Self::Basecamp { bodies, .. } => bodies.first().map_or(0, Vec::len),
            Self::Signed { body, .. } => body.len(),
        }
    }

    async fn run(
        &self,
        r: &Receivers,
        queue: &MemoryJobQueue,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<usize> {
        let mut enqueued = 0;
        let mut count = |a: Accepted| {
            if matches!(a, Accepted::Enqueued { duplicate: false, .. }) {
                enqueued += 1;
            }
        };
        match self {
            Self::Basecamp { token, bodies } => {
                for body in bodies {
                    count(r.basecamp(queue, token, body, now).await?);
                }
            }
            Self::Signed { jira, body, headers } => {
                for h in headers {
                    let accepted = if *jira {
                        r.jira(queue, &h[..], body, now).await?
                    } else {
                        r.bitbucket(queue, &h[..], body, now).await?
                    };
                    count(accepted);
                }
            }
        }
        Ok(enqueued)
    }
}

fn sources(root: &Path, r: &Receivers, events: usize) -> anyhow::Result<Vec<(&'static str, String, Source)>> {
    let bc_name = "webhook-event-todo-completed.json";
    let bc: Value = serde_json::from_slice(&fixture(root, "basecamp", bc_name)?)?;
    let bodies = (0..events)
        .map(|i| {
            let mut v = bc.clone();
            v["id"] = Value::from(9_000_000_000_i64 + i as i64);
            serde_json::to_vec_pretty(&v)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let token = r.route_token(&shared::domain::RouteId("web".to_owned()));

    let jira_name = "cloud-webhook-issue-updated-status.json";
    let text = String::from_utf8(fixture(root, "jira", jira_name)?)?;
    // The fixture's project renamed to the route's (as shared::ingest's tests do), so it is enqueued.
    let jira_body = text.replace("TES-41", "WEB-7").replace("\"TES\"", "\"WEB\"").into_bytes();
    let jira_sig = sign(&SecretString::from(JIRA_SECRET), &jira_body);
    let jira_headers = (0..events)
        .map(|i| {
            vec![
                ("X-Hub-Signature".to_owned(), jira_sig.clone()),
                ("X-Atlassian-Webhook-Identifier".to_owned(), format!("bench-{i}")),
            ]
        })
        .collect();

    let bb_name = "cloud-webhook-pullrequest-created.json";
    let bb_body = fixture(root, "bitbucket", bb_name)?;
    let bb_sig = sign(&SecretString::from(BITBUCKET_SECRET), &bb_body);
    let bb_headers = (0..events)
        .map(|i| {
            vec![
                ("X-Event-Key".to_owned(), "pullrequest:created".to_owned()),
                ("X-Request-UUID".to_owned(), format!("00000000-0000-4000-8000-{i:012}")),
                ("X-Hub-Signature".to_owned(), bb_sig.clone()),
            ]
        })
        .collect();
    Ok(vec![
        ("basecamp", format!("basecamp/{bc_name}"), Source::Basecamp { token, bodies }),
        ("jira", format!("jira/{jira_name}"), Source::Signed { jira: true, body: jira_body, headers: jira_headers }),
        (
            "bitbucket",
            format!("bitbucket/{bb_name}"),
            Source::Signed { jira: false, body: bb_body, headers: bb_headers },
        ),
    ])
}

/// CPU µs per event per source: `runs` runs of `events` deliveries each (after one warm-up run), on a
/// dedicated thread with a single-threaded runtime, so the thread's CPU clock is the receivers' cost.
pub fn measure(root: &Path, logs: &LogBytes, runs: usize, events: usize) -> anyhow::Result<Vec<(String, SourceCost)>> {
    let root = root.to_owned();
    let logs = logs.clone();
    let worker = std::thread::spawn(move || -> anyhow::Result<Vec<(String, SourceCost)>> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let r = receivers()?;
        let mut out = Vec::new();
        for (name, fixture, source) in sources(&root, &r, events)? {
            let mut per_event = Vec::new();
            let mut log_bytes = 0;
            for run in 0..=runs {
                let logs0 = logs.get().0;
                let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
                let queue = MemoryJobQueue::new(clock);
                let now = chrono::Utc::now();
                let cpu0 = thread_cpu_ns()?;
                let enqueued = rt.block_on(source.run(&r, &queue, now))?;
                let cpu = thread_cpu_ns()? - cpu0;
                if enqueued != events {
                    bail!("{name}: {enqueued} of {events} deliveries were enqueued");
                }
                // Run 0 warms caches and the allocator; it is not counted.
                if run > 0 {
                    per_event.push(cpu as f64 / 1000.0 / events as f64);
                    log_bytes += logs.get().0 - logs0;
                }
            }
            let cpu_us = Spread::of(&per_event).context("no runs")?;
            let log_bytes_per_event = log_bytes as f64 / (runs * events) as f64;
            out.push((
                name.to_owned(),
                SourceCost { cpu_us, body_bytes: source.body_bytes(), fixture, log_bytes_per_event },
            ));
        }
        Ok(out)
    });
    worker.join().map_err(|_| anyhow::anyhow!("the receiver benchmark thread panicked"))?
}
