//! Counts and latencies that answer "is it working, and what does it cost": one small facade, two
//! outputs (docs/decisions/0015-metrics.md).
//!
//! Code records through the free functions ([`delivery`], [`outcome`], [`upstream_call`], …) into the
//! [`Registry`] in scope: the one a caller set with [`scoped`] for the future it runs (a `serve` instance;
//! one Lambda invocation), else a process-wide one. A `serve` renders its registry as Prometheus text at
//! `GET /metrics` ([`Registry::prometheus`]); a Lambda function runs each invocation in a fresh registry
//! and prints it as CloudWatch embedded metric format lines when the invocation ends ([`Registry::emf`]).
//! Labels carry names and kinds only (a source, a service, an outcome), never an id or a secret.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The CloudWatch namespace the functions' metrics land in.
pub const NAMESPACE: &str = "campbridge";

/// How a metric adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count that only grows (Prometheus `counter`, EMF unit `Count`).
    Counter,
    /// Durations (Prometheus `histogram` in seconds, EMF unit `Milliseconds`).
    Latency,
}

/// One metric: its name (Prometheus adds `campbridge_` and `_total` or `_seconds`), what it counts, and
/// the names of its labels (EMF dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub kind: Kind,
}

/// Webhook deliveries by source (`basecamp`, `jira`, `bitbucket`) and outcome (`accepted`, `duplicate`,
/// `ignored`, `rejected`).
pub const DELIVERIES: Metric = Metric {
    name: "deliveries",
    help: "Webhook deliveries by source and outcome",
    labels: &["source", "outcome"],
    kind: Kind::Counter,
};
/// Records synced, by what happened (`created`, `updated`, `recorded`, `detached`).
pub const CHANGES: Metric =
    Metric { name: "changes", help: "Records synced, by what happened", labels: &["kind"], kind: Kind::Counter };
/// Records not synced, by why (`filtered`, `gone`, `not_paired`, …; echoes are [`ECHOES`]).
pub const SKIPS: Metric =
    Metric { name: "skips", help: "Records not synced, by reason", labels: &["reason"], kind: Kind::Counter };
/// campbridge's own writes coming back (and other deliveries that changed nothing synced), dropped.
pub const ECHOES: Metric =
    Metric { name: "echoes", help: "Echoes of campbridge's own writes, dropped", labels: &[], kind: Kind::Counter };
/// Fields both sides changed since the last sync.
pub const CONFLICTS: Metric =
    Metric { name: "conflicts", help: "Conflicting fields detected", labels: &[], kind: Kind::Counter };
/// Requests sent to an upstream API, by service (`basecamp`, `jira`, `bitbucket`).
pub const UPSTREAM_CALLS: Metric = Metric {
    name: "upstream_calls",
    help: "Requests sent to upstream APIs, by service",
    labels: &["service"],
    kind: Kind::Counter,
};
/// Upstream answers `429 Too Many Requests`, by service.
pub const UPSTREAM_THROTTLED: Metric = Metric {
    name: "upstream_throttled",
    help: "Upstream 429 answers, by service",
    labels: &["service"],
    kind: Kind::Counter,
};
/// Queue messages put back to be retried later (a 429's Retry-After, a busy pair).
pub const POSTPONED: Metric =
    Metric { name: "postponed", help: "Queue messages postponed for a retry", labels: &[], kind: Kind::Counter };
/// Queue messages that failed (retried after the visibility timeout; [`DEAD_LETTERED`] on the last
/// allowed receive).
pub const FAILED: Metric =
    Metric { name: "failed", help: "Queue messages that failed", labels: &[], kind: Kind::Counter };
