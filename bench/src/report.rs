//! The results: one struct with the stable keys `target/bench/results.json` carries (so runs can be
//! compared), the cost model's inputs assembled from the measured figures, and the table on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cost::{self, Breakdown, FunctionLoad, Inputs};
use crate::floors::{Floors, Ratios};
use crate::lambda::{FunctionFigures, Size};
use crate::local::{Burst, ChangeCalls, Load};
use crate::receiver::SourceCost;
use crate::stats::{LatencySpread, Spread};
use crate::store_ops::StoreRun;

/// Assumed wait per upstream API call in AWS (the simulators answer on loopback in well under 1 ms).
pub const UPSTREAM_LATENCY_MS: f64 = 200.0;
/// Mapper invocations per event: at webhook rates an SQS batch holds one message.
pub const MAPPER_INVOCATIONS_PER_EVENT: f64 = 1.0;

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// `/proc/loadavg` when the bench started (other work on a shared machine shows here).
    pub load_at_start: String,
    pub git_commit: Option<String>,
    pub quick: bool,
}

/// Everything measured. Keys are stable: add new ones, do not rename.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    /// CPU µs per event in-process, by source.
    pub receiver_cpu_us: BTreeMap<String, Spread>,
    pub receiver_details: BTreeMap<String, SourceCost>,
    /// Exec → first `/runtime/invocation/next`, by function (x86_64 host build; AWS runs arm64).
    pub init_ms: BTreeMap<String, Spread>,
    pub functions: BTreeMap<String, FunctionFigures>,
    /// Release binary size by function (host build).
    pub binary_bytes: BTreeMap<String, u64>,
    pub binary_details: BTreeMap<String, Size>,
    pub ack_ms: Option<LatencySpread>,
    pub ingest_events_per_s: Option<Spread>,
    pub load: Option<Load>,
    /// Measured in the same run: a handler that only answers 202, raw SQLite group-commit inserts.
    pub floors: Floors,
    /// campbridge ÷ floor: `ack_ms.p50`/`ack_ms.p99` (lower is better, ≥ 1) and `ingest_events_per_s`
    /// (higher is better, ≤ 1).
    pub ratios: Ratios,
    pub e2e_sync_ms: BTreeMap<String, LatencySpread>,
    pub api_calls_per_change: BTreeMap<String, ChangeCalls>,
    pub echo_writes: BTreeMap<String, u64>,
    pub burst_writes: BTreeMap<String, Burst>,
    /// `sqlite` and `dynamodb_sqs`.
    pub store_ops_per_event: BTreeMap<String, StoreRun>,
    pub cost_per_million_usd: Option<Cost>,
    /// Measurements that failed.
    pub errors: Vec<String>,
    /// Parts left out on purpose, and why.
    pub skipped: Vec<String>,
}

/// The cost figures and what they rest on.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub prices_as_of: &'static str,
    pub inputs: Inputs,
    pub per_million_events: Breakdown,
    /// Events (webhook deliveries, echoes included) per change a person makes, in the store story.
    pub events_per_change: Option<f64>,
    pub per_million_changes: Option<f64>,
    /// A million receiver cold starts' init phases (billed), at the receivers' memory.
    pub per_million_cold_starts: Option<f64>,
    pub floor: Breakdown,
    pub make_per_million: (f64, f64),
    pub zapier_per_million: (f64, f64),
    /// Fixed monthly cost that does not depend on events (secrets).
    pub fixed_per_month: f64,
    pub assumptions: Vec<String>,
}

