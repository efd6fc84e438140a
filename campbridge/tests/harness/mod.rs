//! The chaos convergence harness, shared by `tests/chaos.rs` (SQLite) and `tests/chaos_aws.rs` (DynamoDB
//! Local + SQS on moto): a model-based workload of people editing both sides, run through the real path
//! (simulators → webhooks → receivers → queue → mapper → simulators' APIs) with every fault at once —
//! duplicated, reordered and delayed deliveries, upstream 5xx and 429s, and the mapper process killed at
//! every step boundary and restarted on the same store — then checked against the model.
//!
//! `CAMPBRIDGE_CHAOS_EVENTS` and `CAMPBRIDGE_CHAOS_RECORDS` size a run (`make chaos`: 10,000 events);
//! `CAMPBRIDGE_CHAOS_SEED` replays one. Every run prints its figures and writes them to
//! `target/tmp/chaos-<backend>.txt`.

#![allow(dead_code)] // each test target uses part of the harness

pub mod crash;
pub mod model;
pub mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use campbridge_simulators::common::faults::{Faults, Forced429, WebhookFaults};

use crash::Step;
use model::{Verdict, Workload};
use world::{Backend, ScaledClock, Setup, Stats, World, api_faults, webhook_faults};

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Scale {
    pub events: u64,
    pub records: usize,
    pub seed: u64,
    /// Scaled seconds per real second.
    pub factor: f64,
    pub workers: usize,
    /// Port calls between crashes, on average.
    pub crash_gap: u32,
    /// The people wait while the queue holds more than this (a backlog, not a flood).
    pub max_backlog: u64,
}

impl Scale {
    /// `events` over `records` unless the environment says otherwise.
    pub fn from_env(events: u64, records: usize) -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let events = var("CAMPBRIDGE_CHAOS_EVENTS").unwrap_or(events);
        let records = var("CAMPBRIDGE_CHAOS_RECORDS").map_or_else(|| records.max(events as usize / 25), |r| r as usize);
        let seed = var("CAMPBRIDGE_CHAOS_SEED").unwrap_or(20_261_122);
        // About 8 port calls per event; about one crash per 30 events, at least 3 per step.
        let crash_gap = u32::try_from((events * 8 / (events / 30).max(21)).max(20)).unwrap_or(u32::MAX);
        Self { events, records, seed, factor: 10.0, workers: 3, crash_gap, max_backlog: 400 }
    }
}

/// The figures of one run, as printed.
pub struct Report {
    pub text: String,
    pub verdict: Verdict,
    /// The most postponements one job met.
    pub max_attempt: u32,
    pub crashes_by_step: std::collections::BTreeMap<&'static str, u64>,
}

fn n(v: &std::sync::atomic::AtomicU64) -> u64 {
    Stats::get(v)
}