/// Queue messages the mapper moved to the dead letters (a worker that stops mid-job leaves that to the
/// queue's own max-receive count, which only the dead-letter queue's depth shows).
pub const DEAD_LETTERED: Metric = Metric {
    name: "dead_lettered",
    help: "Queue messages moved to the dead letters",
    labels: &[],
    kind: Kind::Counter,
};
/// From a delivery's receipt to its record synced.
pub const SYNC_LATENCY: Metric = Metric {
    name: "sync_latency",
    help: "Time from a delivery's receipt to its record synced",
    labels: &[],
    kind: Kind::Latency,
};

/// Every metric, in the order outputs list them.
pub const ALL: &[Metric] = &[
    DELIVERIES,
    CHANGES,
    SKIPS,
    ECHOES,
    CONFLICTS,
    UPSTREAM_CALLS,
    UPSTREAM_THROTTLED,
    POSTPONED,
    FAILED,
    DEAD_LETTERED,
    SYNC_LATENCY,
];

/// Histogram bounds for [`Kind::Latency`], in seconds.
const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// EMF takes at most 100 values per metric in one document; more observations keep the first 100.
const EMF_MAX_VALUES: usize = 100;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Default)]
struct Series {
    count: u64,
    /// Latency only: the sum (seconds), per-bucket counts, and the observations not yet printed as EMF.
    sum: f64,
    buckets: Vec<u64>,
    values_ms: Vec<f64>,
}

/// A set of metric series. Cheap to share (`Arc`); recording takes a short lock.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<BTreeMap<(&'static str, Labels), Series>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(&'static str, Labels), Series>> {
        // A panic while holding the lock leaves plain numbers behind: still readable.
        self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `n` to a counter.
    pub fn add(&self, metric: &Metric, labels: &[&str], n: u64) {
        let mut series = self.lock();
        let s = series.entry((metric.name, label_pairs(metric, labels))).or_default();
        s.count += n;
    }

    /// Records one duration.
    pub fn observe(&self, metric: &Metric, labels: &[&str], d: Duration) {
        let mut series = self.lock();
        let s = series.entry((metric.name, label_pairs(metric, labels))).or_default();
        let secs = d.as_secs_f64();
        s.count += 1;
        s.sum += secs;
        if s.buckets.is_empty() {
            s.buckets = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                s.buckets[i] += 1;
            }
        }
        if s.values_ms.len() < EMF_MAX_VALUES {
            s.values_ms.push((secs * 1000.0 * 1000.0).round() / 1000.0);
        }
    }

    /// A counter's value (the number of observations for a latency); 0 when never recorded.
    pub fn value(&self, metric: &Metric, labels: &[&str]) -> u64 {
        self.lock().get(&(metric.name, label_pairs(metric, labels))).map_or(0, |s| s.count)
    }

    /// The registry in the Prometheus text exposition format (version 0.0.4), followed by `gauges`
    /// (name without prefix, help, value), read by the caller at scrape time.
    pub fn prometheus(&self, gauges: &[(&str, &str, u64)]) -> String {
        let series = self.lock();
        let mut out = String::new();
        for metric in ALL {
            let full = match metric.kind {
                Kind::Counter => format!("campbridge_{}_total", metric.name),
                Kind::Latency => format!("campbridge_{}_seconds", metric.name),
            };
            let kind = match metric.kind {
                Kind::Counter => "counter",
                Kind::Latency => "histogram",
            };
            line(&mut out, format!("# HELP {full} {}.", metric.help));
            line(&mut out, format!("# TYPE {full} {kind}"));
            for ((name, labels), s) in series.iter() {
                if *name != metric.name {
                    continue;
                }
                match metric.kind {
                    Kind::Counter => {
                        line(&mut out, format!("{full}{} {}", prom_labels(labels, None), s.count));
                    }
                    Kind::Latency => {
                        for (bound, n) in BUCKETS.iter().zip(&s.buckets) {
                            let le = format!("{bound}");
                            line(&mut out, format!("{full}_bucket{} {n}", prom_labels(labels, Some(&le))));
                        }
                        line(&mut out, format!("{full}_bucket{} {}", prom_labels(labels, Some("+Inf")), s.count));
                        line(&mut out, format!("{full}_sum{} {}", prom_labels(labels, None), s.sum));
                        line(&mut out, format!("{full}_count{} {}", prom_labels(labels, None), s.count));
                    }
                }
            }
        }
        for (name, help, value) in gauges {
            let full = format!("campbridge_{name}");
            line(&mut out, format!("# HELP {full} {help}."));
            line(&mut out, format!("# TYPE {full} gauge"));
            line(&mut out, format!("{full} {value}"));
        }
        out
    }

    /// The registry as CloudWatch embedded metric format documents (one JSON object per line), stamped
    /// `at`: as few documents as the label values allow — one unless two series of the same label name
    /// differ (two services called in one invocation), since a document holds one value per dimension.
    /// Nothing recorded: no document.
    pub fn emf(&self, at: DateTime<Utc>) -> Vec<String> {
        let series = self.lock();
        let mut docs: Vec<EmfDoc> = Vec::new();
        for ((name, labels), s) in series.iter() {
            let Some(metric) = ALL.iter().find(|m| m.name == *name) else { continue };
            let fits = |d: &EmfDoc| {
                labels.iter().all(|(k, v)| d.dims.get(k).is_none_or(|have| have == v))
                    && !d.metrics.iter().any(|(m, _, _)| m.name == metric.name)
            };
            let i = match docs.iter().position(fits) {
                Some(i) => i,
                None => {
                    docs.push(EmfDoc::default());
                    docs.len() - 1
                }
            };
            let doc = &mut docs[i];
            for (k, v) in labels {
                doc.dims.insert(k, v.clone());
            }
            let value = match metric.kind {
                Kind::Counter => serde_json::json!(s.count),
                Kind::Latency => serde_json::json!(s.values_ms),
            };
            doc.metrics.push((*metric, labels.iter().map(|(k, _)| *k).collect(), value));
        }
        docs.into_iter().map(|d| d.render(at)).collect()
    }
}