/// Assembles the cost inputs from the measured figures; `None` when a needed figure is missing.
pub fn cost(r: &Results, memory: &crate::template::Memory, secrets: usize) -> Option<Cost> {
    let mut assumptions = vec![
        format!(
            "mapper duration = measured in-process work per event + {UPSTREAM_LATENCY_MS} ms per upstream API call \
             (assumed; the simulators answer on loopback)"
        ),
        format!(
            "{MAPPER_INVOCATIONS_PER_EVENT} mapper invocation per event (webhook-rate SQS batches hold one message)"
        ),
        format!(
            "Lambda's own platform log lines estimated at {} bytes per invocation",
            cost::PLATFORM_LOG_BYTES_PER_INVOCATION
        ),
        "a failed conditional write is counted as 1 WRU (DynamoDB bills it but reports no capacity)".to_owned(),
    ];
    let store = r.store_ops_per_event.get("dynamodb_sqs");
    let store = match store {
        Some(s) => s,
        None => {
            assumptions.push("no DynamoDB/SQS figures (run under scripts/emulators.sh): none computed".to_owned());
            return None;
        }
    };
    let receivers: Vec<(&String, &FunctionFigures)> =
        r.functions.iter().filter(|(name, _)| name.ends_with("-webhook")).collect();
    let warm: Vec<(f64, f64, u32)> = receivers
        .iter()
        .filter_map(|(name, f)| {
            let w = f.warm.as_ref()?;
            Some((w.duration_ms_p50, w.log_bytes_per_invocation, memory.of(name)))
        })
        .collect();
    let receiver = if warm.is_empty() {
        let cpu_ms = Spread::of(&r.receiver_cpu_us.values().map(|s| s.median).collect::<Vec<_>>())?.median / 1000.0;
        assumptions.push("receiver duration estimated from in-process CPU (no warm invocation figures)".to_owned());
        let log = Spread::of(&r.receiver_details.values().map(|d| d.log_bytes_per_event).collect::<Vec<_>>())?;
        (cpu_ms, log.median, memory.default_mb)
    } else {
        let n = warm.len() as f64;
        (
            warm.iter().map(|w| w.0).sum::<f64>() / n,
            warm.iter().map(|w| w.1).sum::<f64>() / n,
            warm.iter().map(|w| w.2).max().unwrap_or(memory.default_mb),
        )
    };
    let mapper_ms = store.mapper_ms_per_event + store.upstream_calls_per_event * UPSTREAM_LATENCY_MS;
    let get = |k: &str| store.backend_per_event.get(k).copied().unwrap_or(0.0);
    let inputs = Inputs {
        functions: vec![
            FunctionLoad {
                function: "receivers (*-webhook)".to_owned(),
                invocations_per_event: 1.0,
                duration_ms: receiver.0,
                memory_mb: receiver.2,
                log_bytes_per_invocation: receiver.1,
            },
            FunctionLoad {
                function: "sync-mapper".to_owned(),
                invocations_per_event: MAPPER_INVOCATIONS_PER_EVENT,
                duration_ms: mapper_ms,
                memory_mb: memory.of("sync-mapper"),
                log_bytes_per_invocation: store.mapper_log_bytes_per_event / MAPPER_INVOCATIONS_PER_EVENT,
            },
        ],
        sqs_requests_per_event: get("sqs.requests"),
        rru_per_event: get("dynamodb.rru"),
        wru_per_event: get("dynamodb.wru"),
    };
    let per_million_events = cost::per_million(&inputs);
    let events_per_change = (store.changes > 0).then(|| store.events as f64 / store.changes as f64);
    let init = Spread::of(&receivers.iter().filter_map(|(_, f)| f.init_ms.map(|s| s.median)).collect::<Vec<_>>())
        .map(|s| cost::init_cost(s.median, receiver.2) * 1e6);
    Some(Cost {
        prices_as_of: cost::PRICES_AS_OF,
        inputs,
        per_million_events,
        events_per_change,
        per_million_changes: events_per_change.map(|e| e * per_million_events.total),
        per_million_cold_starts: init,
        floor: cost::floor(),
        make_per_million: cost::MAKE_PER_MILLION_USD,
        zapier_per_million: cost::ZAPIER_PER_MILLION_USD,
        fixed_per_month: secrets as f64 * cost::SECRETS_MANAGER_PER_SECRET_MONTH,
        assumptions,
    })
}

fn spread(s: &Spread, decimals: usize) -> String {
    format!("{:.d$}  ({:.d$}–{:.d$}, {} runs)", s.median, s.min, s.max, s.runs, d = decimals)
}

fn bytes(n: u64) -> String {
    format!("{:.2} MiB ({n} B)", n as f64 / 1024.0 / 1024.0)
}

fn latency(l: &LatencySpread) -> String {
    format!(
        "p50 {:.2} ({:.2}–{:.2})  p99 {:.2} ({:.2}–{:.2})  max {:.2}  [{} runs × {} samples]",
        l.p50.median,
        l.p50.min,
        l.p50.max,
        l.p99.median,
        l.p99.min,
        l.p99.max,
        l.max.max,
        l.p50.runs,
        l.samples_per_run
    )
}