/// Drives the workload: one person's action after another, a few milliseconds apart, waiting while the
/// backlog is long (people act while the sync works, not all before it).
async fn act(world: &World, load: &mut Workload, events: u64, max_backlog: u64) {
    while load.total() < events {
        load.step(world).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        while model::depth(world).await > max_backlog {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits for the world to settle, checks it against the model, then looks at everything once more and
/// counts the writes that causes (echo writes: must be none).
async fn settle_and_verify(world: &World, load: &mut Workload, meanwhile: &Faults, bound: Duration) -> Verdict {
    // Events have stopped: no more kills (the last ones' messages come back after the visibility
    // timeout); deliveries go out in order now; the upstreams keep failing as `meanwhile` says.
    world.plan.set_enabled(false);
    world.set_faults(meanwhile);
    world.quiesce("after the events", bound).await;
    world.set_faults(&Faults::default());
    world.quiesce("with the faults off", bound).await;
    let mut verdict = load.verify(world).await;
    let before = model::writes(world);
    verdict.final_pass_jobs = load.final_pass(world).await;
    world.quiesce("the final pass", bound).await;
    verdict.echo_writes = model::writes(world) - before;
    verdict.dead_letters = world.backend.queue.dead_letters().await.unwrap().len();
    verdict
}

/// The dead letters, each with its receive count and last error (none: the queue moved it, no attempt
/// finished), and the start of its body (the job's kind and delivery).
async fn dead_letters(world: &World) -> String {
    let letters = world.backend.queue.dead_letters().await.unwrap_or_default();
    let mut text = String::new();
    for l in &letters {
        let body: String = l.body.chars().take(160).collect();
        text.push_str(&format!(
            "dead letter {} (group {}, {} receives, at {}): {}\n    {body}\n",
            l.message_id,
            l.group,
            l.receive_count,
            l.dead_at,
            l.last_error.as_deref().unwrap_or("no attempt finished: moved by the queue")
        ));
    }
    text
}

fn line(t: &mut String, text: String) {
    t.push_str(&text);
    t.push('\n');
}

fn describe(
    title: &str,
    world: &World,
    scale: &Scale,
    load: &Workload,
    v: &Verdict,
    times: (Duration, Duration),
) -> String {
    let s = &world.stats;
    let faults = world.fault_counts();
    let mut t = String::new();
    line(&mut t, format!("{title} on {} — seed {}, clock ×{}", world.backend.name, scale.seed, scale.factor));
    line(
        &mut t,
        format!(
            "  events            {} over {} records ({} routed, {} outside the route), {} issues",
            load.total(),
            v.records,
            v.routed,
            v.records - v.routed,
            v.issues
        ),
    );
    for (kind, count) in &load.events {
        line(&mut t, format!("    {count:>6}  {kind}"));
    }
    line(
        &mut t,
        format!(
            "  deliveries        {} accepted by the receivers; {} duplicated, {} reordered and delayed",
            v.deliveries_accepted, faults.duplicated_deliveries, faults.reordered_deliveries
        ),
    );
    line(&mut t, format!("  upstream faults   {} × 5xx, {} × 429", faults.server_errors, faults.rate_limits));
    let by_step = world.plan.fired_by_step();
    let steps: Vec<String> =
        Step::ALL.iter().map(|st| format!("{} {}", st.name(), by_step.get(st.name()).copied().unwrap_or(0))).collect();
    line(
        &mut t,
        format!(
            "  crashes           {} ({}), {} restarts on the same store",
            by_step.values().sum::<u64>(),
            steps.join(", "),
            n(&s.restarts)
        ),
    );
    let fired = world.plan.fired();
    let points: Vec<String> = fired.iter().map(|(p, c)| format!("{p} {c}")).collect();
    line(&mut t, format!("                    at {}", points.join(", ")));
    let postponed: Vec<String> = world::lock(&s.postponed_by).iter().map(|(r, c)| format!("{r} {c}")).collect();
    line(
        &mut t,
        format!(
            "  mapper            {} messages in {} batches: {} created, {} updated, {} echoes suppressed, {} duplicates absorbed, {} conflicts settled",
            n(&s.messages),
            n(&s.batches),
            n(&s.created),
            n(&s.updated),
            n(&s.echoes),
            n(&s.duplicates),
            n(&s.conflicts)
        ),
    );
    line(
        &mut t,
        format!(
            "                    {} postponed ({}; one job up to {} times in a row), {} held until due, {} failed and retried, {} dead-lettered",
            n(&s.postponed),
            postponed.join(", "),
            s.get_max(),
            n(&s.not_yet),
            n(&s.failed),
            n(&s.dead_lettered)
        ),
    );
    line(
        &mut t,
        format!(
            "  people            waited {} times for the sync's read-merge-write of the same to-do (Basecamp has no conditional write)",
            world.locks.waits.load(std::sync::atomic::Ordering::Relaxed)
        ),
    );
    line(
        &mut t,
        format!(
            "  invariants        duplicate items {}, lost updates {} of {} fields checked, echo writes {} (final pass over {} jobs), jobs applied or recorded {}/{}, dead letters {}",
            v.duplicates.len(),
            v.lost_updates.len(),
            v.fields_checked,
            v.echo_writes,
            v.final_pass_jobs,
            v.deliveries_accepted - v.deliveries_not_completed.len(),
            v.deliveries_accepted,
            v.dead_letters
        ),
    );
    line(
        &mut t,
        format!(
            "  time              {:.0} s of events, {:.0} s to converge and verify (wall clock)",
            times.0.as_secs_f64(),
            times.1.as_secs_f64()
        ),
    );
    t
}

fn publish(name: &str, text: &str) {
    println!("{text}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("chaos-{name}.txt"));
    if let Err(e) = std::fs::write(&file, text) {
        eprintln!("could not write {}: {e}", file.display());
    }
}

/// The full chaos run: every fault at once, the process killed at every step boundary.
pub async fn chaos(scale: &Scale, make_backend: impl FnOnce(Arc<ScaledClock>) -> Backend) -> Report {
    let setup = Setup { factor: scale.factor, workers: scale.workers, seed: scale.seed, crash_gap: scale.crash_gap };
    let world = World::start(&setup, make_backend).await;
    world.set_faults(&api_faults(webhook_faults()));
    let mut load = Workload::new(&world, scale.seed, scale.records, scale.events).await;
    let start = Instant::now();
    act(&world, &mut load, scale.events, scale.max_backlog).await;
    let acting = start.elapsed();
    let meanwhile = api_faults(WebhookFaults::default());
    let verdict = settle_and_verify(&world, &mut load, &meanwhile, Duration::from_secs(600)).await;
    let mut text = describe("chaos run", &world, scale, &load, &verdict, (acting, start.elapsed() - acting));
    if !verdict.holds() {
        text.push_str(&format!("\nfailures (not delays): {:#?}\n", world::lock(&world.stats.failures)));
        text.push_str(&dead_letters(&world).await);
        text.push_str(&load.trails(&world, &verdict).await);
    }
    publish(&format!("{}-chaos", world.backend.name.to_lowercase().replace([' ', '+'], "")), &text);
    let crashes_by_step = world.plan.fired_by_step();
    let max_attempt = world.stats.get_max();
    world.stop().await;
    Report { text, verdict, crashes_by_step, max_attempt }
}

/// An upstream answering every request with `fault` for `length` of scaled time while people work, then
/// recovering: nothing may be dead-lettered and everything must converge.
pub async fn weather(
    name: &str,
    scale: &Scale,
    fault: Faults,
    length: Duration,
    make_backend: impl FnOnce(Arc<ScaledClock>) -> Backend,
) -> Report {
    let setup = Setup { factor: scale.factor, workers: scale.workers, seed: scale.seed, crash_gap: u32::MAX };
    let world = World::start(&setup, make_backend).await;
    world.plan.set_enabled(false);
    let mut load = Workload::new(&world, scale.seed, scale.records, scale.events).await;
    let start = Instant::now();
    // Some records synced before the weather turns, so both sides have work.
    act(&world, &mut load, scale.events / 3, scale.max_backlog).await;
    world.quiesce("before the weather", Duration::from_secs(300)).await;
    world.set_faults(&fault);
    let turned = world.clock.elapsed();
    act(&world, &mut load, scale.events, u64::MAX).await;
    while world.clock.elapsed() < turned + length {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.set_faults(&Faults::default());
    let acting = start.elapsed();
    let verdict = settle_and_verify(&world, &mut load, &Faults::default(), Duration::from_secs(600)).await;
    let mut text = describe(name, &world, scale, &load, &verdict, (acting, start.elapsed() - acting));
    if !verdict.holds() {
        text.push_str(&format!("\nfailures (not delays): {:#?}\n", world::lock(&world.stats.failures)));
        text.push_str(&dead_letters(&world).await);
        text.push_str(&load.trails(&world, &verdict).await);
    }
    publish(
        &format!("{}-{}", world.backend.name.to_lowercase().replace([' ', '+'], ""), name.replace(' ', "-")),
        &text,
    );
    let max_attempt = world.stats.get_max();
    world.stop().await;
    Report { text, verdict, crashes_by_step: Default::default(), max_attempt }
}

/// A sustained 429 storm on Basecamp and Jira (every request refused, `Retry-After: 2`).
pub fn storm() -> Faults {
    Faults { force_429: Some(Forced429 { retry_after: 2, remaining: None, html: false }), ..Faults::default() }
}

/// An outage: every API request answered 503.
pub fn outage() -> Faults {
    Faults { error_rate: 1.0, error_status: 503, ..Faults::default() }
}

/// Asserts a run's invariants, printing its figures and what broke.
pub fn assert_holds(report: &Report) {
    let v = &report.verdict;
    assert!(
        v.holds(),
        "{}\nduplicates: {:#?}\nlost updates: {:#?}\nnot completed: {:#?}",
        report.text,
        v.duplicates,
        v.lost_updates,
        v.deliveries_not_completed.iter().take(20).collect::<Vec<_>>()
    );
}