#[derive(Default)]
struct EmfDoc {
    dims: BTreeMap<&'static str, String>,
    metrics: Vec<(Metric, Vec<&'static str>, serde_json::Value)>,
}

impl EmfDoc {
    fn render(self, at: DateTime<Utc>) -> String {
        let directives: Vec<serde_json::Value> = self
            .metrics
            .iter()
            .map(|(m, dims, _)| {
                let unit = match m.kind {
                    Kind::Counter => "Count",
                    Kind::Latency => "Milliseconds",
                };
                serde_json::json!({
                    "Namespace": NAMESPACE,
                    "Dimensions": [dims],
                    "Metrics": [{ "Name": m.name, "Unit": unit }],
                })
            })
            .collect();
        let mut root = serde_json::Map::new();
        root.insert(
            "_aws".into(),
            serde_json::json!({ "Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives }),
        );
        for (k, v) in self.dims {
            root.insert(k.to_owned(), serde_json::Value::String(v));
        }
        for (m, _, value) in self.metrics {
            root.insert(m.name.to_owned(), value);
        }
        serde_json::Value::Object(root).to_string()
    }
}

fn label_pairs(metric: &Metric, values: &[&str]) -> Labels {
    metric.labels.iter().zip(values.iter().chain(std::iter::repeat(&""))).map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

fn prom_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", prom_escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn prom_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

tokio::task_local! {
    static CURRENT: Arc<Registry>;
}

/// The process-wide registry: where recordings go outside any [`scoped`] future.
pub fn global() -> &'static Arc<Registry> {
    static GLOBAL: OnceLock<Arc<Registry>> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

/// Runs `fut` with `registry` as the one recordings go to (tasks it spawns are not in the scope: wrap
/// them too).
pub async fn scoped<F: std::future::Future>(registry: Arc<Registry>, fut: F) -> F::Output {
    CURRENT.scope(registry, fut).await
}

/// The registry in scope.
pub fn current() -> Arc<Registry> {
    CURRENT.try_with(Arc::clone).unwrap_or_else(|_| global().clone())
}

/// Counts one webhook delivery: `outcome` is `accepted`, `duplicate`, `ignored` or `rejected`.
pub fn delivery(source: &str, outcome: &str) {
    current().add(&DELIVERIES, &[source, outcome], 1);
}

/// Counts one upstream request and, for a 429, one throttling.
pub fn upstream_call(service: &str, status: u16) {
    let r = current();
    r.add(&UPSTREAM_CALLS, &[service], 1);
    if status == 429 {
        r.add(&UPSTREAM_THROTTLED, &[service], 1);
    }
}

/// Adds `n` to a label-less counter ([`ECHOES`], [`POSTPONED`], [`FAILED`], [`DEAD_LETTERED`], …).
pub fn count(metric: &Metric, n: u64) {
    if n > 0 {
        current().add(metric, &[], n);
    }
}

/// Adds one to a counter with one label.
pub fn count_by(metric: &Metric, label: &str) {
    current().add(metric, &[label], 1);
}

/// Records one end-to-end latency: from `received_at` to `done_at` (0 when the clock went back).
pub fn sync_latency(received_at: DateTime<Utc>, done_at: DateTime<Utc>) {
    let d = (done_at - received_at).to_std().unwrap_or_default();
    current().observe(&SYNC_LATENCY, &[], d);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn recordings_go_to_the_registry_in_scope() {
        let mine = Registry::new();
        scoped(mine.clone(), async {
            delivery("jira", "accepted");
            delivery("jira", "accepted");
            upstream_call("basecamp", 429);
        })
        .await;
        assert_eq!(mine.value(&DELIVERIES, &["jira", "accepted"]), 2);
        assert_eq!(mine.value(&UPSTREAM_CALLS, &["basecamp"]), 1);
        assert_eq!(mine.value(&UPSTREAM_THROTTLED, &["basecamp"]), 1);
        assert_eq!(mine.value(&DELIVERIES, &["basecamp", "accepted"]), 0);
    }

    #[test]
    fn prometheus_text_has_help_type_and_labelled_samples() {
        let r = Registry::new();
        r.add(&DELIVERIES, &["basecamp", "accepted"], 3);
        r.observe(&SYNC_LATENCY, &[], Duration::from_millis(300));
        let text = r.prometheus(&[("dead_letters", "Dead letters waiting", 2)]);
        assert!(text.contains("# TYPE campbridge_deliveries_total counter\n"), "{text}");
        assert!(text.contains("campbridge_deliveries_total{source=\"basecamp\",outcome=\"accepted\"} 3\n"), "{text}");
        assert!(text.contains("campbridge_sync_latency_seconds_bucket{le=\"0.25\"} 0\n"), "{text}");
        assert!(text.contains("campbridge_sync_latency_seconds_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("campbridge_sync_latency_seconds_count 1\n"), "{text}");
        assert!(text.contains("# TYPE campbridge_dead_letters gauge\ncampbridge_dead_letters 2\n"), "{text}");
    }

    #[test]
    fn emf_puts_differing_label_values_in_separate_documents() {
        let r = Registry::new();
        r.add(&UPSTREAM_CALLS, &["basecamp"], 2);
        r.add(&UPSTREAM_CALLS, &["jira"], 1);
        r.add(&ECHOES, &[], 1);
        let docs: Vec<serde_json::Value> = r.emf(at()).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[0]["service"], "basecamp");
        assert_eq!(docs[0]["upstream_calls"], 2);
        assert_eq!(docs[0]["echoes"], 1);
        assert_eq!(docs[0]["_aws"]["Timestamp"], at().timestamp_millis());
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(docs[1]["service"], "jira");
        assert_eq!(docs[1]["upstream_calls"], 1);
        assert!(Registry::new().emf(at()).is_empty(), "nothing recorded, nothing printed");
    }
}