/// The readable table.
pub fn table(r: &Results) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let w = &mut o;
    // Writing to a String cannot fail.
    writeln!(
        w,
        "campbridge bench — {} on {} ({} cores), Linux {}, load at start {}",
        m.date, m.cpu, m.cores, m.kernel, m.load_at_start
    )
    .ok();
    writeln!(
        w,
        "commit {}{}",
        m.git_commit.as_deref().unwrap_or("unknown"),
        if m.quick { "  (--quick: fewer repetitions)" } else { "" }
    )
    .ok();
    writeln!(w, "Figures are medians over repeated runs (min–max); nothing here is a pass/fail limit.").ok();

    writeln!(w, "\n1. Receiver CPU per event, in-process (verify + parse + normalize + enqueue + JSON log line)").ok();
    for (source, s) in &r.receiver_cpu_us {
        let d = r.receiver_details.get(source);
        writeln!(
            w,
            "   {source:<10} {} µs   body {} B, log {:.0} B/event   [{}]",
            spread(s, 1),
            d.map_or(0, |d| d.body_bytes),
            d.map_or(0.0, |d| d.log_bytes_per_event),
            d.map_or("", |d| d.fixture.as_str())
        )
        .ok();
    }

    writeln!(
        w,
        "\n2. Cold start: exec → first GET /runtime/invocation/next (x86_64 release build here; AWS runs arm64)"
    )
    .ok();
    writeln!(w, "   includes reading the config and the function's secrets from Secrets Manager (moto on loopback)")
        .ok();
    for (name, f) in &r.functions {
        match (&f.init_ms, &f.error) {
            (Some(s), _) => writeln!(w, "   {name:<18} {} ms", spread(s, 1)).ok(),
            (None, Some(e)) => writeln!(w, "   {name:<18} not measured: {e}").ok(),
            (None, None) => writeln!(w, "   {name:<18} not measured").ok(),
        };
        if let Some(wm) = &f.warm {
            writeln!(
                w,
                "   {:<18} warm invocation p50 {:.2} ms, p99 {:.2} ms ({} × {}), log {:.0} B/invocation (SQS = moto)",
                "",
                wm.duration_ms_p50,
                wm.duration_ms_p99,
                wm.invocations,
                wm.events.join(", "),
                wm.log_bytes_per_invocation
            )
            .ok();
        }
    }

    writeln!(w, "\n3. Binary size, release profile (opt-level z, fat LTO, panic=abort, stripped)").ok();
    for (name, d) in &r.binary_details {
        let host = d.host_bytes.map_or_else(|| "not built".to_owned(), bytes);
        let arm = d.arm64_bytes.map(|b| format!("   arm64 (make build): {}", bytes(b))).unwrap_or_default();
        writeln!(w, "   {name:<18} x86_64 {host}{arm}").ok();
    }

    writeln!(w, "\n4. Local mode over HTTP (serve on SQLite, simulators on loopback, Basecamp rate limit off)").ok();
    if let Some(l) = &r.load {
        if let Some(a) = &l.ack_ms {
            writeln!(w, "   webhook ack ms        {}", latency(a)).ok();
        }
        if let Some(f) = &r.floors.ack_ms {
            writeln!(w, "   ack floor ms          {}  (a handler that only answers 202)", latency(f)).ok();
        }
        if let Some(x) = &r.ratios.ack_ms {
            writeln!(w, "   ack ÷ floor           p50 ×{:.2}  p99 ×{:.2}", x.p50, x.p99).ok();
        }
        writeln!(
            w,
            "   load: {} requests per run, {} concurrent, {} not 202",
            l.requests_per_run, l.concurrency, l.failed
        )
        .ok();
        if let Some(s) = &l.ingest_events_per_s {
            writeln!(w, "   ingest events/s       {}", spread(s, 0)).ok();
        }
        if let Some(f) = &r.floors.ingest_events_per_s {
            writeln!(w, "   ingest floor rows/s   {}  (raw SQLite group-commit inserts)", spread(f, 0)).ok();
        }
        if let Some(x) = r.ratios.ingest_events_per_s {
            writeln!(w, "   ingest ÷ floor        ×{x:.2}").ok();
        }
        if let Some(s) = &l.processed_events_per_s {
            writeln!(w, "   synced events/s       {}  (first request → queue empty)", spread(s, 0)).ok();
        }
    }
    for (path, l) in &r.e2e_sync_ms {
        writeln!(w, "   e2e {path:<30} ms  {}", latency(l)).ok();
    }

    writeln!(w, "\n5. Upstream calls per synced change (echo handling included) vs the minimum the APIs allow").ok();
    writeln!(
        w,
        "   {:<22} {:>5} {:>5}  {:>9} {:>9} {:>9}  {:>5}  minimum",
        "change", "calls", "min", "BC r/w", "Jira r/w", "BB r/w", "echo"
    )
    .ok();
    for (change, c) in &r.api_calls_per_change {
        writeln!(
            w,
            "   {change:<22} {:>5} {:>5}  {:>9} {:>9} {:>9}  {:>5}  {}",
            c.total,
            c.minimum,
            format!("{}/{}", c.basecamp.reads, c.basecamp.writes),
            format!("{}/{}", c.jira.reads, c.jira.writes),
            format!("{}/{}", c.bitbucket.reads, c.bitbucket.writes),
            c.echo_writes,
            c.minimum_calls
        )
        .ok();
    }

    writeln!(w, "\n6. Bursts: 20 edits to one to-do's title").ok();
    for (name, b) in &r.burst_writes {
        writeln!(
            w,
            "   {name:<16} over {:.1} s → {} Jira writes, {} Basecamp reads, {} Basecamp writes; both sides hold the last edit: {}",
            b.window_s, b.jira_writes, b.basecamp_reads, b.basecamp_writes, b.converged
        )
        .ok();
        if !b.converged {
            writeln!(w, "   {:<16} to-do {:?}, issue {:?}", "", b.final_todo_title, b.final_issue_summary).ok();
        }
    }

    writeln!(w, "\n7. Store and queue operations per event (the same story of changes; echoes are events too)").ok();
    for (store, s) in &r.store_ops_per_event {
        writeln!(
            w,
            "   {store}: {} events from {} changes; mapper {:.2} ms/event in-process; {:.2} upstream calls/event",
            s.events, s.changes, s.mapper_ms_per_event, s.upstream_calls_per_event
        )
        .ok();
        let ports: Vec<String> =
            s.port_calls_per_event.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k} {v:.2}")).collect();
        writeln!(w, "     ports:   {}", ports.join(", ")).ok();
        let backend: Vec<String> = s.backend_per_event.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        writeln!(w, "     backend: {}", backend.join(", ")).ok();
    }

    writeln!(w, "\n8. Cost per million events, AWS us-east-1 list prices of {}", cost::PRICES_AS_OF).ok();
    match &r.cost_per_million_usd {
        Some(c) => {
            let b = &c.per_million_events;
            writeln!(
                w,
                "   campbridge  ${:.2}  = Lambda requests {:.2} + Lambda GB-s {:.2} + SQS FIFO {:.2} + DynamoDB {:.2} + logs {:.2}",
                b.total, b.lambda_requests, b.lambda_compute, b.sqs, b.dynamodb, b.logs
            )
            .ok();
            for f in &c.inputs.functions {
                writeln!(
                    w,
                    "     {}: {:.2} invocations/event × {:.1} ms × {} MB, {:.0} B logs/invocation",
                    f.function, f.invocations_per_event, f.duration_ms, f.memory_mb, f.log_bytes_per_invocation
                )
                .ok();
            }
            writeln!(
                w,
                "     SQS {:.2} requests/event, DynamoDB {:.2} RRU + {:.2} WRU/event",
                c.inputs.sqs_requests_per_event, c.inputs.rru_per_event, c.inputs.wru_per_event
            )
            .ok();
            if let (Some(e), Some(t)) = (c.events_per_change, c.per_million_changes) {
                writeln!(w, "   per million changes people make: ${t:.2} ({e:.2} events per change)").ok();
            }
            writeln!(
                w,
                "   floor       ${:.2}  (one invocation, one queue send, one conditional write per event)",
                c.floor.total
            )
            .ok();
            writeln!(w, "   Make        ${:.0}–{:.0}", c.make_per_million.0, c.make_per_million.1).ok();
            writeln!(w, "   Zapier      ${:.0}–{:.0}", c.zapier_per_million.0, c.zapier_per_million.1).ok();
            if let Some(cs) = c.per_million_cold_starts {
                writeln!(
                    w,
                    "   plus ${cs:.2} per million receiver cold starts (init is billed) and ${:.2}/month for the secrets",
                    c.fixed_per_month
                )
                .ok();
            }
            for a in &c.assumptions {
                writeln!(w, "   assumed: {a}").ok();
            }
        }
        None => {
            writeln!(w, "   not computed (needs the DynamoDB/SQS figures: run `make bench`)").ok();
        }
    }
    if !r.skipped.is_empty() {
        writeln!(w, "\nSkipped:").ok();
        for e in &r.skipped {
            writeln!(w, "   {e}").ok();
        }
    }
    if !r.errors.is_empty() {
        writeln!(w, "\nFailed:").ok();
        for e in &r.errors {
            writeln!(w, "   {e}").ok();
        }
    }
    o
}
