//! `campbridge-bench`, run by `make bench`: receiver CPU per event, cold starts and sizes of the function
//! binaries, local mode over HTTP (ack latency, ingest, end-to-end sync), upstream calls per change,
//! burst coalescing, store and queue operations per event, and cost per million events. Prints a table
//! and writes the same figures to `target/bench/results.json`. Everything runs on 127.0.0.1, every loop
//! is bounded, and no figure is compared against a limit: the exit status only reports measurements
//! that could not be taken.

mod config;
mod cost;
mod counting;
mod floors;
mod lambda;
mod local;
mod logs;
mod receiver;
mod report;
mod stats;
mod store_ops;
mod template;
mod world;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::config::{Cli, Settings};
use crate::report::{Machine, Results};

fn main() -> ExitCode {
    let settings = match Settings::read(Cli::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campbridge-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let logs = match logs::install() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("campbridge-bench: could not install the log counter: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Two workers, like the machines the README quotes; the load generator, the server and the
    // simulators share them.
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("campbridge-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&settings, &logs)) {
        Ok(results) if results.errors.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("campbridge-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn machine(settings: &Settings) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let git_commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&settings.root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Machine {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        load_at_start: read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        git_commit,
        quick: settings.quick,
    }
}

fn section(name: &str) -> Instant {
    eprintln!("campbridge-bench: {name}…");
    Instant::now()
}

async fn run(s: &Settings, logs: &logs::LogBytes) -> anyhow::Result<Results> {
    let started = Instant::now();
    let q = s.quick;
    let template_text = std::fs::read_to_string(s.root.join("infra/template.yaml"))?;
    let memory = template::parse(&template_text);
    let functions = lambda::discover(&s.root)?;
    let mut r = Results {
        machine: machine(s),
        receiver_cpu_us: BTreeMap::new(),
        receiver_details: BTreeMap::new(),
        init_ms: BTreeMap::new(),
        functions: BTreeMap::new(),
        binary_bytes: BTreeMap::new(),
        binary_details: lambda::sizes(&s.bin_dir, &s.target_dirs, &functions),
        ack_ms: None,
        ingest_events_per_s: None,
        load: None,
        floors: floors::Floors::default(),
        ratios: floors::Ratios::default(),
        e2e_sync_ms: BTreeMap::new(),
        api_calls_per_change: BTreeMap::new(),
        echo_writes: BTreeMap::new(),
        burst_writes: BTreeMap::new(),
        store_ops_per_event: BTreeMap::new(),
        cost_per_million_usd: None,
        errors: Vec::new(),
        skipped: Vec::new(),
    };
    for (name, size) in &r.binary_details {
        match size.host_bytes {
            Some(b) => {
                r.binary_bytes.insert(name.clone(), b);
            }
            None => r.errors.push(format!("binary size: {name} is not built next to {}", s.bin_dir.display())),
        }
    }

    // CPU-sensitive parts first, while nothing else of ours runs.
    if s.runs("receiver") {
        let t = section("receiver CPU per event");
        let (runs, events) = if q { (3, 1000) } else { (7, 5000) };
        match receiver::measure(&s.root, logs, runs, events) {
            Ok(sources) => {
                for (source, cost) in sources {
                    r.receiver_cpu_us.insert(source.clone(), cost.cpu_us);
                    r.receiver_details.insert(source, cost);
                }
            }
            Err(e) => r.errors.push(format!("receiver CPU: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    }

    if s.runs("functions") {
        if s.emulators.is_some() {
            let t = section("cold starts and warm invocations of the function binaries");
            let (starts, invocations) = if q { (5, 10) } else { (20, 50) };
            match lambda::run_all(&s.root, &s.bin_dir, &functions, &memory, starts, invocations).await {
                Ok(figures) => {
                    for (name, f) in figures {
                        if let Some(i) = f.init_ms {
                            r.init_ms.insert(name.clone(), i);
                        }
                        if let Some(e) = &f.error {
                            r.errors.push(format!("{name}: {e}"));
                        }
                        r.functions.insert(name, f);
                    }
                }
                Err(e) => r.errors.push(format!("cold starts: {e:#}")),
            }
            eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
        } else {
            r.skipped.push("cold starts: the functions read their secrets from Secrets Manager at start; run inside `scripts/emulators.sh run` (make bench does)".to_owned());
        }
    }

    let scratch = local::scratch(&s.root);
    let plan = local::Plan {
        load_runs: if q { 1 } else { 3 },
        load_requests: if q { 300 } else { 2000 },
        load_concurrency: 16,
        e2e_runs: if q { 1 } else { 3 },
        e2e_samples: if q { 5 } else { 15 },
        burst_spread: Duration::from_secs(if q { 2 } else { 10 }),
    };
    if s.runs("load") {
        let t = section("local mode: webhook ack latency and ingest throughput");
        match local::load(&scratch, &plan).await {
            Ok(l) => {
                r.ack_ms = l.ack_ms;
                r.ingest_events_per_s = l.ingest_events_per_s;
                r.load = Some(l);
            }
            Err(e) => r.errors.push(format!("load: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
        let t = section("floors: a handler that only answers 202, raw SQLite group-commit inserts");
        match floors::ack(&plan).await {
            Ok(a) => r.floors.ack_ms = Some(a),
            Err(e) => r.errors.push(format!("ack floor: {e:#}")),
        }
        match floors::ingest(&scratch.join("floors"), &plan).await {
            Ok(i) => r.floors.ingest_events_per_s = Some(i),
            Err(e) => r.errors.push(format!("ingest floor: {e:#}")),
        }
        r.ratios = floors::Ratios::of(r.ack_ms.as_ref(), r.ingest_events_per_s.as_ref(), &r.floors);
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    }
    if s.runs("e2e") {
        let t = section("local mode: end-to-end sync latency");
        match local::e2e(&scratch, &plan).await {
            Ok(m) => r.e2e_sync_ms = m,
            Err(e) => r.errors.push(format!("e2e latency: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    }
    if s.runs("calls") {
        let t = section("upstream calls per change");
        match local::calls(&scratch).await {
            Ok(m) => {
                r.echo_writes = m.iter().map(|(k, c)| (k.clone(), c.echo_writes)).collect();
                r.api_calls_per_change = m;
            }
            Err(e) => r.errors.push(format!("calls per change: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    }
    if s.runs("burst") {
        let t = section("burst coalescing");
        match local::bursts(&scratch, &plan).await {
            Ok(m) => r.burst_writes = m,
            Err(e) => r.errors.push(format!("bursts: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    }
    if s.runs("store") {
        let rounds = if q { 1 } else { 3 };
        let t = section("store operations per event on SQLite");
        match store_ops::sqlite(&scratch, logs, rounds).await {
            Ok(run) => {
                r.store_ops_per_event.insert("sqlite".to_owned(), run);
            }
            Err(e) => r.errors.push(format!("store operations on SQLite: {e:#}")),
        }
        eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
        if s.emulators.is_some() {
            let t = section("store operations per event on DynamoDB Local + moto");
            match store_ops::aws(logs, rounds).await {
                Ok(run) => {
                    r.store_ops_per_event.insert("dynamodb_sqs".to_owned(), run);
                }
                Err(e) => r.errors.push(format!("store operations on DynamoDB/SQS: {e:#}")),
            }
            eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
        } else {
            r.skipped
                .push("DynamoDB/SQS operations: run inside `scripts/emulators.sh run` (make bench does)".to_owned());
        }
    }
    // An error only means nothing was written there.
    std::fs::remove_dir_all(&scratch).ok();
    // The template's secrets, and the configuration `campbridge config push` stores beside them.
    r.cost_per_million_usd = report::cost(&r, &memory, template::secrets(&template_text) + 1);

    print!("{}", report::table(&r));
    println!("\n(bench ran {:.0} s; JSON in {})", started.elapsed().as_secs_f64(), s.cli_out.display());
    if let Some(dir) = s.cli_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&s.cli_out, serde_json::to_string_pretty(&r)?)?;
    Ok(r)
}
